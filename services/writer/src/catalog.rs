//! Keeping the series catalog: at most one catalog write per new series per day
//! (UTC, by the writer's clock), never one per point.
//!
//! Per bucket of a batch, the distinct series seen (in points records and labels
//! records) go through three filters, cheapest first:
//! 1. a label set (from a labels record) is always written: the ingest API sends one
//!    per series at most hourly per API process, and it must reach the catalog;
//! 2. a series this container already recorded (or saw marked) today is skipped: an
//!    in-process set per day ([`SeenToday`], bounded by `writer.catalog_cache_series`);
//! 3. for the rest, one `Head::catalog_unmarked` call per bucket asks Redis which have
//!    no marker for today (`{b<bucket>}:c:<day>`, shared by every container).
//!
//! What is left is written with one `Catalog::record`, and only once that succeeded
//! are the series marked (`Head::catalog_mark`): a failed catalog write leaves no
//! marker, so the retried batch writes the series again instead of hiding it for the
//! rest of the day. A failed marking only costs a second write later (logged, not an
//! error). Catalog failures fail the bucket like a failed append: retried in the
//! invocation, then handed back to Lambda (points are idempotent, replays are fine).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use carat_core::catalog::{day_of, DAY_SECS};
use carat_core::{SeriesKey, Tenant};
use carat_store::ports::{Catalog, CatalogEntry, Head};

use crate::error::WriterError;

/// Labels of a series as a labels record gave them (empty: seen in points only).
pub type Labels = Vec<(String, String)>;

/// How long a day's markers live: the day itself and the next (a writer whose clock is
/// a little behind, or a batch that straddles midnight, still finds them).
const MARKER_TTL_SECS: i64 = 2 * DAY_SECS;

/// Series this container recorded (or found marked) on one day.
#[derive(Debug)]
struct SeenToday {
    day: i64,
    series: HashSet<SeriesKey>,
    cap: usize,
}

impl SeenToday {
    fn contains(&self, day: i64, key: &SeriesKey) -> bool {
        self.day == day && self.series.contains(key)
    }

    fn insert(&mut self, day: i64, keys: impl IntoIterator<Item = SeriesKey>) {
        if day != self.day {
            if day < self.day {
                // A clock step back: remembering nothing is always correct.
                return;
            }
            self.day = day;
            self.series.clear();
        }
        for k in keys {
            if self.series.len() >= self.cap {
                // Full: start over (Redis markers answer for the forgotten ones). A
                // container seeing more series than the cap pays one Redis round trip
                // per bucket per batch, never a catalog write.
                self.series.clear();
            }
            self.series.insert(k);
        }
    }
}

/// The catalog and this container's memory of what it recorded today.
pub struct CatalogKeeper {
    catalog: Arc<dyn Catalog>,
    seen: Mutex<SeenToday>,
}

impl CatalogKeeper {
    /// `cap`: most series remembered per day (`writer.catalog_cache_series`).
    #[must_use]
    pub fn new(catalog: Arc<dyn Catalog>, cap: usize) -> Self {
        Self {
            catalog,
            seen: Mutex::new(SeenToday {
                day: i64::MIN,
                series: HashSet::new(),
                cap: cap.max(1),
            }),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, SeenToday> {
        // A poisoned set is still a valid (conservative) memory.
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the series of one bucket that the catalog may not have for today (see
    /// the module docs) and returns how many catalog entries it wrote.
    ///
    /// # Errors
    /// The head's or the catalog's [`carat_store::StoreError`] (retryable ones retry
    /// the bucket); nothing is marked then.
    pub async fn record(
        &self,
        head: &dyn Head,
        bucket: u32,
        series: &BTreeMap<SeriesKey, Labels>,
        now: i64,
    ) -> Result<u64, WriterError> {
        if series.is_empty() {
            return Ok(0);
        }
        let day = day_of(now);
        let mut labelled: Vec<(&SeriesKey, &Labels)> = Vec::new();
        let mut candidates: Vec<SeriesKey> = Vec::new();
        {
            let seen = self.seen();
            for (key, labels) in series {
                if !labels.is_empty() {
                    labelled.push((key, labels));
                } else if !seen.contains(day, key) {
                    candidates.push(key.clone());
                }
            }
        }
        let mut new: Vec<SeriesKey> = Vec::new();
        if !candidates.is_empty() {
            let unmarked = head.catalog_unmarked(bucket, day, &candidates).await?;
            let mut known = Vec::new();
            for (key, unmarked) in candidates.into_iter().zip(unmarked) {
                if unmarked {
                    new.push(key);
                } else {
                    known.push(key);
                }
            }
            self.seen().insert(day, known);
        }
        if labelled.is_empty() && new.is_empty() {
            return Ok(0);
        }

        let mut by_tenant: BTreeMap<&Tenant, Vec<CatalogEntry>> = BTreeMap::new();
        for (key, labels) in &labelled {
            by_tenant
                .entry(&key.tenant)
                .or_default()
                .push(CatalogEntry {
                    series: key.series.clone(),
                    labels: (*labels).clone(),
                    day,
                });
        }
        for key in &new {
            by_tenant
                .entry(&key.tenant)
                .or_default()
                .push(CatalogEntry {
                    series: key.series.clone(),
                    labels: Vec::new(),
                    day,
                });
        }
        let mut written = 0;
        for (tenant, entries) in &by_tenant {
            self.catalog.record(tenant, entries).await?;
            written += entries.len() as u64;
        }

        // Only now that the catalog holds them: mark them for the other containers.
        let recorded: Vec<SeriesKey> = labelled
            .into_iter()
            .map(|(k, _)| k.clone())
            .chain(new)
            .collect();
        if let Err(e) = head
            .catalog_mark(bucket, day, &recorded, day.saturating_add(MARKER_TTL_SECS))
            .await
        {
            tracing::warn!(error = %e, bucket, series = recorded.len(), "catalog markers not set; the series will be recorded again");
        }
        self.seen().insert(day, recorded);
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carat_core::SeriesName;

    fn key(name: &str) -> SeriesKey {
        SeriesKey::new(
            Tenant::default_tenant(),
            SeriesName::parse(name, "name").unwrap(),
        )
    }

    #[test]
    fn seen_today_forgets_on_a_new_day_and_when_full() {
        let mut s = SeenToday {
            day: i64::MIN,
            series: HashSet::new(),
            cap: 2,
        };
        s.insert(0, [key("a"), key("b")]);
        assert!(s.contains(0, &key("a")) && s.contains(0, &key("b")));
        assert!(!s.contains(DAY_SECS, &key("a")));
        s.insert(0, [key("c")]);
        assert!(s.contains(0, &key("c")) && !s.contains(0, &key("a")));
        s.insert(DAY_SECS, [key("d")]);
        assert!(s.contains(DAY_SECS, &key("d")) && !s.contains(0, &key("c")));
        // A clock step back remembers nothing for the older day.
        s.insert(0, [key("e")]);
        assert!(!s.contains(0, &key("e")));
    }
}
