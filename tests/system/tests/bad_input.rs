//! Scenario 7, bad input (issue 11): the corpus `tests/system/corpus/bad_input.toml` of
//! malformed and hostile requests on every ingest and read route, sent to a carat of the
//! scenario's own. Each must get the status the docs promise — a 4xx, never a 5xx or a
//! hang (every exchange is bounded and timed) — with no dependency text in its body; and
//! nothing may be written:
//!
//! - the scenario's own Kinesis stream holds exactly the records of the valid control
//!   posts after the corpus (so no hostile request put anything on the log);
//! - the tenant's series listing (`/metrics/find` over every segment, `/api/v1/names`)
//!   and the catalog table hold only the control series (every hostile request names a
//!   series under `bad…`);
//! - the other tenant's key never sees the main tenant's points (and the other way round),
//!   through every read API;
//! - afterwards `/health` is 200 and a valid post is read back.
#![allow(clippy::unwrap_used, clippy::type_complexity)] // a test: tables of (query, expected) tuples

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use carat_system_tests::{now_secs, wait_for, Carat, Options, Reply};
use hyper::Method;
use serde::Deserialize;

const CORPUS: &str = include_str!("../corpus/bad_input.toml");

/// Points per request in this scenario's config: small, so "too many points" is cheap.
const MAX_POINTS: usize = 1000;
/// Longest one hostile exchange may take before it counts as a hang.
const PATIENCE: Duration = Duration::from_secs(15);
/// The carat process's address-space cap (prlimit --as), bytes.
const MEMORY_CAP: u64 = 6 << 30;
/// What an error body must never carry (dependency text, panics).
const LEAKS: [&str; 11] = [
    "arn:",
    "amazonaws",
    "dynamodb",
    "redis",
    "kinesis",
    "localstack",
    "panicked",
    "backtrace",
    "4566",
    "127.0.0.1:70",
    "s3://",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    route: Vec<Route>,
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Route {
    route: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    gen: Option<String>,
    #[serde(default)]
    params: Vec<(String, String)>,
    #[serde(default)]
    write: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    route: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    gen: Option<String>,
    #[serde(default)]
    params: Vec<(String, String)>,
    #[serde(default)]
    gen_param: Option<(String, String)>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    key: Option<String>,
    expect: u16,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    error_type: Option<String>,
}

/// The times the corpus's placeholders stand for.
struct Times {
    now: i64,
    t: i64,
}

impl Times {
    fn fill(&self, s: &str) -> String {
        s.replace("{now}", &self.now.to_string())
            .replace("{t}", &self.t.to_string())
            .replace("{old}", &(self.now - 7200).to_string())
            .replace("{future}", &(self.now + 7200).to_string())
    }
}

/// One request, ready to send.
struct Req {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn split_route(route: &str) -> (Method, &str) {
    let (m, p) = route.split_once(' ').unwrap();
    (Method::from_bytes(m.as_bytes()).unwrap(), p)
}

fn is_prom_body_route(path: &str) -> bool {
    path.starts_with("/api/v1/write") || path.starts_with("/api/v1/read")
}

#[allow(clippy::too_many_arguments)]
fn build(
    times: &Times,
    route: &str,
    body: Option<&str>,
    gen: Option<&str>,
    params: &[(String, String)],
    gen_param: Option<&(String, String)>,
    headers: &[(String, String)],
) -> Req {
    let (method, path) = split_route(route);
    let mut path = times.fill(path);
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.clone(), times.fill(v)))
        .collect();
    if let Some((name, g)) = gen_param {
        if name == "latest-pairs" {
            for i in 0..101 {
                pairs.push(("hostId".into(), format!("h{i}")));
            }
            for i in 0..100 {
                pairs.push(("name".into(), format!("n{i}")));
            }
        } else {
            pairs.push((name.clone(), gen_text(g)));
        }
    }
    let mut hs: Vec<(String, String)> = Vec::new();
    let mut bytes = match (gen, body) {
        (Some(g), _) => gen_body(g, times),
        (None, Some(b)) => times.fill(b).into_bytes(),
        (None, None) => Vec::new(),
    };
    let form = form_encode(&pairs);
    if !pairs.is_empty() {
        if method == Method::POST && bytes.is_empty() {
            bytes = form.into_bytes();
            hs.push((
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        } else {
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str(&form);
        }
    }
    if is_prom_body_route(&path) {
        hs.push(("Content-Type".into(), "application/x-protobuf".into()));
        hs.push(("Content-Encoding".into(), "snappy".into()));
    } else if method == Method::POST && !bytes.is_empty() && hs.is_empty() {
        hs.push(("Content-Type".into(), "application/json".into()));
    }
    // One connection per exchange: an answer sent before the body was read (413, 401)
    // closes the connection, which a pooled client would reuse and see fail.
    hs.push(("Connection".into(), "close".into()));
    for (k, v) in headers {
        hs.retain(|(h, _)| !h.eq_ignore_ascii_case(k));
        hs.push((k.clone(), v.clone()));
    }
    Req {
        method,
        path,
        headers: hs,
        body: bytes,
    }
}

fn form_encode(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&pct(k));
        out.push('=');
        out.push_str(&pct(v));
    }
    out
}

fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            write!(out, "%{b:02X}").unwrap();
        }
    }
    out
}

/// Generated parameter values (deep nesting, long targets).
fn gen_text(name: &str) -> String {
    match name {
        "deep-braces" => format!("ok.{}b{}", "{a,".repeat(1000), "}".repeat(1000)),
        "graphite-deep-33" => format!("{}ok.native{}", "scale(".repeat(33), ", 1)".repeat(33)),
        "graphite-deep-100000" => {
            format!(
                "{}ok.native{}",
                "sumSeries(".repeat(100_000),
                ")".repeat(100_000)
            )
        }
        "graphite-parens-100000" => {
            format!("{}ok.native{}", "(".repeat(100_000), ")".repeat(100_000))
        }
        "graphite-17k" => format!("sumSeries({})", vec!["ok.native"; 1800].join(",")),
        "promql-parens-10000" => format!("{}up{}", "(".repeat(10_000), ")".repeat(10_000)),
        "promql-sum-2000" => format!("{}up{}", "sum(".repeat(2000), ")".repeat(2000)),
        "promql-neg-5000" => format!("{}1", "-".repeat(5000)),
        other => panic!("unknown parameter generator {other}"),
    }
}

// ---- protobuf + snappy, by hand (the harness links no carat crate) ----

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_varint(out: &mut Vec<u8>, field: u32, v: u64) {
    varint(out, u64::from(field << 3));
    varint(out, v);
}

fn field_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    varint(out, u64::from(field << 3 | 2));
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn field_f64(out: &mut Vec<u8>, field: u32, v: f64) {
    varint(out, u64::from(field << 3 | 1));
    out.extend_from_slice(&v.to_bits().to_le_bytes());
}

/// A `prometheus.TimeSeries`: labels, samples (value, ms), raw histograms.
fn time_series(labels: &[(&str, &str)], samples: &[(f64, i64)], histograms: &[&[u8]]) -> Vec<u8> {
    let mut ts = Vec::new();
    for (n, v) in labels {
        let mut l = Vec::new();
        field_bytes(&mut l, 1, n.as_bytes());
        field_bytes(&mut l, 2, v.as_bytes());
        field_bytes(&mut ts, 1, &l);
    }
    for &(v, t) in samples {
        let mut s = Vec::new();
        field_f64(&mut s, 1, v);
        field_varint(&mut s, 2, t as u64);
        field_bytes(&mut ts, 2, &s);
    }
    for h in histograms {
        field_bytes(&mut ts, 4, h);
    }
    ts
}

fn write_request(series: &[Vec<u8>]) -> Vec<u8> {
    let mut w = Vec::new();
    for ts in series {
        field_bytes(&mut w, 1, ts);
    }
    w
}

/// A `prometheus.ReadRequest` of `queries` (start ms, end ms, matchers (type, name,
/// value)) accepting `types`.
fn read_request(queries: &[(i64, i64, Vec<(u64, &str, &str)>)], types: &[u64]) -> Vec<u8> {
    let mut r = Vec::new();
    for (start, end, matchers) in queries {
        let mut q = Vec::new();
        field_varint(&mut q, 1, *start as u64);
        field_varint(&mut q, 2, *end as u64);
        for (ty, n, v) in matchers {
            let mut m = Vec::new();
            field_varint(&mut m, 1, *ty);
            field_bytes(&mut m, 2, n.as_bytes());
            field_bytes(&mut m, 3, v.as_bytes());
            field_bytes(&mut q, 3, &m);
        }
        field_bytes(&mut r, 1, &q);
    }
    for t in types {
        field_varint(&mut r, 2, *t);
    }
    r
}

