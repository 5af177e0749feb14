//! Model test: any windows, archived in any batches (some replayed), compacted at any
//! points, read back as an oracle says — the latest (stamp, value bits) per time of
//! every version ever archived — and compaction is idempotent (same bytes).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use carat_archiver::compact::{compact_day, compact_month};
use carat_archiver::keys::{day_of, month_of};
use carat_archiver::ArchiveReader;
use carat_core::head::{latest_per_time, Stamped};
use carat_store::fake::FakeArchive;
use carat_store::ports::WindowItem;
use carat_writer::rollup;
use common::*;
use proptest::prelude::*;

const RAW: i64 = 3_600;
const SERIES: [&str; 3] = ["a.x", "a.y", "host.h1.cpu"];

/// One version of one window: (series index, window index, points, parts).
type Version = (usize, i64, Vec<(i64, u8, i64)>, usize);

fn arb_version() -> impl Strategy<Value = Version> {
    (
        0..SERIES.len(),
        0i64..60, // 60 hourly windows: three days
        proptest::collection::vec((0i64..RAW, 0u8..4, 0i64..3), 1..6),
        1usize..=3,
    )
}

#[derive(Debug, Clone)]
enum Step {
    /// Archive batch i (of the split), maybe again.
    Batch(usize),
    /// Compact the day of the i-th window's day (0..3) of the tenant.
    CompactDay(i64),
}

fn points(start: i64, raw: &[(i64, u8, i64)]) -> Vec<Stamped> {
    latest_per_time(
        raw.iter()
            .map(|&(off, v, stamp)| st(start + off, f64::from(v) * 0.5, start + stamp))
            .collect(),
    )
}

