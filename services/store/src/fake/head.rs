//! [`FakeHead`]: the Redis head in memory.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use carat_core::head;
use carat_core::SeriesKey;
use rustc_hash::FxHashMap;

use super::{lock, Faults, SERVICE};
use crate::head_keys::{catalog_key, catalog_member, check_appends, dirty_member, nonce};
use crate::ports::{Head, HeadAppend, WindowRef};
use crate::StoreError;

#[derive(Debug, Default)]
struct HeadState {
    /// Window ⇒ (head bytes, expire_at): what `Head::read` of Redis gives. FxHash:
    /// SipHash of every window key was a fifth of the writer benchmark, which measures
    /// the writer's CPU, not this stand-in's.
    windows: FxHashMap<WindowRef, (Vec<u8>, i64)>,
    /// bucket ⇒ window ⇒ score, like the `{b<bucket>}:dirty` ZSET (whose member is
    /// `dirty_member(window)`: formatted only where ZSET order is needed).
    dirty: HashMap<u32, FxHashMap<WindowRef, i64>>,
    /// `{b<bucket>}:c:<day>` ⇒ (members, expire_at): the catalog markers.
    markers: HashMap<String, (HashSet<String>, i64)>,
}

/// The Redis head in memory. Window expiry happens only when a test calls [`FakeHead::expire`].
#[derive(Debug, Default)]
pub struct FakeHead {
    state: Mutex<HeadState>,
    faults: Faults,
}

impl FakeHead {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Forgets every window whose `expire_at` is at or before `now` (what Redis's
    /// EXPIREAT does), leaving dirty marks in place as Redis does.
    pub fn expire(&self, now: i64) {
        let mut state = lock(&self.state);
        state.windows.retain(|_, (_, at)| *at > now);
        state.markers.retain(|_, (_, at)| *at > now);
    }

    /// Catalog markers held for `bucket` and `day` (members `<tenant>:<series>`, sorted).
    #[must_use]
    pub fn catalog_marks(&self, bucket: u32, day: i64) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.state)
            .markers
            .get(&catalog_key(bucket, day))
            .map(|(m, _)| m.iter().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Puts a v1 head (16-byte entries, what a v1 writer appended) for a window, as a
    /// v1 head key present during a rolling deploy: migration tests.
    pub fn put_v1(&self, window: &WindowRef, entries: &[u8], expire_at: i64) {
        lock(&self.state)
            .windows
            .insert(window.clone(), (entries.to_vec(), expire_at));
    }

    /// Every window the head holds, with its head bytes, sorted.
    #[must_use]
    pub fn windows(&self) -> Vec<(WindowRef, Vec<u8>)> {
        let mut v: Vec<_> = lock(&self.state)
            .windows
            .iter()
            .map(|(w, (b, _))| (w.clone(), b.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The dirty windows of `bucket` with their flush-due scores, in ZSET order.
    #[must_use]
    pub fn dirty(&self, bucket: u32) -> Vec<(WindowRef, i64)> {
        let state = lock(&self.state);
        let mut v: Vec<_> = state
            .dirty
            .get(&bucket)
            .map(|m| {
                m.iter()
                    .map(|(w, s)| (*s, dirty_member(w), w.clone()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v.into_iter().map(|(s, _, w)| (w, s)).collect()
    }
}

#[async_trait]
impl Head for FakeHead {
    async fn append(&self, bucket: u32, appends: &[HeadAppend]) -> Result<Vec<u64>, StoreError> {
        self.faults.check("append")?;
        check_appends(SERVICE, bucket, appends)?;
        let nonce = nonce();
        let mut state = lock(&self.state);
        let mut counts = Vec::with_capacity(appends.len());
        let state = &mut *state;
        for a in appends {
            // Looked up before inserting: cloning every window's key was most of the
            // benchmark's in-memory head (docs/BENCHMARKS.md, "Writer CPU").
            let slot = match state.windows.get_mut(&a.window) {
                Some(slot) => slot,
                None => state
                    .windows
                    .entry(a.window.clone())
                    .or_insert_with(|| (Vec::new(), a.expire_at)),
            };
            let count = head::append_to(&mut slot.0, &a.block, nonce).map_err(|e| {
                StoreError::fatal(SERVICE, "append", format!("{}: {e}", a.window.key))
            })?;
            slot.1 = a.expire_at;
            counts.push(u64::from(count));
            // Like `ZADD LT`: the earliest due time a window was given stays.
            let set = state.dirty.entry(bucket).or_default();
            match set.get_mut(&a.window) {
                Some(due) => *due = (*due).min(a.flush_due),
                None => {
                    set.insert(a.window.clone(), a.flush_due);
                }
            }
        }
        Ok(counts)
    }

    async fn read(&self, window: &WindowRef) -> Result<Vec<u8>, StoreError> {
        self.faults.check("read")?;
        Ok(lock(&self.state)
            .windows
            .get(window)
            .map(|(b, _)| b.clone())
            .unwrap_or_default())
    }

    async fn due(&self, bucket: u32, now: i64, limit: usize) -> Result<Vec<WindowRef>, StoreError> {
        self.faults.check("due")?;
        let state = lock(&self.state);
        let Some(set) = state.dirty.get(&bucket) else {
            return Ok(Vec::new());
        };
        let mut v: Vec<_> = set
            .iter()
            .filter(|(_, score)| **score <= now)
            .map(|(w, score)| (*score, dirty_member(w), w))
            .collect();
        v.sort();
        Ok(v.into_iter()
            .take(limit)
            .map(|(_, _, w)| w.clone())
            .collect())
    }

    async fn settle(&self, window: &WindowRef, read: &[u8]) -> Result<bool, StoreError> {
        self.faults.check("settle")?;
        let mut state = lock(&self.state);
        let current = state
            .windows
            .get(window)
            .map(|(b, _)| head::identity(b))
            .unwrap_or(Ok(head::Identity::Absent));
        if current.ok() != head::identity(read).ok() {
            return Ok(false);
        }
        if let Some(set) = state.dirty.get_mut(&window.bucket) {
            set.remove(window);
        }
        Ok(true)
    }

    async fn catalog_unmarked(
        &self,
        bucket: u32,
        day: i64,
        series: &[SeriesKey],
    ) -> Result<Vec<bool>, StoreError> {
        self.faults.check("catalog_unmarked")?;
        let state = lock(&self.state);
        let set = state.markers.get(&catalog_key(bucket, day));
        Ok(series
            .iter()
            .map(|k| !set.is_some_and(|(m, _)| m.contains(&catalog_member(k))))
            .collect())
    }

    async fn catalog_mark(
        &self,
        bucket: u32,
        day: i64,
        series: &[SeriesKey],
        expire_at: i64,
    ) -> Result<(), StoreError> {
        self.faults.check("catalog_mark")?;
        if series.is_empty() {
            return Ok(());
        }
        let mut state = lock(&self.state);
        let slot = state
            .markers
            .entry(catalog_key(bucket, day))
            .or_insert_with(|| (HashSet::new(), expire_at));
        slot.0.extend(series.iter().map(catalog_member));
        slot.1 = expire_at;
        Ok(())
    }
}
