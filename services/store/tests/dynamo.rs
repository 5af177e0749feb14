//! The DynamoDB window table against the AWS stand-in (moto on 127.0.0.1:4566), using
//! the table the init script creates (`carat-windows`) with partition keys of its own.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::WriteRequest;
use carat_core::config::ServiceLimits;
use carat_store::dynamo::{BatchSend, SdkBatchSend};
use carat_store::ports::{WindowItem, WindowTable, Written};
use carat_store::{DynamoTable, StoreError};
use common::{fast_retry, sdk, unique};

const TABLE: &str = "carat-windows";

async fn table(deadline_ms: u64) -> DynamoTable {
    let sdk = sdk().await;
    DynamoTable::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        TABLE,
        ServiceLimits::default(),
        fast_retry(deadline_ms),
    )
}

fn items(pk: &str, n: i64, body: usize) -> Vec<WindowItem> {
    (0..n)
        .map(|i| WindowItem {
            pk: pk.to_string(),
            sk: i * 86_400,
            version: 1,
            body: (0..body)
                .map(|b| u8::try_from((b + usize::try_from(i).unwrap()) % 251).unwrap())
                .collect(),
            count: u32::try_from(i).unwrap() + 1,
            expires_at: 2_000_000_000 + i,
            parts: 1,
            hash: vec![u8::try_from(i % 256).unwrap(); 16],
        })
        .collect()
}

fn pk() -> String {
    format!("{}#cpu#raw", unique("t"))
}

/// Wraps the real sender: records the size of every call, and for the first
/// `partial_calls` calls sends only the first half of the batch, reporting the rest
/// unprocessed (what DynamoDB does under throttling), and fails `throttled_calls`
/// calls outright before that.
struct Flaky {
    inner: SdkBatchSend,
    throttled_calls: AtomicUsize,
    partial_calls: AtomicUsize,
    sizes: std::sync::Mutex<Vec<usize>>,
}

#[async_trait]
impl BatchSend for Flaky {
    async fn send(
        &self,
        table: &str,
        requests: &[WriteRequest],
    ) -> Result<Vec<WriteRequest>, StoreError> {
        self.sizes.lock().unwrap().push(requests.len());
        assert!(requests.len() <= 25, "a batch of {} items", requests.len());
        if self
            .throttled_calls
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::retryable(
                "dynamodb",
                "put",
                "ProvisionedThroughputExceededException (injected)",
            ));
        }
        if self
            .partial_calls
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            let half = requests.len().div_ceil(2);
            let mut unprocessed = self.inner.send(table, &requests[..half]).await?;
            unprocessed.extend_from_slice(&requests[half..]);
            return Ok(unprocessed);
        }
        self.inner.send(table, requests).await
    }
}

