//! The central promise: replaying any part of the log changes nothing in the table.
//!
//! Any sequence of batches (random series, times, values; the same times again in later
//! batches with later stamps), processed and flushed; then a replay of a prefix, a
//! suffix or the whole log, flushed again ⇒ byte-identical items and identical points.
//! Also: a fresh head (Redis lost everything) rebuilt from the whole log gives the same
//! items, and a replayed old record never undoes a newer value.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use carat_core::{window, Config, Point};
use carat_store::ports::LogEntry;
use carat_writer::Clock as _;
use common::*;
use proptest::prelude::*;

const NAMES: [&str; 4] = ["host.h1.cpu", "host.h1.mem", "host.h2.cpu", "service.s.req"];

fn test_cfg() -> Config {
    let mut c = Config::default();
    c.window.raw_secs = 60;
    c.window.grace_secs = 5;
    c.window.flush_point_threshold = 4; // early flushes happen all the time
    c.ingest.max_lateness_secs = 3_600;
    c.record.buckets = 4; // several series share a bucket, so records carry several
    c.validate().unwrap();
    c
}

/// A request: per series index, (time offset in 0..180 s, value).
type Request = Vec<(usize, Vec<(i64, f64)>)>;

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        (0i32..4).prop_map(f64::from),
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop::collection::vec(
        (
            0..NAMES.len(),
            prop::collection::vec((0i64..180, value()), 1..6),
        ),
        1..3,
    )
}

struct Log {
    entries: Vec<LogEntry>,
    /// Batch boundaries (indexes into `entries`) and the clock at which each ran.
    batches: Vec<(std::ops::Range<usize>, i64)>,
    /// (series, time) ⇒ (stamp, value bits) of the winning write.
    model: BTreeMap<(usize, i64), (i64, u64)>,
}

fn build_log(cfg: &Config, w0: i64, batches: &[Vec<Request>]) -> Log {
    let mut entries = Vec::new();
    let mut ranges = Vec::new();
    let mut model: BTreeMap<(usize, i64), (i64, u64)> = BTreeMap::new();
    let mut req_no = 0i64;
    for (j, batch) in batches.iter().enumerate() {
        let from = entries.len();
        for req in batch {
            req_no += 1;
            // Stamps grow along the log, as ingest time does, a second apart: stamps
            // compare in whole seconds (carat_core::head), so this model's "later wins"
            // and the merge's agree.
            let stamp = (w0 + 200) * 1000 + req_no * 1000;
            let series: Vec<(&str, Vec<Point>)> = req
                .iter()
                .map(|(s, pts)| {
                    (
                        NAMES[*s],
                        pts.iter()
                            .map(|&(off, v)| Point::new(w0 + off, v))
                            .collect(),
                    )
                })
                .collect();
            for (s, pts) in req {
                for &(off, v) in pts {
                    let cand = (stamp, v.to_bits());
                    let slot = model.entry((*s, w0 + off)).or_insert(cand);
                    if cand > *slot {
                        *slot = cand;
                    }
                }
            }
            let first = entries.len() as u64 + 1;
            entries.extend(common::entries(first, stamp, records(cfg, stamp, &series)));
        }
        // Batch j runs while window j is closing: late points and re-flushes happen.
        ranges.push((from..entries.len(), (w0 + 70 * j as i64) * 1000));
    }
    Log {
        entries,
        batches: ranges,
        model,
    }
}

fn expected(log: &Log, s: usize) -> Vec<Point> {
    log.model
        .iter()
        .filter(|((si, _), _)| *si == s)
        .map(|((_, t), (_, bits))| Point::new(*t, f64::from_bits(*bits)))
        .collect()
}

fn bits(points: &[Point]) -> Vec<(i64, u64)> {
    points.iter().map(|p| (p.time, p.value.to_bits())).collect()
}

async fn replay(rig: &Rig, entries: &[LogEntry], chunk: usize) {
    for part in entries.chunks(chunk.max(1)) {
        let report = rig
            .writer
            .process(&kinesis_event(part).records)
            .await
            .unwrap();
        assert_eq!(report.first_failed, None);
    }
}

