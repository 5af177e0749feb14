//! The planner and the merge: which windows of a series come from which tier, fetched
//! concurrently, merged point by point.
//!
//! For a range of one series:
//! - **head** (Redis): every window the head may still hold (`head_expiry(start) > now`),
//!   one GET each, concurrently (at most `reader.fetch_concurrency` in flight);
//! - **table** (DynamoDB): one Query over the windows whose items have not expired
//!   (`start + raw_secs + retention.raw_secs > now`), paginated by the adapter. An item
//!   past its TTL counts as absent even when DynamoDB has not deleted it yet;
//! - **archive** (S3): the expired windows. For raw reads, an expired window the archive
//!   does not hold yet (TTL deletion runs late, up to days, and archiving follows it) is
//!   read from DynamoDB instead, so nothing disappears between expiry and archiving.
//!
//! Merge: for each time the point with the greatest (ingest stamp, value bits) wins —
//! the same join the flush uses ([`carat_core::head::latest_per_time`]). A newer tier
//! holds newer or equal stamps for a time, so this is "newest tier wins" where tiers
//! agree, and stays right where they do not (a replayed old record in the head loses to
//! the newer value DynamoDB already holds).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use carat_core::head::{self, Stamped};
use carat_core::{window, Config, Point, SeriesKey};
use carat_store::ports::{Head, WindowItem, WindowRef, WindowTable};
use carat_store::StoreError;
use carat_writer::flush::{head_points, stored_window, RAW};
use futures::{stream, StreamExt, TryStreamExt};
use thiserror::Error;

use crate::buckets::{self, Bucket};

/// One archived window of a series, merged across the archive's copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedWindow {
    pub start: i64,
    /// One per time, ascending.
    pub points: Vec<Stamped>,
}

/// The archive as the reader sees it (implemented over S3 by the archiver crate).
#[async_trait]
pub trait ArchiveTier: Send + Sync {
    /// Archived raw windows overlapping `from..=to`.
    async fn raw(
        &self,
        key: &SeriesKey,
        from: i64,
        to: i64,
    ) -> Result<Vec<ArchivedWindow>, TierError>;

    /// [`ArchiveTier::raw`], from what the archive holds now rather than from a cached
    /// view of it: asked for windows that neither the archive (as last seen) nor
    /// DynamoDB holds, which may have been archived since.
    async fn raw_fresh(
        &self,
        key: &SeriesKey,
        from: i64,
        to: i64,
    ) -> Result<Vec<ArchivedWindow>, TierError> {
        self.raw(key, from, to).await
    }

    /// Archived 1 h (`resolution` 3600) or 1 d (86400) buckets overlapping `from..=to`.
    async fn rollups(
        &self,
        key: &SeriesKey,
        from: i64,
        to: i64,
        resolution: i64,
    ) -> Result<Vec<Bucket>, TierError>;
}

/// No archive (a deployment before the archiver, unit tests): nothing is archived.
#[derive(Debug, Default)]
pub struct NoArchive;

#[async_trait]
impl ArchiveTier for NoArchive {
    async fn raw(&self, _: &SeriesKey, _: i64, _: i64) -> Result<Vec<ArchivedWindow>, TierError> {
        Ok(Vec::new())
    }

    async fn rollups(
        &self,
        _: &SeriesKey,
        _: i64,
        _: i64,
        _: i64,
    ) -> Result<Vec<Bucket>, TierError> {
        Ok(Vec::new())
    }
}

/// The S3 archive through the archiver's reader.
pub struct S3Tier(pub carat_archiver::ArchiveReader);

fn archive_error(e: carat_archiver::ArchiverError) -> TierError {
    if e.is_retryable() {
        TierError::ArchiveRetryable(e.to_string())
    } else {
        TierError::Corrupt {
            tier: "archive",
            detail: e.to_string(),
        }
    }
}

/// The archive reader's window as the tiers see it.
fn archived(w: carat_archiver::read::ArchivedWindow) -> ArchivedWindow {
    ArchivedWindow {
        start: w.start,
        points: w.points,
    }
}

#[async_trait]
impl ArchiveTier for S3Tier {
    async fn raw(
        &self,
        key: &SeriesKey,
        from: i64,
        to: i64,
    ) -> Result<Vec<ArchivedWindow>, TierError> {
        Ok(self
            .0
            .raw(key, from, to)
            .await
            .map_err(archive_error)?
            .into_iter()
            .map(archived)
            .collect())
    }

    async fn raw_fresh(
        &self,
        key: &SeriesKey,
        from: i64,
        to: i64,
    ) -> Result<Vec<ArchivedWindow>, TierError> {
        Ok(self
            .0
            .raw_fresh(key, from, to)
            .await
            .map_err(archive_error)?
            .into_iter()
            .map(archived)
            .collect())
    }

