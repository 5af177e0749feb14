//! The evaluator of parsed targets and the render functions, each as graphite-web's
//! `render/functions.py` (1.1.10) defines it: names, tags, nulls, steps and the
//! `normalize` of series lists with different steps. Functions that read other
//! ranges (`movingAverage`'s preview, `timeShift`) evaluate their first argument again
//! over that range, as graphite-web does.

use std::collections::BTreeMap;

use async_trait::async_trait;
use carat_api::AppError;
use futures::future::BoxFuture;
use futures::FutureExt;

use crate::graphite::attime;
use crate::graphite::series::{py_g, py_max, py_min, py_str, Cf, Series};
use crate::graphite::target::{first_path, Call, Expr, Num, MAX_DEPTH};
use crate::range::param;

/// The time range a (sub)expression is evaluated over.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub start: i64,
    pub end: i64,
    pub now: i64,
    /// The request's `xFilesFactor` (graphite-web's default 0).
    pub xff: f64,
}

/// Where series come from: a path pattern over a range, as graphite series.
#[async_trait]
pub trait Source: Send + Sync {
    /// # Errors
    /// 413 past the series bound; a store failure.
    async fn fetch(&self, pattern: &str, ctx: Ctx) -> Result<Vec<Series>, AppError>;
}

/// What an argument evaluates to.
#[derive(Debug, Clone)]
pub enum Val {
    List(Vec<Series>),
    Num(Num),
    Str(String),
    Bool(bool),
    None,
}

/// The functions carat implements (and so `/functions` lists).
pub const FUNCTIONS: &[&str] = &[
    "alias",
    "aliasByNode",
    "aliasSub",
    "asPercent",
    "averageSeries",
    "avg",
    "consolidateBy",
    "constantLine",
    "derivative",
    "divideSeries",
    "groupByNode",
    "highestAverage",
    "highestCurrent",
    "keepLastValue",
    "limit",
    "maxSeries",
    "minSeries",
    "movingAverage",
    "nonNegativeDerivative",
    "offset",
    "perSecond",
    "scale",
    "sortByName",
    "sum",
    "sumSeries",
    "summarize",
    "timeShift",
    "transformNull",
];

fn bad(func: &str, message: impl std::fmt::Display) -> AppError {
    param("target", format!("{func}: {message}"))
}

/// Evaluates `expr` over `ctx`.
pub fn eval<'a>(
    source: &'a dyn Source,
    expr: &'a Expr,
    ctx: Ctx,
    depth: usize,
) -> BoxFuture<'a, Result<Val, AppError>> {
    async move {
        if depth > MAX_DEPTH {
            return Err(param(
                "target",
                format!("calls nest deeper than {MAX_DEPTH}"),
            ));
        }
        Ok(match expr {
            Expr::Path(p) => Val::List(source.fetch(p, ctx).await?),
            Expr::Num(n) => Val::Num(*n),
            Expr::Str(s) => Val::Str(s.clone()),
            Expr::Bool(b) => Val::Bool(*b),
            Expr::None => Val::None,
            Expr::Call(call) => {
                if !FUNCTIONS.contains(&call.name.as_str()) {
                    return Err(param(
                        "target",
                        format!("unknown function {} at position {}", call.name, call.at),
                    ));
                }
                let mut pos = Vec::with_capacity(call.args.len());
                for a in &call.args {
                    pos.push(eval(source, a, ctx, depth + 1).await?);
                }
                let mut kw = Vec::with_capacity(call.kwargs.len());
                for (k, a) in &call.kwargs {
                    kw.push((k.clone(), eval(source, a, ctx, depth + 1).await?));
                }
                let args = Args {
                    func: &call.name,
                    pos,
                    kw,
                };
                apply(source, call, args, ctx, depth).await?
            }
        })
    }
    .boxed()
}

/// A call's evaluated arguments, read by position or keyword.
struct Args<'a> {
    func: &'a str,
    pos: Vec<Val>,
    kw: Vec<(String, Val)>,
}

