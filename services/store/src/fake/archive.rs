//! [`FakeArchive`]: the S3 archive in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{lock, Faults};
use crate::ports::Archive;
use crate::StoreError;

/// The S3 archive in memory.
#[derive(Debug, Default)]
pub struct FakeArchive {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    faults: Faults,
}

impl FakeArchive {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Every object, sorted by key.
    #[must_use]
    pub fn objects(&self) -> Vec<(String, Vec<u8>)> {
        lock(&self.objects)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[async_trait]
impl Archive for FakeArchive {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        self.faults.check("put")?;
        lock(&self.objects).insert(key.to_string(), body);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.faults.check("get")?;
        Ok(lock(&self.objects).get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.faults.check("list")?;
        Ok(lock(&self.objects)
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }
}
