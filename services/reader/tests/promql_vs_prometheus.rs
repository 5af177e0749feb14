//! carat's PromQL against a real Prometheus 2.42 (Debian's `prometheus` and `promtool`,
//! installed by scripts/install-deps.sh) over the same samples: counters with resets,
//! gauges, a classic histogram, a series with a gap, jittered scrapes, and a series that
//! goes stale (Prometheus' stale marker). Prometheus gets them through its own TSDB
//! (`promtool tsdb create-blocks-from openmetrics`; the stale markers, which OpenMetrics
//! text cannot carry, through its remote-write receiver); carat holds them in its
//! in-memory tiers. Every query of the corpus runs on both HTTP APIs and the answers
//! must agree: the same label sets, the same timestamps, values within 1e-9 relative.
#![allow(clippy::unwrap_used)]

mod common;
mod promql_fixture;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use carat_api::remote_write::{Label, Sample, TimeSeries, WriteRequest, STALE_NAN_BITS};
use carat_core::Config;
use promql_fixture::{enc, Fixture};
use serde_json::Value;

/// 2026-11-30 00:00 UTC. OpenMetrics samples cover [T0, T0 + 6 h); the stale series
/// (remote-written, so after the blocks) covers [T0 + 6 h, T0 + 7 h].
const T0: i64 = 1_764_460_800;
const H: i64 = 3_600;

type Labels = Vec<(&'static str, String)>;

/// One series of the data set.
struct Gen {
    labels: Labels,
    points: Vec<(i64, f64)>,
}

/// A small deterministic generator (an LCG), so both sides get the same samples.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn l(name: &'static str, pairs: &[(&'static str, &str)]) -> Labels {
    let mut v: Labels = vec![("__name__", name.to_string())];
    v.extend(pairs.iter().map(|(k, v)| (*k, (*v).to_string())));
    v
}

/// A counter scraped every `every` s (± `jitter` s) from `from` to `to`, growing by
/// up to `max_inc` per scrape, reset to a small value at the `resets`.
fn counter(
    labels: Labels,
    rng: &mut Lcg,
    (from, to): (i64, i64),
    every: i64,
    jitter: i64,
    max_inc: u64,
    resets: &[i64],
) -> Gen {
    let mut points = Vec::new();
    let mut t = from;
    let mut v = rng.below(100) as f64;
    let mut next_reset = resets.iter().copied().peekable();
    while t < to {
        if next_reset.peek().is_some_and(|&r| t >= r) {
            next_reset.next();
            v = rng.below(5) as f64;
        } else {
            v += rng.below(max_inc) as f64 + 0.5 * rng.below(2) as f64;
        }
        points.push((t, v));
        t += every
            + if jitter > 0 {
                rng.below(2 * jitter as u64 + 1) as i64 - jitter
            } else {
                0
            };
    }
    Gen { labels, points }
}

/// A gauge every `every` s: a slow wave plus noise, two decimals, with optional gaps.
fn gauge(labels: Labels, rng: &mut Lcg, base: f64, every: i64, gaps: &[(i64, i64)]) -> Gen {
    let mut points = Vec::new();
    let mut t = T0;
    while t < T0 + 6 * H {
        if !gaps.iter().any(|&(a, b)| t >= a && t < b) {
            let wave = 8.0 * ((t - T0) as f64 / 1_800.0).sin();
            let noise = rng.below(1_000) as f64 / 100.0 - 5.0;
            points.push((t, ((base + wave + noise) * 100.0).round() / 100.0));
        }
        t += every;
    }
    Gen { labels, points }
}

