//! The DynamoDB series catalog against the AWS stand-in (moto on 127.0.0.1:4566), in
//! the table the init script creates (`carat-catalog`), each test in a tenant of its
//! own; and the head's catalog markers against the local Redis cluster.
#![allow(clippy::unwrap_used)]

mod common;

use carat_core::catalog::day_of;
use carat_core::config::RedisConfig;
use carat_core::SeriesName;
use carat_store::ports::{Catalog, CatalogEntry, Head};
use carat_store::redis_head::{bucket_slot, catalog_key};
use carat_store::{DynamoCatalog, RedisHead};
use common::{fast_retry, now_secs, sdk, series_key, tenant};

const TABLE: &str = "carat-catalog";

async fn catalog() -> DynamoCatalog {
    DynamoCatalog::new(
        aws_sdk_dynamodb::Client::new(&sdk().await),
        TABLE,
        fast_retry(5_000),
    )
}

fn entry(name: &str, labels: &[(&str, &str)], day: i64) -> CatalogEntry {
    CatalogEntry {
        series: SeriesName::parse(name, "name").unwrap(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
        day,
    }
}

fn names(entries: &[CatalogEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.series.as_str()).collect()
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn record_upserts_keep_labels_and_list_by_group_and_prefix() {
    let c = catalog().await;
    let t = tenant();
    let labels = [
        ("__name__", "http_requests_total"),
        ("empty", ""),
        ("job", "api"),
        ("le", "0.5"),
        ("path", "/a/b"),
    ];
    c.record(
        &t,
        &[
            entry("host.h1.cpu.user", &[], 86_400),
            entry("host.h1.memory.used", &[], 86_400),
            entry("host.h10.cpu.user", &[], 86_400),
            entry("service.web.latency.p99", &[], 86_400),
            entry(
                "http_requests_total.job.api.le.0.5.path._a_b",
                &labels,
                86_400,
            ),
            entry("up", &[], 86_400),
        ],
    )
    .await
    .unwrap();
    // The same series again without labels, a day later: the day moves, labels stay.
    c.record(
        &t,
        &[entry(
            "http_requests_total.job.api.le.0.5.path._a_b",
            &[],
            172_800,
        )],
    )
    .await
    .unwrap();

    let got = c.series(&t, "http_requests_total", "", 10).await.unwrap();
    assert_eq!(
        got,
        vec![entry(
            "http_requests_total.job.api.le.0.5.path._a_b",
            &labels,
            172_800
        )]
    );
    assert_eq!(
        names(&c.series(&t, "host.h1", "", 10).await.unwrap()),
        ["host.h1.cpu.user", "host.h1.memory.used"]
    );
    assert_eq!(
        names(&c.series(&t, "host.h1", "host.h1.mem", 10).await.unwrap()),
        ["host.h1.memory.used"]
    );
    assert!(c.series(&t, "host.h2", "", 10).await.unwrap().is_empty());
    assert_eq!(
        c.groups(&t, "", 100).await.unwrap(),
        [
            "host.h1",
            "host.h10",
            "http_requests_total",
            "service.web",
            "up"
        ]
    );
    assert_eq!(
        c.groups(&t, "host.", 100).await.unwrap(),
        ["host.h1", "host.h10"]
    );
    assert_eq!(c.groups(&t, "", 2).await.unwrap(), ["host.h1", "host.h10"]);
    // Another tenant sees nothing of it.
    assert!(c.groups(&tenant(), "", 100).await.unwrap().is_empty());
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn listing_a_large_group_pages_through_to_the_limit() {
    let c = catalog().await;
    let t = tenant();
    let entries: Vec<CatalogEntry> = (0..1_205)
        .map(|i| entry(&format!("host.big.m{i:05}"), &[], 0))
        .collect();
    c.record(&t, &entries).await.unwrap();
    let all = c.series(&t, "host.big", "", usize::MAX).await.unwrap();
    assert_eq!(
        all.len(),
        1_205,
        "more than one page (1,000 items) comes back"
    );
    assert_eq!(all[1_204].series.as_str(), "host.big.m01204");
    let some = c.series(&t, "host.big", "host.big.m011", 5).await.unwrap();
    assert_eq!(
        names(&some),
        [
            "host.big.m01100",
            "host.big.m01101",
            "host.big.m01102",
            "host.big.m01103",
            "host.big.m01104"
        ]
    );
    assert_eq!(c.groups(&t, "", 10).await.unwrap(), ["host.big"]);
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn a_missing_table_is_fatal_and_health_names_the_table() {
    let c = catalog().await;
    let h = c.health().await.unwrap();
    assert_eq!((h.table.as_str(), h.status.as_str()), (TABLE, "ACTIVE"));
    let missing = DynamoCatalog::new(
        aws_sdk_dynamodb::Client::new(&sdk().await),
        "carat-no-such-catalog",
        fast_retry(2_000),
    );
    let e = missing
        .record(&tenant(), &[entry("x", &[], 0)])
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(
        std::error::Error::source(&e).is_some(),
        "keeps the SDK error"
    );
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn head_markers_say_which_series_are_new_today() {
    let head = RedisHead::connect(&RedisConfig::default()).await.unwrap();
    let t = tenant();
    let bucket = 1_500_000_000 + u32::try_from(now_secs() % 1_000_000).unwrap();
    let day = day_of(now_secs());
    let a = series_key(&t, "host.h1.cpu");
    let b = series_key(&t, "host.h1.mem");
    assert_eq!(
        head.catalog_unmarked(bucket, day, &[a.clone(), b.clone()])
            .await
            .unwrap(),
        [true, true]
    );
    head.catalog_mark(bucket, day, std::slice::from_ref(&a), now_secs() + 60)
        .await
        .unwrap();
    assert_eq!(
        head.catalog_unmarked(bucket, day, &[a.clone(), b.clone()])
            .await
            .unwrap(),
        [false, true]
    );
    // Another day has markers of its own.
    assert_eq!(
        head.catalog_unmarked(bucket, day + 86_400, std::slice::from_ref(&a))
            .await
            .unwrap(),
        [true]
    );
    // The marker set lives in the bucket's slot.
    assert_eq!(
        head.keyslot(&catalog_key(bucket, day)).await.unwrap(),
        bucket_slot(bucket)
    );
}
