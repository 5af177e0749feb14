//! The window table's DynamoDB stream and the TTL sweeper's table calls against the AWS
//! stand-in (moto on 127.0.0.1:4566), on the table the init script creates
//! (`carat-windows`, stream NEW_AND_OLD_IMAGES) with partition keys of their own. The
//! stream is shared with every other test: each test reads from LATEST (taken before it
//! writes) and looks only at its own keys.
#![allow(clippy::unwrap_used)]

mod common;

use aws_lambda_events::event::dynamodb::EventRecord;
use carat_core::config::ServiceLimits;
use carat_store::ports::{StreamStart, TableStream, WindowItem, WindowTable};
use carat_store::{DynamoStream, DynamoTable};
use common::{fast_retry, now_secs, sdk, unique};
use serde_dynamo::AttributeValue as V;

const TABLE: &str = "carat-windows";

async fn table() -> DynamoTable {
    DynamoTable::new(
        aws_sdk_dynamodb::Client::new(&sdk().await),
        TABLE,
        ServiceLimits::default(),
        fast_retry(5_000),
    )
}

async fn stream() -> DynamoStream {
    DynamoStream::from_sdk(&sdk().await, TABLE, fast_retry(5_000))
}

fn item(pk: &str, sk: i64, expires_at: i64) -> WindowItem {
    WindowItem {
        pk: pk.to_string(),
        sk,
        version: 2,
        body: vec![1, 2, 3, 4],
        count: 4,
        expires_at,
        parts: 1,
        hash: vec![9; 16],
    }
}

/// An iterator at the current end of every shard.
async fn latest(s: &DynamoStream) -> Vec<String> {
    let mut its = Vec::new();
    for shard in s.shards().await.unwrap() {
        if !shard.closed {
            its.push(
                s.iterator(&shard.shard_id, &StreamStart::Latest)
                    .await
                    .unwrap(),
            );
        }
    }
    assert!(!its.is_empty(), "the table's stream has an open shard");
    its
}

/// Reads from `iterators` until `want` records of `pk` arrived (or 10 s passed).
async fn records_of(
    s: &DynamoStream,
    mut iterators: Vec<String>,
    pk: &str,
    want: usize,
) -> Vec<EventRecord> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while got.len() < want && tokio::time::Instant::now() < deadline {
        let mut next = Vec::new();
        for it in iterators {
            let batch = s.read(&it, 1_000).await.unwrap();
            got.extend(
                batch
                    .records
                    .into_iter()
                    .filter(|r| r.change.keys.get("pk") == Some(&V::S(pk.to_string()))),
            );
            next.extend(batch.next_iterator);
        }
        iterators = next;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    got
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn an_expired_item_swept_reaches_the_stream_as_a_remove_with_its_old_image() {
    let (t, s) = (table().await, stream().await);
    let its = latest(&s).await;
    let pk = format!("{}#cpu#raw", unique("stream"));
    let now = now_secs();
    t.put(&[item(&pk, 0, now - 5)]).await.unwrap();

    // The sweeper's two calls, kept to this test's own key: other tests' expired items
    // in the shared table are theirs to keep.
    let expired = t.expired(now, 100_000).await.unwrap();
    let mine: Vec<_> = expired.iter().filter(|e| e.pk == pk).collect();
    assert_eq!(mine.len(), 1, "{expired:?}");
    assert_eq!((mine[0].sk, mine[0].expires_at), (0, now - 5));
    assert!(t.delete_expired(&pk, 0, now).await.unwrap());
    assert_eq!(t.get(&pk, 0).await.unwrap(), None);

    let recs = records_of(&s, its, &pk, 2).await;
    let names: Vec<&str> = recs.iter().map(|r| r.event_name.as_str()).collect();
    assert_eq!(names, ["INSERT", "REMOVE"]);
    let remove = &recs[1];
    let c = &remove.change;
    assert_eq!(c.old_image.get("ttl"), Some(&V::N((now - 5).to_string())));
    assert_eq!(c.old_image.get("c"), Some(&V::B(vec![1, 2, 3, 4])));
    assert!(c.new_image.is_empty());
    assert_eq!(c.keys.get("sk"), Some(&V::N("0".into())));
    // The stand-in's REMOVE carries no userIdentity: carat-local marks TTL removals itself.
    assert_eq!(remove.user_identity, None);
    assert!(!remove.event_id.is_empty());
    assert!(remove
        .event_source_arn
        .as_deref()
        .is_some_and(|a| a.contains(TABLE)));
    let created = c.approximate_creation_date_time.timestamp();
    assert!(
        (now - 60..=now + 60).contains(&created),
        "{created} vs {now}"
    );
    // Sequence numbers grow; reading after the INSERT's gives the REMOVE first.
    let (s1, s2) = (
        recs[0].change.sequence_number.clone().unwrap(),
        c.sequence_number.clone().unwrap(),
    );
    assert_eq!(
        carat_store::ports::cmp_sequence(&s1, &s2),
        std::cmp::Ordering::Less
    );
    let shard = s
        .shards()
        .await
        .unwrap()
        .into_iter()
        .find(|x| !x.closed)
        .unwrap();
    let it = s
        .iterator(&shard.shard_id, &StreamStart::AfterSequence(s1))
        .await
        .unwrap();
    let after = records_of(&s, vec![it], &pk, 1).await;
    assert_eq!(after.first().map(|r| r.event_name.as_str()), Some("REMOVE"));
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn an_item_rewritten_with_a_later_ttl_is_not_deleted_and_live_items_are_not_found() {
    let t = table().await;
    let pk = format!("{}#cpu#raw", unique("sweep"));
    let now = now_secs();
    t.put(&[item(&pk, 0, now - 5), item(&pk, 86_400, now + 3_600)])
        .await
        .unwrap();
    let found: Vec<_> = t
        .expired(now, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.pk == pk)
        .collect();
    assert_eq!(found.len(), 1, "only the expired item: {found:?}");
    assert_eq!(found[0].sk, 0);
    // A flush re-writes the window between the scan and the delete: its ttl moves on.
    t.put(&[item(&pk, 0, now + 3_600)]).await.unwrap();
    assert!(!t.delete_expired(&pk, 0, now).await.unwrap());
    assert_eq!(
        t.get(&pk, 0).await.unwrap().map(|i| i.expires_at),
        Some(now + 3_600)
    );
    // Nor is a live item deleted, nor a missing one an error.
    assert!(!t.delete_expired(&pk, 86_400, now).await.unwrap());
    assert!(t.get(&pk, 86_400).await.unwrap().is_some());
    assert!(!t.delete_expired(&pk, 7, now).await.unwrap());
    // A small limit bounds what one run finds.
    let pk2 = format!("{}#cpu#raw", unique("sweep"));
    t.put(&[
        item(&pk2, 0, now - 5),
        item(&pk2, 10, now - 5),
        item(&pk2, 20, now - 5),
    ])
    .await
    .unwrap();
    assert!(t.expired(now, 2).await.unwrap().len() <= 2);
    for sk in [0, 10, 20] {
        assert!(t.delete_expired(&pk2, sk, now).await.unwrap());
    }
    assert!(t.delete_expired(&pk, 0, now + 3_600).await.unwrap());
    assert!(t.delete_expired(&pk, 86_400, now + 3_600).await.unwrap());
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn a_table_without_a_stream_is_a_fatal_error() {
    let s = DynamoStream::from_sdk(&sdk().await, "carat-no-such-table", fast_retry(2_000));
    let e = s.shards().await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
}
