//! The evaluator. Like Prometheus' range evaluation, every expression is evaluated for
//! all steps of the query at once (an instant query is a range of one step); series hold
//! one optional value per step. Raw points are fetched before evaluation starts
//! ([`super::select`]), so evaluation itself is synchronous and reads no store.
//!
//! Times are milliseconds, as in Prometheus: query times may have a fractional second
//! even though carat's points are whole seconds.

use std::collections::HashMap;

use promql_parser::parser::{AtModifier, Expr, Offset, SubqueryExpr, VectorSelector};

use super::api::PromError;
use super::is_stale;

/// A label set, sorted by name, without empty values (Prometheus never has them).
pub(crate) type Labels = Vec<(String, String)>;

/// Prometheus' default lookback delta: an instant selector sees the newest point of
/// the last 5 minutes.
pub(crate) const LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// One series of an instant vector over the steps: `values[i]` at step `i`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    pub labels: Labels,
    pub values: Vec<Option<f64>>,
}

/// Raw points of one series, ascending by time (ms).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawSeries {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}

/// What an expression evaluates to.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// One value per step.
    Scalar(Vec<f64>),
    Vector(Vec<Series>),
    /// A range selector at the top of an instant query: raw points of its window.
    Matrix(Vec<RawSeries>),
    String(String),
}

/// The steps: `start`, `start + step`, … `end` (ms).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Steps {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

/// Most steps a subquery's inner expression is evaluated at (each holds a value per
/// series). Prometheus bounds the same through its sample limit (`--query.max-samples`).
pub(crate) const MAX_SUBQUERY_STEPS: u64 = 1_000_000;

impl Steps {
    pub(crate) fn len(&self) -> usize {
        usize::try_from((self.end - self.start) / self.step + 1).unwrap_or(0)
    }

    /// The number of steps, without converting to `usize` (0 for an empty range).
    pub(crate) fn len_unbounded(&self) -> u64 {
        let span = i128::from(self.end) - i128::from(self.start);
        u64::try_from(span / i128::from(self.step.max(1)) + 1).unwrap_or(0)
    }

    pub(crate) fn times(&self) -> impl Iterator<Item = i64> {
        let s = *self;
        (0..self.len()).map(move |i| s.start + s.step * i as i64)
    }
}

/// The raw points of every selector of an expression, keyed by the selector's address
/// in the parsed expression (which outlives the evaluation).
pub(crate) type Fetched = HashMap<usize, Vec<RawSeries>>;

pub(crate) fn selector_id(vs: &VectorSelector) -> usize {
    std::ptr::from_ref(vs) as usize
}

/// The time an `@` modifier fixes (ms), if any.
pub(crate) fn at_ms(at: Option<&AtModifier>, query: Steps) -> Option<i64> {
    Some(match at? {
        AtModifier::Start => query.start,
        AtModifier::End => query.end,
        AtModifier::At(t) => match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX / 4),
        },
    })
}

pub(crate) fn offset_ms(offset: Option<&Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(d)) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4),
        Some(Offset::Neg(d)) => -i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4),
    }
}

pub(crate) struct Evaluator<'a> {
    pub steps: Steps,
    /// The query's own steps (subqueries evaluate at others): `@ start()`, `@ end()`.
    pub query: Steps,
    pub fetched: &'a Fetched,
}