/// A classic histogram (`_bucket` with `le`, `_sum`, `_count`) scraped every 15 s.
fn histogram(job: &'static str, rng: &mut Lcg, out: &mut Vec<Gen>) {
    let bounds = ["0.1", "0.5", "1", "+Inf"];
    let mut counts = [0.0_f64; 4];
    let mut sum = 0.0_f64;
    let mut series: Vec<Vec<(i64, f64)>> = vec![Vec::new(); 6];
    let mut t = T0;
    while t < T0 + 6 * H {
        let mut cum = 0.0;
        for (i, c) in counts.iter_mut().enumerate() {
            cum += rng.below(6 - i as u64) as f64;
            *c += cum;
        }
        // Keep them cumulative: each bucket at least the one below it.
        for i in 1..4 {
            if counts[i] < counts[i - 1] {
                counts[i] = counts[i - 1];
            }
        }
        sum += rng.below(500) as f64 / 100.0;
        for (i, c) in counts.iter().enumerate() {
            series[i].push((t, *c));
        }
        series[4].push((t, (sum * 100.0).round() / 100.0));
        series[5].push((t, counts[3]));
        t += 15;
    }
    for (i, b) in bounds.iter().enumerate() {
        out.push(Gen {
            labels: l(
                "request_duration_seconds_bucket",
                &[("job", job), ("le", b)],
            ),
            points: series[i].clone(),
        });
    }
    out.push(Gen {
        labels: l("request_duration_seconds_sum", &[("job", job)]),
        points: series[4].clone(),
    });
    out.push(Gen {
        labels: l("request_duration_seconds_count", &[("job", job)]),
        points: series[5].clone(),
    });
}

/// The OpenMetrics part of the data set ([T0, T0 + 6 h)).
fn data_set() -> Vec<Gen> {
    let mut rng = Lcg(42);
    let mut out = vec![
        counter(
            l(
                "http_requests_total",
                &[("job", "api"), ("instance", "a:1"), ("code", "200")],
            ),
            &mut rng,
            (T0, T0 + 6 * H),
            15,
            0,
            20,
            &[T0 + 2 * H, T0 + 4 * H + 1_800],
        ),
        counter(
            l(
                "http_requests_total",
                &[("job", "api"), ("instance", "b:1"), ("code", "500")],
            ),
            &mut rng,
            (T0, T0 + 6 * H),
            15,
            0,
            3,
            &[],
        ),
        counter(
            l(
                "http_requests_total",
                &[("job", "web"), ("instance", "a:1"), ("code", "200")],
            ),
            &mut rng,
            (T0, T0 + 6 * H),
            15,
            5,
            30,
            &[T0 + 3 * H + 7],
        ),
        counter(
            l(
                "http_requests_total",
                &[("job", "web"), ("instance", "c:1"), ("code", "404")],
            ),
            &mut rng,
            (T0 + H, T0 + 5 * H),
            30,
            3,
            7,
            &[],
        ),
        gauge(
            l("temperature", &[("room", "kitchen")]),
            &mut rng,
            21.0,
            15,
            &[],
        ),
        gauge(
            l("temperature", &[("room", "attic"), ("floor", "3")]),
            &mut rng,
            5.0,
            15,
            &[],
        ),
        gauge(
            l("temperature", &[("room", "cellar")]),
            &mut rng,
            -2.0,
            60,
            &[],
        ),
        // A 20-minute gap (longer than the lookback) and a 4-minute one (shorter).
        gauge(
            l("gappy_gauge", &[("job", "batch")]),
            &mut rng,
            50.0,
            30,
            &[(T0 + H, T0 + H + 1_200), (T0 + 3 * H, T0 + 3 * H + 240)],
        ),
    ];
    histogram("api", &mut rng, &mut out);
    histogram("web", &mut rng, &mut out);
    out
}

