//! The Kinesis event handler: records ⇒ head blocks ⇒ `Head::append` per bucket ⇒
//! flushes of windows that crossed the point threshold or closed.
//!
//! Order of work for one batch:
//! 1. decode every record; an undecodable one is counted, logged and given to the
//!    [`FailureSink`], never retried (it would block its shard forever);
//! 2. turn points into head points stamped with the record's ingest stamp, one head
//!    block per window per batch (`carat_core::head::encode_block`).
//!    Points of sealed windows (past `head_expiry`: a late writer, or a replay) are
//!    kept like any other: the flush merges them into the stored item, so a replay can
//!    rebuild any window that Kinesis still holds. Only points whose raw TTL already
//!    passed are dropped (their item would be deleted at once; counted);
//! 3. group the points per bucket (one `Head::append` per bucket per batch) and store
//!    the buckets concurrently; each bucket then flushes its windows that crossed a
//!    multiple of `flush_point_threshold` and up to `due_flushes_per_bucket` of its
//!    closed windows;
//! 4. a retryable failure in a bucket is retried inside the invocation with backoff
//!    (`writer.retry_deadline_ms`); if it outlasts that, the bucket's first record is
//!    reported as the batch item failure: every record before it belongs to a bucket
//!    that was fully stored, and Lambda re-sends from there (re-appending is harmless:
//!    see `carat_core::head`). A window whose flush fails for good (corrupt, too large)
//!    is counted (`FailedFlushes`, alarmed), logged and left dirty in the head; it never
//!    stops the other windows of its bucket;
//! 5. each bucket then records its series in the catalog ([`crate::catalog`]): label
//!    sets of labels records always, other series only when neither this container nor
//!    the Redis markers know them for today; a catalog failure fails the bucket as in 4.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use aws_lambda_events::event::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use carat_core::head::{self, Stamped};
use carat_core::record::NameSetId;
use carat_core::{record, window, Config, SeriesKey, Tenant};
use carat_store::name_sets::{NameSetResolver, Resolved};
use carat_store::ports::{Catalog, Head, HeadAppend, NameSets, WindowRef, WindowTable};
use carat_store::StoreError;
use futures::StreamExt as _;

use crate::catalog::{CatalogKeeper, Labels};
use crate::clock::Clock;
use crate::emf;
use crate::error::WriterError;
use crate::flush::{flush_window, Flushed};
use crate::sink::{BadRecord, FailureSink};

/// What one batch did: the numbers of the invocation's EMF line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchReport {
    pub records: usize,
    /// Points appended to the head (in buckets that were fully stored).
    pub processed_points: u64,
    pub bad_records: u64,
    /// Points of windows past `head_expiry` (late writer or replay), kept and merged.
    pub sealed_window_points: u64,
    /// Points whose raw TTL had passed when they arrived.
    pub dropped_expired_points: u64,
    pub flushed_windows: u64,
    /// Window flushes that failed for good (isolated: the rest of the batch went on).
    pub failed_flushes: u64,
    /// Retry rounds of buckets that failed retryably inside this invocation.
    pub bucket_retries: u64,
    /// Series entries written to the catalog (new today, or with a label set).
    pub catalog_writes: u64,
    /// Labels records among `records`.
    pub labels_records: u64,
    /// Sequence number of the first record not fully stored (after a retryable failure).
    pub first_failed: Option<String>,
    /// Batches stopped early because a name set could not be fetched (0 or 1).
    pub name_set_failures: u64,
}

impl BatchReport {
    /// The Lambda response: empty on success, else the first unprocessed record.
    #[must_use]
    pub fn response(&self) -> KinesisEventResponse {
        KinesisEventResponse {
            batch_item_failures: self
                .first_failed
                .iter()
                .map(|seq| KinesisBatchItemFailure {
                    item_identifier: Some(seq.clone()),
                })
                .collect(),
        }
    }
}

