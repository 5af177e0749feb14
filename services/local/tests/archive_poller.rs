//! The DynamoDB-stream poller against an in-memory stream: only TTL removals reach the
//! handler, in batches; batch item failures are retried from the failed record; retryable
//! errors are retried without limit and fatal ones `retry_attempts` times; a child shard
//! starts after its parent; an expired iterator is re-opened after the last record
//! processed.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use carat_core::config::TableStreamConfig;
use carat_local::archive::{HandlerError, ShardEnd, StreamHandler, StreamPoller};
use carat_local::serve::Shutdown;
use carat_store::ports::{StreamBatch, StreamShard, StreamStart, TableStream};
use carat_store::StoreError;
use tokio::sync::watch;

const T: i64 = 1_700_000_000;

/// A stand-in style record: `ttl` in the OldImage, created at T.
fn record(shard: &str, seq: u64, name: &str, ttl: i64) -> EventRecord {
    serde_json::from_value(serde_json::json!({
        "awsRegion": "us-east-1",
        "eventID": format!("{shard}-{seq}"),
        "eventName": name,
        "dynamodb": {
            "ApproximateCreationDateTime": T,
            "Keys": {"pk": {"S": "t#cpu#raw"}, "sk": {"N": seq.to_string()}},
            "OldImage": {"pk": {"S": "t#cpu#raw"}, "sk": {"N": seq.to_string()}, "ttl": {"N": ttl.to_string()}},
            "SequenceNumber": seq.to_string(),
            "SizeBytes": 10,
        }
    }))
    .unwrap()
}

/// A TTL removal (ttl before the record's time) or a flush's delete (ttl after it).
fn expired(shard: &str, seq: u64) -> EventRecord {
    record(shard, seq, "REMOVE", T - 10)
}
fn flushed(shard: &str, seq: u64) -> EventRecord {
    record(shard, seq, "REMOVE", T + 86_400)
}

/// One fake shard: id, parent, closed, records.
type FakeShard = (String, Option<String>, bool, Vec<EventRecord>);

#[derive(Default)]
struct FakeStream {
    /// shard id ⇒ (parent, closed, records)
    shards: Mutex<Vec<FakeShard>>,
    /// The `read` call (0-based) that fails with an expired iterator.
    expire_read: Mutex<Option<usize>>,
    reads: AtomicUsize,
    iterators: Mutex<Vec<StreamStart>>,
}

impl FakeStream {
    fn shard(&self, id: &str, parent: Option<&str>, closed: bool, records: Vec<EventRecord>) {
        self.shards
            .lock()
            .unwrap()
            .push((id.into(), parent.map(Into::into), closed, records));
    }
}

#[async_trait]
impl TableStream for FakeStream {
    async fn shards(&self) -> Result<Vec<StreamShard>, StoreError> {
        Ok(self
            .shards
            .lock()
            .unwrap()
            .iter()
            .map(|(id, parent, closed, _)| StreamShard {
                shard_id: id.clone(),
                parent_shard_id: parent.clone(),
                closed: *closed,
            })
            .collect())
    }

    async fn iterator(&self, shard_id: &str, start: &StreamStart) -> Result<String, StoreError> {
        self.iterators.lock().unwrap().push(start.clone());
        let shards = self.shards.lock().unwrap();
        let (_, _, _, recs) = shards.iter().find(|s| s.0 == shard_id).unwrap();
        let pos = match start {
            StreamStart::TrimHorizon => 0,
            StreamStart::Latest => recs.len(),
            StreamStart::AtSequence(s) | StreamStart::AfterSequence(s) => {
                let i = recs
                    .iter()
                    .position(|r| r.change.sequence_number.as_deref() == Some(s))
                    .unwrap();
                if matches!(start, StreamStart::AfterSequence(_)) {
                    i + 1
                } else {
                    i
                }
            }
        };
        Ok(format!("{shard_id}|{pos}"))
    }

