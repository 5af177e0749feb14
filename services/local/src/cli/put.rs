//! `carat put`: points from arguments, JSON files and CSV files, validated whole, then
//! sent in batches within the ingest limits, with a progress bar and a summary.

use std::path::PathBuf;
use std::time::Instant;

use carat_core::Config;
use futures::StreamExt as _;

use super::input::{self, FileFormat, Rules, Source};
use super::{http::Api, progress, time, CliError, Conn};

const EXAMPLES: &str = "\
Examples:
  carat put host.h1.cpu 12.5                      one point, now
  carat put --time -5m app.queue.depth=3 app.queue.age=1.5
  carat put --time 2026-12-01T13:00:00Z host.h1.cpu 12.5
  carat put -f points.csv                         name,time,value with a header
  carat put -f points.json                        [{\"series\",\"time\",\"value\"}] or Mackerel's
  carat put -f web.json --service web             Mackerel service metrics [{\"name\",\"time\",\"value\"}]
  some-exporter | carat put -f - --format csv

Every file is validated whole before anything is sent: a bad line names the file, the line
and the field, and nothing is sent (exit 2). See docs/cli.md.";

/// Options of `carat put`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct PutArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Points given here: `NAME VALUE` pairs or `NAME=VALUE` words, any number.
    #[arg(value_name = "POINT", allow_negative_numbers = true)]
    pub points: Vec<String>,
    /// Time of the points given as arguments: epoch seconds, RFC 3339, or relative to now
    /// (`-5m`, `now-1h`). Default: now.
    #[arg(long, short = 't', allow_hyphen_values = true)]
    pub time: Option<String>,
    /// A file of points, JSON or CSV (by its extension, or --format); `-` reads stdin.
    /// Repeatable.
    #[arg(long = "file", short = 'f', value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The format of files whose extension is not .json or .csv (and of stdin).
    #[arg(long, value_enum)]
    pub format: Option<FileFormat>,
    /// The Mackerel service of a JSON file of service metrics ([{"name","time","value"}]).
    #[arg(long)]
    pub service: Option<String>,
    /// Most points per request (also bounded by the config's ingest.max_points_per_request;
    /// bodies stay under ingest.max_body_bytes).
    #[arg(long, default_value_t = 10_000)]
    pub batch_points: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
}

/// What a put sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    pub points: usize,
    pub requests: usize,
    pub retries: u32,
}

/// Reads and validates every source, then sends them.
///
/// # Errors
/// [`CliError::Input`] for bad arguments or files (nothing sent), the server's error,
/// or no answer.
pub async fn run(config: &Config, args: &PutArgs) -> Result<(), CliError> {
    let api = Api::new(&args.conn)?;
    let now = time::now_secs();
    let rules = Rules {
        ingest: &config.ingest,
        now,
    };
    let sources = read_sources(args, rules)?;
    let max_points = args
        .batch_points
        .clamp(1, config.ingest.max_points_per_request.max(1));
    let max_bytes = config.ingest.max_body_bytes;
    let batches: Vec<(&str, usize, bytes::Bytes)> = sources
        .iter()
        .flat_map(|s| {
            input::batches(&s.items, max_points, max_bytes)
                .into_iter()
                .map(move |(n, b)| (s.route.as_str(), n, b))
        })
        .collect();
    let total: usize = batches.iter().map(|(_, n, _)| n).sum();
    let started = Instant::now();
    let bar = progress::bar(total as u64, "put", "points");
    let mut sent = Sent::default();
    let mut posts = futures::stream::iter(batches.into_iter().map(|(route, n, body)| {
        let api = &api;
        async move { api.post(route, body).await.map(|p| (n, p)) }
    }))
    .buffer_unordered(args.concurrency.max(1));
    while let Some(result) = posts.next().await {
        match result {
            Ok((n, posted)) => {
                sent.points += n;
                sent.requests += 1;
                sent.retries += posted.retries;
                bar.inc(n as u64);
            }
            Err(e) => {
                bar.abandon();
                let msg = format!(
                    "{e}\n{} of {total} points were acknowledged before this error (in {} requests); sending the same input again is safe (a repeated point replaces itself)",
                    sent.points, sent.requests
                );
                return Err(match e {
                    CliError::Unreachable(_) => CliError::Unreachable(msg),
                    _ => CliError::Server(msg),
                });
            }
        }
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "put {} points in {} requests in {secs:.2} s{} to {}",
        sent.points,
        sent.requests,
        if sent.retries > 0 {
            format!(" ({} retried after 503/429)", sent.retries)
        } else {
            String::new()
        },
        api.base()
    );
    Ok(())
}

/// Every source of `args`, each validated whole; all errors at once.
fn read_sources(args: &PutArgs, rules: Rules<'_>) -> Result<Vec<Source>, CliError> {
    if args.points.is_empty() && args.files.is_empty() {
        return Err(CliError::Input(
            "nothing to put: give points (NAME VALUE or NAME=VALUE) or --file FILE".into(),
        ));
    }
    if args.time.is_some() && args.points.is_empty() {
        return Err(CliError::Input(
            "--time is for points given as arguments; files carry their own times".into(),
        ));
    }
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    if !args.points.is_empty() {
        let t = match &args.time {
            Some(t) => {
                time::parse(t, rules.now).map_err(|e| CliError::Input(format!("--time: {e}")))?
            }
            None => rules.now,
        };
        match input::from_args(&args.points, t, rules) {
            Ok(s) => sources.push(s),
            Err(e) => errors.push(e.to_string()),
        }
    }
    for path in &args.files {
        match read_file(path, args, rules) {
            Ok(s) => sources.push(s),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(sources)
    } else {
        Err(CliError::Input(format!(
            "{}\nnothing was sent",
            errors.join("\n")
        )))
    }
}

fn read_file(path: &std::path::Path, args: &PutArgs, rules: Rules<'_>) -> Result<Source, CliError> {
    let name = path.display().to_string();
    let format = match (args.format, path.extension().and_then(|e| e.to_str())) {
        (Some(f), _) => f,
        (None, Some(e)) if e.eq_ignore_ascii_case("json") => FileFormat::Json,
        (None, Some(e)) if e.eq_ignore_ascii_case("csv") => FileFormat::Csv,
        _ => {
            return Err(CliError::Input(format!(
                "{name}: cannot tell JSON from CSV: name it .json or .csv, or pass --format"
            )))
        }
    };
    let bytes = if name == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .map_err(|e| CliError::Input(format!("reading stdin: {e}")))?;
        buf
    } else {
        std::fs::read(path).map_err(|e| CliError::Input(format!("{name}: {e}")))?
    };
    match format {
        FileFormat::Json => input::from_json(&name, &bytes, args.service.as_deref(), rules),
        FileFormat::Csv => {
            if args.service.is_some() {
                return Err(CliError::Input(format!(
                    "{name}: --service is for JSON files of Mackerel service metrics"
                )));
            }
            let text = std::str::from_utf8(&bytes)
                .map_err(|e| CliError::Input(format!("{name}: not UTF-8: {e}")))?;
            input::from_csv(&name, text, rules)
        }
    }
}
