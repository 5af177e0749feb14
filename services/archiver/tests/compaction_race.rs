//! Two compactions of one day at once: the one whose conditional write loses reads and
//! merges again, so neither's input is lost.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use carat_archiver::compact::compact_day;
use carat_archiver::ArchiveReader;
use carat_store::fake::FakeArchive;
use carat_store::ports::{Archive, ObjectRange, Written};
use carat_store::StoreError;
use common::*;

/// The fake archive, but before the first conditional write "another" archiver stores
/// `second` and "another" compaction compacts the day.
struct Racing {
    inner: Arc<FakeArchive>,
    armed: AtomicBool,
    cfg: carat_core::Config,
    second: Vec<carat_store::ports::WindowItem>,
}

impl Racing {
    async fn meddle(&self) {
        let e = event(&self.second, 10);
        archiver(&self.inner, self.cfg.clone())
            .archive_batch(&e)
            .await
            .unwrap();
        let t = key("default", "a.b").tenant;
        let archive: &dyn Archive = self.inner.as_ref();
        let r = compact_day(archive, &t, DAY0).await.unwrap();
        assert!(r.wrote && r.staged == 2, "{r:?}");
    }
}

#[async_trait]
impl Archive for Racing {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        self.inner.put(key, body).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn get_range(
        &self,
        key: &str,
        start: i64,
        end: u64,
        if_match: Option<&str>,
    ) -> Result<Option<ObjectRange>, StoreError> {
        self.inner.get_range(key, start, end, if_match).await
    }
    async fn put_if(
        &self,
        key: &str,
        body: Vec<u8>,
        if_match: Option<&str>,
    ) -> Result<Written, StoreError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.meddle().await;
        }
        self.inner.put_if(key, body, if_match).await
    }
    async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        self.inner.delete(keys).await
    }
}

#[tokio::test]
async fn a_concurrent_compaction_loses_nothing() {
    let cfg = config(60);
    let inner = Arc::new(FakeArchive::new());
    let a = archiver(&inner, cfg.clone());
    let k = key("default", "a.b");
    let first = items(&cfg, &k, DAY0, &[st(DAY0, 1.0, 1)], 1);
    let second = items(&cfg, &k, DAY0 + 60, &[st(DAY0 + 60, 2.0, 1)], 2);
    assert_eq!(second.len(), 2);
    a.archive_batch(&event(&first, 1)).await.unwrap();
    let racing = Arc::new(Racing {
        inner: Arc::clone(&inner),
        armed: AtomicBool::new(true),
        cfg: cfg.clone(),
        second,
    });
    let r = compact_day(racing.as_ref(), &k.tenant, DAY0).await.unwrap();
    // The outer compaction lost its first write, read the other's day object, and
    // found its own staged object already included (and deleted).
    assert!(!r.wrote, "{r:?}");
    assert!(inner
        .objects()
        .iter()
        .all(|(key, _)| !key.starts_with("stage/")));
    let got = ArchiveReader::new(inner.clone() as _)
        .with_window_secs(60)
        .raw(&k, DAY0, DAY0 + 200)
        .await
        .unwrap();
    let starts: Vec<i64> = got.iter().map(|w| w.start).collect();
    assert_eq!(starts, vec![DAY0, DAY0 + 60]);
}