#[derive(Debug, Clone)]
enum Part {
    Prefix(usize),
    Suffix(usize),
    Whole,
}

fn run_case(batches: Vec<Vec<Request>>, part: Part, chunk: usize) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let cfg = test_cfg();
        let w0 = window::start(60, T0);
        let log = build_log(&cfg, w0, &batches);
        let rig = Rig::new(cfg.clone(), w0 * 1000);
        for (range, clock) in &log.batches {
            rig.clock.set_ms(*clock);
            let report = rig
                .writer
                .process(&kinesis_event(&log.entries[range.clone()]).records)
                .await
                .unwrap();
            prop_assert_eq!(report.first_failed, None);
            prop_assert_eq!(report.bad_records, 0);
        }
        let end = (w0 + 1_000) * 1000; // every window closed, none sealed
        rig.clock.set_ms(end);
        rig.flush_due().await;
        let first = rig.items();
        for (s, name) in NAMES.iter().enumerate() {
            prop_assert_eq!(
                bits(&stored_points(&first, name)),
                bits(&expected(&log, s)),
                "{}",
                name
            );
        }

        // Replay a part of the log over the running system, as the backup writer does.
        let n = log.entries.len();
        let slice = match part {
            Part::Prefix(k) => &log.entries[..k % (n + 1)],
            Part::Suffix(k) => &log.entries[k % (n + 1)..],
            Part::Whole => &log.entries[..],
        };
        replay(&rig, slice, chunk).await;
        rig.flush_due().await;
        prop_assert_eq!(&rig.items(), &first, "replay changed stored bytes");

        // Redis lost everything: a fresh head and table rebuilt from the whole log.
        let fresh = Rig::new(cfg, rig.clock.now_ms());
        replay(&fresh, &log.entries, chunk).await;
        fresh.flush_due().await;
        prop_assert_eq!(&fresh.items(), &first, "rebuild from the log differs");
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn replay_of_any_part_writes_identical_items(
        batches in prop::collection::vec(prop::collection::vec(request(), 1..4), 1..5),
        part in prop_oneof![any::<usize>().prop_map(Part::Prefix), any::<usize>().prop_map(Part::Suffix), Just(Part::Whole)],
        chunk in 1usize..6,
    ) {
        run_case(batches, part, chunk)?;
    }
}

#[tokio::test]
async fn replayed_old_record_never_undoes_a_newer_value() {
    let cfg = test_cfg();
    let w0 = window::start(60, T0);
    let t = w0 + 10;
    let old = entries(
        1,
        (w0 + 11) * 1000,
        records(&cfg, (w0 + 11) * 1000, &[("a.b", vec![Point::new(t, 1.0)])]),
    );
    let new = entries(
        2,
        (w0 + 12) * 1000,
        records(&cfg, (w0 + 12) * 1000, &[("a.b", vec![Point::new(t, 2.0)])]),
    );
    let rig = Rig::new(cfg, (w0 + 12) * 1000);
    rig.writer
        .process(&kinesis_event(&old).records)
        .await
        .unwrap();
    rig.writer
        .process(&kinesis_event(&new).records)
        .await
        .unwrap();
    rig.clock.set_ms((w0 + 100) * 1000);
    rig.flush_due().await;
    assert_eq!(stored_points(&rig.items(), "a.b"), vec![Point::new(t, 2.0)]);
    let before = rig.items();
    // The backup writer replays the old record after the newer one was flushed.
    let report = rig
        .writer
        .process(&kinesis_event(&old).records)
        .await
        .unwrap();
    assert_eq!(
        report.flushed_windows, 1,
        "the replay re-flushes the closed window in-batch"
    );
    assert_eq!(rig.flush_due().await, 0);
    assert_eq!(stored_points(&rig.items(), "a.b"), vec![Point::new(t, 2.0)]);
    assert_eq!(rig.items(), before);
}
