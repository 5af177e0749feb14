//! `carat series`: the series of the key's tenant matching a glob (`GET /api/v1/names`),
//! with their labels when they came with some (Prometheus remote_write).

use std::io::Write as _;

use carat_core::Config;
use serde_json::Value;

use super::{http::Api, CliError, Conn, Format};

const EXAMPLES: &str = "\
Examples:
  carat series                          every series (of up to 31 dotted segments)
  carat series 'host.h1.*'              one host's metrics
  carat series 'host.*.loadavg5'        one metric of every host
  carat series 'up.*' --format json     the server's answer, labels included

See docs/cli.md.";

/// Most segments the default glob reaches: `{*,*.*,…}` must stay within the reader's
/// 1,024-byte pattern limit (31 alternatives take 993 bytes).
const DEFAULT_DEPTH: usize = 31;

/// Options of `carat series`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct SeriesArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// A Graphite glob (`*` and `?` within a segment, `[0-9]`, `{a,b}`); quote it in a
    /// shell. Default: every series of up to 31 segments.
    pub glob: Option<String>,
    /// Most series listed (the server answers 413 if more match; its default is 1,000).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Output format: a table (name and labels), CSV (`series,labels`) or the server's JSON.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// The glob `carat series` uses without one: names of 1 to `depth` segments.
#[must_use]
pub fn every_series(depth: usize) -> String {
    let alts: Vec<String> = (1..=depth).map(|n| vec!["*"; n].join(".")).collect();
    format!("{{{}}}", alts.join(","))
}

/// Lists and prints.
///
/// # Errors
/// The server's error, or no answer.
pub async fn run(_config: &Config, args: &SeriesArgs) -> Result<(), CliError> {
    let api = Api::new(&args.conn)?;
    let glob = args
        .glob
        .clone()
        .unwrap_or_else(|| every_series(DEFAULT_DEPTH));
    let limit = args.limit.map(|l| l.to_string());
    let mut params = vec![("match", glob.as_str())];
    if let Some(l) = &limit {
        params.push(("limit", l));
    }
    let Some(names) = api
        .get_shaped(
            "/api/v1/names",
            &params,
            args.format == Format::Json,
            parse_names,
        )
        .await?
    else {
        return Ok(());
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let text = match args.format {
        Format::Csv => {
            let mut s = String::from("series,labels\n");
            for (name, labels) in &names {
                s.push_str(&format!("{name},\"{}\"\n", labels.replace('"', "\"\"")));
            }
            s
        }
        _ => {
            if names.is_empty() {
                eprintln!("no series match {glob:?}");
            }
            let width = names.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
            let mut s = String::new();
            for (name, labels) in &names {
                let line = format!("{name:<width$}  {labels}");
                s.push_str(line.trim_end());
                s.push('\n');
            }
            s
        }
    };
    out.write_all(text.as_bytes())?;
    Ok(out.flush()?)
}

/// (name, labels as `{k="v", …}` or empty) of a `/api/v1/names` answer.
#[must_use]
pub fn parse_names(answer: &Value) -> Option<Vec<(String, String)>> {
    answer
        .get("names")?
        .as_array()?
        .iter()
        .map(|n| {
            let name = n.get("name")?.as_str()?.to_string();
            let labels = match n.get("labels").and_then(Value::as_object) {
                Some(m) if !m.is_empty() => {
                    let pairs: Vec<String> = m
                        .iter()
                        .map(|(k, v)| {
                            format!(
                                "{k}={}",
                                Value::String(v.as_str().unwrap_or_default().to_string())
                            )
                        })
                        .collect();
                    format!("{{{}}}", pairs.join(", "))
                }
                _ => String::new(),
            };
            Some((name, labels))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_default_glob_fits_the_pattern_limit() {
        assert_eq!(every_series(3), "{*,*.*,*.*.*}");
        assert!(every_series(DEFAULT_DEPTH).len() <= 1_024);
        assert!(every_series(DEFAULT_DEPTH + 1).len() > 1_024);
    }

    #[test]
    fn names_with_and_without_labels() {
        let a = json!({"names": [{"name": "host.h1.cpu"}, {"name": "up.job.n", "labels": {"__name__": "up", "job": "n"}}]});
        assert_eq!(
            parse_names(&a).unwrap(),
            [
                ("host.h1.cpu".to_string(), String::new()),
                (
                    "up.job.n".to_string(),
                    r#"{__name__="up", job="n"}"#.to_string()
                )
            ]
        );
    }
}
