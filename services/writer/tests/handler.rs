//! The writer's handler against fixture Kinesis events (real Lambda event JSON, built
//! once from real encoded records) and the in-memory fakes.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::event::kinesis::KinesisEvent;
use carat_core::{record, Point};
use carat_store::fake::{FakeHead, FaultKind};
use carat_store::ports::{Head, HeadAppend, WindowRef};
use carat_store::StoreError;
use carat_writer::Clock as _;
use carat_writer::Writer;
use common::*;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Points of the good batch: four series in the window [T0 - 800, T0 + 2800).
fn good_series() -> Vec<(&'static str, Vec<Point>)> {
    vec![
        (
            "host.h1.cpu.user",
            vec![
                Point::new(T0 - 120, 12.5),
                Point::new(T0 - 60, 13.25),
                Point::new(T0, 11.0),
            ],
        ),
        (
            "host.h1.memory.used",
            vec![Point::new(T0 - 60, 1.5e9), Point::new(T0, 1.6e9)],
        ),
        ("host.h2.cpu.user", vec![Point::new(T0, 99.9)]),
        (
            "service.web.latency.p99",
            vec![Point::new(T0 - 60, 0.123), Point::new(T0, 0.2)],
        ),
    ]
}

/// The event of each fixture, rebuilt from its records.
fn build_fixture(name: &str) -> KinesisEvent {
    let cfg = cfg();
    let stamp = T0 * 1000 + 500;
    match name {
        "good-batch.json" => {
            kinesis_event(&entries(100, stamp, records(&cfg, stamp, &good_series())))
        }
        "bad-record.json" => {
            let mut recs = records(&cfg, stamp, &good_series()[..1]);
            recs.push(("b7".to_string(), b"{\"not\":\"a record\"}".to_vec()));
            recs.extend(records(&cfg, stamp, &good_series()[2..3]));
            kinesis_event(&entries(200, stamp, recs))
        }
        other => panic!("no fixture {other}"),
    }
}

fn load_fixture(name: &str) -> KinesisEvent {
    let text = std::fs::read_to_string(fixture_path(name))
        .expect("fixture exists (UPDATE_FIXTURES=1 writes it)");
    serde_json::from_str(&text).expect("fixture is a Lambda KinesisEvent")
}

/// The generator: `UPDATE_FIXTURES=1 cargo test -p carat-writer --test handler` rewrites
/// the fixtures; without it, this asserts that the stored fixtures still decode to the
/// records they were built from (a record format change must show up here).
#[test]
fn fixtures_still_decode() {
    for name in ["good-batch.json", "bad-record.json"] {
        let built = build_fixture(name);
        if std::env::var_os("UPDATE_FIXTURES").is_some() {
            // Lambda sends the arrival time as a JSON number (the crate writes a string).
            let mut v = serde_json::to_value(&built).expect("serialise event");
            for r in v["Records"].as_array_mut().expect("records") {
                let t = &mut r["kinesis"]["approximateArrivalTimestamp"];
                let secs: f64 = t
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .expect("arrival time");
                *t = serde_json::json!(secs);
            }
            let text = serde_json::to_string_pretty(&v).expect("serialise event");
            std::fs::write(fixture_path(name), text + "\n").expect("write fixture");
        }
        let stored = load_fixture(name);
        assert_eq!(stored.records.len(), built.records.len(), "{name}");
        for (s, b) in stored.records.iter().zip(&built.records) {
            assert_eq!(s.kinesis.sequence_number, b.kinesis.sequence_number);
            match (
                record::decode(&s.kinesis.data),
                record::decode(&b.kinesis.data),
            ) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{name}"),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("{name}: stored {a:?} vs built {b:?}"),
            }
        }
    }
}

#[tokio::test]
async fn good_batch_is_appended_then_flushed_exactly() {
    let rig = Rig::new(cfg(), T0 * 1000 + 900);
    let event = load_fixture("good-batch.json");
    let resp = rig.writer.handle(&event).await.unwrap();
    assert!(resp.batch_item_failures.is_empty());
    let report = rig.writer.process(&event.records).await.unwrap();
    assert_eq!(report.processed_points, 8);
    assert_eq!(report.bad_records, 0);
    assert_eq!(
        report.flushed_windows, 0,
        "open window, under the threshold"
    );
    assert!(rig.items().is_empty());
    // Twice the same batch: the head holds duplicates, the flush does not.
    let start = carat_core::window::start(3_600, T0);
    rig.clock.set_ms((rig.cfg.flush_due(start)) * 1000);
    assert_eq!(rig.flush_due().await, 4);
    for (series, points) in good_series() {
        let got = stored_points(&rig.items(), series);
        assert_eq!(got, points, "{series}");
    }
    // One item per window: the rollups are computed from it, not stored beside it.
    assert!(rig.items().iter().all(|i| i.pk.ends_with("#raw")));
    assert_eq!(rig.items().len(), good_series().len());
    let raw = rig
        .items()
        .into_iter()
        .find(|i| i.pk.ends_with("#raw"))
        .unwrap();
    assert_eq!(raw.expires_at, start + 3_600 + rig.cfg.retention.raw_secs);
    // Flushed and closed ⇒ settled: nothing is due any more.
    assert_eq!(rig.flush_due().await, 0);
}

