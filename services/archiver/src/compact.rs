//! Compaction: a tenant-day's staged objects merged into its day object, and a
//! tenant-month's day objects summarised into its month object (1 h and 1 d rollups).
//!
//! A day compaction reads the day object (with its ETag) and every staged object of the
//! day, merges them series by series ([`crate::assemble`]: a join, so re-running it, or
//! running it over a staged object already included, changes nothing), writes the new day
//! object only if it is still the one it read (`put_if`, S3's `If-Match`), then writes a
//! `due/` marker for the month and deletes the staged objects it included. Two
//! compactions of one day at once therefore cannot lose each other's input: the loser
//! of the conditional write reads again. A staged object that vanished between the
//! listing and the read was included by a compaction whose day object this one reads
//! (it is written before the staged objects are deleted), or this one's conditional
//! write fails.
//!
//! A month compaction lists the month's `due/` markers, reads every day object of the
//! month, computes the rollups of every series from their windows, writes the month
//! object conditionally and deletes the markers it listed. A day compacted again later
//! (a straggler) writes a new marker (its key holds the day object's hash), so the month
//! is due again.
//!
//! [`find_due`] decides what is due from key names alone (staged keys carry their latest
//! expiry), and [`run`] is one scheduled run.

use std::collections::BTreeMap;

use carat_core::{Config, Point, Tenant};
use carat_store::ports::{Archive, Written};
use carat_writer::rollup::{self, Aggregate, Rollup, RESOLUTIONS};
use futures::StreamExt;

use crate::assemble::{assemble, compacted_parts};
use crate::error::ArchiverError;
use crate::format::{decode_object, decode_parts, encode_object, encode_parts, Kind, Part};
use crate::keys::{
    day_key, due_key, due_prefix, month_key, month_of, next_month, parse_day, parse_due,
    parse_stage, stage_prefix,
};

/// Read–merge–write rounds a compaction tries before it reports contention (retryable).
pub const MAX_ROUNDS: usize = 5;

/// The end of a range read that reads a whole object (and its ETag): the largest
/// signed 64-bit value (a `u64::MAX` end may not parse as S3 range syntax; moto takes
/// this one, real S3 clamps ranges past the end).
const WHOLE: u64 = i64::MAX as u64;

/// Objects read at once by one compaction.
const READ_CONCURRENCY: usize = 16;

/// What a day compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayCompaction {
    /// Staged objects merged (and deleted).
    pub staged: usize,
    /// Staged objects that do not decode: moved under `bad/`.
    pub quarantined: usize,
    pub series: usize,
    pub windows: usize,
    /// Size of the day object.
    pub bytes: usize,
    /// Whether the day object changed.
    pub wrote: bool,
}

/// What a month compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonthCompaction {
    pub days: usize,
    pub series: usize,
    pub bytes: usize,
    pub wrote: bool,
}

/// The object at `key`, with its key. (A named async fn over an owned key: a closure
/// borrowing the key makes the compaction future not `Send` for every lifetime,
/// which `tokio::spawn` and `async_trait` need.)
async fn get_owned(
    archive: &dyn Archive,
    key: String,
) -> Result<(String, Option<Vec<u8>>), carat_store::StoreError> {
    let body = archive.get(&key).await?;
    Ok((key, body))
}

/// The body and ETag of an object, `None` if there is none.
async fn read_with_etag(
    archive: &dyn Archive,
    key: &str,
) -> Result<Option<(Vec<u8>, String)>, ArchiverError> {
    Ok(archive
        .get_range(key, 0, WHOLE, None)
        .await?
        .map(|r| (r.body, r.etag)))
}

fn corrupt(key: &str) -> impl Fn(crate::format::FormatError) -> ArchiverError + '_ {
    move |source| ArchiverError::CorruptObject {
        key: key.to_string(),
        source,
    }
}

