//! [`KinesisLog`]: the log port over Kinesis Data Streams (aws-sdk-kinesis).
//!
//! `put` enforces the PutRecords limits itself (moto does not): at most
//! `limits.kinesis_batch_records` records and `limits.kinesis_batch_bytes` bytes of data
//! plus partition keys per call, no record over Kinesis's 1 MiB. When a call reports
//! `FailedRecordCount > 0`, only the failed records are sent again, with backoff and full
//! jitter until `retry.deadline_ms`; their input positions are kept, so the sequence
//! numbers come back in input order. A retried record lands after records of its
//! partition key that succeeded before it: carat does not rely on that order (head
//! entries carry the record's stamp and merge order-independently, `carat_core::head`).
//! Batches are sent one after the other, so without failures a bucket's records keep
//! their order.
//!
//! Reading: `shards` (ListShards, paginated), `iterator` (GetShardIterator for every
//! [`StartAt`]), `read` (GetRecords). An expired iterator is
//! [`StoreError::IteratorExpired`]; throttling is retryable.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use aws_sdk_kinesis::Client;
use carat_core::config::{RetryConfig, ServiceLimits};

use crate::aws::classify;
use crate::ports::{Log, LogBatch, LogEntry, LogRecord, StartAt};
use crate::retry::Backoff;
use crate::StoreError;

const SERVICE: &str = "kinesis";

/// Kinesis's limit on one record: data plus partition key.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Kinesis's limit on a partition key, in Unicode characters.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;
/// GetRecords returns at most this many records.
const MAX_READ_LIMIT: usize = 10_000;

/// Outcome of one record of a PutRecords call: its sequence number, or the error
/// code and message Kinesis gave it.
pub type RecordOutcome = Result<String, String>;

/// Sends one PutRecords call and reports each record's outcome, in order.
#[async_trait]
pub trait RecordSend: Send + Sync {
    /// # Errors
    /// The classified SDK error when the whole call fails.
    async fn send(
        &self,
        stream: &str,
        records: &[PutRecordsRequestEntry],
    ) -> Result<Vec<RecordOutcome>, StoreError>;
}

/// The real [`RecordSend`]: one PutRecords call.
#[derive(Debug, Clone)]
pub struct SdkRecordSend {
    client: Client,
}

impl SdkRecordSend {
    #[must_use]
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl RecordSend for SdkRecordSend {
    async fn send(
        &self,
        stream: &str,
        records: &[PutRecordsRequestEntry],
    ) -> Result<Vec<RecordOutcome>, StoreError> {
        let out = self
            .client
            .put_records()
            .stream_name(stream)
            .set_records(Some(records.to_vec()))
            .send()
            .await
            .map_err(|e| classify(SERVICE, "put", e))?;
        Ok(out
            .records
            .into_iter()
            .map(|r| match (r.sequence_number, r.error_code) {
                (Some(seq), None) => Ok(seq),
                (_, code) => Err(format!(
                    "{}: {}",
                    code.as_deref().unwrap_or("no sequence number"),
                    r.error_message.as_deref().unwrap_or("")
                )),
            })
            .collect())
    }
}

/// What `/health` reports about the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHealth {
    pub stream: String,
    /// `ACTIVE`, `UPDATING`, …
    pub status: String,
    pub open_shards: i32,
}

/// The log over a Kinesis stream.
#[derive(Clone)]
pub struct KinesisLog {
    client: Client,
    stream: String,
    limits: ServiceLimits,
    retry: RetryConfig,
    sender: Arc<dyn RecordSend>,
}

impl std::fmt::Debug for KinesisLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KinesisLog")
            .field("stream", &self.stream)
            .field("limits", &self.limits)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// Bytes a record counts against the PutRecords limits: data plus partition key.
fn record_bytes(r: &LogRecord) -> usize {
    r.data.len() + r.partition_key.len()
}