#[tokio::test]
async fn undecodable_record_is_skipped_counted_and_sunk() {
    let rig = Rig::new(cfg(), T0 * 1000 + 900);
    let event = load_fixture("bad-record.json");
    let report = rig.writer.process(&event.records).await.unwrap();
    assert_eq!(report.bad_records, 1);
    assert_eq!(
        report.first_failed, None,
        "a bad record never blocks the shard"
    );
    assert_eq!(
        report.processed_points, 4,
        "records on both sides of it are stored"
    );
    let sunk = rig.sink.0.lock().unwrap().clone();
    assert_eq!(sunk.len(), 1);
    assert_eq!(sunk[0].0, event.records[1].kinesis.sequence_number);
    assert_eq!(sunk[0].2, b"{\"not\":\"a record\"}".to_vec());
}

/// A head whose appends to one bucket fail retryably.
struct FailBucket {
    inner: FakeHead,
    bucket: u32,
}

#[async_trait]
impl Head for FailBucket {
    async fn append(&self, bucket: u32, appends: &[HeadAppend]) -> Result<Vec<u64>, StoreError> {
        if bucket == self.bucket {
            return Err(StoreError::retryable("test", "append", "throttled"));
        }
        self.inner.append(bucket, appends).await
    }
    async fn read(&self, w: &WindowRef) -> Result<Vec<u8>, StoreError> {
        self.inner.read(w).await
    }
    async fn due(&self, b: u32, now: i64, limit: usize) -> Result<Vec<WindowRef>, StoreError> {
        self.inner.due(b, now, limit).await
    }
    async fn settle(&self, w: &WindowRef, read: &[u8]) -> Result<bool, StoreError> {
        self.inner.settle(w, read).await
    }
}

#[tokio::test]
async fn retryable_head_failure_reports_first_unprocessed_record() {
    let event = load_fixture("good-batch.json");
    assert!(event.records.len() >= 2, "fixture spans several buckets");
    let cfg = Arc::new(cfg());
    for failing in 0..event.records.len() {
        let bucket: u32 = event.records[failing].kinesis.partition_key[1..]
            .parse()
            .unwrap();
        let head = Arc::new(FailBucket {
            inner: FakeHead::new(),
            bucket,
        });
        let table = Arc::new(carat_store::fake::FakeTable::new());
        let writer = Writer::new(
            cfg.clone(),
            head.clone(),
            table,
            Arc::new(carat_store::fake::FakeCatalog::new()),
            Arc::new(MemSink::default()),
            Arc::new(carat_writer::ManualClock::at_ms(T0 * 1000 + 900)),
        )
        .with_emf(false);
        let resp = writer.handle(&event).await.unwrap();
        let ids: Vec<_> = resp
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone().unwrap())
            .collect();
        assert_eq!(
            ids,
            vec![event.records[failing].kinesis.sequence_number.clone()]
        );
        // Every record before the reported one is fully in the head.
        let stored: usize = head
            .inner
            .windows()
            .iter()
            .map(|(w, b)| carat_core::head::decode(w.start, b).unwrap().len())
            .sum();
        let before: usize = event.records[..failing]
            .iter()
            .map(|r| {
                record::decode(&r.kinesis.data)
                    .unwrap()
                    .series
                    .iter()
                    .map(|s| s.points.len())
                    .sum::<usize>()
            })
            .sum();
        assert!(stored >= before, "records before the failure are stored");
    }
}

