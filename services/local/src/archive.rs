//! The archive's local machinery: what AWS does for the archiver and the stand-in does not
//! (docs/archive-local.md).
//!
//! - [`run_ttl_sweeper`]: every `sweeper.interval_secs`, deletes window items whose `ttl`
//!   has passed, each with the condition `ttl <= now` (so an item re-written meanwhile
//!   stays), as DynamoDB's TTL process does. The stand-in never expires items.
//! - [`run_stream_poller`]: one reader per shard of the window table's DynamoDB stream
//!   (parents before children), playing the archiver's event source mapping: every record
//!   is first marked by [`mark_ttl_removal`] (the stand-in's REMOVE records carry no
//!   userIdentity), then filtered by [`is_ttl_removal`] (the stack's `TTL_REMOVAL_FILTER`),
//!   and the matching ones go to the [`StreamHandler`] in batches (`table_stream.batch_size`,
//!   `max_batching_window_ms`), retried with backoff; batch item failures are retried from
//!   the first failed record, as with ReportBatchItemFailures.
//! - Positions are kept in memory only: after a restart each shard is read again from
//!   TRIM_HORIZON, so TTL removals are handed to the archiver again. That is safe because
//!   the archiver is idempotent (a replayed batch leaves the same objects), and cheap
//!   because the stream keeps 24 h on AWS (and the stand-in's stream lives only as long as
//!   the stand-in).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::{Event, EventRecord, UserIdentity};
use aws_lambda_events::streams::DynamoDbEventResponse;
use carat_core::config::TableStreamConfig;
use carat_store::dynamo::ExpiredItem;
use carat_store::ports::{StreamStart, TableStream};
use carat_store::streams::MAX_READ_LIMIT;
use carat_store::{DynamoStream, DynamoTable, StoreError};
use futures::{StreamExt as _, TryStreamExt as _};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, error, info, warn};

use crate::state::{AppState, Shutdown, TaskResult};

/// `userIdentity.type` of a record that DynamoDB's TTL process wrote.
pub const TTL_IDENTITY_TYPE: &str = "Service";
/// `userIdentity.principalId` of a record that DynamoDB's TTL process wrote.
pub const TTL_PRINCIPAL_ID: &str = "dynamodb.amazonaws.com";
/// The TTL attribute of window items (docs/formats.md).
pub const TTL_ATTRIBUTE: &str = "ttl";

/// The marking rule: a REMOVE record without a userIdentity whose OldImage `ttl` is at
/// or before the record's approximate creation time gets the userIdentity AWS gives TTL
/// deletions. That is what every TTL deletion satisfies (DynamoDB deletes only expired
/// items); a flush's deletion of stale parts has a `ttl` in the future and stays unmarked.
/// Returns whether it marked the record. A record that already has a userIdentity (from
/// AWS itself) is left as it is.
pub fn mark_ttl_removal(record: &mut EventRecord) -> bool {
    if record.event_name != "REMOVE" || record.user_identity.is_some() {
        return false;
    }
    let Some(ttl) = record
        .change
        .old_image
        .get(TTL_ATTRIBUTE)
        .and_then(number_of)
    else {
        return false;
    };
    // Milliseconds: the stand-in stamps records with a fraction of a second.
    #[allow(clippy::cast_precision_loss)] // epoch milliseconds fit in f64 exactly
    let created = record
        .change
        .approximate_creation_date_time
        .timestamp_millis() as f64
        / 1000.0;
    if created <= 0.0 || ttl > created {
        return false;
    }
    record.user_identity = Some(UserIdentity {
        type_: TTL_IDENTITY_TYPE.to_string(),
        principal_id: TTL_PRINCIPAL_ID.to_string(),
    });
    true
}

fn number_of(v: &serde_dynamo::AttributeValue) -> Option<f64> {
    match v {
        serde_dynamo::AttributeValue::N(n) => {
            n.trim().parse::<f64>().ok().filter(|t| t.is_finite())
        }
        _ => None,
    }
}

