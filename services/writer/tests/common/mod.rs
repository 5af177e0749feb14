//! Shared helpers of the writer's tests: a test config, records, a rig of fakes.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::event::kinesis::KinesisEvent;
use carat_core::record::{self, Record, SeriesPoints};
use carat_core::{Config, Point, SeriesKey, SeriesName, Tenant};
use carat_store::fake::{FakeCatalog, FakeHead, FakeTable};
use carat_store::ports::{Head, LogEntry, WindowItem, WindowRef};
use carat_writer::flush::flush_window;
use carat_writer::sink::{BadRecord, FailureSink};
use carat_writer::{event, ManualClock, Writer};

/// 2023-11-14T22:13:20Z: fixtures and tests live around this time.
pub const T0: i64 = 1_700_000_000;

/// Short windows so a test spans several; defaults elsewhere.
pub fn cfg() -> Config {
    let mut c = Config::default();
    c.window.raw_secs = 3_600;
    c.window.grace_secs = 60;
    c.validate().expect("test config is valid");
    c
}

pub fn key(series: &str) -> SeriesKey {
    SeriesKey::new(
        Tenant::default_tenant(),
        SeriesName::parse(series, "name").expect("test series name"),
    )
}

/// Records of `series` (name, points) at `stamp_ms`, one per bucket, as the API packs them.
pub fn records(
    cfg: &Config,
    stamp_ms: i64,
    series: &[(&str, Vec<Point>)],
) -> Vec<(String, Vec<u8>)> {
    let mut by_bucket: std::collections::BTreeMap<u32, Vec<SeriesPoints>> = Default::default();
    for (name, points) in series {
        let k = key(name);
        by_bucket
            .entry(k.bucket(cfg.record.buckets))
            .or_default()
            .push(SeriesPoints {
                series: k.series,
                points: points.clone(),
            });
    }
    by_bucket
        .into_iter()
        .map(|(b, series)| {
            let rec = Record {
                tenant: Tenant::default_tenant(),
                stamp_ms,
                series,
            };
            (carat_core::series::partition_key(b), record::encode(&rec))
        })
        .collect()
}

/// Log entries on shard 0 with sequence numbers `first_seq`, `first_seq + 1`, …
pub fn entries(first_seq: u64, arrival_ms: i64, recs: Vec<(String, Vec<u8>)>) -> Vec<LogEntry> {
    recs.into_iter()
        .enumerate()
        .map(|(i, (partition_key, data))| LogEntry {
            shard_id: "shardId-000000000000".to_string(),
            sequence_number: (first_seq + i as u64).to_string(),
            partition_key,
            data,
            arrival_ms,
        })
        .collect()
}

pub fn kinesis_event(entries: &[LogEntry]) -> KinesisEvent {
    event::event("us-east-1", "carat-points", entries)
}

/// A sink that remembers what it got.
#[derive(Default)]
pub struct MemSink(pub Mutex<Vec<(String, String, Vec<u8>)>>);

#[async_trait]
impl FailureSink for MemSink {
    async fn put(&self, bad: &BadRecord<'_>) -> Result<(), std::io::Error> {
        self.0.lock().expect("sink lock").push((
            bad.sequence_number.to_string(),
            bad.reason.to_string(),
            bad.data.to_vec(),
        ));
        Ok(())
    }
}

pub struct Rig {
    pub cfg: Arc<Config>,
    pub head: Arc<FakeHead>,
    pub table: Arc<FakeTable>,
    pub catalog: Arc<FakeCatalog>,
    pub clock: Arc<ManualClock>,
    pub sink: Arc<MemSink>,
    pub writer: Writer,
}

impl Rig {
    pub fn new(cfg: Config, now_ms: i64) -> Self {
        Self::with_head(cfg, now_ms, Arc::new(FakeHead::new()))
    }

    pub fn with_head(cfg: Config, now_ms: i64, head: Arc<FakeHead>) -> Self {
        let cfg = Arc::new(cfg);
        let table = Arc::new(FakeTable::new());
        let catalog = Arc::new(FakeCatalog::new());
        let clock = Arc::new(ManualClock::at_ms(now_ms));
        let sink = Arc::new(MemSink::default());
        let writer = Writer::new(
            cfg.clone(),
            head.clone(),
            table.clone(),
            catalog.clone(),
            sink.clone(),
            clock.clone(),
        )
        .with_name_sets(catalog.clone())
        .with_emf(false);
        Self {
            cfg,
            head,
            table,
            catalog,
            clock,
            sink,
            writer,
        }
    }

    /// Flushes every due window of every bucket (what the flusher does), returns how many.
    pub async fn flush_due(&self) -> usize {
        let now = self.clock.now_ms().div_euclid(1000);
        let mut n = 0;
        for b in 0..self.cfg.record.buckets {
            let due: Vec<WindowRef> = self.head.due(b, now, usize::MAX).await.expect("due");
            for w in due {
                flush_window(&self.cfg, self.head.as_ref(), self.table.as_ref(), &w, now)
                    .await
                    .expect("flush");
                n += 1;
            }
        }
        n
    }

    pub fn items(&self) -> Vec<WindowItem> {
        self.table.items()
    }
}

use carat_writer::Clock as _;

/// The raw points stored for `series` (all its raw items, decoded, in time order).
pub fn stored_points(items: &[WindowItem], series: &str) -> Vec<Point> {
    let pk = key(series).table_pk("raw");
    items
        .iter()
        .filter(|i| i.pk == pk)
        .flat_map(|i| carat_core::chunk::decode(&i.body).expect("stored chunk decodes"))
        .collect()
}
