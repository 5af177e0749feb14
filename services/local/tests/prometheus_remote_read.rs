//! A real Prometheus reads back through remote_read what another one remote_wrote into
//! carat (Debian's 2.42 and node exporter; the local system: Redis cluster on 7000–7005,
//! moto on 4566).
//!
//! Prometheus A scrapes itself, a node exporter and a test exporter whose samples carry
//! whole-second timestamps, every second, and remote_writes into an in-process carat (the
//! router `carat local` serves, over the pollers and writer of `common::System`).
//! Prometheus B has no targets and only the `remote_read` of docs/remote-read.md. Asked
//! through B's own HTTP API:
//! - `/api/v1/series` lists the same label sets as A's;
//! - raw samples (`sel[20s]`) are exactly A's samples truncated to whole seconds (the last
//!   of each second) and exactly what carat received by remote_write;
//! - `rate`, `increase`, `sum by` and `max_over_time` over the whole-second series equal
//!   A's over its own TSDB (same samples, same engine: compared to 1e-12 relative). Over
//!   the node exporter's series they differ, because carat moved each sample up to 999 ms
//!   earlier; the test prints by how much and asserts the raw samples instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::get as get_route;
use carat_api::prompb::Label;
use carat_api::remote_write::series_name;
use carat_api::{KeyStore, Keys, Scope};
use carat_core::Tenant;
use common::prometheus::{
    api, binaries, enc, free_port, record, start_node_exporter, start_prometheus, tail,
    test_config, Children, Received,
};
use common::{init_tracing, now_ms, run_id};
use serde_json::Value;

const WRITE_KEY: &str = "remote-read-e2e-write-key";
const READ_KEY: &str = "remote-read-e2e-read-key";
/// The metrics A sends to carat (`write_relabel_configs`).
const SENT: &str =
    "up|node_cpu_seconds_total|node_load1|prometheus_tsdb_head_samples_appended_total|\
                    go_memstats_alloc_bytes|go_gc_duration_seconds|carat_rr_aligned_.*";
/// Seconds A scrapes before B is asked.
const SCRAPE_SECS: u64 = 25;
/// The raw window compared (seconds before the last second compared).
const WINDOW: i64 = 20;

/// The test exporter's metrics at second `t` (`k` seconds after `base`), each sample
/// stamped `t * 1000` ms: two counters and a gauge, values a function of `k` only, so a
/// second scrape within the same second repeats the sample exactly.
fn exposition(base: i64, t: i64) -> String {
    let k = t - base;
    #[allow(clippy::cast_precision_loss)]
    let kf = k as f64;
    let a = 1000.0 + 2.5 * kf + f64::from(u8::try_from((k * k).rem_euclid(7)).unwrap()) * 0.125;
    let b = 0.1 * kf;
    let g = (kf * 0.7).sin() * 50.0;
    let ms = t * 1000;
    format!(
        "# TYPE carat_rr_aligned_total counter\n\
         carat_rr_aligned_total{{series=\"a\"}} {a} {ms}\n\
         carat_rr_aligned_total{{series=\"b\"}} {b} {ms}\n\
         # TYPE carat_rr_aligned_gauge gauge\n\
         carat_rr_aligned_gauge {g} {ms}\n"
    )
}

/// The `remote_read` example of docs/remote-read.md, for carat on `port` with `key`.
fn documented_yml(port: u16, key: &str) -> String {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/remote-read.md"),
    )
    .unwrap();
    let after = doc
        .split_once("<!-- remote-read-example")
        .expect("docs/remote-read.md has the remote-read-example marker")
        .1;
    let block = after
        .split_once("```yaml\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a yaml block after the marker")
        .0;
    assert!(block.contains("127.0.0.1:8080") && block.contains("carat-dev-readonly"));
    block
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace("carat-dev-readonly", key)
}

/// A series' labels as one sortable string, `{a="b",…}` (label order as given, sorted
/// by name here).
fn selector(metric: &Value) -> String {
    let m: BTreeMap<&str, &str> = metric
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
        .collect();
    let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(","))
}

/// Samples of a matrix or series answer: selector ⇒ [(ms, value as Prometheus wrote it)].
type Matrix = BTreeMap<String, Vec<(i64, String)>>;

fn matrix(data: &Value) -> Matrix {
    assert_eq!(data["resultType"], "matrix", "{data}");
    data["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let values = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    #[allow(clippy::cast_possible_truncation)]
                    let ms = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                    (ms, p[1].as_str().unwrap().to_string())
                })
                .collect();
            (selector(&s["metric"]), values)
        })
        .collect()
}

