//! Prometheus remote_read (`POST /api/v1/read`) through the real router over in-memory
//! tiers: hand-built `ReadRequest`s in, decoded `ReadResponse`s out — one result per
//! query, values bit-exact at whole seconds × 1000, each matcher type, plain-text 4xx
//! for bad bodies and limits, the `read` scope and tenants, and 503 on a store failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::ops::Deref;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use carat_api::prompb::{
    self, Label, LabelMatcher, MatchType, Query, ReadHints, ReadRequest, ReadResponse, ResponseType,
};
use carat_api::remote_write::STALE_NAN_BITS;
use carat_core::Config;
use common::{OTHER, READ, WRITE_ONLY};
use tower::ServiceExt as _;

const DAY: i64 = 86_400;
/// 2026-11-30 00:00 UTC.
const T0: i64 = 1_764_460_800;
/// A NaN with a payload that is not the staleness marker's.
const NAN_PAYLOAD: u64 = 0x7ff8_0000_0000_0123;

/// Prometheus series (and a few posted by name) on two tenants, read at noon of T0's day.
struct Fixture(common::Fixture);

impl Deref for Fixture {
    type Target = common::Fixture;

    fn deref(&self) -> &common::Fixture {
        &self.0
    }
}

impl Fixture {
    async fn new(cfg: Config) -> Self {
        let f = Self(common::Fixture::new(
            cfg,
            common::reader_writer_other(),
            T0 + DAY / 2,
        ));
        let node = [("instance", "a:9100"), ("job", "node")];
        f.prometheus(
            "default",
            "up",
            &node,
            &[(T0, 1.0), (T0 + 1, 1.0), (T0 + 2, 0.0)],
        )
        .await;
        f.prometheus(
            "default",
            "up",
            &[("instance", "b:9100"), ("job", "node")],
            &[(T0, 1.0)],
        )
        .await;
        f.prometheus(
            "default",
            "up",
            &[("instance", "p:9090"), ("job", "prom")],
            &[(T0, 1.0), (T0 + 1, 0.0)],
        )
        .await;
        f.prometheus(
            "default",
            "node_load1",
            &node,
            &[
                (T0, 0.5),
                (T0 + 1, f64::from_bits(STALE_NAN_BITS)),
                (T0 + 2, f64::from_bits(NAN_PAYLOAD)),
                (T0 + 3, f64::NEG_INFINITY),
            ],
        )
        .await;
        // `job:rate5m` is stored as `job_rate5m.job.node`; the plain `job_rate5m` is
        // another series that `__name__="job:rate5m"` must not match.
        f.prometheus("default", "job:rate5m", &[("job", "node")], &[(T0, 3.0)])
            .await;
        f.plain("default", "job_rate5m", &[(T0, 4.0)]).await;
        // `host{…}` is stored as `host.instance.x.job.odd`, listed under the group
        // `host.instance`, not `host`.
        f.prometheus(
            "default",
            "host",
            &[("instance", "x"), ("job", "odd")],
            &[(T0, 7.0)],
        )
        .await;
        f.plain("default", "host.h1.loadavg5", &[(T0, 1.5), (T0 + 60, 2.5)])
            .await;
        f.prometheus("other", "up", &node, &[(T0, 99.0)]).await;
        f
    }

    /// A series as remote_write stores it: named from its labels, the labels in the catalog.
    async fn prometheus(
        &self,
        tenant: &str,
        metric: &str,
        labels: &[(&str, &str)],
        points: &[(i64, f64)],
    ) {
        let mut all = labels.to_vec();
        all.push(("__name__", metric));
        self.store_labelled(tenant, &all, T0, points).await;
    }

    /// A series posted by name (Mackerel, native): no labels in the catalog.
    async fn plain(&self, tenant: &str, series: &str, points: &[(i64, f64)]) {
        self.store(tenant, series, T0, points).await;
    }