/// The points of one bucket in one batch.
struct Group {
    bucket: u32,
    /// Index in the batch of the first record with points in this bucket.
    first_record: usize,
    /// One per window; `block` is encoded from `staged` once every record is read.
    appends: Vec<HeadAppend>,
    /// The points of `appends[i]`, in record order.
    staged: Vec<Vec<Stamped>>,
    /// (series, window start) ⇒ index in `appends`.
    /// FxHash: a batch's keys come from the stream, not from an attacker choosing
    /// collisions against this process's table (and SipHash was a tenth of the batch).
    index: HashMap<(SeriesKey, i64), usize, rustc_hash::FxBuildHasher>,
    points: u64,
    /// Distinct series of the bucket in this batch, with the label set a labels record
    /// gave (empty if none): what the catalog step looks at.
    series: BTreeMap<SeriesKey, Labels>,
}

impl Group {
    fn new(bucket: u32, first_record: usize) -> Self {
        Self {
            bucket,
            first_record,
            appends: Vec::new(),
            staged: Vec::new(),
            index: HashMap::default(),
            points: 0,
            series: BTreeMap::new(),
        }
    }
}

/// The points of one series of one record, before the record is known to be good.
struct Staged {
    key: SeriesKey,
    bucket: u32,
    /// (window start, stamped points), in order of first appearance.
    windows: Vec<(i64, Vec<Stamped>)>,
}

/// The writer: clients injected once per container, then one [`Writer::handle`] per batch.
pub struct Writer {
    cfg: Arc<Config>,
    head: Arc<dyn Head>,
    table: Arc<dyn WindowTable>,
    catalog: CatalogKeeper,
    sink: Arc<dyn FailureSink>,
    clock: Arc<dyn Clock>,
    emit_emf: bool,
    /// Where record v2's name sets come from (the catalog table); `None`: records by
    /// name set are rejected as undecodable.
    name_sets: Option<NameSetResolver>,
}

/// The name sets of a batch: (tenant, id) ⇒ what fetching it found.
type BatchSets = HashMap<(Tenant, NameSetId), Result<Resolved, StoreError>>;

/// Name sets fetched concurrently for one batch.
const SET_GETS_IN_FLIGHT: usize = 16;

impl Writer {
    #[must_use]
    pub fn new(
        cfg: Arc<Config>,
        head: Arc<dyn Head>,
        table: Arc<dyn WindowTable>,
        catalog: Arc<dyn Catalog>,
        sink: Arc<dyn FailureSink>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let catalog = CatalogKeeper::new(catalog, cfg.writer.catalog_cache_series);
        Self {
            cfg,
            head,
            table,
            catalog,
            sink,
            clock,
            emit_emf: true,
            name_sets: None,
        }
    }

    /// Decodes record v2's name sets from `store` (the catalog table), caching them for
    /// the container's life.
    #[must_use]
    pub fn with_name_sets(mut self, store: Arc<dyn NameSets>) -> Self {
        self.name_sets = Some(NameSetResolver::new(store));
        self
    }

    /// Whether each batch prints its EMF line on stdout (on in Lambda; tests turn it off).
    #[must_use]
    pub fn with_emf(mut self, on: bool) -> Self {
        self.emit_emf = on;
        self
    }

    #[must_use]
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The Lambda entry point: processes the batch and reports the first record not
    /// stored, if a retryable failure stopped it.
    ///
    /// # Errors
    /// Non-retryable store errors and corrupt heads: the invocation fails and the
    /// event source mapping's bisect / retry / on-failure destination take over.
    pub async fn handle(&self, event: &KinesisEvent) -> Result<KinesisEventResponse, WriterError> {
        let report = self.process(&event.records).await?;
        Ok(report.response())
    }

    /// Flushes one window now (shared with the flusher).
    ///
    /// # Errors
    /// As [`flush_window`].
    pub async fn flush(&self, window: &WindowRef) -> Result<Flushed, WriterError> {
        flush_window(
            &self.cfg,
            self.head.as_ref(),
            self.table.as_ref(),
            window,
            self.clock.now_secs(),
        )
        .await
    }

