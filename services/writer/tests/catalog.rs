//! The writer keeps the series catalog: at most one catalog write per new series per
//! day, label sets from labels records kept exactly, and a failed catalog write never
//! hidden by a marker (fakes only).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use carat_core::catalog::day_of;
use carat_core::record::labels::{self, SeriesLabels};
use carat_core::{Point, SeriesName, Tenant};
use carat_store::fake::{FakeCatalog, FakeHead};
use carat_store::ports::CatalogEntry;
use carat_writer::Writer;
use common::*;

/// Midnight after T0, plus a minute: a test day that starts clean.
const DAY: i64 = 1_700_006_400 + 60;

fn point_batch(
    rig: &Rig,
    seq: u64,
    now: i64,
    series: &[&str],
) -> Vec<carat_store::ports::LogEntry> {
    let pts: Vec<(&str, Vec<Point>)> = series
        .iter()
        .map(|s| (*s, vec![Point::new(now, 1.0)]))
        .collect();
    entries(seq, now * 1000, records(&rig.cfg, now * 1000, &pts))
}

fn labels_record(rig: &Rig, series: &str, pairs: &[(&str, &str)]) -> (String, Vec<u8>) {
    let k = key(series);
    let (recs, skipped) = labels::pack(
        &Tenant::default_tenant(),
        vec![SeriesLabels {
            series: k.series.clone(),
            labels: pairs
                .iter()
                .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
                .collect(),
        }],
        rig.cfg.record.max_record_bytes,
    );
    assert!(skipped.is_empty());
    (
        carat_core::series::partition_key(k.bucket(rig.cfg.record.buckets)),
        recs.into_iter().next().unwrap(),
    )
}

fn entry(series: &str, pairs: &[(&str, &str)], day: i64) -> CatalogEntry {
    CatalogEntry {
        series: SeriesName::parse(series, "name").unwrap(),
        labels: pairs
            .iter()
            .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
            .collect(),
        day,
    }
}

/// A second writer container: the same head and catalog, its own memory.
fn other_container(rig: &Rig, catalog: &Arc<FakeCatalog>) -> Writer {
    Writer::new(
        rig.cfg.clone(),
        rig.head.clone(),
        rig.table.clone(),
        catalog.clone(),
        Arc::new(MemSink::default()),
        rig.clock.clone(),
    )
    .with_emf(false)
}

#[tokio::test]
async fn a_series_posted_a_thousand_times_a_day_is_recorded_once() {
    let rig = Rig::new(cfg(), DAY * 1000);
    let series = ["host.h1.cpu.user", "up.job.node"];
    let mut writes = 0;
    for i in 0..1_000 {
        let now = DAY + i * 60;
        rig.clock.set_ms(now * 1000);
        let batch = point_batch(&rig, 10 + u64::try_from(i).unwrap() * 10, now, &series);
        let report = rig
            .writer
            .process(&kinesis_event(&batch).records)
            .await
            .unwrap();
        assert!(report.first_failed.is_none());
        writes += report.catalog_writes;
    }
    assert_eq!(day_of(DAY + 999 * 60), day_of(DAY), "all in one day");
    assert_eq!((writes, rig.catalog.writes()), (2, 2));
    // Redis was asked once, by the first batch; then the container remembered.
    assert_eq!(
        rig.head.faults().calls("catalog_unmarked"),
        2,
        "one per bucket, once"
    );
    let day = day_of(DAY);
    assert_eq!(
        rig.catalog.entries(&Tenant::default_tenant()),
        vec![
            entry("host.h1.cpu.user", &[], day),
            entry("up.job.node", &[], day)
        ]
    );

    // Another container the same day: the Redis markers say "already recorded".
    let other = other_container(&rig, &rig.catalog);
    let batch = point_batch(&rig, 90_000, DAY + 1_000 * 60, &series);
    let report = other.process(&kinesis_event(&batch).records).await.unwrap();
    assert_eq!((report.catalog_writes, rig.catalog.writes()), (0, 2));

    // The next day: one more write per series, and the entries carry the new day.
    let next = DAY + 86_400;
    rig.clock.set_ms(next * 1000);
    for i in 0..10 {
        let batch = point_batch(
            &rig,
            100_000 + i * 10,
            next + i64::try_from(i).unwrap() * 60,
            &series,
        );
        rig.writer
            .process(&kinesis_event(&batch).records)
            .await
            .unwrap();
    }
    assert_eq!(rig.catalog.writes(), 4);
    assert!(rig
        .catalog
        .entries(&Tenant::default_tenant())
        .iter()
        .all(|e| e.day == day_of(next)));
}

