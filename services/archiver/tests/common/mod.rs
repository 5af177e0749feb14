//! Shared by the archiver's tests: configs, items and stream events.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use carat_archiver::image::ttl_removal_record;
use carat_archiver::Archiver;
use carat_core::head::Stamped;
use carat_core::{Config, SeriesKey, SeriesName, Tenant};
use carat_store::fake::FakeArchive;
use carat_store::ports::WindowItem;

/// 2023-11-14T00:00:00Z
pub const DAY0: i64 = 1_699_920_000;

pub fn config(raw_secs: i64) -> Config {
    let mut c = Config::default();
    c.window.raw_secs = raw_secs;
    c.retention.raw_secs = 3_600;
    c
}

pub fn key(tenant: &str, series: &str) -> SeriesKey {
    SeriesKey::new(
        Tenant::parse(tenant).unwrap(),
        SeriesName::parse(series, "name").unwrap(),
    )
}

pub fn st(time: i64, value: f64, stamp: i64) -> Stamped {
    Stamped {
        time,
        value_bits: value.to_bits(),
        stamp,
    }
}

/// The items the writer stores for a window, its chunk re-split into `parts` parts
/// (the writer splits only past 390 KB; any split is valid).
pub fn items(
    cfg: &Config,
    key: &SeriesKey,
    start: i64,
    points: &[Stamped],
    parts: usize,
) -> Vec<WindowItem> {
    let whole = carat_writer::flush::window_items(cfg, key, start, points).unwrap();
    assert_eq!(whole.len(), 1);
    let w = &whole[0];
    let size = w.body.len().div_ceil(parts.max(1)).max(1);
    let slices: Vec<&[u8]> = w.body.chunks(size).collect();
    let n = u32::try_from(slices.len()).unwrap();
    slices
        .iter()
        .zip(0i64..)
        .map(|(s, i)| WindowItem {
            sk: start + i,
            body: s.to_vec(),
            parts: n,
            ..w.clone()
        })
        .collect()
}

/// A stream batch of TTL removals of `items`, sequence numbers from `first_seq`.
pub fn event(items: &[WindowItem], first_seq: u64) -> Event {
    Event {
        records: items
            .iter()
            .zip(first_seq..)
            .map(|(item, seq)| ttl_removal_record(item, &format!("{seq:028}")))
            .collect(),
    }
}

pub fn archiver(archive: &Arc<FakeArchive>, cfg: Config) -> Archiver {
    Archiver::new(Arc::clone(archive) as _, Arc::new(cfg)).with_emf(false)
}