#[tokio::test]
async fn retryable_table_failure_on_flush_is_retried_or_reported_and_nonretryable_is_isolated() {
    let mut c = cfg();
    c.window.flush_point_threshold = 2; // every window of the fixture with ≥ 2 points flushes now
    c.writer.retry_deadline_ms = 0; // no retries inside the invocation
    let rig = Rig::new(c.clone(), T0 * 1000 + 900);
    let event = load_fixture("good-batch.json");
    rig.table.faults().fail_next_op("write_window", 1);
    let resp = rig.writer.handle(&event).await.unwrap();
    assert_eq!(
        resp.batch_item_failures.len(),
        1,
        "a failed threshold flush is not success"
    );
    // Retried from there: all good, and the threshold flush left the dirty marks.
    let resp = rig.writer.handle(&event).await.unwrap();
    assert!(resp.batch_item_failures.is_empty());
    assert!(!rig.items().is_empty());
    // A window whose flush fails for good is counted and skipped: the batch succeeds.
    rig.table
        .faults()
        .inject(Some("read_window"), 1, FaultKind::Fatal);
    let report = rig.writer.process(&event.records).await.unwrap();
    assert_eq!(report.failed_flushes, 1);
    assert!(report.first_failed.is_none());
    rig.table.faults().clear();
    // With a retry deadline, a throttled write is retried inside the invocation.
    let mut c2 = c.clone();
    c2.writer.retry_deadline_ms = 5_000;
    let rig2 = Rig::new(c2, T0 * 1000 + 900);
    rig2.table.faults().fail_next_op("write_window", 2);
    let report = rig2.writer.process(&event.records).await.unwrap();
    assert!(report.first_failed.is_none(), "{report:?}");
    assert!(report.bucket_retries >= 1);
    assert!(!rig2.items().is_empty());
    // Closed: the early-flushed windows are still dirty and flush to the exact points.
    let start = carat_core::window::start(3_600, T0);
    rig.clock.set_ms(rig.cfg.flush_due(start) * 1000);
    assert_eq!(rig.flush_due().await, 4);
    for (series, points) in good_series() {
        assert_eq!(stored_points(&rig.items(), series), points);
    }
}

#[tokio::test]
async fn sealed_points_are_kept_and_expired_points_dropped() {
    let cfg = cfg();
    let start = carat_core::window::start(3_600, T0);
    // Just past head_expiry of the fixture's window: the window is sealed, and its
    // points (a lagging writer, a replay) are merged into the stored window in-batch.
    let rig = Rig::new(cfg.clone(), cfg.head_expiry(start) * 1000);
    let event = load_fixture("good-batch.json");
    let report = rig.writer.process(&event.records).await.unwrap();
    assert_eq!(report.sealed_window_points, 8);
    assert_eq!(report.processed_points, 8);
    assert_eq!(report.flushed_windows, 4, "due at once");
    for (series, points) in good_series() {
        assert_eq!(stored_points(&rig.items(), series), points, "{series}");
    }
    // The head keeps them until a flush merged them, not until their old expiry.
    for (_, bytes) in rig.head.windows() {
        assert!(!bytes.is_empty());
    }
    // A raw retention shorter than the lateness: the TTL check catches the points.
    let mut c = cfg.clone();
    c.retention.raw_secs = 60;
    let rig = Rig::new(c, (start + 3_600 + 61) * 1000);
    let report = rig.writer.process(&event.records).await.unwrap();
    assert_eq!(report.dropped_expired_points, 8);
}

#[tokio::test]
async fn late_point_reflushes_its_closed_window() {
    let rig = Rig::new(cfg(), T0 * 1000);
    let start = carat_core::window::start(3_600, T0);
    let ev = kinesis_event(&entries(
        1,
        T0 * 1000,
        records(&rig.cfg, T0 * 1000, &[("a.b", vec![Point::new(T0, 1.0)])]),
    ));
    rig.writer.process(&ev.records).await.unwrap();
    rig.clock.set_ms(rig.cfg.flush_due(start) * 1000 + 5_000);
    assert_eq!(rig.flush_due().await, 1);
    // A late point for the closed window: the writer's due check flushes it in-batch.
    let stamp = rig.clock.now_ms();
    let ev = kinesis_event(&entries(
        2,
        stamp,
        records(&rig.cfg, stamp, &[("a.b", vec![Point::new(T0 + 1, 2.0)])]),
    ));
    let report = rig.writer.process(&ev.records).await.unwrap();
    assert_eq!(report.flushed_windows, 1);
    assert_eq!(
        stored_points(&rig.items(), "a.b"),
        vec![Point::new(T0, 1.0), Point::new(T0 + 1, 2.0)]
    );
    assert_eq!(rig.flush_due().await, 0, "settled after the re-flush");
}

#[tokio::test]
async fn extreme_record_times_are_bad_records_not_panics() {
    let rig = Rig::new(cfg(), T0 * 1000);
    for (time, stamp) in [
        (i64::MAX, T0 * 1000),
        (i64::MIN, T0 * 1000),
        (T0, i64::MAX),
        (T0, i64::MIN),
        (carat_core::window::TIME_LIMIT + 1, T0 * 1000),
    ] {
        let ev = kinesis_event(&entries(
            1,
            T0 * 1000,
            records(&rig.cfg, stamp, &[("a.b", vec![Point::new(time, 1.0)])]),
        ));
        let report = rig.writer.process(&ev.records).await.unwrap();
        assert_eq!(report.bad_records, 1, "time {time}, stamp {stamp}");
        assert_eq!(report.first_failed, None);
    }
    assert!(rig.head.windows().is_empty());
}

