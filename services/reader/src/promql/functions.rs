//! PromQL functions, as Prometheus 2.42's promql/functions.go computes them. A function
//! carat does not have is a 422 naming it.

use std::collections::HashMap;

use promql_parser::parser::{Call, Expr};

use super::api::PromError;
use super::eval::{
    at_ms, drop_name, duration_ms, get, merge, offset_ms, set, window, Builder, Evaluator, Labels,
    RawSeries, Series, Value,
};
use super::is_stale;

pub(crate) fn call(ev: &Evaluator<'_>, call: &Call) -> Result<Value, PromError> {
    let name = call.func.name;
    let args: Vec<&Expr> = call.args.args.iter().map(AsRef::as_ref).collect();
    match name {
        "rate" | "increase" | "delta" | "irate" | "idelta" | "avg_over_time" | "sum_over_time"
        | "min_over_time" | "max_over_time" | "count_over_time" | "last_over_time"
        | "stddev_over_time" | "stdvar_over_time" | "present_over_time" | "changes" | "resets" => {
            range_function(ev, name, args.first().copied(), None)
        }
        "quantile_over_time" => {
            let q = ev.scalar(arg(&args, 0, name)?, "quantile_over_time's first argument")?;
            range_function(ev, name, args.get(1).copied(), Some(&q))
        }
        "abs" | "ceil" | "floor" | "exp" | "sqrt" | "ln" | "log2" | "log10" => {
            let v = ev.vector(arg(&args, 0, name)?, name)?;
            let f: fn(f64) -> f64 = match name {
                "abs" => f64::abs,
                "ceil" => f64::ceil,
                "floor" => f64::floor,
                "exp" => f64::exp,
                "sqrt" => f64::sqrt,
                "ln" => f64::ln,
                "log2" => f64::log2,
                _ => f64::log10,
            };
            map_values(v, |_, x| Some(f(x)))
        }
        "round" => {
            let v = ev.vector(arg(&args, 0, name)?, name)?;
            let to = match args.get(1) {
                Some(e) => ev.scalar(e, "round's to_nearest")?,
                None => vec![1.0; ev.n()],
            };
            map_values(v, |i, x| {
                // As Prometheus: invert first (fewer rounding surprises), ties round up.
                let inv = 1.0 / to[i];
                Some((x * inv + 0.5).floor() / inv)
            })
        }
        "clamp" => {
            let v = ev.vector(arg(&args, 0, name)?, name)?;
            let lo = ev.scalar(arg(&args, 1, name)?, "clamp's min")?;
            let hi = ev.scalar(arg(&args, 2, name)?, "clamp's max")?;
            // As Prometheus: max < min gives nothing; a NaN bound does not compare.
            map_values(v, |i, x| {
                (hi[i] >= lo[i] || hi[i].is_nan() || lo[i].is_nan())
                    .then(|| go_max(lo[i], go_min(hi[i], x)))
            })
        }
        "clamp_min" => {
            let v = ev.vector(arg(&args, 0, name)?, name)?;
            let lo = ev.scalar(arg(&args, 1, name)?, "clamp_min's min")?;
            map_values(v, |i, x| Some(go_max(lo[i], x)))
        }
        "clamp_max" => {
            let v = ev.vector(arg(&args, 0, name)?, name)?;
            let hi = ev.scalar(arg(&args, 1, name)?, "clamp_max's max")?;
            map_values(v, |i, x| Some(go_min(hi[i], x)))
        }
        "time" => Ok(Value::Scalar(
            ev.steps.times().map(|t| t as f64 / 1000.0).collect(),
        )),
        "vector" => {
            let s = ev.scalar(arg(&args, 0, name)?, "vector's argument")?;
            Ok(Value::Vector(vec![Series {
                labels: Vec::new(),
                values: s.into_iter().map(Some).collect(),
            }]))
        }
        "scalar" => {
            let v = ev.vector(arg(&args, 0, name)?, name)?;
            Ok(Value::Scalar(
                (0..ev.n())
                    .map(|i| {
                        let mut present = v.iter().filter_map(|s| s.values[i]);
                        match (present.next(), present.next()) {
                            (Some(x), None) => x,
                            _ => f64::NAN,
                        }
                    })
                    .collect(),
            ))
        }
        "histogram_quantile" => {
            let q = ev.scalar(arg(&args, 0, name)?, "histogram_quantile's φ")?;
            let v = ev.vector(arg(&args, 1, name)?, name)?;
            histogram_quantile(ev.n(), &q, &v)
        }
        "label_replace" => {
            let v = ev.vector(arg(&args, 0, name)?, name)?;
            let text = |i: usize| -> Result<String, PromError> {
                match arg(&args, i, name)? {
                    Expr::StringLiteral(s) => Ok(s.val.clone()),
                    _ => Err(PromError::bad_data(format!(
                        "label_replace's argument {} must be a string",
                        i + 1
                    ))),
                }
            };
            let (dst, repl, src, re) = (text(1)?, text(2)?, text(3)?, text(4)?);
            label_replace(v, &dst, &repl, &src, &re)
        }
        other => Err(PromError::execution(format!(
            "function \"{other}\" is not supported by carat's PromQL (docs/prometheus.md)"
        ))),
    }
}