    /// POSTs `body` as Prometheus 2.42 does (its headers, the key as a bearer token).
    async fn post(&self, body: Vec<u8>, key: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut req = Request::post("/api/v1/read")
            .header("Content-Encoding", "snappy")
            .header("Accept-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Read-Version", "0.1.0");
        if let Some(k) = key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        let answer = self.send(req.body(Body::from(body)).unwrap()).await;
        (answer.status, answer.headers, answer.body)
    }

    /// Reads `req` with the read key; panics unless it is a 200 `ReadResponse`.
    async fn read(&self, req: &ReadRequest) -> ReadResponse {
        let (status, headers, body) = self.post(prompb::encode(req), Some(READ)).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        assert_eq!(headers["content-type"], "application/x-protobuf");
        assert_eq!(headers["content-encoding"], "snappy");
        prompb::decode(&body, 1 << 24, "prometheus.ReadResponse").unwrap()
    }

    /// The error a request gets: status and its plain-text body.
    async fn refused(&self, body: Vec<u8>, key: Option<&str>) -> (StatusCode, String) {
        let (status, headers, body) = self.post(body, key).await;
        assert!(!status.is_success(), "{status}");
        let text = String::from_utf8(body).unwrap();
        if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
            assert_eq!(
                headers["content-type"], "text/plain; charset=utf-8",
                "{text}"
            );
        }
        (status, text)
    }
}

fn m(kind: MatchType, name: &str, value: &str) -> LabelMatcher {
    LabelMatcher {
        r#type: kind as i32,
        name: name.into(),
        value: value.into(),
    }
}

fn query(start_ms: i64, end_ms: i64, matchers: Vec<LabelMatcher>) -> Query {
    Query {
        start_timestamp_ms: start_ms,
        end_timestamp_ms: end_ms,
        matchers,
        // What Prometheus sends for a `rate(…[1m])` of a range query.
        hints: Some(ReadHints {
            step_ms: 15_000,
            func: "rate".into(),
            start_ms,
            end_ms,
            grouping: vec![],
            by: false,
            range_ms: 60_000,
        }),
    }
}

fn request(queries: Vec<Query>) -> ReadRequest {
    ReadRequest {
        queries,
        accepted_response_types: vec![],
    }
}

/// The whole day of the fixture's data.
fn day(matchers: Vec<LabelMatcher>) -> ReadRequest {
    request(vec![query(T0 * 1000, (T0 + DAY) * 1000 - 1, matchers)])
}

/// A series of an answer as PromQL writes it, `{a="b",…}` in label order.
fn selector(labels: &[Label]) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// The series of one result, as selectors, in answer order.
fn series_of(res: &ReadResponse, i: usize) -> Vec<String> {
    res.results[i]
        .timeseries
        .iter()
        .map(|t| selector(&t.labels))
        .collect()
}

/// Samples of one result as (ms, value bits) per series selector.
fn samples_of(res: &ReadResponse, i: usize) -> BTreeMap<String, Vec<(i64, u64)>> {
    res.results[i]
        .timeseries
        .iter()
        .map(|t| {
            (
                selector(&t.labels),
                t.samples
                    .iter()
                    .map(|s| (s.timestamp, s.value.to_bits()))
                    .collect(),
            )
        })
        .collect()
}

const UP_A: &str = r#"{__name__="up",instance="a:9100",job="node"}"#;
const UP_B: &str = r#"{__name__="up",instance="b:9100",job="node"}"#;
const UP_P: &str = r#"{__name__="up",instance="p:9090",job="prom"}"#;
const LOAD: &str = r#"{__name__="node_load1",instance="a:9100",job="node"}"#;
const RATE: &str = r#"{__name__="job:rate5m",job="node"}"#;
const PLAIN_RATE: &str = r#"{__name__="job_rate5m"}"#;
const HOST: &str = r#"{__name__="host",instance="x",job="odd"}"#;
const MACKEREL: &str = r#"{hostId="h1",name="loadavg5"}"#;

