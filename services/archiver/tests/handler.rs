//! The stream handler against fixture events and the in-memory archive.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use carat_archiver::compact::{compact_day, find_due};
use carat_archiver::format::{decode_object, decode_parts, Kind};
use carat_archiver::{ArchiveReader, ArchivedWindow};
use carat_store::fake::{FakeArchive, FaultKind};
use carat_store::ports::Archive;
use common::*;

fn fixture() -> Event {
    serde_json::from_str(include_str!("fixtures/ttl-remove.json")).unwrap()
}

#[tokio::test]
async fn archives_the_ttl_removal_and_skips_the_user_removal() {
    let archive = Arc::new(FakeArchive::new());
    let a = archiver(&archive, config(86_400));
    let report = a.archive_batch(&fixture()).await.unwrap();
    assert_eq!(
        (
            report.archived_items,
            report.staged_objects,
            report.skipped_records,
            report.bad_items
        ),
        (1, 1, 1, 0)
    );
    assert!(report.first_failed.is_none());
    let objects = archive.objects();
    assert_eq!(objects.len(), 1);
    let (k, bytes) = &objects[0];
    assert!(k.starts_with("stage/default/1699920000/1702598400-"), "{k}");
    let (kind, blocks) = decode_object(bytes).unwrap();
    assert_eq!(kind, Kind::Windows);
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].0, "host.h1.loadavg5");
    let parts = decode_parts(blocks[0].1).unwrap();
    assert_eq!(
        (parts.len(), parts[0].sk, parts[0].count),
        (1, 1_699_920_000, 3)
    );

    // Readable before compaction (from the staged object) and after it, the same.
    let reader = ArchiveReader::new(archive.clone() as _);
    let key = key("default", "host.h1.loadavg5");
    let want = vec![ArchivedWindow {
        start: DAY0,
        points: (0..3)
            .map(|i| st(DAY0 + 60 * i, 0.25 * (i + 1) as f64, DAY0 + 60 * i + 1))
            .collect(),
    }];
    assert_eq!(reader.raw(&key, DAY0, DAY0 + 10).await.unwrap(), want);
    let r = compact_day(archive.as_ref(), &key.tenant, DAY0)
        .await
        .unwrap();
    assert_eq!((r.staged, r.series, r.windows, r.wrote), (1, 1, 1, true));
    let keys: Vec<String> = archive.objects().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys[1].starts_with("due/default/1698796800/1699920000-"),
        "{keys:?}"
    );
    assert!(keys.contains(&"day/default/1699920000".to_string()));
    // A fresh reader: one suffix GET for the index, one range GET for the block.
    let reader = ArchiveReader::new(archive.clone() as _);
    let before = archive.faults().calls("get_range") + archive.faults().calls("get");
    assert_eq!(reader.raw(&key, DAY0, DAY0 + 10).await.unwrap(), want);
    let after = archive.faults().calls("get_range") + archive.faults().calls("get");
    assert_eq!(after - before, 2);
    // With the index cached: one GET.
    assert_eq!(reader.raw(&key, DAY0, DAY0 + 10).await.unwrap(), want);
    assert_eq!(
        archive.faults().calls("get_range") + archive.faults().calls("get") - after,
        1
    );
}

#[tokio::test]
async fn a_replayed_batch_leaves_the_same_objects() {
    let archive = Arc::new(FakeArchive::new());
    let cfg = config(60);
    let a = archiver(&archive, cfg.clone());
    let mut all = Vec::new();
    for s in 0..50 {
        let k = key("acme", &format!("host.h{s}.cpu"));
        for w in 0..4 {
            let start = DAY0 + 60 * w;
            all.extend(items(
                &cfg,
                &k,
                start,
                &[st(start, s as f64, 7)],
                1 + (w as usize % 2),
            ));
        }
    }
    let e = event(&all, 1);
    let first = a.archive_batch(&e).await.unwrap();
    let snapshot = archive.objects();
    let again = a.archive_batch(&e).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(archive.objects(), snapshot);
    // 300 items of one tenant-day: one PUT per batch.
    assert_eq!(first.archived_items, 300);
    assert_eq!(archive.faults().calls("put"), 2);
}

