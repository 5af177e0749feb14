//! Issue 8 on the local system: flushes merge with what DynamoDB stores (finding 1: a lost
//! head key and a late point keep all 51 points), remote_write values stay bit-exact
//! through Kinesis, the head and the table, and the head's appends wait for a replica.
//! Windows are 60 s with 1 s grace and points go into a closed window, so nothing sleeps
//! longer than a poll.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use carat_core::config::RedisConfig;
use carat_core::head::{self, Stamped};
use carat_core::{window, Point, Tenant};
use carat_store::head_keys::{dirty_key, head_key};
use carat_store::ports::{Head, HeadAppend, WindowRef};
use carat_store::RedisHead;
use common::{
    init_tracing, json, native, now_ms, point_bits, post, remote_write, run_id, send, test_config,
    wait_stored, window_ref, System,
};

const RAW_SECS: i64 = 60;

fn config(run: &str) -> carat_core::Config {
    let mut cfg = test_config(run, RAW_SECS);
    cfg.ingest.max_lateness_secs = 300;
    cfg.validate().unwrap();
    cfg
}

/// The start of a window that closed a minute ago or more.
fn closed_window() -> i64 {
    window::start(RAW_SECS, now_ms() / 1000) - 2 * RAW_SECS
}

async fn redis() -> redis::cluster_async::ClusterConnection {
    redis::cluster::ClusterClient::new(RedisConfig::default().nodes)
        .unwrap()
        .get_async_connection()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local system (make test starts it)"]
async fn a_late_point_after_the_head_key_was_lost_keeps_all_51_points() {
    init_tracing();
    let run = run_id();
    let sys = System::start(config(&run)).await;
    let tenant = Tenant::parse(&format!("f1{run}")).unwrap();
    let api = sys.api(&tenant);
    let series = format!("finding1.s{run}");
    let start = closed_window();
    let table = sys.state.clients.table.as_ref();
    let w = window_ref(&sys.cfg, &tenant, &series, start);

    let mut points: Vec<Point> = (0..50)
        .map(|i| Point::new(start + i, 0.25 + 1.5 * i as f64))
        .collect();
    post(&api, json("/api/v1/points", &native(&series, &points))).await;
    let (got, _) = wait_stored(table, &w, &point_bits(&points), Duration::from_secs(40)).await;
    assert_eq!(
        got,
        point_bits(&points),
        "the first flush stores the 50 points"
    );

    let deleted: i64 = redis::cmd("DEL")
        .arg(head_key(&w))
        .query_async(&mut redis().await)
        .await
        .unwrap();
    assert_eq!(deleted, 1, "the head still held the window, and lost it");

    let late = Point::new(start + 55, -42.125);
    post(&api, json("/api/v1/points", &native(&series, &[late]))).await;
    points.push(late);
    let (got, _) = wait_stored(table, &w, &point_bits(&points), Duration::from_secs(40)).await;
    assert_eq!(
        got,
        point_bits(&points),
        "after the late point's flush the item holds all 51 points"
    );
    eprintln!(
        "finding 1: {} points stored after head loss + late point",
        got.len()
    );
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local system (make test starts it)"]
async fn remote_write_nan_inf_and_staleness_markers_are_stored_bit_exact() {
    init_tracing();
    let run = run_id();
    let sys = System::start(config(&run)).await;
    let tenant = Tenant::parse(&format!("nan{run}")).unwrap();
    let api = sys.api(&tenant);
    let name = format!("nan_{run}");
    let start = closed_window();
    // No −0.0: proto3 leaves a double equal to 0 off the wire (prost here, gogo-protobuf
    // in Prometheus), so a −0.0 sample arrives as +0.0 before carat sees it.
    let values: [u64; 11] = [
        f64::NAN.to_bits(), // 0x7ff8000000000000
        f64::INFINITY.to_bits(),
        f64::NEG_INFINITY.to_bits(),
        0x7ff0_0000_0000_0002, // Prometheus staleness marker
        1.5f64.to_bits(),
        0.0f64.to_bits(),
        1,                     // smallest subnormal
        0xfff8_0000_0000_0001, // negative quiet NaN with a payload
        0x7ff0_0000_0000_0001, // signalling NaN
        f64::MAX.to_bits(),
        (-123.456f64).to_bits(),
    ];
    let points: Vec<Point> = values
        .iter()
        .zip(0..)
        .map(|(&b, i)| Point::new(start + 3 * i, f64::from_bits(b)))
        .collect();
    let (status, body) = send(&api, remote_write(&name, &points)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let w = window_ref(&sys.cfg, &tenant, &format!("{name}.job.it"), start);
    let table = sys.state.clients.table.as_ref();
    let (got, _) = wait_stored(table, &w, &point_bits(&points), Duration::from_secs(40)).await;
    let hex = |v: &[(i64, u64)]| {
        v.iter()
            .map(|(t, b)| format!("{}:{b:#018x}", t - start))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        hex(&got),
        hex(&point_bits(&points)),
        "stored value bits are the posted ones"
    );
    sys.stop().await;
}

fn append_of(w: &WindowRef, start: i64) -> HeadAppend {
    HeadAppend {
        window: w.clone(),
        block: head::encode_block(start, &[Stamped::new(Point::new(start, 1.0), start * 1000)]),
        flush_due: start + 70,
        expire_at: now_ms() / 1000 + 120,
    }
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn appends_wait_for_a_replica_and_fail_retryably_without_enough() {
    let run = run_id();
    // A bucket far above any configured bucket count: no flusher walks its dirty set.
    let bucket = 1_000_000 + u32::try_from(now_ms() % 1_000_000).unwrap();
    let start = closed_window();
    let mut w = window_ref(
        &config(&run),
        &Tenant::parse(&format!("wait{run}")).unwrap(),
        &format!("wait.s{run}"),
        start,
    );
    w.bucket = bucket;

    let one = RedisHead::connect(&RedisConfig {
        replica_acks: 1,
        ..RedisConfig::default()
    })
    .await
    .unwrap();
    let counts = one.append(bucket, &[append_of(&w, start)]).await.unwrap();
    assert_eq!(counts, vec![1], "one replica acknowledged the append");

    let two = RedisHead::connect(&RedisConfig {
        replica_acks: 2,
        replica_ack_timeout_ms: 100,
        ..RedisConfig::default()
    })
    .await
    .unwrap();
    let begun = std::time::Instant::now();
    let err = two
        .append(bucket, &[append_of(&w, start)])
        .await
        .expect_err("each master has one replica: two cannot acknowledge");
    eprintln!("replica_acks = 2: {err} after {:?}", begun.elapsed());
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("wait"), "{err}");

    let mut c = redis().await;
    let _: i64 = redis::cmd("DEL")
        .arg(head_key(&w))
        .arg(dirty_key(bucket))
        .query_async(&mut c)
        .await
        .unwrap();
}
