//! [`DynamoStream`]: the [`TableStream`] port over DynamoDB Streams
//! (aws-sdk-dynamodbstreams), for carat-local's stand-in of the archiver's event source
//! mapping. In AWS, Lambda reads the stream itself and nothing here runs.
//!
//! - The stream is the table's latest one (ListStreams by table name, the greatest
//!   `StreamLabel`: labels are creation timestamps), looked up again by every `shards`
//!   call, so a stream re-created with the table is found.
//! - Records come back in the shape Lambda hands a function
//!   (`aws_lambda_events::event::dynamodb::EventRecord`): eventID, eventName, the
//!   sequence number, approximate creation time, Keys, OldImage, NewImage, and
//!   userIdentity when the service sets one (AWS does for TTL deletions; moto never does).
//!   An attribute type this SDK does not know, or a record without its `dynamodb` part,
//!   is a fatal error naming the record: a stream handler must not get half a record.
//! - Every call is bounded by `retry.deadline_ms` (its own timeout, whatever the SDK
//!   configuration says) and retried with backoff while it fails retryably (throttling
//!   is `LimitExceededException`, timeouts, 5xx).
//! - `ExpiredIteratorException` and `TrimmedDataAccessException` are
//!   [`StoreError::IteratorExpired`]: the reader asks for a new iterator (after its last
//!   processed record, or from TRIM_HORIZON when that record was trimmed).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::{
    EventRecord, StreamRecord, StreamViewType as EventViewType, UserIdentity,
};
use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata;
use aws_sdk_dynamodbstreams::types::{
    AttributeValue, OperationType, Record, ShardIteratorType, StreamViewType,
};
use aws_sdk_dynamodbstreams::Client;
use carat_core::config::RetryConfig;
use serde_dynamo::AttributeValue as EventValue;

use crate::aws::classify;
use crate::ports::{StreamBatch, StreamShard, StreamStart, TableStream};
use crate::retry::with_backoff;
use crate::StoreError;

const SERVICE: &str = "dynamodbstreams";

/// GetRecords returns at most this many records.
pub const MAX_READ_LIMIT: usize = 1_000;

/// Error codes after which the iterator (or the sequence number it was made from) is no
/// longer usable.
const EXPIRED_CODES: &[&str] = &["ExpiredIteratorException", "TrimmedDataAccessException"];

/// The window table's stream.
pub struct DynamoStream {
    client: Client,
    table: String,
    retry: RetryConfig,
    /// The latest stream's ARN, found by [`DynamoStream::stream_arn`].
    arn: Mutex<Option<String>>,
}

