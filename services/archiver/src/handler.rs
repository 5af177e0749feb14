//! The stream handler: a batch of DynamoDB stream records ⇒ one staged object per
//! tenant-day in it (usually one: a day's windows expire together).
//!
//! Only TTL removals are archived ([`crate::image::is_ttl_removal`]); other records are
//! counted (`SkippedRecords`) and dropped, as are items that are not raw windows (the
//! `#agg` rollup items of before issue 8: the archive's rollups are recomputed from raw).
//! An image that does not decode is counted (`BadItems`), logged and dropped: the item
//! is gone from DynamoDB, retrying cannot bring it back. A retryable failure to write a
//! staged object reports the first record of its group as the batch item failure, so
//! Lambda retries from there; writing again is harmless (content-derived keys, and
//! compaction merges duplicates).

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use carat_core::clock::{Clock, SystemClock};
use carat_core::{chunk, Config, Tenant};
use carat_store::ports::Archive;
use futures::StreamExt;

use crate::assemble::part_of;
use crate::error::ArchiverError;
use crate::format::{encode_object, encode_parts, Kind, Part};
use crate::image::{is_ttl_removal, item_from_image, raw_series};
use crate::keys::{day_of, stage_key};

/// What one batch did: the numbers of the invocation's EMF line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchReport {
    pub records: usize,
    /// Window items written to staged objects.
    pub archived_items: u64,
    /// Staged objects written (one per tenant-day of the batch).
    pub staged_objects: u64,
    /// Records that are not TTL removals of raw windows.
    pub skipped_records: u64,
    /// TTL removals whose image is not a decodable window item.
    pub bad_items: u64,
    /// Keys of the staged objects written, in the order of their groups.
    pub keys: Vec<String>,
    /// Sequence number of the first record whose object was not written (retryable).
    pub first_failed: Option<String>,
}

impl BatchReport {
    /// The Lambda response: empty on success, else the first unarchived record.
    #[must_use]
    pub fn response(&self) -> DynamoDbEventResponse {
        DynamoDbEventResponse {
            batch_item_failures: self
                .first_failed
                .iter()
                .map(|seq| DynamoDbBatchItemFailure {
                    item_identifier: Some(seq.clone()),
                })
                .collect(),
        }
    }
}

/// The items of one tenant-day of a batch.
#[derive(Default)]
struct Group {
    first_record: usize,
    items: u64,
    max_expires: i64,
    series: BTreeMap<String, Vec<Part>>,
}

/// The archiver: the archive injected once per container, then one
/// [`Archiver::handle`] per batch.
pub struct Archiver {
    archive: Arc<dyn Archive>,
    cfg: Arc<Config>,
    clock: Arc<dyn Clock>,
    emf: bool,
}

impl Archiver {
    #[must_use]
    pub fn new(archive: Arc<dyn Archive>, cfg: Arc<Config>) -> Self {
        Self {
            archive,
            cfg,
            clock: Arc::new(SystemClock),
            emf: true,
        }
    }

    /// The clock the EMF timestamps (and compaction's "now") come from.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Whether each invocation prints its EMF line (on by default; off in tests).
    #[must_use]
    pub fn with_emf(mut self, on: bool) -> Self {
        self.emf = on;
        self
    }

    #[must_use]
    pub fn archive(&self) -> &Arc<dyn Archive> {
        &self.archive
    }

    #[must_use]
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Archives the TTL removals of one stream batch.
    ///
    /// # Errors
    /// A non-retryable store error (a missing bucket, no permission): the invocation
    /// fails and the ESM retries it. Retryable failures are batch item failures.
    pub async fn handle(&self, event: &Event) -> Result<DynamoDbEventResponse, ArchiverError> {
        let started = std::time::Instant::now();
        let (report, phases) = carat_store::trace::scoped(self.archive_batch(event)).await;
        let report = report?;
        if self.emf {
            let total = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            println!(
                "{}",
                carat_writer::emf::line_with_millis(
                    "archiver",
                    self.clock.now_ms(),
                    &[
                        ("ArchivedItems", report.archived_items),
                        ("StagedObjects", report.staged_objects),
                        ("SkippedRecords", report.skipped_records),
                        ("BadItems", report.bad_items),
                    ],
                    &carat_writer::emf::phase_millis(Some(&phases), &[("TotalMs", total)]),
                )
            );
        }
        Ok(report.response())
    }