    async fn rollups(
        &self,
        key: &SeriesKey,
        from: i64,
        to: i64,
        resolution: i64,
    ) -> Result<Vec<Bucket>, TierError> {
        self.0
            .rollups(key, from, to, resolution)
            .await
            .map_err(archive_error)
    }
}

/// A tier failed.
#[derive(Debug, Error)]
pub enum TierError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored bytes that do not decode: not retryable.
    #[error("{tier}: {detail}")]
    Corrupt { tier: &'static str, detail: String },
    /// An archive failure that retrying may fix.
    #[error("archive: retryable: {0}")]
    ArchiveRetryable(String),
}

impl TierError {
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Corrupt { .. } => false,
            Self::ArchiveRetryable(_) => true,
        }
    }
}

/// Which tier each window of a read comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Windows the head may hold.
    pub head: Vec<i64>,
    /// Windows whose DynamoDB items are live (one Query covers them).
    pub table: Option<(i64, i64)>,
    /// Windows whose items have expired: the archive's.
    pub archive: Option<(i64, i64)>,
}

/// The three tiers of one deployment.
#[derive(Clone)]
pub struct Tiers {
    pub config: Arc<Config>,
    pub head: Arc<dyn Head>,
    pub table: Arc<dyn WindowTable>,
    pub archive: Arc<dyn ArchiveTier>,
}

impl Tiers {
    /// The plan for windows overlapping `from..=to` at `now`.
    ///
    /// Computed from the boundaries, never by listing the range's windows: a range may
    /// span ±2^40 s (the API accepts it), which is 10^10 windows of a minute. The head
    /// part is bounded by what the head can hold (windows from `now − head expiry` to
    /// `now + ingest.max_skew_secs`, plus a window of margin for clocks), so it is a
    /// handful of GETs for any range.
    #[must_use]
    pub fn plan(&self, from: i64, to: i64, now: i64) -> Plan {
        let len = self.config.window.raw_secs;
        let first = window::start(len, from);
        if to < from {
            return Plan {
                head: Vec::new(),
                table: None,
                archive: None,
            };
        }
        let last = window::start(len, to);
        // Expired ⇔ s + len + retention <= now: the windows up to this start.
        let last_expired = window::start(
            len,
            now.saturating_sub(len)
                .saturating_sub(self.config.retention.raw_secs),
        );
        let archive = (first <= last_expired.min(last)).then(|| (first, last_expired.min(last)));
        let live_from = first.max(last_expired.saturating_add(len));
        let table = (live_from <= last).then_some((live_from, last));
        // Windows the head may still hold: head_expiry(s) > now, and no later than a
        // window past the newest time ingest accepts.
        let oldest_head = window::start(len, now.saturating_sub(self.config.head_expiry(0)));
        let newest_head = window::start(
            len,
            now.saturating_add(self.config.ingest.max_skew_secs)
                .saturating_add(len),
        );
        let head = window::covering(len, first.max(oldest_head), last.min(newest_head))
            .filter(|&s| s <= last && self.config.head_expiry(s) > now)
            .collect();
        Plan {
            head,
            table,
            archive,
        }
    }

    /// The points of `key` in `from..=to` at `now`, merged across the tiers, ascending.
    ///
    /// # Errors
    /// A tier's failure (retryable or not, see [`TierError::is_retryable`]).
    pub async fn raw(
        &self,
        key: &SeriesKey,
        from: i64,
        to: i64,
        now: i64,
    ) -> Result<Vec<Point>, TierError> {
        self.raw_with(key, from, to, now, None).await
    }

    /// [`Tiers::raw`] of many series over the same range. When the live part of the
    /// range is one window (a day's dashboard), DynamoDB is read with BatchGetItem, up
    /// to 100 series per call, instead of one Query per series.
    ///
    /// # Errors
    /// A tier's failure.
    pub async fn raw_many(
        &self,
        keys: &[SeriesKey],
        from: i64,
        to: i64,
        now: i64,
    ) -> Result<Vec<Vec<Point>>, TierError> {
        let plan = self.plan(from, to, now);
        let mut prefetched: BTreeMap<String, Vec<WindowItem>> = BTreeMap::new();
        let batched = match plan.table {
            Some((a, b)) if a == b && keys.len() > 1 => {
                let wanted: Vec<(String, i64)> =
                    keys.iter().map(|k| (k.table_pk(RAW), a)).collect();
                for item in self.table.batch_get(&wanted).await? {
                    prefetched.entry(item.pk.clone()).or_default().push(item);
                }
                true
            }
            _ => false,
        };
        let jobs: Vec<(SeriesKey, Option<Vec<WindowItem>>)> = keys
            .iter()
            .map(|key| {
                let table =
                    batched.then(|| prefetched.remove(&key.table_pk(RAW)).unwrap_or_default());
                (key.clone(), table)
            })
            .collect();
        stream::iter(
            jobs.into_iter()
                .map(|(key, table)| async move { self.raw_with(&key, from, to, now, table).await }),
        )
        .buffered(self.config.reader.fetch_concurrency)
        .try_collect()
        .await
    }

