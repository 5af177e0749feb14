//! Scenario 8, load: bounded concurrent Mackerel-agent-shaped ingest on loopback against a
//! carat of the scenario's own, with concurrent reads, and zero acknowledged points lost.
//!
//! - The write load is `carat bench` (the CLI, docs/cli.md): `POST /api/v0/tsdb`, one post
//!   per host and minute holding that minute's value of each of the host's metrics, over
//!   `CARAT_LOAD_CONNECTIONS` connections, `--verify --json`.
//! - While it runs, the scenario measures end-to-end post ⇒ readable: every 250 ms it posts
//!   one agent-shaped post of its own (a host of its own, the current minute) and polls the
//!   native read API until every point of it reads back bit-exact.
//! - Also while it runs, three readers (native `/api/v1/points` raw, Graphite `/render`,
//!   PromQL `/api/v1/query_range`) each read one random bench host's series over the run's
//!   range in a loop, for their latency.
//! - After the load, once every bench series has its window item in DynamoDB (the flush ran:
//!   `window.flush_point_threshold` = the minutes per series, so each series' window is
//!   flushed when its last minute lands), every acknowledged point — the bench's (its
//!   `--json` lists the minutes and any post not acknowledged) and the samples' — is read
//!   back and compared bit-exact. That is the only assert; the timings are printed
//!   (docs/BENCHMARKS.md, "Load on the local system").
//!
//! Sizes (env): `CARAT_LOAD_POINTS` (5,000), `CARAT_LOAD_CONNECTIONS` (8),
//! `CARAT_LOAD_METRICS` per post (50), `CARAT_LOAD_MINUTES` per host (20); hosts =
//! points ÷ (metrics × minutes). `CARAT_LOAD_KEEP_LOG=FILE` keeps carat's log there.
#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use carat_system_tests::{now_secs, Carat, Http, Options};
use hyper::Method;
use serde_json::{json, Value};