    /// [`Archiver::handle`] without the EMF line, returning the whole report.
    ///
    /// # Errors
    /// As [`Archiver::handle`].
    pub async fn archive_batch(&self, event: &Event) -> Result<BatchReport, ArchiverError> {
        let mut report = BatchReport {
            records: event.records.len(),
            ..BatchReport::default()
        };
        let mut groups: BTreeMap<(Tenant, i64), Group> = BTreeMap::new();
        for (i, record) in event.records.iter().enumerate() {
            if !is_ttl_removal(record) {
                report.skipped_records += 1;
                continue;
            }
            let item = match item_from_image(&record.change.old_image) {
                Ok(item) => item,
                Err(e) => {
                    tracing::warn!(event_id = %record.event_id, error = %e, "bad item in TTL removal, not archived");
                    report.bad_items += 1;
                    continue;
                }
            };
            let Some(key) = raw_series(&item.pk) else {
                report.skipped_records += 1;
                continue;
            };
            // A whole window must decode; a part of a larger one cannot be checked
            // alone (compaction checks it once its siblings are archived).
            if item.parts == 1 {
                if let Err(e) = chunk::decode_stamped(&item.body) {
                    tracing::warn!(pk = %item.pk, sk = item.sk, error = %e, "undecodable chunk in TTL removal, not archived");
                    report.bad_items += 1;
                    continue;
                }
            }
            let group = groups
                .entry((key.tenant.clone(), day_of(item.sk)))
                .or_insert_with(|| Group {
                    first_record: i,
                    max_expires: i64::MIN,
                    ..Group::default()
                });
            group.items += 1;
            group.max_expires = group.max_expires.max(item.expires_at);
            group
                .series
                .entry(key.series.as_str().to_string())
                .or_default()
                .push(part_of(&item));
        }
        let objects: Vec<(usize, u64, String, Vec<u8>)> = groups
            .into_iter()
            .map(|((tenant, day), g)| {
                let blocks: BTreeMap<String, Vec<u8>> = g
                    .series
                    .iter()
                    .map(|(s, parts)| (s.clone(), encode_parts(parts)))
                    .collect();
                let bytes = encode_object(Kind::Windows, &blocks);
                let key = stage_key(&tenant, day, g.max_expires, &bytes);
                (g.first_record, g.items, key, bytes)
            })
            .collect();
        let results: Vec<_> = futures::stream::iter(objects)
            .map(|(first, items, key, bytes)| async move {
                let r = self.archive.put(&key, bytes).await;
                (first, items, key, r)
            })
            .buffer_unordered(self.cfg.archiver.put_concurrency.max(1))
            .collect()
            .await;
        let mut failed_from: Option<usize> = None;
        let mut written: Vec<(usize, String)> = Vec::new();
        for (first, items, key, r) in results {
            match r {
                Ok(()) => {
                    report.archived_items += items;
                    report.staged_objects += 1;
                    written.push((first, key));
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(key = %key, error = %e, "staged object not written; the batch resumes at its first record");
                    failed_from = Some(failed_from.map_or(first, |f| f.min(first)));
                }
                Err(e) => return Err(e.into()),
            }
        }
        written.sort();
        report.keys = written.into_iter().map(|(_, k)| k).collect();
        if let Some(i) = failed_from {
            match event.records[i].change.sequence_number.clone() {
                Some(seq) => report.first_failed = Some(seq),
                None => {
                    return Err(ArchiverError::Store(carat_store::StoreError::retryable(
                        "s3",
                        "put",
                        "staged object not written and the record has no sequence number",
                    )))
                }
            }
        }
        Ok(report)
    }
}
