//! Fuzz run (issue 11, scenario 7) of what the read path takes from a client: remote_read
//! bodies through the router, query parameters of the native, Graphite and Prometheus
//! routes (any times, any PromQL token soup), Graphite targets and times; and the
//! planner, whose answer for a range is now computed from its ends:
//!
//! - the plan of any range equals the window-by-window definition (for ranges short
//!   enough to list), and ranges of ±2^40 s (which the routes accept) plan and read in
//!   milliseconds — they used to list every window of the range (10^10 windows of 60 s:
//!   the bad-input scenario saw carat reach 7 GB and stop answering);
//! - every request is answered with a 2xx or 4xx, never a panic or a 5xx.
//!
//! Bounded: 48 (11 routes each) to 1,000 cases per property.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use carat_api::prompb::{self, LabelMatcher, Query, ReadRequest};
use carat_core::{window, Config, SeriesKey, SeriesName, Tenant};
use carat_reader::graphite::{attime, target};
use carat_reader::{NoArchive, Tiers};
use carat_store::fake::{FakeHead, FakeTable};
use common::{Fixture, READ};
use proptest::prelude::*;

const NOW: i64 = 1_764_460_800;
const LIMIT: i64 = window::TIME_LIMIT;

fn cfg() -> Config {
    let mut c = Config::default();
    c.window.raw_secs = 60;
    c
}

fn tiers(cfg: &Config) -> Tiers {
    Tiers {
        config: Arc::new(cfg.clone()),
        head: Arc::new(FakeHead::new()),
        table: Arc::new(FakeTable::new()),
        archive: Arc::new(NoArchive),
    }
}