    /// `prefetched`: the live window's first items, already read (BatchGetItem).
    async fn raw_with(
        &self,
        key: &SeriesKey,
        from: i64,
        to: i64,
        now: i64,
        prefetched: Option<Vec<WindowItem>>,
    ) -> Result<Vec<Point>, TierError> {
        let plan = self.plan(from, to, now);
        let len = self.config.window.raw_secs;
        let (head, table, archive) = futures::try_join!(
            self.head_windows(key, &plan.head),
            async {
                match prefetched {
                    // A window split over parts needs its other items too (rare: > 390 KB).
                    Some(items) if items.iter().all(|i| i.parts <= 1) => {
                        self.decode_windows(key, items)
                    }
                    _ => self.table_windows(key, plan.table).await,
                }
            },
            async {
                match plan.archive {
                    Some((a, b)) => {
                        let archived = self.archive.raw(key, a, b + len - 1).await?;
                        // Expired windows not archived yet: DynamoDB still has them
                        // (TTL deletion is late), or nobody does.
                        let have: std::collections::BTreeSet<i64> =
                            archived.iter().map(|w| w.start).collect();
                        // The first and last windows of a..=b the archive lacks: found
                        // from each end, past at most `have.len()` archived windows (the
                        // span may hold 10^10 windows).
                        let lacks = |s: &i64| !have.contains(s);
                        let first_missing = (0..=have.len() as i64)
                            .map(|i| a.saturating_add(i.saturating_mul(len)))
                            .take_while(|&s| s <= b)
                            .find(lacks);
                        let last_missing = (0..=have.len() as i64)
                            .map(|i| b.saturating_sub(i.saturating_mul(len)))
                            .take_while(|&s| s >= a)
                            .find(lacks);
                        let fallback = match (first_missing, last_missing) {
                            (Some(x), Some(y)) => self.table_windows(key, Some((x, y))).await?,
                            _ => Vec::new(),
                        };
                        let fallback: Vec<(i64, Vec<Stamped>)> = fallback
                            .into_iter()
                            .filter(|(s, _)| !have.contains(s))
                            .collect();
                        // Windows nobody holds: gone from DynamoDB, and archived (archiving
                        // follows the deletion) after the archive's view of itself was
                        // cached — or simply empty. Look at the archive as it is now.
                        let found: std::collections::BTreeSet<i64> =
                            fallback.iter().map(|(s, _)| *s).collect();
                        // The first and last windows of a..=b neither holds, found from
                        // each end as above (past at most every held window).
                        let held = |s: &i64| have.contains(s) || found.contains(s);
                        let skip = (have.len() + found.len()) as i64;
                        let first_nowhere = (0..=skip)
                            .map(|i| a.saturating_add(i.saturating_mul(len)))
                            .take_while(|&s| s <= b)
                            .find(|s| !held(s));
                        let last_nowhere = (0..=skip)
                            .map(|i| b.saturating_sub(i.saturating_mul(len)))
                            .take_while(|&s| s >= a)
                            .find(|s| !held(s));
                        let late = match (first_nowhere, last_nowhere) {
                            (Some(x), Some(y)) => self
                                .archive
                                .raw_fresh(key, x, y + len - 1)
                                .await?
                                .into_iter()
                                .filter(|w| !held(&w.start))
                                .map(|w| (w.start, w.points))
                                .collect(),
                            _ => Vec::new(),
                        };
                        Ok(archived
                            .into_iter()
                            .map(|w| (w.start, w.points))
                            .chain(fallback)
                            .chain(late)
                            .collect::<Vec<_>>())
                    }
                    None => Ok(Vec::new()),
                }
            }
        )?;
        let mut by_window: BTreeMap<i64, Vec<Stamped>> = BTreeMap::new();
        for (start, points) in head.into_iter().chain(table).chain(archive) {
            by_window.entry(start).or_default().extend(points);
        }
        let mut out = Vec::new();
        for (_, points) in by_window {
            out.extend(
                head::latest_per_time(points)
                    .into_iter()
                    .filter(|p| (from..=to).contains(&p.time))
                    .map(|p| p.point()),
            );
        }
        Ok(out)
    }