/// The filter of the archiver's event source mapping (`TTL_REMOVAL_FILTER` in
/// cdk/lib/constructs/archiver.ts): eventName REMOVE and userIdentity
/// `{type: "Service", principalId: "dynamodb.amazonaws.com"}`.
#[must_use]
pub fn is_ttl_removal(record: &EventRecord) -> bool {
    record.event_name == "REMOVE"
        && record
            .user_identity
            .as_ref()
            .is_some_and(|u| u.type_ == TTL_IDENTITY_TYPE && u.principal_id == TTL_PRINCIPAL_ID)
}

/// Why a stream handler failed a whole batch. `retryable` decides what the poller does:
/// retry without limit (the archive unreachable, throttling) or at most
/// `table_stream.retry_attempts` times before the batch is logged and skipped.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct HandlerError {
    pub retryable: bool,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl HandlerError {
    /// A failure worth retrying.
    pub fn retryable(
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            retryable: true,
            source: source.into(),
        }
    }

    /// A failure that retrying will not fix.
    pub fn fatal(source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self {
            retryable: false,
            source: source.into(),
        }
    }
}

/// What the stream poller invokes with each batch, as Lambda invokes a function: the
/// archiver's handler behind a small adapter (carat-local does not depend on the
/// archiver crate). `batch_item_failures` name records by their sequence number, as the
/// DynamoDB event source mapping expects.
#[async_trait]
pub trait StreamHandler: Send + Sync {
    async fn handle(&self, event: &Event) -> Result<DynamoDbEventResponse, HandlerError>;
}

/// What one shard reader did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ShardStats {
    /// Records read from the stream.
    pub read: u64,
    /// Records [`mark_ttl_removal`] marked.
    pub marked: u64,
    /// Records handed to the handler and acknowledged.
    pub handled: u64,
    /// Invocations of the handler.
    pub invocations: u64,
    /// Invocations that failed (whole batch or some items) and were retried.
    pub retried: u64,
    /// Records given up on after `retry_attempts` retries.
    pub skipped: u64,
}

/// How a shard reader stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardEnd {
    /// The shard is closed and every record of it was handled: its children may start.
    Closed,
    /// The shard can no longer be read (trimmed, gone): its children may start.
    Gone(String),
    /// Shutdown was asked for.
    Shutdown,
}

/// carat-local's stand-in for the archiver's DynamoDB-stream event source mapping.
#[derive(Clone)]
pub struct StreamPoller {
    pub stream: Arc<dyn TableStream>,
    pub handler: Arc<dyn StreamHandler>,
    pub settings: TableStreamConfig,
    /// Where a shard is read from on first start: TRIM_HORIZON in carat-local (every
    /// removal the stream still holds), LATEST in tests of a shared stand-in.
    pub start: StreamStart,
}

impl StreamPoller {
    fn backoff_after(&self, d: Duration) -> Duration {
        (d * 2).min(Duration::from_millis(self.settings.max_backoff_ms))
    }

