//! [`FakeTable`]: the DynamoDB window table in memory.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{lock, Faults, SERVICE};
use crate::ports::{WindowItem, WindowTable, Written, MAX_WINDOW_PARTS};
use crate::StoreError;

/// The DynamoDB window table in memory: whole-item puts, the last one wins;
/// conditional window writes that are atomic and compare the stored hash, as
/// DynamoDB's condition expressions and transactions do.
#[derive(Debug, Default)]
pub struct FakeTable {
    items: Mutex<BTreeMap<(String, i64), WindowItem>>,
    faults: Faults,
    puts: AtomicU64,
}

impl FakeTable {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Every item, sorted by (pk, sk).
    #[must_use]
    pub fn items(&self) -> Vec<WindowItem> {
        lock(&self.items).values().cloned().collect()
    }

    /// Items written so far (each item of each successful or partial put counts once).
    #[must_use]
    pub fn items_written(&self) -> u64 {
        self.puts.load(Ordering::Relaxed)
    }

    /// Removes an item, as a TTL sweep or a user delete would.
    pub fn delete(&self, pk: &str, sk: i64) -> Option<WindowItem> {
        lock(&self.items).remove(&(pk.to_string(), sk))
    }
}

#[async_trait]
impl WindowTable for FakeTable {
    async fn put(&self, items: &[WindowItem]) -> Result<(), StoreError> {
        let stop = self.faults.check("put")?;
        let n = stop.unwrap_or(items.len()).min(items.len());
        let mut map = lock(&self.items);
        for item in &items[..n] {
            map.insert((item.pk.clone(), item.sk), item.clone());
        }
        self.puts.fetch_add(n as u64, Ordering::Relaxed);
        if stop.is_some() {
            return Err(StoreError::retryable(
                SERVICE,
                "put",
                format!("injected fault after {n} of {} items", items.len()),
            ));
        }
        Ok(())
    }

    async fn read_window(&self, pk: &str, start: i64) -> Result<Vec<WindowItem>, StoreError> {
        self.faults.check("read_window")?;
        let end = start.saturating_add(MAX_WINDOW_PARTS as i64 - 1);
        Ok(lock(&self.items)
            .range((pk.to_string(), start)..=(pk.to_string(), end))
            .map(|(_, v)| v.clone())
            .collect())
    }

    async fn write_window(
        &self,
        parts: &[WindowItem],
        expected: Option<&[u8]>,
        stale: &[i64],
    ) -> Result<Written, StoreError> {
        self.faults.check("write_window")?;
        let Some(main) = parts.first() else {
            return Err(StoreError::fatal(
                SERVICE,
                "write_window",
                "no parts to write",
            ));
        };
        let mut map = lock(&self.items);
        let current = map.get(&(main.pk.clone(), main.sk));
        let matches = match (current, expected) {
            (None, None) => true,
            (Some(item), Some(hash)) => item.hash == hash,
            _ => false,
        };
        if !matches {
            return Ok(Written::Conflict);
        }
        for sk in stale {
            map.remove(&(main.pk.clone(), *sk));
        }
        for part in parts {
            map.insert((part.pk.clone(), part.sk), part.clone());
        }
        self.puts.fetch_add(parts.len() as u64, Ordering::Relaxed);
        Ok(Written::Stored)
    }

    async fn get(&self, pk: &str, sk: i64) -> Result<Option<WindowItem>, StoreError> {
        self.faults.check("get")?;
        Ok(lock(&self.items).get(&(pk.to_string(), sk)).cloned())
    }

    async fn query(
        &self,
        pk: &str,
        from_sk: i64,
        to_sk: i64,
    ) -> Result<Vec<WindowItem>, StoreError> {
        self.faults.check("query")?;
        if from_sk > to_sk {
            return Ok(Vec::new());
        }
        Ok(lock(&self.items)
            .range((pk.to_string(), from_sk)..=(pk.to_string(), to_sk))
            .map(|(_, v)| v.clone())
            .collect())
    }

    async fn batch_get(&self, keys: &[(String, i64)]) -> Result<Vec<WindowItem>, StoreError> {
        self.faults.check("batch_get")?;
        let items = lock(&self.items);
        let mut keys: Vec<&(String, i64)> = keys.iter().collect();
        keys.sort();
        keys.dedup();
        Ok(keys
            .into_iter()
            .filter_map(|k| items.get(k).cloned())
            .collect())
    }
}