impl Args<'_> {
    /// Fails on arguments past `names` or unknown keywords.
    fn check(&self, names: &[&str], variadic: bool) -> Result<(), AppError> {
        if !variadic && self.pos.len() > names.len() {
            return Err(bad(
                self.func,
                format!(
                    "takes at most {} arguments, got {}",
                    names.len(),
                    self.pos.len()
                ),
            ));
        }
        for (k, _) in &self.kw {
            if !names.contains(&k.as_str()) {
                return Err(bad(self.func, format!("unknown keyword argument {k}")));
            }
        }
        Ok(())
    }

    fn take(&mut self, i: usize, name: &str) -> Option<Val> {
        if let Some(j) = self.kw.iter().position(|(k, _)| k == name) {
            return Some(self.kw.remove(j).1);
        }
        self.pos.get_mut(i).map(|v| std::mem::replace(v, Val::None))
    }

    fn series(&mut self, i: usize, name: &str) -> Result<Vec<Series>, AppError> {
        match self.take(i, name) {
            Some(Val::List(l)) => Ok(l),
            Some(_) => Err(bad(self.func, format!("{name} must be a series list"))),
            None => Err(bad(self.func, format!("{name} is required"))),
        }
    }

    fn num(&mut self, i: usize, name: &str) -> Result<Num, AppError> {
        self.opt_num(i, name)?
            .ok_or_else(|| bad(self.func, format!("{name} is required")))
    }

    fn opt_num(&mut self, i: usize, name: &str) -> Result<Option<Num>, AppError> {
        match self.take(i, name) {
            None | Some(Val::None) => Ok(None),
            Some(Val::Num(n)) => Ok(Some(n)),
            Some(_) => Err(bad(self.func, format!("{name} must be a number"))),
        }
    }

    /// A number of a `float` parameter: graphite-web's validation makes `3` a `3.0`,
    /// which names and tags show.
    fn float(&mut self, i: usize, name: &str) -> Result<Num, AppError> {
        Ok(Num::Float(self.num(i, name)?.value()))
    }

    fn int(&mut self, i: usize, name: &str) -> Result<i64, AppError> {
        match self.num(i, name)? {
            Num::Int(n) => Ok(n),
            Num::Float(_) => Err(bad(self.func, format!("{name} must be an integer"))),
        }
    }

    fn string(&mut self, i: usize, name: &str) -> Result<String, AppError> {
        self.opt_string(i, name)?
            .ok_or_else(|| bad(self.func, format!("{name} is required")))
    }

    fn opt_string(&mut self, i: usize, name: &str) -> Result<Option<String>, AppError> {
        match self.take(i, name) {
            None | Some(Val::None) => Ok(None),
            Some(Val::Str(s)) => Ok(Some(s)),
            Some(_) => Err(bad(self.func, format!("{name} must be a string"))),
        }
    }

    fn opt_bool(&mut self, i: usize, name: &str, default: bool) -> Result<bool, AppError> {
        match self.take(i, name) {
            None | Some(Val::None) => Ok(default),
            Some(Val::Bool(b)) => Ok(b),
            // graphite-web takes any truthy value.
            Some(Val::Num(n)) => Ok(n.value() != 0.0),
            Some(_) => Err(bad(self.func, format!("{name} must be true or false"))),
        }
    }

    /// Every positional argument from `i` on as series lists, concatenated.
    fn rest_series(&mut self, i: usize) -> Result<Vec<Vec<Series>>, AppError> {
        let mut out = Vec::new();
        for (k, v) in self.pos.drain(i.min(self.pos.len())..).enumerate() {
            match v {
                Val::List(l) => out.push(l),
                _ => {
                    return Err(bad(
                        self.func,
                        format!("argument {} must be a series list", i + k + 1),
                    ))
                }
            }
        }
        if out.is_empty() {
            return Err(bad(self.func, "needs at least one series list"));
        }
        Ok(out)
    }

    /// Positional node arguments from `i` on: integers (negative from the end) or
    /// tag names.
    fn rest_nodes(&mut self, i: usize) -> Result<Vec<Node>, AppError> {
        let mut out = Vec::new();
        for v in self.pos.drain(i.min(self.pos.len())..) {
            out.push(match v {
                Val::Num(Num::Int(n)) => Node::Index(n),
                Val::Str(s) => Node::Tag(s),
                _ => return Err(bad(self.func, "nodes must be integers or tag names")),
            });
        }
        Ok(out)
    }
}

#[derive(Debug, Clone)]
enum Node {
    Index(i64),
    Tag(String),
}

/// graphite-web's `getNodeOrTag`.
fn node_or_tag(s: &Series, n: &Node, path: Option<&str>) -> String {
    if let Node::Index(i) = n {
        let base = path.unwrap_or(&s.name);
        let base = base.split(';').next().unwrap_or(base);
        let parts: Vec<&str> = base.split('.').collect();
        let len = i64::try_from(parts.len()).unwrap_or(i64::MAX);
        let idx = if *i < 0 { len + i } else { *i };
        if (0..len).contains(&idx) {
            return parts[usize::try_from(idx).unwrap_or(0)].to_string();
        }
        return s.tags.get(&i.to_string()).cloned().unwrap_or_default();
    }
    match n {
        Node::Tag(t) => s.tags.get(t).cloned().unwrap_or_default(),
        Node::Index(_) => String::new(),
    }
}