#[tokio::test]
async fn bad_images_are_counted_not_retried() {
    let archive = Arc::new(FakeArchive::new());
    let a = archiver(&archive, config(86_400));
    let mut e = fixture();
    e.records[0].change.old_image.remove("c");
    let mut corrupt = fixture().records.remove(0);
    corrupt
        .change
        .old_image
        .insert("c".into(), serde_dynamo::AttributeValue::B(vec![2, 0xff]));
    e.records.push(corrupt);
    let r = a.archive_batch(&e).await.unwrap();
    assert_eq!(
        (r.bad_items, r.skipped_records, r.archived_items),
        (2, 1, 0)
    );
    assert!(r.first_failed.is_none());
    assert!(archive.objects().is_empty());
}

#[tokio::test]
async fn a_failed_put_resumes_the_batch_at_its_group() {
    let archive = Arc::new(FakeArchive::new());
    let cfg = config(60);
    let a = archiver(&archive, cfg.clone());
    // Two tenant-days: day 0 (records 1, 2), day 1 (record 3).
    let k = key("default", "a.b");
    let mut all = items(&cfg, &k, DAY0, &[st(DAY0, 1.0, 1)], 1);
    all.extend(items(&cfg, &k, DAY0 + 60, &[st(DAY0 + 60, 1.0, 1)], 1));
    all.extend(items(
        &cfg,
        &k,
        DAY0 + 86_400,
        &[st(DAY0 + 86_400, 1.0, 1)],
        1,
    ));
    let e = event(&all, 1);
    archive.faults().fail_next_op("put", 1);
    let resp = a.handle(&e).await.unwrap();
    assert_eq!(resp.batch_item_failures.len(), 1);
    let failed = resp.batch_item_failures[0].item_identifier.clone().unwrap();
    // Both groups' first records are candidates; whichever failed, it is one of them.
    assert!(
        failed == format!("{:028}", 1) || failed == format!("{:028}", 3),
        "{failed}"
    );
    // A fatal failure fails the invocation.
    archive.faults().inject(Some("put"), 1, FaultKind::Fatal);
    assert!(!a.handle(&e).await.unwrap_err().is_retryable());
    // And the retry stores everything.
    assert!(a.handle(&e).await.unwrap().batch_item_failures.is_empty());
    let due = find_due(archive.as_ref(), DAY0 + 90_000 + 3_600, 0)
        .await
        .unwrap();
    assert_eq!(due.days.len(), 2);
    assert!(due.months.is_empty());
    assert_eq!(
        ArchiveReader::new(archive.clone() as _)
            .raw(&k, DAY0, DAY0 + 86_400)
            .await
            .unwrap()
            .len(),
        3
    );
    // The archive is untouched by the port's list of a missing prefix.
    assert!(archive.list("day/").await.unwrap().is_empty());
}

/// The reader's and the compaction's futures are `Send` (axum handlers, `tokio::spawn`).
#[test]
fn futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let archive: Arc<dyn Archive> = Arc::new(FakeArchive::new());
    let reader = ArchiveReader::new(Arc::clone(&archive));
    let k = key("default", "a.b");
    send(&reader.raw(&k, 0, 1));
    send(&reader.rollups(&k, 0, 1, 3_600));
    send(&compact_day(archive.as_ref(), &k.tenant, 0));
    send(&carat_archiver::compact::compact_month(
        archive.as_ref(),
        &k.tenant,
        0,
    ));
    let a = archiver(&Arc::new(FakeArchive::new()), config(60));
    let e = fixture();
    send(&a.handle(&e));
}

#[tokio::test]
async fn a_fresh_read_sees_what_was_archived_after_the_listing_was_cached() {
    let archive = Arc::new(FakeArchive::new());
    let reader = ArchiveReader::new(archive.clone() as _);
    let key = key("default", "host.h1.loadavg5");
    // Cached: an archive without the window (it was still in DynamoDB).
    assert!(reader.raw(&key, DAY0, DAY0 + 10).await.unwrap().is_empty());
    // DynamoDB deletes it, the archiver stages it.
    archiver(&archive, config(86_400))
        .archive_batch(&fixture())
        .await
        .unwrap();
    // The cached listing (30 s) does not know it; a fresh read does, once its listing is
    // older than FRESH_LISTING.
    assert!(reader.raw(&key, DAY0, DAY0 + 10).await.unwrap().is_empty());
    tokio::time::sleep(carat_archiver::read::FRESH_LISTING).await;
    let fresh = reader.raw_fresh(&key, DAY0, DAY0 + 10).await.unwrap();
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0].start, DAY0);
    // And the cache now holds the new listing.
    assert_eq!(reader.raw(&key, DAY0, DAY0 + 10).await.unwrap(), fresh);
}
