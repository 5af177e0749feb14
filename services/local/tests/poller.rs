//! The per-shard poller against the in-memory log, head and table: every record reaches
//! the writer once per success, checkpoints persist and resume, batch item failures
//! re-read from the reported record, expired iterators are re-created.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use carat_core::record::{self, Record, SeriesPoints};
use carat_core::{Config, Point, SeriesKey, SeriesName, Tenant};
use carat_local::poller::{Checkpoints, ShardPoller};
use carat_local::serve::Shutdown;
use carat_store::fake::{FakeHead, FakeLog, FakeTable};
use carat_store::ports::{Log, LogBatch, LogRecord, StartAt};
use carat_store::StoreError;
use carat_writer::sink::DirSink;
use carat_writer::{ManualClock, Writer};
use tokio::sync::watch;

const T0: i64 = 1_700_000_000;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("carat-poller-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// `n` records, one point each, series `s<i % 7>` at time T0 + i.
fn records(cfg: &Config, from: usize, n: usize) -> Vec<LogRecord> {
    (from..from + n)
        .map(|i| {
            let key = SeriesKey::new(
                Tenant::default_tenant(),
                SeriesName::parse(&format!("s{}", i % 7), "name").unwrap(),
            );
            let rec = Record {
                tenant: Tenant::default_tenant(),
                stamp_ms: T0 * 1000 + i as i64,
                series: vec![SeriesPoints {
                    series: key.series.clone(),
                    points: vec![Point::new(T0 + i as i64, i as f64)],
                }],
            };
            LogRecord {
                partition_key: carat_core::series::partition_key(key.bucket(cfg.record.buckets)),
                data: record::encode(&rec),
            }
        })
        .collect()
}

struct Rig {
    head: Arc<FakeHead>,
    poller: ShardPoller,
    _stop: watch::Sender<bool>,
    shutdown: Shutdown,
}

fn rig(log: Arc<dyn Log>, checkpoints: Option<Checkpoints>, dir: &Path) -> Rig {
    let mut cfg = Config::default();
    // The writer reports a failed bucket at once instead of retrying it itself, so the
    // poller's own retry paths are what these tests see.
    cfg.writer.retry_deadline_ms = 0;
    let cfg = Arc::new(cfg);
    let head = Arc::new(FakeHead::new());
    let writer = Writer::new(
        cfg,
        head.clone(),
        Arc::new(FakeTable::new()),
        Arc::new(carat_store::fake::FakeCatalog::new()),
        Arc::new(DirSink::new(dir.join("failed"))),
        Arc::new(ManualClock::at_ms(T0 * 1000 + 5_000)),
    )
    .with_emf(false);
    let (stop, rx) = watch::channel(false);
    Rig {
        head,
        poller: ShardPoller {
            log,
            writer: Arc::new(writer),
            stream: "carat-points".into(),
            batch_size: 100,
            max_batching_window: Duration::from_millis(50),
            idle_poll: Duration::from_millis(20),
            retry_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            max_retry_attempts: 3,
            checkpoints,
            failed: DirSink::new(dir.join("failed")),
            until_caught_up: true,
        },
        _stop: stop,
        shutdown: Shutdown::new(rx),
    }
}

fn points_in_head(head: &FakeHead) -> usize {
    head.windows()
        .iter()
        .map(|(w, b)| {
            carat_core::head::decode(w.start, b)
                .expect("head decodes")
                .len()
        })
        .sum()
}

#[tokio::test(start_paused = true)]
async fn processes_every_record_checkpoints_and_resumes() {
    let dir = temp_dir("resume");
    let cfg = Config::default();
    let log = Arc::new(FakeLog::new(1));
    log.put(&records(&cfg, 0, 250)).await.unwrap();
    let cps = Checkpoints::new(dir.join("cp"), "carat-points");
    let r = rig(log.clone(), Some(cps.clone()), &dir);
    let shard = FakeLog::shard_id(0);
    let stats = r
        .poller
        .run(&shard, StartAt::TrimHorizon, r.shutdown.clone())
        .await
        .unwrap();
    assert_eq!(stats.records, 250);
    assert_eq!(stats.batches, 3, "batch size 100");
    assert_eq!(points_in_head(&r.head), 250);
    let last = log.records(0).last().unwrap().sequence_number.clone();
    assert_eq!(cps.load(&shard).await.unwrap(), Some(last));
    // Restart: only the new records are processed, from the checkpoint.
    log.put(&records(&cfg, 250, 10)).await.unwrap();
    let stats = r
        .poller
        .run(&shard, StartAt::TrimHorizon, r.shutdown.clone())
        .await
        .unwrap();
    assert_eq!(stats.records, 10);
    assert_eq!(points_in_head(&r.head), 260);
}

#[tokio::test(start_paused = true)]
async fn batch_item_failure_rereads_from_the_reported_record() {
    let dir = temp_dir("failure");
    let cfg = Config::default();
    let log = Arc::new(FakeLog::new(1));
    log.put(&records(&cfg, 0, 50)).await.unwrap();
    let cps = Checkpoints::new(dir.join("cp"), "carat-points");
    let r = rig(log.clone(), Some(cps.clone()), &dir);
    r.head.faults().fail_next_op("append", 2);
    let stats = r
        .poller
        .run(
            &FakeLog::shard_id(0),
            StartAt::TrimHorizon,
            r.shutdown.clone(),
        )
        .await
        .unwrap();
    assert!(stats.retried_batches >= 1);
    // Every point is in the head (some twice: re-sent records are harmless).
    let distinct: std::collections::BTreeSet<(String, i64, u64)> = r
        .head
        .windows()
        .iter()
        .flat_map(|(w, b)| {
            carat_core::head::decode(w.start, b)
                .expect("head decodes")
                .into_iter()
                .map(|p| (w.key.to_string(), p.time, p.value_bits))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(distinct.len(), 50);
    assert_eq!(
        cps.load(&FakeLog::shard_id(0)).await.unwrap(),
        Some(log.records(0).last().unwrap().sequence_number.clone())
    );
}

/// A log whose first read fails with an expired iterator.
struct ExpireOnce {
    inner: Arc<FakeLog>,
    expired: AtomicBool,
}

#[async_trait]
impl Log for ExpireOnce {
    async fn put(&self, r: &[LogRecord]) -> Result<Vec<String>, StoreError> {
        self.inner.put(r).await
    }
    async fn shards(&self) -> Result<Vec<String>, StoreError> {
        self.inner.shards().await
    }
    async fn iterator(&self, shard: &str, start: &StartAt) -> Result<String, StoreError> {
        self.inner.iterator(shard, start).await
    }
    async fn read(&self, it: &str, limit: usize) -> Result<LogBatch, StoreError> {
        if !self.expired.swap(true, Ordering::SeqCst) {
            return Err(StoreError::IteratorExpired {
                service: "test",
                op: "read",
                detail: it.into(),
                source: None,
            });
        }
        self.inner.read(it, limit).await
    }
}

#[tokio::test(start_paused = true)]
async fn expired_iterator_is_recreated_and_replay_keeps_no_checkpoint() {
    let dir = temp_dir("expired");
    let cfg = Config::default();
    let inner = Arc::new(FakeLog::new(1));
    inner.put(&records(&cfg, 0, 30)).await.unwrap();
    let log = Arc::new(ExpireOnce {
        inner,
        expired: AtomicBool::new(false),
    });
    let r = rig(log, None, &dir);
    let stats = r
        .poller
        .run(
            &FakeLog::shard_id(0),
            StartAt::TrimHorizon,
            r.shutdown.clone(),
        )
        .await
        .unwrap();
    assert_eq!(stats.records, 30);
    assert_eq!(points_in_head(&r.head), 30);
    assert!(
        !dir.join("cp").exists(),
        "the backup writer writes no checkpoint"
    );
}
