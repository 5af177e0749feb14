//! Helpers of the tests that run Debian's Prometheus (2.42) and node exporter against
//! carat: the processes (killed if a test ends early), free ports, plain HTTP GETs,
//! a layer recording what carat received by remote_write, and the local configuration
//! with one-day windows.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use carat_api::remote_write::{self, STALE_NAN_BITS};
use carat_core::Config;

/// What carat received from Prometheus, seen by a layer in front of the ingest router.
#[derive(Default)]
pub struct Received {
    pub requests: u64,
    pub in_flight: u64,
    /// Status code ⇒ number of answers.
    pub statuses: BTreeMap<u16, u64>,
    /// Bodies of every non-2xx answer, verbatim.
    pub errors: Vec<String>,
    pub samples: u64,
    pub nan_samples: u64,
    pub stale_markers: u64,
    /// One line per request: samples, seconds spanned, status, request id.
    pub log: Vec<String>,
    /// Series ⇒ second ⇒ value bits (the later sample wins, as in carat).
    pub series: BTreeMap<String, BTreeMap<i64, u64>>,
}

pub async fn record(rec: Arc<Mutex<Received>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20).await.unwrap();
    let mut line = String::new();
    if parts.uri.path() == "/api/v1/write" {
        let wr = remote_write::decode(&bytes, 64 << 20).expect("Prometheus sent a bad body");
        let mut r = rec.lock().unwrap();
        r.requests += 1;
        r.in_flight += 1;
        let (mut n, mut lo, mut hi) = (0, i64::MAX, i64::MIN);
        for ts in &wr.timeseries {
            if ts.samples.is_empty() {
                continue;
            }
            let name = remote_write::series_name(&ts.labels).unwrap().to_string();
            for s in &ts.samples {
                r.samples += 1;
                n += 1;
                lo = lo.min(s.timestamp.div_euclid(1000));
                hi = hi.max(s.timestamp.div_euclid(1000));
                let bits = s.value.to_bits();
                if bits == STALE_NAN_BITS {
                    r.stale_markers += 1;
                } else if s.value.is_nan() {
                    r.nan_samples += 1;
                }
                r.series
                    .entry(name.clone())
                    .or_default()
                    .insert(s.timestamp.div_euclid(1000), bits);
            }
        }
        line = format!("{n} samples, seconds {lo}..={hi}");
    }
    let res = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    {
        let mut r = rec.lock().unwrap();
        *r.statuses.entry(parts.status.as_u16()).or_default() += 1;
        if !line.is_empty() {
            let id = parts
                .headers
                .get("x-request-id")
                .map(|v| v.to_str().unwrap_or("?").to_string());
            let dropped = parts
                .headers
                .get("x-carat-dropped-samples")
                .map(|v| v.to_str().unwrap_or("?").to_string());
            r.log.push(format!(
                "{line}: {} (request id {id:?}, dropped {dropped:?})",
                parts.status
            ));
        }
        if !parts.status.is_success() {
            r.errors.push(format!(
                "{}: {}",
                parts.status,
                String::from_utf8_lossy(&bytes)
            ));
        }
        r.in_flight = r.in_flight.saturating_sub(1);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The processes the test started; killed (SIGKILL) if the test ends before it stopped them.
#[derive(Default)]
pub struct Children(pub Vec<(String, Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Children {
    /// SIGTERM to each, then waits for its exit (SIGKILL after 30 s).
    pub fn stop(&mut self) {
        for (name, c) in &mut self.0 {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(st)) = c.try_wait() {
                    eprintln!("{name} exited: {st}");
                    break;
                }
                if Instant::now() > deadline {
                    eprintln!("{name} did not stop within 30 s; killing it");
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.0.clear();
    }
}

/// The first of `names` on PATH (or in /usr/bin, /usr/sbin).
pub fn find_binary(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/sbin".into()])
        .collect();
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` over plain HTTP/1.0: (status, body), or `None` if nothing answers (within
/// 60 s: a Prometheus reading remote storage answers within its `remote_timeout`, 1 min).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

pub async fn get(port: u16, path: impl Into<String>) -> Option<(u16, String)> {
    let path = path.into();
    tokio::task::spawn_blocking(move || http_get(port, &path))
        .await
        .unwrap()
}

/// The sum over every label set of metric `name` in a Prometheus text exposition.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let value: f64 = rest.rsplit(' ').next()?.parse().ok()?;
        *found.get_or_insert(0.0) += value;
    }
    found
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub fn test_config(dir: &Path) -> Config {
    let mut cfg = carat_local::config::load(None, |n| std::env::var(n).ok()).unwrap();
    // Default (one-day) windows: nothing is flushed while the test runs, so the head
    // holds every sample it received.
    cfg.poller.max_batching_window_ms = 100;
    cfg.poller.idle_poll_ms = 100;
    cfg.poller.checkpoint_dir = dir.join("checkpoints").display().to_string();
    cfg.poller.failed_records_dir = dir.join("failed-records").display().to_string();
    cfg.validate().unwrap();
    cfg
}

/// `s` percent-encoded for a query string (everything but RFC 3986's unreserved set).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The Prometheus and node exporter binaries (Debian's packages), or a panic saying how
/// to install them.
pub fn binaries() -> (PathBuf, PathBuf) {
    let prometheus = find_binary(&["prometheus"]).expect(
        "prometheus not found: this test needs a real Prometheus (Debian's 2.42): \
         run scripts/install-deps.sh (apt-get install prometheus prometheus-node-exporter)",
    );
    let node_exporter = find_binary(&["prometheus-node-exporter", "node_exporter"]).expect(
        "prometheus-node-exporter not found: run scripts/install-deps.sh \
         (apt-get install prometheus-node-exporter)",
    );
    (prometheus, node_exporter)
}

/// Starts a node exporter on `port`, logging to `dir/<name>.log`.
pub fn start_node_exporter(children: &mut Children, binary: &Path, dir: &Path, port: u16) {
    let log = std::fs::File::create(dir.join("node-exporter.log")).unwrap();
    let node = Command::new(binary)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    children.0.push(("node exporter".into(), node));
}

/// Starts a Prometheus named `name` with configuration `yml` on `port` (config, TSDB
/// and log under `dir/<name>…`) and waits until it is ready (30 s at most). Returns its
/// log's path. Pushed first: [`Children::stop`] stops it before what it scrapes.
pub async fn start_prometheus(
    children: &mut Children,
    binary: &Path,
    dir: &Path,
    name: &str,
    yml: &str,
    port: u16,
) -> PathBuf {
    let config = dir.join(format!("{name}.yml"));
    std::fs::write(&config, yml).unwrap();
    let log_path = dir.join(format!("{name}.log"));
    let prom = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join(format!("{name}-data")).display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    children.0.insert(0, (name.to_string(), prom));
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(port, "/-/ready").await.map(|(s, _)| s) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "{name} not ready within 30 s:\n{}",
            tail(&log_path, 30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    log_path
}

/// `GET path` on a Prometheus' HTTP API: the `data` of a `"status":"success"` answer,
/// or a panic with the answer.
pub async fn api(port: u16, path: impl Into<String>) -> serde_json::Value {
    let path = path.into();
    let t = Instant::now();
    let (status, body) = get(port, path.clone())
        .await
        .unwrap_or_else(|| panic!("no answer to {path} within {:?}", t.elapsed()));
    if t.elapsed() > Duration::from_secs(2) {
        eprintln!("slow answer ({:?}) to {path}", t.elapsed());
    }
    let v: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{path}: {status}: not JSON ({e}): {body}"));
    assert!(
        status == 200 && v["status"] == "success",
        "{path}: {status}: {body}"
    );
    v["data"].clone()
}