/// Adds the parts of a windows object to `pool`, by series.
fn pool_parts(
    pool: &mut BTreeMap<String, Vec<Part>>,
    key: &str,
    bytes: &[u8],
) -> Result<(), ArchiverError> {
    let (kind, blocks) = decode_object(bytes).map_err(corrupt(key))?;
    if kind != Kind::Windows {
        return Err(corrupt(key)(crate::format::FormatError::WrongKind {
            expected: Kind::Windows,
            found: kind,
        }));
    }
    for (series, block) in blocks {
        let parts = decode_parts(block).map_err(corrupt(key))?;
        pool.entry(series).or_default().extend(parts);
    }
    Ok(())
}

/// Merges the staged objects of `tenant`'s `day` into its day object.
///
/// # Errors
/// Store errors; [`ArchiverError::CorruptObject`] if the day object does not decode (it
/// is never overwritten then); [`ArchiverError::Contended`] after [`MAX_ROUNDS`] lost
/// conditional writes.
pub async fn compact_day(
    archive: &dyn Archive,
    tenant: &Tenant,
    day: i64,
) -> Result<DayCompaction, ArchiverError> {
    let key = day_key(tenant, day);
    let staged = archive.list(&stage_prefix(tenant, day)).await?;
    if staged.is_empty() {
        return Ok(DayCompaction::default());
    }
    for _ in 0..MAX_ROUNDS {
        let existing = read_with_etag(archive, &key).await?;
        let mut pool: BTreeMap<String, Vec<Part>> = BTreeMap::new();
        if let Some((bytes, _)) = &existing {
            pool_parts(&mut pool, &key, bytes)?;
        }
        let bodies: Vec<(String, Option<Vec<u8>>)> = futures::stream::iter(staged.iter().cloned())
            .map(|k| get_owned(archive, k))
            .buffered(READ_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let mut report = DayCompaction::default();
        let mut included: Vec<String> = Vec::new();
        for (k, body) in bodies {
            let Some(body) = body else { continue };
            let mut one = BTreeMap::new();
            match pool_parts(&mut one, &k, &body) {
                Ok(()) => {
                    for (series, parts) in one {
                        pool.entry(series).or_default().extend(parts);
                    }
                    included.push(k);
                }
                Err(e) => {
                    tracing::error!(key = %k, error = %e, "staged object does not decode; moved under bad/");
                    archive.put(&format!("bad/{k}"), body).await?;
                    archive.delete(std::slice::from_ref(&k)).await?;
                    report.quarantined += 1;
                }
            }
        }
        let mut blocks: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (series, parts) in pool {
            let Ok(name) = carat_core::SeriesName::parse(&series, "series") else {
                tracing::error!(key = %key, series = %series, "invalid series name in archive object; dropped");
                continue;
            };
            let series_key = carat_core::SeriesKey::new(tenant.clone(), name);
            let assembled = assemble(&series_key, parts);
            for (start, reason) in &assembled.corrupt {
                tracing::error!(series = %series_key, start, reason = %reason, "archived window does not decode; kept as it is");
            }
            report.windows += assembled.windows.len();
            blocks.insert(series, encode_parts(&compacted_parts(&assembled)));
        }
        report.series = blocks.len();
        let bytes = encode_object(Kind::Windows, &blocks);
        report.bytes = bytes.len();
        report.staged = included.len();
        let unchanged = existing.as_ref().is_some_and(|(b, _)| *b == bytes);
        if !unchanged {
            let etag = existing.as_ref().map(|(_, e)| e.as_str());
            if archive.put_if(&key, bytes.clone(), etag).await? == Written::Conflict {
                continue;
            }
            archive
                .put(&due_key(tenant, day, &bytes), Vec::new())
                .await?;
            report.wrote = true;
        }
        if !included.is_empty() {
            archive.delete(&included).await?;
        }
        return Ok(report);
    }
    Err(ArchiverError::Contended {
        key,
        rounds: MAX_ROUNDS,
    })
}

/// Combines two aggregates of one bucket (partials from different windows).
#[must_use]
pub fn combine(a: &Aggregate, b: &Aggregate) -> Aggregate {
    Aggregate {
        start: a.start,
        count: a.count + b.count,
        sum: a.sum + b.sum,
        min: a.min.min(b.min),
        max: a.max.max(b.max),
    }
}

/// Adds `rollups` into per-resolution bucket maps.
pub(crate) fn add_rollups(into: &mut BTreeMap<(i64, i64), Aggregate>, rollups: &[Rollup]) {
    for r in rollups {
        for b in &r.buckets {
            into.entry((r.resolution, b.start))
                .and_modify(|a| *a = combine(a, b))
                .or_insert(*b);
        }
    }
}

/// Recomputes the rollups of `tenant`'s month starting at `month` from its day objects.
///
/// # Errors
/// Store errors; corrupt day objects; [`ArchiverError::Contended`].
pub async fn compact_month(
    archive: &dyn Archive,
    tenant: &Tenant,
    month: i64,
) -> Result<MonthCompaction, ArchiverError> {
    let key = month_key(tenant, month);
    let end = next_month(month);
    let markers = archive.list(&due_prefix(tenant, month)).await?;
    let days: Vec<String> = archive
        .list(&format!("day/{tenant}/"))
        .await?
        .into_iter()
        .filter(|k| parse_day(k).is_some_and(|(_, d)| d >= month && d < end))
        .collect();
    for _ in 0..MAX_ROUNDS {
        let existing = archive.get_range(&key, 0, WHOLE, None).await?;
        // series ⇒ (resolution, bucket start) ⇒ aggregate
        let mut acc: BTreeMap<String, BTreeMap<(i64, i64), Aggregate>> = BTreeMap::new();
        let bodies = futures::stream::iter(days.iter().cloned())
            .map(|k| get_owned(archive, k))
            .buffered(READ_CONCURRENCY);
        futures::pin_mut!(bodies);
        let mut read = 0;
        while let Some(r) = bodies.next().await {
            let (k, body) = r?;
            let Some(body) = body else { continue };
            read += 1;
            let mut pool = BTreeMap::new();
            pool_parts(&mut pool, &k, &body)?;
            for (series, parts) in pool {
                let Ok(name) = carat_core::SeriesName::parse(&series, "series") else {
                    continue;
                };
                let assembled = assemble(&carat_core::SeriesKey::new(tenant.clone(), name), parts);
                let points: Vec<Point> = assembled
                    .windows
                    .values()
                    .flat_map(|w| w.points.iter().map(carat_core::head::Stamped::point))
                    .filter(|p| p.time >= month && p.time < end)
                    .collect();
                if points.is_empty() {
                    continue;
                }
                add_rollups(
                    acc.entry(series).or_default(),
                    &rollup::compute_at(&points, &RESOLUTIONS),
                );
            }
        }
        let blocks: BTreeMap<String, Vec<u8>> = acc
            .into_iter()
            .map(|(series, buckets)| {
                let rollups: Vec<Rollup> = RESOLUTIONS
                    .iter()
                    .map(|&resolution| Rollup {
                        resolution,
                        buckets: buckets
                            .range((resolution, i64::MIN)..=(resolution, i64::MAX))
                            .map(|(_, a)| *a)
                            .collect(),
                    })
                    .collect();
                (series, rollup::encode(&rollups))
            })
            .collect();
        let bytes = encode_object(Kind::Rollups, &blocks);
        let mut report = MonthCompaction {
            days: read,
            series: blocks.len(),
            bytes: bytes.len(),
            wrote: false,
        };
        let unchanged = existing.as_ref().is_some_and(|r| r.body == bytes);
        if !unchanged {
            let etag = existing.as_ref().map(|r| r.etag.as_str());
            if archive.put_if(&key, bytes, etag).await? == Written::Conflict {
                continue;
            }
            report.wrote = true;
        }
        if !markers.is_empty() {
            archive.delete(&markers).await?;
        }
        return Ok(report);
    }
    Err(ArchiverError::Contended {
        key,
        rounds: MAX_ROUNDS,
    })
}

/// What is due for compaction, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Due {
    /// (tenant, day start)
    pub days: Vec<(Tenant, i64)>,
    /// (tenant, month start)
    pub months: Vec<(Tenant, i64)>,
}

