//! Issue 11, scenario 1: every ingest route ⇒ every read route, exact values back.
//!
//! One series per ingest route — Mackerel host (`POST /api/v0/tsdb`), Mackerel service
//! (`POST /api/v0/services/{s}/tsdb`), native (`POST /api/v1/points`), Prometheus
//! remote_write (`POST /api/v1/write`, protobuf + snappy built here by hand) and
//! `carat put -f <csv>` — each holding the same awkward values (0.1, 1e-300, −0.0, 2^53,
//! f64::MAX, the smallest subnormal, a decimal off by an ulp, …) at the same times; the
//! remote_write series also holds NaN (two payloads), +Inf and −Inf. Then every read route
//! that can name the series reads it back: Mackerel host/service metrics, metric names and
//! latest; native points and names; Graphite `/render` and `/metrics/find`; Prometheus
//! `query`, `query_range`, `series` and remote_read; `carat query --format csv`. Values are
//! compared bit for bit (NaN payloads only where the format carries them: remote_read), and
//! a matrix of what was compared is printed.
#![allow(clippy::unwrap_used, clippy::too_many_lines)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use carat_system_tests::prom::{self, MatchType};
use carat_system_tests::{now_secs, wait_for, Carat, Options};
use hyper::Method;
use serde_json::{json, Value};

const NAN: u64 = 0x7ff8_0000_0000_0000;
const NEG_ZERO: u64 = 0x8000_0000_0000_0000;
const NAN_PAYLOAD: u64 = 0x7ff8_0000_0000_beef;
/// Seconds between points (also the Graphite step and the PromQL step).
const STEP: i64 = 10;

/// The finite values every route takes (JSON has no NaN or Infinity).
fn finite_values() -> Vec<f64> {
    vec![
        0.1,
        1e-300,
        -0.0,
        9_007_199_254_740_992.0, // 2^53
        f64::MAX,
        5e-324, // the smallest subnormal
        94.797_999_999_999_99,
        -123.456,
        0.0,
        2.512_562_814_070_351_5,
        1.234_567_890_123_456_8e18,
        -1e300,
        3.0,
        1e21,
        0.300_000_000_000_000_04,
    ]
}

/// One ingest route's series: how to name it on each read route.
struct Sent {
    route: &'static str,
    series: String,
    /// (time, value bits), ascending.
    points: Vec<(i64, u64)>,
    /// PromQL / remote_read selector.
    matchers: Vec<(&'static str, String)>,
    /// The labels the series has (Prometheus `series`).
    labels: BTreeMap<String, String>,
    /// Mackerel host or service and metric name, if it is one.
    mackerel: Option<(&'static str, String, String)>,
}

impl Sent {
    /// The end of every read range: the series' last point (PromQL's lookback would
    /// repeat it on later steps).
    fn from(&self) -> i64 {
        self.points[0].0
    }

    fn to(&self) -> i64 {
        self.points.last().unwrap().0
    }

    fn selector(&self) -> String {
        let m: Vec<String> = self
            .matchers
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        format!("{{{}}}", m.join(","))
    }
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            write!(out, "%{b:02X}").unwrap();
        }
    }
    out
}

/// NaN payloads are not carried by text formats: every NaN counts as the canonical one.
fn canon(bits: u64) -> u64 {
    if f64::from_bits(bits).is_nan() {
        NAN
    } else {
        bits
    }
}

/// A JSON value of a read answer: a number, or the strings "NaN", "+Inf", "-Inf"
/// (native, Prometheus), or `null` (Graphite's NaN).
fn value_bits(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap().to_bits(),
        Value::Null => NAN,
        Value::String(s) => text_bits(s),
        other => panic!("not a value: {other}"),
    }
}

fn text_bits(s: &str) -> u64 {
    match s {
        "NaN" => NAN,
        "+Inf" | "Inf" => f64::INFINITY.to_bits(),
        "-Inf" => f64::NEG_INFINITY.to_bits(),
        s => s
            .parse::<f64>()
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
            .to_bits(),
    }
}

