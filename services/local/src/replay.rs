//! The backup writer: `carat replay --from <time|trim-horizon> [--until-caught-up]`.
//!
//! Runs the writer over every shard from AT_TIMESTAMP or TRIM_HORIZON, with no
//! checkpoint, beside the running main writer — as the original system's second Lambda
//! did. Because the head merge keeps the greatest (stamp, value) per time, replaying
//! records the main writer already stored re-flushes the same bytes, and an old record
//! never undoes a newer value (docs/write-path.md).

use std::sync::Arc;

use carat_core::Config;
use carat_store::ports::StartAt;
use carat_writer::Writer;
use tokio::task::JoinSet;
use tracing::info;

use crate::poller::{list_shards, ShardPoller, ShardStats};
use crate::state::{AppState, Shutdown};
use crate::LocalError;

/// Options of `carat replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Where to start: an RFC 3339 time (AT_TIMESTAMP, e.g. 2026-11-25T13:00:00Z) or
    /// `trim-horizon` (the oldest record the stream keeps).
    #[arg(long, value_parser = parse_from)]
    pub from: StartAt,
    /// Stop once every shard is read up to its tip, instead of following it.
    #[arg(long)]
    pub until_caught_up: bool,
}

/// Parses `--from`.
///
/// # Errors
/// A message saying what is accepted.
pub fn parse_from(s: &str) -> Result<StartAt, String> {
    if s.eq_ignore_ascii_case("trim-horizon") || s.eq_ignore_ascii_case("trim_horizon") {
        return Ok(StartAt::TrimHorizon);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| StartAt::AtTimestamp(t.timestamp_millis()))
        .map_err(|e| format!("expected an RFC 3339 time or `trim-horizon`: {e}"))
}

/// A shard poller over `state`'s clients without checkpoints, running `writer`.
#[must_use]
pub fn backup_poller(
    config: &Config,
    state: &AppState,
    writer: Arc<Writer>,
    until_caught_up: bool,
) -> ShardPoller {
    let mut p = crate::poller::main_poller(config, state, writer);
    p.checkpoints = None;
    p.until_caught_up = until_caught_up;
    p
}

/// Replays every shard from `from` with the writer until shutdown (or until caught up).
///
/// # Errors
/// Listing shards failed, or a poller's task failed.
pub async fn replay(
    state: &AppState,
    from: StartAt,
    until_caught_up: bool,
    shutdown: Shutdown,
) -> Result<ShardStats, LocalError> {
    let writer = Arc::new(crate::poller::writer(state));
    let shards = list_shards(state.clients.log.as_ref(), &shutdown)
        .await
        .map_err(|e| LocalError::Task {
            task: "replay",
            detail: e.to_string(),
        })?;
    info!(
        shards = shards.len(),
        ?from,
        until_caught_up,
        "replay starting"
    );
    let mut tasks = JoinSet::new();
    for shard in shards {
        let poller = backup_poller(&state.config, state, Arc::clone(&writer), until_caught_up);
        let (from, shutdown) = (from.clone(), shutdown.clone());
        tasks.spawn(async move { poller.run(&shard, from, shutdown).await });
    }
    let mut total = ShardStats::default();
    while let Some(done) = tasks.join_next().await {
        let stats = done
            .map_err(|e| LocalError::Task {
                task: "replay",
                detail: e.to_string(),
            })?
            .map_err(|e| LocalError::Task {
                task: "replay",
                detail: e.to_string(),
            })?;
        total.batches += stats.batches;
        total.records += stats.records;
        total.points += stats.points;
        total.retried_batches += stats.retried_batches;
        total.skipped_batches += stats.skipped_batches;
    }
    info!(?total, "replay finished");
    Ok(total)
}

/// `carat replay`: connects, replays, stops on SIGINT/SIGTERM (or when caught up).
///
/// # Errors
/// Connecting or replaying failed.
pub async fn run(config: Config, args: &ReplayArgs) -> Result<(), LocalError> {
    let config = Arc::new(config);
    let clients = crate::clients::connect(&config).await?;
    let state = AppState {
        config,
        clients,
        probe: Arc::new(crate::probe::LocalProbe::off()),
    };
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.send_replace(true);
        }
    });
    let total = replay(
        &state,
        args.from.clone(),
        args.until_caught_up,
        Shutdown::new(stop_rx),
    )
    .await?;
    println!(
        "replayed {} records ({} points) in {} batches; {} retried, {} skipped",
        total.records, total.points, total.batches, total.retried_batches, total.skipped_batches
    );
    Ok(())
}
