//! Points to send, from command-line arguments, JSON files and CSV files.
//!
//! Every source is read and validated whole before anything is sent — names, times and
//! values by the server's own rules (`carat_api::body` for JSON, `carat_core::point` for
//! the ingest window of the loaded config) — so a bad file sends nothing, and its error
//! names the file, the line and the field. A (series, time) given twice keeps the later
//! value, as within one request (docs/api.md "Points"): points are deduplicated here
//! because a source may be split over several requests.

use std::collections::HashMap;

use bytes::Bytes;
use carat_api::body::{self, Posted, Shape};
use carat_api::AppError;
use carat_core::config::IngestConfig;
use carat_core::{point, Point, SeriesName, ValidationError};
use serde_json::{json, Value};

use super::CliError;

/// The points of one source, ready to be batched: the ingest route and each point as a
/// JSON object in that route's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// `arguments` or the file's name, for messages.
    pub name: String,
    pub route: String,
    pub items: Vec<String>,
}

/// What the validation checks against: the ingest limits and the clock.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub ingest: &'a IngestConfig,
    pub now: i64,
}

/// The format of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FileFormat {
    Json,
    Csv,
}

/// Points from arguments: `NAME VALUE` pairs or `NAME=VALUE` words, all at `time`.
///
/// # Errors
/// [`CliError::Input`] naming the argument and the field.
pub fn from_args(args: &[String], time: i64, rules: Rules<'_>) -> Result<Source, CliError> {
    let mut points = Points::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let (name, value, shown) = match arg.split_once('=') {
            Some((n, v)) => (n, v, arg.clone()),
            None => {
                let Some(v) = args.get(i + 1) else {
                    return Err(CliError::Input(format!(
                        "argument `{arg}`: no value after the name (write `NAME VALUE` or `NAME=VALUE`)"
                    )));
                };
                i += 1;
                (arg.as_str(), v.as_str(), format!("{arg} {v}"))
            }
        };
        i += 1;
        let at = |msg: String| CliError::Input(format!("argument `{shown}`: {msg}"));
        let series = SeriesName::parse(name, "name").map_err(|e| at(field_message(&e)))?;
        let value = parse_value(value).map_err(at)?;
        let pt = Point::new(time, value);
        point::validate(0, pt, rules.now, rules.ingest).map_err(|e| at(field_message(&e)))?;
        points.push(series.as_str(), time, native_item(series.as_str(), pt));
    }
    Ok(points.into_source("arguments", "/api/v1/points"))
}

/// Points of a JSON file: the native body (`[{"series","time","value"}]`), Mackerel host
/// metrics (`[{"hostId","name","time","value"}]`) or, with `service`, Mackerel service
/// metrics (`[{"name","time","value"}]`); each goes to its own route.
///
/// # Errors
/// [`CliError::Input`] naming the file, the line and the field.
pub fn from_json(
    file: &str,
    text: &[u8],
    service: Option<&str>,
    rules: Rules<'_>,
) -> Result<Source, CliError> {
    let bad = |line: Option<usize>, msg: &str| {
        CliError::Input(match line {
            Some(l) => format!("{file}:{l}: {msg}"),
            None => format!("{file}: {msg}"),
        })
    };
    let doc: Value =
        serde_json::from_slice(text).map_err(|e| bad(Some(e.line()), &format!("not JSON: {e}")))?;
    let Some(elements) = doc.as_array() else {
        return Err(bad(
            Some(1),
            r#"expected a JSON array of points: [{"series","time","value"}] (native) or [{"hostId","name","time","value"}] (Mackerel)"#,
        ));
    };
    let lines = element_lines(text);
    let line_of = |i: usize| lines.get(i).copied();
    let Some(first) = elements.first() else {
        return Ok(Points::default().into_source(file, "/api/v1/points"));
    };
    let has = |k: &str| first.get(k).is_some();
    let shape = match (service, has("series"), has("hostId")) {
        (None, true, _) => Shape::Native,
        (None, false, true) => Shape::MackerelHost,
        (Some(_), false, false) => Shape::MackerelService,
        (Some(_), _, _) => {
            return Err(bad(
                line_of(0),
                "point 0: --service is for Mackerel service metrics ({\"name\",\"time\",\"value\"}), but the point has `series` or `hostId`",
            ))
        }
        (None, false, false) => {
            return Err(bad(
                line_of(0),
                "point 0: no `series` or `hostId` field (a file of Mackerel service metrics needs --service NAME)",
            ))
        }
    };
    let posted = body::parse(shape, text, usize::MAX).map_err(|e| app_error(&e, &bad, &line_of))?;
    let resolved = body::resolve(shape, service, posted.clone(), rules.now, rules.ingest)
        .map_err(|e| app_error(&e, &bad, &line_of))?;
    let route = match (shape, service) {
        (Shape::MackerelHost, _) => "/api/v0/tsdb".to_string(),
        (Shape::MackerelService, Some(s)) => format!("/api/v0/services/{s}/tsdb"),
        _ => "/api/v1/points".to_string(),
    };
    let mut points = Points::default();
    for (p, (series, pt)) in posted.iter().zip(&resolved) {
        points.push(series.as_str(), pt.time, item(shape, p));
    }
    Ok(points.into_source(file, &route))
}