fn env_usize(k: &str, default: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Percent-encodes a query parameter value.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Nearest-rank quantile of sorted `v` (as `carat bench` computes it).
fn q(v: &[f64], x: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((x * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// What a scenario task needs to talk to the carat: its client, base URL and key.
#[derive(Clone)]
struct Client {
    http: Http,
    url: String,
    key: String,
}

impl Client {
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: String,
    ) -> Result<(u16, Value, Duration), String> {
        let r = self
            .http
            .send(
                method,
                &format!("{}{path}", self.url),
                &[
                    ("X-Api-Key", &self.key),
                    ("Content-Type", "application/json"),
                ],
                body,
            )
            .await?;
        let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        Ok((r.status.as_u16(), v, r.elapsed))
    }

    async fn get(&self, path: &str) -> Result<(u16, Value, Duration), String> {
        self.send(Method::GET, path, String::new()).await
    }

    /// The raw points of the series matching `pattern` in [from, to]: name → time → value bits.
    async fn points(
        &self,
        pattern: &str,
        from: i64,
        to: i64,
    ) -> Option<BTreeMap<String, BTreeMap<i64, u64>>> {
        let (status, v, _) = self
            .get(&format!(
                "/api/v1/points?series={}&from={from}&to={to}&resolution=raw",
                enc(pattern)
            ))
            .await
            .ok()?;
        if status != 200 {
            return None;
        }
        let mut out = BTreeMap::new();
        for s in v["series"].as_array()? {
            let name = s["name"].as_str()?.to_string();
            let pts: &mut BTreeMap<i64, u64> = out.entry(name).or_default();
            for p in s["points"].as_array()? {
                pts.insert(p[0].as_i64()?, p[1].as_f64()?.to_bits());
            }
        }
        Some(out)
    }
}

impl Client {
    /// [`Client::points`], retried for up to a minute (a tier answering 503 under load).
    async fn points_patiently(
        &self,
        pattern: &str,
        from: i64,
        to: i64,
    ) -> BTreeMap<String, BTreeMap<i64, u64>> {
        for _ in 0..60 {
            if let Some(p) = self.points(pattern, from, to).await {
                return p;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        panic!("no 200 answer reading {pattern} for a minute");
    }
}

/// One end-to-end sample: a post of its own host at the current minute.
struct Sample {
    host: String,
    time: i64,
    values: Vec<f64>,
    acked: bool,
    /// From sending the post to every point readable, if that happened within 60 s.
    readable_ms: Option<f64>,
    api_ms: f64,
}

fn sample_body(host: &str, time: i64, values: &[f64]) -> String {
    let pts: Vec<Value> = values
        .iter()
        .enumerate()
        .map(|(m, v)| json!({"hostId": host, "name": format!("e2e.m{m:03}"), "time": time, "value": v}))
        .collect();
    Value::Array(pts).to_string()
}

/// True when `got` holds exactly `values` at `time` for `host`'s e2e metrics.
fn sample_matches(
    got: &BTreeMap<String, BTreeMap<i64, u64>>,
    host: &str,
    time: i64,
    values: &[f64],
) -> bool {
    values.iter().enumerate().all(|(m, v)| {
        got.get(&format!("host.{host}.e2e.m{m:03}"))
            .and_then(|p| p.get(&time))
            == Some(&v.to_bits())
    })
}

/// Posts sample `i` (at `time`, a second of its own) and polls until it reads back.
async fn run_sample(c: &Client, i: usize, time: i64, metrics: usize, host: &str) -> Sample {
    let values: Vec<f64> = (0..metrics)
        .map(|m| (i * metrics + m) as f64 + 0.25)
        .collect();
    let t0 = Instant::now();
    let posted = c
        .send(
            Method::POST,
            "/api/v0/tsdb",
            sample_body(host, time, &values),
        )
        .await;
    let api_ms = t0.elapsed().as_secs_f64() * 1e3;
    let acked = matches!(posted, Ok((200, _, _)));
    let mut s = Sample {
        host: host.to_string(),
        time,
        values,
        acked,
        readable_ms: None,
        api_ms,
    };
    if !acked {
        return s;
    }
    let deadline = t0 + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(got) = c.points(&format!("host.{host}.e2e.*"), time, time).await {
            if sample_matches(&got, host, time, &s.values) {
                s.readable_ms = Some(t0.elapsed().as_secs_f64() * 1e3);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s
}

/// Latencies (ms) of one read route, and the answers that were not 200.
#[derive(Default)]
struct Reads {
    ok_ms: Vec<f64>,
    failed: usize,
    last_failure: Option<String>,
}

#[allow(clippy::too_many_arguments)]
async fn reader(
    c: Client,
    kind: &'static str,
    run: String,
    hosts: usize,
    from: i64,
    to: i64,
    done: Arc<AtomicBool>,
) -> Reads {
    let mut r = Reads::default();
    let mut n = 0usize;
    while !done.load(Ordering::Relaxed) {
        let h = (n * 7919) % hosts;
        n += 1;
        let series = format!("host.{run}-h{h:04}.bench.*");
        let path = match kind {
            "native" => format!(
                "/api/v1/points?series={}&from={from}&to={to}&resolution=raw",
                enc(&series)
            ),
            "graphite" => format!(
                "/render?target={}&from={from}&until={to}&format=json",
                enc(&series)
            ),
            _ => format!(
                "/api/v1/query_range?query={}&start={from}&end={to}&step=60",
                enc(&format!("{{hostId=\"{run}-h{h:04}\"}}"))
            ),
        };
        match c.get(&path).await {
            Ok((200, _, d)) => r.ok_ms.push(d.as_secs_f64() * 1e3),
            Ok((status, v, _)) => {
                r.failed += 1;
                r.last_failure = Some(format!("{status}: {v}"));
            }
            Err(e) => {
                r.failed += 1;
                r.last_failure = Some(e);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the local system's Redis cluster and AWS stand-in (make test starts them)"]
async fn agent_shaped_load_with_concurrent_reads_loses_no_acknowledged_point() {
    let points = env_usize("CARAT_LOAD_POINTS", 5_000);
    let conns = env_usize("CARAT_LOAD_CONNECTIONS", 8).max(1);
    let metrics = env_usize("CARAT_LOAD_METRICS", 50).max(1);
    let minutes = env_usize("CARAT_LOAD_MINUTES", 20).max(1);
    let window = env_usize("CARAT_LOAD_WINDOW_SECS", 3600);
    let flush = env_usize("CARAT_LOAD_FLUSH", 1) == 1;
    let patience =
        Duration::from_secs(u64::try_from(env_usize("CARAT_LOAD_VERIFY_SECS", 300)).unwrap());
    let hosts = (points / (metrics * minutes)).max(1);
    let mut opts = Options::new("load")
        // Windows open during the run (an hour; production: a day).
        .set("window.raw_secs", i64::try_from(window).unwrap())
        .set(
            "ingest.max_lateness_secs",
            i64::try_from(minutes * 60 + 1800).unwrap(),
        );
    if flush {
        // Each series' window is flushed to DynamoDB when its last minute lands.
        opts = opts.set(
            "window.flush_point_threshold",
            i64::try_from(minutes).unwrap(),
        );
    }
    let c = Carat::start(opts).await;
    let run = format!(
        "ld{:06x}",
        (std::process::id() as i64 ^ now_secs()) & 0xff_ffff
    );
    let client = Client {
        http: c.http.clone(),
        url: c.url.clone(),
        key: c.key.key.clone(),
    };
    eprintln!(
        "load: {} points = {hosts} hosts × {metrics} metrics × {minutes} minutes over {conns} connections, run {run}, carat {}",
        hosts * metrics * minutes,
        carat_system_tests::system::carat_bin().display()
    );

    let started = Instant::now();
    let bench = c
        .cli()
        .args([
            "bench",
            "--hosts",
            &hosts.to_string(),
            "--metrics",
            &metrics.to_string(),
            "--minutes",
            &minutes.to_string(),
            "--concurrency",
            &conns.to_string(),
            "--run",
            &run,
            "--verify",
            // An answer may take long when the stand-in is busy (the default is 30 s).
            "--timeout",
            "120",
            "--verify-timeout",
            &patience.as_secs().to_string(),
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let bench = tokio::task::spawn_blocking(move || bench.wait_with_output().unwrap());

    // While the bench posts: samples and readers, until it exits.
    let done = Arc::new(AtomicBool::new(false));
    let (from, to) = (
        now_secs() - 60 * i64::try_from(minutes).unwrap() - 60,
        now_secs() + 60,
    );
    let readers: Vec<_> = ["native", "graphite", "promql"]
        .into_iter()
        .map(|kind| {
            tokio::spawn(reader(
                client.clone(),
                kind,
                run.clone(),
                hosts,
                from,
                to,
                Arc::clone(&done),
            ))
        })
        .collect();
    // One sample at a time (post, then poll until readable), so the sampler adds a bounded
    // load: one host of its own, a second of its own per sample.
    let sampler = {
        let (client, host, done) = (client.clone(), format!("{run}-e2e"), Arc::clone(&done));
        tokio::spawn(async move {
            let (mut out, mut last) = (Vec::new(), 0);
            while !done.load(Ordering::Relaxed) {
                let time = now_secs().max(last + 1);
                last = time;
                out.push(run_sample(&client, out.len(), time, metrics, &host).await);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            out
        })
    };
    let out = bench.await.unwrap();
    let bench_secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let samples = sampler.await.unwrap();
    let mut reads = Vec::new();
    for (kind, r) in ["native", "graphite", "promql"].into_iter().zip(readers) {
        reads.push((kind, r.await.unwrap()));
    }

    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "carat bench printed no JSON ({}): {stdout}\n{stderr}",
                out.status
            )
        });
    eprintln!(
        "load: carat bench ({}, {bench_secs:.1} s including --verify): {report}",
        out.status
    );

    // Figures.
    let e2e = sorted(samples.iter().filter_map(|s| s.readable_ms).collect());
    let api = sorted(samples.iter().map(|s| s.api_ms).collect());
    let acked_samples = samples.iter().filter(|s| s.acked).count();
    eprintln!(
        "load: ingest {} points/s acknowledged ({} points, {} requests, {} failed, {} retried, {} s); API latency p50 {} ms, p99 {} ms, max {} ms",
        report["points_per_sec"], report["points"], report["requests"], report["errors"], report["retries"], report["seconds"],
        report["latency_ms"]["p50"], report["latency_ms"]["p99"], report["latency_ms"]["max"]
    );
    eprintln!(
        "load: end to end post ⇒ readable (during the load, {} sampled posts of {metrics} points, {} acknowledged, {} readable within 60 s): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; their API latency p50 {:.0} ms, p99 {:.0} ms",
        samples.len(), acked_samples, e2e.len(), q(&e2e, 0.5), q(&e2e, 0.99), q(&e2e, 1.0), q(&api, 0.5), q(&api, 0.99)
    );
    eprintln!(
        "load: after the load every acknowledged bench point readable {} ms after the last acknowledgement (per host p50 {} ms, p99 {} ms)",
        report["verify"]["readable_after_ms"], report["verify"]["host_delay_ms"]["p50"], report["verify"]["host_delay_ms"]["p99"]
    );
    for (kind, r) in &mut reads {
        let v = sorted(std::mem::take(&mut r.ok_ms));
        eprintln!(
            "load: concurrent reads {kind}: {} answered 200, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} not 200 (last: {:?})",
            v.len(), q(&v, 0.5), q(&v, 0.99), q(&v, 1.0), r.failed, r.last_failure
        );
    }

    // The flush ran: every bench series has its raw window item.
    let series = hosts * metrics;
    let aws = c.aws().await;
    let prefix = format!("{}#host.{run}-h", c.key.tenant);
    let t_flush = Instant::now();
    let mut flushed = 0;
    while flush && t_flush.elapsed() < Duration::from_secs(120) {
        flushed = match aws.items(&c.resources.table).await {
            Ok(items) => items
                .iter()
                .filter_map(|i| i.get("pk")?.as_s().ok())
                .filter(|pk| pk.starts_with(&prefix) && pk.ends_with("#raw"))
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            Err(e) => {
                eprintln!("load: scan: {e}");
                0
            }
        };
        if flushed >= series {
            break;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    eprintln!(
        "load: {flushed} of {series} bench series have their window item in DynamoDB ({:.1} s after the bench ended)",
        t_flush.elapsed().as_secs_f64()
    );

    // Zero loss: every acknowledged point, bit-exact.
    let times: Vec<i64> = report["times"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap())
        .collect();
    assert_eq!(times.len(), minutes);
    let unacked: std::collections::BTreeSet<(usize, usize)> = report["unacknowledged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_u64().unwrap() as usize,
                p[1].as_u64().unwrap() as usize,
            )
        })
        .collect();
    // Read until nothing is missing (a writer catching up) or `patience` passes.
    let t_check = Instant::now();
    let (mut expected, mut missing, mut wrong, mut rounds);
    rounds = 0;
    loop {
        rounds += 1;
        (expected, missing, wrong) = (0usize, Vec::new(), 0usize);
        for h in 0..hosts {
            let host = format!("{run}-h{h:04}");
            let got = client
                .points_patiently(
                    &format!("host.{host}.bench.*"),
                    times[0],
                    times[minutes - 1],
                )
                .await;
            for (k, t) in times.iter().enumerate() {
                if unacked.contains(&(h, k)) {
                    continue;
                }
                for m in 0..metrics {
                    expected += 1;
                    // carat bench's value of (host, metric, minute): docs/cli.md.
                    let want = ((h * metrics + m) as f64 + k as f64 / 64.0).to_bits();
                    match got
                        .get(&format!("host.{host}.bench.m{m:03}"))
                        .and_then(|p| p.get(t))
                    {
                        Some(&v) if v == want => {}
                        Some(_) => wrong += 1,
                        None => missing.push((host.clone(), m, *t)),
                    }
                }
            }
        }
        let first = samples.first().map_or(0, |s| s.time);
        let last = samples.last().map_or(0, |s| s.time);
        let got = client
            .points_patiently(&format!("host.{run}-e2e.e2e.*"), first, last)
            .await;
        for s in samples.iter().filter(|s| s.acked) {
            expected += s.values.len();
            for (m, v) in s.values.iter().enumerate() {
                match got
                    .get(&format!("host.{}.e2e.m{m:03}", s.host))
                    .and_then(|p| p.get(&s.time))
                {
                    Some(&b) if b == v.to_bits() => {}
                    Some(_) => wrong += 1,
                    None => missing.push((s.host.clone(), m, s.time)),
                }
            }
        }
        if (missing.is_empty() && wrong == 0) || t_check.elapsed() > patience {
            break;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    eprintln!(
        "load: zero loss check: {expected} acknowledged points ({} bench posts not acknowledged), {} missing, {wrong} wrong ({rounds} read rounds, {:.1} s)",
        unacked.len(),
        missing.len(),
        t_check.elapsed().as_secs_f64()
    );
    if let Ok(path) = std::env::var("CARAT_LOAD_KEEP_LOG") {
        std::fs::write(&path, c.log()).unwrap();
        eprintln!("load: carat's log copied to {path}");
    }
    assert!(
        missing.is_empty() && wrong == 0,
        "acknowledged points lost: {} missing (first {:?}), {wrong} wrong; carat log ends:\n{}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        c.log_tail(30)
    );
    c.finish().await;
}