/// Splits record positions into PutRecords calls within the limits.
///
/// # Errors
/// [`StoreError::Fatal`] naming the index of a record that no call could carry.
pub fn plan_batches(
    records: &[LogRecord],
    limits: &ServiceLimits,
) -> Result<Vec<Vec<usize>>, StoreError> {
    let max_records = limits.kinesis_batch_records.max(1);
    let max_bytes = limits.kinesis_batch_bytes;
    let mut batches = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    for (i, r) in records.iter().enumerate() {
        let size = record_bytes(r);
        let chars = r.partition_key.chars().count();
        if chars == 0 || chars > MAX_PARTITION_KEY_CHARS {
            return Err(StoreError::fatal(
                SERVICE,
                "put",
                format!("record {i}: partition key must be 1-{MAX_PARTITION_KEY_CHARS} characters, is {chars}"),
            ));
        }
        if size > MAX_RECORD_BYTES.min(max_bytes) {
            return Err(StoreError::fatal(
                SERVICE,
                "put",
                format!(
                    "record {i} (partition key {:?}) is {size} bytes, over the {} byte limit",
                    r.partition_key,
                    MAX_RECORD_BYTES.min(max_bytes)
                ),
            ));
        }
        if !batch.is_empty() && (batch.len() >= max_records || bytes + size > max_bytes) {
            batches.push(std::mem::take(&mut batch));
            bytes = 0;
        }
        batch.push(i);
        bytes += size;
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    Ok(batches)
}

fn entry(r: &LogRecord) -> Result<PutRecordsRequestEntry, StoreError> {
    PutRecordsRequestEntry::builder()
        .data(Blob::new(r.data.clone()))
        .partition_key(r.partition_key.clone())
        .build()
        .map_err(|e| StoreError::fatal(SERVICE, "put", e.to_string()))
}

impl KinesisLog {
    /// The stream `stream` through `client`, with carat's limits and retry settings.
    #[must_use]
    pub fn new(
        client: Client,
        stream: impl Into<String>,
        limits: ServiceLimits,
        retry: RetryConfig,
    ) -> Self {
        Self {
            sender: Arc::new(SdkRecordSend::new(client.clone())),
            client,
            stream: stream.into(),
            limits,
            retry,
        }
    }

    /// Replaces how one PutRecords call is sent (tests wrap [`SdkRecordSend`] to fail
    /// some records).
    #[must_use]
    pub fn with_record_send(mut self, sender: Arc<dyn RecordSend>) -> Self {
        self.sender = sender;
        self
    }

    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    #[must_use]
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// DescribeStreamSummary, for carat-local's `/health`.
    ///
    /// # Errors
    /// Fatal if the stream does not exist; retryable if Kinesis cannot be reached.
    pub async fn health(&self) -> Result<StreamHealth, StoreError> {
        let out = self
            .client
            .describe_stream_summary()
            .stream_name(&self.stream)
            .send()
            .await
            .map_err(|e| classify(SERVICE, "health", e))?;
        let s = out.stream_description_summary.ok_or_else(|| {
            StoreError::fatal(SERVICE, "health", "DescribeStreamSummary without a summary")
        })?;
        Ok(StreamHealth {
            stream: s.stream_name,
            status: s.stream_status.as_str().to_string(),
            open_shards: s.open_shard_count,
        })
    }

    /// Sends the records at `positions` until each has a sequence number or the
    /// deadline passes, filling `out` at those positions.
    async fn put_batch(
        &self,
        records: &[LogRecord],
        mut positions: Vec<usize>,
        out: &mut [Option<String>],
        backoff: &mut Backoff,
    ) -> Result<(), StoreError> {
        loop {
            let entries = positions
                .iter()
                .map(|&i| entry(&records[i]))
                .collect::<Result<Vec<_>, _>>()?;
            let last = match self.sender.send(&self.stream, &entries).await {
                Ok(outcomes) if outcomes.len() == positions.len() => {
                    let mut failed = Vec::new();
                    let mut first_error = None;
                    for (pos, outcome) in positions.iter().zip(outcomes) {
                        match outcome {
                            Ok(seq) => out[*pos] = Some(seq),
                            Err(e) => {
                                failed.push(*pos);
                                first_error.get_or_insert(e);
                            }
                        }
                    }
                    if failed.is_empty() {
                        return Ok(());
                    }
                    tracing::debug!(
                        stream = %self.stream,
                        failed = failed.len(),
                        of = positions.len(),
                        "PutRecords failed some records"
                    );
                    let msg = format!(
                        "{} of {} records still failing, e.g. {}",
                        failed.len(),
                        positions.len(),
                        first_error.unwrap_or_default()
                    );
                    positions = failed;
                    msg
                }
                Ok(outcomes) => {
                    return Err(StoreError::fatal(
                        SERVICE,
                        "put",
                        format!(
                            "PutRecords answered {} results for {} records",
                            outcomes.len(),
                            positions.len()
                        ),
                    ))
                }
                Err(e) if e.is_retryable() => e.to_string(),
                Err(e) => return Err(e),
            };
            backoff.retry_after(SERVICE, "put", &last).await?;
        }
    }
}

#[async_trait]
impl Log for KinesisLog {
    async fn put(&self, records: &[LogRecord]) -> Result<Vec<String>, StoreError> {
        let mut backoff = Backoff::new(&self.retry);
        let batches = plan_batches(records, &self.limits)?;
        let mut out = vec![None; records.len()];
        for positions in batches {
            self.put_batch(records, positions, &mut out, &mut backoff)
                .await?;
        }
        out.into_iter()
            .enumerate()
            .map(|(i, s)| {
                s.ok_or_else(|| {
                    StoreError::fatal(SERVICE, "put", format!("record {i} got no sequence number"))
                })
            })
            .collect()
    }

    async fn shards(&self) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        loop {
            // With a NextToken, ListShards refuses the stream name.
            let req = match &token {
                Some(t) => self.client.list_shards().next_token(t),
                None => self.client.list_shards().stream_name(&self.stream),
            };
            let out = req
                .send()
                .await
                .map_err(|e| classify(SERVICE, "shards", e))?;
            ids.extend(
                out.shards
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| s.shard_id),
            );
            match out.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(ids),
            }
        }
    }

    async fn iterator(&self, shard_id: &str, start: &StartAt) -> Result<String, StoreError> {
        let req = self
            .client
            .get_shard_iterator()
            .stream_name(&self.stream)
            .shard_id(shard_id);
        let req = match start {
            StartAt::TrimHorizon => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
            StartAt::Latest => req.shard_iterator_type(ShardIteratorType::Latest),
            StartAt::AtTimestamp(ms) => req
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(DateTime::from_millis(*ms)),
            StartAt::AfterSequence(s) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(s),
            StartAt::AtSequence(s) => req
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .starting_sequence_number(s),
        };
        let out = req
            .send()
            .await
            .map_err(|e| classify(SERVICE, "iterator", e))?;
        out.shard_iterator
            .map(|it| wrap_iterator(shard_id, &it))
            .ok_or_else(|| {
                StoreError::fatal(
                    SERVICE,
                    "iterator",
                    format!("GetShardIterator gave no iterator for {shard_id}"),
                )
            })
    }

    async fn read(&self, iterator: &str, limit: usize) -> Result<LogBatch, StoreError> {
        let limit = i32::try_from(limit.clamp(1, MAX_READ_LIMIT)).expect("at most 10,000");
        let (shard_id, iterator) = unwrap_iterator(iterator);
        let out = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(limit)
            .send()
            .await
            .map_err(|e| {
                if e.code() == Some("ExpiredIteratorException") {
                    StoreError::IteratorExpired {
                        service: SERVICE,
                        op: "read",
                        detail: e.message().unwrap_or("expired").to_string(),
                        source: None,
                    }
                } else {
                    classify(SERVICE, "read", e)
                }
            })?;
        let records = out
            .records
            .into_iter()
            .map(|r| LogEntry {
                shard_id: shard_id.to_string(),
                sequence_number: r.sequence_number,
                partition_key: r.partition_key.unwrap_or_default(),
                data: r.data.into_inner(),
                arrival_ms: r
                    .approximate_arrival_timestamp
                    .and_then(|t| t.to_millis().ok())
                    .unwrap_or(0),
            })
            .collect();
        Ok(LogBatch {
            records,
            next_iterator: out
                .next_shard_iterator
                .map(|it| wrap_iterator(shard_id, &it)),
            millis_behind_latest: out.millis_behind_latest.unwrap_or(0),
        })
    }
}

