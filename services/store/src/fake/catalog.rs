//! [`FakeCatalog`]: the series catalog in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use carat_core::catalog::group_of;
use carat_core::{SeriesName, Tenant};

use super::{lock, Faults};
use crate::ports::{Catalog, CatalogEntry, NameSets};
use crate::StoreError;
use carat_core::record::{NameSet, NameSetId};

/// The series of one group: name ⇒ (labels, day).
type GroupSeries = BTreeMap<SeriesName, (Vec<(String, String)>, i64)>;

#[derive(Debug, Default)]
struct CatalogState {
    /// (tenant, group) ⇒ its series.
    series: BTreeMap<(Tenant, String), GroupSeries>,
    /// tenant ⇒ group ⇒ last day recorded.
    groups: BTreeMap<Tenant, BTreeMap<String, i64>>,
    /// Series entries written (what DynamoDB would bill one write each).
    writes: u64,
    /// (tenant, name set id) ⇒ sealed set.
    name_sets: BTreeMap<(Tenant, NameSetId), Vec<u8>>,
    /// Name set puts and gets that reached the store.
    name_set_puts: u64,
    name_set_gets: u64,
}

/// The series catalog in memory, with the adapter's upsert semantics: an entry with
/// empty labels keeps the labels stored before.
#[derive(Debug, Default)]
pub struct FakeCatalog {
    state: Mutex<CatalogState>,
    faults: Faults,
}

impl FakeCatalog {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Series entries written so far (one per entry of each successful `record`).
    #[must_use]
    pub fn writes(&self) -> u64 {
        lock(&self.state).writes
    }

    /// Name set puts and gets that reached the store (not a process's cache).
    #[must_use]
    pub fn name_set_calls(&self) -> (u64, u64) {
        let state = lock(&self.state);
        (state.name_set_puts, state.name_set_gets)
    }

    /// Forgets every stored name set (what a lost or wrong table looks like).
    pub fn drop_name_sets(&self) {
        lock(&self.state).name_sets.clear();
    }

    /// Every entry of `tenant`, sorted by series name.
    #[must_use]
    pub fn entries(&self, tenant: &Tenant) -> Vec<CatalogEntry> {
        let state = lock(&self.state);
        let mut v: Vec<CatalogEntry> = state
            .series
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .flat_map(|(_, m)| {
                m.iter().map(|(s, (labels, day))| CatalogEntry {
                    series: s.clone(),
                    labels: labels.clone(),
                    day: *day,
                })
            })
            .collect();
        v.sort_by(|a, b| a.series.cmp(&b.series));
        v
    }
}

#[async_trait]
impl Catalog for FakeCatalog {
    async fn record(&self, tenant: &Tenant, entries: &[CatalogEntry]) -> Result<(), StoreError> {
        self.faults.check("record")?;
        let mut state = lock(&self.state);
        for e in entries {
            let group = group_of(e.series.as_str()).to_string();
            state
                .groups
                .entry(tenant.clone())
                .or_default()
                .insert(group.clone(), e.day);
            let slot = state
                .series
                .entry((tenant.clone(), group))
                .or_default()
                .entry(e.series.clone())
                .or_insert_with(|| (Vec::new(), e.day));
            slot.1 = e.day;
            if !e.labels.is_empty() {
                slot.0.clone_from(&e.labels);
            }
            state.writes += 1;
        }
        Ok(())
    }

    async fn groups(
        &self,
        tenant: &Tenant,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.faults.check("groups")?;
        let state = lock(&self.state);
        Ok(state
            .groups
            .get(tenant)
            .map(|g| {
                g.keys()
                    .filter(|g| g.starts_with(prefix))
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn series(
        &self,
        tenant: &Tenant,
        group: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<CatalogEntry>, StoreError> {
        self.faults.check("series")?;
        let state = lock(&self.state);
        Ok(state
            .series
            .get(&(tenant.clone(), group.to_string()))
            .map(|m| {
                m.iter()
                    .filter(|(s, _)| s.as_str().starts_with(prefix))
                    .take(limit)
                    .map(|(s, (labels, day))| CatalogEntry {
                        series: s.clone(),
                        labels: labels.clone(),
                        day: *day,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[async_trait]
impl NameSets for FakeCatalog {
    async fn put_name_set(&self, tenant: &Tenant, set: &NameSet) -> Result<(), StoreError> {
        self.faults.check("put_name_set")?;
        let mut state = lock(&self.state);
        state.name_set_puts += 1;
        state
            .name_sets
            .insert((tenant.clone(), set.id()), set.sealed());
        Ok(())
    }

    async fn get_name_set(
        &self,
        tenant: &Tenant,
        id: NameSetId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.faults.check("get_name_set")?;
        let mut state = lock(&self.state);
        state.name_set_gets += 1;
        Ok(state.name_sets.get(&(tenant.clone(), id)).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, labels: &[(&str, &str)], day: i64) -> CatalogEntry {
        CatalogEntry {
            series: SeriesName::parse(name, "name").unwrap(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            day,
        }
    }

    #[tokio::test]
    async fn upserts_keep_labels_and_list_like_the_adapter() {
        let c = FakeCatalog::new();
        let t = Tenant::default_tenant();
        c.record(
            &t,
            &[
                entry("up.job.a", &[("__name__", "up"), ("job", "a")], 0),
                entry("host.h1.cpu", &[], 0),
                entry("host.h1.mem", &[], 0),
            ],
        )
        .await
        .unwrap();
        c.record(&t, &[entry("up.job.a", &[], 86_400)])
            .await
            .unwrap();
        assert_eq!(
            c.series(&t, "up", "", 10).await.unwrap(),
            vec![entry(
                "up.job.a",
                &[("__name__", "up"), ("job", "a")],
                86_400
            )]
        );
        let listed = c.series(&t, "host.h1", "host.h1.m", 10).await.unwrap();
        assert_eq!(listed, vec![entry("host.h1.mem", &[], 0)]);
        assert_eq!(c.groups(&t, "h", 10).await.unwrap(), ["host.h1"]);
        assert_eq!(c.writes(), 4);
        c.faults().fail_next(1);
        assert!(c.record(&t, &[]).await.unwrap_err().is_retryable());
    }
}