/// The remote-written part: `job_up{job="batch"}` goes stale at T0+6h30m and comes
/// back at T0+6h45m; `job_up{job="cron"}` runs throughout.
fn stale_set() -> Vec<Gen> {
    let stale = f64::from_bits(STALE_NAN_BITS);
    let mut batch = Vec::new();
    let mut cron = Vec::new();
    let mut t = T0 + 6 * H + 60;
    let mut i = 0.0;
    while t <= T0 + 7 * H {
        let gone = t > T0 + 6 * H + 1_800 && t < T0 + 6 * H + 2_700;
        if t == T0 + 6 * H + 1_815 {
            batch.push((t, stale));
        } else if !gone {
            batch.push((t, 1.0 + i % 3.0));
        }
        cron.push((t, 100.0 + i));
        i += 1.0;
        t += 15;
    }
    vec![
        Gen {
            labels: l("job_up", &[("job", "batch")]),
            points: batch,
        },
        Gen {
            labels: l("job_up", &[("job", "cron")]),
            points: cron,
        },
    ]
}

fn openmetrics(set: &[Gen]) -> String {
    let mut s = String::new();
    for g in set {
        let name = &g.labels[0].1;
        let rest: Vec<String> = g.labels[1..]
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        for (t, v) in &g.points {
            writeln!(s, "{name}{{{}}} {v} {t}", rest.join(",")).unwrap();
        }
    }
    s.push_str("# EOF\n");
    s
}

/// One HTTP/1.0 exchange with the local Prometheus (no client crate needed).
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, Vec<u8>)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        write!(req, "{k}: {v}\r\n").unwrap();
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..split]).ok()?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, buf[split + 4..].to_vec()))
}