/// Points of a CSV file: a header naming the columns `name`, `time`, `value` in any order
/// (`series` or `metric` for `name`, `timestamp` for `time`; any case), then one point a
/// line. Times are epoch seconds or RFC 3339; empty lines and lines starting with `#`
/// are skipped; a field may be in double quotes.
///
/// # Errors
/// [`CliError::Input`] naming the file, the line and the field.
pub fn from_csv(file: &str, text: &str, rules: Rules<'_>) -> Result<Source, CliError> {
    let mut columns: Option<[usize; 3]> = None;
    let mut points = Points::default();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let bad = |msg: String| CliError::Input(format!("{file}:{n}: {msg}"));
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields: Vec<String> = trimmed.split(',').map(unquote).collect();
        let Some([ni, ti, vi]) = columns else {
            columns = Some(header(&fields).map_err(bad)?);
            continue;
        };
        if fields.len() != 3 {
            return Err(bad(format!(
                "{} fields, expected 3 (name,time,value)",
                fields.len()
            )));
        }
        let series = SeriesName::parse(&fields[ni], "name").map_err(|e| bad(field_message(&e)))?;
        let time =
            super::time::absolute(&fields[ti]).map_err(|e| bad(format!("field `time`: {e}")))?;
        let value = parse_value(&fields[vi]).map_err(bad)?;
        let pt = Point::new(time, value);
        point::validate(0, pt, rules.now, rules.ingest).map_err(|e| bad(field_message(&e)))?;
        points.push(series.as_str(), time, native_item(series.as_str(), pt));
    }
    if columns.is_none() {
        return Err(CliError::Input(format!(
            "{file}: no header line (name,time,value)"
        )));
    }
    Ok(points.into_source(file, "/api/v1/points"))
}

/// Splits `items` into JSON array bodies of at most `max_points` points and `max_bytes`
/// bytes each: (points, body).
#[must_use]
pub fn batches(items: &[String], max_points: usize, max_bytes: usize) -> Vec<(usize, Bytes)> {
    let mut out = Vec::new();
    let mut cur = String::from("[");
    let mut n = 0;
    for it in items {
        // 2: the comma before the item and the closing bracket.
        if n > 0 && (n == max_points.max(1) || cur.len() + it.len() + 2 > max_bytes) {
            cur.push(']');
            out.push((
                n,
                Bytes::from(std::mem::replace(&mut cur, String::from("["))),
            ));
            n = 0;
        }
        if n > 0 {
            cur.push(',');
        }
        cur.push_str(it);
        n += 1;
    }
    if n > 0 {
        cur.push(']');
        out.push((n, Bytes::from(cur)));
    }
    out
}

/// Points of one source, the later of a repeated (series, time) kept.
#[derive(Default)]
struct Points {
    items: Vec<String>,
    seen: HashMap<(String, i64), usize>,
}

impl Points {
    fn push(&mut self, series: &str, time: i64, item: String) {
        match self.seen.get(&(series.to_string(), time)) {
            Some(&i) => self.items[i] = item,
            None => {
                self.seen
                    .insert((series.to_string(), time), self.items.len());
                self.items.push(item);
            }
        }
    }

    fn into_source(self, name: &str, route: &str) -> Source {
        Source {
            name: name.to_string(),
            route: route.to_string(),
            items: self.items,
        }
    }
}

fn native_item(series: &str, p: Point) -> String {
    json!({"series": series, "time": p.time, "value": p.value}).to_string()
}

fn item(shape: Shape, p: &Posted) -> String {
    match shape {
        Shape::Native => json!({"series": p.first, "time": p.time, "value": p.value}),
        Shape::MackerelHost => {
            json!({"hostId": p.first, "name": p.name, "time": p.time, "value": p.value})
        }
        Shape::MackerelService => json!({"name": p.first, "time": p.time, "value": p.value}),
    }
    .to_string()
}

