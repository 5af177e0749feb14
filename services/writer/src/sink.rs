//! Where undecodable records go. A bad record must never block its shard, so the
//! writer skips it and hands it to a [`FailureSink`] itself (Lambda's on-failure
//! destination only receives whole batches that exhausted their retries).
//!
//! - [`LogSink`] (AWS): an error log line with shard, sequence number and a prefix of
//!   the data, which a metric filter or Logs Insights can find.
//! - [`DirSink`] (carat-local): one JSON file per record under `.run/failed-records/`.

use std::path::PathBuf;

use async_trait::async_trait;
use base64::Engine as _;

/// An undecodable record and why.
#[derive(Debug, Clone, Copy)]
pub struct BadRecord<'a> {
    pub shard_id: &'a str,
    pub sequence_number: &'a str,
    pub partition_key: &'a str,
    pub data: &'a [u8],
    pub reason: &'a str,
}

/// Receives bad records. Failing to store one is logged by the writer, never fatal.
#[async_trait]
pub trait FailureSink: Send + Sync {
    async fn put(&self, bad: &BadRecord<'_>) -> Result<(), std::io::Error>;
}

/// Logs bad records (AWS, until an SQS or S3 sink is wired by the deploy work).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogSink;

/// Bytes of a bad record's data included in its log line.
const LOGGED_DATA_BYTES: usize = 256;

#[async_trait]
impl FailureSink for LogSink {
    async fn put(&self, bad: &BadRecord<'_>) -> Result<(), std::io::Error> {
        let prefix = &bad.data[..bad.data.len().min(LOGGED_DATA_BYTES)];
        tracing::error!(
            shard_id = bad.shard_id,
            sequence_number = bad.sequence_number,
            partition_key = bad.partition_key,
            data_len = bad.data.len(),
            data_prefix_b64 = %base64::engine::general_purpose::STANDARD.encode(prefix),
            reason = bad.reason,
            "bad record skipped"
        );
        Ok(())
    }
}

/// Writes each bad record to `<dir>/<shard>-<sequence>.json` (atomically: temp + rename).
#[derive(Debug, Clone)]
pub struct DirSink {
    dir: PathBuf,
}

impl DirSink {
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

/// Keeps only characters that are safe in a file name.
fn file_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[async_trait]
impl FailureSink for DirSink {
    async fn put(&self, bad: &BadRecord<'_>) -> Result<(), std::io::Error> {
        tokio::fs::create_dir_all(&self.dir).await?;
        let name = format!(
            "{}-{}.json",
            file_part(bad.shard_id),
            file_part(bad.sequence_number)
        );
        let body = serde_json::json!({
            "shardId": bad.shard_id,
            "sequenceNumber": bad.sequence_number,
            "partitionKey": bad.partition_key,
            "reason": bad.reason,
            "data": base64::engine::general_purpose::STANDARD.encode(bad.data),
        });
        let tmp = self.dir.join(format!(".{name}.tmp"));
        tokio::fs::write(&tmp, body.to_string()).await?;
        tokio::fs::rename(&tmp, self.dir.join(name)).await
    }
}