    /// Buckets of `secs` seconds of `key` whose start is in
    /// `window::start(secs, from)..=to` — whole buckets, so an answer does not change
    /// with where in a bucket the range begins. Windows expired more than
    /// `reader.archive_settled_secs` ago come from the archive's 1 h / 1 d rollups when
    /// `secs` is a multiple of one; every other window from raw points (the archive's,
    /// DynamoDB's, the head's).
    ///
    /// # Errors
    /// A tier's failure.
    pub async fn buckets(
        &self,
        key: &SeriesKey,
        from: i64,
        to: i64,
        secs: i64,
        now: i64,
    ) -> Result<Vec<Bucket>, TierError> {
        let first = window::start(secs, from);
        let last = window::start(secs, to).saturating_add(secs - 1);
        let rollup = [86_400, 3_600].into_iter().find(|r| secs % r == 0);
        let plan = self.plan(first, last, now);
        let len = self.config.window.raw_secs;
        // Windows expired long enough ago to be archived for sure: their rollups. The
        // more recently expired may still wait for TTL deletion and archiving: raw.
        let settled = |s: i64| {
            s + len + self.config.retention.raw_secs + self.config.reader.archive_settled_secs
                <= now
        };
        let rolled = plan.archive.and_then(|(a, b)| {
            // The last settled window start (settled is monotone in s), not by listing
            // a..=b: the span may hold 10^10 windows.
            let bound = now
                .saturating_sub(len)
                .saturating_sub(self.config.retention.raw_secs)
                .saturating_sub(self.config.reader.archive_settled_secs);
            let last_settled = window::start(len, bound).min(b);
            (last_settled >= a && settled(last_settled)).then_some((a, last_settled))
        });
        let (Some(r), Some((a, b))) = (rollup, rolled) else {
            return Ok(buckets::bucketize(
                &self.raw(key, first, last, now).await?,
                secs,
            ));
        };
        // Settled windows through their rollups; the rest (recently expired, live) raw.
        let live_from = b + len;
        let (archived, live) = futures::try_join!(
            self.archive
                .rollups(key, a.max(first), (b + len - 1).min(last), r),
            async {
                if live_from > last {
                    Ok(Vec::new())
                } else {
                    self.raw(key, live_from.max(first), last, now).await
                }
            }
        )?;
        let archived = archived
            .into_iter()
            .filter(|b| b.start >= first && b.start <= last);
        Ok(buckets::combine(
            archived.chain(buckets::bucketize(&live, secs)),
            secs,
        ))
    }

    async fn head_windows(
        &self,
        key: &SeriesKey,
        starts: &[i64],
    ) -> Result<Vec<(i64, Vec<Stamped>)>, TierError> {
        let bucket = key.bucket(self.config.record.buckets);
        stream::iter(starts.iter().copied().map(|start| {
            let window = WindowRef {
                bucket,
                key: key.clone(),
                start,
            };
            async move {
                let bytes = self.head.read(&window).await?;
                let points = head_points(&window, &bytes).map_err(|e| TierError::Corrupt {
                    tier: "head",
                    detail: e.to_string(),
                })?;
                Ok::<_, TierError>((start, points))
            }
        }))
        .buffer_unordered(self.config.reader.fetch_concurrency)
        .try_collect()
        .await
    }

    /// Windows `a..=b` (starts) of `key` from DynamoDB, live or not (the caller decides).
    async fn table_windows(
        &self,
        key: &SeriesKey,
        span: Option<(i64, i64)>,
    ) -> Result<Vec<(i64, Vec<Stamped>)>, TierError> {
        let Some((a, b)) = span else {
            return Ok(Vec::new());
        };
        let len = self.config.window.raw_secs;
        // Parts of the last window sit at start + i (i < MAX_WINDOW_PARTS < raw_secs).
        let items = self.table.query(&key.table_pk(RAW), a, b + len - 1).await?;
        self.decode_windows(key, items)
    }

    /// Items of `key` grouped by window and decoded.
    fn decode_windows(
        &self,
        key: &SeriesKey,
        items: Vec<WindowItem>,
    ) -> Result<Vec<(i64, Vec<Stamped>)>, TierError> {
        let len = self.config.window.raw_secs;
        let mut by_window: BTreeMap<i64, Vec<WindowItem>> = BTreeMap::new();
        for item in items {
            by_window
                .entry(window::start(len, item.sk))
                .or_default()
                .push(item);
        }
        let bucket = key.bucket(self.config.record.buckets);
        let mut out = Vec::with_capacity(by_window.len());
        for (start, items) in by_window {
            let window = WindowRef {
                bucket,
                key: key.clone(),
                start,
            };
            let stored = stored_window(&window, &items).map_err(|e| TierError::Corrupt {
                tier: "table",
                detail: e.to_string(),
            })?;
            if let Some(stored) = stored {
                out.push((start, stored.points));
            }
        }
        Ok(out)
    }
}