#[tokio::test]
async fn one_result_per_query_bit_exact_at_whole_seconds() {
    let f = Fixture::new(Config::default()).await;
    let res = f
        .read(&request(vec![
            query(
                T0 * 1000,
                (T0 + 10) * 1000,
                vec![
                    m(MatchType::Eq, "__name__", "node_load1"),
                    m(MatchType::Eq, "job", "node"),
                ],
            ),
            // Edges: (T0, T0+2) in ms excludes T0 (before start) and T0+2 (after end).
            query(
                T0 * 1000 + 1,
                (T0 + 2) * 1000 - 1,
                vec![m(MatchType::Eq, "__name__", "up")],
            ),
            // Nothing in range: an empty result, still in its place.
            query(
                (T0 + 100) * 1000,
                (T0 + 200) * 1000,
                vec![m(MatchType::Eq, "__name__", "up")],
            ),
            query(
                T0 * 1000,
                T0 * 1000,
                vec![m(MatchType::Eq, "__name__", "no_such_metric")],
            ),
        ]))
        .await;
    assert_eq!(res.results.len(), 4);
    assert_eq!(
        samples_of(&res, 0),
        BTreeMap::from([(
            LOAD.to_string(),
            vec![
                (T0 * 1000, 0.5f64.to_bits()),
                ((T0 + 1) * 1000, STALE_NAN_BITS),
                ((T0 + 2) * 1000, NAN_PAYLOAD),
                ((T0 + 3) * 1000, f64::NEG_INFINITY.to_bits()),
            ]
        )])
    );
    assert_eq!(
        samples_of(&res, 1),
        BTreeMap::from([
            (UP_A.to_string(), vec![((T0 + 1) * 1000, 1.0f64.to_bits())]),
            (UP_P.to_string(), vec![((T0 + 1) * 1000, 0.0f64.to_bits())]),
        ])
    );
    assert!(res.results[2].timeseries.is_empty());
    assert!(res.results[3].timeseries.is_empty());
    // The hints are decoded and ignored; histograms are never sent.
    assert!(res.results[0].timeseries[0].histograms.is_empty());
}

#[tokio::test]
async fn each_matcher_type_selects_like_prometheus() {
    let f = Fixture::new(Config::default()).await;
    let name = |v: &str| m(MatchType::Eq, "__name__", v);
    let cases: Vec<(Vec<LabelMatcher>, Vec<&str>)> = vec![
        (vec![name("up")], vec![UP_A, UP_B, UP_P]),
        (
            vec![name("up"), m(MatchType::Eq, "job", "node")],
            vec![UP_A, UP_B],
        ),
        (
            vec![name("up"), m(MatchType::Neq, "instance", "a:9100")],
            vec![UP_B, UP_P],
        ),
        // Anchored: `a` alone matches no instance, `a:.*` does.
        (vec![name("up"), m(MatchType::Re, "instance", "a")], vec![]),
        (
            vec![name("up"), m(MatchType::Re, "instance", "a:.*|p:9090")],
            vec![UP_A, UP_P],
        ),
        (
            vec![name("up"), m(MatchType::Nre, "instance", ".*:9100")],
            vec![UP_P],
        ),
        // An absent label is "": `=""` and `=~".*"` match it, `!=""` does not.
        (
            vec![name("up"), m(MatchType::Eq, "absent", "")],
            vec![UP_A, UP_B, UP_P],
        ),
        (
            vec![name("up"), m(MatchType::Neq, "job", "")],
            vec![UP_A, UP_B, UP_P],
        ),
        (vec![name("up"), m(MatchType::Re, "absent", ".+")], vec![]),
        // The metric name as Prometheus spelled it, not as carat's name sanitized it.
        (vec![name("job:rate5m")], vec![RATE]),
        (vec![name("job_rate5m")], vec![PLAIN_RATE]),
        // `host{…}` lives in the group `host.instance`.
        (vec![name("host")], vec![HOST]),
        // No `__name__="…"`: every group is listed, matched by labels.
        (
            vec![m(MatchType::Eq, "job", "node")],
            vec![LOAD, RATE, UP_A, UP_B],
        ),
        (
            vec![m(MatchType::Re, "__name__", "job.rate5m")],
            vec![RATE, PLAIN_RATE],
        ),
        (vec![m(MatchType::Eq, "hostId", "h1")], vec![MACKEREL]),
        (
            vec![
                m(MatchType::Eq, "__name__", ""),
                m(MatchType::Re, "name", "load.*"),
            ],
            vec![MACKEREL],
        ),
    ];
    for (matchers, want) in cases {
        let res = f.read(&day(matchers.clone())).await;
        let mut got = series_of(&res, 0);
        got.sort();
        let mut want: Vec<String> = want.into_iter().map(String::from).collect();
        want.sort();
        assert_eq!(got, want, "matchers {matchers:?}");
    }
}