fn arg<'a>(args: &[&'a Expr], i: usize, name: &str) -> Result<&'a Expr, PromError> {
    args.get(i)
        .copied()
        .ok_or_else(|| PromError::bad_data(format!("{name}() is missing argument {}", i + 1)))
}

/// Go's math.Max: NaN if either is NaN.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// An element-wise function that drops the metric name (as all of Prometheus' math
/// functions do).
fn map_values(v: Vec<Series>, f: impl Fn(usize, f64) -> Option<f64>) -> Result<Value, PromError> {
    let out = v
        .into_iter()
        .map(|s| Series {
            labels: drop_name(&s.labels),
            values: s
                .values
                .iter()
                .enumerate()
                .map(|(i, x)| x.and_then(|x| f(i, x)))
                .collect(),
        })
        .collect();
    Ok(Value::Vector(merge(out)?))
}

fn range_function(
    ev: &Evaluator<'_>,
    name: &str,
    arg: Option<&Expr>,
    q: Option<&[f64]>,
) -> Result<Value, PromError> {
    let mut arg =
        arg.ok_or_else(|| PromError::bad_data(format!("{name}() needs a range vector")))?;
    while let Expr::Paren(p) = arg {
        arg = &p.expr;
    }
    // The series, the range, the offset and the time an `@` fixes.
    type Arg<'s> = (std::borrow::Cow<'s, [RawSeries]>, i64, i64, Option<i64>);
    let (series, range, off, fixed): Arg<'_> = match arg {
        Expr::MatrixSelector(ms) => (
            ev.raw(&ms.vs).into(),
            duration_ms(ms.range),
            offset_ms(ms.vs.offset.as_ref()),
            at_ms(ms.vs.at.as_ref(), ev.query),
        ),
        Expr::Subquery(sq) => (
            ev.subquery(sq)?.into(),
            duration_ms(sq.range),
            offset_ms(sq.offset.as_ref()),
            None,
        ),
        _ => {
            return Err(PromError::execution(format!(
                "{name}() needs a range selector or a subquery"
            )))
        }
    };
    let mut out = Vec::new();
    for s in series.iter() {
        // Range selectors never return stale markers.
        let points: Vec<(i64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|p| !is_stale(p.1))
            .collect();
        let labels = if name == "last_over_time" {
            s.labels.clone()
        } else {
            drop_name(&s.labels)
        };
        let mut values = Vec::with_capacity(ev.n());
        for (i, ts) in ev.steps.times().enumerate() {
            let maxt = fixed.unwrap_or(ts) - off;
            let mint = maxt - range;
            let w = window(&points, mint, maxt);
            values.push(if w.is_empty() {
                None
            } else {
                over_window(name, w, mint, maxt, range, q.map(|q| q[i]))
            });
        }
        out.push(Series { labels, values });
    }
    Ok(Value::Vector(merge(out)?))
}

