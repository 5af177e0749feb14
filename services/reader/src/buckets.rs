//! Points into buckets: count, sum, min and max per bucket (the rollups' own
//! [`Aggregate`]), partials of one bucket combined, and the value an aggregate takes.
//!
//! NaN values (Prometheus staleness markers, quantiles of empty summaries) are left out
//! of buckets: a bucket's average is of the values that are numbers, as Graphite and
//! Prometheus's `avg_over_time` skip markers. ±Inf are numbers and count.

use std::collections::BTreeMap;

use carat_core::{window, Point};
pub use carat_writer::rollup::Aggregate as Bucket;

use crate::range::Aggregate;

/// The buckets of length `secs` of `points`, ascending by start.
#[must_use]
pub fn bucketize(points: &[Point], secs: i64) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = Vec::new();
    for p in points.iter().filter(|p| !p.value.is_nan()) {
        let start = window::start(secs, p.time);
        match out.last_mut() {
            Some(b) if b.start == start => add(b, p.value),
            _ => out.push(Bucket {
                start,
                count: 1,
                sum: p.value,
                min: p.value,
                max: p.value,
            }),
        }
    }
    // Input is sorted by time, so buckets came out sorted; partials of one bucket
    // are only possible from unsorted input, which `combine` handles.
    if out.windows(2).any(|w| w[0].start >= w[1].start) {
        return combine(out, secs);
    }
    out
}

fn add(b: &mut Bucket, v: f64) {
    b.count += 1;
    b.sum += v;
    b.min = b.min.min(v);
    b.max = b.max.max(v);
}

/// Partial buckets (any order, any finer aligned length) re-bucketed to `secs`:
/// counts and sums add, min of mins, max of maxes.
#[must_use]
pub fn combine(parts: impl IntoIterator<Item = Bucket>, secs: i64) -> Vec<Bucket> {
    let mut by_start: BTreeMap<i64, Bucket> = BTreeMap::new();
    for p in parts.into_iter().filter(|p| p.count > 0) {
        let start = window::start(secs, p.start);
        by_start
            .entry(start)
            .and_modify(|b| {
                b.count += p.count;
                b.sum += p.sum;
                b.min = b.min.min(p.min);
                b.max = b.max.max(p.max);
            })
            .or_insert(Bucket { start, ..p });
    }
    by_start.into_values().collect()
}

/// The value of `bucket` under `aggregate`.
#[must_use]
pub fn value(bucket: &Bucket, aggregate: Aggregate) -> f64 {
    match aggregate {
        #[allow(clippy::cast_precision_loss)] // counts stay far below 2^52
        Aggregate::Avg => bucket.sum / bucket.count as f64,
        Aggregate::Sum => bucket.sum,
        Aggregate::Min => bucket.min,
        Aggregate::Max => bucket.max,
        #[allow(clippy::cast_precision_loss)]
        Aggregate::Count => bucket.count as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_average_and_skip_nan() {
        let pts = [
            Point::new(0, 1.0),
            Point::new(60, 3.0),
            Point::new(120, f64::NAN),
            Point::new(300, 10.0),
        ];
        let b = bucketize(&pts, 300);
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[0].start, b[0].count, value(&b[0], Aggregate::Avg)),
            (0, 2, 2.0)
        );
        assert_eq!(value(&b[0], Aggregate::Max), 3.0);
        assert_eq!((b[1].start, value(&b[1], Aggregate::Sum)), (300, 10.0));
    }

    proptest! {
        /// Splitting the points anywhere and combining the partials gives the buckets of
        /// the whole: what lets the archive's rollups and live raw points meet.
        #[test]
        fn combining_partials_equals_bucketing_the_whole(
            times in proptest::collection::btree_set(0i64..20_000, 0..200),
            cut in 0usize..200,
            secs in prop_oneof![Just(60i64), Just(300), Just(3_600)],
        ) {
            let pts: Vec<Point> = times.iter().map(|&t| Point::new(t, (t % 97) as f64)).collect();
            let cut = cut.min(pts.len());
            let parts = bucketize(&pts[..cut], 60).into_iter().chain(bucketize(&pts[cut..], 60));
            prop_assert_eq!(combine(parts, secs), bucketize(&pts, secs));
        }
    }
}
