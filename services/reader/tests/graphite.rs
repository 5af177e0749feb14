//! The Graphite API through the real router over in-memory tiers, against what
//! graphite-web 1.1.10 itself answers: `tests/graphite/gen_golden.py` ran graphite-web's
//! own `/render`, `/metrics/find`, `/metrics/expand` and `parseATTime` over the same
//! fixture series (served by a finder that places points as carat does) and wrote
//! `tests/graphite/golden/*.json`. This test replays every request against carat and
//! compares (values within 1e-9 relative). It reads only the committed JSON.
#![allow(clippy::unwrap_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use carat_core::Config;
use carat_reader::graphite::attime;
use serde_json::Value;

const KEY: &str = "graphite-read-key";

fn golden(name: &str) -> Value {
    let path = format!(
        "{}/tests/graphite/golden/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The series of `golden/series.json` on the default tenant.
struct Fixture {
    base: common::Fixture,
    /// graphite-web's "now" of the golden answers, epoch seconds.
    now: i64,
}

impl Fixture {
    async fn new(cfg: Config) -> Self {
        let series = golden("series.json");
        let now = series["meta"]["now"].as_i64().unwrap();
        let f = Self {
            // A clock an hour off the fixture's `now`: every request carries `now`.
            base: common::Fixture::new(cfg, common::reader(KEY), now + 3_600),
            now,
        };
        for (name, points) in series["series"].as_object().unwrap() {
            let pts: Vec<(i64, f64)> = points
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
                .collect();
            f.store(name, &pts).await;
        }
        f
    }

    async fn store(&self, series: &str, points: &[(i64, f64)]) {
        self.base.store("default", series, self.now, points).await;
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, String) {
        let answer = self.base.send(req).await;
        (answer.status, answer.text())
    }

    async fn get(&self, path: &str, pairs: &[(String, String)]) -> (StatusCode, String) {
        let uri = format!("{path}?{}", encode(pairs));
        self.send(common::get(&uri, Some(KEY))).await
    }

    async fn post(&self, path: &str, pairs: &[(String, String)]) -> (StatusCode, String) {
        self.send(common::post_form(path, KEY, encode(pairs))).await
    }
}

fn encode(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A golden case's parameters as pairs, lists repeated.
fn pairs(params: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in params.as_object().unwrap() {
        match v {
            Value::Array(items) => {
                for i in items {
                    out.push((k.clone(), i.as_str().unwrap().to_string()));
                }
            }
            Value::String(s) => out.push((k.clone(), s.clone())),
            other => panic!("parameter {k}: {other}"),
        }
    }
    out
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Differences between graphite-web's answer and carat's, empty when they agree.
fn compare(want: &Value, got: &Value) -> Vec<String> {
    let (Some(w), Some(g)) = (want.as_array(), got.as_array()) else {
        return vec![format!("not arrays: {got}")];
    };
    let mut diffs = Vec::new();
    if w.len() != g.len() {
        let names = |v: &[Value]| {
            v.iter()
                .map(|s| s["target"].to_string())
                .collect::<Vec<_>>()
        };
        diffs.push(format!(
            "{} series, graphite-web has {}: {:?} vs {:?}",
            g.len(),
            w.len(),
            names(g),
            names(w)
        ));
        return diffs;
    }
    for (ws, gs) in w.iter().zip(g) {
        if ws["target"] != gs["target"] {
            diffs.push(format!("target {} vs {}", gs["target"], ws["target"]));
        }
        if ws["tags"] != gs["tags"] {
            diffs.push(format!(
                "{}: tags {} vs {}",
                ws["target"], gs["tags"], ws["tags"]
            ));
        }
        let (wp, gp) = (
            ws["datapoints"].as_array().unwrap(),
            gs["datapoints"].as_array().unwrap(),
        );
        if wp.len() != gp.len() {
            diffs.push(format!(
                "{}: {} points vs {} (first {:?} vs {:?})",
                ws["target"],
                gp.len(),
                wp.len(),
                gp.first(),
                wp.first()
            ));
            continue;
        }
        for (a, b) in wp.iter().zip(gp) {
            let same_time = a[1] == b[1];
            let same_value = match (a[0].as_f64(), b[0].as_f64()) {
                (None, None) => a[0].is_null() && b[0].is_null(),
                (Some(x), Some(y)) => close(x, y),
                _ => false,
            };
            if !same_time || !same_value {
                diffs.push(format!("{}: point {b} vs {a}", ws["target"]));
                break;
            }
        }
    }
    diffs
}

#[tokio::test]
async fn every_render_case_matches_graphite_web() {
    let f = Fixture::new(Config::default()).await;
    let g = golden("render.json");
    let mut failures = Vec::new();
    let cases = g["cases"].as_array().unwrap();
    assert!(cases.len() > 80, "the golden file holds the cases");
    for (i, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let p = pairs(&case["params"]);
        // Grafana posts forms; browsers and scripts GET: alternate between the two.
        let (status, body) = if i % 2 == 0 {
            f.post("/render", &p).await
        } else {
            f.get("/render", &p).await
        };
        if status != StatusCode::OK {
            failures.push(format!("{name}: status {status}: {body}"));
            continue;
        }
        let got: Value = serde_json::from_str(&body).unwrap();
        for d in compare(&case["body"], &got) {
            failures.push(format!("{name}: {d}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn bad_requests_are_400s_naming_the_fault() {
    let f = Fixture::new(Config::default()).await;
    let g = golden("render.json");
    for case in g["errors"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (status, body) = f.get("/render", &pairs(&case["params"])).await;
        // graphite-web answers some of these with a 500 (a Python exception) or even
        // 200 (it ignores text after a parse); carat always says 400.
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        let msg = serde_json::from_str::<Value>(&body).unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        let expect = match name {
            "unknown_function" => "nosuchFunc",
            "empty_range" => "Invalid empty time range",
            "bad_from" => "from",
            "unclosed_call" => "position",
            "wrong_arg_type" => "scale: factor must be a number",
            "missing_arg" => "alias: newName is required",
            "divide_two_divisors" => "exactly 1 series",
            other => panic!("no expectation for {other}"),
        };
        assert!(msg.contains(expect), "{name}: {msg:?} lacks {expect:?}");
        assert!(!msg.contains("Error {"), "{name}: internal text {msg:?}");
    }
    let now = f.now.to_string();
    let q = |t: &str, extra: &[(&str, &str)]| {
        let mut p = vec![
            ("target".to_string(), t.to_string()),
            ("now".to_string(), now.clone()),
            ("from".to_string(), "-1h".to_string()),
        ];
        p.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
        );
        p
    };
    let (s, body) = f
        .get("/render", &q("app.web1.cpu", &[("format", "png")]))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("format") && body.contains("png"), "{body}");
    let (s, body) = f
        .get("/render", &q("app.web1.cpu", &[("maxDataPoints", "0")]))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    let (s, body) = f.get("/render", &q("scale(app.web1.cpu, 2", &[])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("unclosed call of scale at position 21"),
        "{body}"
    );
    let (s, body) = f
        .get("/render", &q("summarize(app.web1.cpu, \"-1h\")", &[]))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("summarize"), "{body}");
    let (s, body) = f
        .get(
            "/render",
            &q("aliasSub(app.web1.cpu, \"(?<=a)b\", \"x\")", &[]),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("aliasSub"), "{body}");
    let deep = "scale(".repeat(40) + "app.web1.cpu" + &",1)".repeat(40);
    let (s, body) = f.get("/render", &q(&deep, &[])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("deeper than 32"), "{body}");
    // No key: 401, as every read route.
    let req = Request::get("/render?target=a")
        .body(Body::empty())
        .unwrap();
    assert_eq!(f.send(req).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn series_per_target_are_bounded() {
    let mut cfg = Config::default();
    cfg.reader.max_series_per_query = 2;
    let f = Fixture::new(cfg).await;
    let now = f.now.to_string();
    let p = |t: &str| {
        vec![
            ("target".to_string(), t.to_string()),
            ("now".to_string(), now.clone()),
            ("from".to_string(), "-1h".to_string()),
        ]
    };
    let (s, body) = f.get("/render", &p("app.*.cpu")).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    // Two patterns of two series each are three distinct series in one target.
    let (s, _) = f
        .get(
            "/render",
            &p("sumSeries(app.{web1,web2}.cpu, app.{web2,db1}.cpu)"),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, _) = f.get("/render", &p("sumSeries(app.{web1,web2}.cpu)")).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn slots_before_consolidation_are_bounded() {
    let mut cfg = Config::default();
    // 100 answer points; 5,000 slots before consolidation.
    cfg.reader.max_points_per_answer = 100;
    let f = Fixture::new(cfg).await;
    for i in 0..60 {
        f.store(
            &format!("many.s{i:02}.x"),
            &[(f.now - 600, 1.0), (f.now - 540, 2.0)],
        )
        .await;
    }
    let p = |target: &str, from: &str| {
        vec![
            ("target".to_string(), target.to_string()),
            ("now".to_string(), f.now.to_string()),
            ("from".to_string(), from.to_string()),
            ("maxDataPoints".to_string(), "1".to_string()),
        ]
    };
    // 60 series × 60 one-minute slots over an hour: 3,600 slots, 60 answer points.
    let (s, body) = f.get("/render", &p("many.*.x", "-1h")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // Over two hours 7,200 slots: over the bound though the answer holds 60 points.
    let (s, body) = f.get("/render", &p("many.*.x", "-2h")).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    // Without maxDataPoints the answer itself is over 100 points.
    let mut q = p("app.*.cpu", "-2h");
    q.pop();
    let (s, _) = f.get("/render", &q).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    // A week at one minute would be 10,080 slots a series: the step is coarsened to fit
    // 100 slots (6,048 s).
    let mut q = p("app.web1.cpu", "-7d");
    q.pop();
    let (s, body) = f.get("/render", &q).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let pts = v[0]["datapoints"].as_array().unwrap();
    assert_eq!(pts.len(), 100);
    assert_eq!(
        pts[1][1].as_i64().unwrap() - pts[0][1].as_i64().unwrap(),
        6_048
    );
}

#[tokio::test]
async fn grafana_requests_exactly_as_grafana_sends_them() {
    let f = Fixture::new(Config::default()).await;
    let (from, until) = (f.now - 3_600, f.now);
    // "Save & test" (backend healthcheck.go): constantLine(100) over the last hour.
    for mdp in ["100", "300"] {
        let form = format!(
            "target=constantLine(100)&from={from}&until={until}&format=json&maxDataPoints={mdp}"
        );
        let req = Request::post("/render")
            .header("X-Api-Key", KEY)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap();
        let (status, body) = f.send(req).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        // graphite-web makes the float parameter 100 a 100.0, and names the line so.
        assert_eq!(v[0]["target"], "100.0");
        let pts: Vec<(f64, i64)> = v[0]["datapoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_f64().unwrap(), p[1].as_i64().unwrap()))
            .collect();
        assert_eq!(
            pts,
            vec![(100.0, from), (100.0, from + 1_800), (100.0, until)]
        );
    }
    // Grafana 12's frontend: every target wrapped, the refId split off the last space.
    let wrapped = r#"aliasSub(sumSeries(app.*.requests), "(^.*$)", "\1 A")"#;
    let form = format!(
        "target={}&target={}&from={from}&until={until}&format=json&maxDataPoints=40",
        pct(wrapped),
        pct(r#"aliasSub(app.web2.cpu, "(^.*$)", "\1 B")"#)
    );
    let req = Request::post("/render")
        .header("Authorization", format!("Bearer {KEY}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    let (status, body) = f.send(req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let targets: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        vec!["sumSeries(app.*.requests) A", "app.web2.cpu B"]
    );
    // aliasSub renames; the tags keep the name graphite-web gives them.
    assert_eq!(v[1]["tags"]["name"], "app.web2.cpu");
    assert!(v[0]["datapoints"].as_array().unwrap().len() <= 40);
}

#[tokio::test]
async fn find_and_expand_match_graphite_web() {
    let f = Fixture::new(Config::default()).await;
    let g = golden("find.json");
    for (i, case) in g["find"].as_array().unwrap().iter().enumerate() {
        let query = case["query"].as_str().unwrap();
        let p = vec![("query".to_string(), query.to_string())];
        let (status, body) = if i % 2 == 0 {
            f.post("/metrics/find", &p).await
        } else {
            f.get("/metrics/find", &p).await
        };
        assert_eq!(
            status.as_u16(),
            case["status"].as_u64().unwrap() as u16,
            "{query}: {body}"
        );
        let got: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(got, case["body"], "find {query}");
    }
    for case in g["expand"].as_array().unwrap() {
        let p: Vec<(String, String)> = case["query"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| ("query".to_string(), q.as_str().unwrap().to_string()))
            .collect();
        let (status, body) = f.get("/metrics/expand", &p).await;
        assert_eq!(status, StatusCode::OK);
        let got: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(got, case["body"], "expand {:?}", case["query"]);
    }
    // A node that is a leaf and a branch (`app.web1.latency` and
    // `app.web1.latency.p99`): graphite-web keeps one of the two at random; carat
    // lists both, the branch first.
    let (_, body) = f
        .get(
            "/metrics/find",
            &[("query".to_string(), "app.web1.l*".to_string())],
        )
        .await;
    let got: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        got,
        serde_json::json!([
            {"text": "latency", "id": "app.web1.latency", "leaf": 0, "expandable": 1, "allowChildren": 1},
            {"text": "latency", "id": "app.web1.latency", "leaf": 1, "expandable": 0, "allowChildren": 0},
        ])
    );
    let (status, _) = f.get("/metrics/find", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = f.get("/version", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.split('.').count(), 3, "a semver: {body}");
}

#[test]
fn attime_matches_graphite_web() {
    let g = golden("attime.json");
    let cases = g["cases"].as_array().unwrap();
    assert!(cases.len() > 100);
    let mut failures = Vec::new();
    for c in cases {
        let (at, now) = (c["at"].as_str().unwrap(), c["now"].as_i64().unwrap());
        let got = attime::parse(at, now).ok();
        if got != c["epoch"].as_i64() {
            failures.push(format!(
                "{at:?} at {now}: carat {got:?}, graphite-web {}",
                c["epoch"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