/// One step of a range function over the non-empty window `w` of `[mint, maxt]`.
fn over_window(
    name: &str,
    w: &[(i64, f64)],
    mint: i64,
    maxt: i64,
    range: i64,
    q: Option<f64>,
) -> Option<f64> {
    match name {
        "rate" => extrapolated_rate(w, mint, maxt, range, true, true),
        "increase" => extrapolated_rate(w, mint, maxt, range, true, false),
        "delta" => extrapolated_rate(w, mint, maxt, range, false, false),
        "irate" => instant_value(w, true),
        "idelta" => instant_value(w, false),
        "avg_over_time" => Some(avg(w)),
        "sum_over_time" => {
            let (mut sum, mut c) = (0.0, 0.0);
            for p in w {
                (sum, c) = kahan_sum_inc(p.1, sum, c);
            }
            Some(if sum.is_infinite() { sum } else { sum + c })
        }
        "min_over_time" => Some(
            w.iter()
                .fold(w[0].1, |m, p| if p.1 < m || m.is_nan() { p.1 } else { m }),
        ),
        "max_over_time" => Some(
            w.iter()
                .fold(w[0].1, |m, p| if p.1 > m || m.is_nan() { p.1 } else { m }),
        ),
        "count_over_time" => Some(w.len() as f64),
        "present_over_time" => Some(1.0),
        "last_over_time" => w.last().map(|p| p.1),
        "stddev_over_time" => Some(stdvar(w).sqrt()),
        "stdvar_over_time" => Some(stdvar(w)),
        "quantile_over_time" => {
            let mut vals: Vec<f64> = w.iter().map(|p| p.1).collect();
            Some(quantile(q.unwrap_or(f64::NAN), &mut vals))
        }
        "changes" => Some(
            w.windows(2)
                .filter(|p| p[1].1 != p[0].1 && !(p[1].1.is_nan() && p[0].1.is_nan()))
                .count() as f64,
        ),
        "resets" => Some(w.windows(2).filter(|p| p[1].1 < p[0].1).count() as f64),
        _ => None,
    }
}

/// promql/functions.go `extrapolatedRate` (v2.42): the increase between the first and
/// the last point (counter resets added back), extrapolated towards the range's ends
/// when the points come close enough to them, never below a counter's zero.
fn extrapolated_rate(
    w: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    range: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (first, last) = (w[0], w[w.len() - 1]);
    let mut result = last.1 - first.1;
    if is_counter {
        let mut prev = first.1;
        for p in &w[1..] {
            if p.1 < prev {
                result += prev;
            }
            prev = p.1;
        }
    }
    let mut duration_to_start = (first.0 - range_start) as f64 / 1000.0;
    let duration_to_end = (range_end - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let avg_between = sampled / (w.len() - 1) as f64;
    if is_counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < duration_to_start {
            duration_to_start = to_zero;
        }
    }
    let threshold = avg_between * 1.1;
    let mut interval = sampled;
    interval += if duration_to_start < threshold {
        duration_to_start
    } else {
        avg_between / 2.0
    };
    interval += if duration_to_end < threshold {
        duration_to_end
    } else {
        avg_between / 2.0
    };
    let mut factor = interval / sampled;
    if is_rate {
        factor /= range as f64 / 1000.0;
    }
    Some(result * factor)
}

/// promql/functions.go `instantValue`: `irate` / `idelta` from the last two points.
fn instant_value(w: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (prev, last) = (w[w.len() - 2], w[w.len() - 1]);
    let mut v = if is_rate && last.1 < prev.1 {
        last.1
    } else {
        last.1 - prev.1
    };
    let interval = last.0 - prev.0;
    if interval == 0 {
        return None;
    }
    if is_rate {
        v /= interval as f64 / 1000.0;
    }
    Some(v)
}

fn kahan_sum_inc(inc: f64, sum: f64, mut c: f64) -> (f64, f64) {
    let t = sum + inc;
    if sum.abs() >= inc.abs() {
        c += (sum - t) + inc;
    } else {
        c += (inc - t) + sum;
    }
    (t, c)
}

/// `avg_over_time`: an incremental Kahan mean, infinities kept.
fn avg(w: &[(i64, f64)]) -> f64 {
    let (mut mean, mut count, mut c) = (0.0_f64, 0.0_f64, 0.0_f64);
    for &(_, v) in w {
        count += 1.0;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        (mean, c) = kahan_sum_inc(v / count - mean / count, mean, c);
    }
    if mean.is_infinite() {
        mean
    } else {
        mean + c
    }
}