/// graphite-web's `aggKey`: a function-wrapped name is read through its first path.
fn agg_key(s: &Series, nodes: &[Node]) -> String {
    let path = if s.name.ends_with(')') {
        first_path(&s.name)
    } else {
        None
    };
    nodes
        .iter()
        .map(|n| node_or_tag(s, n, path.as_deref()))
        .collect::<Vec<_>>()
        .join(".")
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn lcm(a: i64, b: i64) -> i64 {
    if a == b {
        return a;
    }
    let (a, b) = if a < b { (b, a) } else { (a, b) };
    // Saturating: steps of no common measure consolidate into one value, not overflow.
    (a / gcd(a, b).max(1)).saturating_mul(b)
}

/// graphite-web's `normalize`: every series consolidated to the least common step;
/// the common start, end and step.
fn normalize(list: &mut [&mut Series]) -> Option<(i64, i64, i64)> {
    if list.is_empty() {
        return None;
    }
    let step = list.iter().map(|s| s.step).reduce(lcm)?;
    for s in list.iter_mut() {
        s.values_per_point = usize::try_from(step / s.step.max(1)).unwrap_or(1).max(1);
    }
    let start = list.iter().map(|s| s.start).min()?;
    let mut end = list.iter().map(|s| s.end).max()?;
    end -= (end - start).rem_euclid(step);
    Some((start, end, step))
}

/// `izip_longest` of the series' (consolidated) values.
fn rows(list: &[&Series]) -> Vec<Vec<Option<f64>>> {
    let cols: Vec<Vec<Option<f64>>> = list.iter().map(|s| s.iter_values()).collect();
    let n = cols.iter().map(Vec::len).max().unwrap_or(0);
    (0..n)
        .map(|i| cols.iter().map(|c| c.get(i).copied().flatten()).collect())
        .collect()
}

/// The unique path expressions of a list, joined (`formatPathExpressions`).
fn path_expressions(list: &[&Series]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for s in list {
        if !seen.contains(&s.path_expression.as_str()) {
            seen.push(&s.path_expression);
        }
    }
    seen.join(",")
}

type AggFn = fn(&[Option<f64>]) -> Option<f64>;

fn non_null(row: &[Option<f64>]) -> Vec<f64> {
    row.iter().filter_map(|v| *v).collect()
}

#[allow(clippy::cast_precision_loss)]
fn agg_avg(row: &[Option<f64>]) -> Option<f64> {
    let v = non_null(row);
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// graphite-web's `getAggFunc` (with its aliases).
fn agg_func(name: &str) -> Option<AggFn> {
    Some(match name {
        "average" | "avg" => agg_avg,
        #[allow(clippy::cast_precision_loss)]
        "avg_zero" => |row| {
            (!row.is_empty())
                .then(|| row.iter().map(|v| v.unwrap_or(0.0)).sum::<f64>() / row.len() as f64)
        },
        "median" => |row| {
            let mut v = non_null(row);
            if v.is_empty() {
                return None;
            }
            v.sort_by(f64::total_cmp);
            let mid = v.len() / 2;
            Some(if v.len().is_multiple_of(2) {
                (v[mid - 1] + v[mid]) / 2.0
            } else {
                v[mid]
            })
        },
        "sum" | "total" => |row| {
            let v = non_null(row);
            (!v.is_empty()).then(|| v.iter().sum())
        },
        "min" => |row| non_null(row).into_iter().reduce(py_min),
        "max" => |row| non_null(row).into_iter().reduce(py_max),
        "diff" => |row| {
            let v = non_null(row);
            let (first, rest) = v.split_first()?;
            Some(rest.iter().fold(*first, |a, b| a + -b))
        },
        #[allow(clippy::cast_precision_loss)]
        "stddev" => |row| {
            let v = non_null(row);
            let avg = agg_avg(row)?;
            let ss: f64 = v.iter().map(|x| (x - avg) * (x - avg)).sum();
            Some((ss / v.len() as f64).sqrt())
        },
        #[allow(clippy::cast_precision_loss)]
        "count" => |row| Some(non_null(row).len() as f64),
        "range" | "rangeOf" => |row| {
            let v = non_null(row);
            let max = v.iter().copied().reduce(py_max)?;
            let min = v.iter().copied().reduce(py_min)?;
            Some(max - min)
        },
        "multiply" => |row| row.iter().try_fold(1.0, |a, v| v.map(|x| a * x)),
        "last" | "current" => |row| row.iter().rev().find_map(|v| *v),
        _ => return None,
    })
}

fn xff_ok(non_null: usize, total: f64, xff: f64) -> bool {
    #[allow(clippy::cast_precision_loss)]
    let ok = non_null > 0 && total > 0.0 && non_null as f64 / total >= xff;
    ok
}

/// graphite-web's `aggregate`: one series of `func` over the rows.
fn aggregate(mut list: Vec<Series>, func: &str, ctx: Ctx) -> Result<Vec<Series>, AppError> {
    let raw = func;
    let func = func.strip_suffix("Series").unwrap_or(func);
    let f = agg_func(func)
        .ok_or_else(|| param("target", format!("unsupported aggregation function: {raw}")))?;
    let mut refs: Vec<&mut Series> = list.iter_mut().collect();
    let Some((start, end, step)) = normalize(&mut refs) else {
        return Ok(Vec::new());
    };
    let refs: Vec<&Series> = list.iter().collect();
    let name = format!("{func}Series({})", path_expressions(&refs));
    let values = rows(&refs)
        .iter()
        .map(|row| {
            let nn = row.iter().filter(|v| v.is_some()).count();
            #[allow(clippy::cast_precision_loss)]
            let ok = xff_ok(nn, row.len() as f64, ctx.xff);
            if ok {
                f(row)
            } else {
                None
            }
        })
        .collect();
    let mut tags: BTreeMap<String, String> = list[0].tags.clone();
    for s in &list {
        tags.retain(|k, v| s.tags.get(k) == Some(v));
    }
    tags.entry("name".into()).or_insert_with(|| name.clone());
    tags.insert("aggregatedBy".into(), func.to_string());
    let mut out = Series::new(&name, start, end, step, values);
    out.tags = tags;
    out.xff = ctx.xff;
    Ok(vec![out])
}

/// `safeDiv` then `safeMul(…, 100.0)`.
fn percent(v: Option<f64>, total: Option<f64>) -> Option<f64> {
    let v = v?;
    let t = total.filter(|&t| t != 0.0)?;
    Some(v / t * 100.0)
}

fn safe_div(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let a = a?;
    let b = b.filter(|&b| b != 0.0)?;
    Some(a / b)
}

/// `_nonNegativeDelta` (graphite-web master: a null value resets, with or without
/// maxValue).
fn non_negative_delta(
    val: Option<f64>,
    prev: Option<f64>,
    max: Option<f64>,
    min: Option<f64>,
) -> (Option<f64>, Option<f64>) {
    let Some(val) = val else {
        return (None, None);
    };
    if max.is_some_and(|m| val > m) || min.is_some_and(|m| val < m) {
        return (None, None);
    }
    let Some(prev) = prev else {
        return (None, Some(val));
    };
    if val >= prev {
        return (Some(val - prev), Some(val));
    }
    if let Some(m) = max {
        return (Some(m + 1.0 + val - prev - min.unwrap_or(0.0)), Some(val));
    }
    if let Some(m) = min {
        return (Some(val - m), Some(val));
    }
    (None, Some(val))
}

/// Python's `round(x, 6)`: the exact binary value rounded to 6 decimals.
fn round6(x: f64) -> f64 {
    format!("{x:.6}").parse().unwrap_or(x)
}

fn interval_secs(func: &str, s: &str) -> Result<i64, AppError> {
    attime::offset_secs(&s.to_lowercase()).map_err(|e| bad(func, e))
}

/// Values written back by position while iterating consolidated values, as
/// graphite-web's `for i, v in enumerate(series): series[i] = f(v)` does.
fn map_in_place(s: &mut Series, f: impl Fn(Option<f64>) -> Option<f64>) {
    let it = s.iter_values();
    for (i, v) in it.into_iter().enumerate() {
        if let Some(slot) = s.values.get_mut(i) {
            *slot = f(v);
        }
    }
}

#[allow(clippy::too_many_lines)]
async fn apply(
    source: &dyn Source,
    call: &Call,
    mut a: Args<'_>,
    ctx: Ctx,
    depth: usize,
) -> Result<Val, AppError> {
    let func = call.name.as_str();
    let list = |v: Vec<Series>| Ok(Val::List(v));
    match func {
        "alias" => {
            a.check(&["seriesList", "newName"], false)?;
            let mut l = a.series(0, "seriesList")?;
            let name = a.string(1, "newName")?;
            for s in &mut l {
                s.name.clone_from(&name);
            }
            list(l)
        }
        "aliasSub" => {
            a.check(&["seriesList", "search", "replace"], false)?;
            let mut l = a.series(0, "seriesList")?;
            let search = a.string(1, "search")?;
            let replace = a.string(2, "replace")?;
            let re = regex::Regex::new(&search)
                .map_err(|_| bad(func, format!("search {search:?} is not a regular expression carat supports (no backreferences or lookaround)")))?;
            let rep = python_replacement(&replace).map_err(|e| bad(func, e))?;
            for s in &mut l {
                s.name = re.replace_all(&s.name, rep.as_str()).into_owned();
            }
            list(l)
        }
        "aliasByNode" => {
            let mut l = a.series(0, "seriesList")?;
            let nodes = a.rest_nodes(1)?;
            a.check(&["seriesList"], true)?;
            for s in &mut l {
                s.name = agg_key(s, &nodes);
            }
            list(l)
        }
        "sumSeries" | "sum" | "averageSeries" | "avg" | "maxSeries" | "minSeries" => {
            a.check(&[], true)?;
            let lists = a.rest_series(0)?;
            let agg = match func {
                "sumSeries" | "sum" => "sum",
                "averageSeries" | "avg" => "average",
                "maxSeries" => "max",
                _ => "min",
            };
            list(aggregate(lists.into_iter().flatten().collect(), agg, ctx)?)
        }
        "scale" => {
            a.check(&["seriesList", "factor"], false)?;
            let mut l = a.series(0, "seriesList")?;
            let factor = a.float(1, "factor")?;
            for s in &mut l {
                s.set_tag("scale", py_str(factor));
                s.name = format!("scale({},{})", s.name, py_g(factor.value()));
                s.path_expression.clone_from(&s.name);
                map_in_place(s, |v| v.map(|x| x * factor.value()));
            }
            list(l)
        }
        "offset" => {
            a.check(&["seriesList", "factor"], false)?;
            let mut l = a.series(0, "seriesList")?;
            let factor = a.float(1, "factor")?;
            for s in &mut l {
                s.set_tag("offset", py_str(factor));
                s.name = format!("offset({},{})", s.name, py_g(factor.value()));
                s.path_expression.clone_from(&s.name);
                let it = s.iter_values();
                for (i, v) in it.into_iter().enumerate() {
                    if let (Some(x), Some(slot)) = (v, s.values.get_mut(i)) {
                        *slot = Some(x + factor.value());
                    }
                }
            }
            list(l)
        }
        "perSecond" | "nonNegativeDerivative" => {
            a.check(&["seriesList", "maxValue", "minValue"], false)?;
            let l = a.series(0, "seriesList")?;
            let max = a.opt_num(1, "maxValue")?.map(Num::value);
            let min = a.opt_num(2, "minValue")?.map(Num::value);
            let per_second = func == "perSecond";
            let mut out = Vec::with_capacity(l.len());
            for mut s in l {
                let mut prev = None;
                #[allow(clippy::cast_precision_loss)]
                let step = s.step as f64;
                let values = s
                    .iter_values()
                    .into_iter()
                    .map(|v| {
                        let (delta, p) = non_negative_delta(v, prev, max, min);
                        prev = p;
                        if per_second {
                            delta.map(|d| round6(d / step))
                        } else {
                            delta
                        }
                    })
                    .collect();
                s.set_tag(func, "1");
                let name = format!("{func}({})", s.name);
                out.push(s.copy_with(name, values));
            }
            list(out)
        }
        "derivative" => {
            a.check(&["seriesList"], false)?;
            let l = a.series(0, "seriesList")?;
            let mut out = Vec::with_capacity(l.len());
            for mut s in l {
                let mut prev: Option<f64> = None;
                let values = s
                    .iter_values()
                    .into_iter()
                    .map(|v| {
                        let d = match (prev, v) {
                            (Some(p), Some(x)) => Some(x - p),
                            _ => None,
                        };
                        prev = v;
                        d
                    })
                    .collect();
                s.set_tag("derivative", "1");
                let name = format!("derivative({})", s.name);
                out.push(s.copy_with(name, values));
            }
            list(out)
        }
        "summarize" => {
            a.check(
                &["seriesList", "intervalString", "func", "alignToFrom"],
                false,
            )?;
            let l = a.series(0, "seriesList")?;
            let interval_string = a.string(1, "intervalString")?;
            let how = a.opt_string(2, "func")?.unwrap_or_else(|| "sum".into());
            let align = a.opt_bool(3, "alignToFrom", false)?;
            let interval = interval_secs(func, &interval_string)?;
            if interval <= 0 {
                return Err(bad(
                    func,
                    format!("interval {interval_string:?} must be positive"),
                ));
            }
            let f = agg_func(&how)
                .ok_or_else(|| bad(func, format!("unsupported aggregation function: {how}")))?;
            let mut out = Vec::with_capacity(l.len());
            for mut s in l {
                let (new_start, mut new_end) = if align {
                    (s.start, s.end)
                } else {
                    (
                        s.start - s.start.rem_euclid(interval),
                        s.end - s.end.rem_euclid(interval) + interval,
                    )
                };
                let (values, aligned_end) = summarize_values(&s, f, interval, new_start, new_end);
                if align {
                    new_end = aligned_end;
                }
                s.set_tag("summarize", interval_string.clone());
                s.set_tag("summarizeFunction", how.clone());
                let name = format!(
                    "summarize({}, \"{interval_string}\", \"{how}\"{})",
                    s.name,
                    if align { ", true" } else { "" }
                );
                let mut n = s.copy_with(name, values);
                n.start = new_start;
                n.end = new_end;
                n.step = interval;
                out.push(n);
            }
            list(out)
        }
        "movingAverage" => {
            a.check(&["seriesList", "windowSize", "xFilesFactor"], false)?;
            let l = a.series(0, "seriesList")?;
            let window = a
                .take(1, "windowSize")
                .ok_or_else(|| bad(func, "windowSize is required"))?;
            let xff = a.opt_num(2, "xFilesFactor")?.map(Num::value);
            if l.is_empty() {
                return list(l);
            }
            let preview = match &window {
                Val::Str(w) => interval_secs(func, w)?.abs(),
                Val::Num(Num::Int(n)) if *n >= 0 => l
                    .iter()
                    .map(|s| s.step)
                    .max()
                    .unwrap_or(1)
                    .saturating_mul(*n),
                _ => {
                    return Err(bad(
                        func,
                        "windowSize must be a whole number of points or an interval string",
                    ))
                }
            };
            let first = call
                .args
                .first()
                .ok_or_else(|| bad(func, "seriesList is required"))?;
            let wider = Ctx {
                start: ctx.start - preview,
                ..ctx
            };
            let Val::List(again) = eval(source, first, wider, depth + 1).await? else {
                return Err(bad(func, "seriesList must be a series list"));
            };
            let mut out = Vec::with_capacity(again.len());
            for mut s in again {
                let (name, points, tag) = match &window {
                    Val::Str(w) => (
                        format!("movingAverage({},\"{w}\")", s.name),
                        preview / s.step.max(1),
                        w.clone(),
                    ),
                    Val::Num(n) => (
                        format!("movingAverage({},{})", s.name, py_str(*n)),
                        match n {
                            Num::Int(i) => *i,
                            Num::Float(_) => 0,
                        },
                        py_str(*n),
                    ),
                    _ => unreachable!("checked above"),
                };
                s.set_tag("movingAverage", tag);
                let effective = xff.unwrap_or(s.xff);
                let w = usize::try_from(points).unwrap_or(0);
                let mut values = Vec::new();
                for i in (w + 1)..=s.values.len() {
                    let window = &s.values[i - w..i];
                    let nn: Vec<f64> = window.iter().filter_map(|v| *v).collect();
                    #[allow(clippy::cast_precision_loss)]
                    let ok = !nn.is_empty() && xff_ok(nn.len(), w as f64, effective);
                    #[allow(clippy::cast_precision_loss)]
                    values.push(ok.then(|| nn.iter().sum::<f64>() / nn.len() as f64));
                }
                let mut n = s.copy_with(name, values);
                n.start = s.start + preview;
                out.push(n);
            }
            list(out)
        }
        "highestCurrent" | "highestAverage" => {
            a.check(&["seriesList", "n"], false)?;
            let mut l = a.series(0, "seriesList")?;
            let n = a.int(1, "n")?;
            let f: AggFn = if func == "highestCurrent" {
                |row| row.iter().rev().find_map(|v| *v)
            } else {
                agg_avg
            };
            let len = l.len();
            let mut keyed: Vec<(f64, Series)> = l
                .drain(..)
                .map(|s| (f(&s.iter_values()).unwrap_or(f64::NEG_INFINITY), s))
                .collect();
            // Python's stable sort with reverse=True.
            keyed.sort_by(|x, y| y.0.partial_cmp(&x.0).unwrap_or(std::cmp::Ordering::Equal));
            list(
                keyed
                    .into_iter()
                    .take(py_slice_len(len, n))
                    .map(|(_, s)| s)
                    .collect(),
            )
        }
        "limit" => {
            a.check(&["seriesList", "n"], false)?;
            let mut l = a.series(0, "seriesList")?;
            let n = a.int(1, "n")?;
            l.truncate(py_slice_len(l.len(), n));
            list(l)
        }
        "sortByName" => {
            a.check(&["seriesList", "natural", "reverse"], false)?;
            let mut l = a.series(0, "seriesList")?;
            let natural = a.opt_bool(1, "natural", false)?;
            let reverse = a.opt_bool(2, "reverse", false)?;
            let key = |s: &Series| {
                if natural {
                    natural_key(&s.name)
                } else {
                    s.name.clone()
                }
            };
            if reverse {
                l.sort_by_key(|s| std::cmp::Reverse(key(s)));
            } else {
                l.sort_by_key(key);
            }
            list(l)
        }
        "transformNull" => {
            a.check(&["seriesList", "default", "referenceSeries"], false)?;
            let mut l = a.series(0, "seriesList")?;
            let default = a
                .opt_num(1, "default")?
                .map_or(Num::Int(0), |n| Num::Float(n.value()));
            let reference = match a.take(2, "referenceSeries") {
                None | Some(Val::None) => None,
                Some(Val::List(r)) => Some(r),
                Some(_) => return Err(bad(func, "referenceSeries must be a series list")),
            };
            let defaults: Option<Vec<Option<f64>>> = reference.as_ref().map(|r| {
                let refs: Vec<&Series> = r.iter().collect();
                rows(&refs)
                    .iter()
                    .map(|row| row.iter().any(Option::is_some).then(|| default.value()))
                    .collect()
            });
            let defaults = defaults.filter(|d| !d.is_empty());
            for s in &mut l {
                s.set_tag("transformNull", py_str(default));
                if reference.is_some() {
                    s.set_tag("referenceSeries", "1");
                    s.name = format!(
                        "transformNull({},{},referenceSeries)",
                        s.name,
                        py_g(default.value())
                    );
                } else {
                    s.name = format!("transformNull({},{})", s.name, py_g(default.value()));
                }
                s.path_expression.clone_from(&s.name);
                let it = s.iter_values();
                s.values = match &defaults {
                    Some(d) => {
                        let n = it.len().max(d.len());
                        (0..n)
                            .map(|i| {
                                it.get(i)
                                    .copied()
                                    .flatten()
                                    .or_else(|| d.get(i).copied().flatten())
                            })
                            .collect()
                    }
                    None => it
                        .into_iter()
                        .map(|v| v.or(Some(default.value())))
                        .collect(),
                };
            }
            list(l)
        }
        "keepLastValue" => {
            a.check(&["seriesList", "limit"], false)?;
            let mut l = a.series(0, "seriesList")?;
            let limit = a.opt_num(1, "limit")?.map_or(f64::INFINITY, Num::value);
            for s in &mut l {
                s.name = format!("keepLastValue({})", s.name);
                s.path_expression.clone_from(&s.name);
                let it = s.iter_values();
                let mut nones = 0_usize;
                let mut last: Option<f64> = None;
                #[allow(clippy::cast_precision_loss)]
                let within = |n: usize| n > 0 && (n as f64) <= limit;
                for (i, v) in it.iter().enumerate() {
                    match v {
                        None => nones += 1,
                        Some(x) => {
                            if within(nones) && last.is_some() {
                                for slot in &mut s.values[i - nones..i] {
                                    *slot = last;
                                }
                            }
                            nones = 0;
                            last = Some(*x);
                        }
                    }
                }
                if within(nones) && last.is_some() {
                    let len = s.values.len();
                    for slot in &mut s.values[len.saturating_sub(nones)..] {
                        *slot = last;
                    }
                }
            }
            list(l)
        }
        "timeShift" => {
            a.check(
                &[
                    "seriesList",
                    "timeShift",
                    "resetEnd",
                    "alignDST",
                    "alignDst",
                ],
                false,
            )?;
            let l = a.series(0, "seriesList")?;
            let mut shift = a.string(1, "timeShift")?;
            let reset_end = a.opt_bool(2, "resetEnd", true)?;
            // alignDST changes nothing in UTC.
            let _ = a.opt_bool(3, "alignDST", false)?;
            let _ = a.opt_bool(3, "alignDst", false)?;
            if shift.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                shift = format!("-{shift}");
            }
            let delta = interval_secs(func, &shift)?;
            let Some(original) = l.first() else {
                return list(Vec::new());
            };
            let (start, end) = (original.start, original.end);
            let first = call
                .args
                .first()
                .ok_or_else(|| bad(func, "seriesList is required"))?;
            let shifted = Ctx {
                start: ctx.start + delta,
                end: ctx.end + delta,
                ..ctx
            };
            let Val::List(again) = eval(source, first, shifted, depth + 1).await? else {
                return Err(bad(func, "seriesList must be a series list"));
            };
            let mut out = Vec::with_capacity(again.len());
            for mut s in again {
                s.set_tag("timeShift", shift.clone());
                s.name = format!("timeShift({}, \"{shift}\")", s.name);
                s.end = if reset_end {
                    end
                } else {
                    s.end - s.start + start
                };
                s.start = start;
                out.push(s);
            }
            list(out)
        }
        "constantLine" => {
            a.check(&["value"], false)?;
            let value = a.float(0, "value")?;
            let step = ((ctx.end - ctx.start) / 2).max(1);
            let v = Some(value.value());
            let name = py_str(value);
            let mut s = Series::new(&name, ctx.start, ctx.end, step, vec![v, v, v]);
            s.path_expression = format!("constantLine({name})");
            s.xff = ctx.xff;
            list(vec![s])
        }
        "asPercent" => {
            let mut l = a.series(0, "seriesList")?;
            let total = a.take(1, "total");
            let nodes = a.rest_nodes(2)?;
            a.check(&["seriesList", "total"], true)?;
            {
                let mut refs: Vec<&mut Series> = l.iter_mut().collect();
                if normalize(&mut refs).is_none() {
                    return list(Vec::new());
                }
            }
            as_percent(func, l, total, &nodes, ctx).map(Val::List)
        }
        "divideSeries" => {
            a.check(&["dividendSeriesList", "divisorSeries"], false)?;
            let mut l = a.series(0, "dividendSeriesList")?;
            let mut divisor = a.series(1, "divisorSeries")?;
            if divisor.is_empty() {
                for s in &mut l {
                    s.name = format!("divideSeries({},MISSING)", s.name);
                    s.path_expression.clone_from(&s.name);
                    for v in &mut s.values {
                        *v = None;
                    }
                }
                return list(l);
            }
            if divisor.len() > 1 {
                return Err(bad(
                    func,
                    format!(
                        "divideSeries second argument must reference exactly 1 series (got {})",
                        divisor.len()
                    ),
                ));
            }
            let mut d = divisor.remove(0);
            let mut out = Vec::with_capacity(l.len());
            for mut s in l {
                let name = format!("divideSeries({},{})", s.name, d.name);
                let Some((start, end, step)) = normalize(&mut [&mut s, &mut d]) else {
                    continue;
                };
                let values = rows(&[&s, &d])
                    .into_iter()
                    .map(|r| safe_div(r[0], r[1]))
                    .collect();
                let mut q = Series::new(&name, start, end, step, values);
                q.xff = ctx.xff;
                out.push(q);
            }
            list(out)
        }
        "groupByNode" => {
            a.check(&["seriesList", "nodeNum", "callback"], false)?;
            let l = a.series(0, "seriesList")?;
            let node = match a.take(1, "nodeNum") {
                Some(Val::Num(Num::Int(n))) => Node::Index(n),
                Some(Val::Str(s)) => Node::Tag(s),
                _ => return Err(bad(func, "nodeNum must be an integer or a tag name")),
            };
            let callback = a
                .opt_string(2, "callback")?
                .unwrap_or_else(|| "average".into());
            let agg = match callback.as_str() {
                "sumSeries" | "sum" => "sum".to_string(),
                "averageSeries" | "avg" => "average".to_string(),
                "maxSeries" => "max".to_string(),
                "minSeries" => "min".to_string(),
                other => other.to_string(),
            };
            let mut keys: Vec<String> = Vec::new();
            let mut groups: BTreeMap<String, Vec<Series>> = BTreeMap::new();
            for s in l {
                let key = agg_key(&s, std::slice::from_ref(&node));
                if !groups.contains_key(&key) {
                    keys.push(key.clone());
                }
                groups.entry(key).or_default().push(s);
            }
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                let members = groups.remove(&key).unwrap_or_default();
                if let Some(mut s) = aggregate(members, &agg, ctx)?.into_iter().next() {
                    s.name = key;
                    out.push(s);
                }
            }
            list(out)
        }
        "consolidateBy" => {
            a.check(&["seriesList", "consolidationFunc"], false)?;
            let mut l = a.series(0, "seriesList")?;
            let name = a.string(1, "consolidationFunc")?;
            let cf = Cf::parse(&name).ok_or_else(|| {
                bad(
                    func,
                    format!("invalid consolidation function {name:?} (sum, average, avg, avg_zero, min, max, first, last)"),
                )
            })?;
            for s in &mut l {
                s.cf = cf;
                s.set_tag("consolidateBy", name.clone());
                s.name = format!("consolidateBy({},\"{name}\")", s.name);
                s.path_expression.clone_from(&s.name);
            }
            list(l)
        }
        other => Err(param("target", format!("unknown function {other}"))),
    }
}

