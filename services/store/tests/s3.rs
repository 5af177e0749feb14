//! The S3 archive against the AWS stand-in, in the init script's bucket
//! (`carat-archive`) under a prefix of its own.
#![allow(clippy::unwrap_used)]

mod common;

use carat_store::connect::s3_client;
use carat_store::ports::Archive;
use carat_store::S3Archive;
use common::{sdk, unique};
use futures::StreamExt;

const BUCKET: &str = "carat-archive";

async fn archive(bucket: &str) -> S3Archive {
    S3Archive::new(s3_client(&sdk().await), bucket)
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn put_get_and_paginated_list() {
    let a = archive(BUCKET).await;
    let prefix = format!("{}/", unique("test"));
    // Over ListObjectsV2's 1,000 keys per page.
    let keys: Vec<String> = (0..1_050).map(|i| format!("{prefix}raw/{i:05}")).collect();
    futures::stream::iter(&keys)
        .map(|k| {
            let a = a.clone();
            async move { a.put(k, k.as_bytes().to_vec()).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()
        .unwrap();
    a.put(&format!("{prefix}other"), vec![0; 3]).await.unwrap();
    let mut listed = a.list(&format!("{prefix}raw/")).await.unwrap();
    listed.sort();
    assert_eq!(listed, keys);
    assert_eq!(a.list(&prefix).await.unwrap().len(), 1_051);
    assert_eq!(
        a.get(&keys[7]).await.unwrap(),
        Some(keys[7].as_bytes().to_vec())
    );
    assert_eq!(a.get(&format!("{prefix}missing")).await.unwrap(), None);
    // Overwrite and empty bodies.
    a.put(&keys[7], Vec::new()).await.unwrap();
    assert_eq!(a.get(&keys[7]).await.unwrap(), Some(Vec::new()));
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn health_and_a_missing_bucket() {
    let h = archive(BUCKET).await.health().await.unwrap();
    assert_eq!(h.bucket, BUCKET);
    let missing = archive(&unique("no-such-bucket")).await;
    let e = missing.health().await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(missing.get("x").await.is_err());
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn range_reads_suffixes_and_if_match() {
    let a = archive(BUCKET).await;
    let key = format!("{}/obj", unique("range"));
    let body: Vec<u8> = (0..=255u8).cycle().take(1_000).collect();
    a.put(&key, body.clone()).await.unwrap();
    // A range, clamped at the end.
    let r = a.get_range(&key, 10, 20, None).await.unwrap().unwrap();
    assert_eq!((r.body.as_slice(), r.size), (&body[10..20], 1_000));
    assert!(!r.etag.is_empty());
    let r = a.get_range(&key, 990, 5_000, None).await.unwrap().unwrap();
    assert_eq!(r.body, &body[990..]);
    // The whole object, as compaction reads it (to get its ETag with its bytes).
    let r = a
        .get_range(&key, 0, i64::MAX as u64, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.body, body);
    // A suffix, and a suffix longer than the object (the whole object).
    let s = a.get_range(&key, -6, 0, None).await.unwrap().unwrap();
    assert_eq!((s.body.as_slice(), s.size), (&body[994..], 1_000));
    let s = a.get_range(&key, -5_000, 0, None).await.unwrap().unwrap();
    assert_eq!(s.body, body);
    // An empty range.
    assert!(a
        .get_range(&key, 5, 5, None)
        .await
        .unwrap()
        .unwrap()
        .body
        .is_empty());
    // If-Match: the same ETag reads; after an overwrite it is a retryable error.
    let r = a
        .get_range(&key, 0, 4, Some(&s.etag))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.body, &body[..4]);
    a.put(&key, b"changed".to_vec()).await.unwrap();
    let e = a.get_range(&key, 0, 4, Some(&s.etag)).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(
        a.get_range(&format!("{key}-missing"), -6, 0, None)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn conditional_puts_and_deletes() {
    use carat_store::ports::Written;
    let a = archive(BUCKET).await;
    let prefix = format!("{}/", unique("cas"));
    let key = format!("{prefix}day");
    // Create only if absent.
    assert_eq!(
        a.put_if(&key, b"v1".to_vec(), None).await.unwrap(),
        Written::Stored
    );
    assert_eq!(
        a.put_if(&key, b"v1'".to_vec(), None).await.unwrap(),
        Written::Conflict
    );
    let etag = a.get_range(&key, 0, 10, None).await.unwrap().unwrap().etag;
    // Replace only what was read.
    assert_eq!(
        a.put_if(&key, b"v2".to_vec(), Some(&etag)).await.unwrap(),
        Written::Stored
    );
    assert_eq!(
        a.put_if(&key, b"v3".to_vec(), Some(&etag)).await.unwrap(),
        Written::Conflict
    );
    assert_eq!(a.get(&key).await.unwrap(), Some(b"v2".to_vec()));
    // If-Match on a key that does not exist.
    assert_eq!(
        a.put_if(&format!("{prefix}none"), b"x".to_vec(), Some(&etag))
            .await
            .unwrap(),
        Written::Conflict
    );
    // Deletes over DeleteObjects' 1,000 keys per call; missing keys are no error.
    let keys: Vec<String> = (0..1_005).map(|i| format!("{prefix}s/{i:05}")).collect();
    futures::stream::iter(&keys)
        .map(|k| {
            let a = a.clone();
            async move { a.put(k, vec![1]).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()
        .unwrap();
    let mut doomed = keys.clone();
    doomed.push(format!("{prefix}s/never-written"));
    a.delete(&doomed).await.unwrap();
    assert!(a.list(&format!("{prefix}s/")).await.unwrap().is_empty());
    a.delete(&[]).await.unwrap();
    assert_eq!(a.get(&key).await.unwrap(), Some(b"v2".to_vec()));
}