/// What is due at `now` (epoch seconds): a tenant-day once `settle_secs` have passed
/// since the latest expiry among its staged objects; a tenant-month once it has a
/// `due/` marker, `settle_secs` have passed since it ended, and none of its days has
/// staged objects left (they are compacted first).
///
/// # Errors
/// Store errors of the two listings.
pub async fn find_due(
    archive: &dyn Archive,
    now: i64,
    settle_secs: i64,
) -> Result<Due, ArchiverError> {
    let mut staged: BTreeMap<(Tenant, i64), i64> = BTreeMap::new();
    for k in archive.list("stage/").await? {
        if let Some((tenant, day, expires)) = parse_stage(&k) {
            let e = staged.entry((tenant, day)).or_insert(i64::MIN);
            *e = (*e).max(expires);
        }
    }
    let mut due = Due::default();
    let mut pending_months: std::collections::BTreeSet<(Tenant, i64)> = Default::default();
    for ((tenant, day), expires) in staged {
        pending_months.insert((tenant.clone(), month_of(day)));
        if now >= expires.saturating_add(settle_secs) {
            due.days.push((tenant, day));
        }
    }
    due.days.sort_by_key(|(t, d)| (*d, t.clone()));
    let mut months: std::collections::BTreeSet<(Tenant, i64)> = Default::default();
    for k in archive.list("due/").await? {
        if let Some(m) = parse_due(&k) {
            months.insert(m);
        }
    }
    due.months = months
        .into_iter()
        .filter(|(t, m)| {
            now >= next_month(*m).saturating_add(settle_secs)
                && !pending_months.contains(&(t.clone(), *m))
        })
        .collect();
    due.months.sort_by_key(|(t, m)| (*m, t.clone()));
    Ok(due)
}