    /// Reads `shard_id` until shutdown or the end of the closed shard.
    pub async fn run_shard(&self, shard_id: &str, shutdown: Shutdown) -> (ShardEnd, ShardStats) {
        let s = &self.settings;
        let base_backoff = Duration::from_millis(s.retry_backoff_ms);
        let idle = Duration::from_millis(s.idle_poll_ms);
        let window = Duration::from_millis(s.max_batching_window_ms);
        let batch_size = s.batch_size.max(1);
        let mut stats = ShardStats::default();
        let mut initial = self.start.clone();
        // The last record accounted for: handed to the handler and acknowledged, or
        // filtered out with every record before it acknowledged. In memory only.
        let mut checkpoint: Option<String> = None;
        let mut read_upto: Option<String> = None;
        let mut iterator: Option<String> = None;
        let mut pending: VecDeque<EventRecord> = VecDeque::new();
        let mut first_pending_at: Option<Instant> = None;
        let mut closed = false;
        let mut backoff = base_backoff;
        let mut attempts = 0u32;
        info!(shard_id, start = ?initial, "table stream reader starting");
        loop {
            if shutdown.is_set() {
                return (ShardEnd::Shutdown, stats);
            }
            let mut caught_up = false;
            if !closed && pending.len() < batch_size {
                let it = if let Some(it) = &iterator {
                    it.clone()
                } else {
                    let position = checkpoint
                        .clone()
                        .map_or_else(|| initial.clone(), StreamStart::AfterSequence);
                    match self.stream.iterator(shard_id, &position).await {
                        Ok(it) => {
                            iterator = Some(it.clone());
                            it
                        }
                        Err(e)
                            if e.is_iterator_expired() && position != StreamStart::TrimHorizon =>
                        {
                            // The checkpoint was trimmed (older than the stream keeps):
                            // what followed it is gone too; read what is left.
                            warn!(shard_id, error = %e, "position trimmed; reading from TRIM_HORIZON");
                            checkpoint = None;
                            initial = StreamStart::TrimHorizon;
                            continue;
                        }
                        Err(e) if e.is_retryable() => {
                            warn!(shard_id, error = %e, "GetShardIterator failed; backing off");
                            sleep_or_stop(backoff, &shutdown).await;
                            backoff = self.backoff_after(backoff);
                            continue;
                        }
                        Err(e) => {
                            warn!(shard_id, error = %e, "shard cannot be read; leaving it");
                            return (ShardEnd::Gone(e.to_string()), stats);
                        }
                    }
                };
                match self.stream.read(&it, MAX_READ_LIMIT).await {
                    Ok(batch) => {
                        backoff = base_backoff;
                        caught_up = batch.records.is_empty();
                        for mut r in batch.records {
                            stats.read += 1;
                            read_upto.clone_from(&r.change.sequence_number);
                            if mark_ttl_removal(&mut r) {
                                stats.marked += 1;
                            }
                            if is_ttl_removal(&r) {
                                first_pending_at.get_or_insert_with(Instant::now);
                                pending.push_back(r);
                            }
                        }
                        if pending.is_empty() && read_upto.is_some() {
                            checkpoint.clone_from(&read_upto);
                        }
                        match batch.next_iterator {
                            Some(next) => iterator = Some(next),
                            None => closed = true,
                        }
                    }
                    Err(e) if e.is_iterator_expired() => {
                        debug!(
                            shard_id,
                            "iterator expired; re-opening after the checkpoint"
                        );
                        iterator = None;
                        pending.clear();
                        first_pending_at = None;
                        read_upto.clone_from(&checkpoint);
                        continue;
                    }
                    Err(e) => {
                        // Retryable, or a record that cannot be converted: a reader must
                        // not step over a record, so it waits and tries again.
                        warn!(shard_id, error = %e, "GetRecords failed; backing off");
                        sleep_or_stop(backoff, &shutdown).await;
                        backoff = self.backoff_after(backoff);
                        continue;
                    }
                }
            }

            let window_passed = first_pending_at.is_some_and(|t| t.elapsed() >= window);
            if !pending.is_empty() && (pending.len() >= batch_size || window_passed || closed) {
                let n = pending.len().min(batch_size);
                let batch: Vec<EventRecord> = pending.iter().take(n).cloned().collect();
                stats.invocations += 1;
                let outcome = self.handler.handle(&Event { records: batch }).await;
                let failed_at = match outcome {
                    Ok(resp) => first_failure(&resp, pending.iter().take(n)),
                    Err(e) if e.retryable => {
                        warn!(shard_id, error = %e, records = n, "archiver failed (retryable); retrying the batch");
                        stats.retried += 1;
                        sleep_or_stop(backoff, &shutdown).await;
                        backoff = self.backoff_after(backoff);
                        continue;
                    }
                    Err(e) => {
                        warn!(shard_id, error = %e, records = n, attempts, "archiver failed");
                        Some(0)
                    }
                };
                match failed_at {
                    None => {
                        stats.handled += n as u64;
                        self.acknowledge(&mut pending, n, &mut checkpoint, &read_upto);
                        attempts = 0;
                        backoff = base_backoff;
                    }
                    Some(i) => {
                        // Records before the first failed one are done; the rest of the
                        // batch is retried from it, as ReportBatchItemFailures does.
                        stats.handled += i as u64;
                        self.acknowledge(&mut pending, i, &mut checkpoint, &read_upto);
                        if attempts >= s.retry_attempts {
                            let skip = n - i;
                            let first = pending
                                .front()
                                .and_then(|r| r.change.sequence_number.clone());
                            error!(shard_id, records = skip, first_sequence = ?first, attempts, "giving up on records after retry_attempts retries; they are not archived");
                            stats.skipped += skip as u64;
                            self.acknowledge(&mut pending, skip, &mut checkpoint, &read_upto);
                            attempts = 0;
                        } else {
                            attempts += 1;
                            stats.retried += 1;
                            sleep_or_stop(backoff, &shutdown).await;
                            backoff = self.backoff_after(backoff);
                        }
                    }
                }
                first_pending_at = if pending.is_empty() {
                    None
                } else {
                    first_pending_at
                };
                continue;
            }
            if closed && pending.is_empty() {
                info!(
                    shard_id,
                    read = stats.read,
                    handled = stats.handled,
                    "shard closed and fully read"
                );
                return (ShardEnd::Closed, stats);
            }
            if caught_up || closed {
                // Nothing more to read now: wait, but not past the batching window.
                let wait =
                    first_pending_at.map_or(idle, |t| window.saturating_sub(t.elapsed()).min(idle));
                sleep_or_stop(wait.max(Duration::from_millis(1)), &shutdown).await;
            }
        }
    }