impl Evaluator<'_> {
    pub(crate) fn n(&self) -> usize {
        self.steps.len()
    }

    pub(crate) fn eval(&self, expr: &Expr) -> Result<Value, PromError> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(vec![n.val; self.n()])),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Unary(u) => match self.eval(&u.expr)? {
                Value::Scalar(v) => Ok(Value::Scalar(v.into_iter().map(|x| -x).collect())),
                Value::Vector(v) => Ok(Value::Vector(merge(
                    v.into_iter()
                        .map(|s| Series {
                            labels: drop_name(&s.labels),
                            values: s.values.into_iter().map(|x| x.map(|x| -x)).collect(),
                        })
                        .collect(),
                )?)),
                _ => Err(PromError::execution(
                    "unary minus applies to scalars and instant vectors only",
                )),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.instant(vs))),
            Expr::MatrixSelector(ms) => {
                let range = duration_ms(ms.range);
                let off = offset_ms(ms.vs.offset.as_ref());
                let maxt = at_ms(ms.vs.at.as_ref(), self.query).unwrap_or(self.steps.end) - off;
                let mint = maxt - range;
                let series = self
                    .raw(&ms.vs)
                    .iter()
                    .filter_map(|s| {
                        let points: Vec<(i64, f64)> = window(&s.points, mint, maxt)
                            .iter()
                            .copied()
                            .filter(|p| !is_stale(p.1))
                            .collect();
                        (!points.is_empty()).then(|| RawSeries {
                            labels: s.labels.clone(),
                            points,
                        })
                    })
                    .collect();
                Ok(Value::Matrix(series))
            }
            Expr::Call(call) => super::functions::call(self, call),
            Expr::Aggregate(agg) => super::aggregate::eval(self, agg),
            Expr::Binary(b) => super::binary::eval(self, b),
            Expr::Subquery(sq) => {
                // At the top of an instant query: the inner points of the window.
                let range = duration_ms(sq.range);
                let maxt = self.steps.end - offset_ms(sq.offset.as_ref());
                let series = self
                    .subquery(sq)?
                    .into_iter()
                    .filter_map(|mut s| {
                        s.points = window(&s.points, maxt - range, maxt).to_vec();
                        (!s.points.is_empty()).then_some(s)
                    })
                    .collect();
                Ok(Value::Matrix(series))
            }
            Expr::Extension(_) => Err(PromError::execution(
                "this expression is not supported by carat's PromQL",
            )),
        }
    }

    /// A subquery's inner expression evaluated at its own steps, as series of points
    /// (promql/engine.go: the steps are multiples of the subquery's step, from the first
    /// one at or after `start - offset - range` to `end - offset`).
    pub(crate) fn subquery(&self, sq: &SubqueryExpr) -> Result<Vec<RawSeries>, PromError> {
        if sq.at.is_some() {
            return Err(PromError::execution(
                "the @ modifier on a subquery is not supported by carat's PromQL",
            ));
        }
        let inner = subquery_steps(self.steps, sq);
        // Every step of the inner expression holds a value per series: a subquery of a
        // long range at a fine step (`x[1000000d:1s]`, 8.6·10^10 steps) must be refused
        // before anything is allocated for it, as Prometheus refuses a query past its
        // sample limit.
        let n = inner.len_unbounded();
        if n > MAX_SUBQUERY_STEPS {
            return Err(PromError::execution(format!(
                "the subquery would be evaluated at {n} steps, more than carat's limit of \
                 {MAX_SUBQUERY_STEPS}; shorten its range or raise its step"
            )));
        }
        let ev = Evaluator {
            steps: inner,
            query: self.query,
            fetched: self.fetched,
        };
        let series = match ev.eval(&sq.expr)? {
            Value::Scalar(v) => vec![Series {
                labels: Vec::new(),
                values: v.into_iter().map(Some).collect(),
            }],
            Value::Vector(v) => v,
            _ => {
                return Err(PromError::bad_data(
                    "a subquery needs a scalar or an instant vector inside",
                ))
            }
        };
        let times: Vec<i64> = inner.times().collect();
        Ok(series
            .into_iter()
            .map(|s| RawSeries {
                labels: s.labels,
                points: times
                    .iter()
                    .zip(s.values)
                    .filter_map(|(&t, v)| v.map(|v| (t, v)))
                    .collect(),
            })
            .collect())
    }

    /// The raw points fetched for `vs` (every selector was fetched before evaluating).
    pub(crate) fn raw(&self, vs: &VectorSelector) -> &[RawSeries] {
        self.fetched
            .get(&selector_id(vs))
            .map_or(&[][..], Vec::as_slice)
    }

    /// An instant selector at every step: the newest point at or before the step (minus
    /// the offset) within the lookback, unless that point is a stale marker.
    fn instant(&self, vs: &VectorSelector) -> Vec<Series> {
        let off = offset_ms(vs.offset.as_ref());
        let fixed = at_ms(vs.at.as_ref(), self.query);
        let mut out = Vec::new();
        for s in self.raw(vs) {
            let mut values = Vec::with_capacity(self.n());
            let mut any = false;
            for ts in self.steps.times() {
                let at = fixed.unwrap_or(ts) - off;
                let idx = s.points.partition_point(|p| p.0 <= at);
                let v = idx
                    .checked_sub(1)
                    .map(|i| s.points[i])
                    .filter(|p| p.0 >= at - LOOKBACK_MS && !is_stale(p.1))
                    .map(|p| p.1);
                any |= v.is_some();
                values.push(v);
            }
            if any {
                out.push(Series {
                    labels: s.labels.clone(),
                    values,
                });
            }
        }
        out
    }

    /// Evaluates an argument that must be a scalar.
    pub(crate) fn scalar(&self, expr: &Expr, what: &str) -> Result<Vec<f64>, PromError> {
        match self.eval(expr)? {
            Value::Scalar(v) => Ok(v),
            _ => Err(PromError::execution(format!("{what} must be a scalar"))),
        }
    }

    pub(crate) fn vector(&self, expr: &Expr, what: &str) -> Result<Vec<Series>, PromError> {
        match self.eval(expr)? {
            Value::Vector(v) => Ok(v),
            _ => Err(PromError::execution(format!(
                "{what} must be an instant vector"
            ))),
        }
    }
}

