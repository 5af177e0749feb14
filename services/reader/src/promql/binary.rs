//! Binary operators, as promql/engine.go has them: scalar ∘ scalar, vector ∘ scalar
//! (comparisons filter and keep the vector's value), vector ∘ vector with one-to-one,
//! `group_left`/`group_right` matching on `on`/`ignoring` signatures, and the set
//! operators `and`, `or`, `unless`. Matching is done per step, so that series which
//! never meet at one time never conflict.

use std::collections::HashMap;

use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB,
};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::api::PromError;
use super::eval::{drop_name, get, set, Builder, Evaluator, Labels, Series, Value};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Mod,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl Op {
    fn of(id: u16) -> Option<Self> {
        Some(match id {
            T_ADD => Self::Add,
            T_SUB => Self::Sub,
            T_MUL => Self::Mul,
            T_DIV => Self::Div,
            T_POW => Self::Pow,
            T_MOD => Self::Mod,
            T_ATAN2 => Self::Atan2,
            T_EQLC => Self::Eq,
            T_NEQ => Self::Ne,
            T_GTR => Self::Gt,
            T_LSS => Self::Lt,
            T_GTE => Self::Ge,
            T_LTE => Self::Le,
            T_LAND => Self::And,
            T_LOR => Self::Or,
            T_LUNLESS => Self::Unless,
            _ => return None,
        })
    }

    fn is_comparison(self) -> bool {
        matches!(
            self,
            Self::Eq | Self::Ne | Self::Gt | Self::Lt | Self::Ge | Self::Le
        )
    }

    fn drops_name(self) -> bool {
        matches!(
            self,
            Self::Add | Self::Sub | Self::Mul | Self::Div | Self::Pow | Self::Mod
        )
    }

    /// `vectorElemBinop`: the value and whether a comparison keeps it.
    fn apply(self, l: f64, r: f64) -> (f64, bool) {
        match self {
            Self::Add => (l + r, true),
            Self::Sub => (l - r, true),
            Self::Mul => (l * r, true),
            Self::Div => (l / r, true),
            // C99 pow (Rust's powf) has Go's math.Pow special cases.
            Self::Pow => (l.powf(r), true),
            Self::Mod => (l % r, true),
            Self::Atan2 => (l.atan2(r), true),
            Self::Eq => (l, l == r),
            Self::Ne => (l, l != r),
            Self::Gt => (l, l > r),
            Self::Lt => (l, l < r),
            Self::Ge => (l, l >= r),
            Self::Le => (l, l <= r),
            Self::And | Self::Or | Self::Unless => (l, true),
        }
    }
}

pub(crate) fn eval(ev: &Evaluator<'_>, b: &BinaryExpr) -> Result<Value, PromError> {
    let op = Op::of(b.op.id())
        .ok_or_else(|| PromError::execution(format!("operator \"{}\" is not supported", b.op)))?;
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let lhs = ev.eval(&b.lhs)?;
    let rhs = ev.eval(&b.rhs)?;
    match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => Ok(Value::Scalar(
            l.iter()
                .zip(&r)
                .map(|(&l, &r)| {
                    let (v, keep) = op.apply(l, r);
                    if op.is_comparison() {
                        f64::from(u8::from(keep))
                    } else {
                        v
                    }
                })
                .collect(),
        )),
        (Value::Vector(v), Value::Scalar(s)) => vector_scalar(op, v, &s, false, return_bool),
        (Value::Scalar(s), Value::Vector(v)) => vector_scalar(op, v, &s, true, return_bool),
        (Value::Vector(l), Value::Vector(r)) => {
            let (on, names) = match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                Some(LabelModifier::Include(ls)) => (true, ls.labels.clone()),
                Some(LabelModifier::Exclude(ls)) => (false, ls.labels.clone()),
                None => (false, Vec::new()),
            };
            let card = b
                .modifier
                .as_ref()
                .map_or(VectorMatchCardinality::OneToOne, |m| m.card.clone());
            let m = Matching { on, names };
            match op {
                Op::And | Op::Or | Op::Unless => set_op(ev.n(), op, &l, &r, &m),
                _ => vector_vector(ev.n(), op, &l, &r, &m, &card, return_bool),
            }
        }
        _ => Err(PromError::execution(
            "binary operators apply to scalars and instant vectors only",
        )),
    }
}

fn vector_scalar(
    op: Op,
    v: Vec<Series>,
    s: &[f64],
    scalar_on_left: bool,
    return_bool: bool,
) -> Result<Value, PromError> {
    if matches!(op, Op::And | Op::Or | Op::Unless) {
        return Err(PromError::bad_data(
            "set operators are not allowed between a scalar and a vector",
        ));
    }
    let out = v
        .into_iter()
        .map(|series| {
            let labels = if op.drops_name() || return_bool {
                drop_name(&series.labels)
            } else {
                series.labels
            };
            let values = series
                .values
                .iter()
                .zip(s)
                .map(|(x, &sv)| {
                    let x = (*x)?;
                    let (l, r) = if scalar_on_left { (sv, x) } else { (x, sv) };
                    let (mut value, keep) = op.apply(l, r);
                    // A comparison keeps the vector's value even when it is on the right.
                    if op.is_comparison() && scalar_on_left {
                        value = x;
                    }
                    if return_bool {
                        Some(f64::from(u8::from(keep)))
                    } else {
                        keep.then_some(value)
                    }
                })
                .collect();
            Series { labels, values }
        })
        .collect();
    Ok(Value::Vector(super::eval::merge(out)?))
}