/// GetRecords does not say which shard it read, so the iterators this adapter hands
/// out carry the shard id in front: `<shard id>|<Kinesis iterator>` (iterators are
/// opaque to callers; shard ids never contain `|`). A bare Kinesis iterator also works,
/// with an empty shard id on its records.
fn wrap_iterator(shard_id: &str, iterator: &str) -> String {
    format!("{shard_id}|{iterator}")
}

fn unwrap_iterator(iterator: &str) -> (&str, &str) {
    iterator.split_once('|').unwrap_or(("", iterator))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(pk: &str, bytes: usize) -> LogRecord {
        LogRecord {
            partition_key: pk.to_string(),
            data: vec![1; bytes],
        }
    }

    #[test]
    fn iterators_carry_their_shard() {
        let w = wrap_iterator("shardId-000000000001", "AAAA|==");
        assert_eq!(unwrap_iterator(&w), ("shardId-000000000001", "AAAA|=="));
        assert_eq!(unwrap_iterator("AAAA"), ("", "AAAA"));
    }

    #[test]
    fn batches_respect_the_record_count() {
        let records: Vec<_> = (0..1_200).map(|i| rec(&format!("b{i}"), 10)).collect();
        let b = plan_batches(&records, &ServiceLimits::default()).unwrap();
        assert_eq!(
            b.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![500, 500, 200]
        );
        let flat: Vec<usize> = b.concat();
        assert_eq!(flat, (0..1_200).collect::<Vec<_>>());
    }

    #[test]
    fn batches_respect_the_byte_limit() {
        let records: Vec<_> = (0..12).map(|_| rec("b1", 1_000_000 - 2)).collect();
        let b = plan_batches(&records, &ServiceLimits::default()).unwrap();
        // 5 MiB per call holds five records of 1,000,000 bytes.
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![5, 5, 2]);
    }

    proptest::proptest! {
        /// Any record sizes: every record is sent once, in input order, and every call
        /// stays within the count and byte limits.
        #[test]
        fn batches_cover_every_record_once_within_limits(
            sizes in proptest::collection::vec(0usize..40_000, 0..400),
            max_records in 1usize..=500,
            max_bytes in 40_010usize..200_000,
        ) {
            let limits = ServiceLimits {
                kinesis_batch_records: max_records,
                kinesis_batch_bytes: max_bytes,
                ..ServiceLimits::default()
            };
            let records: Vec<_> = sizes.iter().map(|&n| rec("b7", n)).collect();
            let batches = plan_batches(&records, &limits).unwrap();
            proptest::prop_assert_eq!(batches.concat(), (0..records.len()).collect::<Vec<_>>());
            for b in &batches {
                proptest::prop_assert!(!b.is_empty() && b.len() <= max_records);
                proptest::prop_assert!(b.iter().map(|&i| record_bytes(&records[i])).sum::<usize>() <= max_bytes);
            }
        }
    }

    #[test]
    fn oversize_records_and_bad_keys_are_fatal_and_named() {
        let e = plan_batches(
            &[rec("b1", 1), rec("b2", MAX_RECORD_BYTES)],
            &ServiceLimits::default(),
        )
        .unwrap_err();
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("record 1"), "{e}");
        let e = plan_batches(&[rec("", 1)], &ServiceLimits::default()).unwrap_err();
        assert!(e.to_string().contains("record 0"), "{e}");
        let long = "x".repeat(257);
        assert!(plan_batches(&[rec(&long, 1)], &ServiceLimits::default()).is_err());
    }
}