    async fn read(&self, iterator: &str, limit: usize) -> Result<StreamBatch, StoreError> {
        let n = self.reads.fetch_add(1, Ordering::SeqCst);
        if *self.expire_read.lock().unwrap() == Some(n) {
            return Err(StoreError::IteratorExpired {
                service: "fake",
                op: "read",
                detail: iterator.into(),
                source: None,
            });
        }
        let (shard, pos) = iterator.split_once('|').unwrap();
        let pos: usize = pos.parse().unwrap();
        let shards = self.shards.lock().unwrap();
        let (_, _, closed, recs) = shards.iter().find(|s| s.0 == shard).unwrap();
        // Two records per read, whatever the limit: batches are gathered over reads.
        let end = (pos + limit.min(2)).min(recs.len());
        let next = if *closed && end == recs.len() {
            None
        } else {
            Some(format!("{shard}|{end}"))
        };
        Ok(StreamBatch {
            records: recs[pos..end].to_vec(),
            next_iterator: next,
        })
    }
}

/// What a handler answers to one invocation.
enum Answer {
    Ok,
    FailFrom(String),
    Retryable,
    Fatal,
}

/// Records every batch; answers from a script, then Ok.
#[derive(Default)]
struct Recording {
    batches: Mutex<Vec<Vec<String>>>,
    script: Mutex<Vec<Answer>>,
}

impl Recording {
    fn ids(&self) -> Vec<Vec<String>> {
        self.batches.lock().unwrap().clone()
    }
}

#[async_trait]
impl StreamHandler for Recording {
    async fn handle(&self, event: &Event) -> Result<DynamoDbEventResponse, HandlerError> {
        self.batches
            .lock()
            .unwrap()
            .push(event.records.iter().map(|r| r.event_id.clone()).collect());
        for r in &event.records {
            let u = r.user_identity.as_ref().unwrap();
            assert_eq!(
                (u.type_.as_str(), u.principal_id.as_str()),
                ("Service", "dynamodb.amazonaws.com")
            );
        }
        let answer = {
            let mut s = self.script.lock().unwrap();
            if s.is_empty() {
                Answer::Ok
            } else {
                s.remove(0)
            }
        };
        match answer {
            Answer::Ok => Ok(DynamoDbEventResponse {
                batch_item_failures: vec![],
            }),
            Answer::FailFrom(seq) => Ok(DynamoDbEventResponse {
                batch_item_failures: vec![DynamoDbBatchItemFailure {
                    item_identifier: Some(seq),
                }],
            }),
            Answer::Retryable => Err(HandlerError::retryable("archive unreachable")),
            Answer::Fatal => Err(HandlerError::fatal("bad chunk")),
        }
    }
}

fn settings() -> TableStreamConfig {
    TableStreamConfig {
        batch_size: 3,
        max_batching_window_ms: 50,
        idle_poll_ms: 10,
        retry_backoff_ms: 5,
        max_backoff_ms: 20,
        retry_attempts: 2,
        shard_refresh_secs: 1,
    }
}

fn poller(stream: Arc<FakeStream>, handler: Arc<Recording>) -> StreamPoller {
    StreamPoller {
        stream,
        handler,
        settings: settings(),
        start: StreamStart::TrimHorizon,
    }
}

fn shutdown() -> (watch::Sender<bool>, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (tx, Shutdown::new(rx))
}

fn ids(shard: &str, seqs: &[u64]) -> Vec<String> {
    seqs.iter().map(|s| format!("{shard}-{s}")).collect()
}

#[tokio::test(start_paused = true)]
async fn only_ttl_removals_reach_the_handler_in_batches() {
    let stream = Arc::new(FakeStream::default());
    let recs = vec![
        record("a", 1, "INSERT", T + 86_400),
        expired("a", 2),
        flushed("a", 3),
        expired("a", 4),
        record("a", 5, "MODIFY", T - 10),
        expired("a", 6),
        expired("a", 7),
    ];
    stream.shard("a", None, true, recs);
    let handler = Arc::new(Recording::default());
    let (_tx, sd) = shutdown();
    let (end, stats) = poller(stream, handler.clone()).run_shard("a", sd).await;
    assert_eq!(end, ShardEnd::Closed);
    assert_eq!(handler.ids(), vec![ids("a", &[2, 4, 6]), ids("a", &[7])]);
    assert_eq!((stats.read, stats.marked, stats.handled), (7, 4, 4));
}