fn run(versions: Vec<Version>, cuts: Vec<usize>, steps: Vec<Step>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let cfg = config(RAW);
        let archive = Arc::new(FakeArchive::new());
        let a = archiver(&archive, cfg.clone());
        let mut all: Vec<WindowItem> = Vec::new();
        let mut oracle: BTreeMap<(usize, i64), Vec<Stamped>> = BTreeMap::new();
        for (s, w, raw, parts) in &versions {
            let start = DAY0 + w * RAW;
            let pts = points(start, raw);
            all.extend(items(&cfg, &key("t1", SERIES[*s]), start, &pts, *parts));
            let o = oracle.entry((*s, start)).or_default();
            o.extend(pts);
            *o = latest_per_time(std::mem::take(o));
        }
        // Split into batches at the cuts.
        let mut bounds: BTreeSet<usize> = cuts.iter().map(|c| c % (all.len() + 1)).collect();
        bounds.insert(0);
        bounds.insert(all.len());
        let bounds: Vec<usize> = bounds.into_iter().collect();
        let batches: Vec<&[WindowItem]> = bounds.windows(2).map(|b| &all[b[0]..b[1]]).collect();
        let tenant = key("t1", "a.x").tenant;
        let mut done = vec![false; batches.len()];
        for step in &steps {
            match step {
                Step::Batch(i) => {
                    let i = i % batches.len();
                    a.archive_batch(&event(batches[i], 1)).await.unwrap();
                    done[i] = true;
                }
                Step::CompactDay(d) => {
                    compact_day(archive.as_ref(), &tenant, DAY0 + d * 86_400)
                        .await
                        .unwrap();
                }
            }
        }
        for (i, b) in batches.iter().enumerate() {
            if !done[i] {
                a.archive_batch(&event(b, 1)).await.unwrap();
            }
        }
        let check = |reader: ArchiveReader| {
            let oracle = oracle.clone();
            async move {
                for (s, name) in SERIES.iter().enumerate() {
                    let got = reader
                        .raw(&key("t1", name), DAY0, DAY0 + 3 * 86_400)
                        .await
                        .unwrap();
                    let want: Vec<(i64, Vec<Stamped>)> = oracle
                        .iter()
                        .filter(|((si, _), _)| *si == s)
                        .map(|((_, start), p)| (*start, p.clone()))
                        .collect();
                    let got: Vec<(i64, Vec<Stamped>)> =
                        got.into_iter().map(|w| (w.start, w.points)).collect();
                    assert_eq!(got, want, "series {name}");
                }
            }
        };
        let reader = || {
            ArchiveReader::new(archive.clone() as _)
                .with_window_secs(RAW)
                .with_list_ttl(Duration::ZERO)
        };
        // Whatever is staged and compacted so far reads as the oracle.
        check(reader()).await;
        // Compact everything: still the oracle, nothing staged.
        for d in 0..3 {
            compact_day(archive.as_ref(), &tenant, DAY0 + d * 86_400)
                .await
                .unwrap();
        }
        assert!(archive
            .objects()
            .iter()
            .all(|(k, _)| !k.starts_with("stage/")));
        check(reader()).await;
        // Idempotent: replaying every batch and compacting again changes no day object.
        let days = |objs: Vec<(String, Vec<u8>)>| -> Vec<(String, Vec<u8>)> {
            objs.into_iter()
                .filter(|(k, _)| k.starts_with("day/"))
                .collect()
        };
        let before = days(archive.objects());
        for b in &batches {
            a.archive_batch(&event(b, 1)).await.unwrap();
        }
        for d in 0..3 {
            let r = compact_day(archive.as_ref(), &tenant, DAY0 + d * 86_400)
                .await
                .unwrap();
            if r.wrote {
                let after = days(archive.objects());
                for ((k1, b1), (_, b2)) in before.iter().zip(&after) {
                    if b1 != b2 {
                        let (_, x) = carat_archiver::format::decode_object(b1).unwrap();
                        let (_, y) = carat_archiver::format::decode_object(b2).unwrap();
                        for ((n, bx), (_, by)) in x.iter().zip(&y) {
                            let px = carat_archiver::format::decode_parts(bx).unwrap();
                            let py = carat_archiver::format::decode_parts(by).unwrap();
                            if px != py {
                                eprintln!("{k1} {n}\n{px:?}\n{py:?}");
                            }
                        }
                    }
                }
            }
            assert!(!r.wrote, "day {d} rewritten by a replay");
        }
        assert_eq!(days(archive.objects()), before);
        // Rollups: computed from raw before the month is compacted, from the month
        // object after; both equal the oracle's.
        let oracle_points = |s: usize| -> Vec<carat_core::Point> {
            oracle
                .iter()
                .filter(|((si, _), _)| *si == s)
                .flat_map(|(_, p)| p.iter().map(Stamped::point))
                .collect()
        };
        let r = reader();
        let (from, to) = (DAY0, DAY0 + 3 * 86_400);
        let mut fallback = Vec::new();
        for name in SERIES {
            fallback.push(r.rollups(&key("t1", name), from, to, 3_600).await.unwrap());
        }
        assert_eq!(month_of(DAY0), month_of(day_of(to)));
        compact_month(archive.as_ref(), &tenant, month_of(DAY0))
            .await
            .unwrap();
        let r = reader();
        for (s, name) in SERIES.iter().enumerate() {
            let want = rollup::compute_at(&oracle_points(s), &[3_600])
                .remove(0)
                .buckets;
            assert_eq!(fallback[s], want, "fallback rollups of {name}");
            let got = r.rollups(&key("t1", name), from, to, 3_600).await.unwrap();
            assert_eq!(got, want, "month rollups of {name}");
            let want_d = rollup::compute_at(&oracle_points(s), &[86_400])
                .remove(0)
                .buckets;
            let got_d = r.rollups(&key("t1", name), from, to, 86_400).await.unwrap();
            assert_eq!(got_d, want_d, "daily rollups of {name}");
        }
        let month_before: Vec<_> = archive.objects();
        compact_month(archive.as_ref(), &tenant, month_of(DAY0))
            .await
            .unwrap();
        assert_eq!(archive.objects(), month_before);
    });
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0usize..8).prop_map(Step::Batch),
        1 => (0i64..3).prop_map(Step::CompactDay),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn archive_reads_back_the_oracle(
        versions in proptest::collection::vec(arb_version(), 1..14),
        cuts in proptest::collection::vec(any::<usize>(), 0..5),
        steps in proptest::collection::vec(arb_step(), 0..10),
    ) {
        run(versions, cuts, steps);
    }
}
