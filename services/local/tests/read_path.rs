//! The read path on the local system with compressed time (10 s windows, 15 s lateness,
//! items expiring 20 s after their window): points posted through every ingest route are
//! read back exactly — raw, at Mackerel's 5-minute rung and in native buckets, over ranges
//! inside one window and across window and tier boundaries — while they sit in the Redis
//! head, after the flush to DynamoDB, once the head has forgotten them, after the TTL
//! sweeper deleted the items and the archiver staged them in S3, and after compaction.
//!
//! Needs the Redis cluster and the AWS stand-in (`make test` starts them).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use carat_api::{KeyStore, Keys, Scope};
use carat_core::{window, Point, SeriesKey, SeriesName, Tenant};
use carat_local::archive::{sweep_once, ArchiverHandler, StreamPoller};
use carat_store::ports::{Archive, StreamStart, WindowRef, WindowTable};
use carat_writer::flush::RAW;
use common::{json, native, now_ms, post, remote_write, run_id, wait_for, System};
use serde_json::{json, Value};

const READ_KEY: &str = "read-path-test-read-key";
const RAW_SECS: i64 = 10;

async fn get(reader: &axum::Router, uri: &str) -> (StatusCode, Value) {
    common::get_json(reader, uri, READ_KEY).await
}

/// What was posted, per carat series name: time ⇒ value (the last write of a time wins).
type Oracle = BTreeMap<String, BTreeMap<i64, f64>>;

fn bucket_avgs(points: &BTreeMap<i64, f64>, secs: i64, from: i64, to: i64) -> Vec<(i64, f64)> {
    let mut b: BTreeMap<i64, (f64, u64)> = BTreeMap::new();
    let (first, last) = (
        window::start(secs, from),
        window::start(secs, to) + secs - 1,
    );
    for (&t, &v) in points.range(first..=last) {
        let e = b.entry(window::start(secs, t)).or_default();
        e.0 += v;
        e.1 += 1;
    }
    b.into_iter()
        .map(|(s, (sum, n))| (s, sum / n as f64))
        .collect()
}

fn pairs(v: &Value, key_t: &str, key_v: &str) -> Vec<(i64, f64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| (p[key_t].as_i64().unwrap(), p[key_v].as_f64().unwrap()))
        .collect()
}

fn native_pairs(v: &Value) -> Vec<(i64, f64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
        .collect()
}

/// Every query this test asks, against the oracle; returns the first mismatch.
async fn check(
    reader: &axum::Router,
    oracle: &Oracle,
    host: &str,
    service: &str,
    now: i64,
) -> Result<usize, String> {
    let mut asked = 0;
    for (series, points) in oracle {
        let (first, last) = (
            *points.keys().next().unwrap(),
            *points.keys().last().unwrap(),
        );
        let ranges = [
            (first, last),                                          // everything
            (first, window::start(RAW_SECS, first) + RAW_SECS - 1), // inside the first window
            (first + 3, last - 3),                                  // across window boundaries
            (window::start(RAW_SECS, last), now + 60),              // the last window to the future
        ];
        for (from, to) in ranges {
            let want: Vec<(i64, f64)> = points.range(from..=to).map(|(&t, &v)| (t, v)).collect();
            let uri = format!("/api/v1/points?series={series}&from={from}&to={to}&resolution=raw");
            let (status, body) = get(reader, &uri).await;
            asked += 1;
            if status != StatusCode::OK || native_pairs(&body["series"][0]["points"]) != want {
                return Err(format!("{uri}: {status} {body}, want {want:?}"));
            }
            let mackerel = if let Some(name) = series.strip_prefix(&format!("host.{host}.")) {
                Some(format!("/api/v0/hosts/{host}/metrics?name={name}"))
            } else {
                series
                    .strip_prefix(&format!("service.{service}."))
                    .map(|name| format!("/api/v0/services/{service}/metrics?name={name}"))
            };
            if let Some(base) = mackerel {
                let uri = format!("{base}&from={from}&to={to}");
                let (status, body) = get(reader, &uri).await;
                asked += 1;
                if status != StatusCode::OK || pairs(&body["metrics"], "time", "value") != want {
                    return Err(format!("{uri}: {status} {body}, want {want:?}"));
                }
                // 21 h: Mackerel's 5-minute rung, averages per bucket.
                let (from, to) = (last - 21 * 3_600, last);
                let uri = format!("{base}&from={from}&to={to}");
                let (status, body) = get(reader, &uri).await;
                asked += 1;
                let want = bucket_avgs(points, 300, from, to);
                if status != StatusCode::OK || pairs(&body["metrics"], "time", "value") != want {
                    return Err(format!("{uri}: {status} {body}, want {want:?}"));
                }
            }
        }
        // Native 1 h buckets.
        let uri = format!(
            "/api/v1/points?series={series}&from={first}&to={last}&resolution=1h&aggregate=avg"
        );
        let (status, body) = get(reader, &uri).await;
        asked += 1;
        let want = bucket_avgs(points, 3_600, first, last);
        if status != StatusCode::OK || native_pairs(&body["series"][0]["points"]) != want {
            return Err(format!("{uri}: {status} {body}, want {want:?}"));
        }
    }
    Ok(asked)
}