/// How many items Python's `list[:n]` keeps (a negative `n` counts from the end).
fn py_slice_len(len: usize, n: i64) -> usize {
    let l = i64::try_from(len).unwrap_or(i64::MAX);
    let keep = if n < 0 { (l + n).max(0) } else { n.min(l) };
    usize::try_from(keep).unwrap_or(0)
}

/// `_summarizeValues`, literally.
fn summarize_values(
    s: &Series,
    f: AggFn,
    interval: i64,
    new_start: i64,
    new_end: i64,
) -> (Vec<Option<f64>>, i64) {
    let step = s.step.max(1);
    let timestamps: Vec<i64> = (s.start..s.end)
        .step_by(usize::try_from(step).unwrap_or(1))
        .collect();
    let data = s.iter_values();
    #[allow(clippy::cast_precision_loss)]
    let interval_points = interval as f64 / step as f64;
    let n = timestamps.len().min(data.len());
    let mut i = 0;
    let mut out = Vec::new();
    let mut t = new_start;
    while t < new_end {
        let mut first = i;
        let mut nn = 0;
        while i < n && timestamps[i] < t + interval {
            if timestamps[i] <= t {
                first = i;
            }
            if timestamps[i] >= t && data[i].is_some() {
                nn += 1;
            }
            i += 1;
        }
        out.push(if xff_ok(nn, interval_points, s.xff) {
            f(&data[first..i])
        } else {
            None
        });
        t += interval;
    }
    (out, t)
}