    /// Drops the first `n` pending records (handled or given up on) and moves the
    /// checkpoint past them (past every record read, once nothing is pending).
    #[allow(clippy::unused_self)]
    fn acknowledge(
        &self,
        pending: &mut VecDeque<EventRecord>,
        n: usize,
        checkpoint: &mut Option<String>,
        read_upto: &Option<String>,
    ) {
        let mut last = None;
        for _ in 0..n {
            last = pending.pop_front().and_then(|r| r.change.sequence_number);
        }
        if pending.is_empty() {
            checkpoint.clone_from(read_upto);
        } else if last.is_some() {
            *checkpoint = last;
        }
    }

    /// Reads every shard of the stream, each after its parent is done, until shutdown.
    /// The shard list is read again every `shard_refresh_secs` and whenever a shard ends.
    pub async fn run(&self, shutdown: Shutdown) {
        let refresh = Duration::from_secs(self.settings.shard_refresh_secs.max(1));
        let mut done: HashSet<String> = HashSet::new();
        let mut running: HashSet<String> = HashSet::new();
        let mut tasks: JoinSet<(String, ShardEnd, ShardStats)> = JoinSet::new();
        let mut backoff = Duration::from_millis(self.settings.retry_backoff_ms);
        loop {
            if shutdown.is_set() {
                break;
            }
            match self.stream.shards().await {
                Ok(shards) => {
                    backoff = Duration::from_millis(self.settings.retry_backoff_ms);
                    let listed: HashMap<&str, Option<&str>> = shards
                        .iter()
                        .map(|s| (s.shard_id.as_str(), s.parent_shard_id.as_deref()))
                        .collect();
                    for shard in &shards {
                        let id = shard.shard_id.as_str();
                        if done.contains(id) || running.contains(id) {
                            continue;
                        }
                        let parent_done = shard
                            .parent_shard_id
                            .as_deref()
                            .is_none_or(|p| done.contains(p) || !listed.contains_key(p));
                        if !parent_done {
                            continue;
                        }
                        running.insert(id.to_string());
                        let (me, id, sd) = (self.clone(), id.to_string(), shutdown.clone());
                        tasks.spawn(async move {
                            let (end, stats) = me.run_shard(&id, sd).await;
                            (id, end, stats)
                        });
                    }
                }
                Err(e) => {
                    warn!(error = %e, "listing the table stream's shards failed; retrying");
                    sleep_or_stop(backoff, &shutdown).await;
                    backoff = self.backoff_after(backoff);
                    continue;
                }
            }
            tokio::select! {
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => match joined {
                    Ok((id, end, stats)) => {
                        debug!(shard_id = %id, ?end, ?stats, "shard reader ended");
                        running.remove(&id);
                        if end != ShardEnd::Shutdown {
                            done.insert(id);
                        }
                    }
                    Err(e) => error!(error = %e, "a shard reader panicked"),
                },
                () = tokio::time::sleep(refresh) => {}
                () = shutdown.clone().wait() => break,
            }
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// Index in the batch of the first record the response reports failed. An identifier
/// that names no record of the batch (or none at all) fails the whole batch, as the
/// event source mapping treats it.
fn first_failure<'a>(
    resp: &DynamoDbEventResponse,
    batch: impl Iterator<Item = &'a EventRecord>,
) -> Option<usize> {
    if resp.batch_item_failures.is_empty() {
        return None;
    }
    let seqs: Vec<Option<&str>> = batch.map(|r| r.change.sequence_number.as_deref()).collect();
    let mut first: Option<usize> = None;
    for f in &resp.batch_item_failures {
        let at = f
            .item_identifier
            .as_deref()
            .and_then(|id| seqs.iter().position(|s| *s == Some(id)));
        match at {
            Some(i) => first = Some(first.map_or(i, |f| f.min(i))),
            None => return Some(0),
        }
    }
    first
}

async fn sleep_or_stop(d: Duration, shutdown: &Shutdown) {
    tokio::select! {
        () = tokio::time::sleep(d) => {}
        () = shutdown.clone().wait() => {}
    }
}

/// The window table's stream, built from the same SDK settings as the other clients
/// (every call bounded by `retry.deadline_ms`).
pub async fn table_stream(state: &AppState) -> DynamoStream {
    let sdk = carat_store::connect::aws_config(&state.config.retry).await;
    DynamoStream::from_sdk(
        &sdk,
        &state.config.resources.table,
        state.config.retry.clone(),
    )
}

/// The task of `carat local`: reads the window table's stream from TRIM_HORIZON and hands
/// its TTL removals to `handler` (the archiver), until shutdown.
///
/// # Errors
/// None in practice (store errors are retried): the signature is the task list's.
pub async fn run_stream_poller(
    state: AppState,
    shutdown: Shutdown,
    handler: Arc<dyn StreamHandler>,
) -> TaskResult {
    let poller = StreamPoller {
        stream: Arc::new(table_stream(&state).await),
        handler,
        settings: state.config.table_stream.clone(),
        start: StreamStart::TrimHorizon,
    };
    poller.run(shutdown).await;
    Ok(())
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepStats {
    /// Expired items the scan found.
    pub found: usize,
    /// Items deleted.
    pub deleted: usize,
    /// Items re-written with a later `ttl` between the scan and the delete, left alone.
    pub kept: usize,
}

/// Deletions in flight during a sweep: the stand-in answers one at a time anyway.
const SWEEP_CONCURRENCY: usize = 8;

/// One sweep: up to `limit` items whose `ttl` is at or before `now`, each deleted with
/// the condition that it still is.
///
/// # Errors
/// The first store error (after the adapter's own retries); the next run tries again.
pub async fn sweep_once(
    table: &DynamoTable,
    now: i64,
    limit: usize,
) -> Result<SweepStats, StoreError> {
    let expired: Vec<ExpiredItem> = table.expired(now, limit).await?;
    let found = expired.len();
    let deleted: Vec<bool> = futures::stream::iter(expired)
        .map(|item| async move { table.delete_expired(&item.pk, item.sk, now).await })
        .buffer_unordered(SWEEP_CONCURRENCY)
        .try_collect()
        .await?;
    let n = deleted.iter().filter(|d| **d).count();
    Ok(SweepStats {
        found,
        deleted: n,
        kept: found - n,
    })
}

/// The TTL sweeper of `carat local`: a sweep every `sweeper.interval_secs` on the system
/// clock, until shutdown (nothing when `sweeper.enabled` is false). A failed sweep is
/// logged; the next one tries again.
///
/// # Errors
/// None in practice: the signature is the task list's.
pub async fn run_ttl_sweeper(state: AppState, shutdown: Shutdown) -> TaskResult {
    let cfg = state.config.sweeper.clone();
    if !cfg.enabled {
        shutdown.wait().await;
        return Ok(());
    }
    let mut tick = tokio::time::interval(Duration::from_secs(cfg.interval_secs.max(1)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = chrono::Utc::now().timestamp();
                match sweep_once(&state.clients.table, now, cfg.max_items_per_run).await {
                    Ok(s) if s.found > 0 => info!(found = s.found, deleted = s.deleted, kept = s.kept, "ttl sweep"),
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "ttl sweep failed; the next run tries again"),
                }
            }
            () = shutdown.clone().wait() => return Ok(()),
        }
    }
}

/// The archiver (`carat_archiver::Archiver`, the Lambda's handler) as the stream
/// poller's handler: TTL removals of the window table ⇒ staged objects in S3.
pub struct ArchiverHandler(pub carat_archiver::Archiver);

impl ArchiverHandler {
    /// The archiver over this process's archive and config.
    #[must_use]
    pub fn new(state: &AppState) -> Self {
        Self(carat_archiver::Archiver::new(
            state.clients.archive.clone(),
            Arc::clone(&state.config),
        ))
    }
}

#[async_trait]
impl StreamHandler for ArchiverHandler {
    async fn handle(&self, event: &Event) -> Result<DynamoDbEventResponse, HandlerError> {
        self.0.handle(event).await.map_err(|e| {
            if e.is_retryable() {
                HandlerError::retryable(e)
            } else {
                HandlerError::fatal(e)
            }
        })
    }
}

/// The archiver's schedule in AWS (an EventBridge rule on the same function): a
/// compaction run every `archiver.compaction_interval_secs` — staged objects of settled
/// days into day objects, ended months into month objects (docs/formats.md, "Archive").
///
/// # Errors
/// None: a failed run is logged and the next one tries again.
pub async fn run_compactor(state: AppState, shutdown: Shutdown) -> TaskResult {
    let every = Duration::from_secs(state.config.archiver.compaction_interval_secs.max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = chrono::Utc::now().timestamp();
                match carat_archiver::compact::run(state.clients.archive.as_ref(), &state.config, now).await {
                    Ok(r) if r.compacted_days + r.compacted_months + r.failures > 0 => info!(
                        days = r.compacted_days, months = r.compacted_months,
                        failures = r.failures, deferred = r.deferred, "archive compaction"
                    ),
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "archive compaction failed; the next run tries again"),
                }
            }
            () = shutdown.clone().wait() => return Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic in a test is its failure report
mod tests {
    use super::*;
    use aws_lambda_events::event::dynamodb::StreamRecord;
    use aws_lambda_events::streams::DynamoDbBatchItemFailure;
    use serde_dynamo::AttributeValue as V;