struct Prometheus {
    child: Child,
    port: u16,
    /// The TSDB, config and log, under the target dir; kept when the test fails.
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Backfills the OpenMetrics set with promtool, starts Prometheus over it, then
/// remote-writes the stale set.
fn start_prometheus(set: &[Gen], stale: &[Gen]) -> Prometheus {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("promql-vs-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let om = dir.join("data.om");
    std::fs::write(&om, openmetrics(set)).unwrap();
    let tsdb = dir.join("tsdb");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&tsdb)
        .output()
        .expect("promtool (Debian's prometheus package; scripts/install-deps.sh)");
    assert!(
        out.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, "global:\n  scrape_interval: 1m\nscrape_configs: []\n").unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.tsdb.path={}", tsdb.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--storage.tsdb.retention.time=100y")
        .arg("--web.enable-remote-write-receiver")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("prometheus (scripts/install-deps.sh)");
    let p = Prometheus {
        child,
        port,
        dir: dir.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while http(port, "GET", "/-/ready", &[], b"").map(|r| r.0) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "prometheus not ready; log in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Remote write in time order (the head takes samples after the backfilled blocks).
    use prost::Message as _;
    let req = WriteRequest {
        timeseries: stale
            .iter()
            .map(|g| TimeSeries {
                labels: g
                    .labels
                    .iter()
                    .map(|(k, v)| Label {
                        name: (*k).to_string(),
                        value: v.clone(),
                    })
                    .collect(),
                samples: g
                    .points
                    .iter()
                    .map(|&(t, v)| Sample {
                        value: v,
                        timestamp: t * 1000,
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap();
    let (status, text) = http(
        port,
        "POST",
        "/api/v1/write",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ],
        &body,
    )
    .unwrap();
    assert!(
        status / 100 == 2,
        "remote write: {status} {}",
        String::from_utf8_lossy(&text)
    );
    p
}

/// A query of the corpus.
enum Q {
    Instant(&'static str, i64),
    Range(&'static str, i64, i64, i64),
}

impl Q {
    fn uri(&self) -> String {
        match self {
            Q::Instant(q, t) => format!("/api/v1/query?query={}&time={t}", enc(q)),
            Q::Range(q, s, e, step) => {
                format!(
                    "/api/v1/query_range?query={}&start={s}&end={e}&step={step}",
                    enc(q)
                )
            }
        }
    }
}

fn corpus() -> Vec<Q> {
    use Q::{Instant as I, Range as R};
    let t1 = T0 + H + 7;
    let t2 = T0 + 3 * H + 2;
    let (rs, re) = (T0 + 1_800, T0 + 5 * H + 1_800);
    let s = T0 + 6 * H;
    vec![
        I("1+1", 4),
        I("time()", t1),
        R("time() - 100", rs, re, 300),
        I("vector(1)", t1),
        R("vector(time())", rs, re, 600),
        I("scalar(sum(http_requests_total))", t1),
        I("http_requests_total", t1),
        I(r#"http_requests_total{job="api"}"#, t1),
        I(r#"http_requests_total{code!="200"}"#, t2),
        I(r#"http_requests_total{instance=~"a:.*"}"#, t1),
        I(r#"http_requests_total{instance!~"a.*"}"#, t1),
        I(r#"http_requests_total{instance=~"a"}"#, t1),
        I(r#"{job="api"}"#, t1),
        I(r#"{__name__=~"temp.*"}"#, t1),
        I("http_requests_total offset 10m", t2),
        R("http_requests_total", rs, re, 60),
        R("temperature", rs, re, 37),
        I("temperature[2m]", t1),
        R("rate(http_requests_total[5m])", rs, re, 60),
        R("rate(http_requests_total[1m])", rs, re, 30),
        R("irate(http_requests_total[5m])", rs, re, 60),
        R("increase(http_requests_total[10m])", rs, re, 120),
        R("delta(temperature[10m])", rs, re, 120),
        I("rate(http_requests_total[5m] offset 30m)", t2),
        R("idelta(temperature[3m])", rs, re, 300),
        R("avg_over_time(temperature[10m])", rs, re, 300),
        R("sum_over_time(temperature[10m])", rs, re, 300),
        R("min_over_time(temperature[7m])", rs, re, 300),
        R("max_over_time(temperature[7m])", rs, re, 300),
        R("count_over_time(temperature[5m])", rs, re, 300),
        R("last_over_time(temperature[5m])", rs, re, 300),
        R("stddev_over_time(temperature[15m])", rs, re, 300),
        R("stdvar_over_time(temperature[15m])", rs, re, 300),
        R("quantile_over_time(0.9, temperature[15m])", rs, re, 300),
        R("changes(temperature[10m])", rs, re, 600),
        R("resets(http_requests_total[30m])", rs, re, 600),
        R("sum(rate(http_requests_total[5m]))", rs, re, 60),
        R("sum by (job) (rate(http_requests_total[5m]))", rs, re, 60),
        R("sum without (instance) (http_requests_total)", rs, re, 120),
        R("avg by (job) (http_requests_total)", rs, re, 120),
        R("min(temperature)", rs, re, 120),
        R("max by (room) (temperature)", rs, re, 120),
        R("count by (code) (http_requests_total)", rs, re, 120),
        R("stddev(temperature)", rs, re, 300),
        R("quantile(0.5, temperature)", rs, re, 300),
        R("topk(2, temperature)", rs, re, 120),
        R("bottomk(1, temperature)", rs, re, 120),
        I("topk(1, http_requests_total) by (job)", t2),
        R("http_requests_total * 2", rs, re, 300),
        R("2 - temperature", rs, re, 300),
        R("-temperature", rs, re, 300),
        R("temperature % 7", rs, re, 300),
        R("temperature ^ 2", rs, re, 300),
        R("temperature > 20", rs, re, 60),
        R("20 < temperature", rs, re, 60),
        R("temperature > bool 20", rs, re, 60),
        R(r#"temperature == bool temperature{room="kitchen"}"#, rs, re, 300),
        R(
            r#"temperature{room!="attic"} - ignoring(room) group_left temperature{room="kitchen"}"#,
            rs,
            re,
            300,
        ),
        R(
            "http_requests_total / ignoring(code) group_left sum without (code) (http_requests_total)",
            rs,
            re,
            300,
        ),
        R(
            "sum by (job) (rate(http_requests_total[5m])) / on(job) group_right rate(http_requests_total[5m])",
            rs,
            re,
            300,
        ),
        R(
            "rate(http_requests_total[5m]) * on(instance) group_left(room) label_replace(temperature{room=\"kitchen\"}, \"instance\", \"a:1\", \"room\", \"kitchen\")",
            rs,
            re,
            600,
        ),
        // Refused by both: many-to-many (duplicate series on the "one" side), and
        // one-to-one where many match.
        R(
            "rate(http_requests_total[5m]) * on(instance) group_left(room) label_replace(temperature, \"instance\", \"a:1\", \"room\", \"kitchen\")",
            rs,
            re,
            600,
        ),
        I(r#"temperature - ignoring(room) temperature{room="kitchen"}"#, t1),
        R("sum by (job) (http_requests_total) > on(job) sum by (job) (http_requests_total offset 1h)", rs, re, 300),
        R(r#"http_requests_total and http_requests_total{code="200"}"#, rs, re, 300),
        R(r#"http_requests_total{job="api"} or http_requests_total{job="web"}"#, rs, re, 300),
        R(r#"http_requests_total unless on(job) http_requests_total{code="404"}"#, rs, re, 300),
        R("temperature or vector(1)", rs, re, 600),
        R("histogram_quantile(0.9, rate(request_duration_seconds_bucket[5m]))", rs, re, 60),
        R(
            "histogram_quantile(0.5, sum by (le) (rate(request_duration_seconds_bucket[5m])))",
            rs,
            re,
            60,
        ),
        I("histogram_quantile(0.99, request_duration_seconds_bucket)", t1),
        R("rate(request_duration_seconds_sum[5m]) / rate(request_duration_seconds_count[5m])", rs, re, 120),
        R("abs(temperature)", rs, re, 300),
        R("exp(temperature / 10)", rs, re, 600),
        R("sqrt(temperature)", rs, re, 600),
        R("ln(abs(temperature))", rs, re, 600),
        R("log2(http_requests_total) + log10(http_requests_total)", rs, re, 600),
        R("temperature atan2 ignoring(room) group_left temperature{room=\"kitchen\"}", rs, re, 600),
        R("group by (job) (http_requests_total)", rs, re, 600),
        R("stdvar by (job) (http_requests_total)", rs, re, 600),
        R("present_over_time(gappy_gauge[2m])", T0 + H - 600, T0 + 3 * H + 600, 60),
        R("clamp(temperature, 0, 20)", rs, re, 300),
        R("clamp_min(temperature, 10)", rs, re, 300),
        R("clamp_max(temperature, 10)", rs, re, 300),
        R("round(temperature)", rs, re, 300),
        R("round(temperature, 0.5)", rs, re, 300),
        R("ceil(temperature)", rs, re, 300),
        R("floor(temperature)", rs, re, 300),
        R(
            r#"label_replace(http_requests_total, "host", "$1", "instance", "(.*):.*")"#,
            rs,
            re,
            600,
        ),
        R(r#"label_replace(temperature, "room", "", "room", "kit.*")"#, rs, re, 600),
        R("gappy_gauge", T0 + H - 600, T0 + 3 * H + 600, 30),
        R("last_over_time(gappy_gauge[10m])", T0 + H - 600, T0 + 3 * H + 600, 60),
        R("rate(gappy_gauge[5m])", T0 + H - 600, T0 + 3 * H + 600, 60),
        R("max_over_time(rate(http_requests_total[5m])[30m:1m])", rs, re, 300),
        R("avg_over_time(temperature[10m:])", rs, re, 300),
        I("rate(http_requests_total[5m])[10m:2m]", t2),
        R("min_over_time(sum by (job) (http_requests_total)[20m:90s] offset 5m)", rs, re, 600),
        R("sum_over_time((temperature > bool 20)[15m:30s])", rs, re, 300),
        R("temperature @ start()", rs, re, 600),
        R("rate(http_requests_total[5m] @ end())", rs, re, 600),
        R("temperature - temperature @ start()", rs, re, 600),
        I(leak(format!("http_requests_total @ {} offset 5m", T0 + 2 * H)), t2),
        R("job_up", s, s + H, 15),
        R("count_over_time(job_up[5m])", s, s + H, 60),
        R("max_over_time(job_up[10m])", s, s + H, 60),
        I("job_up", s + 1_800),
        I("job_up", s + 1_816),
        I("job_up[3m]", s + 1_900),
        R("sum(job_up)", s, s + H, 30),
        R("http_requests_total", T0 + 5 * H + 1_800, T0 + 6 * H + 600, 60),
    ]
}

/// Queries of the corpus whose answer is empty: the anchoring of regular expressions.
const EXPECT_EMPTY: &[&str] = &[r#"http_requests_total{instance=~"a"}"#];

/// A query text made at run time, for the corpus's `&'static str`s.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

type Norm = (String, BTreeMap<String, Vec<(f64, String)>>);

/// An answer as (resultType, labels ⇒ points), for comparing; panics on a bad shape.
fn normalize(v: &Value) -> Norm {
    let data = &v["data"];
    let kind = data["resultType"].as_str().unwrap_or("?").to_string();
    let point = |p: &Value| (p[0].as_f64().unwrap(), p[1].as_str().unwrap().to_string());
    let mut out = BTreeMap::new();
    match kind.as_str() {
        "scalar" | "string" => {
            out.insert(String::new(), vec![point(&data["result"])]);
        }
        _ => {
            for s in data["result"].as_array().unwrap() {
                let labels: BTreeMap<String, String> =
                    serde_json::from_value(s["metric"].clone()).unwrap();
                let key = format!("{labels:?}");
                let pts = match s.get("value") {
                    Some(p) => vec![point(p)],
                    None => s["values"].as_array().unwrap().iter().map(point).collect(),
                };
                assert!(out.insert(key, pts).is_none(), "a label set twice: {v}");
            }
        }
    }
    (kind, out)
}

fn same_value(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) if x.is_nan() && y.is_nan() => true,
        (Ok(x), Ok(y)) => {
            let scale = x.abs().max(y.abs());
            (x - y).abs() <= 1e-9 * scale || (x - y).abs() < 1e-12
        }
        _ => false,
    }
}

/// The first difference between two normalized answers.
fn diff(prom: &Norm, carat: &Norm) -> Option<String> {
    if prom.0 != carat.0 {
        return Some(format!("resultType {} vs {}", prom.0, carat.0));
    }
    let pk: Vec<&String> = prom.1.keys().collect();
    let ck: Vec<&String> = carat.1.keys().collect();
    if pk != ck {
        return Some(format!("series {pk:?} vs {ck:?}"));
    }
    for (k, pp) in &prom.1 {
        let cp = &carat.1[k];
        if pp.len() != cp.len() {
            let first = pp
                .iter()
                .zip(cp)
                .position(|(a, b)| a.0 != b.0)
                .unwrap_or(pp.len().min(cp.len()));
            return Some(format!(
                "{k}: {} vs {} points; the first difference: {:?} vs {:?}",
                pp.len(),
                cp.len(),
                pp.get(first),
                cp.get(first)
            ));
        }
        for (a, b) in pp.iter().zip(cp) {
            if a.0 != b.0 || !same_value(&a.1, &b.1) {
                return Some(format!("{k}: {a:?} vs {b:?}"));
            }
        }
    }
    None
}

async fn carat_fixture(set: &[Gen]) -> Fixture {
    let mut cfg = Config::default();
    cfg.reader.max_points_per_answer = 1_000_000;
    let f = Fixture::new(cfg, T0 + 8 * H);
    for g in set {
        let labels: Vec<(&str, &str)> = g.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        f.store(&labels, &g.points).await;
    }
    f
}

#[tokio::test]
#[ignore = "needs Debian's prometheus (scripts/install-deps.sh)"]
async fn promql_answers_equal_prometheus() {
    let set = data_set();
    let stale = stale_set();
    let prom = start_prometheus(&set, &stale);
    let mut all = set;
    all.extend(stale);
    let carat = carat_fixture(&all).await;

    let mut failures = Vec::new();
    let mut refused = 0;
    let queries = corpus();
    for q in &queries {
        let uri = q.uri();
        let (ps, pbody) = http(prom.port, "GET", &uri, &[], b"").expect("prometheus answers");
        let pjson: Value = serde_json::from_slice(&pbody).unwrap();
        let (cs, cjson, _) = carat.get(&uri).await;
        if ps != 200 {
            // Refused by Prometheus: carat must refuse it the same way.
            if cs.as_u16() != ps || cjson["errorType"] != pjson["errorType"] {
                failures.push(format!(
                    "{uri}\n  Prometheus {ps}: {pjson}\n  carat {cs}: {cjson}"
                ));
            }
            refused += 1;
            continue;
        }
        if cs != 200 {
            failures.push(format!("{uri}\n  carat {cs}: {cjson}"));
            continue;
        }
        let (pn, cn) = (normalize(&pjson), normalize(&cjson));
        // Every query must have an answer on Prometheus (else comparing proves
        // nothing), but those that check that something matches nothing.
        let expr = match q {
            Q::Instant(e, _) | Q::Range(e, ..) => *e,
        };
        if pn.1.is_empty() != EXPECT_EMPTY.contains(&expr) {
            failures.push(format!(
                "{uri}\n  Prometheus' answer is unexpectedly (non-)empty: {pjson}"
            ));
        }
        if let Some(d) = diff(&pn, &cn) {
            failures.push(format!("{uri}\n  {d}"));
        }
    }
    // The listings: the same label sets, names and values (order aside).
    for uri in [
        format!("/api/v1/series?match[]={}", enc("http_requests_total")),
        format!(
            "/api/v1/series?match[]={}&match[]={}",
            enc(r#"{job="api"}"#),
            enc("job_up")
        ),
        format!(
            "/api/v1/series?match[]={}",
            enc(r#"{__name__=~"request_.*",le="+Inf"}"#)
        ),
        "/api/v1/labels".to_string(),
        format!("/api/v1/labels?match[]={}", enc("temperature")),
        "/api/v1/label/__name__/values".to_string(),
        "/api/v1/label/job/values".to_string(),
        format!("/api/v1/label/le/values?match[]={}", enc(r#"{job="web"}"#)),
    ] {
        let (ps, pbody) = http(prom.port, "GET", &uri, &[], b"").expect("prometheus answers");
        let pjson: Value = serde_json::from_slice(&pbody).unwrap();
        let (cs, cjson, _) = carat.get(&uri).await;
        let sorted = |v: &Value| {
            let mut items: Vec<String> = v["data"]
                .as_array()
                .map(|a| a.iter().map(Value::to_string).collect())
                .unwrap_or_default();
            items.sort();
            items
        };
        assert_eq!(ps, 200, "{uri}: {pjson}");
        if cs != 200 || sorted(&pjson).is_empty() || sorted(&pjson) != sorted(&cjson) {
            failures.push(format!(
                "{uri}\n  Prometheus {pjson}\n  carat {cs}: {cjson}"
            ));
        }
    }
    println!(
        "{} queries on both APIs ({refused} refused by Prometheus), {} differ",
        queries.len(),
        failures.len()
    );
    // The corpus has this many queries Prometheus refuses; the rest must be answered.
    assert_eq!(refused, 2, "queries Prometheus refused");
    assert!(
        failures.is_empty(),
        "{} of {} queries differ from Prometheus:\n{}",
        failures.len(),
        queries.len(),
        failures.join("\n")
    );
}
