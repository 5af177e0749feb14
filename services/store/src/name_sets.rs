//! The two sides of name sets (record v2, `carat_core::record::names`) over the
//! [`NameSets`] port, each with the per-process cache that makes them cheap:
//! - [`SentNameSets`] (ingest API): a set is put once per process, before the first
//!   record that names it; later posts of the same names cost nothing.
//! - [`NameSetResolver`] (writer): a set is fetched once per container, checked against
//!   its id, and kept parsed.
//!
//! Both caches are bounded: past [`CACHE_ENTRIES`] sets they start over (a re-put or a
//! re-fetch is correct, only one more call).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use carat_core::record::{NameSet, NameSetId};
use carat_core::{SeriesName, Tenant};

use crate::ports::NameSets;
use crate::StoreError;

/// Sets one process keeps: a Mackerel host's post is one set, so 100,000 hosts' sets.
pub const CACHE_ENTRIES: usize = 100_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned cache is still a valid (possibly incomplete) cache.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The ingest API's side: which sets this process has stored.
pub struct SentNameSets {
    store: Arc<dyn NameSets>,
    stored: Mutex<HashSet<(Tenant, NameSetId)>>,
}

impl std::fmt::Debug for SentNameSets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentNameSets")
            .field("stored", &lock(&self.stored).len())
            .finish_non_exhaustive()
    }
}

impl SentNameSets {
    #[must_use]
    pub fn new(store: Arc<dyn NameSets>) -> Self {
        Self {
            store,
            stored: Mutex::new(HashSet::new()),
        }
    }

    /// Whether this process has stored `tenant`'s set `id`.
    #[must_use]
    pub fn is_stored(&self, tenant: &Tenant, id: NameSetId) -> bool {
        lock(&self.stored).contains(&(tenant.clone(), id))
    }

    /// Stores `set` unless this process already did. Once this returns `Ok`, records
    /// may name the set.
    ///
    /// # Errors
    /// The store's error (the adapter has already retried retryable ones): the caller
    /// sends the names inline instead.
    pub async fn ensure(&self, tenant: &Tenant, set: &NameSet) -> Result<(), StoreError> {
        if self.is_stored(tenant, set.id()) {
            return Ok(());
        }
        self.store.put_name_set(tenant, set).await?;
        let mut stored = lock(&self.stored);
        if stored.len() >= CACHE_ENTRIES {
            stored.clear();
        }
        stored.insert((tenant.clone(), set.id()));
        Ok(())
    }
}

/// What resolving a set found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    Names(Arc<[SeriesName]>),
    /// Never stored (or not in this table): the records naming it cannot be decoded.
    Missing,
    /// Stored bytes that do not open or do not match the id (why).
    Corrupt(String),
}

/// Sets fetched and parsed, by (tenant, id).
type Fetched = HashMap<(Tenant, NameSetId), Arc<[SeriesName]>>;

/// The writer's side: sets fetched and parsed, by (tenant, id).
pub struct NameSetResolver {
    store: Arc<dyn NameSets>,
    cache: Mutex<Fetched>,
}

impl std::fmt::Debug for NameSetResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameSetResolver")
            .field("cached", &lock(&self.cache).len())
            .finish_non_exhaustive()
    }
}

impl NameSetResolver {
    #[must_use]
    pub fn new(store: Arc<dyn NameSets>) -> Self {
        Self {
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The cached names of `tenant`'s set `id`, without a call.
    #[must_use]
    pub fn cached(&self, tenant: &Tenant, id: NameSetId) -> Option<Arc<[SeriesName]>> {
        lock(&self.cache).get(&(tenant.clone(), id)).cloned()
    }

    /// The names of `tenant`'s set `id`: from the cache, else fetched and checked.
    ///
    /// # Errors
    /// The store's error (retryable ones already retried by the adapter).
    pub async fn resolve(&self, tenant: &Tenant, id: NameSetId) -> Result<Resolved, StoreError> {
        if let Some(names) = self.cached(tenant, id) {
            return Ok(Resolved::Names(names));
        }
        let Some(sealed) = self.store.get_name_set(tenant, id).await? else {
            return Ok(Resolved::Missing);
        };
        let names: Arc<[SeriesName]> = match NameSet::open(&sealed, id) {
            Ok(names) => names.into(),
            Err(e) => return Ok(Resolved::Corrupt(e.to_string())),
        };
        let mut cache = lock(&self.cache);
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert((tenant.clone(), id), Arc::clone(&names));
        Ok(Resolved::Names(names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeCatalog;

    fn set(n: usize) -> NameSet {
        let names: Vec<SeriesName> = (0..n)
            .map(|i| SeriesName::parse(&format!("host.h1.metric.{i}"), "name").unwrap())
            .collect();
        NameSet::of(names.iter())
    }

    #[tokio::test]
    async fn a_set_is_put_once_and_fetched_once() {
        let store = Arc::new(FakeCatalog::new());
        let sent = SentNameSets::new(store.clone());
        let resolver = NameSetResolver::new(store.clone());
        let t = Tenant::default_tenant();
        let s = set(20);
        assert_eq!(
            resolver.resolve(&t, s.id()).await.unwrap(),
            Resolved::Missing
        );
        sent.ensure(&t, &s).await.unwrap();
        sent.ensure(&t, &s).await.unwrap();
        for _ in 0..3 {
            let Resolved::Names(names) = resolver.resolve(&t, s.id()).await.unwrap() else {
                panic!("the set was stored");
            };
            assert_eq!(names.len(), 20);
            assert_eq!(names[3].as_str(), "host.h1.metric.3");
        }
        // One put; two gets (the miss before the put, then one fetch).
        assert_eq!(store.name_set_calls(), (1, 2));
        // Another tenant does not see it.
        let other = Tenant::parse("other").unwrap();
        assert_eq!(
            resolver.resolve(&other, s.id()).await.unwrap(),
            Resolved::Missing
        );
    }

    #[tokio::test]
    async fn a_failed_put_is_not_remembered() {
        let store = Arc::new(FakeCatalog::new());
        let sent = SentNameSets::new(store.clone());
        let t = Tenant::default_tenant();
        let s = set(5);
        store.faults().fail_next_op("put_name_set", 1);
        assert!(sent.ensure(&t, &s).await.is_err());
        assert!(!sent.is_stored(&t, s.id()));
        sent.ensure(&t, &s).await.unwrap();
        assert!(sent.is_stored(&t, s.id()));
    }
}
