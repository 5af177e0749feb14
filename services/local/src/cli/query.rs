//! `carat query`: `GET /api/v1/points` for a series or a glob over a range, printed as a
//! table, CSV or the server's JSON.

use std::io::Write as _;

use carat_core::Config;
use serde_json::Value;

use super::{fmt_value, http::Api, time, CliError, Conn, Format};

const EXAMPLES: &str = "\
Examples:
  carat query host.h1.loadavg5                     the last hour, as stored
  carat query 'host.*.loadavg5' --from -6h         one column per series (up to 5)
  carat query 'host.h1.*' --from -7d --resolution 1h --aggregate max
  carat query app.queue.depth --from 2026-12-01T00:00:00Z --to 2026-12-02T00:00:00Z --format csv
  carat query 'up.*' --format json                 the server's answer as it came

--format csv writes series,time,value rows that `carat put -f` reads back. See docs/cli.md.";

/// Series in a table beyond which it is printed long (series, time, value) rather than
/// one column per series.
pub const WIDE_MAX: usize = 5;

/// Options of `carat query`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct QueryArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// A series name, or a Graphite glob (`*`, `?`, `[0-9]`, `{a,b}`; quote it in a shell).
    pub series: String,
    /// Start (inclusive): epoch seconds, RFC 3339, `now`, or relative (`-6h`, `now-2d`).
    #[arg(long, default_value = "-1h", allow_hyphen_values = true)]
    pub from: String,
    /// End (inclusive), as --from.
    #[arg(long, default_value = "now", allow_hyphen_values = true)]
    pub to: String,
    /// `raw`, `1h`, `1d`, a number of seconds, or `auto` (the server's default: the finest
    /// that fits --max-points).
    #[arg(long)]
    pub resolution: Option<String>,
    /// How buckets are aggregated (not for raw).
    #[arg(long, value_enum)]
    pub aggregate: Option<Aggregate>,
    /// The point budget `auto` resolution fits (server default 11,000).
    #[arg(long)]
    pub max_points: Option<u32>,
    /// Output format. A table has one column per series for up to 5 series, else one row
    /// per point (series, time, value); times in tables are RFC 3339 UTC, in CSV epoch
    /// seconds.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// A table with one row per point even for a few series.
    #[arg(long)]
    pub long: bool,
}

/// Bucket aggregates of the read API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Aggregate {
    Avg,
    Sum,
    Min,
    Max,
    Count,
}

impl Aggregate {
    fn as_str(self) -> &'static str {
        match self {
            Self::Avg => "avg",
            Self::Sum => "sum",
            Self::Min => "min",
            Self::Max => "max",
            Self::Count => "count",
        }
    }
}

/// One series of an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    /// (time, value); `None` for a JSON `null`.
    pub points: Vec<(i64, Option<f64>)>,
}

/// Asks and prints.
///
/// # Errors
/// A bad time (exit 2), the server's error, or no answer.
pub async fn run(_config: &Config, args: &QueryArgs) -> Result<(), CliError> {
    let api = Api::new(&args.conn)?;
    let now = time::now_secs();
    let from = time::parse(&args.from, now).map_err(|e| CliError::Input(format!("--from: {e}")))?;
    let to = time::parse(&args.to, now).map_err(|e| CliError::Input(format!("--to: {e}")))?;
    if to < from {
        return Err(CliError::Input(format!(
            "--to ({}) is before --from ({})",
            time::rfc3339(to),
            time::rfc3339(from)
        )));
    }
    let (from, to, max_points) = (
        from.to_string(),
        to.to_string(),
        args.max_points.map(|m| m.to_string()),
    );
    let mut params = vec![
        ("series", args.series.as_str()),
        ("from", &from),
        ("to", &to),
    ];
    if let Some(r) = &args.resolution {
        params.push(("resolution", r));
    }
    if let Some(a) = args.aggregate {
        params.push(("aggregate", a.as_str()));
    }
    if let Some(m) = &max_points {
        params.push(("max_points", m));
    }
    let Some(series) = api
        .get_shaped(
            "/api/v1/points",
            &params,
            args.format == Format::Json,
            parse_answer,
        )
        .await?
    else {
        return Ok(());
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let text = match args.format {
        Format::Csv => csv(&series),
        _ if series.is_empty() => {
            eprintln!("no series match {:?}", args.series);
            String::new()
        }
        _ if series.len() <= WIDE_MAX && !args.long => wide_table(&series),
        _ => long_table(&series),
    };
    out.write_all(text.as_bytes())?;
    Ok(out.flush()?)
}

/// The series of a `/api/v1/points` answer; `None` if it has another shape.
#[must_use]
pub fn parse_answer(answer: &Value) -> Option<Vec<Series>> {
    answer
        .get("series")?
        .as_array()?
        .iter()
        .map(|s| {
            let name = s.get("name")?.as_str()?.to_string();
            let points = s
                .get("points")?
                .as_array()?
                .iter()
                .map(|p| Some((p.get(0)?.as_i64()?, value(p.get(1)?)?)))
                .collect::<Option<Vec<_>>>()?;
            Some(Series { name, points })
        })
        .collect()
}

/// A value as the read API writes it: a number, `"NaN"`, `"+Inf"`, `"-Inf"`, or null.
fn value(v: &Value) -> Option<Option<f64>> {
    match v {
        Value::Null => Some(None),
        Value::Number(n) => n.as_f64().map(Some),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(Some(f64::NAN)),
            "+Inf" => Some(Some(f64::INFINITY)),
            "-Inf" => Some(Some(f64::NEG_INFINITY)),
            _ => None,
        },
        _ => None,
    }
}

