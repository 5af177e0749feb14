//! `carat`: carat on one machine (`carat local`, `carat replay`) and the everyday client
//! (`carat put`, `query`, `series`, `bench`; see docs/cli.md).

use std::{path::PathBuf, process::ExitCode};

use carat_local::cli::{self, CliError};
use clap::{Parser, Subcommand};

const AFTER_HELP: &str = "\
The client commands (put, query, series, bench) talk to --url (env CARAT_URL, default
http://127.0.0.1:8080) with --key (env CARAT_KEY; default carat-dev-key, for loopback URLs
only). Exit codes: 0 done, 1 the server refused or failed (its message is printed),
2 bad usage or bad input (nothing was sent), 3 carat could not be reached,
4 bench --verify found missing points. See docs/cli.md.";

#[derive(Parser)]
#[command(name = "carat", version, about = "carat on one machine, and its command-line client", after_help = AFTER_HELP)]
struct Cli {
    /// carat config file (TOML); without it CARAT_CONFIG (TOML text) or CARAT_CONFIG_FILE
    /// (a path), else the built-in defaults, which match the local system. The client
    /// commands take the ingest limits from it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve health and the ingest API on 127.0.0.1:8080 and run the stream pollers and schedules.
    Local(carat_local::serve::LocalArgs),
    /// Backup writer: run the writer over every shard from a time or TRIM_HORIZON, beside the running one.
    Replay(carat_local::replay::ReplayArgs),
    /// Send points: from arguments, JSON files or CSV files.
    Put(cli::put::PutArgs),
    /// Read the points of a series or a glob over a range, as a table, CSV or JSON.
    Query(cli::query::QueryArgs),
    /// List the series matching a glob, with their labels.
    Series(cli::series::SeriesArgs),
    /// Load generator: Mackerel-agent-shaped posts, throughput and latency, optionally read back.
    Bench(cli::bench::BenchArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Local(_) | Command::Replay(_));
    init_tracing(serving);
    let config =
        match carat_local::config::load(cli.config.as_deref(), |name| std::env::var(name).ok()) {
            Ok(c) => c,
            Err(e) if serving => return served(Err(e)),
            Err(e) => {
                // A client's config only gives the ingest limits: a bad one is bad usage.
                eprintln!("carat: {e}");
                return ExitCode::from(2);
            }
        };
    let client = match cli.command {
        Command::Local(args) => return served(carat_local::serve::run(config, &args).await),
        Command::Replay(args) => return served(carat_local::replay::run(config, &args).await),
        Command::Put(args) => cli::put::run(&config, &args).await,
        Command::Query(args) => cli::query::run(&config, &args).await,
        Command::Series(args) => cli::series::run(&config, &args).await,
        Command::Bench(args) => cli::bench::run(&config, &args).await,
    };
    match client {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("carat: {e}");
            ExitCode::from(CliError::exit_code(&e))
        }
    }
}

/// `local` and `replay` log to stdout at info; the client commands keep stdout for their
/// output and log warnings only, to stderr.
fn init_tracing(serving: bool) {
    let filter = |default: &str| {
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into())
    };
    if serving {
        tracing_subscriber::fmt()
            .with_env_filter(filter("info,aws_config=warn"))
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter("warn"))
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

fn served(result: Result<(), carat_local::LocalError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("carat: {e}");
            ExitCode::FAILURE
        }
    }
}
