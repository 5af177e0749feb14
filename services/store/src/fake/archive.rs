//! [`FakeArchive`]: the S3 archive in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{lock, Faults};
use crate::ports::{Archive, ObjectRange, Written};
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

    async fn get_range(
        &self,
        key: &str,
        start: i64,
        end: u64,
        if_match: Option<&str>,
    ) -> Result<Option<ObjectRange>, StoreError> {
        self.faults.check("get_range")?;
        let objects = lock(&self.objects);
        let Some(object) = objects.get(key) else {
            return Ok(None);
        };
        let etag = etag(object);
        if if_match.is_some_and(|m| m != etag) {
            return Err(StoreError::retryable(
                "s3",
                "get_range",
                format!("{key:?} changed since its index was read (ETag mismatch)"),
            ));
        }
        let len = object.len();
        let (from, to) = if start < 0 {
            let n = usize::try_from(start.unsigned_abs()).unwrap_or(usize::MAX);
            (len.saturating_sub(n), len)
        } else {
            let from = usize::try_from(start).unwrap_or(usize::MAX).min(len);
            let to = usize::try_from(end).unwrap_or(usize::MAX).min(len);
            (from, to.max(from))
        };
        Ok(Some(ObjectRange {
            body: object[from..to].to_vec(),
            size: len as u64,
            etag,
        }))
    }

    async fn put_if(
        &self,
        key: &str,
        body: Vec<u8>,
        if_match: Option<&str>,
    ) -> Result<Written, StoreError> {
        self.faults.check("put_if")?;
        let mut objects = lock(&self.objects);
        let current = objects.get(key).map(|o| etag(o));
        if current.as_deref() != if_match {
            return Ok(Written::Conflict);
        }
        objects.insert(key.to_string(), body);
        Ok(Written::Stored)
    }

    async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        self.faults.check("delete")?;
        let mut objects = lock(&self.objects);
        for k in keys {
            objects.remove(k);
        }
        Ok(())
    }
}

/// The fake's ETag: a hash of the content, as S3's is for single-part uploads.
fn etag(body: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}