fn snappy(b: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(b).unwrap()
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid gzip member holding `data` in stored (uncompressed) deflate blocks.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let chunks: Vec<&[u8]> = data.chunks(65_535).collect();
    for (i, c) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = c.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn rw_valid(times: &Times, metric: &str, value: f64) -> Vec<u8> {
    snappy(&write_request(&[time_series(
        &[("__name__", metric), ("job", "ctl")],
        &[(value, times.t * 1000)],
        &[],
    )]))
}

fn rr_of(metric: &str, times: &Times) -> Vec<u8> {
    snappy(&read_request(
        &[(
            (times.now - 7200) * 1000,
            times.now * 1000,
            vec![(0, "__name__", metric)],
        )],
        &[],
    ))
}

/// Generated bodies.
fn gen_body(name: &str, times: &Times) -> Vec<u8> {
    let t = times.t;
    let point = |series: &str| format!(r#"{{"series":"{series}","time":{t},"value":1}}"#);
    match name {
        "native-long-name" => format!("[{}]", point(&format!("bad.{}", "a".repeat(252)))).into(),
        "native-bad-utf8" => {
            let mut b = br#"[{"series":"bad."#.to_vec();
            b.extend_from_slice(&[0xff, 0xfe]);
            b.extend_from_slice(format!(r#"","time":{t},"value":1}}]"#).as_bytes());
            b
        }
        // Unknown fields are ignored (api.md), however deep: the bad value after them
        // is what must be found.
        "native-deep-json" => format!(
            r#"[{{"series":"bad.deep","time":{t},"x":{}{},"value":"x"}}]"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        )
        .into(),
        "native-deep-value" => format!(
            r#"[{{"series":"bad.deep","time":{t},"value":{}{}}}]"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        )
        .into(),
        "native-too-many-points" => {
            format!("[{}]", vec![point("bad.many"); MAX_POINTS + 1].join(",")).into()
        }
        "native-oversize" => {
            let p = point("bad.big");
            let n = (6 << 20) / (p.len() + 1) + 1;
            format!("[{}]", vec![p; n].join(",")).into()
        }
        "native-gzip" => gzip_stored(format!("[{}]", point("bad.gzip")).as_bytes()),
        "mackerel-long-name" => format!(
            r#"[{{"hostId":"badhost","name":"{}","time":{t},"value":1}}]"#,
            "a".repeat(250)
        )
        .into(),
        "not-snappy" => vec![0xff; 12],
        "snappy-garbage" => snappy(&[0xff; 64]),
        "rw-bad-length" => {
            let mut p = Vec::new();
            varint(&mut p, 1 << 3 | 2);
            varint(&mut p, 0x7fff_ffff);
            p.extend_from_slice(b"abc");
            snappy(&p)
        }
        "rw-truncated" => {
            let series: Vec<Vec<u8>> = (0..50)
                .map(|i| {
                    time_series(
                        &[("__name__", &format!("bad_trunc_{i}"))],
                        &[(1.0, t * 1000)],
                        &[],
                    )
                })
                .collect();
            let s = snappy(&write_request(&series));
            s[..s.len() / 2].to_vec()
        }
        "snappy-claims-4g" => {
            let mut b = Vec::new();
            varint(&mut b, 0xffff_ffff);
            b.push(3 << 2);
            b.extend_from_slice(b"abcd");
            b
        }
        "snappy-bomb" => snappy(&vec![0u8; 64 << 20]),
        "snappy-understated" => {
            let mut b = Vec::new();
            varint(&mut b, 10);
            b.push(59 << 2); // a literal of 60 bytes
            b.extend_from_slice(&[0x08; 60]);
            b
        }
        "rw-valid" => rw_valid(times, "ok_rw", 1.0),
        "rw-too-old" => snappy(&write_request(&[time_series(
            &[("__name__", "bad_old")],
            &[(1.0, (times.now - 7200) * 1000)],
            &[],
        )])),
        "rw-future" => snappy(&write_request(&[time_series(
            &[("__name__", "bad_future")],
            &[(1.0, (times.now + 7200) * 1000)],
            &[],
        )])),
        "rw-extreme-times" => snappy(&write_request(&[time_series(
            &[("__name__", "bad_extreme")],
            &[(1.0, i64::MIN), (2.0, i64::MAX), (3.0, -1)],
            &[],
        )])),
        "rw-no-name" => snappy(&write_request(&[time_series(
            &[("job", "bad")],
            &[(1.0, t * 1000)],
            &[],
        )])),
        "rw-long-name" => {
            let v = "a".repeat(300);
            snappy(&write_request(&[time_series(
                &[("__name__", "bad_long"), ("v", &v)],
                &[(1.0, t * 1000)],
                &[],
            )]))
        }
        "rw-histograms" => snappy(&write_request(&[time_series(
            &[("__name__", "bad_hist")],
            &[],
            &[&[0x08, 0x01]],
        )])),
        "rw-too-many" => {
            let samples: Vec<(f64, i64)> = (0..=MAX_POINTS as i64)
                .map(|i| (1.0, (t - 500) * 1000 + i * 100))
                .collect();
            snappy(&write_request(&[time_series(
                &[("__name__", "bad_many")],
                &samples,
                &[],
            )]))
        }
        "rr-valid" => rr_of("ok_rw", times),
        "rr-bad-regex" => snappy(&read_request(
            &[(0, times.now * 1000, vec![(2, "job", "(")])],
            &[],
        )),
        "rr-bad-matcher-type" => snappy(&read_request(
            &[(0, times.now * 1000, vec![(7, "__name__", "ok_rw")])],
            &[],
        )),
        "rr-only-streamed" => snappy(&read_request(
            &[(0, times.now * 1000, vec![(0, "__name__", "ok_rw")])],
            &[1],
        )),
        "rr-65-queries" => {
            let q: Vec<_> = (0..65)
                .map(|_| (0, times.now * 1000, vec![(0, "__name__", "ok_rw")]))
                .collect();
            snappy(&read_request(&q, &[]))
        }
        "rr-extreme-range" => snappy(&read_request(
            &[(i64::MIN, i64::MAX, vec![(0, "__name__", "ok_rw")])],
            &[],
        )),
        "form-bad-utf8" => b"target=ok.native&from=\xff\xfe".to_vec(),
        "form-oversize" => format!("target=ok.native&x={}", "a".repeat(3 << 20)).into(),
        other => panic!("unknown body generator {other}"),
    }
}

// ---- sending and checking ----

/// One exchange's outcome, for the figures.
struct Outcome {
    name: String,
    status: u16,
    elapsed: Duration,
}

async fn send(c: &Carat, req: &Req, key: Option<&str>) -> Result<Reply, String> {
    let mut h: Vec<(&str, &str)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if let Some(k) = key {
        h.push(("X-Api-Key", k));
    }
    c.http
        .send_within(
            req.method.clone(),
            &format!("{}{}", c.url, req.path),
            &h,
            Bytes::from(req.body.clone()),
            PATIENCE,
        )
        .await
}

/// The problems with one answer, if any.
fn check(r: &Reply, want: u16, field: Option<&str>, error_type: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    let status = r.status.as_u16();
    if status != want {
        out.push(format!(
            "status {status}, want {want}: {}",
            r.text().chars().take(300).collect::<String>()
        ));
    }
    if status >= 500 {
        out.push(format!("a {status}"));
    }
    if status >= 400 {
        let text = r.text().to_lowercase();
        for leak in LEAKS {
            if text.contains(leak) {
                out.push(format!(
                    "error body carries {leak:?}: {}",
                    r.text().chars().take(300).collect::<String>()
                ));
            }
        }
    }
    if status == want && want >= 400 {
        let json: Option<serde_json::Value> = serde_json::from_slice(&r.body).ok();
        if let Some(f) = field {
            let got = json
                .as_ref()
                .and_then(|j| j["error"]["field"].as_str().map(str::to_string));
            if got.as_deref() != Some(f) {
                out.push(format!("error field {got:?}, want {f:?}: {}", r.text()));
            }
        }
        if let Some(t) = error_type {
            let got = json
                .as_ref()
                .and_then(|j| j["errorType"].as_str().map(str::to_string));
            if got.as_deref() != Some(t) {
                out.push(format!("errorType {got:?}, want {t:?}: {}", r.text()));
            }
        }
    }
    out
}

fn basic(user: &str, pass: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let s = format!("{user}:{pass}");
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

/// Every record on the system's own stream, over all shards.
async fn stream_records(c: &Carat) -> usize {
    c.aws()
        .await
        .stream_records(&c.resources.stream)
        .await
        .unwrap()
        .len()
}

async fn get_as(c: &Carat, key: &str, path: &str) -> Reply {
    c.request(Method::GET, path, Some(key), &[], Bytes::new())
        .await
        .unwrap()
}

/// Raw points of `series` as `key` sees them: (time, value) pairs, or `None` on a 404.
async fn points_as(c: &Carat, key: &str, series: &str, t: i64) -> Option<Vec<(i64, f64)>> {
    let r = get_as(
        c,
        key,
        &format!(
            "/api/v1/points?series={series}&from={}&to={}&resolution=raw",
            t - 3600,
            t + 3600
        ),
    )
    .await;
    if r.status.as_u16() == 404 {
        return None;
    }
    let j = r.expect(200).json();
    Some(
        j["series"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["points"].as_array().unwrap().clone())
            .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
            .collect(),
    )
}

/// Every series name of the tenant of `key`, from `/metrics/find` walked segment by segment.
async fn all_names(c: &Carat, key: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo = vec!["*".to_string()];
    while let Some(q) = todo.pop() {
        let r = get_as(c, key, &format!("/metrics/find?query={}", pct(&q))).await;
        for node in r.expect(200).json().as_array().unwrap() {
            let id = node["id"].as_str().unwrap().to_string();
            if node["leaf"] == 1 {
                out.insert(id.clone());
            }
            if node["expandable"] == 1 {
                todo.push(format!("{id}.*"));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local system's Redis cluster and AWS stand-in (make test starts them)"]
async fn hostile_requests_get_their_4xx_and_write_nothing() {
    let corpus: Corpus = toml::from_str(CORPUS).unwrap();
    let started = Instant::now();
    let c = Carat::start(
        Options::new("hostile").set("ingest.max_points_per_request", MAX_POINTS as i64),
    )
    .await;
    // A hostile request that makes carat allocate without bound must fail this scenario,
    // not the shared machine: cap the process's address space.
    let pid = c.pid().unwrap();
    let capped = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--as={}", MEMORY_CAP))
        .status()
        .is_ok_and(|s| s.success());
    eprintln!(
        "bad_input: address space of carat (pid {pid}) capped at {MEMORY_CAP} bytes: {capped}"
    );
    let times = Times {
        now: now_secs(),
        t: now_secs() - 30,
    };
    let t = times.t;
    let (rw, ro, other) = (
        c.key.key.clone(),
        c.read_key.key.clone(),
        c.other.key.clone(),
    );

    // ---- the valid control posts: one series per route, and the other tenant's own ----
    let json = |body: String| (body, "application/json");
    let controls: Vec<(&str, &str, Vec<u8>, Vec<(&str, &str)>)> = vec![
        (
            "/api/v1/points",
            rw.as_str(),
            json(format!(r#"[{{"series":"ok.native","time":{t},"value":1.25}}]"#)).0.into(),
            vec![("Content-Type", "application/json")],
        ),
        (
            "/api/v0/tsdb",
            rw.as_str(),
            format!(r#"[{{"hostId":"okhost","name":"cpu","time":{t},"value":2.5}}]"#).into(),
            vec![("Content-Type", "application/json")],
        ),
        (
            "/api/v0/services/oksvc/tsdb",
            rw.as_str(),
            format!(r#"[{{"name":"latency","time":{t},"value":0.25}}]"#).into(),
            vec![("Content-Type", "application/json")],
        ),
        (
            "/api/v1/write",
            rw.as_str(),
            rw_valid(&times, "ok_rw", 4.5),
            vec![
                ("Content-Type", "application/x-protobuf"),
                ("Content-Encoding", "snappy"),
            ],
        ),
        (
            "/api/v1/points",
            other.as_str(),
            format!(
                r#"[{{"series":"ok.native","time":{t},"value":-7}},{{"series":"ok.other_only","time":{t},"value":8}}]"#
            )
            .into(),
            vec![("Content-Type", "application/json")],
        ),
    ];
    for (path, key, body, headers) in &controls {
        let r = c
            .request(Method::POST, path, Some(key), headers, body.clone())
            .await
            .unwrap();
        assert!(r.status.is_success(), "control post {path}: {}", r.text());
    }
    wait_for("the control points", Duration::from_secs(30), || async {
        let a = points_as(&c, &rw, "ok.native", t).await? == vec![(t, 1.25)];
        let b = points_as(&c, &rw, "host.okhost.cpu", t).await? == vec![(t, 2.5)];
        let s = points_as(&c, &rw, "service.oksvc.latency", t).await? == vec![(t, 0.25)];
        let p = points_as(&c, &rw, "ok_rw.job.ctl", t).await? == vec![(t, 4.5)];
        let o = points_as(&c, &other, "ok.other_only", t).await? == vec![(t, 8.0)];
        (a && b && s && p && o).then_some(())
    })
    .await;
    let records_before = stream_records(&c).await;
    let names_before = all_names(&c, &rw).await;
    eprintln!(
        "bad_input: control posts readable after {:?}; {records_before} records on the stream; names {names_before:?}",
        started.elapsed()
    );

    // ---- every route with broken credentials ----
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let creds: Vec<(&str, Vec<(String, String)>, u16)> = vec![
        ("no key", vec![], 401),
        (
            "unknown key",
            vec![("X-Api-Key".into(), "sys-nobody-0000".into())],
            401,
        ),
        ("empty key", vec![("X-Api-Key".into(), String::new())], 401),
        (
            "garbage Bearer",
            vec![(
                "Authorization".into(),
                "Bearer \u{1}\u{2}garbage".replace(['\u{1}', '\u{2}'], ""),
            )],
            401,
        ),
        (
            "Basic not base64",
            vec![("Authorization".into(), "Basic !!!not-base64!!!".into())],
            401,
        ),
        (
            "Basic without a colon",
            vec![(
                "Authorization".into(),
                basic("nocolon", "").replace("Og==", ""),
            )],
            401,
        ),
        (
            "Basic wrong password",
            vec![("Authorization".into(), basic("grafana", "wrong-key"))],
            401,
        ),
        (
            "Digest scheme",
            vec![("Authorization".into(), format!("Digest {rw}"))],
            401,
        ),
    ];
    for route in &corpus.route {
        for (what, headers, want) in &creds {
            let req = build(
                &times,
                &route.route,
                route.body.as_deref(),
                route.gen.as_deref(),
                &route.params,
                None,
                headers,
            );
            let name = format!("{} with {what}", route.route);
            run_one(
                &c,
                &name,
                &req,
                None,
                *want,
                None,
                None,
                &mut outcomes,
                &mut failures,
            )
            .await;
            if let Some(o) = outcomes.last() {
                if o.status == 401 {
                    // checked in run_one via the reply; nothing more here
                }
            }
        }
        let req = build(
            &times,
            &route.route,
            route.body.as_deref(),
            route.gen.as_deref(),
            &route.params,
            None,
            &[],
        );
        if route.write {
            let name = format!("{} with the read-only key", route.route);
            run_one(
                &c,
                &name,
                &req,
                Some(&ro),
                403,
                None,
                None,
                &mut outcomes,
                &mut failures,
            )
            .await;
        } else {
            // The read-only key reads (2xx, or a 404 for what the tenant lacks).
            let name = format!("{} with the read-only key", route.route);
            let r = send(&c, &req, Some(&ro)).await;
            match r {
                Ok(r) if r.status.is_success() => {
                    outcomes.push(Outcome {
                        name,
                        status: r.status.as_u16(),
                        elapsed: r.elapsed,
                    });
                }
                Ok(r) => failures.push(format!("{name}: {} {}", r.status, r.text())),
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
    }
    let auth_cases = outcomes.len();

    // ---- the hostile requests ----
    for case in &corpus.case {
        let req = build(
            &times,
            &case.route,
            case.body.as_deref(),
            case.gen.as_deref(),
            &case.params,
            case.gen_param.as_ref(),
            &case.headers,
        );
        let key = match case.key.as_deref().unwrap_or("rw") {
            "rw" => Some(rw.as_str()),
            "ro" => Some(ro.as_str()),
            "other" => Some(other.as_str()),
            "none" => None,
            k => panic!("{}: unknown key {k}", case.name),
        };
        run_one(
            &c,
            &case.name,
            &req,
            key,
            case.expect,
            case.field.as_deref(),
            case.error_type.as_deref(),
            &mut outcomes,
            &mut failures,
        )
        .await;
    }

    // ---- figures ----
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for o in &outcomes {
        *by_status.entry(o.status).or_default() += 1;
    }
    let mut slowest: Vec<&Outcome> = outcomes.iter().collect();
    slowest.sort_by_key(|o| std::cmp::Reverse(o.elapsed));
    eprintln!(
        "bad_input: {} exchanges ({auth_cases} credential checks over {} routes, {} corpus cases); statuses {by_status:?}",
        outcomes.len(),
        corpus.route.len(),
        corpus.case.len()
    );
    for o in slowest.iter().take(8) {
        eprintln!(
            "bad_input:   slowest {:>9.3?} {} {}",
            o.elapsed, o.status, o.name
        );
    }
    let total: Duration = outcomes.iter().map(|o| o.elapsed).sum();
    eprintln!("bad_input: all exchanges took {total:?} together");

    // ---- the service is still up ----
    match c
        .request(Method::GET, "/health", None, &[], Bytes::new())
        .await
    {
        Ok(h) if h.status.as_u16() == 200 => {}
        other => {
            let got = other.map(|h| (h.status, h.text()));
            panic!(
                "/health after the corpus: {got:?}\n{} problems:\n{}\nlog:\n{}",
                failures.len(),
                failures.join("\n"),
                c.log_tail(30)
            );
        }
    }

    // ---- nothing written ----
    tokio::time::sleep(Duration::from_secs(2)).await;
    let records_after = stream_records(&c).await;
    eprintln!(
        "bad_input: stream records before the corpus {records_before}, after {records_after}"
    );
    if records_after != records_before {
        failures.push(format!(
            "the corpus put {} records on the stream",
            records_after as i64 - records_before as i64
        ));
    }
    let names_after = all_names(&c, &rw).await;
    if names_after != names_before {
        failures.push(format!(
            "the tenant's series changed: before {names_before:?}, after {names_after:?}"
        ));
    }
    let want: BTreeSet<String> = [
        "ok.native",
        "host.okhost.cpu",
        "service.oksvc.latency",
        "ok_rw.job.ctl",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    if names_after != want {
        failures.push(format!(
            "the tenant's series are {names_after:?}, want {want:?}"
        ));
    }
    let catalog = c
        .aws()
        .await
        .items(&c.resources.catalog_table)
        .await
        .unwrap();
    let bad_items: Vec<String> = catalog
        .iter()
        .map(|i| format!("{i:?}"))
        .filter(|s| s.contains("\"bad") || s.contains(".bad") || s.contains("#bad"))
        .collect();
    eprintln!(
        "bad_input: catalog table: {} items, {} naming a hostile series",
        catalog.len(),
        bad_items.len()
    );
    if !bad_items.is_empty() {
        failures.push(format!("catalog items of hostile requests: {bad_items:?}"));
    }

    // ---- tenants stay apart, through every read API ----
    failures.extend(isolation(&c, &times).await);

    // ---- a valid post still works ----
    c.post(
        "/api/v1/points",
        &serde_json::json!([{"series": "ok.after", "time": t + 1, "value": 9.5}]),
    )
    .await
    .expect(200);
    wait_for(
        "the post after the corpus",
        Duration::from_secs(30),
        || async { (points_as(&c, &rw, "ok.after", t).await? == vec![(t + 1, 9.5)]).then_some(()) },
    )
    .await;
    let records_end = stream_records(&c).await;
    if records_end != records_before + 1 {
        failures.push(format!(
            "one valid post after the corpus: {records_end} records, want {}",
            records_before + 1
        ));
    }
    eprintln!(
        "bad_input: healthy afterwards (valid post read back); scenario took {:?}",
        started.elapsed()
    );

    if !failures.is_empty() {
        eprintln!("{}", c.log_tail(30));
    }
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    c.finish().await;
}

#[allow(clippy::too_many_arguments)]
async fn run_one(
    c: &Carat,
    name: &str,
    req: &Req,
    key: Option<&str>,
    want: u16,
    field: Option<&str>,
    error_type: Option<&str>,
    outcomes: &mut Vec<Outcome>,
    failures: &mut Vec<String>,
) {
    match send(c, req, key).await {
        Ok(r) => {
            let mut problems = check(&r, want, field, error_type);
            if r.status.as_u16() == 401 && r.header("www-authenticate").is_none() {
                problems.push("401 without WWW-Authenticate".into());
            }
            if r.header("x-request-id").is_none() {
                problems.push("no x-request-id".into());
            }
            for p in problems {
                eprintln!("bad_input: FAIL {name}: {p}");
                failures.push(format!("{name}: {p}"));
            }
            outcomes.push(Outcome {
                name: name.to_string(),
                status: r.status.as_u16(),
                elapsed: r.elapsed,
            });
        }
        Err(e) => {
            eprintln!("bad_input: FAIL {name}: {e}");
            failures.push(format!("{name}: {e}"));
        }
    }
}

/// The other tenant's key sees none of the main tenant's points, and the main key none
/// of the other's, through every read API.
async fn isolation(c: &Carat, times: &Times) -> Vec<String> {
    let t = times.t;
    let (rw, other) = (c.key.key.as_str(), c.other.key.as_str());
    let mut f = Vec::new();
    let mut expect = |what: &str, ok: bool, got: String| {
        if !ok {
            f.push(format!("isolation: {what}: {got}"));
        }
    };
    let p = points_as(c, other, "ok.native", t).await;
    expect(
        "other reads its own ok.native",
        p == Some(vec![(t, -7.0)]),
        format!("{p:?}"),
    );
    let p = points_as(c, rw, "ok.native", t).await;
    expect(
        "main reads its own ok.native",
        p == Some(vec![(t, 1.25)]),
        format!("{p:?}"),
    );
    let p = points_as(c, rw, "ok.other_only", t).await;
    expect(
        "main cannot read ok.other_only",
        p.is_none(),
        format!("{p:?}"),
    );
    for s in ["host.okhost.cpu", "service.oksvc.latency", "ok_rw.job.ctl"] {
        let p = points_as(c, other, s, t).await;
        expect(
            &format!("other cannot read {s}"),
            p.is_none(),
            format!("{p:?}"),
        );
    }
    let n = all_names(c, other).await;
    let want: BTreeSet<String> = ["ok.native", "ok.other_only"].map(String::from).into();
    expect("other's names", n == want, format!("{n:?}"));
    let r = get_as(c, other, "/api/v1/names?match=ok.*").await.text();
    expect(
        "other's /api/v1/names",
        !r.contains("ok_rw") && r.contains("ok.other_only"),
        r,
    );
    let r = get_as(
        c,
        other,
        &format!(
            "/api/v0/hosts/okhost/metrics?name=cpu&from={}&to={}",
            t - 60,
            t + 60
        ),
    )
    .await;
    expect(
        "other: host metrics 404",
        r.status.as_u16() == 404,
        r.text(),
    );
    let r = get_as(c, other, "/api/v0/services/oksvc/metric-names").await;
    expect(
        "other: service names 404",
        r.status.as_u16() == 404,
        r.text(),
    );
    let r = get_as(c, other, "/api/v0/tsdb/latest?hostId=okhost&name=cpu").await;
    expect(
        "other: latest empty",
        r.status.as_u16() == 200 && r.json()["tsdbLatest"]["okhost"] == serde_json::json!({}),
        r.text(),
    );
    let q = format!("/api/v1/query?query=ok_rw&time={}", t + 1);
    let r = get_as(c, other, &q).await;
    expect(
        "other: PromQL ok_rw empty",
        r.status.as_u16() == 200 && r.json()["data"]["result"] == serde_json::json!([]),
        r.text(),
    );
    let r = get_as(c, rw, &q).await;
    expect(
        "main: PromQL ok_rw has its point",
        r.status.as_u16() == 200 && r.text().contains("4.5"),
        r.text(),
    );
    let r = get_as(
        c,
        other,
        "/api/v1/series?match[]=%7B__name__%3D~%22.%2B%22%7D",
    )
    .await;
    expect(
        "other: /api/v1/series lists no ok_rw",
        r.status.as_u16() == 200 && !r.text().contains("ok_rw") && !r.text().contains("okhost"),
        r.text(),
    );
    let r = get_as(
        c,
        other,
        &format!(
            "/render?target=ok.*&target=host.*.*&from={}&until={}",
            t - 600,
            t + 60
        ),
    )
    .await;
    let body = r.text();
    expect(
        "other: render sees only its ok.native",
        r.status.as_u16() == 200
            && body.contains("-7")
            && !body.contains("1.25")
            && !body.contains("okhost"),
        body,
    );
    for (key, want_series) in [(other, false), (rw, true)] {
        let r = c
            .request(
                Method::POST,
                "/api/v1/read",
                Some(key),
                &[
                    ("Content-Type", "application/x-protobuf"),
                    ("Content-Encoding", "snappy"),
                ],
                rr_of("ok_rw", times),
            )
            .await
            .unwrap();
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&r.body)
            .unwrap_or_default();
        // An empty QueryResult is `0a 00`; one with a series is longer.
        let has_series = raw.len() > 2;
        expect(
            &format!(
                "remote_read ok_rw as {}",
                if want_series { "main" } else { "other" }
            ),
            r.status.as_u16() == 200 && has_series == want_series,
            format!("{} {raw:?}", r.status),
        );
    }
    f
}
