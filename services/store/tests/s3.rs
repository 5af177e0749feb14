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
