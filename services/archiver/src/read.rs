//! The archive's read API, for the reader: raw windows of a series, and its 1 h / 1 d
//! rollups.
//!
//! What exists is learnt from three listings per tenant (`day/<tenant>/`,
//! `stage/<tenant>/`, `month/<tenant>/`), cached for `list_ttl`: a read touches only
//! days and months that hold something, and never pays for a 404.
//!
//! Read plan of one series-day: read the series' block of each staged object of the
//! day (index, then block), then of the day object: its index with one suffix range GET
//! (cached by key with its ETag), the block with one range GET carrying `If-Match` — so
//! a day object rewritten by a compaction since its index was cached is noticed, its
//! index read again, and the block read again. Staged objects are read before the day
//! object: a staged object that vanished was compacted into a day object written
//! before it was deleted, which the later read of the day object sees (read even if the
//! cached listing has no day object yet). Every copy is merged ([`crate::assemble`]).
//!
//! Rollups of a month come from its month object (index + block: 2 GETs, 1 with the
//! index cached), or, for a month without one yet, are computed from its raw windows.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use carat_core::head::Stamped;
use carat_core::{window, Point, SeriesKey};
use carat_store::ports::Archive;
use carat_writer::rollup::{self, Aggregate, RESOLUTIONS};
use futures::StreamExt;

use crate::assemble::assemble;
use crate::compact::add_rollups;
use crate::error::ArchiverError;
use crate::format::{
    decode_index, decode_parts, footer, FormatError, Index, Kind, Part, FOOTER_BYTES,
};
use crate::keys::{day_key, month_key, month_of, next_month, parse_day, parse_stage, DAY};

/// Bytes of the first (suffix) read of an index: holds the index of a day object of
/// ~2,000 series (≈ 30 bytes an entry); a larger index costs one more GET, once.
pub const INDEX_SUFFIX_BYTES: i64 = 64 * 1024;

/// Indexes kept in the cache before it is cleared (≈ 2 MB an index at most for 64 K
/// series: bounded memory in a reader Lambda).
const MAX_CACHED_INDEXES: usize = 4_096;

/// The most a listing may be reused by [`ArchiveReader::raw_fresh`]: bounds its cost to
/// three LISTs a second per tenant and reader, however many reads ask.
pub const FRESH_LISTING: Duration = Duration::from_secs(1);

/// Days read at once by one query.
const DAY_CONCURRENCY: usize = 16;

/// One window of a series as the archive holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedWindow {
    pub start: i64,
    /// One per time, ascending: the latest (stamp, value bits) of every copy.
    pub points: Vec<Stamped>,
}

struct CachedIndex {
    etag: String,
    index: Index,
}

/// Reads the archive, with a cache of object indexes and staged listings.
pub struct ArchiveReader {
    archive: Arc<dyn Archive>,
    window_secs: i64,
    list_ttl: Duration,
    indexes: Mutex<HashMap<String, Arc<CachedIndex>>>,
    listings: Mutex<HashMap<carat_core::Tenant, (Instant, Arc<Listing>)>>,
}

