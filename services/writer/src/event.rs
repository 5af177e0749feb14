//! The Lambda `KinesisEvent` shape built from records read off the log: what
//! carat-local's pollers and the replay hand to [`crate::Writer::handle`], so the
//! local system exercises exactly the Lambda code path.

use aws_lambda_events::encodings::{Base64Data, SecondTimestamp};
use aws_lambda_events::event::kinesis::{
    KinesisEncryptionType, KinesisEvent, KinesisEventRecord, KinesisRecord,
};
use carat_store::ports::LogEntry;
use chrono::{DateTime, Utc};

/// One event record as Lambda would deliver `entry` from `stream` in `region`.
#[must_use]
pub fn event_record(region: &str, stream: &str, entry: &LogEntry) -> KinesisEventRecord {
    let arrival = DateTime::<Utc>::from_timestamp_millis(entry.arrival_ms).unwrap_or_default();
    KinesisEventRecord {
        aws_region: Some(region.to_string()),
        event_id: Some(format!("{}:{}", entry.shard_id, entry.sequence_number)),
        event_name: Some("aws:kinesis:record".to_string()),
        event_source: Some("aws:kinesis".to_string()),
        event_source_arn: Some(format!(
            "arn:aws:kinesis:{region}:000000000000:stream/{stream}"
        )),
        event_version: Some("1.0".to_string()),
        invoke_identity_arn: None,
        kinesis: KinesisRecord {
            approximate_arrival_timestamp: SecondTimestamp(arrival),
            data: Base64Data(entry.data.clone()),
            encryption_type: KinesisEncryptionType::None,
            partition_key: entry.partition_key.clone(),
            sequence_number: entry.sequence_number.clone(),
            kinesis_schema_version: Some("1.0".to_string()),
        },
    }
}

/// A whole event of `entries`, in order.
#[must_use]
pub fn event(region: &str, stream: &str, entries: &[LogEntry]) -> KinesisEvent {
    KinesisEvent {
        records: entries
            .iter()
            .map(|e| event_record(region, stream, e))
            .collect(),
    }
}