/// What one scheduled run did: the numbers of its EMF line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    pub compacted_days: u64,
    pub compacted_months: u64,
    pub staged_merged: u64,
    /// Compactions that failed (logged; retried by the next run).
    pub failures: u64,
    /// Due work left for the next run (over the per-run bounds).
    pub deferred: u64,
}

/// One scheduled run at `now`: the due days (at most `archiver.max_days_per_run`), then
/// the months due after them. Failures are logged and counted, and the run goes on.
///
/// # Errors
/// Store errors of the listings (nothing was compacted).
pub async fn run(
    archive: &dyn Archive,
    cfg: &Config,
    now: i64,
) -> Result<RunReport, ArchiverError> {
    let a = &cfg.archiver;
    let mut report = RunReport::default();
    let due = find_due(archive, now, a.settle_secs).await?;
    report.deferred += due.days.len().saturating_sub(a.max_days_per_run) as u64;
    for (tenant, day) in due.days.into_iter().take(a.max_days_per_run) {
        match compact_day(archive, &tenant, day).await {
            Ok(r) => {
                report.compacted_days += 1;
                report.staged_merged += r.staged as u64;
            }
            Err(e) => {
                tracing::error!(tenant = %tenant, day, error = %e, "day compaction failed");
                report.failures += 1;
            }
        }
    }
    let due = find_due(archive, now, a.settle_secs).await?;
    report.deferred += due.months.len().saturating_sub(a.max_months_per_run) as u64;
    for (tenant, month) in due.months.into_iter().take(a.max_months_per_run) {
        match compact_month(archive, &tenant, month).await {
            Ok(_) => report.compacted_months += 1,
            Err(e) => {
                tracing::error!(tenant = %tenant, month, error = %e, "month compaction failed");
                report.failures += 1;
            }
        }
    }
    Ok(report)
}
