//! The archive's local machinery against the AWS stand-in: the TTL sweeper deletes an
//! expired window item, the table-stream poller reads the REMOVE, marks it as a TTL
//! removal and hands it to the handler; a plain DeleteItem of a live item never reaches
//! the handler.
//!
//! The table and its stream are shared with other tests: items here expire at epoch
//! second 1,000 and the sweep runs "at" second 1,000, so it deletes only items as ancient
//! as these (never another test's), and the handler keeps only this test's keys.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::DynamoDbEventResponse;
use aws_sdk_dynamodb::types::AttributeValue;
use carat_local::archive::{sweep_once, HandlerError, StreamHandler, StreamPoller};
use carat_local::serve::Shutdown;
use carat_store::ports::{
    StreamBatch, StreamShard, StreamStart, TableStream, WindowItem, WindowTable,
};
use carat_store::{DynamoStream, StoreError};
use serde_dynamo::AttributeValue as V;
use tokio::sync::watch;

/// The sweep's "now", and the ttl of the items it must delete.
const ANCIENT: i64 = 1_000;

/// Keeps the records of keys starting with `prefix`.
struct Recording {
    prefix: String,
    seen: Mutex<Vec<EventRecord>>,
}

#[async_trait]
impl StreamHandler for Recording {
    async fn handle(&self, event: &Event) -> Result<DynamoDbEventResponse, HandlerError> {
        let mut seen = self.seen.lock().unwrap();
        for r in &event.records {
            if matches!(r.change.keys.get("pk"), Some(V::S(pk)) if pk.starts_with(&self.prefix)) {
                seen.push(r.clone());
            }
        }
        Ok(DynamoDbEventResponse {
            batch_item_failures: vec![],
        })
    }
}

/// The real stream, counting the iterators it hands out (the poller is reading once
/// it has one).
struct Counted {
    inner: DynamoStream,
    iterators: AtomicUsize,
}

#[async_trait]
impl TableStream for Counted {
    async fn shards(&self) -> Result<Vec<StreamShard>, StoreError> {
        self.inner.shards().await
    }
    async fn iterator(&self, shard_id: &str, start: &StreamStart) -> Result<String, StoreError> {
        let it = self.inner.iterator(shard_id, start).await;
        self.iterators.fetch_add(1, Ordering::SeqCst);
        it
    }
    async fn read(&self, iterator: &str, limit: usize) -> Result<StreamBatch, StoreError> {
        self.inner.read(iterator, limit).await
    }
}

fn item(pk: &str, expires_at: i64) -> WindowItem {
    WindowItem {
        pk: pk.to_string(),
        sk: 0,
        version: 2,
        body: vec![7; 8],
        count: 1,
        expires_at,
        parts: 1,
        hash: vec![1; 16],
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn swept_items_reach_the_handler_as_ttl_removals_and_user_deletes_do_not() {
    let cfg = carat_local::config::load(None, |n| std::env::var(n).ok()).unwrap();
    let sdk = carat_store::connect::aws_config(&cfg.retry).await;
    let (table, _, _) = carat_store::connect::aws_adapters(&sdk, &cfg);
    let stream = Arc::new(Counted {
        inner: DynamoStream::from_sdk(&sdk, &cfg.resources.table, cfg.retry.clone()),
        iterators: AtomicUsize::new(0),
    });
    let prefix = format!(
        "archive-local-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    let handler = Arc::new(Recording {
        prefix: prefix.clone(),
        seen: Mutex::new(Vec::new()),
    });
    let mut settings = cfg.table_stream.clone();
    settings.max_batching_window_ms = 100;
    settings.idle_poll_ms = 100;
    let poller = StreamPoller {
        stream: stream.clone(),
        handler: handler.clone(),
        settings,
        // The shared stream holds every other test's records: start at its end.
        start: StreamStart::Latest,
    };
    let (stop, rx) = watch::channel(false);
    let run = tokio::spawn(async move { poller.run(Shutdown::new(rx)).await });
    wait_until("the poller's iterator", || {
        stream.iterators.load(Ordering::SeqCst) > 0
    })
    .await;

    let (expired, live, marker) = (
        format!("{prefix}-expired#cpu#raw"),
        format!("{prefix}-live#cpu#raw"),
        format!("{prefix}-marker#cpu#raw"),
    );
    let future = chrono::Utc::now().timestamp() + 3_600;
    table
        .put(&[item(&expired, ANCIENT), item(&live, future)])
        .await
        .unwrap();
    let swept = sweep_once(&table, ANCIENT, 10_000).await.unwrap();
    assert!(swept.found >= 1 && swept.deleted >= 1, "{swept:?}");
    assert_eq!(
        table.get(&expired, 0).await.unwrap(),
        None,
        "the sweeper deleted it"
    );
    // A user's (or a flush's) delete of a live item: a REMOVE with a future ttl.
    table
        .client()
        .delete_item()
        .table_name(table.table())
        .key("pk", AttributeValue::S(live.clone()))
        .key("sk", AttributeValue::N("0".into()))
        .send()
        .await
        .unwrap();
    // The marker's removal comes after the live item's in the (single-shard) stream: once
    // the handler has it, the live item's REMOVE has been read and filtered out.
    table.put(&[item(&marker, ANCIENT)]).await.unwrap();
    sweep_once(&table, ANCIENT, 10_000).await.unwrap();
    wait_until("the marker's removal", || {
        handler
            .seen
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.change.keys.get("pk") == Some(&V::S(marker.clone())))
    })
    .await;
    stop.send_replace(true);
    run.await.unwrap();

    let seen = handler.seen.lock().unwrap().clone();
    let pks: Vec<&V> = seen
        .iter()
        .filter_map(|r| r.change.keys.get("pk"))
        .collect();
    assert_eq!(
        pks,
        [&V::S(expired.clone()), &V::S(marker.clone())],
        "only the swept items"
    );
    for r in &seen {
        assert_eq!(r.event_name, "REMOVE");
        let u = r.user_identity.as_ref().unwrap();
        assert_eq!(
            (u.type_.as_str(), u.principal_id.as_str()),
            ("Service", "dynamodb.amazonaws.com")
        );
        assert_eq!(
            r.change.old_image.get("ttl"),
            Some(&V::N(ANCIENT.to_string()))
        );
        assert_eq!(r.change.old_image.get("c"), Some(&V::B(vec![7; 8])));
    }
}
