//! Model test of the read merge: any split of a series' points across the three tiers —
//! overlapping copies, newer values in newer tiers, expired items DynamoDB has not
//! deleted yet, windows not archived yet — reads back exactly what an in-memory oracle
//! says was written last (the greatest (stamp, value bits) per time), for any range.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use carat_core::head::{self as head_format, Stamped};
use carat_core::{window, Config, Point, SeriesKey, SeriesName, Tenant};
use carat_reader::buckets::{self, Bucket};
use carat_reader::{ArchiveTier, ArchivedWindow, TierError, Tiers};
use carat_store::fake::{FakeHead, FakeTable};
use carat_store::ports::{Head, HeadAppend, WindowRef, WindowTable};
use carat_writer::flush::window_items;
use proptest::prelude::*;

const RAW: i64 = 100;

fn config() -> Config {
    let mut cfg = Config::default();
    cfg.window.raw_secs = RAW;
    cfg.window.grace_secs = 5;
    cfg.ingest.max_lateness_secs = 50;
    cfg.retention.raw_secs = 300;
    cfg.validate().unwrap();
    cfg
}

/// The archive in memory: whole windows, as the archiver stores them.
#[derive(Default)]
struct MemArchive(BTreeMap<i64, Vec<Stamped>>);

#[async_trait]
impl ArchiveTier for MemArchive {
    async fn raw(
        &self,
        _: &SeriesKey,
        from: i64,
        to: i64,
    ) -> Result<Vec<ArchivedWindow>, TierError> {
        Ok(self
            .0
            .iter()
            .filter(|(&s, _)| s + RAW > from && s <= to)
            .map(|(&start, points)| ArchivedWindow {
                start,
                points: carat_core::head::latest_per_time(points.clone()),
            })
            .collect())
    }

    async fn rollups(
        &self,
        key: &SeriesKey,
        from: i64,
        to: i64,
        resolution: i64,
    ) -> Result<Vec<Bucket>, TierError> {
        let pts: Vec<Point> = self
            .raw(key, from, to)
            .await?
            .into_iter()
            .flat_map(|w| w.points.into_iter().map(|p| p.point()))
            .collect();
        Ok(buckets::bucketize(&pts, resolution))
    }
}

/// Where one write's copies went.
#[derive(Debug, Clone)]
struct Write {
    time: i64,
    value: i16,
    stamp: i64,
    /// Bit 0: head, bit 1: table, bit 2: archive (each only where that tier can hold it).
    tiers: u8,
}

fn writes() -> impl Strategy<Value = Vec<Write>> {
    proptest::collection::vec(
        (0i64..1_000, any::<i16>(), 0i64..60, 1u8..8).prop_map(|(time, value, s, tiers)| Write {
            time,
            value,
            // Stamps near the window (the head's 16-byte entries hold ±24 days).
            stamp: window::start(RAW, time) + s,
            tiers,
        }),
        0..120,
    )
}

fn stamped(w: &Write) -> Stamped {
    Stamped {
        time: w.time,
        value_bits: f64::from(w.value).to_bits(),
        stamp: w.stamp,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_split_across_tiers_reads_back_the_oracle(
        writes in writes(),
        now in 400i64..1_500,
        ranges in proptest::collection::vec((0i64..1_100, 0i64..1_100), 1..6),
        archived in any::<u16>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let cfg = Arc::new(config());
            let key = SeriesKey::new(Tenant::default_tenant(), SeriesName::parse("host.h1.cpu", "name").unwrap());
            let bucket = key.bucket(cfg.record.buckets);
            let head = Arc::new(FakeHead::new());
            let table = Arc::new(FakeTable::new());
            let mut archive = MemArchive::default();

            // Per window: which copies each tier gets. A tier the reader does not read for
            // that window (head past its expiry, table item expired while the archive holds
            // the window) may hold anything: here, the write's copy only if its bit says so.
            let mut by_window: BTreeMap<i64, Vec<&Write>> = BTreeMap::new();
            for w in &writes {
                by_window.entry(window::start(RAW, w.time)).or_default().push(w);
            }
            for (start, ws) in &by_window {
                let head_readable = cfg.head_expiry(*start) > now;
                let expired = start + RAW + cfg.retention.raw_secs <= now;
                // Which expired windows the archive already holds (the rest wait for TTL).
                let in_archive = expired && (archived >> ((start / RAW) % 16)) & 1 == 1;
                let (mut h, mut t, mut a) = (Vec::new(), Vec::new(), Vec::new());
                for w in ws {
                    let mut bits = w.tiers;
                    // Every write must have a copy where the reader looks.
                    let visible = |b: u8| {
                        (b & 1 == 1 && head_readable)
                            || (b & 2 == 2 && (!expired || !in_archive))
                            || (b & 4 == 4 && in_archive)
                    };
                    if !visible(bits) {
                        bits |= if in_archive { 4 } else if expired || !head_readable { 2 } else { 1 };
                    }
                    if bits & 1 == 1 { h.push(stamped(w)); }
                    if bits & 2 == 2 { t.push(stamped(w)); }
                    // The archive holds what DynamoDB held when TTL removed it: a superset.
                    if in_archive && bits & 6 != 0 { a.push(stamped(w)); }
                }
                if !h.is_empty() {
                    let window = WindowRef { bucket, key: key.clone(), start: *start };
                    // One block per point, as live minutely posts append them.
                    let appends: Vec<HeadAppend> = h.iter().map(|p| HeadAppend {
                        window: window.clone(),
                        block: head_format::encode_block(*start, &[*p]),
                        flush_due: 0,
                        expire_at: i64::MAX,
                    }).collect();
                    head.append(bucket, &appends).await.unwrap();
                }
                if !t.is_empty() {
                    let items = window_items(&cfg, &key, *start, &carat_core::head::latest_per_time(t)).unwrap();
                    table.put(&items).await.unwrap();
                }
                if in_archive {
                    archive.0.insert(*start, a);
                }
            }
            let tiers = Tiers { config: Arc::clone(&cfg), head, table, archive: Arc::new(archive) };

            let mut oracle: BTreeMap<i64, Stamped> = BTreeMap::new();
            for w in &writes {
                let s = stamped(w);
                let e = oracle.entry(w.time).or_insert(s);
                if s.wins(e) { *e = s; }
            }
            for (a, b) in ranges {
                let (from, to) = (a.min(b), a.max(b));
                let got = tiers.raw(&key, from, to, now).await.unwrap();
                let want: Vec<Point> = oracle.range(from..=to).map(|(_, s)| s.point()).collect();
                prop_assert_eq!(bits(&got), bits(&want), "range {}..={} at now {}", from, to, now);

                let secs = 300;
                let got = tiers.buckets(&key, from, to, secs, now).await.unwrap();
                let first = window::start(secs, from);
                let last = window::start(secs, to) + secs - 1;
                let all: Vec<Point> = oracle.range(first..=last).map(|(_, s)| s.point()).collect();
                prop_assert_eq!(got, buckets::bucketize(&all, secs));
            }
            Ok(())
        })?;
    }
}

fn bits(points: &[Point]) -> Vec<(i64, u64)> {
    points.iter().map(|p| (p.time, p.value.to_bits())).collect()
}
