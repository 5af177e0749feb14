//! graphite-web's `TimeSeries` (`render/datalib.py`): values on a fixed step from
//! `start` (inclusive) to `end` (exclusive), a consolidation function and
//! `valuesPerPoint`, which iteration applies (a series normalized to a coarser step,
//! or consolidated for `maxDataPoints`, yields consolidated values), and the
//! answer's JSON (`renderViewJson`: the `maxDataPoints` nudge, NaN ⇒ null,
//! Infinity ⇒ 1e9999). Also the Python number formats names are built with.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::graphite::target::Num;

/// A consolidation function (`consolidateBy`, `maxDataPoints`, `normalize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cf {
    Average,
    AvgZero,
    Sum,
    Min,
    Max,
    First,
    Last,
}

impl Cf {
    /// graphite-web's names (`avg` is `average`).
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "average" | "avg" => Self::Average,
            "avg_zero" => Self::AvgZero,
            "sum" => Self::Sum,
            "min" => Self::Min,
            "max" => Self::Max,
            "first" => Self::First,
            "last" => Self::Last,
            _ => return None,
        })
    }

    /// `buf` holds the non-null values (and zeros for nulls under `avg_zero`).
    fn apply(self, buf: &[f64]) -> f64 {
        match self {
            #[allow(clippy::cast_precision_loss)]
            Self::Average | Self::AvgZero => buf.iter().sum::<f64>() / buf.len() as f64,
            Self::Sum => buf.iter().sum(),
            Self::Min => buf.iter().copied().fold(f64::INFINITY, py_min),
            Self::Max => buf.iter().copied().fold(f64::NEG_INFINITY, py_max),
            Self::First => buf[0],
            Self::Last => buf[buf.len() - 1],
        }
    }
}

/// Python's `min` of two floats as its loop compares them (the first wins ties).
pub(crate) fn py_min(a: f64, b: f64) -> f64 {
    if b < a {
        b
    } else {
        a
    }
}

pub(crate) fn py_max(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub path_expression: String,
    pub tags: BTreeMap<String, String>,
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub values: Vec<Option<f64>>,
    pub values_per_point: usize,
    pub cf: Cf,
    pub xff: f64,
}

impl Series {
    /// A series as `TimeSeries(name, start, end, step, values)` makes it: tags
    /// `{"name": name}`, average consolidation.
    #[must_use]
    pub fn new(name: &str, start: i64, end: i64, step: i64, values: Vec<Option<f64>>) -> Self {
        Self {
            name: name.to_string(),
            path_expression: name.to_string(),
            tags: BTreeMap::from([("name".to_string(), name.to_string())]),
            start,
            end,
            step,
            values,
            values_per_point: 1,
            cf: Cf::Average,
            xff: 0.0,
        }
    }

    /// `series.copy(name=…, values=…)`: a new series (valuesPerPoint 1) keeping the
    /// step, range, tags, consolidation and xFilesFactor.
    #[must_use]
    pub fn copy_with(&self, name: String, values: Vec<Option<f64>>) -> Self {
        Self {
            path_expression: name.clone(),
            name,
            tags: self.tags.clone(),
            start: self.start,
            end: self.end,
            step: self.step,
            values,
            values_per_point: 1,
            cf: self.cf,
            xff: self.xff,
        }
    }

    /// What iterating the series yields (`__consolidatingGenerator`).
    #[must_use]
    pub fn iter_values(&self) -> Vec<Option<f64>> {
        let vpp = self.values_per_point.max(1);
        if vpp == 1 {
            return self.values.clone();
        }
        let mut out = Vec::with_capacity(self.values.len() / vpp + 1);
        let mut buf = Vec::with_capacity(vpp);
        for chunk in self.values.chunks(vpp) {
            buf.clear();
            let mut non_null = 0_usize;
            for v in chunk {
                match v {
                    Some(x) => {
                        buf.push(*x);
                        non_null += 1;
                    }
                    None if self.cf == Cf::AvgZero => buf.push(0.0),
                    None => {}
                }
            }
            #[allow(clippy::cast_precision_loss)]
            let enough = non_null > 0 && non_null as f64 / vpp as f64 >= self.xff;
            out.push(enough.then(|| self.cf.apply(&buf)));
        }
        out
    }

    pub fn set_tag(&mut self, key: &str, value: impl Into<String>) {
        self.tags.insert(key.to_string(), value.into());
    }

    /// The `[value, timestamp]` pairs of the answer (`datapoints()`): timestamps
    /// `range(start, end + 1, step × valuesPerPoint)` zipped with the values.
    #[must_use]
    pub fn datapoints(&self) -> Vec<(Option<f64>, i64)> {
        let stride = self
            .step
            .saturating_mul(self.values_per_point.max(1) as i64)
            .max(1);
        let values = self.iter_values();
        let mut out = Vec::with_capacity(values.len());
        let mut t = self.start;
        for v in values {
            if t > self.end {
                break;
            }
            out.push((v, t));
            t = t.saturating_add(stride);
        }
        out
    }
}

