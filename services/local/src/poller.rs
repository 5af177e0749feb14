//! Per-shard Kinesis pollers: carat-local's stand-in for Lambda's Kinesis event source
//! mapping. Each shard gets a task that reads records, batches them (batch size and a
//! maximum batching window), hands them to the writer as the same `KinesisEvent` Lambda
//! would, and checkpoints after success.
//!
//! - Start: the checkpoint under `<checkpoint_dir>/<stream>/<shard>` (AFTER_SEQUENCE_NUMBER),
//!   or the configured start (TRIM_HORIZON for the main writer) on first start.
//! - `batchItemFailures`: the checkpoint moves to the record before the reported one,
//!   the rest of the batch is dropped, and reading resumes at the reported record after
//!   a backoff — as the ESM does with ReportBatchItemFailures.
//! - Handler error: the same batch is retried with backoff, without limit by default
//!   (`max_retry_attempts = 0`, as the stack's ESM); with a positive limit it is then
//!   written to the failed-records directory and skipped (the ESM's on-failure destination).
//! - Expired iterator: a new one from the checkpoint (records read past it are re-read).
//! - The checkpoint is written atomically (temp file + rename), only after the writer
//!   reported success, so a crash re-processes at most one batch (harmless: idempotent).
//!
//! The backup writer ([`crate::replay`]) runs the same loop without checkpoints.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use carat_store::ports::{Log, LogEntry, StartAt};
use carat_store::StoreError;
use carat_writer::sink::{BadRecord, DirSink, FailureSink as _};
use carat_writer::{event, Writer};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::state::Shutdown;

/// Region written into the events' ARNs (cosmetic locally).
const REGION: &str = "us-east-1";

/// Persisted positions of the pollers of one stream.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    dir: PathBuf,
}

impl Checkpoints {
    /// Checkpoints of `stream` under `root` (`.run/checkpoints`).
    #[must_use]
    pub fn new(root: impl AsRef<Path>, stream: &str) -> Self {
        Self {
            dir: root.as_ref().join(stream),
        }
    }

    fn path(&self, shard_id: &str) -> PathBuf {
        self.dir.join(shard_id)
    }