#[tokio::test]
async fn a_failed_catalog_write_is_retried_and_the_series_recorded_afterwards() {
    let mut c = cfg();
    c.writer.retry_deadline_ms = 0; // no retries inside the invocation: the batch fails
    let rig = Rig::new(c, DAY * 1000);
    rig.catalog.faults().fail_next_op("record", 1);
    let batch = point_batch(&rig, 10, DAY, &["host.h1.cpu.user"]);
    let event = kinesis_event(&batch);
    let report = rig.writer.process(&event.records).await.unwrap();
    assert_eq!(
        report.first_failed.as_deref(),
        Some("10"),
        "handed back to Lambda"
    );
    assert!(rig.catalog.entries(&Tenant::default_tenant()).is_empty());
    let bucket = key("host.h1.cpu.user").bucket(rig.cfg.record.buckets);
    assert!(
        rig.head.catalog_marks(bucket, day_of(DAY)).is_empty(),
        "no marker for a series the catalog does not hold"
    );

    // Lambda re-sends the batch, to this container or another: the series is recorded.
    let other = other_container(&rig, &rig.catalog);
    let report = other.process(&event.records).await.unwrap();
    assert!(report.first_failed.is_none());
    assert_eq!(report.catalog_writes, 1);
    assert_eq!(
        rig.catalog.entries(&Tenant::default_tenant()),
        vec![entry("host.h1.cpu.user", &[], day_of(DAY))]
    );
    assert_eq!(
        rig.head.catalog_marks(bucket, day_of(DAY)),
        ["default:host.h1.cpu.user"]
    );
    // And the first container, retried too, records it (its memory holds nothing).
    let report = rig.writer.process(&event.records).await.unwrap();
    assert_eq!(
        report.catalog_writes, 0,
        "marked by the other container by now"
    );
}

#[tokio::test]
async fn a_failed_catalog_write_is_retried_within_the_invocation() {
    let rig = Rig::new(cfg(), DAY * 1000);
    rig.catalog.faults().fail_next_op("record", 2);
    let batch = point_batch(&rig, 10, DAY, &["host.h1.cpu.user"]);
    let report = rig
        .writer
        .process(&kinesis_event(&batch).records)
        .await
        .unwrap();
    assert!(report.first_failed.is_none());
    assert_eq!((report.bucket_retries, report.catalog_writes), (2, 1));
    assert_eq!(rig.catalog.entries(&Tenant::default_tenant()).len(), 1);
}

#[tokio::test]
async fn labels_records_always_write_their_labels_and_points_never_erase_them() {
    let rig = Rig::new(cfg(), DAY * 1000);
    let name = "http_requests_total.job.api.le.0.5.path._a_b";
    let set = [
        ("__name__", "http_requests_total"),
        ("job", "api"),
        ("le", "0.5"),
        ("path", "/a/b"),
    ];
    let mut recs = vec![labels_record(&rig, name, &set)];
    recs.extend(records(
        &rig.cfg,
        DAY * 1000,
        &[(name, vec![Point::new(DAY, 3.0)])],
    ));
    let event = kinesis_event(&entries(10, DAY * 1000, recs));
    let report = rig.writer.process(&event.records).await.unwrap();
    assert_eq!((report.labels_records, report.bad_records), (1, 0));
    assert_eq!((report.catalog_writes, report.processed_points), (1, 1));
    let day = day_of(DAY);
    assert_eq!(
        rig.catalog.entries(&Tenant::default_tenant()),
        vec![entry(name, &set, day)]
    );
    // Points alone: nothing to write (marked), and the labels stay.
    let batch = point_batch(&rig, 20, DAY + 60, &[name]);
    let report = rig
        .writer
        .process(&kinesis_event(&batch).records)
        .await
        .unwrap();
    assert_eq!(report.catalog_writes, 0);
    // A labels record again (another API process, or an hour later): written again.
    let changed = [("__name__", "http_requests_total"), ("job", "api2")];
    let event = kinesis_event(&entries(
        30,
        DAY * 1000,
        vec![labels_record(&rig, name, &changed)],
    ));
    let report = rig.writer.process(&event.records).await.unwrap();
    assert_eq!((report.catalog_writes, report.processed_points), (1, 0));
    assert_eq!(
        rig.catalog.entries(&Tenant::default_tenant()),
        vec![entry(name, &changed, day)]
    );
}

#[tokio::test]
async fn a_corrupt_labels_record_is_a_bad_record() {
    let rig = Rig::new(cfg(), DAY * 1000);
    let event = kinesis_event(&entries(
        10,
        DAY * 1000,
        vec![("b1".to_string(), vec![labels::VERSION, 0, 9, 9])],
    ));
    let report = rig.writer.process(&event.records).await.unwrap();
    assert_eq!((report.bad_records, report.catalog_writes), (1, 0));
    assert_eq!(rig.sink.0.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn catalog_writes_are_counted_in_the_emf_line_fields() {
    // The report is what the EMF line prints; a head without markers (the port's
    // default) still records each series once per container per day.
    let head = Arc::new(FakeHead::new());
    let rig = Rig::with_head(cfg(), DAY * 1000, head);
    let batch = point_batch(&rig, 10, DAY, &["a.b", "c.d", "e"]);
    let report = rig
        .writer
        .process(&kinesis_event(&batch).records)
        .await
        .unwrap();
    assert_eq!(report.catalog_writes, 3);
}