fn stdvar(w: &[(i64, f64)]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(_, v) in w {
        count += 1.0;
        let delta = v - (mean + c_mean);
        (mean, c_mean) = kahan_sum_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_sum_inc(delta * (v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// promql/quantile.go `quantile`: linear interpolation between the closest ranks. NaN
/// sorts lowest, as Prometheus' `vectorByValueHeap` does.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// promql/quantile.go `bucketQuantile` over (upper bound, cumulative count) buckets.
fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    match buckets.last() {
        Some(b) if b.0 == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    // coalesceBuckets: equal bounds add up.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(ub, c) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => merged.push((ub, c)),
        }
    }
    // ensureMonotonic.
    let mut max = merged[0].1;
    for b in merged.iter_mut().skip(1) {
        if b.1 > max {
            max = b.1;
        } else if b.1 < max {
            b.1 = max;
        }
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = merged[..merged.len() - 1].partition_point(|x| x.1 < rank);
    if b == merged.len() - 1 {
        return merged[merged.len() - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let mut start = 0.0;
    let end = merged[b].0;
    let mut count = merged[b].1;
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// Go's strconv.ParseFloat for an `le` value (Rust's parser takes the same forms,
/// `+Inf` included, but not Go's hex floats or `_`: no exporter writes those).
fn parse_le(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

fn histogram_quantile(n: usize, q: &[f64], v: &[Series]) -> Result<Value, PromError> {
    // Buckets group by every label but `le` (the name included); the result has
    // neither `le` nor the name.
    let mut groups: Vec<(Labels, Vec<(usize, f64)>)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for (si, s) in v.iter().enumerate() {
        let Some(ub) = parse_le(get(&s.labels, "le")) else {
            continue;
        };
        let sig: Labels = s
            .labels
            .iter()
            .filter(|(k, _)| k != "le")
            .cloned()
            .collect();
        let gi = *index.entry(sig.clone()).or_insert_with(|| {
            groups.push((sig, Vec::new()));
            groups.len() - 1
        });
        groups[gi].1.push((si, ub));
    }
    let mut out = Builder::new(n);
    for (sig, members) in &groups {
        let labels = drop_name(sig);
        for (step, &q) in q.iter().enumerate().take(n) {
            let mut buckets: Vec<(f64, f64)> = members
                .iter()
                .filter_map(|&(si, ub)| v[si].values[step].map(|c| (ub, c)))
                .collect();
            if buckets.is_empty() {
                continue;
            }
            out.put(&labels, step, bucket_quantile(q, &mut buckets))?;
        }
    }
    Ok(Value::Vector(out.finish()))
}

fn label_replace(
    v: Vec<Series>,
    dst: &str,
    repl: &str,
    src: &str,
    re: &str,
) -> Result<Value, PromError> {
    let regex = regex::Regex::new(&format!("^(?:{re})$")).map_err(|_| {
        PromError::execution(format!(
            "invalid regular expression in label_replace(): {re}"
        ))
    })?;
    let valid_name = !dst.is_empty()
        && dst
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    if !valid_name {
        return Err(PromError::execution(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let out = v
        .into_iter()
        .map(|mut s| {
            let value = get(&s.labels, src).to_string();
            if let Some(caps) = regex.captures(&value) {
                let mut res = String::new();
                caps.expand(repl, &mut res);
                set(&mut s.labels, dst, &res);
            }
            s
        })
        .collect();
    Ok(Value::Vector(merge(out)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_extrapolates_as_prometheus() {
        // 0..=240 s every 60 s, value = t: rate over [0, 300] at 300 s.
        let w: Vec<(i64, f64)> = (0..5).map(|i| (i * 60_000, (i * 60) as f64)).collect();
        // sampled 240 s; to start 0 (< 66 s): +0; to end 60 s (< 66): +60 ⇒ 300 s.
        let r = extrapolated_rate(&w, 0, 300_000, 300_000, true, true).unwrap();
        assert!((r - 240.0 * 300.0 / 240.0 / 300.0).abs() < 1e-12, "{r}");
        // A counter reset adds the value before it back.
        let w = [(0, 10.0), (60_000, 20.0), (120_000, 5.0)];
        let inc = extrapolated_rate(&w, 0, 120_000, 120_000, true, false).unwrap();
        // 5 - 10 + 20 = 15; zero point: 120 * 10/15 = 80 s > 0 to start: no change.
        assert!((inc - 15.0).abs() < 1e-12, "{inc}");
        assert_eq!(extrapolated_rate(&w[..1], 0, 1, 1, true, true), None);
    }

    #[test]
    fn bucket_quantiles_interpolate_and_need_an_inf_bucket() {
        let mut b = vec![(0.1, 10.0), (0.5, 30.0), (f64::INFINITY, 40.0)];
        // rank 20 in (0.1, 0.5]: 0.1 + 0.4 * (10/20).
        assert!((bucket_quantile(0.5, &mut b) - 0.3).abs() < 1e-12);
        assert_eq!(bucket_quantile(0.99, &mut b), 0.5);
        let mut no_inf = vec![(0.1, 1.0), (0.5, 2.0)];
        assert!(bucket_quantile(0.5, &mut no_inf).is_nan());
    }

    #[test]
    fn quantiles_interpolate_between_ranks() {
        assert_eq!(quantile(0.5, &mut [3.0, 1.0, 2.0, 4.0]), 2.5);
        assert_eq!(quantile(2.0, &mut [1.0]), f64::INFINITY);
        assert!(quantile(0.5, &mut []).is_nan());
    }
}
