//! From validated points to Kinesis records: group by series, keep the last point of
//! each (series, time), group series by bucket, pack each bucket into records
//! (`carat_core::record::pack`), partition key `b<bucket>`.
//!
//! Deterministic: the same points give the same records, whatever their order across
//! series (buckets and series are sorted); within a series, request order is kept.
//!
//! [`records_with_sets`] is what the routes use: a record whose names are worth it
//! names them by a name set (record v2, `carat_core::record::names`), stored first.

use std::collections::{BTreeMap, HashSet};

use carat_core::config::RecordConfig;
use carat_core::record::labels::SeriesLabels;
use carat_core::record::{self, NameSet, SeriesPoints};
use carat_core::series::partition_key;
use carat_core::{Point, RecordError, SeriesKey, SeriesName, Tenant};
use carat_store::name_sets::SentNameSets;
use carat_store::ports::LogRecord;
use futures::StreamExt as _;

/// Name sets stored concurrently for one request (a 1,000-host post has 1,000).
const SET_PUTS_IN_FLIGHT: usize = 16;

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

/// The records of one request, as [`records`], but each record whose names are worth a
/// name set names its series by one: the set is stored first (once per process, in
/// `sent`), and a set that cannot be stored leaves its record's names inline — so a
/// catalog table outage costs bytes, never a request.
///
/// # Errors
/// As [`records`].
pub async fn records_with_sets(
    tenant: &Tenant,
    stamp_ms: i64,
    points: Vec<(SeriesName, Point)>,
    cfg: &RecordConfig,
    sent: &SentNameSets,
) -> Result<Vec<LogRecord>, RecordError> {
    let mut planned = Vec::new();
    for (bucket, series) in buckets(tenant, points, cfg.buckets) {
        let key = partition_key(bucket);
        for r in record::pack_records(tenant, stamp_ms, series, cfg.max_record_bytes)? {
            let set = NameSet::of(r.series.iter().map(|s| &s.series));
            planned.push((key.clone(), r, set.worth_referencing().then_some(set)));
        }
    }
    let mut todo: Vec<&NameSet> = planned
        .iter()
        .filter_map(|(_, _, set)| set.as_ref())
        .filter(|set| !sent.is_stored(tenant, set.id()))
        .collect();
    todo.sort_by_key(|s| s.id());
    todo.dedup_by_key(|s| s.id());
    // Futures collected first: a lazy `map` over borrowed sets trips the higher-ranked
    // lifetime check of the handler's `Send` future.
    let puts: Vec<_> = todo
        .into_iter()
        .map(|set| sent.ensure(tenant, set))
        .collect();
    let results: Vec<Result<(), carat_store::StoreError>> = futures::stream::iter(puts)
        .buffer_unordered(SET_PUTS_IN_FLIGHT)
        .collect()
        .await;
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    if let Some(first) = failures.first() {
        tracing::warn!(tenant = %tenant, failed = failures.len(), error = %first, "name sets not stored; their records carry the names inline");
    }
    let mut out = Vec::with_capacity(planned.len());
    for (key, r, set) in planned {
        let data = match set {
            Some(set) if sent.is_stored(tenant, set.id()) => record::encode_with_set(&r, &set),
            _ => record::encode(&r),
        };
        if data.len() > cfg.max_record_bytes {
            return Err(RecordError::TooLarge {
                size: data.len(),
                limit: cfg.max_record_bytes,
            });
        }
        out.push(LogRecord {
            partition_key: key,
            data,
        });
    }
    Ok(out)
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
#[allow(clippy::unwrap_used)]
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

    /// A host's post of `n` metrics at time `t`.
    fn post(n: usize, t: i64) -> Vec<(SeriesName, Point)> {
        (0..n)
            .map(|i| {
                (
                    name(&format!("host.3hXYZabc12.custom.metric_{i}.value")),
                    Point::new(t, i as f64),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn records_name_their_set_once_it_is_stored_and_carry_names_when_it_cannot_be() {
        use carat_store::fake::FakeCatalog;
        use std::sync::Arc;
        let t = Tenant::default_tenant();
        let cfg = RecordConfig::default();
        let store = Arc::new(FakeCatalog::new());
        let sent = SentNameSets::new(store.clone());
        let decode = |recs: &[LogRecord]| -> Vec<record::Parts> {
            recs.iter()
                .map(|r| record::decode_parts(&r.data).expect("decodes"))
                .collect()
        };

        // The catalog table failing: the post goes, its names inline.
        store.faults().fail_next_op("put_name_set", 1);
        let failed = records_with_sets(&t, 1, post(100, 60), &cfg, &sent)
            .await
            .unwrap();
        assert!(decode(&failed).iter().all(|p| p.name_set().is_none()));
        assert_eq!(
            failed,
            records(&t, 1, post(100, 60), &cfg).unwrap(),
            "inline is what `records` gives"
        );

        // Stored once, then named by every later post of the same names.
        let first = records_with_sets(&t, 2, post(100, 60), &cfg, &sent)
            .await
            .unwrap();
        let second = records_with_sets(&t, 3, post(100, 120), &cfg, &sent)
            .await
            .unwrap();
        assert_eq!(store.name_set_calls().0, 1, "one put for two posts");
        for recs in [&first, &second] {
            assert_eq!(recs.len(), 1, "one host, one bucket, one record");
            let parts = decode(recs);
            let id = parts[0].name_set().expect("names the set");
            let sealed = {
                use carat_store::ports::NameSets as _;
                store.get_name_set(&t, id).await.unwrap().expect("stored")
            };
            let names = record::NameSet::open(&sealed, id).unwrap();
            let back = parts[0].clone().with_names(&names).unwrap();
            let mut want: Vec<SeriesName> = post(100, 60).into_iter().map(|(n, _)| n).collect();
            want.sort();
            let got: Vec<SeriesName> = back.series.into_iter().map(|s| s.series).collect();
            assert_eq!(got, want, "the set's names, in the record's (sorted) order");
        }
        assert!(
            first[0].data.len() + 50 < failed[0].data.len(),
            "{} vs {}",
            first[0].data.len(),
            failed[0].data.len()
        );

        // A record with few names keeps them inline: no set is stored for it.
        let small = records_with_sets(&t, 4, post(1, 60), &cfg, &sent)
            .await
            .unwrap();
        assert!(decode(&small)[0].name_set().is_none());
        assert_eq!(store.name_set_calls().0, 1);
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