fn cell(v: Option<f64>) -> String {
    v.map(fmt_value).unwrap_or_default()
}

/// `series,time,value` rows with a header; times in epoch seconds.
#[must_use]
pub fn csv(series: &[Series]) -> String {
    let mut out = String::from("series,time,value\n");
    for s in series {
        for &(t, v) in &s.points {
            out.push_str(&format!("{},{t},{}\n", s.name, cell(v)));
        }
    }
    out
}

/// One row per time, one column per series.
#[must_use]
pub fn wide_table(series: &[Series]) -> String {
    let mut times: Vec<i64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    times.sort_unstable();
    times.dedup();
    let mut rows = vec![std::iter::once("time".to_string())
        .chain(series.iter().map(|s| s.name.clone()))
        .collect::<Vec<_>>()];
    let lookups: Vec<std::collections::HashMap<i64, Option<f64>>> = series
        .iter()
        .map(|s| s.points.iter().copied().collect())
        .collect();
    for t in times {
        let mut row = vec![time::rfc3339(t)];
        row.extend(
            lookups
                .iter()
                .map(|m| m.get(&t).map(|v| cell(*v)).unwrap_or_default()),
        );
        rows.push(row);
    }
    align(&rows)
}

/// One row per point: series, time, value.
#[must_use]
pub fn long_table(series: &[Series]) -> String {
    let mut rows = vec![vec![
        "series".to_string(),
        "time".to_string(),
        "value".to_string(),
    ]];
    for s in series {
        for &(t, v) in &s.points {
            rows.push(vec![s.name.clone(), time::rfc3339(t), cell(v)]);
        }
    }
    align(&rows)
}

/// Columns padded to their widest cell: text left-aligned, values (every column of a
/// wide table but the first; the last of a long one) right-aligned.
fn align(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let long = rows
        .first()
        .is_some_and(|r| r.first().is_some_and(|h| h == "series"));
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let right = if long { c == cols - 1 } else { c > 0 };
            if c > 0 {
                line.push_str("  ");
            }
            if right {
                line.push_str(&format!("{cell:>w$}", w = widths[c]));
            } else {
                line.push_str(&format!("{cell:<w$}", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer() -> Vec<Series> {
        parse_answer(&json!({"aggregate": null, "series": [
            {"name": "a.b", "resolution": 0, "points": [[1764594000, 1.5], [1764594060, "NaN"]]},
            {"name": "a.long.name", "resolution": 0, "points": [[1764594060, 20], [1764594120, null]]},
        ]}))
        .unwrap()
    }

    #[test]
    fn tables_and_csv() {
        let s = answer();
        assert_eq!(
            wide_table(&s),
            "time                  a.b  a.long.name\n\
             2025-12-01T13:00:00Z  1.5\n\
             2025-12-01T13:01:00Z  NaN           20\n\
             2025-12-01T13:02:00Z\n"
        );
        assert_eq!(
            long_table(&s),
            "series       time                  value\n\
             a.b          2025-12-01T13:00:00Z    1.5\n\
             a.b          2025-12-01T13:01:00Z    NaN\n\
             a.long.name  2025-12-01T13:01:00Z     20\n\
             a.long.name  2025-12-01T13:02:00Z\n"
        );
        assert_eq!(
            csv(&s),
            "series,time,value\na.b,1764594000,1.5\na.b,1764594060,NaN\na.long.name,1764594060,20\na.long.name,1764594120,\n"
        );
        assert_eq!(
            parse_answer(&json!({"series": [{"name": "x", "points": [["t", 1]]}]})),
            None
        );
    }
}