/// A value: a finite number (JSON, and so the API, has no NaN or infinities).
fn parse_value(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!(
            "field `value`: {s:?} is not a finite number (the JSON API has no NaN or infinities)"
        )),
        Err(_) => Err(format!("field `value`: {s:?} is not a number")),
    }
}

/// `field `f`: reason`, without the point index (the caller names the line or argument).
fn field_message(e: &ValidationError) -> String {
    match e {
        ValidationError::Field { field, reason, .. } | ValidationError::Name { field, reason } => {
            format!("field `{field}`: {reason}")
        }
    }
}

fn app_error(
    e: &AppError,
    bad: &dyn Fn(Option<usize>, &str) -> CliError,
    line_of: &dyn Fn(usize) -> Option<usize>,
) -> CliError {
    match e {
        AppError::BadInput {
            message,
            index: Some(i),
            ..
        } => bad(line_of(*i), message),
        other => bad(None, &other.to_string()),
    }
}

/// The column positions of `name`, `time` and `value` in a header line.
fn header(fields: &[String]) -> Result<[usize; 3], String> {
    let want = "a header line naming the columns name,time,value (in any order; `series` or `metric` for name, `timestamp` for time)";
    let mut cols = [None; 3];
    for (i, f) in fields.iter().enumerate() {
        let slot = match f.to_ascii_lowercase().as_str() {
            "name" | "series" | "metric" => 0,
            "time" | "timestamp" => 1,
            "value" => 2,
            _ => return Err(format!("unknown column {f:?}: expected {want}")),
        };
        if cols[slot].replace(i).is_some() {
            return Err(format!("column {f:?} given twice: expected {want}"));
        }
    }
    match cols {
        [Some(n), Some(t), Some(v)] => Ok([n, t, v]),
        _ => Err(format!("expected {want}, got {:?}", fields.join(","))),
    }
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => s.to_string(),
    }
}