    /// A record as the stand-in writes it: no userIdentity; created at `created_ms`.
    fn record(name: &str, seq: &str, ttl: Option<V>, created_ms: i64) -> EventRecord {
        let mut old = HashMap::from([("pk".to_string(), V::S("t#cpu#raw".into()))]);
        if let Some(t) = ttl {
            old.insert("ttl".into(), t);
        }
        serde_json::from_value::<EventRecord>(serde_json::json!({
            "awsRegion": "us-east-1",
            "eventID": format!("e{seq}"),
            "eventName": name,
            "dynamodb": {"SizeBytes": 1, "SequenceNumber": seq}
        }))
        .map(|mut r| {
            r.change = StreamRecord {
                approximate_creation_date_time: chrono::DateTime::from_timestamp_millis(created_ms)
                    .unwrap(),
                old_image: old.into(),
                ..r.change
            };
            r
        })
        .unwrap()
    }

    const T: i64 = 1_700_000_000;

    #[test]
    fn a_remove_of_an_expired_item_is_marked_and_passes_the_filter() {
        let mut r = record("REMOVE", "1", Some(V::N(T.to_string())), T * 1000 + 400);
        assert!(
            !is_ttl_removal(&r),
            "the stand-in's record alone does not pass"
        );
        assert!(mark_ttl_removal(&mut r));
        assert!(is_ttl_removal(&r));
        let u = r.user_identity.unwrap();
        assert_eq!(
            (u.type_.as_str(), u.principal_id.as_str()),
            ("Service", "dynamodb.amazonaws.com")
        );
        // Expiring exactly at the record's time counts (ttl <= creation).
        let mut r = record("REMOVE", "1", Some(V::N(T.to_string())), T * 1000);
        assert!(mark_ttl_removal(&mut r));
    }