/// `renderViewJson`'s consolidation for `maxDataPoints` over all the answer's series.
pub fn consolidate_for(series: &mut [Series], max_data_points: usize) {
    let Some(start) = series.iter().map(|s| s.start).min() else {
        return;
    };
    let end = series.iter().map(|s| s.end).max().unwrap_or(start);
    let time_range = end - start;
    for s in series.iter_mut() {
        if max_data_points == 1 {
            s.values_per_point = s.values.len().max(1);
            continue;
        }
        #[allow(clippy::cast_precision_loss)]
        let points = time_range as f64 / s.step as f64;
        #[allow(clippy::cast_precision_loss)]
        let mdp = max_data_points as f64;
        if mdp < points {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let vpp = (points / mdp).ceil() as i64;
            let seconds_per_point = vpp * s.step;
            // graphite-web nudges the start so buckets align between refreshes, and
            // drops one value fewer than the nudge covers (`range(1, valuesToLose)`).
            let nudge = seconds_per_point + s.start.rem_euclid(s.step)
                - s.start.rem_euclid(seconds_per_point);
            s.start += nudge;
            let lose = usize::try_from(nudge / s.step).unwrap_or(0);
            let drop = lose.saturating_sub(1).min(s.values.len());
            s.values.drain(..drop);
            s.values_per_point = usize::try_from(vpp).unwrap_or(1);
        }
    }
}

/// The answer's JSON text: `[{"target","tags","datapoints"}]`, non-finite values as
/// graphite-web writes them (NaN ⇒ `null`, ±Infinity ⇒ `±1e9999`).
#[must_use]
pub fn render_json(series: &[Series], no_null_points: bool) -> (String, usize) {
    let mut out = String::from("[");
    let mut points = 0;
    let mut first = true;
    for s in series {
        let mut dps = s.datapoints();
        if no_null_points {
            dps.retain(|(v, _)| v.is_some_and(|x| !x.is_nan()));
            if dps.is_empty() {
                continue;
            }
        }
        points += dps.len();
        if !first {
            out.push_str(", ");
        }
        first = false;
        let target = serde_json::to_string(&s.name).unwrap_or_else(|_| "\"\"".into());
        let tags = serde_json::to_string(&s.tags).unwrap_or_else(|_| "{}".into());
        let _ = write!(
            out,
            "{{\"target\": {target}, \"tags\": {tags}, \"datapoints\": ["
        );
        for (i, (v, t)) in dps.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push('[');
            match v {
                None => out.push_str("null"),
                Some(x) if x.is_nan() => out.push_str("null"),
                Some(x) if x.is_infinite() => {
                    out.push_str(if *x > 0.0 { "1e9999" } else { "-1e9999" });
                }
                Some(x) => out.push_str(&py_repr(*x)),
            }
            let _ = write!(out, ", {t}]");
        }
        out.push_str("]}");
    }
    out.push(']');
    (out, points)
}

/// Python's `repr(float)`: the shortest round-trip digits, `2.0` for whole numbers,
/// exponents below 1e-4 and from 1e16.
#[must_use]
pub fn py_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let e = format!("{x:e}"); // shortest digits: "1.5e3", "-2e-7"
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let s = format!("{x}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    }
}

/// Python's `str()` of a number argument.
#[must_use]
pub fn py_str(n: Num) -> String {
    match n {
        Num::Int(i) => i.to_string(),
        Num::Float(f) => py_repr(f),
    }
}

/// Python's `"%g" % x`: 6 significant digits, trailing zeros dropped, exponent form
/// below 1e-4 and from 1e6.
#[must_use]
pub fn py_g(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let e = format!("{x:.5e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        let decimals = usize::try_from(5 - exp).unwrap_or(0);
        let s = format!("{x:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        let mant = if mant.contains('.') {
            mant.trim_end_matches('0').trim_end_matches('.')
        } else {
            mant
        };
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_number_formats() {
        assert_eq!(py_repr(2.0), "2.0");
        assert_eq!(py_repr(0.1), "0.1");
        assert_eq!(py_repr(1e-5), "1e-05");
        assert_eq!(py_repr(1.5e16), "1.5e+16");
        assert_eq!(py_repr(123_456.789), "123456.789");
        assert_eq!(py_g(0.5), "0.5");
        assert_eq!(py_g(3.0), "3");
        assert_eq!(py_g(-10.0), "-10");
        assert_eq!(py_g(1_234_567.0), "1.23457e+06");
        assert_eq!(py_g(0.000_012_5), "1.25e-05");
        assert_eq!(py_g(100_000.0), "100000");
        assert_eq!(py_g(2.5e-3), "0.0025");
    }

    #[test]
    fn consolidation_honours_the_function_and_xff() {
        let mut s = Series::new(
            "a",
            0,
            50,
            10,
            vec![Some(1.0), None, Some(3.0), Some(5.0), None],
        );
        s.values_per_point = 2;
        assert_eq!(s.iter_values(), vec![Some(1.0), Some(4.0), None]);
        s.cf = Cf::AvgZero;
        assert_eq!(s.iter_values(), vec![Some(0.5), Some(4.0), None]);
        s.cf = Cf::Max;
        s.xff = 0.6;
        assert_eq!(s.iter_values(), vec![None, Some(5.0), None]);
        assert_eq!(s.datapoints().len(), 3);
    }
}
