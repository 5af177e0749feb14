//! The Kinesis log against the AWS stand-in, on streams of its own (2 shards each).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use carat_core::config::ServiceLimits;
use carat_store::kinesis::{RecordOutcome, RecordSend, SdkRecordSend};
use carat_store::ports::{cmp_sequence, Log, LogEntry, LogRecord, StartAt};
use carat_store::{KinesisLog, StoreError};
use common::{fast_retry, sdk, unique};

struct Stream {
    client: aws_sdk_kinesis::Client,
    name: String,
}

impl Stream {
    async fn create(shards: i32) -> Self {
        let client = aws_sdk_kinesis::Client::new(&sdk().await);
        let name = unique("carat-test");
        client
            .create_stream()
            .stream_name(&name)
            .shard_count(shards)
            .send()
            .await
            .unwrap();
        for _ in 0..100 {
            let s = client
                .describe_stream_summary()
                .stream_name(&name)
                .send()
                .await
                .unwrap();
            if s.stream_description_summary.unwrap().stream_status.as_str() == "ACTIVE" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Self { client, name }
    }

    fn log(&self, deadline_ms: u64) -> KinesisLog {
        KinesisLog::new(
            self.client.clone(),
            &self.name,
            ServiceLimits::default(),
            fast_retry(deadline_ms),
        )
    }

    async fn delete(self) {
        let _ = self
            .client
            .delete_stream()
            .stream_name(&self.name)
            .send()
            .await;
    }
}

fn records(n: usize) -> Vec<LogRecord> {
    (0..n)
        .map(|i| LogRecord {
            partition_key: format!("b{}", i % 64),
            data: format!("record {i}").into_bytes(),
        })
        .collect()
}

/// Every record of every shard, from the start.
async fn read_all(log: &KinesisLog) -> Vec<LogEntry> {
    let mut out = Vec::new();
    for shard in log.shards().await.unwrap() {
        let mut it = log.iterator(&shard, &StartAt::TrimHorizon).await.unwrap();
        loop {
            let batch = log.read(&it, 400).await.unwrap();
            let empty = batch.records.is_empty();
            out.extend(batch.records);
            match batch.next_iterator {
                Some(next) if !empty => it = next,
                _ => break,
            }
        }
    }
    out
}

/// The sequence numbers returned must name, position by position, the input records.
fn assert_in_input_order(input: &[LogRecord], seqs: &[String], read: &[LogEntry]) {
    assert_eq!(seqs.len(), input.len());
    let by_seq: HashMap<(&str, &str), &LogEntry> = read
        .iter()
        .map(|e| ((e.shard_id.as_str(), e.sequence_number.as_str()), e))
        .collect();
    assert_eq!(
        by_seq.len(),
        read.len(),
        "sequence numbers are unique per shard"
    );
    let by_seq_only: HashMap<&str, Vec<&LogEntry>> =
        read.iter().fold(HashMap::new(), |mut m, e| {
            m.entry(e.sequence_number.as_str()).or_default().push(e);
            m
        });
    for (i, (rec, seq)) in input.iter().zip(seqs).enumerate() {
        let got = by_seq_only
            .get(seq.as_str())
            .unwrap_or_else(|| panic!("record {i}: seq {seq} not read back"));
        assert!(
            got.iter()
                .any(|e| e.data == rec.data && e.partition_key == rec.partition_key),
            "record {i}: seq {seq} holds another record"
        );
    }
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn a_put_over_the_limit_is_split_and_fully_written() {
    let stream = Stream::create(2).await;
    let log = stream.log(10_000);
    let input = records(1_200);
    let seqs = log.put(&input).await.unwrap();
    let read = read_all(&log).await;
    assert_eq!(read.len(), 1_200);
    assert!(read.iter().all(|e| e.shard_id.starts_with("shardId-")));
    assert_in_input_order(&input, &seqs, &read);
    // One partition key stays on one shard, in input order.
    let of_b5: Vec<&LogEntry> = read.iter().filter(|e| e.partition_key == "b5").collect();
    assert!(of_b5.windows(2).all(|w| w[0].shard_id == w[1].shard_id));
    assert!(of_b5
        .windows(2)
        .all(|w| cmp_sequence(&w[0].sequence_number, &w[1].sequence_number).is_lt()));
    let expected: Vec<Vec<u8>> = input
        .iter()
        .filter(|r| r.partition_key == "b5")
        .map(|r| r.data.clone())
        .collect();
    assert_eq!(
        of_b5.iter().map(|e| e.data.clone()).collect::<Vec<_>>(),
        expected
    );
    stream.delete().await;
}

/// Wraps the real sender: on the first `failing_calls` calls every third record is
/// reported failed (and not sent), as Kinesis does under throttling.
struct Flaky {
    inner: SdkRecordSend,
    failing_calls: AtomicUsize,
    calls: AtomicUsize,
}

#[async_trait]
impl RecordSend for Flaky {
    async fn send(
        &self,
        stream: &str,
        records: &[PutRecordsRequestEntry],
    ) -> Result<Vec<RecordOutcome>, StoreError> {
        assert!(records.len() <= 500, "a call of {} records", records.len());
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self
            .failing_calls
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err()
        {
            return self.inner.send(stream, records).await;
        }
        let keep: Vec<PutRecordsRequestEntry> = records
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(_, r)| r.clone())
            .collect();
        let mut sent = self.inner.send(stream, &keep).await?.into_iter();
        Ok((0..records.len())
            .map(|i| {
                if i % 3 == 0 {
                    Err("ProvisionedThroughputExceededException: injected".to_string())
                } else {
                    sent.next().expect("one outcome per sent record")
                }
            })
            .collect())
    }
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn failed_records_are_retried_in_place_until_written() {
    let stream = Stream::create(2).await;
    let flaky = Arc::new(Flaky {
        inner: SdkRecordSend::new(stream.client.clone()),
        failing_calls: AtomicUsize::new(4),
        calls: AtomicUsize::new(0),
    });
    let log = stream.log(10_000).with_record_send(flaky.clone());
    let input = records(1_200);
    let seqs = log.put(&input).await.unwrap();
    let read = read_all(&log).await;
    // Every record exactly once, and the returned sequence numbers in input order.
    assert_eq!(read.len(), 1_200);
    assert_in_input_order(&input, &seqs, &read);
    assert!(flaky.calls.load(Ordering::SeqCst) >= 3 + 4);
    stream.delete().await;
}

/// Kinesis that fails every record.
struct Down;

#[async_trait]
impl RecordSend for Down {
    async fn send(
        &self,
        _: &str,
        records: &[PutRecordsRequestEntry],
    ) -> Result<Vec<RecordOutcome>, StoreError> {
        Ok(records
            .iter()
            .map(|_| Err("InternalFailure: injected".to_string()))
            .collect())
    }
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn an_expired_deadline_is_retryable() {
    let stream = Stream::create(1).await;
    let log = stream.log(300).with_record_send(Arc::new(Down));
    let started = Instant::now();
    let e = log.put(&records(10)).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("InternalFailure"), "{e}");
    let took = started.elapsed().as_millis();
    assert!((300..2_000).contains(&took), "{took} ms");
    stream.delete().await;
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn iterators_start_where_asked() {
    let stream = Stream::create(1).await;
    let log = stream.log(10_000);
    let shard = log.shards().await.unwrap().remove(0);
    let latest = log.iterator(&shard, &StartAt::Latest).await.unwrap();
    let first = log.put(&records(12)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mid_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let second = log.put(&records(3)).await.unwrap();

    // moto's sequence numbers are small integers: "9" < "10" must hold numerically.
    let all: Vec<&String> = first.iter().chain(&second).collect();
    assert!(
        all.windows(2).all(|w| cmp_sequence(w[0], w[1]).is_lt()),
        "{all:?}"
    );

    let from_latest = log.read(&latest, 100).await.unwrap();
    assert_eq!(from_latest.records.len(), 15);
    let after = log
        .iterator(&shard, &StartAt::AfterSequence(first[10].clone()))
        .await
        .unwrap();
    let got = log.read(&after, 100).await.unwrap().records;
    assert_eq!(
        got.first().map(|e| e.sequence_number.clone()),
        Some(first[11].clone())
    );
    assert_eq!(got.len(), 4);
    let at = log
        .iterator(&shard, &StartAt::AtSequence(first[9].clone()))
        .await
        .unwrap();
    assert_eq!(
        log.read(&at, 1).await.unwrap().records[0].sequence_number,
        first[9]
    );
    let ts = log
        .iterator(&shard, &StartAt::AtTimestamp(mid_ms))
        .await
        .unwrap();
    let got = log.read(&ts, 100).await.unwrap().records;
    assert_eq!(
        got.iter()
            .map(|e| e.sequence_number.clone())
            .collect::<Vec<_>>(),
        second
    );
    assert!(
        got.iter().all(|e| e.arrival_ms >= mid_ms - 1_000),
        "{got:?}"
    );
    stream.delete().await;
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn health_describes_the_stream() {
    let stream = Stream::create(2).await;
    let h = stream.log(1_000).health().await.unwrap();
    assert_eq!((h.status.as_str(), h.open_shards), ("ACTIVE", 2));
    assert_eq!(h.stream, stream.name);
    let client = stream.client.clone();
    stream.delete().await;
    let missing = KinesisLog::new(
        client,
        unique("no-such-stream"),
        ServiceLimits::default(),
        fast_retry(100),
    );
    assert!(!missing.health().await.unwrap_err().is_retryable());
}

/// Concurrent producers (API requests arrive in parallel) into one shard: every record
/// acknowledged is read back, once, under its own sequence number. Threaded moto lost
/// 141 of 10,000 such records (duplicate sequence numbers: moto's put_record is not
/// concurrency-safe); scripts/aws-standin.sh serialises it, and this test guards that.
#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn concurrent_puts_to_one_shard_lose_nothing() {
    let stream = Stream::create(1).await;
    let log = Arc::new(stream.log(10_000));
    let mut tasks = Vec::new();
    for t in 0..16 {
        let log = Arc::clone(&log);
        tasks.push(tokio::spawn(async move {
            let batch: Vec<LogRecord> = (0..50)
                .map(|i| LogRecord {
                    partition_key: "b1".to_string(),
                    data: format!("task {t} record {i}").into_bytes(),
                })
                .collect();
            log.put(&batch).await.unwrap()
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let read = read_all(&log).await;
    let distinct: std::collections::HashSet<&String> = acked.iter().collect();
    assert_eq!(
        distinct.len(),
        800,
        "acknowledged sequence numbers must be distinct"
    );
    assert_eq!(
        read.len(),
        800,
        "every acknowledged record is in the stream"
    );
    let datas: std::collections::HashSet<&Vec<u8>> = read.iter().map(|e| &e.data).collect();
    assert_eq!(datas.len(), 800);
    stream.delete().await;
}