impl std::fmt::Debug for DynamoStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStream")
            .field("table", &self.table)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl DynamoStream {
    /// The stream of `table` through `client`; every call bounded by `retry.deadline_ms`.
    #[must_use]
    pub fn new(client: Client, table: impl Into<String>, retry: RetryConfig) -> Self {
        Self {
            client,
            table: table.into(),
            retry,
            arn: Mutex::new(None),
        }
    }

    /// The stream of `table` with a client from `sdk` (`connect::aws_config`).
    #[must_use]
    pub fn from_sdk(
        sdk: &aws_config::SdkConfig,
        table: impl Into<String>,
        retry: RetryConfig,
    ) -> Self {
        Self::new(Client::new(sdk), table, retry)
    }

    #[must_use]
    pub fn table(&self) -> &str {
        &self.table
    }

    /// One SDK call, bounded by the deadline.
    async fn bounded<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let limit = Duration::from_millis(self.retry.deadline_ms.max(1));
        tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
            Err(StoreError::retryable(
                SERVICE,
                op,
                format!("no answer within {} ms", limit.as_millis()),
            ))
        })
    }

    /// The ARN of the table's latest stream (ListStreams), remembered for `iterator`.
    ///
    /// # Errors
    /// Fatal if the table has no stream.
    pub async fn stream_arn(&self) -> Result<String, StoreError> {
        let arn = with_backoff(&self.retry, SERVICE, "stream", || {
            self.bounded("stream", self.latest_stream_once())
        })
        .await?;
        *self.arn.lock().expect("arn lock is never poisoned") = Some(arn.clone());
        Ok(arn)
    }

    async fn latest_stream_once(&self) -> Result<String, StoreError> {
        let mut best: Option<(String, String)> = None;
        let mut start: Option<String> = None;
        loop {
            let out = self
                .client
                .list_streams()
                .table_name(&self.table)
                .set_exclusive_start_stream_arn(start.take())
                .send()
                .await
                .map_err(|e| classify(SERVICE, "stream", e))?;
            for s in out.streams.unwrap_or_default() {
                if s.table_name.as_deref() != Some(self.table.as_str()) {
                    continue;
                }
                if let (Some(arn), label) = (s.stream_arn, s.stream_label.unwrap_or_default()) {
                    if best.as_ref().is_none_or(|(l, _)| label > *l) {
                        best = Some((label, arn));
                    }
                }
            }
            match out.last_evaluated_stream_arn {
                Some(a) if !a.is_empty() => start = Some(a),
                _ => break,
            }
        }
        best.map(|(_, arn)| arn).ok_or_else(|| {
            StoreError::fatal(
                SERVICE,
                "stream",
                format!("table {} has no stream", self.table),
            )
        })
    }

    async fn known_arn(&self) -> Result<String, StoreError> {
        let cached = self.arn.lock().expect("arn lock is never poisoned").clone();
        match cached {
            Some(a) => Ok(a),
            None => self.stream_arn().await,
        }
    }

    async fn shards_once(&self, arn: &str) -> Result<Vec<StreamShard>, StoreError> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_stream()
                .stream_arn(arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|e| classify(SERVICE, "shards", e))?;
            let Some(desc) = out.stream_description else {
                return Err(StoreError::fatal(
                    SERVICE,
                    "shards",
                    "DescribeStream without a description",
                ));
            };
            for s in desc.shards.unwrap_or_default() {
                let Some(shard_id) = s.shard_id else { continue };
                shards.push(StreamShard {
                    shard_id,
                    parent_shard_id: s.parent_shard_id.filter(|p| !p.is_empty()),
                    closed: s
                        .sequence_number_range
                        .and_then(|r| r.ending_sequence_number)
                        .is_some_and(|e| !e.is_empty()),
                });
            }
            match desc.last_evaluated_shard_id {
                Some(id) if !id.is_empty() => start = Some(id),
                _ => return Ok(shards),
            }
        }
    }

    async fn iterator_once(
        &self,
        arn: &str,
        shard_id: &str,
        start: &StreamStart,
    ) -> Result<String, StoreError> {
        let req = self
            .client
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard_id);
        let req = match start {
            StreamStart::TrimHorizon => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
            StreamStart::Latest => req.shard_iterator_type(ShardIteratorType::Latest),
            StreamStart::AtSequence(s) => req
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .sequence_number(s),
            StreamStart::AfterSequence(s) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(s),
        };
        let out = req.send().await.map_err(|e| {
            if e.code().is_some_and(|c| EXPIRED_CODES.contains(&c)) {
                expired("iterator", e.message().unwrap_or("trimmed")).with_source(e)
            } else {
                classify(SERVICE, "iterator", e)
            }
        })?;
        out.shard_iterator.ok_or_else(|| {
            StoreError::fatal(
                SERVICE,
                "iterator",
                format!("GetShardIterator gave no iterator for {shard_id}"),
            )
        })
    }

    async fn read_once(&self, iterator: &str, limit: i32) -> Result<StreamBatch, StoreError> {
        let out = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(limit)
            .send()
            .await
            .map_err(|e| {
                if e.code().is_some_and(|c| EXPIRED_CODES.contains(&c)) {
                    expired("read", e.message().unwrap_or("expired")).with_source(e)
                } else {
                    classify(SERVICE, "read", e)
                }
            })?;
        let arn = self.arn.lock().expect("arn lock is never poisoned").clone();
        let records = out
            .records
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, r)| event_record(arn.as_deref(), r).map_err(|e| e.at(i)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(StreamBatch {
            records,
            next_iterator: out.next_shard_iterator.filter(|it| !it.is_empty()),
        })
    }
}

fn expired(op: &'static str, detail: &str) -> StoreError {
    StoreError::IteratorExpired {
        service: SERVICE,
        op,
        detail: detail.to_string(),
        source: None,
    }
}

#[async_trait]
impl TableStream for DynamoStream {
    async fn shards(&self) -> Result<Vec<StreamShard>, StoreError> {
        let arn = self.stream_arn().await?;
        with_backoff(&self.retry, SERVICE, "shards", || {
            self.bounded("shards", self.shards_once(&arn))
        })
        .await
    }