async fn fixture() -> Fixture {
    let f = Fixture::new(cfg(), common::reader_writer_other(), NOW);
    f.store(
        "default",
        "app.a",
        NOW,
        &[(NOW - 120, 1.5), (NOW - 60, 2.5)],
    )
    .await;
    f.store_labelled(
        "default",
        &[("__name__", "up"), ("job", "node")],
        NOW,
        &[(NOW - 60, 1.0)],
    )
    .await;
    f
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The plan by its definition, window by window (what the planner listed before).
fn plan_by_definition(cfg: &Config, from: i64, to: i64, now: i64) -> carat_reader::tiers::Plan {
    let len = cfg.window.raw_secs;
    let starts: Vec<i64> = window::covering(len, from, to).collect();
    let expired = |s: i64| s + len + cfg.retention.raw_secs <= now;
    let newest = window::start(len, now + cfg.ingest.max_skew_secs + len);
    let span = |v: Vec<i64>| Some((*v.first()?, *v.last()?));
    carat_reader::tiers::Plan {
        head: starts
            .iter()
            .copied()
            .filter(|&s| cfg.head_expiry(s) > now && s <= newest)
            .collect(),
        table: span(starts.iter().copied().filter(|&s| !expired(s)).collect()),
        archive: span(starts.iter().copied().filter(|&s| expired(s)).collect()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// For any range short enough to list (≤ 20,000 windows) and any clock, the plan is
    /// the definition's: the head's windows, the live span, the expired span.
    #[test]
    fn plans_follow_their_definition(
        from in -LIMIT..LIMIT,
        span in 0i64..1_200_000,
        now_offset in -4_000_000i64..4_000_000,
    ) {
        let cfg = cfg();
        let to = (from + span).min(LIMIT);
        let now = from + now_offset;
        prop_assert_eq!(tiers(&cfg).plan(from, to, now), plan_by_definition(&cfg, from, to, now));
    }

    /// Any range within ±2^40 s plans in far under a second, with few head windows.
    #[test]
    fn any_range_plans_promptly(from in -LIMIT..=LIMIT, to in -LIMIT..=LIMIT, now in -LIMIT..=LIMIT) {
        let cfg = cfg();
        let started = Instant::now();
        let plan = tiers(&cfg).plan(from, to, now);
        prop_assert!(started.elapsed() < Duration::from_millis(200), "{:?}", started.elapsed());
        let most = (cfg.head_expiry(0) + cfg.ingest.max_skew_secs) / cfg.window.raw_secs + 4;
        prop_assert!(plan.head.len() as i64 <= most, "{} head windows", plan.head.len());
    }
}

#[tokio::test]
async fn reads_of_all_time_answer_promptly() {
    let f = fixture().await;
    let t = f.state().tiers;
    let key = SeriesKey::new(
        Tenant::default_tenant(),
        SeriesName::parse("app.a", "s").unwrap(),
    );
    let started = Instant::now();
    let raw = t.raw(&key, -LIMIT, LIMIT, NOW).await.unwrap();
    let buckets = t.buckets(&key, -LIMIT, LIMIT, 60, NOW).await.unwrap();
    let days = t.buckets(&key, -LIMIT, LIMIT, 86_400, NOW).await.unwrap();
    let elapsed = started.elapsed();
    eprintln!("raw, 60 s and 1 d buckets over ±2^40 s: {elapsed:?}");
    assert_eq!(raw.len(), 2);
    assert_eq!(buckets.len(), 2);
    assert_eq!(days.len(), 1);
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    for path in [
        format!(
            "/api/v1/points?series=app.a&from={}&to={LIMIT}&resolution=raw",
            -LIMIT
        ),
        format!(
            "/api/v1/points?series=app.*&from={}&to={LIMIT}&resolution=60",
            -LIMIT
        ),
        format!(
            "/api/v0/hosts/h1/metrics?name=cpu&from={}&to={LIMIT}",
            -LIMIT
        ),
        format!("/api/v1/query?query=count_over_time(up%5B100000000d%5D)&time={NOW}"),
    ] {
        let started = Instant::now();
        let a = f.send(common::get(&path, Some(READ))).await;
        assert!(a.status.as_u16() < 500, "{path}: {}", a.status);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{path}: {:?}",
            started.elapsed()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// remote_read: any bytes, snappy of any bytes, and requests of any times, matcher
    /// types, names, values (regexes included) and response types: 200, 400 or 413.
    #[test]
    fn remote_read_answers_2xx_or_4xx(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        queries in proptest::collection::vec(
            (any::<i64>(), any::<i64>(), proptest::collection::vec((0i32..5, "(__name__|job|[a-z]{0,3})", "[a-z.*()|\\[\\]{}+?^$\\\\]{0,10}"), 0..4)),
            0..4,
        ),
        types in proptest::collection::vec(0i32..3, 0..3),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let f = fixture().await;
            let req = ReadRequest {
                queries: queries
                    .iter()
                    .map(|(s, e, ms)| Query {
                        start_timestamp_ms: *s,
                        end_timestamp_ms: *e,
                        matchers: ms.iter().map(|(t, n, v)| LabelMatcher { r#type: *t, name: n.clone(), value: v.clone() }).collect(),
                        hints: None,
                    })
                    .collect(),
                accepted_response_types: types.clone(),
            };
            for body in [bytes.clone(), snap::raw::Encoder::new().compress_vec(&bytes).unwrap(), prompb::encode(&req)] {
                let r = Request::post("/api/v1/read")
                    .header("X-Api-Key", READ)
                    .header("Content-Encoding", "snappy")
                    .body(Body::from(body))
                    .unwrap();
                let a = f.send(r).await;
                let s = a.status.as_u16();
                prop_assert!(matches!(s, 200 | 400 | 413), "{}: {}", s, String::from_utf8_lossy(&a.body));
            }
            Ok(())
        })?;
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The native, Mackerel, Graphite and Prometheus routes with parameters of any
    /// text and any times: 2xx or 4xx.
    #[test]
    fn read_parameters_get_2xx_or_4xx(
        from in prop_oneof![any::<i64>().prop_map(|v| v.to_string()), (-LIMIT..=LIMIT).prop_map(|v| v.to_string()), "\\PC{0,8}"],
        to in prop_oneof![any::<i64>().prop_map(|v| v.to_string()), (-LIMIT..=LIMIT).prop_map(|v| v.to_string()), "\\PC{0,8}"],
        word in "[a-z0-9.*{},\\[\\]()'\"=~!+-]{0,24}",
        promql in proptest::collection::vec(prop_oneof![
            Just("("), Just(")"), Just("["), Just("]"), Just("{"), Just("}"), Just("up"), Just("sum"),
            Just("rate"), Just("by"), Just("job"), Just("=~"), Just("\"a.*\""), Just("5m"), Just(":1s"), Just("@"),
            Just("offset"), Just("-"), Just("+"), Just("/"), Just("and"), Just(","), Just("1e308"), Just("NaN"),
            Just("1000000d"), Just("histogram_quantile"), Just("0.9"), Just("topk"), Just("label_replace"),
        ], 0..24),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let f = fixture().await;
            let (fr, t, w, q) = (pct(&from), pct(&to), pct(&word), pct(&promql.join(" ")));
            for path in [
                format!("/api/v1/points?series=app.a&from={fr}&to={t}&resolution=raw"),
                format!("/api/v1/points?series={w}&from={fr}&to={t}&resolution={w}"),
                format!("/api/v1/names?match={w}&limit={t}"),
                format!("/api/v0/hosts/{w}/metrics?name={w}&from={fr}&to={t}"),
                format!("/api/v0/tsdb/latest?hostId={w}&name={w}"),
                format!("/render?target={w}&from={fr}&until={t}&maxDataPoints={t}"),
                format!("/render?target=sumSeries(app.*)&from={fr}&until={t}"),
                format!("/metrics/find?query={w}"),
                format!("/api/v1/query?query={q}&time={fr}"),
                format!("/api/v1/query_range?query={q}&start={fr}&end={t}&step={w}"),
                format!("/api/v1/series?match[]={q}&start={fr}&end={t}"),
            ] {
                let a = f.send(common::get(&path, Some(READ))).await;
                prop_assert!(a.status.as_u16() < 500, "{}: {} {}", path, a.status, String::from_utf8_lossy(&a.body));
            }
            Ok(())
        })?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Graphite targets and times of any text: parsed or refused, never a panic.
    #[test]
    fn graphite_text_never_panics(
        s in "\\PC{0,40}",
        soup in proptest::collection::vec(prop_oneof![
            Just("sumSeries("), Just(")"), Just(","), Just("a.*"), Just("'x'"), Just("\""), Just("|"),
            Just("scale("), Just("1e999"), Just("-"), Just("{a,b}"), Just("["), Just("]"), Just("="),
            Just("None"), Just("true"), Just("aliasSub("), Just("\\1"),
        ], 0..30),
    ) {
        let _ = target::parse(&s);
        let _ = target::parse(&soup.concat());
        let _ = attime::parse(&s, NOW);
        let _ = attime::parse(&soup.concat(), NOW);
    }
}