/// `recs` (one per bucket, as [`records`] packs them) re-encoded as record v2 naming a
/// name set each; the sets are stored in `rig`'s catalog except those of `unstored`.
async fn by_name_set(
    rig: &Rig,
    recs: Vec<(String, Vec<u8>)>,
    unstored: &[usize],
) -> Vec<(String, Vec<u8>)> {
    use carat_store::ports::NameSets as _;
    let mut out = Vec::new();
    for (i, (pk, data)) in recs.into_iter().enumerate() {
        let r = record::decode(&data).unwrap();
        let set = record::NameSet::of(r.series.iter().map(|s| &s.series));
        if !unstored.contains(&i) {
            rig.catalog.put_name_set(&r.tenant, &set).await.unwrap();
        }
        out.push((pk, record::encode_with_set(&r, &set)));
    }
    out
}

#[tokio::test]
async fn records_naming_a_name_set_store_the_same_points() {
    let stamp = T0 * 1000 + 500;
    let inline = Rig::new(cfg(), T0 * 1000 + 900);
    let recs = records(&inline.cfg, stamp, &good_series());
    assert!(recs.len() >= 2, "the fixture spans several buckets");
    let report = inline
        .writer
        .process(&kinesis_event(&entries(1, stamp, recs.clone())).records)
        .await
        .unwrap();
    assert_eq!(report.processed_points, 8);

    let rig = Rig::new(cfg(), T0 * 1000 + 900);
    let event = kinesis_event(&entries(1, stamp, by_name_set(&rig, recs, &[]).await));
    let report = rig.writer.process(&event.records).await.unwrap();
    assert_eq!((report.processed_points, report.bad_records), (8, 0));
    assert_eq!(report.first_failed, None);
    // A second batch of the same sets fetches nothing: the sets are cached.
    let (_, gets) = rig.catalog.name_set_calls();
    rig.writer.process(&event.records).await.unwrap();
    assert_eq!(rig.catalog.name_set_calls().1, gets);
    // The same head, hence the same stored bytes, as the inline records gave.
    let start = carat_core::window::start(3_600, T0);
    for r in [&inline, &rig] {
        r.clock.set_ms(r.cfg.flush_due(start) * 1000);
        assert_eq!(r.flush_due().await, 4);
    }
    let bytes = |r: &Rig| {
        let mut v = r.items();
        v.sort_by(|a, b| (&a.pk, a.sk).cmp(&(&b.pk, b.sk)));
        v
    };
    assert_eq!(bytes(&inline), bytes(&rig));
}

#[tokio::test]
async fn a_record_whose_name_set_is_missing_is_sunk_and_a_failed_fetch_stops_the_batch() {
    let stamp = T0 * 1000 + 500;
    let rig = Rig::new(cfg(), T0 * 1000 + 900);
    let recs = records(&rig.cfg, stamp, &good_series());
    let n = recs.len();
    assert!(n >= 3, "the fixture spans at least three buckets");
    // Record 1's set was never stored: it cannot be decoded, and goes to the sink.
    let event = kinesis_event(&entries(
        1,
        stamp,
        by_name_set(&rig, recs.clone(), &[1]).await,
    ));
    let report = rig.writer.process(&event.records).await.unwrap();
    assert_eq!(report.bad_records, 1);
    assert_eq!(
        report.first_failed, None,
        "a bad record never blocks the shard"
    );
    let sunk = rig.sink.0.lock().unwrap().clone();
    assert_eq!(sunk.len(), 1);
    assert_eq!(sunk[0].0, event.records[1].kinesis.sequence_number);
    assert!(
        sunk[0].1.contains("is not in the catalog table"),
        "{}",
        sunk[0].1
    );

    // The catalog table failing: the batch stops at the first record naming a set not
    // yet fetched; what comes before it is stored, and the resent rest succeeds.
    let rig = Rig::new(cfg(), T0 * 1000 + 900);
    let mut mixed = recs.clone();
    let by_set = by_name_set(&rig, recs, &[]).await;
    mixed[1] = by_set[1].clone();
    let event = kinesis_event(&entries(1, stamp, mixed));
    rig.catalog.faults().fail_next_op("get_name_set", 1);
    let report = rig.writer.process(&event.records).await.unwrap();
    assert_eq!(report.name_set_failures, 1);
    assert_eq!(
        report.first_failed.as_deref(),
        Some(event.records[1].kinesis.sequence_number.as_str())
    );
    assert_eq!(report.bad_records, 0, "a failed fetch is not a bad record");
    let first: u64 = record::decode(&event.records[0].kinesis.data)
        .unwrap()
        .series
        .iter()
        .map(|s| s.points.len() as u64)
        .sum();
    assert_eq!(report.processed_points, first);
    let report = rig.writer.process(&event.records[1..]).await.unwrap();
    assert_eq!(report.first_failed, None);
    assert_eq!(report.processed_points, 8 - first);
}
