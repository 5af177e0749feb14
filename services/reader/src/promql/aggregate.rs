//! Aggregations (`sum`, `avg`, `min`, `max`, `count`, `group`, `stddev`, `stdvar`,
//! `quantile`, `topk`, `bottomk`) with `by`/`without`, as promql/engine.go `aggregation`
//! computes them, step by step.

use std::collections::HashMap;

use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::api::PromError;
use super::eval::{Builder, Evaluator, Labels, Value};
use super::functions::quantile;

pub(crate) fn eval(ev: &Evaluator<'_>, agg: &AggregateExpr) -> Result<Value, PromError> {
    let op = agg.op.to_string();
    let op = op.as_str();
    if !matches!(
        op,
        "sum"
            | "avg"
            | "min"
            | "max"
            | "count"
            | "group"
            | "stddev"
            | "stdvar"
            | "quantile"
            | "topk"
            | "bottomk"
    ) {
        return Err(PromError::execution(format!(
            "aggregation \"{op}\" is not supported by carat's PromQL (docs/prometheus.md)"
        )));
    }
    let param = match (&agg.param, op) {
        (Some(p), "quantile" | "topk" | "bottomk") => {
            Some(ev.scalar(p, &format!("{op}'s parameter"))?)
        }
        _ => None,
    };
    let input = ev.vector(&agg.expr, op)?;
    let n = ev.n();

    // Groups in order of first appearance; the key is the output label set.
    let mut groups: Vec<(Labels, Vec<usize>)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for (i, s) in input.iter().enumerate() {
        let key = grouping(&s.labels, agg.modifier.as_ref());
        let g = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(i);
    }

    let mut out = Builder::new(n);
    for (labels, members) in &groups {
        for step in 0..n {
            let present: Vec<(usize, f64)> = members
                .iter()
                .filter_map(|&i| input[i].values[step].map(|v| (i, v)))
                .collect();
            if present.is_empty() {
                continue;
            }
            match op {
                "topk" | "bottomk" => {
                    let k = param.as_ref().map_or(f64::NAN, |p| p[step]);
                    // Prometheus' convertibleToInt64 (NaN fails it too).
                    if k.is_nan() || k.abs() >= 9.2e18 {
                        return Err(PromError::execution(format!(
                            "Scalar value {k} overflows int64"
                        )));
                    }
                    let k = k as i64;
                    if k < 1 {
                        continue;
                    }
                    for i in select_k(
                        &present,
                        usize::try_from(k).unwrap_or(usize::MAX),
                        op == "topk",
                    ) {
                        out.put(
                            &input[i].labels,
                            step,
                            input[i].values[step].unwrap_or(f64::NAN),
                        )?;
                    }
                }
                _ => {
                    let q = param.as_ref().map_or(f64::NAN, |p| p[step]);
                    out.put(labels, step, fold(op, &present, q))?;
                }
            }
        }
    }
    Ok(Value::Vector(out.finish()))
}

/// The output labels of a series' group: `by` keeps only the listed labels, `without`
/// drops them and the name, no modifier leaves nothing.
fn grouping(labels: &Labels, modifier: Option<&LabelModifier>) -> Labels {
    match modifier {
        None => Vec::new(),
        Some(LabelModifier::Include(by)) => labels
            .iter()
            .filter(|(k, _)| by.labels.iter().any(|b| b == k))
            .cloned()
            .collect(),
        Some(LabelModifier::Exclude(without)) => labels
            .iter()
            .filter(|(k, _)| k != "__name__" && !without.labels.iter().any(|b| b == k))
            .cloned()
            .collect(),
    }
}

fn fold(op: &str, present: &[(usize, f64)], q: f64) -> f64 {
    let first = present[0].1;
    let rest = present[1..].iter().map(|p| p.1);
    match op {
        "sum" => rest.fold(first, |a, v| a + v),
        "avg" => {
            let mut mean = first;
            let mut count = 1.0_f64;
            for v in rest {
                count += 1.0;
                if mean.is_infinite() {
                    if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                        continue;
                    }
                    if !v.is_infinite() && !v.is_nan() {
                        continue;
                    }
                }
                mean += v / count - mean / count;
            }
            mean
        }
        "max" => rest.fold(first, |m, v| if m < v || m.is_nan() { v } else { m }),
        "min" => rest.fold(first, |m, v| if m > v || m.is_nan() { v } else { m }),
        "count" => present.len() as f64,
        "group" => 1.0,
        "stddev" | "stdvar" => {
            let (mut count, mut mean, mut value) = (1.0_f64, first, 0.0_f64);
            for v in rest {
                count += 1.0;
                let delta = v - mean;
                mean += delta / count;
                value += delta * (v - mean);
            }
            if op == "stddev" {
                (value / count).sqrt()
            } else {
                value / count
            }
        }
        "quantile" => {
            let mut vals: Vec<f64> = present.iter().map(|p| p.1).collect();
            quantile(q, &mut vals)
        }
        _ => f64::NAN,
    }
}

/// The `k` largest (`top`) or smallest values' series; NaN counts as the least
/// wanted, as in Prometheus' heaps.
fn select_k(present: &[(usize, f64)], k: usize, top: bool) -> Vec<usize> {
    let mut v = present.to_vec();
    v.sort_by(|a, b| {
        let ord = match (a.1.is_nan(), b.1.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ if top => b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal),
            _ => a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal),
        };
        ord.then(a.0.cmp(&b.0))
    });
    v.into_iter().take(k).map(|p| p.0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_and_bottom_put_nan_last() {
        let p = [(0, 1.0), (1, f64::NAN), (2, 3.0), (3, 2.0)];
        assert_eq!(select_k(&p, 2, true), vec![2, 3]);
        assert_eq!(select_k(&p, 2, false), vec![0, 3]);
        assert_eq!(select_k(&p, 9, false), vec![0, 3, 2, 1]);
    }

    #[test]
    fn folds_follow_prometheus() {
        let p = [
            (0, 2.0),
            (1, 4.0),
            (2, 4.0),
            (3, 4.0),
            (4, 5.0),
            (5, 5.0),
            (6, 7.0),
            (7, 9.0),
        ];
        assert_eq!(fold("stddev", &p, 0.0), 2.0);
        assert_eq!(fold("avg", &p, 0.0), 5.0);
        assert_eq!(fold("max", &[(0, f64::NAN), (1, 1.0)], 0.0), 1.0);
    }
}