/// The default subquery step: Prometheus' default `evaluation_interval`, 1 minute.
pub(crate) const SUBQUERY_STEP_MS: i64 = 60_000;

/// The steps a subquery's inner expression is evaluated at, for outer `steps`.
pub(crate) fn subquery_steps(steps: Steps, sq: &SubqueryExpr) -> Steps {
    let step = sq.step.map_or(SUBQUERY_STEP_MS, duration_ms).max(1);
    let off = offset_ms(sq.offset.as_ref());
    let from = steps.start - off - duration_ms(sq.range);
    let mut start = step * from.div_euclid(step);
    if start < from {
        start += step;
    }
    let end = steps.end - off;
    Steps {
        start,
        // No step at all when the range holds none: an empty range of one step
        // past the end yields nothing.
        end: end.max(start - step),
        step,
    }
}

/// The points of `points` (ascending) with `mint <= t <= maxt` (Prometheus 2.42 range
/// selectors include both ends).
pub(crate) fn window(points: &[(i64, f64)], mint: i64, maxt: i64) -> &[(i64, f64)] {
    let a = points.partition_point(|p| p.0 < mint);
    let b = points.partition_point(|p| p.0 <= maxt);
    &points[a..b.max(a)]
}

pub(crate) fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

pub(crate) fn drop_name(labels: &Labels) -> Labels {
    labels
        .iter()
        .filter(|(k, _)| k != "__name__")
        .cloned()
        .collect()
}

pub(crate) fn get<'a>(labels: &'a Labels, name: &str) -> &'a str {
    labels
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// Sets (or, with an empty value, removes) a label, keeping the set sorted.
pub(crate) fn set(labels: &mut Labels, name: &str, value: &str) {
    labels.retain(|(k, _)| k != name);
    if !value.is_empty() {
        let at = labels.partition_point(|(k, _)| k.as_str() < name);
        labels.insert(at, (name.to_string(), value.to_string()));
    }
}

/// Series with equal label sets joined into one; two values at one step are
/// Prometheus' "vector cannot contain metrics with the same labelset".
pub(crate) fn merge(series: Vec<Series>) -> Result<Vec<Series>, PromError> {
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(series.len());
    let mut out: Vec<Series> = Vec::with_capacity(series.len());
    for s in series {
        match index.get(&s.labels) {
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
            Some(&i) => {
                let target = &mut out[i];
                for (slot, v) in target.values.iter_mut().zip(s.values) {
                    if v.is_some() {
                        if slot.is_some() {
                            return Err(PromError::execution(
                                "vector cannot contain metrics with the same labelset",
                            ));
                        }
                        *slot = v;
                    }
                }
            }
        }
    }
    out.retain(|s| s.values.iter().any(Option::is_some));
    Ok(out)
}

/// Builds an output vector step by step: values land in the series of their labels.
pub(crate) struct Builder {
    n: usize,
    index: HashMap<Labels, usize>,
    out: Vec<Series>,
}

impl Builder {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            n,
            index: HashMap::new(),
            out: Vec::new(),
        }
    }

    /// Puts `value` at `step` of the series `labels`; a second value there is an error.
    pub(crate) fn put(
        &mut self,
        labels: &Labels,
        step: usize,
        value: f64,
    ) -> Result<(), PromError> {
        let i = match self.index.get(labels) {
            Some(&i) => i,
            None => {
                self.index.insert(labels.clone(), self.out.len());
                self.out.push(Series {
                    labels: labels.clone(),
                    values: vec![None; self.n],
                });
                self.out.len() - 1
            }
        };
        let slot = &mut self.out[i].values[step];
        if slot.is_some() {
            return Err(PromError::execution(
                "vector cannot contain metrics with the same labelset",
            ));
        }
        *slot = Some(value);
        Ok(())
    }

    pub(crate) fn finish(self) -> Vec<Series> {
        self.out
    }
}