/// `sel[range s]` at `time` (an instant query of a range selector: the raw samples), as
/// Prometheus answers it.
async fn raw_data(port: u16, sel: &str, range: i64, time: i64) -> Value {
    api(
        port,
        format!(
            "/api/v1/query?query={}&time={time}",
            enc(&format!("{sel}[{range}s]"))
        ),
    )
    .await
}

async fn raw(port: u16, sel: &str, range: i64, time: i64) -> Matrix {
    matrix(&raw_data(port, sel, range, time).await)
}

/// Selector ⇒ label set of each series of an answer.
fn labels_by_selector(data: &Value) -> BTreeMap<String, Vec<Label>> {
    data["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels = s["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| Label {
                    name: k.clone(),
                    value: v.as_str().unwrap().to_string(),
                })
                .collect();
            (selector(&s["metric"]), labels)
        })
        .collect()
}

async fn query_range(port: u16, q: &str, start: i64, end: i64) -> Matrix {
    matrix(
        &api(
            port,
            format!(
                "/api/v1/query_range?query={}&start={start}&end={end}&step=1",
                enc(q)
            ),
        )
        .await,
    )
}

async fn series(port: u16, sel: &str, start: i64, end: i64) -> Vec<String> {
    let data = api(
        port,
        format!(
            "/api/v1/series?match[]={}&start={start}&end={end}",
            enc(sel)
        ),
    )
    .await;
    let mut out: Vec<String> = data.as_array().unwrap().iter().map(selector).collect();
    out.sort();
    out
}