/// The line (1-based) where each element of the top-level JSON array starts.
fn element_lines(text: &[u8]) -> Vec<usize> {
    let mut lines = Vec::new();
    let (mut line, mut depth) = (1usize, 0usize);
    let (mut in_str, mut escaped, mut want) = (false, false, false);
    for &b in text {
        if b == b'\n' {
            line += 1;
        }
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        if depth == 1 && want && !b.is_ascii_whitespace() && b != b']' {
            lines.push(line);
            want = false;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                want = depth == 1;
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => want = true,
            _ => {}
        }
    }
    lines
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_594_000;

    fn rules(cfg: &IngestConfig) -> Rules<'_> {
        Rules {
            ingest: cfg,
            now: NOW,
        }
    }

    fn input_err(r: Result<Source, CliError>) -> String {
        match r {
            Err(CliError::Input(m)) => m,
            other => panic!("expected an input error, got {other:?}"),
        }
    }

    #[test]
    fn arguments_in_both_forms() {
        let cfg = IngestConfig::default();
        let args: Vec<String> = ["a.b", "12.5", "c=-1", "a.b=3"]
            .iter()
            .map(|s| (*s).to_string())
            .collect();
        let s = from_args(&args, NOW, rules(&cfg)).unwrap();
        assert_eq!(s.route, "/api/v1/points");
        assert_eq!(
            s.items,
            [
                format!(r#"{{"series":"a.b","time":{NOW},"value":3.0}}"#),
                format!(r#"{{"series":"c","time":{NOW},"value":-1.0}}"#),
            ]
        );
        let m = input_err(from_args(&["a$b=1".into()], NOW, rules(&cfg)));
        assert!(
            m.contains("argument `a$b=1`") && m.contains("field `name`"),
            "{m}"
        );
        let m = input_err(from_args(&["x".into(), "NaN".into()], NOW, rules(&cfg)));
        assert!(
            m.contains("argument `x NaN`") && m.contains("field `value`"),
            "{m}"
        );
        let m = input_err(from_args(&["x".into()], NOW, rules(&cfg)));
        assert!(m.contains("no value"), "{m}");
        let m = input_err(from_args(&["x=1".into()], NOW - 200_000, rules(&cfg)));
        assert!(m.contains("field `time`"), "{m}");
    }

    #[test]
    fn csv_headers_and_errors() {
        let cfg = IngestConfig::default();
        let ok = format!(
            "# comment\nTime,Series,Value\n\n{NOW},a.b,1.5\n\"{}\",\"a.c\",2\n",
            super::super::time::rfc3339(NOW)
        );
        let s = from_csv("f.csv", &ok, rules(&cfg)).unwrap();
        assert_eq!(s.items.len(), 2);
        assert!(s.items[1].contains(r#""series":"a.c""#), "{:?}", s.items);
        let m = input_err(from_csv("f.csv", "name,time\n", rules(&cfg)));
        assert!(m.starts_with("f.csv:1: expected a header"), "{m}");
        let m = input_err(from_csv(
            "f.csv",
            &format!("name,time,value\na,{NOW},1\nb,{NOW},x\n"),
            rules(&cfg),
        ));
        assert!(m.starts_with("f.csv:3: field `value`"), "{m}");
        let m = input_err(from_csv(
            "f.csv",
            "name,time,value\na,yesterday,1\n",
            rules(&cfg),
        ));
        assert!(m.starts_with("f.csv:2: field `time`"), "{m}");
        let m = input_err(from_csv(
            "f.csv",
            &format!("name,time,value\na b,{NOW},1\n"),
            rules(&cfg),
        ));
        assert!(m.starts_with("f.csv:2: field `name`"), "{m}");
        let m = input_err(from_csv(
            "f.csv",
            &format!("name,time,value\na,{NOW},1,2\n"),
            rules(&cfg),
        ));
        assert!(m.starts_with("f.csv:2: 4 fields"), "{m}");
        let m = input_err(from_csv("f.csv", "", rules(&cfg)));
        assert!(m.contains("no header"), "{m}");
    }

    #[test]
    fn json_shapes_and_lines() {
        let cfg = IngestConfig::default();
        let native = format!("[\n {{\"series\":\"a\",\"time\":{NOW},\"value\":1}},\n {{\"series\":\"a\",\"time\":{NOW},\"value\":2}}\n]");
        let s = from_json("n.json", native.as_bytes(), None, rules(&cfg)).unwrap();
        assert_eq!(
            s.items,
            [format!(r#"{{"series":"a","time":{NOW},"value":2.0}}"#)],
            "later wins"
        );
        let host = format!("[{{\"hostId\":\"h1\",\"name\":\"cpu\",\"time\":{NOW},\"value\":1}}]");
        let s = from_json("h.json", host.as_bytes(), None, rules(&cfg)).unwrap();
        assert_eq!(s.route, "/api/v0/tsdb");
        assert!(s.items[0].contains(r#""hostId":"h1""#));
        let svc = format!("[{{\"name\":\"lat\",\"time\":{NOW},\"value\":1}}]");
        let s = from_json("s.json", svc.as_bytes(), Some("web"), rules(&cfg)).unwrap();
        assert_eq!(s.route, "/api/v0/services/web/tsdb");
        let m = input_err(from_json("s.json", svc.as_bytes(), None, rules(&cfg)));
        assert!(m.contains("--service"), "{m}");

        let bad = format!("[\n {{\"series\":\"a\",\"time\":{NOW},\"value\":1}},\n\n {{\"series\":\"a\",\n  \"time\":{NOW},\"value\":\"x\"}}\n]");
        let m = input_err(from_json("b.json", bad.as_bytes(), None, rules(&cfg)));
        assert!(m.starts_with("b.json:4: point 1: field `value`"), "{m}");
        let old = format!("[{{\"series\":\"a\",\"time\":{NOW},\"value\":1}},\n{{\"series\":\"a\",\"time\":1,\"value\":1}}]");
        let m = input_err(from_json("o.json", old.as_bytes(), None, rules(&cfg)));
        assert!(m.starts_with("o.json:2: point 1: field `time`"), "{m}");
        let m = input_err(from_json("x.json", b"[{\"series\":", None, rules(&cfg)));
        assert!(m.starts_with("x.json:1: not JSON"), "{m}");
        let m = input_err(from_json("x.json", b"{}", None, rules(&cfg)));
        assert!(m.contains("expected a JSON array"), "{m}");
    }

    #[test]
    fn element_lines_skip_strings_and_nesting() {
        let text = b"[\n{\"a\":\"],{\\\"\"},\n [1,\n2],\n\n3]";
        assert_eq!(element_lines(text), [2, 3, 6]);
    }

    #[test]
    fn batches_respect_both_limits() {
        let items: Vec<String> = (0..10).map(|i| format!("{{\"i\":{i}}}")).collect();
        let b = batches(&items, 4, 1 << 20);
        assert_eq!(b.len(), 3);
        assert_eq!((b[2].0, &b[2].1[..]), (2, &b"[{\"i\":8},{\"i\":9}]"[..]));
        let b = batches(&items, 100, 20);
        assert!(b.iter().all(|(_, x)| x.len() <= 20), "{b:?}");
        let all: Vec<Value> = b
            .iter()
            .flat_map(|(_, x)| serde_json::from_slice::<Vec<Value>>(x).unwrap())
            .collect();
        assert_eq!(all.len(), 10);
        assert!(batches(&[], 10, 10).is_empty());
    }
}
