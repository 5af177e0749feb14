//! The backup writer: `carat replay --from <time|trim-horizon> [--until-caught-up]`.
//!
//! Runs the writer over every shard from AT_TIMESTAMP or TRIM_HORIZON, with no
//! checkpoint, beside the running main writer — as the original system's second Lambda
//! did. Because the head merge keeps the greatest (stamp, value) per time, replaying
//! records the main writer already stored re-flushes the same bytes, and an old record
//! never undoes a newer value (docs/write-path.md).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use carat_core::Config;
use carat_store::ports::{Log, LogBatch, LogRecord, StartAt};
use carat_store::StoreError;
use carat_writer::Writer;
use tokio::task::JoinSet;
use tracing::info;

use crate::poller::{list_shards, ShardPoller, ShardStats};
use crate::state::{AppState, Shutdown};
use crate::LocalError;

/// Options of `carat replay`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Examples:\n  carat replay --from trim-horizon --until-caught-up\n  carat replay --from 2026-11-25T13:00:00Z\n\nOn a terminal a progress line shows records read and shards at the tip; otherwise it is logged every 10 s."
)]
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
    let progress = Arc::new(Progress::new(shards.len()));
    let counted: Arc<dyn Log> = Arc::new(CountingLog {
        inner: state.clients.log.clone(),
        progress: Arc::clone(&progress),
    });
    let reporter = tokio::spawn(report_progress(Arc::clone(&progress)));
    let mut tasks = JoinSet::new();
    for shard in shards {
        let mut poller = backup_poller(&state.config, state, Arc::clone(&writer), until_caught_up);
        poller.log = Arc::clone(&counted);
        let (from, shutdown) = (from.clone(), shutdown.clone());
        tasks.spawn(async move { poller.run(&shard, from, shutdown).await });
    }
    let total = join_all(&mut tasks, &progress).await;
    reporter.abort();
    progress.finish();
    let total = total?;
    info!(?total, "replay finished");
    Ok(total)
}

async fn join_all(
    tasks: &mut JoinSet<Result<ShardStats, std::io::Error>>,
    progress: &Progress,
) -> Result<ShardStats, LocalError> {
    let mut total = ShardStats::default();
    while let Some(done) = tasks.join_next().await {
        progress.done.fetch_add(1, Ordering::Relaxed);
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
    Ok(total)
}

/// How far the replay is: records read, shards finished, how far behind each shard's tip
/// its last read was (Kinesis gives no record count ahead, so there is no percentage).
struct Progress {
    shards: usize,
    records: AtomicU64,
    done: AtomicU64,
    /// Per shard: its last `millis_behind_latest`.
    behind: Mutex<HashMap<String, i64>>,
    /// Iterator ⇒ shard, to attribute a read to its shard.
    iterators: Mutex<HashMap<String, String>>,
    bar: indicatif::ProgressBar,
}

impl Progress {
    fn new(shards: usize) -> Self {
        Self {
            shards,
            records: AtomicU64::new(0),
            done: AtomicU64::new(0),
            behind: Mutex::new(HashMap::new()),
            iterators: Mutex::new(HashMap::new()),
            bar: crate::cli::progress::spinner("replay"),
        }
    }

    fn line(&self) -> String {
        let (at_tip, behind_ms) = self.behind.lock().map_or((0, 0), |b| {
            (
                b.values().filter(|&&ms| ms == 0).count(),
                b.values().copied().max().unwrap_or(0),
            )
        });
        format!(
            "{} records read; shards: {} finished, {at_tip} at the tip, of {}; furthest {:.1} s behind",
            self.records.load(Ordering::Relaxed),
            self.done.load(Ordering::Relaxed),
            self.shards,
            behind_ms as f64 / 1000.0
        )
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Every 200 ms on a terminal (the spinner), else a log line every 10 s.
async fn report_progress(progress: Arc<Progress>) {
    let terminal = crate::cli::progress::on_terminal();
    let every = Duration::from_millis(if terminal { 200 } else { 10_000 });
    loop {
        tokio::time::sleep(every).await;
        if terminal {
            progress.bar.set_message(progress.line());
        } else {
            info!("replay: {}", progress.line());
        }
    }
}

/// The log, counting what the replay's pollers read.
struct CountingLog {
    inner: Arc<dyn Log>,
    progress: Arc<Progress>,
}

#[async_trait]
impl Log for CountingLog {
    async fn put(&self, records: &[LogRecord]) -> Result<Vec<String>, StoreError> {
        self.inner.put(records).await
    }

    async fn shards(&self) -> Result<Vec<String>, StoreError> {
        self.inner.shards().await
    }

    async fn iterator(&self, shard_id: &str, start: &StartAt) -> Result<String, StoreError> {
        let it = self.inner.iterator(shard_id, start).await?;
        if let Ok(mut its) = self.progress.iterators.lock() {
            its.insert(it.clone(), shard_id.to_string());
        }
        Ok(it)
    }

    async fn read(&self, iterator: &str, limit: usize) -> Result<LogBatch, StoreError> {
        let batch = self.inner.read(iterator, limit).await?;
        let p = &self.progress;
        p.records
            .fetch_add(batch.records.len() as u64, Ordering::Relaxed);
        if let Ok(mut its) = p.iterators.lock() {
            if let Some(shard) = its.remove(iterator) {
                if let Ok(mut behind) = p.behind.lock() {
                    behind.insert(shard.clone(), batch.millis_behind_latest);
                }
                if let Some(next) = &batch.next_iterator {
                    its.insert(next.clone(), shard);
                }
            }
        }
        Ok(batch)
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use carat_store::fake::FakeLog;

    use super::*;

    #[tokio::test]
    async fn progress_counts_what_each_shard_read_and_how_far_behind_it_is() {
        let inner = Arc::new(FakeLog::new(2));
        let records: Vec<LogRecord> = (0..10)
            .map(|i| LogRecord {
                partition_key: format!("b{i}"),
                data: vec![1],
            })
            .collect();
        inner.put(&records).await.expect("fake put");
        let progress = Arc::new(Progress::new(2));
        let log = CountingLog {
            inner: inner.clone(),
            progress: Arc::clone(&progress),
        };
        let shards = log.shards().await.expect("shards");
        for shard in &shards {
            let mut it = log
                .iterator(shard, &StartAt::TrimHorizon)
                .await
                .expect("iterator");
            // Small reads: the counts add up across a shard's iterators.
            loop {
                let batch = log.read(&it, 3).await.expect("read");
                match batch.next_iterator {
                    Some(next) if !batch.records.is_empty() => it = next,
                    _ => break,
                }
            }
        }
        assert_eq!(progress.records.load(Ordering::Relaxed), 10);
        let behind = progress.behind.lock().expect("lock").clone();
        assert_eq!(behind.len(), 2, "{behind:?}");
        progress.done.fetch_add(1, Ordering::Relaxed);
        let line = progress.line();
        assert!(
            line.starts_with("10 records read; shards: 1 finished, 2 at the tip, of 2"),
            "{line}"
        );
    }
}