/// What the archive holds for one tenant.
#[derive(Debug, Default)]
struct Listing {
    days: BTreeSet<i64>,
    staged: BTreeMap<i64, Vec<String>>,
    months: BTreeSet<i64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ArchiveReader {
    #[must_use]
    pub fn new(archive: Arc<dyn Archive>) -> Self {
        Self {
            archive,
            window_secs: DAY,
            list_ttl: Duration::from_secs(30),
            indexes: Mutex::new(HashMap::new()),
            listings: Mutex::new(HashMap::new()),
        }
    }

    /// The raw window length (`window.raw_secs`; default one day): which days hold the
    /// windows overlapping a range.
    #[must_use]
    pub fn with_window_secs(mut self, secs: i64) -> Self {
        self.window_secs = secs.max(1);
        self
    }

    /// How long a tenant's listings are reused (default 30 s; zero: list on every
    /// read). Objects written within it are seen by reads after it.
    #[must_use]
    pub fn with_list_ttl(mut self, ttl: Duration) -> Self {
        self.list_ttl = ttl;
        self
    }

    /// The windows of `key` overlapping `[from, to]` (not trimmed), ascending by start.
    ///
    /// # Errors
    /// Store errors (retryable ones say so), corrupt objects.
    pub async fn raw(
        &self,
        key: &SeriesKey,
        from: i64,
        to: i64,
    ) -> Result<Vec<ArchivedWindow>, ArchiverError> {
        self.raw_listed(key, from, to, self.list_ttl).await
    }

    /// [`ArchiveReader::raw`] with a listing at most [`FRESH_LISTING`] old (listed again
    /// if the cached one is older; the cache then holds the new one). For windows the
    /// caller found nowhere else: archiving follows the TTL deletion, so a window DynamoDB
    /// no longer holds may have been archived after the cached listing was taken, and
    /// would otherwise vanish from reads for up to the listing's age.
    ///
    /// # Errors
    /// As [`ArchiveReader::raw`].
    pub async fn raw_fresh(
        &self,
        key: &SeriesKey,
        from: i64,
        to: i64,
    ) -> Result<Vec<ArchivedWindow>, ArchiverError> {
        self.raw_listed(key, from, to, self.list_ttl.min(FRESH_LISTING))
            .await
    }

    async fn raw_listed(
        &self,
        key: &SeriesKey,
        from: i64,
        to: i64,
        max_age: Duration,
    ) -> Result<Vec<ArchivedWindow>, ArchiverError> {
        if from > to {
            return Ok(Vec::new());
        }
        // The window holding `from` starts here; the day it is filed under is the first.
        let first = window::start(self.window_secs, from);
        let listing = self.listing_within(&key.tenant, max_age).await?;
        // The listed days in range, not every day of it: a range may span ±2^40 s
        // (25 million days).
        let from_day = crate::keys::day_of(first);
        let days: Vec<i64> = listing
            .days
            .range(from_day..=to.max(from_day))
            .chain(
                listing
                    .staged
                    .range(from_day..=to.max(from_day))
                    .map(|(d, _)| d),
            )
            .copied()
            .filter(|&d| d <= to)
            .collect::<BTreeSet<i64>>()
            .into_iter()
            .collect();
        let per_day: Vec<Vec<ArchivedWindow>> = futures::stream::iter(days)
            .map(|day| self.day_windows(key, day, &listing))
            .buffered(DAY_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let end_ok = |start: i64| start <= to && start.saturating_add(self.window_secs) > from;
        Ok(per_day
            .into_iter()
            .flatten()
            .filter(|w| end_ok(w.start))
            .collect())
    }

    /// Aggregates of `key` at `resolution` (3600 or 86400) for the buckets starting in
    /// `[start of from's bucket, to]`, ascending, from the archived windows only.
    ///
    /// # Errors
    /// [`ArchiverError::BadRequest`] for another resolution; as [`ArchiveReader::raw`].
    pub async fn rollups(
        &self,
        key: &SeriesKey,
        from: i64,
        to: i64,
        resolution: i64,
    ) -> Result<Vec<Aggregate>, ArchiverError> {
        if !RESOLUTIONS.contains(&resolution) {
            return Err(ArchiverError::BadRequest(format!(
                "the archive keeps rollups at {RESOLUTIONS:?} seconds, not {resolution}"
            )));
        }
        if from > to {
            return Ok(Vec::new());
        }
        let first_bucket = window::start(resolution, from);
        // Only months that can hold something: compacted ones and those a listed raw
        // window (filed under its day, reaching at most a window further) touches, not
        // every month of the range (±2^40 s is 850,000 months).
        let listing = self.listing(&key.tenant).await?;
        let first_month = month_of(first_bucket);
        let spill = self.window_secs.saturating_add(DAY);
        let mut wanted: BTreeSet<i64> = listing.months.range(first_month..).copied().collect();
        for &d in listing.days.iter().chain(listing.staged.keys()) {
            wanted.insert(month_of(d));
            wanted.insert(month_of(d.saturating_add(spill)));
        }
        let months: Vec<i64> = wanted
            .into_iter()
            .filter(|&m| m >= first_month && m <= to)
            .collect();
        let per_month: Vec<Vec<rollup::Rollup>> = futures::stream::iter(months)
            .map(|month| self.month_rollups(key, month, first_bucket, to))
            .buffered(DAY_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let mut acc = BTreeMap::new();
        for r in &per_month {
            add_rollups(&mut acc, r);
        }
        Ok(acc
            .into_iter()
            .filter(|((res, start), _)| {
                *res == resolution && *start >= first_bucket && *start <= to
            })
            .map(|(_, a)| a)
            .collect())
    }

    /// The rollups of `key` in `month`: from the month object, or computed from raw.
    async fn month_rollups(
        &self,
        key: &SeriesKey,
        month: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<rollup::Rollup>, ArchiverError> {
        let mkey = month_key(&key.tenant, month);
        let listing = self.listing(&key.tenant).await?;
        let compacted = listing.months.contains(&month);
        if !compacted {
            return self.rollups_from_raw(key, month, from, to).await;
        }
        if let Some(block) = self
            .block(&mkey, Kind::Rollups, key.series.as_str())
            .await?
        {
            return match block {
                Some(bytes) => rollup::decode(&bytes).map_err(|e| ArchiverError::CorruptRollups {
                    key: mkey,
                    series: key.series.to_string(),
                    reason: e.to_string(),
                }),
                None => Ok(Vec::new()),
            };
        }
        self.rollups_from_raw(key, month, from, to).await
    }

    /// The rollups of `key` in `month`, computed from its archived raw windows.
    async fn rollups_from_raw(
        &self,
        key: &SeriesKey,
        month: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<rollup::Rollup>, ArchiverError> {
        let end = next_month(month);
        let windows = self.raw(key, from.max(month), to.min(end - 1)).await?;
        let points: Vec<Point> = windows
            .iter()
            .flat_map(|w| w.points.iter().map(Stamped::point))
            .filter(|p| p.time >= month && p.time < end)
            .collect();
        Ok(rollup::compute_at(&points, &RESOLUTIONS))
    }

    /// The windows of `key` filed under `day`: staged copies, then the day object.
    async fn day_windows(
        &self,
        key: &SeriesKey,
        day: i64,
        listing: &Listing,
    ) -> Result<Vec<ArchivedWindow>, ArchiverError> {
        let series = key.series.as_str();
        let mut parts: Vec<Part> = Vec::new();
        let mut vanished = false;
        for k in listing.staged.get(&day).into_iter().flatten() {
            match self.block(k, Kind::Windows, series).await? {
                Some(Some(block)) => {
                    parts.extend(decode_parts(&block).map_err(|source| {
                        ArchiverError::CorruptObject {
                            key: k.clone(),
                            source,
                        }
                    })?);
                }
                Some(None) => {}
                None => vanished = true,
            }
        }
        let dkey = day_key(&key.tenant, day);
        if listing.days.contains(&day) || vanished {
            if let Some(Some(block)) = self.block(&dkey, Kind::Windows, series).await? {
                parts.extend(decode_parts(&block).map_err(|source| {
                    ArchiverError::CorruptObject {
                        key: dkey.clone(),
                        source,
                    }
                })?);
            }
        }
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        let assembled = assemble(key, parts);
        for (start, reason) in &assembled.corrupt {
            tracing::error!(series = %key, start, reason = %reason, "archived window does not decode; skipped");
        }
        Ok(assembled
            .windows
            .into_iter()
            .filter(|(_, w)| !w.points.is_empty())
            .map(|(start, w)| ArchivedWindow {
                start,
                points: w.points,
            })
            .collect())
    }

    /// What the archive holds for `tenant`, from the cache if fresh enough.
    async fn listing(&self, tenant: &carat_core::Tenant) -> Result<Arc<Listing>, ArchiverError> {
        self.listing_within(tenant, self.list_ttl).await
    }

    /// What the archive holds for `tenant`, from the cache if younger than `max_age`.
    async fn listing_within(
        &self,
        tenant: &carat_core::Tenant,
        max_age: Duration,
    ) -> Result<Arc<Listing>, ArchiverError> {
        if !max_age.is_zero() {
            if let Some((at, l)) = lock(&self.listings).get(tenant) {
                if at.elapsed() < max_age {
                    return Ok(Arc::clone(l));
                }
            }
        }
        let (dp, sp, mp) = (
            format!("day/{tenant}/"),
            format!("stage/{tenant}/"),
            format!("month/{tenant}/"),
        );
        let (days, staged, months) = futures::try_join!(
            self.archive.list(&dp),
            self.archive.list(&sp),
            self.archive.list(&mp),
        )?;
        let mut listing = Listing {
            days: days
                .iter()
                .filter_map(|k| parse_day(k))
                .map(|(_, d)| d)
                .collect(),
            ..Listing::default()
        };
        for k in staged {
            if let Some((_, day, _)) = parse_stage(&k) {
                listing.staged.entry(day).or_default().push(k);
            }
        }
        listing.months = months
            .iter()
            .filter_map(|k| k.rsplit('/').next()?.parse().ok())
            .collect();
        let listing = Arc::new(listing);
        if !self.list_ttl.is_zero() {
            let mut l = lock(&self.listings);
            if l.len() >= MAX_CACHED_INDEXES {
                l.clear();
            }
            l.insert(tenant.clone(), (Instant::now(), Arc::clone(&listing)));
        }
        Ok(listing)
    }

    /// The block of `series` in the object at `key`: `None` if there is no object,
    /// `Some(None)` if the object does not hold the series.
    async fn block(
        &self,
        key: &str,
        kind: Kind,
        series: &str,
    ) -> Result<Option<Option<Vec<u8>>>, ArchiverError> {
        for attempt in 0..2 {
            let Some(cached) = self.index(key, kind).await? else {
                return Ok(None);
            };
            let Some(entry) = cached.index.find(series) else {
                return Ok(Some(None));
            };
            let end = entry.offset.saturating_add(entry.len);
            let Ok(offset) = i64::try_from(entry.offset) else {
                return Ok(Some(None));
            };
            match self
                .archive
                .get_range(key, offset, end, Some(&cached.etag))
                .await
            {
                Ok(Some(r)) if r.body.len() as u64 == entry.len => return Ok(Some(Some(r.body))),
                // Gone (a compacted staged object) or shorter than its index says.
                Ok(Some(_)) | Ok(None) => {
                    lock(&self.indexes).remove(key);
                    if attempt == 1 {
                        return Ok(None);
                    }
                }
                Err(e) if e.is_retryable() && attempt == 0 => {
                    // Most likely rewritten since the index was cached: read it again.
                    lock(&self.indexes).remove(key);
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(key, error = %e, "archive object kept changing");
                    return Err(ArchiverError::Changing {
                        key: key.to_string(),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// The index of the object at `key` (from the cache, else one or two range GETs).
    async fn index(
        &self,
        key: &str,
        kind: Kind,
    ) -> Result<Option<Arc<CachedIndex>>, ArchiverError> {
        if let Some(c) = lock(&self.indexes).get(key) {
            return Ok(Some(Arc::clone(c)));
        }
        let corrupt = |source: FormatError| ArchiverError::CorruptObject {
            key: key.to_string(),
            source,
        };
        let Some(tail) = self
            .archive
            .get_range(key, -INDEX_SUFFIX_BYTES, 0, None)
            .await?
        else {
            return Ok(None);
        };
        if tail.body.is_empty() && tail.size == 0 {
            // Removed between listing and reading (or an empty object: not ours).
            return Ok(None);
        }
        let (found, index_len) = footer(&tail.body).map_err(corrupt)?;
        if found != kind {
            return Err(corrupt(FormatError::WrongKind {
                expected: kind,
                found,
            }));
        }
        let size = tail.size.max(tail.body.len() as u64);
        let need = (index_len + FOOTER_BYTES) as u64;
        if need + 2 > size {
            return Err(corrupt(FormatError::Corrupt {
                offset: 0,
                what: "index length",
            }));
        }
        let index_start = size - need;
        let index_bytes: Vec<u8> = if need <= tail.body.len() as u64 {
            let b = &tail.body[tail.body.len() - need as usize..tail.body.len() - FOOTER_BYTES];
            b.to_vec()
        } else {
            let start = i64::try_from(index_start).unwrap_or(i64::MAX);
            match self
                .archive
                .get_range(key, start, size - FOOTER_BYTES as u64, Some(&tail.etag))
                .await?
            {
                Some(r) => r.body,
                None => return Ok(None),
            }
        };
        let index = decode_index(found, &index_bytes, index_start).map_err(corrupt)?;
        let cached = Arc::new(CachedIndex {
            etag: tail.etag,
            index,
        });
        let mut c = lock(&self.indexes);
        if c.len() >= MAX_CACHED_INDEXES {
            c.clear();
        }
        c.insert(key.to_string(), Arc::clone(&cached));
        Ok(Some(cached))
    }
}