#[tokio::test(start_paused = true)]
async fn a_batch_item_failure_is_retried_from_the_failed_record() {
    let stream = Arc::new(FakeStream::default());
    stream.shard("a", None, true, (1..=3).map(|s| expired("a", s)).collect());
    let handler = Arc::new(Recording::default());
    handler
        .script
        .lock()
        .unwrap()
        .push(Answer::FailFrom("2".into()));
    let (_tx, sd) = shutdown();
    let (end, stats) = poller(stream, handler.clone()).run_shard("a", sd).await;
    assert_eq!(end, ShardEnd::Closed);
    assert_eq!(handler.ids(), vec![ids("a", &[1, 2, 3]), ids("a", &[2, 3])]);
    assert_eq!((stats.handled, stats.retried, stats.skipped), (3, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn retryable_errors_retry_without_limit_and_fatal_ones_are_skipped_after_retry_attempts() {
    let stream = Arc::new(FakeStream::default());
    stream.shard("a", None, true, (1..=4).map(|s| expired("a", s)).collect());
    let handler = Arc::new(Recording::default());
    {
        let mut s = handler.script.lock().unwrap();
        // More retryable failures than retry_attempts (2): still retried.
        for _ in 0..5 {
            s.push(Answer::Retryable);
        }
        s.push(Answer::Ok);
        // Then the second batch fails for good: 1 attempt + 2 retries, then skipped.
        for _ in 0..3 {
            s.push(Answer::Fatal);
        }
    }
    let (_tx, sd) = shutdown();
    let (end, stats) = poller(stream, handler.clone()).run_shard("a", sd).await;
    assert_eq!(end, ShardEnd::Closed);
    let batches = handler.ids();
    assert_eq!(batches.len(), 6 + 3, "{batches:?}");
    assert!(batches[..6].iter().all(|b| *b == ids("a", &[1, 2, 3])));
    assert!(batches[6..].iter().all(|b| *b == ids("a", &[4])));
    assert_eq!((stats.handled, stats.skipped), (3, 1));
}

#[tokio::test(start_paused = true)]
async fn an_expired_iterator_is_reopened_after_the_last_record_processed() {
    let stream = Arc::new(FakeStream::default());
    stream.shard("a", None, true, (1..=5).map(|s| expired("a", s)).collect());
    // Reads 0 and 1 gather records 1-4, the batch 1-3 is handled, read 2 fails.
    *stream.expire_read.lock().unwrap() = Some(2);
    let handler = Arc::new(Recording::default());
    let (_tx, sd) = shutdown();
    let (end, _) = poller(stream.clone(), handler.clone())
        .run_shard("a", sd)
        .await;
    assert_eq!(end, ShardEnd::Closed);
    assert_eq!(
        handler.ids(),
        vec![ids("a", &[1, 2, 3]), ids("a", &[4, 5])],
        "each record once"
    );
    let its = stream.iterators.lock().unwrap().clone();
    assert_eq!(
        its,
        [
            StreamStart::TrimHorizon,
            StreamStart::AfterSequence("3".into())
        ],
        "re-opened after the last record handled"
    );
}

#[tokio::test(start_paused = true)]
async fn a_child_shard_is_read_after_its_parent_and_everything_once() {
    let stream = Arc::new(FakeStream::default());
    // Listed child first: the poller must still finish the parent before the child.
    stream.shard(
        "child",
        Some("parent"),
        false,
        vec![expired("child", 10), expired("child", 11)],
    );
    stream.shard(
        "parent",
        None,
        true,
        (1..=4).map(|s| expired("parent", s)).collect(),
    );
    // A child whose parent was trimmed (not listed) starts at once.
    stream.shard("orphan", Some("gone"), true, vec![expired("orphan", 20)]);
    let handler = Arc::new(Recording::default());
    let (tx, sd) = shutdown();
    let p = poller(stream, handler.clone());
    let run = tokio::spawn(async move { p.run(sd).await });
    tokio::time::sleep(Duration::from_secs(5)).await;
    tx.send_replace(true);
    run.await.unwrap();
    let batches = handler.ids();
    let all: Vec<String> = batches.concat();
    let pos = |id: &str| all.iter().position(|x| x == id).unwrap();
    assert!(pos("parent-4") < pos("child-10"), "{batches:?}");
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), all.len(), "no record twice: {batches:?}");
    assert_eq!(all.len(), 7, "{batches:?}");
    let by_shard: HashMap<&str, usize> = all.iter().fold(HashMap::new(), |mut m, id| {
        *m.entry(id.split('-').next().unwrap()).or_default() += 1;
        m
    });
    assert_eq!(
        by_shard,
        HashMap::from([("parent", 4), ("child", 2), ("orphan", 1)])
    );
}