/// `sortByName(natural=true)`'s key: numbers zero-padded to 10 digits.
fn natural_key(name: &str) -> String {
    let mut out = String::new();
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if !digits.is_empty() {
            let trimmed = digits.trim_start_matches('0');
            let width = 10;
            out.push_str(&format!(
                "{:0>width$}",
                if trimmed.is_empty() { "0" } else { trimmed }
            ));
            digits.clear();
        }
    };
    for c in name.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

/// Python `re.sub` replacement syntax (`\1`, `\g<1>`, `\g<name>`, `\\`, `\n`) as
/// the `regex` crate's (`${1}`, `$$`).
fn python_replacement(rep: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = rep.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.next() {
                Some(d) if d.is_ascii_digit() => {
                    let mut n = d.to_string();
                    if let Some(&e) = chars.peek() {
                        if e.is_ascii_digit() {
                            n.push(e);
                            chars.next();
                        }
                    }
                    out.push_str(&format!("${{{n}}}"));
                }
                Some('g') => {
                    if chars.next() != Some('<') {
                        return Err("missing < after \\g in the replacement".into());
                    }
                    let name: String = chars.by_ref().take_while(|&c| c != '>').collect();
                    if name.is_empty() {
                        return Err("empty group name in the replacement".into());
                    }
                    out.push_str(&format!("${{{name}}}"));
                }
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(other) if other.is_ascii_alphabetic() => {
                    return Err(format!("bad escape \\{other} in the replacement"));
                }
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return Err("the replacement ends in a backslash".into()),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

fn as_percent(
    func: &str,
    mut l: Vec<Series>,
    total: Option<Val>,
    nodes: &[Node],
    ctx: Ctx,
) -> Result<Vec<Series>, AppError> {
    let mk = |name: String, start, end, step, values| {
        let mut s = Series::new(&name, start, end, step, values);
        s.xff = ctx.xff;
        s
    };
    let sum_of = |members: &mut [Series]| -> Series {
        let refs0: Vec<&Series> = members.iter().collect();
        let name = format!("sumSeries({})", path_expressions(&refs0));
        let mut refs: Vec<&mut Series> = members.iter_mut().collect();
        let (start, end, step) = normalize(&mut refs).unwrap_or((0, 0, 1));
        let refs: Vec<&Series> = members.iter().collect();
        let values = rows(&refs)
            .iter()
            .map(|r| {
                let v = non_null(r);
                (!v.is_empty()).then(|| v.iter().sum())
            })
            .collect();
        mk(name, start, end, step, values)
    };
    if !nodes.is_empty() {
        let mut keys: Vec<String> = Vec::new();
        let mut groups: BTreeMap<String, Vec<Series>> = BTreeMap::new();
        for s in l {
            let k = agg_key(&s, nodes);
            if !groups.contains_key(&k) {
                keys.push(k.clone());
            }
            groups.entry(k).or_default().push(s);
        }
        let mut totals: BTreeMap<String, Series> = BTreeMap::new();
        match total {
            None | Some(Val::None) => {
                for k in &keys {
                    let g = groups.get_mut(k).expect("every key has a group");
                    let t = if g.len() == 1 {
                        g[0].clone()
                    } else {
                        sum_of(g)
                    };
                    totals.insert(k.clone(), t);
                }
            }
            Some(Val::List(t)) => {
                let mut tg: BTreeMap<String, Vec<Series>> = BTreeMap::new();
                for s in t {
                    let k = agg_key(&s, nodes);
                    if !keys.contains(&k) {
                        keys.push(k.clone());
                    }
                    tg.entry(k).or_default().push(s);
                }
                for (k, mut g) in tg {
                    let t = if g.len() == 1 {
                        g.remove(0)
                    } else {
                        sum_of(&mut g)
                    };
                    totals.insert(k, t);
                }
            }
            Some(_) => return Err(bad(func, "total must be None or a seriesList")),
        }
        let mut out = Vec::new();
        for k in keys {
            let Some(members) = groups.remove(&k) else {
                let t = &totals[&k];
                let name = format!("asPercent(MISSING,{})", t.name);
                out.push(mk(
                    name,
                    t.start,
                    t.end,
                    t.step,
                    vec![None; t.iter_values().len()],
                ));
                continue;
            };
            for mut s1 in members {
                match totals.get_mut(&k) {
                    None => {
                        let name = format!("asPercent({},MISSING)", s1.name);
                        let n = s1.iter_values().len();
                        out.push(mk(name, s1.start, s1.end, s1.step, vec![None; n]));
                    }
                    Some(t) => {
                        let name = format!("asPercent({},{})", s1.name, t.name);
                        let (start, end, step) = normalize(&mut [&mut s1, t]).unwrap_or((0, 0, 1));
                        let values = rows(&[&s1, t])
                            .into_iter()
                            .map(|r| percent(r[0], r[1]))
                            .collect();
                        out.push(mk(name, start, end, step, values));
                    }
                }
            }
        }
        return Ok(out);
    }
    let (total_values, total_text, matched): (Vec<Option<f64>>, String, Option<Vec<Series>>) =
        match total {
            None | Some(Val::None) => {
                let refs: Vec<&Series> = l.iter().collect();
                let values = rows(&refs)
                    .iter()
                    .map(|r| {
                        let v = non_null(r);
                        (!v.is_empty()).then(|| v.iter().sum())
                    })
                    .collect();
                (
                    values,
                    format!("sumSeries({})", path_expressions(&refs)),
                    None,
                )
            }
            Some(Val::List(mut t)) => {
                if t.len() != 1 && t.len() != l.len() {
                    return Err(bad(func, "asPercent second argument must be missing, a single digit, reference exactly 1 series or reference the same number of series as the first argument"));
                }
                if t.len() == 1 && l.len() != 1 {
                    let mut refs: Vec<&mut Series> = l.iter_mut().chain(t.iter_mut()).collect();
                    normalize(&mut refs);
                    (t[0].iter_values(), t[0].name.clone(), None)
                } else {
                    if t.len() == 1 {
                        let mut refs: Vec<&mut Series> = l.iter_mut().chain(t.iter_mut()).collect();
                        normalize(&mut refs);
                    }
                    (Vec::new(), String::new(), Some(t))
                }
            }
            Some(Val::Num(n)) => {
                let len = l.first().map_or(0, |s| s.values.len());
                (vec![Some(n.value()); len], py_str(n), None)
            }
            Some(_) => return Err(bad(func, "total must be a number or a series list")),
        };
    let mut out = Vec::new();
    if let Some(mut t) = matched {
        l.sort_by(|x, y| x.name.cmp(&y.name));
        t.sort_by(|x, y| x.name.cmp(&y.name));
        for (mut s1, mut s2) in l.into_iter().zip(t) {
            let name = format!("asPercent({},{})", s1.name, s2.name);
            let (start, end, step) = normalize(&mut [&mut s1, &mut s2]).unwrap_or((0, 0, 1));
            let values = rows(&[&s1, &s2])
                .into_iter()
                .map(|r| percent(r[0], r[1]))
                .collect();
            out.push(mk(name, start, end, step, values));
        }
        return Ok(out);
    }
    for s in l {
        let it = s.iter_values();
        let n = it.len().max(total_values.len());
        let values = (0..n)
            .map(|i| {
                percent(
                    it.get(i).copied().flatten(),
                    total_values.get(i).copied().flatten(),
                )
            })
            .collect();
        let text = if total_text.is_empty() {
            s.path_expression.clone()
        } else {
            total_text.clone()
        };
        let name = format!("asPercent({},{text})", s.name);
        out.push(mk(name, s.start, s.end, s.step, values));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_replacements() {
        assert_eq!(python_replacement(r"\1 A").unwrap(), "${1} A");
        assert_eq!(python_replacement(r"\g<n>-$x").unwrap(), "${n}-$$x");
        assert!(python_replacement(r"\q").is_err());
        let re = regex::Regex::new("(^.*$)").unwrap();
        let rep = python_replacement(r"\1 A").unwrap();
        assert_eq!(
            re.replace_all("sumSeries(a.*)", rep.as_str()),
            "sumSeries(a.*) A"
        );
    }

    #[test]
    fn natural_keys_pad_numbers() {
        assert_eq!(natural_key("a2b10"), "a0000000002b0000000010");
        assert!(natural_key("x9") < natural_key("x10"));
    }

    #[test]
    fn deltas_follow_graphite() {
        assert_eq!(
            non_negative_delta(Some(5.0), Some(3.0), None, None),
            (Some(2.0), Some(5.0))
        );
        assert_eq!(
            non_negative_delta(Some(1.0), Some(3.0), None, None),
            (None, Some(1.0))
        );
        assert_eq!(
            non_negative_delta(Some(1.0), Some(3.0), Some(9.0), None),
            (Some(8.0), Some(1.0))
        );
        assert_eq!(
            non_negative_delta(None, Some(3.0), Some(9.0), None),
            (None, None)
        );
    }
}