    async fn iterator(&self, shard_id: &str, start: &StreamStart) -> Result<String, StoreError> {
        let arn = self.known_arn().await?;
        with_backoff(&self.retry, SERVICE, "iterator", || {
            self.bounded("iterator", self.iterator_once(&arn, shard_id, start))
        })
        .await
    }

    async fn read(&self, iterator: &str, limit: usize) -> Result<StreamBatch, StoreError> {
        let limit = i32::try_from(limit.clamp(1, MAX_READ_LIMIT)).expect("at most 1,000");
        with_backoff(&self.retry, SERVICE, "read", || {
            self.bounded("read", self.read_once(iterator, limit))
        })
        .await
    }
}

/// Why a stream record could not be converted: what was missing or unknown.
#[derive(Debug)]
struct Unconvertible(String);

impl Unconvertible {
    fn at(self, index: usize) -> StoreError {
        StoreError::fatal(SERVICE, "read", format!("record {index}: {}", self.0))
    }
}

/// A stream record as the SDK returns it, in the shape Lambda hands a function.
/// `stream_arn` becomes `eventSourceARN`, as Lambda sets it.
fn event_record(stream_arn: Option<&str>, r: Record) -> Result<EventRecord, Unconvertible> {
    let Some(d) = r.dynamodb else {
        return Err(Unconvertible("no dynamodb part".to_string()));
    };
    let event_name = match r.event_name {
        Some(OperationType::Insert) => "INSERT",
        Some(OperationType::Modify) => "MODIFY",
        Some(OperationType::Remove) => "REMOVE",
        Some(other) => {
            return Err(Unconvertible(format!(
                "unknown eventName {}",
                other.as_str()
            )))
        }
        None => return Err(Unconvertible("no eventName".to_string())),
    };
    let sequence = d.sequence_number.clone();
    let named = |what: &str| {
        format!(
            "{what} of record {}",
            sequence.as_deref().unwrap_or("without a sequence number")
        )
    };
    let created = d
        .approximate_creation_date_time
        .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or_default();
    let change = StreamRecord {
        approximate_creation_date_time: created,
        keys: item(d.keys).map_err(|e| Unconvertible(format!("{} in {}", e, named("Keys"))))?,
        new_image: item(d.new_image)
            .map_err(|e| Unconvertible(format!("{} in {}", e, named("NewImage"))))?,
        old_image: item(d.old_image)
            .map_err(|e| Unconvertible(format!("{} in {}", e, named("OldImage"))))?,
        sequence_number: d.sequence_number,
        size_bytes: d.size_bytes.unwrap_or(0),
        stream_view_type: d.stream_view_type.and_then(|v| match v {
            StreamViewType::NewImage => Some(EventViewType::NewImage),
            StreamViewType::OldImage => Some(EventViewType::OldImage),
            StreamViewType::NewAndOldImages => Some(EventViewType::NewAndOldImages),
            StreamViewType::KeysOnly => Some(EventViewType::KeysOnly),
            _ => None,
        }),
    };
    Ok(EventRecord {
        aws_region: r.aws_region.unwrap_or_default(),
        change,
        event_id: r.event_id.unwrap_or_default(),
        event_name: event_name.to_string(),
        event_source: r.event_source,
        event_version: r.event_version,
        event_source_arn: stream_arn.map(str::to_string),
        user_identity: r.user_identity.map(|u| UserIdentity {
            type_: u.r#type.unwrap_or_default(),
            principal_id: u.principal_id.unwrap_or_default(),
        }),
        record_format: None,
        table_name: None,
    })
}

fn item(attrs: Option<HashMap<String, AttributeValue>>) -> Result<serde_dynamo::Item, String> {
    let mut out = HashMap::new();
    for (name, v) in attrs.unwrap_or_default() {
        let v = value(v).map_err(|e| format!("attribute {name}: {e}"))?;
        out.insert(name, v);
    }
    Ok(out.into())
}

