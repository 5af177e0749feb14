//! The archiver end to end against the AWS stand-in's S3 (`carat-archive` bucket, a
//! tenant of its own): stream batch ⇒ staged object ⇒ read ⇒ compaction (conditional
//! put, batched delete) ⇒ read with suffix and If-Match range reads.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use carat_archiver::compact::{compact_day, compact_month};
use carat_archiver::keys::month_of;
use carat_archiver::{ArchiveReader, Archiver};
use carat_store::ports::Archive;
use carat_store::S3Archive;
use common::*;

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn archive_compact_and_read_through_s3() {
    let cfg = config(3_600);
    let sdk = carat_store::connect::aws_config(&cfg.retry).await;
    let s3: Arc<dyn Archive> = Arc::new(S3Archive::new(
        carat_store::connect::s3_client(&sdk),
        cfg.resources.archive_bucket.clone(),
    ));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let tenant = format!("t{nanos}");
    let k = key(&tenant, "host.h1.cpu");
    let a = Archiver::new(Arc::clone(&s3), Arc::new(cfg.clone())).with_emf(false);
    let first = items(
        &cfg,
        &k,
        DAY0,
        &[st(DAY0, 1.5, 1), st(DAY0 + 60, 2.5, 1)],
        2,
    );
    let second = items(&cfg, &k, DAY0 + 3_600, &[st(DAY0 + 3_600, 3.0, 1)], 1);
    let r = a.archive_batch(&event(&first, 1)).await.unwrap();
    assert_eq!((r.archived_items, r.staged_objects), (2, 1));
    a.archive_batch(&event(&second, 3)).await.unwrap();
    // Replayed: same key, same bytes.
    let again = a.archive_batch(&event(&first, 1)).await.unwrap();
    assert_eq!(again.keys, r.keys);

    let reader = ArchiveReader::new(Arc::clone(&s3)).with_window_secs(3_600);
    let want: Vec<(i64, usize)> = vec![(DAY0, 2), (DAY0 + 3_600, 1)];
    let got = |w: Vec<carat_archiver::ArchivedWindow>| -> Vec<(i64, usize)> {
        w.iter().map(|w| (w.start, w.points.len())).collect()
    };
    assert_eq!(got(reader.raw(&k, DAY0, DAY0 + 7_199).await.unwrap()), want);

    let c = compact_day(s3.as_ref(), &k.tenant, DAY0).await.unwrap();
    assert_eq!((c.staged, c.windows, c.wrote), (2, 2, true));
    assert!(s3
        .list(&format!("stage/{tenant}/"))
        .await
        .unwrap()
        .is_empty());
    let fresh = ArchiveReader::new(Arc::clone(&s3)).with_window_secs(3_600);
    assert_eq!(got(fresh.raw(&k, DAY0, DAY0 + 7_199).await.unwrap()), want);
    // Compacted again (a straggler) while the first reader caches the old index: its
    // If-Match read notices, reads the index again, and sees the new window.
    let late = items(&cfg, &k, DAY0 + 7_200, &[st(DAY0 + 7_200, 4.0, 1)], 1);
    a.archive_batch(&event(&late, 9)).await.unwrap();
    compact_day(s3.as_ref(), &k.tenant, DAY0).await.unwrap();
    let reader = ArchiveReader::new(Arc::clone(&s3))
        .with_window_secs(3_600)
        .with_list_ttl(std::time::Duration::ZERO);
    assert_eq!(reader.raw(&k, DAY0, DAY0 + 10_799).await.unwrap().len(), 3);
    // Month rollups.
    let m = compact_month(s3.as_ref(), &k.tenant, month_of(DAY0))
        .await
        .unwrap();
    assert!(m.wrote);
    let daily = reader
        .rollups(&k, DAY0, DAY0 + 86_399, 86_400)
        .await
        .unwrap();
    assert_eq!(daily.len(), 1);
    assert_eq!((daily[0].count, daily[0].sum), (4, 11.0));
}