/// A's samples of `(end − WINDOW, end]` as carat stores them: truncated to the second,
/// the last of each second kept.
fn truncated(a: &Matrix, end: i64) -> Matrix {
    a.iter()
        .map(|(sel, samples)| {
            let mut by_sec: BTreeMap<i64, String> = BTreeMap::new();
            for (ms, v) in samples {
                by_sec.insert(ms.div_euclid(1000), v.clone());
            }
            let kept: Vec<(i64, String)> = by_sec
                .into_iter()
                .filter(|(s, _)| *s > end - WINDOW && *s <= end)
                .map(|(s, v)| (s * 1000, v))
                .collect();
            (sel.clone(), kept)
        })
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// A value as Prometheus' API writes it ⇒ the bits it stands for (any NaN as one NaN).
fn bits(v: &str) -> u64 {
    let f: f64 = v.parse().unwrap_or_else(|_| panic!("not a float: {v}"));
    if f.is_nan() {
        f64::NAN.to_bits()
    } else {
        f.to_bits()
    }
}

/// The largest relative difference between two query_range answers over the same
/// series and steps (`None` if they hold different series or steps).
fn max_relative_diff(a: &Matrix, b: &Matrix) -> Option<f64> {
    if a.keys().ne(b.keys()) {
        return None;
    }
    let mut worst: f64 = 0.0;
    for (sel, av) in a {
        let bv = &b[sel];
        if av.len() != bv.len() {
            return None;
        }
        for ((at, x), (bt, y)) in av.iter().zip(bv) {
            if at != bt {
                return None;
            }
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            if x == y || (x.is_nan() && y.is_nan()) {
                continue;
            }
            worst = worst.max((x - y).abs() / x.abs().max(y.abs()));
        }
    }
    Some(worst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local system and Debian's prometheus (make test installs and starts them)"]
async fn a_prometheus_reads_through_remote_read_what_another_remote_wrote() {
    init_tracing();
    let (prometheus, node_exporter) = binaries();
    let run = run_id();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join(".run/prometheus-remote-read").join(&run);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = test_config(&dir);
    // A tenant of this run's own: its catalog holds only what A sent.
    let tenant = Tenant::parse(&format!("rr{run}")).unwrap();

    // carat: the router `carat local` serves (health, ingest, read), keys of this test,
    // behind the layer that records what remote_write brought.
    let mut sys = common::System::start(cfg.clone()).await;
    let keys = KeyStore::single("writer", WRITE_KEY, tenant.clone(), &[Scope::Write]).with(
        KeyStore::single("reader", READ_KEY, tenant.clone(), &[Scope::Read]),
    );
    let rec = Arc::new(Mutex::new(Received::default()));
    let layer_rec = Arc::clone(&rec);
    let app = carat_local::serve::router(&sys.state, Arc::new(Keys::fixed(Arc::new(keys)))).layer(
        axum::middleware::from_fn(move |req, next| record(Arc::clone(&layer_rec), req, next)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let carat_port = listener.local_addr().unwrap().port();
    let sd = sys.shutdown.clone();
    sys.spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(sd.wait())
            .await
            .unwrap();
    });

    // The whole-second exporter.
    let base = now_ms().div_euclid(1000);
    let exporter = axum::Router::new().route(
        "/metrics",
        get_route(move || async move { exposition(base, now_ms().div_euclid(1000)) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let exporter_port = listener.local_addr().unwrap().port();
    let sd = sys.shutdown.clone();
    sys.spawn(async move {
        axum::serve(listener, exporter)
            .with_graceful_shutdown(sd.wait())
            .await
            .unwrap();
    });

    let (a_port, b_port, node_port) = (free_port(), free_port(), free_port());
    let (prom_job, node_job, aligned_job) = (
        format!("prom-rr-{run}"),
        format!("node-rr-{run}"),
        format!("aligned-rr-{run}"),
    );
    let a_yml = format!(
        "global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: {prom_job}
    static_configs: [{{targets: ['127.0.0.1:{a_port}']}}]
  - job_name: {node_job}
    static_configs: [{{targets: ['127.0.0.1:{node_port}']}}]
  - job_name: {aligned_job}
    honor_timestamps: true
    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]
remote_write:
  - url: http://127.0.0.1:{carat_port}/api/v1/write
    authorization:
      credentials: {WRITE_KEY}
    # Only the series compared: the whole scrape (~1,500 samples a second) is more than
    # the local system ingests on a shared 2-core machine, and A would lag behind.
    write_relabel_configs:
      - source_labels: [__name__]
        regex: '{SENT}'
        action: keep
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
"
    );
    let mut children = Children::default();
    start_node_exporter(&mut children, &node_exporter, &dir, node_port);
    let a_log = start_prometheus(&mut children, &prometheus, &dir, "scraper", &a_yml, a_port).await;
    let started = now_ms().div_euclid(1000);
    eprintln!(
        "A (scraper) on {a_port}, node exporter on {node_port}, exporter on {exporter_port}, \
         carat on {carat_port}; scraping for {SCRAPE_SECS} s"
    );
    tokio::time::sleep(Duration::from_secs(SCRAPE_SECS)).await;

    let b_yml = documented_yml(carat_port, READ_KEY);
    let b_log = start_prometheus(&mut children, &prometheus, &dir, "reader", &b_yml, b_port).await;

    // The last second compared: a few seconds back, so A has sent it. Wait until B
    // sees it through carat (the writer lags A by a batch or two).
    let end = now_ms().div_euclid(1000) - 3;
    let aligned = format!("carat_rr_aligned_total{{job=\"{aligned_job}\"}}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = raw(b_port, &aligned, 5, end).await;
        let last = got
            .values()
            .filter_map(|v| v.last())
            .map(|(ms, _)| *ms)
            .min();
        if got.len() == 2 && last == Some(end * 1000) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B does not see the exporter's sample at {end} through carat within 30 s: {got:?}\n\
             B's log:\n{}",
            tail(&b_log, 20)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // 1. Raw samples: B (through carat) = A's truncated to seconds = what carat received.
    let selectors = [
        format!("up{{job=~\"{prom_job}|{node_job}|{aligned_job}\"}}"),
        format!("node_cpu_seconds_total{{job=\"{node_job}\"}}"),
        format!("node_load1{{job=\"{node_job}\"}}"),
        format!("prometheus_tsdb_head_samples_appended_total{{job=\"{prom_job}\"}}"),
        format!("go_memstats_alloc_bytes{{job=~\"{prom_job}|{node_job}\"}}"),
        format!("go_gc_duration_seconds{{job=\"{prom_job}\"}}"),
        aligned.clone(),
        format!("carat_rr_aligned_gauge{{job=\"{aligned_job}\"}}"),
    ];
    let (mut compared_series, mut compared_samples) = (0, 0);
    for sel in &selectors {
        // A's window is wider by a second on each side: a sample at `end` + 0.5 s is
        // carat's sample at `end`.
        let want = truncated(&raw(a_port, sel, WINDOW + 2, end + 1).await, end);
        let deadline = Instant::now() + Duration::from_secs(20);
        let (got, data) = loop {
            let data = raw_data(b_port, sel, WINDOW, end).await;
            let got = matrix(&data);
            if got == want || Instant::now() > deadline {
                break (got, data);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        assert!(!want.is_empty(), "A has no samples of {sel}");
        assert_eq!(
            got, want,
            "{sel}: B's samples through carat (left) are not A's truncated to seconds (right)"
        );
        let labels = labels_by_selector(&data);
        let r = rec.lock().unwrap();
        for (s, samples) in &got {
            let labels = &labels[s];
            let name = series_name(labels).unwrap();
            let received = r
                .series
                .get(name.as_str())
                .unwrap_or_else(|| panic!("carat received no sample of {s} ({name})"));
            let received: Vec<(i64, u64)> = received
                .range(end - WINDOW + 1..=end)
                // Staleness markers are left out of range vectors by PromQL.
                .filter(|(_, b)| **b != carat_api::remote_write::STALE_NAN_BITS)
                .map(|(t, b)| {
                    let f = f64::from_bits(*b);
                    (t * 1000, if f.is_nan() { f64::NAN.to_bits() } else { *b })
                })
                .collect();
            let answered: Vec<(i64, u64)> = samples.iter().map(|(ms, v)| (*ms, bits(v))).collect();
            assert_eq!(
                answered, received,
                "{s}: B's samples vs what carat received"
            );
            compared_series += 1;
            compared_samples += samples.len();
        }
    }
    eprintln!("raw: {compared_series} series, {compared_samples} samples equal");

    // 2. Series listings.
    for sel in [
        format!("up{{job=~\"{prom_job}|{node_job}|{aligned_job}\"}}"),
        format!("node_cpu_seconds_total{{job=\"{node_job}\"}}"),
        format!("{{__name__=~\"carat_rr_aligned_.*\",job=\"{aligned_job}\"}}"),
    ] {
        let want = series(a_port, &sel, end - WINDOW, end).await;
        assert!(!want.is_empty(), "A lists no series for {sel}");
        assert_eq!(
            series(b_port, &sel, end - WINDOW, end).await,
            want,
            "/api/v1/series {sel}: B (left) vs A"
        );
    }

    // 3. PromQL over whole-second samples: the same answers (same samples, same engine).
    let start = started + 8;
    for q in [
        format!("rate({aligned}[5s])"),
        format!("increase({aligned}[10s])"),
        format!("sum by (job) (rate({aligned}[10s]))"),
        format!("max_over_time(carat_rr_aligned_gauge{{job=\"{aligned_job}\"}}[3s])"),
    ] {
        let (a, b) = (
            query_range(a_port, &q, start, end).await,
            query_range(b_port, &q, start, end).await,
        );
        assert!(
            a.values().map(Vec::len).sum::<usize>() >= 10,
            "A answers {q} with too few points: {a:?}"
        );
        let diff = max_relative_diff(&a, &b).unwrap_or_else(|| {
            panic!("{q}: A and B answer different series or steps:\n{a:?}\n{b:?}")
        });
        assert!(diff <= 1e-12, "{q}: A and B differ by {diff} (relative)");
    }
    // Over the node exporter's samples, moved to whole seconds, rates differ: a figure,
    // not a check.
    let q = format!("rate(node_cpu_seconds_total{{job=\"{node_job}\"}}[5s])");
    let (a, b) = (
        query_range(a_port, &q, start, end).await,
        query_range(b_port, &q, start, end).await,
    );
    let (mut steps, mut differ, mut worst) = (0, 0, 0.0_f64);
    for (sel, av) in &a {
        for (t, x) in av {
            steps += 1;
            let y = b
                .get(sel)
                .and_then(|bv| bv.iter().find(|(bt, _)| bt == t))
                .map(|(_, y)| y.parse::<f64>().unwrap());
            let x: f64 = x.parse().unwrap();
            if y != Some(x) {
                differ += 1;
                if let Some(y) = y {
                    worst = worst.max((x - y).abs());
                }
            }
        }
    }
    eprintln!(
        "{q}: {differ} of A's {steps} steps differ on B (second-truncated samples), \
         by at most {worst} CPU-seconds/s"
    );
    // carat answered every request (remote_write and remote_read) 2xx.
    {
        let r = rec.lock().unwrap();
        assert!(
            r.errors.is_empty(),
            "carat answered {} requests with an error, e.g. {:?}\nA's log:\n{}",
            r.errors.len(),
            r.errors.iter().take(3).collect::<Vec<_>>(),
            tail(&a_log, 20)
        );
        eprintln!(
            "carat: {} remote_write requests, {} samples; statuses {:?}",
            r.requests, r.samples, r.statuses
        );
    }

    children.stop();
    sys.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