/// One attribute value. serde_dynamo's own conversion panics on a type it does not know;
/// this one says so instead.
fn value(v: AttributeValue) -> Result<EventValue, String> {
    Ok(match v {
        AttributeValue::N(n) => EventValue::N(n),
        AttributeValue::S(s) => EventValue::S(s),
        AttributeValue::Bool(b) => EventValue::Bool(b),
        AttributeValue::B(b) => EventValue::B(b.into_inner()),
        AttributeValue::Null(n) => EventValue::Null(n),
        AttributeValue::M(m) => EventValue::M(
            m.into_iter()
                .map(|(k, v)| value(v).map(|v| (k, v)))
                .collect::<Result<_, _>>()?,
        ),
        AttributeValue::L(l) => EventValue::L(l.into_iter().map(value).collect::<Result<_, _>>()?),
        AttributeValue::Ss(s) => EventValue::Ss(s),
        AttributeValue::Ns(n) => EventValue::Ns(n),
        AttributeValue::Bs(b) => EventValue::Bs(b.into_iter().map(|b| b.into_inner()).collect()),
        other => return Err(format!("unknown attribute type {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::primitives::{Blob, DateTime};
    use aws_sdk_dynamodbstreams::types::{Identity, StreamRecord as SdkStreamRecord};

    fn sdk_record(name: OperationType, identity: Option<Identity>) -> Record {
        let old = HashMap::from([
            ("pk".to_string(), AttributeValue::S("t#cpu#raw".into())),
            ("sk".to_string(), AttributeValue::N("86400".into())),
            ("ttl".to_string(), AttributeValue::N("100".into())),
            ("c".to_string(), AttributeValue::B(Blob::new(vec![1, 2, 3]))),
            (
                "m".to_string(),
                AttributeValue::M(HashMap::from([(
                    "l".to_string(),
                    AttributeValue::L(vec![AttributeValue::Bool(true), AttributeValue::Null(true)]),
                )])),
            ),
        ]);
        Record::builder()
            .event_id("e1")
            .event_name(name)
            .event_version("1.1")
            .event_source("aws:dynamodb")
            .aws_region("us-east-1")
            .set_user_identity(identity)
            .dynamodb(
                SdkStreamRecord::builder()
                    .approximate_creation_date_time(DateTime::from_millis(1_700_000_000_250))
                    .keys("pk", AttributeValue::S("t#cpu#raw".into()))
                    .keys("sk", AttributeValue::N("86400".into()))
                    .set_old_image(Some(old))
                    .sequence_number("1100000000017454423010")
                    .size_bytes(337)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build(),
            )
            .build()
    }

    #[test]
    fn records_convert_to_the_lambda_shape() {
        let identity = Identity::builder()
            .r#type("Service")
            .principal_id("dynamodb.amazonaws.com")
            .build();
        let r = event_record(
            Some("arn:s"),
            sdk_record(OperationType::Remove, Some(identity)),
        )
        .unwrap();
        assert_eq!(r.event_name, "REMOVE");
        assert_eq!(r.event_id, "e1");
        assert_eq!(r.event_source_arn.as_deref(), Some("arn:s"));
        assert_eq!(
            r.user_identity,
            Some(UserIdentity {
                type_: "Service".into(),
                principal_id: "dynamodb.amazonaws.com".into()
            })
        );
        let c = &r.change;
        assert_eq!(
            c.approximate_creation_date_time.timestamp_millis(),
            1_700_000_000_250
        );
        assert_eq!(c.sequence_number.as_deref(), Some("1100000000017454423010"));
        assert_eq!(c.size_bytes, 337);
        assert_eq!(c.stream_view_type, Some(EventViewType::NewAndOldImages));
        assert_eq!(c.keys.len(), 2);
        assert!(c.new_image.is_empty());
        assert_eq!(c.old_image.get("ttl"), Some(&EventValue::N("100".into())));
        assert_eq!(c.old_image.get("c"), Some(&EventValue::B(vec![1, 2, 3])));
        assert_eq!(
            c.old_image.get("m"),
            Some(&EventValue::M(HashMap::from([(
                "l".to_string(),
                EventValue::L(vec![EventValue::Bool(true), EventValue::Null(true)])
            )])))
        );
        // What Lambda would serialize: the field names a handler's fixtures use.
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["userIdentity"]["type"], "Service");
        assert_eq!(json["dynamodb"]["OldImage"]["ttl"]["N"], "100");
        assert_eq!(json["eventID"], "e1");
    }

    #[test]
    fn a_user_delete_has_no_identity_and_bad_records_are_named() {
        let r = event_record(None, sdk_record(OperationType::Remove, None)).unwrap();
        assert_eq!(r.user_identity, None);
        let broken = Record::builder().event_name(OperationType::Insert).build();
        let e = event_record(None, broken).unwrap_err().at(3);
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("record 3"), "{e}");
    }
}