/// Polls `check` until it passes (or `patience` runs out, then fails with the mismatch).
async fn eventually_exact(
    reader: &axum::Router,
    oracle: &Oracle,
    host: &str,
    service: &str,
    what: &str,
    patience: Duration,
) {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let now = now_ms() / 1000;
        match check(reader, oracle, host, service, now).await {
            Ok(asked) => {
                println!("{what}: {asked} queries exact");
                return;
            }
            Err(e) if tokio::time::Instant::now() >= deadline => panic!("{what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the Redis cluster and the AWS stand-in (make test starts them)"]
async fn points_read_back_exactly_from_every_tier() {
    common::init_tracing();
    let run = run_id();
    let mut cfg = common::test_config(&run, RAW_SECS);
    cfg.ingest.max_lateness_secs = 15;
    cfg.retention.raw_secs = 20;
    cfg.archiver.settle_secs = 0;
    cfg.validate().unwrap();
    let mut sys = System::start(cfg.clone()).await;
    let tenant = Tenant::parse(&format!("rp{run}")).unwrap();
    let api = sys.api(&tenant);
    let keys = KeyStore::single("reader", READ_KEY, tenant.clone(), &[Scope::Read]);
    let reader = carat_reader::router(carat_local::serve::reader(
        &sys.state,
        Arc::new(Keys::fixed(Arc::new(keys))),
    ));

    // The archive's machinery: the table's stream (from now on) into the archiver.
    let poller = StreamPoller {
        stream: Arc::new(carat_local::archive::table_stream(&sys.state).await),
        handler: Arc::new(ArchiverHandler::new(&sys.state)),
        settings: cfg.table_stream.clone(),
        start: StreamStart::Latest,
    };
    let sd = sys.shutdown.clone();
    sys.spawn(async move { poller.run(sd).await });

    // Points through every ingest route, over two windows ending now.
    let now = now_ms() / 1000;
    let (host, service) = (format!("h{run}"), format!("s{run}"));
    let times: Vec<i64> = (0..7).map(|i| now - 13 + 2 * i).collect();
    let pts = |k: f64| -> Vec<Point> {
        times
            .iter()
            .map(|&t| Point::new(t, k + (t % 100) as f64 / 4.0))
            .collect()
    };
    let mut oracle = Oracle::new();
    let mut remember = |series: String, points: &[Point]| {
        oracle
            .entry(series)
            .or_default()
            .extend(points.iter().map(|p| (p.time, p.value)));
    };
    let host_pts = pts(1.0);
    post(&api, json("/api/v0/tsdb", &json!(host_pts.iter().map(|p| json!({"hostId": host, "name": "loadavg5", "time": p.time, "value": p.value})).collect::<Vec<_>>()))).await;
    remember(format!("host.{host}.loadavg5"), &host_pts);
    let svc_pts = pts(100.0);
    post(
        &api,
        json(
            &format!("/api/v0/services/{service}/tsdb"),
            &json!(svc_pts
                .iter()
                .map(|p| json!({"name": "latency.p99", "time": p.time, "value": p.value}))
                .collect::<Vec<_>>()),
        ),
    )
    .await;
    remember(format!("service.{service}.latency.p99"), &svc_pts);
    let native_series = format!("app{run}.native");
    let nat_pts = pts(-5.5);
    post(
        &api,
        json("/api/v1/points", &native(&native_series, &nat_pts)),
    )
    .await;
    remember(native_series.clone(), &nat_pts);
    let prom_pts = pts(0.5);
    post(&api, remote_write(&format!("rp{run}_total"), &prom_pts)).await;
    remember(format!("rp{run}_total.job.it"), &prom_pts);
    // A later write of one time replaces the earlier (Mackerel semantics). Stamps are
    // whole seconds (docs/formats.md): writes within one second are ordered by value bits.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let again = [Point::new(times[3], 42.0)];
    post(
        &api,
        json("/api/v1/points", &native(&native_series, &again)),
    )
    .await;
    remember(native_series.clone(), &again);

    // 1. In the head (and wherever the flush has put them already).
    eventually_exact(
        &reader,
        &oracle,
        &host,
        &service,
        "head",
        Duration::from_secs(20),
    )
    .await;
    let (status, body) = get(&reader, &format!("/api/v0/hosts/{host}/metric-names")).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"names": ["loadavg5"]}))
    );
    let (status, _) = get(
        &reader,
        &format!("/api/v0/hosts/{host}/metrics?name=nope&from={now}&to={now}"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let windows: Vec<(String, i64)> = oracle
        .keys()
        .flat_map(|s| {
            let starts: std::collections::BTreeSet<i64> =
                times.iter().map(|&t| window::start(RAW_SECS, t)).collect();
            starts.into_iter().map(move |w| (s.clone(), w))
        })
        .collect();
    let key = |s: &str| SeriesKey::new(tenant.clone(), SeriesName::parse(s, "s").unwrap());
    let table = sys.state.clients.table.clone();
    let head = sys.state.clients.head.clone();

    // 2. Flushed: every window has its item.
    wait_for(
        "every window flushed to DynamoDB",
        Duration::from_secs(30),
        || {
            let (table, windows) = (table.clone(), windows.clone());
            async move {
                for (s, w) in &windows {
                    if table
                        .get(&key(s).table_pk(RAW), *w)
                        .await
                        .unwrap()
                        .is_none()
                    {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await;
    eventually_exact(
        &reader,
        &oracle,
        &host,
        &service,
        "DynamoDB (+ head)",
        Duration::from_secs(10),
    )
    .await;

    // 3. The head has forgotten them: DynamoDB alone.
    wait_for("head keys expired", Duration::from_secs(60), || {
        let (head, windows) = (head.clone(), windows.clone());
        let buckets = cfg.record.buckets;
        async move {
            for (s, w) in &windows {
                let k = key(s);
                let r = WindowRef {
                    bucket: k.bucket(buckets),
                    key: k,
                    start: *w,
                };
                if !carat_store::ports::Head::read(head.as_ref(), &r)
                    .await
                    .unwrap()
                    .is_empty()
                {
                    return false;
                }
            }
            true
        }
    })
    .await;
    eventually_exact(
        &reader,
        &oracle,
        &host,
        &service,
        "DynamoDB alone",
        Duration::from_secs(10),
    )
    .await;

    // 4. Expired: the sweeper deletes the items (as DynamoDB's TTL would), the stream
    //    brings the removals to the archiver, which stages them in S3.
    let archive = sys.state.clients.archive.clone();
    let prefix = format!("stage/{tenant}/");
    wait_for(
        "items swept and staged in S3",
        Duration::from_secs(90),
        || {
            let (table, windows, archive, prefix) = (
                table.clone(),
                windows.clone(),
                archive.clone(),
                prefix.clone(),
            );
            async move {
                let now = now_ms() / 1000;
                // Our own sweep of what has expired (the table is shared with other tests).
                let _ = sweep_once(&table, now, 1_000).await;
                for (s, w) in &windows {
                    if table
                        .get(&key(s).table_pk(RAW), *w)
                        .await
                        .unwrap()
                        .is_some()
                    {
                        return false;
                    }
                }
                !archive.list(&prefix).await.unwrap().is_empty()
            }
        },
    )
    .await;
    eventually_exact(
        &reader,
        &oracle,
        &host,
        &service,
        "S3 staged objects",
        Duration::from_secs(20),
    )
    .await;

    // 5. Compacted into the tenant's day object.
    let report =
        carat_archiver::compact::run(archive.as_ref(), &cfg, now_ms() / 1000 + 86_400 * 40)
            .await
            .unwrap();
    println!("compaction: {report:?}");
    assert!(
        archive.list(&prefix).await.unwrap().is_empty(),
        "staged objects compacted away"
    );
    eventually_exact(
        &reader,
        &oracle,
        &host,
        &service,
        "S3 day objects",
        Duration::from_secs(40),
    )
    .await;
    sys.stop().await;
}