async fn flaky(throttled: usize, partial: usize) -> Arc<Flaky> {
    let sdk = sdk().await;
    Arc::new(Flaky {
        inner: SdkBatchSend::new(aws_sdk_dynamodb::Client::new(&sdk)),
        throttled_calls: AtomicUsize::new(throttled),
        partial_calls: AtomicUsize::new(partial),
        sizes: std::sync::Mutex::new(Vec::new()),
    })
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn a_batch_over_the_limit_is_split_and_fully_written() {
    let spy = flaky(0, 0).await;
    let t = table(10_000).await.with_batch_send(spy.clone());
    let pk = pk();
    let written = items(&pk, 60, 300);
    t.put(&written).await.unwrap();
    let mut sizes = spy.sizes.lock().unwrap().clone();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![10, 25, 25]);
    let read = t.query(&pk, 0, 59 * 86_400).await.unwrap();
    assert_eq!(read, written);
    assert_eq!(
        t.get(&pk, 86_400).await.unwrap().as_ref(),
        Some(&written[1])
    );
    assert_eq!(t.get(&pk, 1).await.unwrap(), None);
    assert_eq!(
        t.query(&pk, 86_400, 2 * 86_400).await.unwrap(),
        written[1..=2].to_vec()
    );
    assert_eq!(t.query(&pk, 10, 5).await.unwrap(), vec![]);
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn query_pages_through_large_results() {
    let t = table(10_000).await;
    let pk = pk();
    // 40 items of 100 KB: 4 MB, over Query's 1 MB page.
    let written = items(&pk, 40, 100_000);
    t.put(&written).await.unwrap();
    let read = t.query(&pk, i64::MIN, i64::MAX).await.unwrap();
    assert_eq!(read.len(), 40);
    assert_eq!(read, written);
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn injected_partial_failures_and_throttling_are_retried_until_written() {
    let spy = flaky(2, 5).await;
    let t = table(10_000).await.with_batch_send(spy.clone());
    let pk = pk();
    let written = items(&pk, 60, 200);
    t.put(&written).await.unwrap();
    assert_eq!(t.query(&pk, 0, i64::MAX).await.unwrap(), written);
    let calls = spy.sizes.lock().unwrap().len();
    // 3 batches, plus 2 throttled calls, plus a retry for every partial one.
    assert!(calls >= 3 + 2 + 5, "{calls} calls");
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn duplicate_keys_in_one_put_keep_the_last_write() {
    let t = table(10_000).await;
    let pk = pk();
    let mut batch = items(&pk, 3, 10);
    let mut newer = batch[0].clone();
    newer.body = vec![42];
    newer.count = 99;
    batch.push(newer.clone());
    t.put(&batch).await.unwrap();
    assert_eq!(t.get(&pk, 0).await.unwrap(), Some(newer));
    assert_eq!(t.query(&pk, 0, i64::MAX).await.unwrap().len(), 3);
}

/// DynamoDB that never processes anything.
struct Stuck;

#[async_trait]
impl BatchSend for Stuck {
    async fn send(
        &self,
        _: &str,
        requests: &[WriteRequest],
    ) -> Result<Vec<WriteRequest>, StoreError> {
        Ok(requests.to_vec())
    }
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn an_expired_deadline_is_retryable_and_oversize_items_are_fatal() {
    // Everything stays unprocessed: the deadline (300 ms) runs out.
    let t = table(300).await.with_batch_send(Arc::new(Stuck));
    let pk = pk();
    let started = Instant::now();
    let e = t.put(&items(&pk, 30, 10)).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("unprocessed"), "{e}");
    let took = started.elapsed().as_millis();
    assert!((300..2_000).contains(&took), "{took} ms");

    let t = table(300).await;
    let mut big = items(&pk, 2, 10);
    big[1].body = vec![0; 401 * 1024];
    let e = t.put(&big).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains(&format!("sk={}", big[1].sk)), "{e}");
    // Refused before anything was sent: nothing half-written.
    assert_eq!(t.get(&pk, 0).await.unwrap(), None);
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn health_describes_the_table_and_a_missing_table_is_fatal() {
    let t = table(1_000).await;
    let h = t.health().await.unwrap();
    assert_eq!(h.status, "ACTIVE");
    let sdk = sdk().await;
    let missing = DynamoTable::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        unique("no-such-table"),
        ServiceLimits::default(),
        fast_retry(1_000),
    );
    let e = missing.health().await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(missing.get("x", 0).await.is_err());
}

fn part(pk: &str, sk: i64, parts: u32, hash: u8, body: Vec<u8>) -> WindowItem {
    WindowItem {
        pk: pk.to_string(),
        sk,
        version: 2,
        body,
        count: 7,
        expires_at: 2_000_000_000,
        parts,
        hash: vec![hash; 16],
    }
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn window_writes_are_conditional_on_the_stored_hash() {
    let t = table(5_000).await;
    let pk = pk();
    let start = 86_400;
    assert!(t.read_window(&pk, start).await.unwrap().is_empty());
    // Nothing stored: only a write that expects nothing succeeds.
    let v1 = part(&pk, start, 1, 1, vec![1; 10]);
    assert_eq!(
        t.write_window(std::slice::from_ref(&v1), Some(&[9; 16]), &[])
            .await
            .unwrap(),
        Written::Conflict
    );
    assert_eq!(
        t.write_window(std::slice::from_ref(&v1), None, &[])
            .await
            .unwrap(),
        Written::Stored
    );
    assert_eq!(
        t.write_window(std::slice::from_ref(&v1), None, &[])
            .await
            .unwrap(),
        Written::Conflict
    );
    assert_eq!(t.read_window(&pk, start).await.unwrap(), vec![v1.clone()]);
    // Replacing needs the stored hash; a stale one changes nothing.
    let v2 = part(&pk, start, 1, 2, vec![2; 10]);
    assert_eq!(
        t.write_window(std::slice::from_ref(&v2), Some(&[7; 16]), &[])
            .await
            .unwrap(),
        Written::Conflict
    );
    assert_eq!(
        t.write_window(std::slice::from_ref(&v2), Some(&v1.hash), &[])
            .await
            .unwrap(),
        Written::Stored
    );
    assert_eq!(t.read_window(&pk, start).await.unwrap(), vec![v2.clone()]);
    // Three parts in one transaction, then back to one part deleting the stale two.
    let big: Vec<WindowItem> = (0..3)
        .map(|i| {
            part(
                &pk,
                start + i,
                3,
                3,
                vec![u8::try_from(i).unwrap(); 300_000],
            )
        })
        .collect();
    assert_eq!(
        t.write_window(&big, Some(&[7; 16]), &[]).await.unwrap(),
        Written::Conflict,
        "a failed transaction writes no part"
    );
    assert_eq!(t.read_window(&pk, start).await.unwrap(), vec![v2.clone()]);
    assert_eq!(
        t.write_window(&big, Some(&v2.hash), &[]).await.unwrap(),
        Written::Stored
    );
    assert_eq!(t.read_window(&pk, start).await.unwrap(), big);
    let v4 = part(&pk, start, 1, 4, vec![4; 10]);
    assert_eq!(
        t.write_window(
            std::slice::from_ref(&v4),
            Some(&big[0].hash),
            &[start + 1, start + 2]
        )
        .await
        .unwrap(),
        Written::Stored
    );
    assert_eq!(t.read_window(&pk, start).await.unwrap(), vec![v4]);
    // The next window's items are not part of this one.
    let next = part(&pk, start + 86_400, 1, 5, vec![5]);
    t.write_window(&[next], None, &[]).await.unwrap();
    assert_eq!(t.read_window(&pk, start).await.unwrap().len(), 1);
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn an_oversize_part_is_refused_before_sending() {
    let t = table(1_000).await;
    let pk = pk();
    let e = t
        .write_window(&[part(&pk, 0, 1, 1, vec![0; 420 * 1024])], None, &[])
        .await
        .unwrap_err();
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("item limit"), "{e}");
}