#[tokio::test]
async fn bad_bodies_are_400_in_plain_text() {
    let f = Fixture::new(Config::default()).await;
    let (status, text) = f.refused(b"not snappy \xff\xff".to_vec(), Some(READ)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        text.starts_with("body is not snappy (block format)"),
        "{text}"
    );

    let junk = snap::raw::Encoder::new()
        .compress_vec(&[0xff, 0xff, 0xff, 0xff])
        .unwrap();
    let (status, text) = f.refused(junk, Some(READ)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        text.starts_with("body is not a protobuf prometheus.ReadRequest"),
        "{text}"
    );

    // A small body that would inflate past the bound is refused before inflating.
    let huge = snap::raw::Encoder::new()
        .compress_vec(&vec![0u8; carat_reader::remote_read::MAX_REQUEST_BYTES + 1])
        .unwrap();
    assert!(huge.len() < 100_000);
    let (status, text) = f.refused(huge, Some(READ)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(text.contains("over the limit of 1048576"), "{text}");

    let bad_regex = day(vec![
        m(MatchType::Eq, "__name__", "up"),
        m(MatchType::Re, "job", "(unclosed"),
    ]);
    let (status, text) = f.refused(prompb::encode(&bad_regex), Some(READ)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        text.starts_with("query 0: matcher 1: \"(unclosed\" is not a valid regex"),
        "{text}"
    );

    let mut bad_type = day(vec![m(MatchType::Eq, "__name__", "up")]);
    bad_type.queries[0].matchers[0].r#type = 9;
    let (status, text) = f.refused(prompb::encode(&bad_type), Some(READ)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("unknown matcher type 9"), "{text}");

    // Content-Encoding other than snappy.
    let res = f
        .router()
        .oneshot(
            Request::post("/api/v1/read")
                .header("Authorization", format!("Bearer {READ}"))
                .header("Content-Encoding", "gzip")
                .body(Body::from(prompb::encode(&day(vec![]))))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn samples_only_unless_the_client_accepts_nothing_else() {
    let f = Fixture::new(Config::default()).await;
    let mut req = day(vec![m(MatchType::Eq, "__name__", "up")]);
    // Prometheus 2.55+ with chunked reads asks for chunks first, then samples.
    req.accepted_response_types = vec![
        ResponseType::StreamedXorChunks as i32,
        ResponseType::Samples as i32,
    ];
    assert_eq!(series_of(&f.read(&req).await, 0).len(), 3);
    req.accepted_response_types = vec![ResponseType::StreamedXorChunks as i32];
    let (status, text) = f.refused(prompb::encode(&req), Some(READ)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        text.starts_with("carat answers remote_read with the SAMPLES response type only"),
        "{text}"
    );
}

#[tokio::test]
async fn the_samples_and_series_bounds_are_413_naming_their_key() {
    // node_load1 + the three `up` series hold 4 + 3 + 1 + 2 = 10 samples.
    let both = || {
        request(vec![
            query(
                T0 * 1000,
                (T0 + 10) * 1000,
                vec![m(MatchType::Eq, "__name__", "node_load1")],
            ),
            query(
                T0 * 1000,
                (T0 + 10) * 1000,
                vec![m(MatchType::Eq, "__name__", "up")],
            ),
        ])
    };
    let mut cfg = Config::default();
    cfg.reader.max_samples_per_read = 10;
    let f = Fixture::new(cfg).await;
    let res = f.read(&both()).await;
    assert_eq!(res.results.len(), 2);
    let mut cfg = Config::default();
    // The bound holds over all the queries of a request.
    cfg.reader.max_samples_per_read = 9;
    let f = Fixture::new(cfg).await;
    let (status, text) = f.refused(prompb::encode(&both()), Some(READ)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        text.starts_with("the answer would hold more than 9 samples (reader.max_samples_per_read)"),
        "{text}"
    );

    let mut cfg = Config::default();
    cfg.reader.max_series_per_query = 2;
    let f = Fixture::new(cfg).await;
    let (status, text) = f
        .refused(
            prompb::encode(&day(vec![m(MatchType::Eq, "__name__", "up")])),
            Some(READ),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        text.starts_with(
            "query 0 ({__name__=\"up\"}) matches more than 2 series (reader.max_series_per_query)"
        ),
        "{text}"
    );
    // Without a metric name the groups are bounded too (the fixture has 5).
    let (status, text) = f
        .refused(
            prompb::encode(&day(vec![m(MatchType::Eq, "job", "prom")])),
            Some(READ),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(text.contains("with an __name__=\"…\" matcher"), "{text}");
    // Within the bound: fine.
    let res = f
        .read(&day(vec![
            m(MatchType::Eq, "__name__", "up"),
            m(MatchType::Eq, "job", "prom"),
        ]))
        .await;
    assert_eq!(series_of(&res, 0), vec![UP_P]);
}

#[tokio::test]
async fn a_read_key_is_needed_and_tenants_are_apart() {
    let f = Fixture::new(Config::default()).await;
    let body = || prompb::encode(&day(vec![m(MatchType::Eq, "__name__", "up")]));
    assert_eq!(f.refused(body(), None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        f.refused(body(), Some("no-such-key")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        f.refused(body(), Some(WRITE_ONLY)).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, _, bytes) = f.post(body(), Some(OTHER)).await;
    assert_eq!(status, StatusCode::OK);
    let res: ReadResponse = prompb::decode(&bytes, 1 << 20, "x").unwrap();
    assert_eq!(
        samples_of(&res, 0),
        BTreeMap::from([(UP_A.to_string(), vec![(T0 * 1000, 99.0f64.to_bits())])])
    );
    // The password of Basic auth, as Prometheus' `basic_auth` sends it.
    let res = f
        .router()
        .oneshot(
            Request::post("/api/v1/read")
                .header(
                    "Authorization",
                    format!("Basic {}", STANDARD.encode(format!("prometheus:{READ}"))),
                )
                .header("Content-Encoding", "snappy")
                .body(Body::from(body()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_unavailable_store_is_503_with_retry_after_and_no_store_text() {
    let f = Fixture::new(Config::default()).await;
    f.table.faults().fail_next(1);
    let (status, headers, body) = f
        .post(
            prompb::encode(&day(vec![m(MatchType::Eq, "__name__", "node_load1")])),
            Some(READ),
        )
        .await;
    let text = String::from_utf8(body).unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert_eq!(headers["retry-after"], "1");
    assert!(
        text.starts_with("storage is unavailable; retry after 1 s (request id "),
        "{text}"
    );
    assert!(!text.contains("injected"), "{text}");
    f.catalog.faults().fail_next(1);
    let (status, _, _) = f
        .post(
            prompb::encode(&day(vec![m(MatchType::Eq, "__name__", "up")])),
            Some(READ),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn prometheus_no_start_times_are_clamped_to_what_carat_keeps() {
    let f = Fixture::new(Config::default()).await;
    // What Prometheus asks for `/api/v1/series` without `start`/`end`
    // (minTime/maxTime of its web API, in ms).
    let res = f
        .read(&request(vec![query(
            -9_223_309_901_257_974,
            9_223_309_901_257_974,
            vec![m(MatchType::Eq, "__name__", "up")],
        )]))
        .await;
    assert_eq!(
        samples_of(&res, 0)[UP_A],
        vec![
            (T0 * 1000, 1.0f64.to_bits()),
            ((T0 + 1) * 1000, 1.0f64.to_bits()),
            ((T0 + 2) * 1000, 0.0f64.to_bits()),
        ]
    );
}
