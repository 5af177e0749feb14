//! From validated points to Kinesis records: group by series, keep the last point of
//! each (series, time), group series by bucket, pack each bucket into records
//! (`carat_core::record::pack`), partition key `b<bucket>`.
//!
//! Deterministic: the same points give the same records, whatever their order across
//! series (buckets and series are sorted); within a series, request order is kept.

use std::collections::{BTreeMap, HashSet};

use carat_core::config::RecordConfig;
use carat_core::record::labels::SeriesLabels;
use carat_core::record::{self, SeriesPoints};
use carat_core::series::partition_key;
use carat_core::{Point, RecordError, SeriesKey, SeriesName, Tenant};
use carat_store::ports::LogRecord;

/// The records of one request, ready for `Log::put`.
///
/// # Errors
/// [`RecordError::TooLarge`] if a single point does not fit `cfg.max_record_bytes`
/// (impossible with a valid config).
pub fn records(
    tenant: &Tenant,
    stamp_ms: i64,
    points: Vec<(SeriesName, Point)>,
    cfg: &RecordConfig,
) -> Result<Vec<LogRecord>, RecordError> {
    let mut records = Vec::new();
    for (bucket, series) in buckets(tenant, points, cfg.buckets) {
        let key = partition_key(bucket);
        for data in record::pack(tenant, stamp_ms, series, cfg.max_record_bytes)? {
            records.push(LogRecord {
                partition_key: key.clone(),
                data,
            });
        }
    }
    Ok(records)
}

/// The labels records of label sets (`carat_core::record::labels`), one or more per
/// bucket, each with the partition key of its series' points, so a writer handles a
/// series' labels and points on the same shard. A label set too large for one record is
/// left out (logged): its points still go, its catalog entry lacks the labels.
#[must_use]
pub fn labels_records(
    tenant: &Tenant,
    labels: Vec<SeriesLabels>,
    cfg: &RecordConfig,
) -> Vec<LogRecord> {
    let mut by_bucket: BTreeMap<u32, Vec<SeriesLabels>> = BTreeMap::new();
    for s in labels {
        let bucket = SeriesKey::new(tenant.clone(), s.series.clone()).bucket(cfg.buckets);
        by_bucket.entry(bucket).or_default().push(s);
    }
    let mut out = Vec::new();
    for (bucket, series) in by_bucket {
        let key = partition_key(bucket);
        let (records, skipped) = record::labels::pack(tenant, series, cfg.max_record_bytes);
        for s in skipped {
            tracing::warn!(tenant = %tenant, series = %s, "label set larger than a record; not sent to the catalog");
        }
        out.extend(records.into_iter().map(|data| LogRecord {
            partition_key: key.clone(),
            data,
        }));
    }
    out
}

/// Points grouped by series and the series by bucket (both ascending), with only the
/// last point of each (series, time) kept, in request order.
#[must_use]
pub fn buckets(
    tenant: &Tenant,
    points: Vec<(SeriesName, Point)>,
    buckets: u32,
) -> BTreeMap<u32, Vec<SeriesPoints>> {
    let mut by_series: BTreeMap<SeriesName, Vec<Point>> = BTreeMap::new();
    for (name, p) in points {
        by_series.entry(name).or_default().push(p);
    }
    let mut out: BTreeMap<u32, Vec<SeriesPoints>> = BTreeMap::new();
    for (series, points) in by_series {
        let bucket = SeriesKey::new(tenant.clone(), series.clone()).bucket(buckets);
        out.entry(bucket).or_default().push(SeriesPoints {
            series,
            points: keep_last(points),
        });
    }
    out
}

/// Same time twice in one request: the later point replaces the earlier (Mackerel
/// semantics); survivors keep their request order.
fn keep_last(points: Vec<Point>) -> Vec<Point> {
    if points.len() < 2 {
        return points;
    }
    let mut seen = HashSet::with_capacity(points.len());
    let mut kept: Vec<Point> = points
        .into_iter()
        .rev()
        .filter(|p| seen.insert(p.time))
        .collect();
    kept.reverse();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> SeriesName {
        SeriesName::parse(s, "series").expect("valid name")
    }

    #[test]
    fn keeps_the_last_of_each_time_in_request_order() {
        let pts = vec![
            Point::new(1, 1.0),
            Point::new(2, 2.0),
            Point::new(1, 3.0),
            Point::new(3, 4.0),
            Point::new(2, 5.0),
        ];
        assert_eq!(
            keep_last(pts),
            vec![Point::new(1, 3.0), Point::new(3, 4.0), Point::new(2, 5.0)]
        );
    }

    #[test]
    fn groups_by_bucket_and_series() {
        let t = Tenant::default_tenant();
        let pts: Vec<_> = (0..50)
            .map(|i| (name(&format!("s{}", i % 10)), Point::new(i, 1.0)))
            .collect();
        let b = buckets(&t, pts, 4);
        let series: usize = b.values().map(Vec::len).sum();
        assert_eq!(series, 10);
        for (bucket, ss) in &b {
            for s in ss {
                assert_eq!(
                    SeriesKey::new(t.clone(), s.series.clone()).bucket(4),
                    *bucket
                );
                assert_eq!(s.points.len(), 5);
            }
        }
    }
}