fn show(points: &[(i64, u64)]) -> String {
    points
        .iter()
        .map(|&(t, b)| format!("{t}:{:?}({b:#x})", f64::from_bits(b)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What one read route gave for one series; `None`: the route cannot name it.
type Got = Option<Result<Vec<(i64, u64)>, String>>;

struct Reads<'a> {
    c: &'a Carat,
}

impl Reads<'_> {
    async fn json(&self, path: &str) -> Result<Value, String> {
        let r = self.c.get(path).await;
        if r.status.as_u16() != 200 {
            return Err(format!("{path}: {} {}", r.status, r.text()));
        }
        Ok(r.json())
    }

    async fn native(&self, s: &Sent) -> Got {
        let v = self
            .json(&format!(
                "/api/v1/points?series={}&from={}&to={}&resolution=raw",
                enc(&s.series),
                s.from(),
                s.to()
            ))
            .await;
        Some(v.map(|v| {
            v["series"][0]["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_i64().unwrap(), value_bits(&p[1])))
                .collect()
        }))
    }

    async fn mackerel(&self, s: &Sent) -> Got {
        let (kind, owner, name) = s.mackerel.as_ref()?;
        let path = format!(
            "/api/v0/{kind}/{owner}/metrics?name={}&from={}&to={}",
            enc(name),
            s.from(),
            s.to()
        );
        Some(self.json(&path).await.map(|v| {
            v["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p["time"].as_i64().unwrap(), value_bits(&p["value"])))
                .collect()
        }))
    }

    /// The latest point (Mackerel `tsdb/latest`, hosts only).
    async fn latest(&self, s: &Sent) -> Got {
        let (kind, owner, name) = s.mackerel.as_ref()?;
        if *kind != "hosts" {
            return None;
        }
        let path = format!(
            "/api/v0/tsdb/latest?hostId={}&name={}",
            enc(owner),
            enc(name)
        );
        Some(self.json(&path).await.map(|v| {
            let p = &v["tsdbLatest"][owner.as_str()][name.as_str()];
            if p.is_null() {
                Vec::new()
            } else {
                vec![(p["time"].as_i64().unwrap(), value_bits(&p["value"]))]
            }
        }))
    }

    async fn graphite(&self, s: &Sent) -> Got {
        // Slots start after the one holding `from`: ask from one step before the first.
        let path = format!(
            "/render?target={}&from={}&until={}&format=json",
            enc(&s.series),
            s.from() - STEP,
            s.to()
        );
        let r = self.c.get(&path).await;
        if r.status.as_u16() != 200 {
            return Some(Err(format!("{path}: {} {}", r.status, r.text())));
        }
        // graphite-web writes ±Infinity as ±1e9999, which no f64 parser takes.
        let text = r
            .text()
            .replace("-1e9999", "\"-Inf\"")
            .replace("1e9999", "\"+Inf\"");
        let v: Value = serde_json::from_str(&text).unwrap();
        Some(Ok(v[0]["datapoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[1].as_i64().unwrap(), value_bits(&p[0])))
            .collect()))
    }

    async fn query_range(&self, s: &Sent) -> Got {
        let path = format!(
            "/api/v1/query_range?query={}&start={}&end={}&step={STEP}",
            enc(&s.selector()),
            s.from(),
            s.to()
        );
        Some(self.json(&path).await.map(|v| {
            let result = v["data"]["result"].as_array().unwrap();
            assert!(result.len() <= 1, "{}: {v}", s.selector());
            result
                .first()
                .map(|r| {
                    r["values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| (p[0].as_f64().unwrap() as i64, value_bits(&p[1])))
                        .collect()
                })
                .unwrap_or_default()
        }))
    }

    /// An instant query at the last point's time: that point.
    async fn query(&self, s: &Sent) -> Got {
        let t = s.points.last().unwrap().0;
        let path = format!("/api/v1/query?query={}&time={t}", enc(&s.selector()));
        Some(self.json(&path).await.map(|v| {
            v["data"]["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["value"][0].as_f64().unwrap() as i64,
                        value_bits(&r["value"][1]),
                    )
                })
                .collect()
        }))
    }

    async fn remote_read(&self, s: &Sent) -> Got {
        let matchers: Vec<(MatchType, &str, &str)> = s
            .matchers
            .iter()
            .map(|(k, v)| (MatchType::Eq, *k, v.as_str()))
            .collect();
        let body = prom::snappy(&prom::read_request(
            s.from() * 1000,
            s.to() * 1000,
            &matchers,
        ));
        let r = self
            .c
            .request(
                Method::POST,
                "/api/v1/read",
                Some(&self.c.read_key.key),
                &[
                    ("Content-Encoding", "snappy"),
                    ("Content-Type", "application/x-protobuf"),
                    ("X-Prometheus-Remote-Read-Version", "0.1.0"),
                ],
                body,
            )
            .await
            .unwrap();
        if r.status.as_u16() != 200 {
            return Some(Err(format!("remote_read: {} {}", r.status, r.text())));
        }
        let results = prom::decode_read_response(&prom::unsnappy(&r.body).unwrap()).unwrap();
        let series = &results[0];
        if series.len() != 1 {
            return Some(Err(format!(
                "remote_read: {} series: {series:?}",
                series.len()
            )));
        }
        let labels: BTreeMap<String, String> = series[0].labels.iter().cloned().collect();
        if labels != s.labels {
            return Some(Err(format!("remote_read labels {labels:?}")));
        }
        Some(Ok(series[0]
            .samples
            .iter()
            .map(|&(ms, b)| (ms.div_euclid(1000), b))
            .collect()))
    }

    async fn cli_query(&self, s: &Sent) -> Got {
        let mut cmd = self.c.cli();
        cmd.args([
            "query",
            &s.series,
            "--from",
            &s.from().to_string(),
            "--to",
            &s.to().to_string(),
            "--resolution",
            "raw",
            "--format",
            "csv",
        ]);
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .unwrap();
        if !out.status.success() {
            return Some(Err(format!(
                "carat query: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("series,time,value"), "{text}");
        Some(Ok(lines
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                assert_eq!(f[0], s.series, "{l}");
                (f[1].parse().unwrap(), text_bits(f[2]))
            })
            .collect()))
    }

    /// Names: native listing, Graphite find, Prometheus series, Mackerel metric names.
    async fn names(&self, s: &Sent) -> Vec<(&'static str, Result<(), String>)> {
        let mut out = Vec::new();
        let v = self
            .json(&format!("/api/v1/names?match={}", enc(&s.series)))
            .await;
        out.push((
            "names",
            v.and_then(|v| {
                let names = v["names"].as_array().unwrap();
                let ok = names.len() == 1 && names[0]["name"] == json!(s.series);
                ok.then_some(()).ok_or(format!("names: {v}"))
            }),
        ));
        let v = self
            .json(&format!("/metrics/find?query={}", enc(&s.series)))
            .await;
        out.push((
            "find",
            v.and_then(|v| {
                let ok = v
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["id"] == json!(s.series) && e["leaf"] == json!(1));
                ok.then_some(()).ok_or(format!("find: {v}"))
            }),
        ));
        let v = self
            .json(&format!(
                "/api/v1/series?match[]={}&start={}&end={}",
                enc(&s.selector()),
                s.from(),
                s.to()
            ))
            .await;
        out.push((
            "prom series",
            v.and_then(|v| {
                let want = serde_json::to_value(&s.labels).unwrap();
                (v["data"] == json!([want]))
                    .then_some(())
                    .ok_or(format!("series: {v}, want [{want}]"))
            }),
        ));
        if let Some((kind, owner, name)) = &s.mackerel {
            let v = self
                .json(&format!("/api/v0/{kind}/{owner}/metric-names"))
                .await;
            out.push((
                "mackerel names",
                v.and_then(|v| {
                    (v["names"] == json!([name]))
                        .then_some(())
                        .ok_or(format!("metric-names: {v}"))
                }),
            ));
        }
        out
    }
}

const COLUMNS: [&str; 8] = [
    "native", "mackerel", "latest", "graphite", "q_range", "query", "rm_read", "cli csv",
];

/// One ingest route's row of the matrix: its cells, its failures, the points compared.
async fn row(reads: &Reads<'_>, s: &Sent) -> (Vec<String>, Vec<String>, usize) {
    let mut failures = Vec::new();
    let mut compared = 0;
    let text_want: Vec<(i64, u64)> = s.points.iter().map(|&(t, b)| (t, canon(b))).collect();
    let last = vec![*text_want.last().unwrap()];
    let mut row = Vec::new();
    for col in COLUMNS {
        // A route may lag the native one by a moment (catalog-based lookups): retry a
        // mismatch for a few seconds before it counts.
        let mut attempt = 0;
        let cell = loop {
            let got = match col {
                "native" => reads.native(s).await,
                "mackerel" => reads.mackerel(s).await,
                "latest" => reads.latest(s).await,
                "graphite" => reads.graphite(s).await,
                "q_range" => reads.query_range(s).await,
                "query" => reads.query(s).await,
                "rm_read" => reads.remote_read(s).await,
                "cli csv" => reads.cli_query(s).await,
                _ => unreachable!(),
            };
            let Some(got) = got else {
                break "-".to_string();
            };
            // remote_read carries the bits; text formats carry NaN as NaN.
            let (want, got) = match (col, got) {
                // Protobuf encoders leave a double equal to 0 off the wire, and −0.0 == 0:
                // remote_read (like Prometheus' own) answers it as +0.0.
                ("rm_read", Ok(g)) => (
                    s.points
                        .iter()
                        .map(|&(t, b)| (t, if b == NEG_ZERO { 0 } else { b }))
                        .collect(),
                    Ok(g),
                ),
                ("latest" | "query", Ok(g)) => (
                    last.clone(),
                    Ok(g.into_iter().map(|(t, b)| (t, canon(b))).collect()),
                ),
                (_, Ok(g)) => (
                    text_want.clone(),
                    Ok(g.into_iter().map(|(t, b)| (t, canon(b))).collect()),
                ),
                (_, Err(e)) => (Vec::new(), Err(e)),
            };
            let verdict = match got {
                Ok(g) if g == want => Ok(want.len()),
                Ok(g) => Err(format!(
                    "{} ⇒ {col}: got\n  {}\nwant\n  {}",
                    s.route,
                    show(&g),
                    show(&want)
                )),
                Err(e) => Err(format!("{} ⇒ {col}: {e}", s.route)),
            };
            attempt += 1;
            match verdict {
                Ok(n) => {
                    compared += n;
                    break format!("{n}/{n}");
                }
                Err(_) if attempt < 10 => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    failures.push(e);
                    break "FAIL".to_string();
                }
            }
        };
        row.push(cell);
    }
    for (name, ok) in reads.names(s).await {
        match ok {
            Ok(()) => row.push(format!("{name} ok")),
            Err(e) => {
                failures.push(format!("{} ⇒ {name}: {e}", s.route));
                row.push(format!("{name} FAIL"));
            }
        }
    }
    (row, failures, compared)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local system's Redis cluster and AWS stand-in (make test starts them)"]
async fn every_ingest_route_reads_back_exactly_on_every_read_route() {
    let t0 = std::time::Instant::now();
    let c = Carat::start(Options::new("routes")).await;
    eprintln!("routes: carat up in {:.1} s", t0.elapsed().as_secs_f64());
    let finite = finite_values();
    let mut all: Vec<u64> = finite.iter().map(|v| v.to_bits()).collect();
    all.extend([
        NAN,
        NAN_PAYLOAD,
        f64::INFINITY.to_bits(),
        f64::NEG_INFINITY.to_bits(),
    ]);
    // Times on a 10 s grid ending a few seconds ago (Mackerel's latest looks at the
    // current and the previous window).
    let n_all = i64::try_from(all.len()).unwrap();
    let base = (now_secs() - STEP * (n_all - 1) - 3).div_euclid(STEP) * STEP;
    let time = |i: usize| base + STEP * i64::try_from(i).unwrap();
    // The finite series end on the grid's last time too (Mackerel's latest).
    let skip = all.len() - finite.len();
    let fin: Vec<(i64, u64)> = finite
        .iter()
        .enumerate()
        .map(|(i, v)| (time(i + skip), v.to_bits()))
        .collect();
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    };
    let sent = vec![
        Sent {
            route: "mackerel host",
            series: "host.h1Routes.m.val".into(),
            points: fin.clone(),
            matchers: vec![("hostId", "h1Routes".into()), ("name", "m.val".into())],
            labels: labels(&[("hostId", "h1Routes"), ("name", "m.val")]),
            mackerel: Some(("hosts", "h1Routes".into(), "m.val".into())),
        },
        Sent {
            route: "mackerel service",
            series: "service.web.m.val".into(),
            points: fin.clone(),
            matchers: vec![("service", "web".into()), ("name", "m.val".into())],
            labels: labels(&[("service", "web"), ("name", "m.val")]),
            mackerel: Some(("services", "web".into(), "m.val".into())),
        },
        Sent {
            route: "native",
            series: "nat.routes.val".into(),
            points: fin.clone(),
            matchers: vec![("__name__", "nat.routes.val".into())],
            labels: labels(&[("__name__", "nat.routes.val")]),
            mackerel: None,
        },
        Sent {
            route: "remote_write",
            series: "rw_val.instance.a_9100.job.sys".into(),
            points: all.iter().enumerate().map(|(i, &b)| (time(i), b)).collect(),
            matchers: vec![("__name__", "rw_val".into()), ("job", "sys".into())],
            labels: labels(&[
                ("__name__", "rw_val"),
                ("instance", "a:9100"),
                ("job", "sys"),
            ]),
            mackerel: None,
        },
        Sent {
            route: "carat put",
            series: "cli.routes.val".into(),
            points: fin.clone(),
            matchers: vec![("__name__", "cli.routes.val".into())],
            labels: labels(&[("__name__", "cli.routes.val")]),
            mackerel: None,
        },
    ];
    let num = |b: u64| serde_json::Number::from_f64(f64::from_bits(b)).unwrap();

    // Ingest, one route each.
    let body: Vec<Value> = fin
        .iter()
        .map(|&(t, b)| json!({"hostId": "h1Routes", "name": "m.val", "time": t, "value": num(b)}))
        .collect();
    c.post("/api/v0/tsdb", &json!(body)).await.expect(200);
    let body: Vec<Value> = fin
        .iter()
        .map(|&(t, b)| json!({"name": "m.val", "time": t, "value": num(b)}))
        .collect();
    c.post("/api/v0/services/web/tsdb", &json!(body))
        .await
        .expect(200);
    let body: Vec<Value> = fin
        .iter()
        .map(|&(t, b)| json!({"series": "nat.routes.val", "time": t, "value": num(b)}))
        .collect();
    c.post("/api/v1/points", &json!(body)).await.expect(200);
    // remote_write: milliseconds inside the second (floored on the way in), −0.0 on the
    // wire with its sign bit, NaNs with two payloads.
    let rw = prom::Series {
        labels: vec![
            ("job".into(), "sys".into()),
            ("__name__".into(), "rw_val".into()),
            ("instance".into(), "a:9100".into()),
        ],
        samples: sent[3]
            .points
            .iter()
            .enumerate()
            .map(|(i, &(t, b))| (t * 1000 + i64::try_from(i * 37).unwrap(), b))
            .collect(),
    };
    let r = c
        .request(
            Method::POST,
            "/api/v1/write",
            None,
            &[
                ("Authorization", &format!("Bearer {}", c.key.key)),
                ("Content-Encoding", "snappy"),
                ("Content-Type", "application/x-protobuf"),
                ("X-Prometheus-Remote-Write-Version", "0.1.0"),
            ],
            Bytes::from(prom::snappy(&prom::write_request(&[rw]))),
        )
        .await
        .unwrap()
        .expect(204);
    assert_eq!(r.header("x-carat-dropped-samples"), None);
    let csv_path = c.dir.join("points.csv");
    let mut csv = String::from("series,time,value\n");
    for &(t, b) in &fin {
        writeln!(csv, "cli.routes.val,{t},{}", num(b)).unwrap();
    }
    std::fs::write(&csv_path, &csv).unwrap();
    let out = c
        .cli()
        .args(["put", "-f", csv_path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "carat put: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    eprintln!("routes: ingested at {:.1} s", t0.elapsed().as_secs_f64());
    let reads = Reads { c: &c };
    // Readable: every series' full count through the native route.
    for s in &sent {
        wait_for(
            &format!("{} to be readable", s.series),
            Duration::from_secs(30),
            || async {
                match reads.native(s).await {
                    Some(Ok(p)) if p.len() == s.points.len() => Some(()),
                    _ => None,
                }
            },
        )
        .await;
    }

    eprintln!("routes: readable at {:.1} s", t0.elapsed().as_secs_f64());
    // Every (ingest, read) pair; the series' rows concurrently.
    let rows = {
        let r = |i: usize| row(&reads, &sent[i]);
        tokio::join!(r(0), r(1), r(2), r(3), r(4))
    };
    let mut matrix: Vec<(String, Vec<String>)> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut compared = 0usize;
    for (s, (cells, fails, n)) in sent.iter().zip([rows.0, rows.1, rows.2, rows.3, rows.4]) {
        matrix.push((s.route.to_string(), cells));
        failures.extend(fails);
        compared += n;
    }

    let mut table = format!("{:<17}", "ingest \\ read");
    for col in COLUMNS {
        write!(table, "{col:>9}").unwrap();
    }
    table.push_str("  names\n");
    for (route, row) in &matrix {
        write!(table, "{route:<17}").unwrap();
        for cell in &row[..COLUMNS.len()] {
            write!(table, "{cell:>9}").unwrap();
        }
        writeln!(table, "  {}", row[COLUMNS.len()..].join(", ")).unwrap();
    }
    eprintln!("routes: compared at {:.1} s", t0.elapsed().as_secs_f64());
    eprintln!(
        "routes: values compared bit-exact (n/n = points equal of points sent; NaN payloads \
         only on remote_read; '-' = the route cannot name the series), {compared} point \
         comparisons:\n{table}"
    );
    if !failures.is_empty() {
        eprintln!("carat log ends:\n{}", c.log_tail(30));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    c.finish().await;
}
