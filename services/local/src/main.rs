//! `carat`: carat on one machine. `carat local` serves the local system (see `serve`).

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "carat", version, about = "carat on one machine")]
struct Cli {
    /// carat config file (TOML); without it CARAT_CONFIG (TOML text) or CARAT_CONFIG_FILE
    /// (a path), else the built-in defaults, which match the local system.
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
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,aws_config=warn".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let cli = Cli::parse();
    let result = async {
        let config =
            carat_local::config::load(cli.config.as_deref(), |name| std::env::var(name).ok())?;
        match cli.command {
            Command::Local(args) => carat_local::serve::run(config, &args).await,
            Command::Replay(args) => carat_local::replay::run(config, &args).await,
        }
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("carat: {e}");
            ExitCode::FAILURE
        }
    }
}
