//! The graph page in a real browser: carat's HTTP routes (the router `carat local`
//! serves) on a free port over the local system (on a Kinesis stream of its own:
//! `OwnStream`), a series of a distinctive shape posted through the ingest API, then
//! headless Chromium (Debian's, driven by playwright-core: tests/browser/graph.mjs)
//! enters a key, searches, picks the series and a range, and checks what the page drew
//! against the posted points — the line's vertices at the pixels the points map to, the
//! gap, the axes, the legend, the hover readout, a zoom that re-fetches and its reset, a
//! shared link — and that a wrong key, a key without the read scope and an unknown series
//! show the 401, 403 and 404 messages. The screenshot is left in
//! target/test-artifacts/graph-page.png.
//!
//! Needs the Redis cluster, the AWS stand-in, chromium and tests/browser/node_modules
//! (`make test` installs and starts them).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use carat_api::{KeyStore, Keys, Scope};
use carat_core::{Point, Tenant};
use common::{json_with, native, now_ms, post, run_id, OwnStream, System};
use serde_json::json;

const READ_KEY: &str = "graph-page-test-read-key";
const WRITE_KEY: &str = "graph-page-test-write-key";

/// 50 points a minute apart over the last 50 minutes: a wave with a spike, and five
/// minutes missing (a gap the line must show).
fn shape(now: i64) -> Vec<Point> {
    (0..50)
        .filter(|i| !(20..25).contains(i))
        .map(|i| {
            let v = if i == 35 {
                42.5
            } else {
                ((10.0 + 5.0 * (f64::from(i) / 4.0).sin()) * 1000.0).round() / 1000.0
            };
            Point::new(now - 3_000 + 60 * i64::from(i), v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the local system, chromium and tests/browser/node_modules"]
async fn the_graph_page_draws_a_posted_series() {
    common::init_tracing();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("tests/browser/graph.mjs");
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .is_dir(),
        "tests/browser/node_modules is missing: run scripts/install-deps.sh"
    );

    let run = run_id();
    let mut cfg = common::test_config(&run, 600);
    cfg.ingest.max_lateness_secs = 3_600; // the shape reaches 50 minutes back
    let stream = OwnStream::create(&mut cfg, &run).await;
    cfg.validate().unwrap();
    let mut sys = System::start(cfg).await;
    println!(
        "graph page: carat's write path started on stream {}",
        stream.name
    );
    let tenant = Tenant::parse(&format!("page{run}")).unwrap();
    let keys = KeyStore::single("page-reader", READ_KEY, tenant.clone(), &[Scope::Read]).with(
        KeyStore::single("page-writer", WRITE_KEY, tenant.clone(), &[Scope::Write]),
    );
    let carat = carat_local::serve::router(&sys.state, Arc::new(Keys::fixed(Arc::new(keys))));
    let addr = sys.serve(carat.clone()).await;

    let now = now_ms() / 1000;
    let points = shape(now);
    let series = format!("page{run}.shape.wave");
    post(
        &carat,
        json_with("/api/v1/points", WRITE_KEY, &native(&series, &points)),
    )
    .await;
    let want: Vec<serde_json::Value> = points.iter().map(|p| json!([p.time, p.value])).collect();
    let (from, to) = (now - 3_600, now + 60);
    // Until the read API returns exactly the posted points and the catalog lists the series.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let uri = format!("/api/v1/points?series={series}&from={from}&to={to}&resolution=raw");
    let names = format!("/api/v1/names?match={series}*");
    loop {
        let (status, body) = common::get_json(&carat, &uri, READ_KEY).await;
        let (_, listed) = common::get_json(&carat, &names, READ_KEY).await;
        let got = &body["series"][0]["points"];
        if status == StatusCode::OK
            && *got == json!(want)
            && listed["names"][0]["name"] == json!(series)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the read API does not return the {} posted points within 30 s: {status}, {} points {got}; names {listed}",
            want.len(),
            got.as_array().map_or(0, Vec::len),
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "graph page: the read API returns the {} posted points",
        want.len()
    );

    let expected = json!({ "points": want, "write_only_key": WRITE_KEY }).to_string();
    let url = format!("http://{addr}/");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(&script)
            .args([&url, READ_KEY, &series, &expected])
            .current_dir(&root)
            .output()
    })
    .await
    .unwrap()
    .expect("node runs (Node.js 20 is installed by scripts/install-deps.sh's caller)");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    println!("{stdout}");
    eprintln!("{stderr}");
    sys.stop().await;
    stream.delete().await;
    assert!(
        out.status.success(),
        "tests/browser/graph.mjs failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}