    /// Processes a batch (see the module docs) and says what it did.
    ///
    /// # Errors
    /// As [`Writer::handle`].
    pub async fn process(
        &self,
        records: &[KinesisEventRecord],
    ) -> Result<BatchReport, WriterError> {
        carat_store::trace::scoped(self.process_in_scope(records))
            .await
            .0
    }

    /// [`Writer::process`] inside its invocation's phase scope (`carat_store::trace`).
    async fn process_in_scope(
        &self,
        records: &[KinesisEventRecord],
    ) -> Result<BatchReport, WriterError> {
        let started = std::time::Instant::now();
        let now_ms = self.clock.now_ms();
        let now = now_ms.div_euclid(1000);
        let mut report = BatchReport {
            records: records.len(),
            ..BatchReport::default()
        };
        let mut groups: Vec<Group> = Vec::new();
        let mut group_of_bucket: HashMap<u32, usize> = HashMap::new();

        // Points records decoded first, so that the name sets they reference (record v2)
        // are fetched together, before anything is staged. A set that cannot be fetched
        // now stops the batch at the first record needing it: the records before it are
        // stored, and Lambda re-sends from it.
        let decoded: Vec<Option<Result<record::Parts, String>>> = records
            .iter()
            .map(|rec| {
                (rec.kinesis.data.0.first() != Some(&record::labels::VERSION))
                    .then(|| record::decode_parts(&rec.kinesis.data.0).map_err(|e| e.to_string()))
            })
            .collect();
        let sets = self.resolve_name_sets(&decoded).await;
        let stop_at = decoded
            .iter()
            .position(|d| match d {
                Some(Ok(p)) => p
                    .name_set()
                    .is_some_and(|id| matches!(sets.get(&(p.tenant.clone(), id)), Some(Err(_)))),
                _ => false,
            })
            .unwrap_or(records.len());
        if stop_at < records.len() {
            report.name_set_failures += 1;
        }

        for (i, (rec, parts)) in records.iter().zip(decoded).enumerate().take(stop_at) {
            let Some(parts) = parts else {
                match self.stage_labels(rec) {
                    Ok(labelled) => {
                        report.labels_records += 1;
                        for (bucket, key, labels) in labelled {
                            let gi = *group_of_bucket.entry(bucket).or_insert_with(|| {
                                groups.push(Group::new(bucket, i));
                                groups.len() - 1
                            });
                            groups[gi].series.insert(key, labels);
                        }
                    }
                    Err(reason) => {
                        report.bad_records += 1;
                        self.reject(rec, &reason).await;
                    }
                }
                continue;
            };
            let staged = parts
                .and_then(|p| self.with_names(p, &sets))
                .and_then(|r| self.stage(r, now, &mut report));
            let staged = match staged {
                Ok(s) => s,
                Err(reason) => {
                    report.bad_records += 1;
                    self.reject(rec, &reason).await;
                    continue;
                }
            };
            for s in staged {
                let gi = *group_of_bucket.entry(s.bucket).or_insert_with(|| {
                    groups.push(Group::new(s.bucket, i));
                    groups.len() - 1
                });
                let g = &mut groups[gi];
                // A label set from a labels record stays; points alone add none.
                // (Series names are shared, so the clones here cost a reference count.)
                g.series.entry(s.key.clone()).or_default();
                // A late point (close to the head expiry, or past it: a lagging writer, a
                // replay) keeps its window in the head until a flush has merged it.
                let expire_at = |start| self.cfg.head_expiry_after(start, now);
                for (start, points) in s.windows {
                    g.points += points.len() as u64;
                    let next = g.appends.len();
                    let ai = *g.index.entry((s.key.clone(), start)).or_insert(next);
                    if ai < next {
                        g.staged[ai].extend_from_slice(&points);
                    } else {
                        g.appends.push(HeadAppend {
                            window: WindowRef {
                                bucket: s.bucket,
                                key: s.key.clone(),
                                start,
                            },
                            block: Vec::new(),
                            flush_due: self.cfg.flush_due(start),
                            expire_at: expire_at(start),
                        });
                        g.staged.push(points);
                    }
                }
            }
        }
        // One block per window: the batch's points of the window, in record order.
        for g in &mut groups {
            for (a, points) in g.appends.iter_mut().zip(&g.staged) {
                a.block = head::encode_block(a.window.start, points);
            }
        }

        // Decoding and grouping (and the failure sink of bad records, rare).
        let decode_ms = elapsed_ms(started);
        let concurrency = self.cfg.writer.bucket_concurrency.max(1);
        let mut first_failed: Option<usize> = None;
        let mut fatal: Option<WriterError> = None;
        let mut pending: Vec<&Group> = groups.iter().collect();
        let mut backoff = carat_store::retry::Backoff::new(&carat_core::config::RetryConfig {
            deadline_ms: self.cfg.writer.retry_deadline_ms,
            ..self.cfg.retry.clone()
        });
        loop {
            let stores: Vec<_> = pending
                .iter()
                .map(|g| async move { (*g, self.store_group(g, now).await) })
                .collect();
            let results: Vec<(&Group, Result<Stored, WriterError>)> = futures::stream::iter(stores)
                .buffer_unordered(concurrency)
                .collect()
                .await;
            let mut again: Vec<&Group> = Vec::new();
            let mut last_error = String::new();
            for (g, result) in results {
                match result {
                    Ok(stored) => {
                        report.processed_points += g.points;
                        report.flushed_windows += stored.flushed;
                        report.failed_flushes += stored.failed;
                        report.catalog_writes += stored.catalog_writes;
                    }
                    Err(e) if e.is_retryable() => {
                        tracing::warn!(error = %e, bucket = g.bucket, attempt = backoff.attempts(), "bucket not stored; retrying");
                        last_error = e.to_string();
                        again.push(g);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, first_record = g.first_record, "bucket failed, not retryable");
                        fatal.get_or_insert(e);
                    }
                }
            }
            if again.is_empty() {
                break;
            }
            report.bucket_retries += 1;
            if !backoff.wait().await {
                for g in &again {
                    tracing::warn!(error = %last_error, first_record = g.first_record, "bucket not stored within the retry deadline; batch resumes at its first record");
                    first_failed =
                        Some(first_failed.map_or(g.first_record, |f| f.min(g.first_record)));
                }
                break;
            }
            pending = again;
        }
        if stop_at < records.len() {
            first_failed = Some(first_failed.map_or(stop_at, |f| f.min(stop_at)));
        }
        report.first_failed = first_failed
            .and_then(|i| records.get(i))
            .map(|r| r.kinesis.sequence_number.clone());