    /// The last processed sequence number of `shard_id`, if any.
    ///
    /// # Errors
    /// I/O errors other than "not found".
    pub async fn load(&self, shard_id: &str) -> std::io::Result<Option<String>> {
        match tokio::fs::read_to_string(self.path(shard_id)).await {
            Ok(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Persists `sequence` as the last processed record of `shard_id`: write a temp file,
    /// then rename it over the old one (atomic on POSIX).
    ///
    /// # Errors
    /// I/O errors.
    pub async fn store(&self, shard_id: &str, sequence: &str) -> std::io::Result<()> {
        tokio::fs::create_dir_all(&self.dir).await?;
        let tmp = self.dir.join(format!(".{shard_id}.tmp"));
        tokio::fs::write(&tmp, sequence).await?;
        tokio::fs::rename(&tmp, self.path(shard_id)).await
    }
}

/// What one shard poller needs.
#[derive(Clone)]
pub struct ShardPoller {
    pub log: Arc<dyn Log>,
    pub writer: Arc<Writer>,
    pub stream: String,
    pub batch_size: usize,
    pub max_batching_window: Duration,
    pub idle_poll: Duration,
    pub retry_backoff: Duration,
    pub max_backoff: Duration,
    pub max_retry_attempts: u32,
    /// `None` for the backup writer: it keeps no position.
    pub checkpoints: Option<Checkpoints>,
    /// Where skipped batches go after `max_retry_attempts` handler errors.
    pub failed: DirSink,
    /// Stop once the shard is read up to its tip (replay `--until-caught-up`).
    pub until_caught_up: bool,
}

/// What a poller did before it stopped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ShardStats {
    pub batches: u64,
    pub records: u64,
    pub points: u64,
    pub retried_batches: u64,
    pub skipped_batches: u64,
}

impl ShardPoller {
    /// Polls `shard_id` from its checkpoint (or `initial`) until `shutdown`, the end of
    /// a closed shard, or (with `until_caught_up`) the tip of the shard.
    ///
    /// # Errors
    /// Checkpoint I/O errors; store errors are retried, never returned.
    pub async fn run(
        &self,
        shard_id: &str,
        initial: StartAt,
        shutdown: Shutdown,
    ) -> Result<ShardStats, std::io::Error> {
        let mut stats = ShardStats::default();
        let mut position = match &self.checkpoints {
            Some(c) => c
                .load(shard_id)
                .await?
                .map_or(initial, StartAt::AfterSequence),
            None => initial,
        };
        info!(shard_id, ?position, stream = %self.stream, "poller starting");
        let mut backoff = self.retry_backoff;
        let mut iterator: Option<String> = None;
        let mut pending: Vec<LogEntry> = Vec::new();
        let mut first_pending_at: Option<Instant> = None;
        let mut attempts = 0u32;
        let mut shard_closed = false;
        loop {
            if shutdown.is_set() {
                break;
            }
            let it = match &iterator {
                Some(it) => it.clone(),
                None => match self.log.iterator(shard_id, &position).await {
                    Ok(it) => {
                        iterator = Some(it.clone());
                        it
                    }
                    Err(e) => {
                        warn!(shard_id, error = %e, "GetShardIterator failed; backing off");
                        sleep_or_stop(backoff, shutdown.clone()).await;
                        backoff = (backoff * 2).min(self.max_backoff);
                        continue;
                    }
                },
            };
            let mut caught_up = false;
            if !shard_closed && pending.len() < self.batch_size {
                match self.log.read(&it, self.batch_size - pending.len()).await {
                    Ok(batch) => {
                        backoff = self.retry_backoff;
                        caught_up = batch.records.is_empty() && batch.millis_behind_latest == 0;
                        if !batch.records.is_empty() && first_pending_at.is_none() {
                            first_pending_at = Some(Instant::now());
                        }
                        pending.extend(batch.records);
                        match batch.next_iterator {
                            Some(next) => iterator = Some(next),
                            None => shard_closed = true,
                        }
                    }
                    Err(e) if e.is_iterator_expired() => {
                        debug!(
                            shard_id,
                            "iterator expired; re-creating it from the checkpoint"
                        );
                        iterator = None;
                        pending.clear();
                        first_pending_at = None;
                        continue;
                    }
                    Err(e) => {
                        warn!(shard_id, error = %e, "GetRecords failed; backing off");
                        sleep_or_stop(backoff, shutdown.clone()).await;
                        backoff = (backoff * 2).min(self.max_backoff);
                        continue;
                    }
                }
            }

            let window_passed =
                first_pending_at.is_some_and(|t| t.elapsed() >= self.max_batching_window);
            let ready = !pending.is_empty()
                && (pending.len() >= self.batch_size
                    || window_passed
                    || shard_closed
                    || (caught_up && self.until_caught_up));
            if ready {
                let outcome = self.invoke(shard_id, &pending, &mut stats).await;
                match outcome {
                    Invoked::Done => {
                        attempts = 0;
                        backoff = self.retry_backoff;
                        let last = pending.last().map(|e| e.sequence_number.clone());
                        if let Some(last) = last {
                            self.checkpoint(shard_id, &last).await?;
                            position = StartAt::AfterSequence(last);
                        }
                        pending.clear();
                        first_pending_at = None;
                    }
                    Invoked::FailedAt(i) => {
                        // Records before the reported one are stored: checkpoint them,
                        // then re-read from the reported one.
                        stats.retried_batches += 1;
                        if let Some(prev) = i.checked_sub(1).and_then(|p| pending.get(p)) {
                            let prev = prev.sequence_number.clone();
                            self.checkpoint(shard_id, &prev).await?;
                        }
                        position = pending
                            .get(i)
                            .map_or(position, |e| StartAt::AtSequence(e.sequence_number.clone()));
                        pending.clear();
                        first_pending_at = None;
                        iterator = None;
                        shard_closed = false;
                        sleep_or_stop(backoff, shutdown.clone()).await;
                        backoff = (backoff * 2).min(self.max_backoff);
                    }
                    Invoked::Error(e) => {
                        attempts += 1;
                        // 0: retry without limit, as the stack's MaximumRetryAttempts = -1.
                        if self.max_retry_attempts > 0 && attempts >= self.max_retry_attempts {
                            warn!(shard_id, error = %e, attempts, records = pending.len(), "batch failed too often; sent to failed records and skipped");
                            self.send_to_failed(shard_id, &pending, &e).await;
                            stats.skipped_batches += 1;
                            attempts = 0;
                            if let Some(last) = pending.last().map(|e| e.sequence_number.clone()) {
                                self.checkpoint(shard_id, &last).await?;
                                position = StartAt::AfterSequence(last);
                            }
                            pending.clear();
                            first_pending_at = None;
                        } else {
                            warn!(shard_id, error = %e, attempts, "writer failed; retrying the batch");
                            sleep_or_stop(backoff, shutdown.clone()).await;
                            backoff = (backoff * 2).min(self.max_backoff);
                        }
                    }
                }
                continue;
            }
            if shard_closed && pending.is_empty() {
                info!(shard_id, "shard closed and fully read");
                break;
            }
            if caught_up && self.until_caught_up && pending.is_empty() {
                info!(shard_id, records = stats.records, "caught up");
                break;
            }
            if caught_up || pending.is_empty() || pending.len() < self.batch_size {
                // Nothing (more) to read right now: wait, but not past the batching window.
                let wait = first_pending_at.map_or(self.idle_poll, |t| {
                    self.max_batching_window
                        .saturating_sub(t.elapsed())
                        .min(self.idle_poll)
                });
                sleep_or_stop(wait.max(Duration::from_millis(1)), shutdown.clone()).await;
            }
        }
        Ok(stats)
    }

    async fn checkpoint(&self, shard_id: &str, sequence: &str) -> std::io::Result<()> {
        match &self.checkpoints {
            Some(c) => c.store(shard_id, sequence).await,
            None => Ok(()),
        }
    }

    async fn invoke(
        &self,
        shard_id: &str,
        pending: &[LogEntry],
        stats: &mut ShardStats,
    ) -> Invoked {
        let ev = event::event(REGION, &self.stream, pending);
        match self.writer.process(&ev.records).await {
            Ok(report) => {
                stats.batches += 1;
                stats.points += report.processed_points;
                match report.first_failed {
                    None => {
                        stats.records += pending.len() as u64;
                        Invoked::Done
                    }
                    Some(seq) => {
                        let i = pending
                            .iter()
                            .position(|e| e.sequence_number == seq)
                            .unwrap_or(0);
                        stats.records += i as u64;
                        debug!(shard_id, sequence = %seq, "batch item failure");
                        Invoked::FailedAt(i)
                    }
                }
            }
            Err(e) => Invoked::Error(e.to_string()),
        }
    }

    async fn send_to_failed(&self, shard_id: &str, pending: &[LogEntry], reason: &str) {
        for e in pending {
            let bad = BadRecord {
                shard_id,
                sequence_number: &e.sequence_number,
                partition_key: &e.partition_key,
                data: &e.data,
                reason,
            };
            if let Err(err) = self.failed.put(&bad).await {
                warn!(shard_id, error = %err, "cannot write failed record");
            }
        }
    }
}

enum Invoked {
    Done,
    /// Index in the batch of the first record not stored.
    FailedAt(usize),
    Error(String),
}

async fn sleep_or_stop(d: Duration, shutdown: Shutdown) {
    tokio::select! {
        () = tokio::time::sleep(d) => {}
        () = shutdown.wait() => {}
    }
}

/// The shards of the stream, retried while the log is unreachable (retryable errors).
///
/// # Errors
/// A non-retryable error, or shutdown before the shards were known.
pub async fn list_shards(log: &dyn Log, shutdown: &Shutdown) -> Result<Vec<String>, StoreError> {
    let mut backoff = Duration::from_millis(200);
    loop {
        match log.shards().await {
            Ok(s) => return Ok(s),
            Err(e) if e.is_retryable() && !shutdown.is_set() => {
                warn!(error = %e, "ListShards failed; retrying");
                sleep_or_stop(backoff, shutdown.clone()).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The writer of the local system: the store clients, failed records under
/// `poller.failed_records_dir`, the system clock, EMF off (carat-local logs instead).
#[must_use]
pub fn writer(state: &crate::state::AppState) -> Writer {
    Writer::new(
        Arc::clone(&state.config),
        state.clients.head.clone(),
        state.clients.table.clone(),
        state.clients.catalog.clone(),
        Arc::new(DirSink::new(&state.config.poller.failed_records_dir)),
        Arc::new(carat_writer::SystemClock),
    )
    .with_name_sets(state.clients.catalog.clone())
    .with_emf(false)
}

/// A poller with the `[poller]` settings and checkpoints under `poller.checkpoint_dir`.
#[must_use]
pub fn main_poller(
    config: &carat_core::Config,
    state: &crate::state::AppState,
    writer: Arc<Writer>,
) -> ShardPoller {
    let p = &config.poller;
    ShardPoller {
        log: state.clients.log.clone(),
        writer,
        stream: config.resources.stream.clone(),
        batch_size: p.batch_size,
        max_batching_window: Duration::from_millis(p.max_batching_window_ms),
        idle_poll: Duration::from_millis(p.idle_poll_ms),
        retry_backoff: Duration::from_millis(p.retry_backoff_ms),
        max_backoff: Duration::from_millis(p.max_backoff_ms),
        max_retry_attempts: p.max_retry_attempts,
        checkpoints: Some(Checkpoints::new(
            &p.checkpoint_dir,
            &config.resources.stream,
        )),
        failed: DirSink::new(&p.failed_records_dir),
        until_caught_up: false,
    }
}

/// The task of `carat local`: one poller per shard from its checkpoint (TRIM_HORIZON on
/// first start), until shutdown.
///
/// # Errors
/// Listing shards failed for good, or a poller's checkpoint I/O failed.
pub async fn run_pollers(
    state: crate::state::AppState,
    shutdown: Shutdown,
) -> crate::state::TaskResult {
    let task_err = |detail: String| crate::LocalError::Task {
        task: "kinesis pollers",
        detail,
    };
    let shards = list_shards(state.clients.log.as_ref(), &shutdown)
        .await
        .map_err(|e| task_err(e.to_string()))?;
    let writer = Arc::new(writer(&state));
    let mut tasks = tokio::task::JoinSet::new();
    for shard in shards {
        let poller = main_poller(&state.config, &state, Arc::clone(&writer));
        let shutdown = shutdown.clone();
        tasks.spawn(async move { poller.run(&shard, StartAt::TrimHorizon, shutdown).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| task_err(e.to_string()))?
            .map_err(|e| task_err(e.to_string()))?;
    }
    // Every shard closed (a reshard): stay up until shutdown like the other tasks.
    shutdown.wait().await;
    Ok(())
}