    #[test]
    fn a_remove_with_a_future_ttl_is_a_flush_and_is_not_marked() {
        let mut r = record(
            "REMOVE",
            "1",
            Some(V::N((T + 1).to_string())),
            T * 1000 + 999,
        );
        assert!(!mark_ttl_removal(&mut r));
        assert!(r.user_identity.is_none());
        assert!(!is_ttl_removal(&r));
    }

    #[test]
    fn inserts_modifies_and_items_without_a_numeric_ttl_are_not_marked() {
        for name in ["INSERT", "MODIFY"] {
            let mut r = record(name, "1", Some(V::N("5".into())), T * 1000);
            assert!(!mark_ttl_removal(&mut r), "{name}");
        }
        for ttl in [
            None,
            Some(V::S("5".into())),
            Some(V::N("soon".into())),
            Some(V::N("NaN".into())),
        ] {
            let mut r = record("REMOVE", "1", ttl.clone(), T * 1000);
            assert!(!mark_ttl_removal(&mut r), "{ttl:?}");
        }
        // No creation time (the field is optional in Lambda's shape): never marked.
        let mut r = record("REMOVE", "1", Some(V::N("5".into())), 0);
        assert!(!mark_ttl_removal(&mut r));
    }

    #[test]
    fn an_identity_set_by_aws_is_kept_and_the_filter_checks_both_fields() {
        let mut r = record("REMOVE", "1", Some(V::N("5".into())), T * 1000);
        r.user_identity = Some(UserIdentity {
            type_: "Service".into(),
            principal_id: "someone.else".into(),
        });
        assert!(!mark_ttl_removal(&mut r));
        assert!(!is_ttl_removal(&r));
        r.user_identity = Some(UserIdentity {
            type_: "User".into(),
            principal_id: TTL_PRINCIPAL_ID.into(),
        });
        assert!(!is_ttl_removal(&r));
        let mut r = record("MODIFY", "1", None, T * 1000);
        r.user_identity = Some(UserIdentity {
            type_: TTL_IDENTITY_TYPE.into(),
            principal_id: TTL_PRINCIPAL_ID.into(),
        });
        assert!(!is_ttl_removal(&r), "only REMOVE records pass");
    }

    #[test]
    fn first_failure_is_the_earliest_reported_record_and_unknown_ids_fail_all() {
        let batch: Vec<EventRecord> = (1..=4)
            .map(|i| record("REMOVE", &i.to_string(), None, T * 1000))
            .collect();
        let resp = |ids: &[Option<&str>]| DynamoDbEventResponse {
            batch_item_failures: ids
                .iter()
                .map(|id| DynamoDbBatchItemFailure {
                    item_identifier: id.map(str::to_string),
                })
                .collect(),
        };
        assert_eq!(first_failure(&resp(&[]), batch.iter()), None);
        assert_eq!(
            first_failure(&resp(&[Some("4"), Some("2")]), batch.iter()),
            Some(1)
        );
        assert_eq!(
            first_failure(&resp(&[Some("3"), Some("99")]), batch.iter()),
            Some(0)
        );
        assert_eq!(first_failure(&resp(&[None]), batch.iter()), Some(0));
    }
}