        tracing::info!(
            records = report.records,
            processed_points = report.processed_points,
            bad_records = report.bad_records,
            sealed_window_points = report.sealed_window_points,
            dropped_expired_points = report.dropped_expired_points,
            flushed_windows = report.flushed_windows,
            failed_flushes = report.failed_flushes,
            bucket_retries = report.bucket_retries,
            catalog_writes = report.catalog_writes,
            labels_records = report.labels_records,
            first_failed = report.first_failed.as_deref().unwrap_or(""),
            "batch"
        );
        let phases = carat_store::trace::current();
        let millis = emf::phase_millis(
            phases.as_deref(),
            &[("DecodeMs", decode_ms), ("TotalMs", elapsed_ms(started))],
        );
        tracing::debug!(phases = ?millis, "batch phases");
        if self.emit_emf {
            println!(
                "{}",
                emf::line_with_millis(
                    "writer",
                    now_ms,
                    &[
                        ("ProcessedPoints", report.processed_points),
                        ("BadRecords", report.bad_records),
                        ("SealedWindowPoints", report.sealed_window_points),
                        ("DroppedExpiredPoints", report.dropped_expired_points),
                        ("FlushedWindows", report.flushed_windows),
                        ("FailedFlushes", report.failed_flushes),
                        ("CatalogWrites", report.catalog_writes),
                        ("NameSetFailures", report.name_set_failures),
                    ],
                    &millis,
                )
            );
        }
        match fatal {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Fetches the name sets the batch's records reference (each once; cached ones
    /// cost nothing).
    async fn resolve_name_sets(
        &self,
        decoded: &[Option<Result<record::Parts, String>>],
    ) -> BatchSets {
        let Some(resolver) = &self.name_sets else {
            return HashMap::new();
        };
        let mut wanted: Vec<(Tenant, NameSetId)> = decoded
            .iter()
            .filter_map(|d| match d {
                Some(Ok(p)) => p.name_set().map(|id| (p.tenant.clone(), id)),
                _ => None,
            })
            .collect();
        wanted.sort();
        wanted.dedup();
        futures::stream::iter(wanted)
            .map(|(tenant, id)| async move {
                let found = resolver.resolve(&tenant, id).await;
                if let Err(e) = &found {
                    tracing::warn!(error = %e, tenant = %tenant, name_set = %id, "name set not fetched; the batch resumes at the first record naming it");
                }
                ((tenant, id), found)
            })
            .buffer_unordered(SET_GETS_IN_FLIGHT)
            .collect()
            .await
    }

    /// The record of `parts`, its names taken from its name set if it has one. `Err`
    /// names why the record cannot be decoded.
    fn with_names(&self, parts: record::Parts, sets: &BatchSets) -> Result<record::Record, String> {
        let Some(id) = parts.name_set() else {
            return parts.into_record().map_err(|e| e.to_string());
        };
        if self.name_sets.is_none() {
            return Err(format!(
                "record names its series by name set {id}, and this writer has no name set store"
            ));
        }
        match sets.get(&(parts.tenant.clone(), id)) {
            Some(Ok(Resolved::Names(names))) => parts.with_names(names).map_err(|e| e.to_string()),
            Some(Ok(Resolved::Missing)) => Err(format!(
                "name set {id} of tenant {} is not in the catalog table",
                parts.tenant
            )),
            Some(Ok(Resolved::Corrupt(why))) => Err(format!("name set {id}: {why}")),
            // Not fetched: the batch stopped before this record.
            Some(Err(e)) => Err(format!("name set {id} not fetched: {e}")),
            None => Err(format!("name set {id} was not looked up")),
        }
    }

    /// A decoded record into per-series head points. `Err` names why the record is bad.
    fn stage(
        &self,
        decoded: record::Record,
        now: i64,
        report: &mut BatchReport,
    ) -> Result<Vec<Staged>, String> {
        // Every record-derived number goes through these bounds before any arithmetic:
        // within them no window start, end, expiry or millisecond stamp can overflow.
        if !window::in_range(decoded.stamp_ms.div_euclid(1000)) {
            return Err(format!(
                "record stamp {} ms is outside the supported range (±2^40 s)",
                decoded.stamp_ms
            ));
        }
        let len = self.cfg.window.raw_secs;
        let mut out = Vec::with_capacity(decoded.series.len());
        let (mut sealed, mut expired) = (0, 0);
        for sp in decoded.series {
            let key = SeriesKey::new(decoded.tenant.clone(), sp.series);
            let bucket = key.bucket(self.cfg.record.buckets);
            let mut windows: Vec<(i64, Vec<Stamped>)> = Vec::new();
            let mut cur: Option<usize> = None;
            let n_points = sp.points.len();
            for p in sp.points {
                if !window::in_range(p.time) {
                    return Err(format!(
                        "series {key}: time {} is outside the supported range (±2^40 s)",
                        p.time
                    ));
                }
                let start = window::start(len, p.time);
                if now >= self.cfg.head_expiry(start) {
                    sealed += 1;
                }
                if now >= start + len + self.cfg.retention.raw_secs {
                    expired += 1;
                    continue;
                }
                let stamped = Stamped::new(p, decoded.stamp_ms);
                let wi = match cur {
                    Some(wi) if windows[wi].0 == start => wi,
                    _ => {
                        let wi = windows
                            .iter()
                            .position(|(s, _)| *s == start)
                            .unwrap_or_else(|| {
                                windows.push((start, Vec::with_capacity(n_points.min(16))));
                                windows.len() - 1
                            });
                        cur = Some(wi);
                        wi
                    }
                };
                windows[wi].1.push(stamped);
            }
            if !windows.is_empty() {
                out.push(Staged {
                    key,
                    bucket,
                    windows,
                });
            }
        }
        report.sealed_window_points += sealed;
        report.dropped_expired_points += expired;
        Ok(out)
    }

    /// Decodes a labels record into (bucket, series, labels). `Err` names why it is bad.
    fn stage_labels(
        &self,
        rec: &KinesisEventRecord,
    ) -> Result<Vec<(u32, SeriesKey, Labels)>, String> {
        let decoded = record::labels::decode(&rec.kinesis.data.0).map_err(|e| e.to_string())?;
        Ok(decoded
            .series
            .into_iter()
            .map(|s| {
                let key = SeriesKey::new(decoded.tenant.clone(), s.series);
                (key.bucket(self.cfg.record.buckets), key, s.labels)
            })
            .collect())
    }

    async fn reject(&self, rec: &KinesisEventRecord, reason: &str) {
        let shard_id = shard_of(rec);
        tracing::warn!(
            shard_id,
            sequence_number = %rec.kinesis.sequence_number,
            reason,
            "undecodable record skipped"
        );
        let bad = BadRecord {
            shard_id,
            sequence_number: &rec.kinesis.sequence_number,
            partition_key: &rec.kinesis.partition_key,
            data: &rec.kinesis.data.0,
            reason,
        };
        if let Err(e) = self.sink.put(&bad).await {
            tracing::error!(error = %e, sequence_number = %rec.kinesis.sequence_number, "failure sink refused a bad record");
        }
    }

    /// Appends one bucket's points, then flushes its windows that crossed the
    /// threshold or are due. A window whose flush fails for good is counted and
    /// skipped; a retryable failure fails the bucket (it is retried as a whole:
    /// appending again is harmless).
    async fn store_group(&self, g: &Group, now: i64) -> Result<Stored, WriterError> {
        // A bucket of labels records only has nothing to append. The bucket's due
        // windows come back with the append (one Redis round trip for both).
        let limit = self.cfg.writer.due_flushes_per_bucket;
        let (counts, due) = self
            .head
            .append_and_due(g.bucket, &g.appends, now, limit)
            .await?;
        let threshold = self.cfg.window.flush_point_threshold.max(1);
        let mut to_flush: Vec<WindowRef> = Vec::new();
        for ((a, points), &after) in g.appends.iter().zip(&g.staged).zip(&counts) {
            let added = points.len() as u64;
            let before = after.saturating_sub(added);
            if after / threshold > before / threshold {
                to_flush.push(a.window.clone());
            }
        }
        for w in due {
            if !to_flush.contains(&w) {
                to_flush.push(w);
            }
        }
        let mut stored = Stored::default();
        for w in &to_flush {
            match flush_window(&self.cfg, self.head.as_ref(), self.table.as_ref(), w, now).await {
                Ok(_) => stored.flushed += 1,
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => {
                    tracing::error!(error = %e, window = %w.key, start = w.start, "window flush failed, not retryable; the window stays in the head");
                    stored.failed += 1;
                }
            }
        }
        stored.catalog_writes = self
            .catalog
            .record(self.head.as_ref(), g.bucket, &g.series, now)
            .await?;
        Ok(stored)
    }
}

/// What storing one bucket did.
#[derive(Debug, Default, Clone, Copy)]
struct Stored {
    flushed: u64,
    failed: u64,
    catalog_writes: u64,
}

/// The shard of a record: the part of its event id before `:` (`shardId-…:<sequence>`).
fn shard_of(rec: &KinesisEventRecord) -> &str {
    rec.event_id
        .as_deref()
        .and_then(|id| id.split(':').next())
        .unwrap_or("unknown")
}

/// Whole milliseconds since `t`.
fn elapsed_ms(t: std::time::Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}
