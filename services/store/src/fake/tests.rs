//! Tests of the fakes: they must keep the semantics the adapters promise.

use super::log::shard_for;
use super::*;
use crate::ports::{
    cmp_sequence, Archive, Head, HeadAppend, Log, LogRecord, StartAt, WindowItem, WindowRef,
    WindowTable, Written,
};
use carat_core::head::{self, Stamped};
use carat_core::{SeriesKey, SeriesName, Tenant};

fn window(series: &str, start: i64) -> WindowRef {
    let key = SeriesKey::new(
        Tenant::default_tenant(),
        SeriesName::parse(series, "name").expect("valid name"),
    );
    WindowRef {
        bucket: key.bucket(16),
        key,
        start,
    }
}

fn append(w: &WindowRef, points: usize, due: i64) -> HeadAppend {
    let pts: Vec<Stamped> = (0..points as i64)
        .map(|i| Stamped {
            time: w.start + i,
            value_bits: 7,
            stamp: w.start,
        })
        .collect();
    HeadAppend {
        window: w.clone(),
        block: head::encode_block(w.start, &pts),
        flush_due: due,
        expire_at: due + 100,
    }
}

#[tokio::test]
async fn head_appends_counts_due_and_settles() {
    let head = FakeHead::new();
    let a = window("cpu", 0);
    let b = WindowRef {
        start: 60,
        ..a.clone()
    };
    let counts = head
        .append(a.bucket, &[append(&a, 2, 120), append(&b, 1, 180)])
        .await
        .unwrap();
    assert_eq!(counts, vec![2, 1]);
    let stale = head.read(&a).await.unwrap();
    let counts = head.append(a.bucket, &[append(&a, 3, 120)]).await.unwrap();
    assert_eq!(counts, vec![5]);
    let read = head.read(&a).await.unwrap();
    assert_eq!(head::decode(a.start, &read).unwrap().len(), 5);
    assert_eq!(head.due(a.bucket, 119, 10).await.unwrap(), vec![]);
    assert_eq!(
        head.due(a.bucket, 200, 10).await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(head.due(a.bucket, 200, 1).await.unwrap(), vec![a.clone()]);
    // A stale read does not settle; the current one does.
    assert!(!head.settle(&a, &stale).await.unwrap());
    assert!(head.settle(&a, &read).await.unwrap());
    assert_eq!(head.due(a.bucket, 200, 10).await.unwrap(), vec![b.clone()]);
    head.expire(280);
    assert!(head.read(&b).await.unwrap().is_empty());
}

#[tokio::test]
async fn head_keeps_the_earliest_due_time() {
    let head = FakeHead::new();
    let a = window("cpu", 0);
    head.append(a.bucket, &[append(&a, 1, 50)]).await.unwrap();
    head.append(a.bucket, &[append(&a, 1, 500)]).await.unwrap();
    assert_eq!(head.dirty(a.bucket), vec![(a.clone(), 50)]);
    head.append(a.bucket, &[append(&a, 1, 10)]).await.unwrap();
    assert_eq!(head.dirty(a.bucket), vec![(a.clone(), 10)]);
}

#[tokio::test]
async fn head_refuses_foreign_bucket_and_torn_entries() {
    let head = FakeHead::new();
    let a = window("cpu", 0);
    let e = head
        .append(a.bucket + 1, &[append(&a, 1, 1)])
        .await
        .unwrap_err();
    assert!(!e.is_retryable());
    let mut torn = append(&a, 1, 1);
    torn.block[0] = 0x7f;
    assert!(head.append(a.bucket, &[torn]).await.is_err());
    assert!(head.windows().is_empty());
}

#[tokio::test]
async fn faults_fail_the_next_calls_then_clear() {
    let head = FakeHead::new();
    let a = window("cpu", 0);
    head.faults().fail_next_op("append", 2);
    head.faults().inject(Some("read"), 1, FaultKind::Fatal);
    assert!(head
        .append(a.bucket, &[append(&a, 1, 1)])
        .await
        .unwrap_err()
        .is_retryable());
    assert!(head.read(&a).await.is_err_and(|e| !e.is_retryable()));
    assert!(head.append(a.bucket, &[append(&a, 1, 1)]).await.is_err());
    assert_eq!(
        head.append(a.bucket, &[append(&a, 1, 1)]).await.unwrap(),
        vec![1]
    );
    assert_eq!(head.faults().calls("append"), 3);
}

fn item(pk: &str, sk: i64, body: u8) -> WindowItem {
    WindowItem {
        pk: pk.to_string(),
        sk,
        version: 1,
        body: vec![body],
        count: 1,
        expires_at: 99,
        parts: 1,
        hash: Vec::new(),
    }
}

#[tokio::test]
async fn table_last_put_wins_and_queries_ranges() {
    let t = FakeTable::new();
    t.put(&[
        item("a", 0, 1),
        item("a", 60, 2),
        item("b", 0, 3),
        item("a", 0, 4),
    ])
    .await
    .unwrap();
    assert_eq!(t.get("a", 0).await.unwrap().unwrap().body, vec![4]);
    assert_eq!(t.get("a", 1).await.unwrap(), None);
    let q = t.query("a", 0, 60).await.unwrap();
    assert_eq!(q.iter().map(|i| i.sk).collect::<Vec<_>>(), vec![0, 60]);
    assert_eq!(t.query("a", 1, 59).await.unwrap(), vec![]);
    assert_eq!(t.query("a", 60, 0).await.unwrap(), vec![]);
}

#[tokio::test]
async fn table_partial_fault_writes_a_prefix() {
    let t = FakeTable::new();
    t.faults()
        .inject(Some("put"), 1, FaultKind::PartialThenRetryable(1));
    let e = t
        .put(&[item("a", 0, 1), item("a", 60, 2)])
        .await
        .unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(t.items().len(), 1);
    t.put(&[item("a", 0, 1), item("a", 60, 2)]).await.unwrap();
    assert_eq!(t.items().len(), 2);
}

#[tokio::test]
async fn archive_lists_by_prefix() {
    let s = FakeArchive::new();
    for k in ["x/1", "x/2", "y/1", "x"] {
        s.put(k, k.as_bytes().to_vec()).await.unwrap();
    }
    assert_eq!(s.list("x/").await.unwrap(), vec!["x/1", "x/2"]);
    assert_eq!(s.get("y/1").await.unwrap(), Some(b"y/1".to_vec()));
    assert_eq!(s.get("z").await.unwrap(), None);
}

#[tokio::test]
async fn log_keeps_key_order_and_reads_from_every_start() {
    let log = FakeLog::new(4);
    log.set_now_ms(1_000);
    let recs: Vec<_> = (0..30)
        .map(|i| LogRecord {
            partition_key: format!("b{}", i % 3),
            data: vec![i],
        })
        .collect();
    let seqs = log.put(&recs).await.unwrap();
    assert_eq!(seqs.len(), 30);
    for w in seqs.windows(2) {
        assert!(cmp_sequence(&w[0], &w[1]).is_lt());
    }
    log.set_now_ms(2_000);
    log.put(&recs[..3]).await.unwrap();
    let shards = log.shards().await.unwrap();
    assert_eq!(shards.len(), 4);
    let shard = log.shard_of("b1");
    let sid = &shards[shard];
    let it = log.iterator(sid, &StartAt::TrimHorizon).await.unwrap();
    let batch = log.read(&it, 1000).await.unwrap();
    let of_b1: Vec<_> = batch
        .records
        .iter()
        .filter(|r| r.partition_key == "b1")
        .collect();
    assert_eq!(of_b1.len(), 11);
    assert!(of_b1
        .windows(2)
        .all(|w| w[0].data[0] < w[1].data[0] || w[1].arrival_ms == 2_000));
    // Empty read at the end keeps the iterator usable.
    let more = log
        .read(batch.next_iterator.as_ref().unwrap(), 10)
        .await
        .unwrap();
    assert!(more.records.is_empty());
    let at = log
        .iterator(sid, &StartAt::AtTimestamp(2_000))
        .await
        .unwrap();
    assert!(log
        .read(&at, 100)
        .await
        .unwrap()
        .records
        .iter()
        .all(|r| r.arrival_ms == 2_000));
    let first = &batch.records[0].sequence_number;
    let after = log
        .iterator(sid, &StartAt::AfterSequence(first.clone()))
        .await
        .unwrap();
    assert_eq!(
        log.read(&after, 100).await.unwrap().records.len(),
        batch.records.len() - 1
    );
    let at_seq = log
        .iterator(sid, &StartAt::AtSequence(first.clone()))
        .await
        .unwrap();
    assert_eq!(
        log.read(&at_seq, 1).await.unwrap().records[0].sequence_number,
        *first
    );
    let latest = log.iterator(sid, &StartAt::Latest).await.unwrap();
    assert!(log.read(&latest, 100).await.unwrap().records.is_empty());
}

#[tokio::test]
async fn log_iterators_expire() {
    let log = FakeLog::new(1);
    let it = log
        .iterator(&FakeLog::shard_id(0), &StartAt::Latest)
        .await
        .unwrap();
    log.expire_iterators();
    assert!(log.read(&it, 1).await.unwrap_err().is_iterator_expired());
    assert!(log
        .iterator("shardId-000000000009", &StartAt::Latest)
        .await
        .is_err());
}

#[test]
fn shards_spread_buckets() {
    let mut counts = [0usize; 4];
    for b in 0..1024 {
        counts[shard_for(&format!("b{b}"), 4)] += 1;
    }
    assert!(counts.iter().all(|&c| c > 150), "{counts:?}");
}

#[tokio::test]
async fn table_window_writes_are_conditional_and_atomic() {
    let t = FakeTable::new();
    let part = |sk: i64, parts: u32, h: u8| WindowItem {
        parts,
        hash: vec![h; 16],
        ..item("p", sk, h)
    };
    assert_eq!(
        t.write_window(&[part(0, 1, 1)], Some(&[1; 16]), &[])
            .await
            .unwrap(),
        Written::Conflict
    );
    assert_eq!(
        t.write_window(&[part(0, 1, 1)], None, &[]).await.unwrap(),
        Written::Stored
    );
    assert_eq!(
        t.write_window(&[part(0, 1, 2)], None, &[]).await.unwrap(),
        Written::Conflict
    );
    let two = [part(0, 2, 3), part(1, 2, 3)];
    assert_eq!(
        t.write_window(&two, Some(&[1; 16]), &[]).await.unwrap(),
        Written::Stored
    );
    assert_eq!(t.read_window("p", 0).await.unwrap(), two.to_vec());
    assert_eq!(
        t.write_window(&[part(0, 1, 4)], Some(&[3; 16]), &[1])
            .await
            .unwrap(),
        Written::Stored
    );
    assert_eq!(t.read_window("p", 0).await.unwrap(), vec![part(0, 1, 4)]);
}

#[tokio::test]
async fn archive_conditional_puts_and_deletes() {
    let s = FakeArchive::new();
    assert_eq!(
        s.put_if("k", b"v1".to_vec(), None).await.unwrap(),
        Written::Stored
    );
    assert_eq!(
        s.put_if("k", b"x".to_vec(), None).await.unwrap(),
        Written::Conflict
    );
    let etag = s.get_range("k", 0, 1, None).await.unwrap().unwrap().etag;
    assert_eq!(
        s.put_if("k", b"v2".to_vec(), Some(&etag)).await.unwrap(),
        Written::Stored
    );
    assert_eq!(
        s.put_if("k", b"v3".to_vec(), Some(&etag)).await.unwrap(),
        Written::Conflict
    );
    assert_eq!(s.get("k").await.unwrap(), Some(b"v2".to_vec()));
    s.put("j", vec![]).await.unwrap();
    s.delete(&["k".to_string(), "missing".to_string()])
        .await
        .unwrap();
    assert_eq!(s.list("").await.unwrap(), vec!["j".to_string()]);
}