struct Matching {
    on: bool,
    names: Vec<String>,
}

impl Matching {
    /// `signatureFunc`: the labels `on` lists, or all but the `ignoring` ones and the name.
    fn signature(&self, labels: &Labels) -> Labels {
        labels
            .iter()
            .filter(|(k, _)| {
                let listed = self.names.iter().any(|n| n == k);
                if self.on {
                    listed
                } else {
                    !listed && k != "__name__"
                }
            })
            .cloned()
            .collect()
    }
}

fn set_op(n: usize, op: Op, l: &[Series], r: &[Series], m: &Matching) -> Result<Value, PromError> {
    let lsig: Vec<Labels> = l.iter().map(|s| m.signature(&s.labels)).collect();
    let rsig: Vec<Labels> = r.iter().map(|s| m.signature(&s.labels)).collect();
    let mut out = Builder::new(n);
    for step in 0..n {
        let rset: std::collections::HashSet<&Labels> = r
            .iter()
            .zip(&rsig)
            .filter(|(s, _)| s.values[step].is_some())
            .map(|(_, sig)| sig)
            .collect();
        let mut lset = std::collections::HashSet::new();
        for (s, sig) in l.iter().zip(&lsig) {
            let Some(v) = s.values[step] else { continue };
            let matched = rset.contains(sig);
            let keep = match op {
                Op::And => matched,
                Op::Unless => !matched,
                _ => true,
            };
            if keep {
                out.put(&s.labels, step, v)?;
            }
            lset.insert(sig);
        }
        if op == Op::Or {
            for (s, sig) in r.iter().zip(&rsig) {
                if let Some(v) = s.values[step] {
                    if !lset.contains(sig) {
                        out.put(&s.labels, step, v)?;
                    }
                }
            }
        }
    }
    Ok(Value::Vector(out.finish()))
}

fn vector_vector(
    n: usize,
    op: Op,
    l: &[Series],
    r: &[Series],
    m: &Matching,
    card: &VectorMatchCardinality,
    return_bool: bool,
) -> Result<Value, PromError> {
    // group_right: the right is the "many" side; swap, and swap back for the values.
    let (many, one, swapped, include) = match card {
        VectorMatchCardinality::OneToMany(ls) => (r, l, true, Some(&ls.labels)),
        VectorMatchCardinality::ManyToOne(ls) => (l, r, false, Some(&ls.labels)),
        _ => (l, r, false, None),
    };
    let one_to_one = include.is_none();
    let msig: Vec<Labels> = many.iter().map(|s| m.signature(&s.labels)).collect();
    let osig: Vec<Labels> = one.iter().map(|s| m.signature(&s.labels)).collect();
    let mut metrics: HashMap<(usize, usize), Labels> = HashMap::new();
    let mut out = Builder::new(n);
    for step in 0..n {
        let mut ones: HashMap<&Labels, usize> = HashMap::new();
        for (j, s) in one.iter().enumerate() {
            if s.values[step].is_none() {
                continue;
            }
            if ones.insert(&osig[j], j).is_some() {
                let side = if swapped { "left" } else { "right" };
                return Err(PromError::execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation; many-to-many matching not allowed: matching labels must be unique on one side",
                    show(&osig[j])
                )));
            }
        }
        let mut matched: HashMap<&Labels, Vec<Labels>> = HashMap::new();
        for (i, s) in many.iter().enumerate() {
            let Some(mv) = s.values[step] else { continue };
            let Some(&j) = ones.get(&msig[i]) else {
                continue;
            };
            let ov = one[j].values[step].unwrap_or(f64::NAN);
            let (vl, vr) = if swapped { (ov, mv) } else { (mv, ov) };
            let (mut value, keep) = op.apply(vl, vr);
            if return_bool {
                value = f64::from(u8::from(keep));
            } else if !keep {
                continue;
            }
            let metric = metrics
                .entry((i, j))
                .or_insert_with(|| {
                    result_metric(&s.labels, &one[j].labels, op, m, include, return_bool)
                })
                .clone();
            let seen = matched.entry(&msig[i]).or_default();
            if one_to_one {
                if !seen.is_empty() {
                    return Err(PromError::execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                    ));
                }
            } else if seen.contains(&metric) {
                return Err(PromError::execution(
                    "multiple matches for labels: grouping labels must ensure unique matches",
                ));
            }
            out.put(&metric, step, value)?;
            seen.push(metric);
        }
    }
    Ok(Value::Vector(out.finish()))
}

/// `resultMetric`: the "many" side's labels, the name dropped for arithmetic, cut to
/// the matching labels for one-to-one, plus the `group_x` labels from the "one" side.
fn result_metric(
    many: &Labels,
    one: &Labels,
    op: Op,
    m: &Matching,
    include: Option<&Vec<String>>,
    return_bool: bool,
) -> Labels {
    let mut out = if op.drops_name() || return_bool {
        drop_name(many)
    } else {
        many.clone()
    };
    match include {
        None => out.retain(|(k, _)| {
            let listed = m.names.iter().any(|n| n == k);
            if m.on {
                listed
            } else {
                !listed
            }
        }),
        Some(names) => {
            for name in names {
                set(&mut out, name, get(one, name));
            }
        }
    }
    out
}

fn show(labels: &Labels) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}
