//! Fuzz run (issue 11, scenario 7) of the ingest API's body decoders: the JSON bodies of
//! the Mackerel and native routes ([`body::parse`] then [`body::resolve`]), Prometheus
//! remote_write ([`remote_write::decode`] then [`remote_write::resolve`]: snappy block +
//! protobuf) and remote_read's request ([`prompb::decode`] of a `ReadRequest`, which the
//! reader's route calls):
//!
//! - arbitrary bytes and mutated valid bodies are answered with a 4xx error or a value,
//!   never a panic or a 5xx;
//! - valid encodings round-trip bit-exact (values by their bits; protobuf's one loss,
//!   −0.0 arriving as +0.0, is docs/api.md's);
//! - nothing allocates what a body claims: the hostile-bytes tests run again in a child process
//!   capped at 1 GiB of address space (`prlimit --as`), and snappy headers claiming up to
//!   4 GiB are refused before decompressing.
//!
//! Bounded: 256 to 1,000 cases per property.
#![allow(clippy::unwrap_used)]

use carat_api::body::{self, Shape};
use carat_api::prompb::{self, LabelMatcher, Query, ReadRequest};
use carat_api::remote_write::{self, Label, Sample, TimeSeries, WriteRequest};
use carat_api::AppError;
use carat_core::config::IngestConfig;
use proptest::prelude::*;
use prost::Message as _;

const CAP_BYTES: u64 = 1 << 30;
const NOW: i64 = 1_700_000_000;
const MAX_BODY: usize = 5 << 20;

/// Runs the hostile-bytes tests of this file again with the address space capped: an
/// allocation sized by a lying header aborts the child and fails this test.
#[test]
fn every_decode_here_fits_under_a_memory_cap() {
    if std::env::var_os("CARAT_FUZZ_CAPPED").is_some() {
        return; // this is the child
    }
    let exe = std::env::current_exe().unwrap();
    let out = match std::process::Command::new("prlimit")
        .arg(format!("--as={CAP_BYTES}"))
        .arg("--")
        .arg(&exe)
        .args([
            "--test-threads=1",
            "--skip",
            "every_decode_here_fits_under_a_memory_cap",
        ])
        .env("CARAT_FUZZ_CAPPED", "1")
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("SKIPPED: prlimit (util-linux) is not available: {e}");
            return;
        }
    };
    assert!(
        out.status.success(),
        "the capped run failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A client error: what bad input may get.
fn is_4xx(e: &AppError) -> bool {
    e.status().is_client_error()
}

fn cfg() -> IngestConfig {
    IngestConfig {
        max_points_per_request: 1000,
        ..IngestConfig::default()
    }
}

const SHAPES: [Shape; 3] = [Shape::MackerelHost, Shape::MackerelService, Shape::Native];

/// The whole JSON path of a route: parse, then names and limits.
fn json_route(shape: Shape, body: &[u8]) -> Result<usize, AppError> {
    let posted = body::parse(shape, body, cfg().max_points_per_request)?;
    let points = body::resolve(shape, Some("web"), posted, NOW, &cfg())?;
    Ok(points.len())
}

/// The whole remote_write path: decode, then resolve.
fn remote_write_route(body: &[u8]) -> Result<usize, AppError> {
    let req = remote_write::decode(body, MAX_BODY)?;
    let total: usize = req.timeseries.iter().map(|t| t.samples.len()).sum();
    let r = remote_write::resolve(req, NOW, &cfg())?;
    assert_eq!(
        r.points.len() + r.dropped.total() - r.dropped.histograms,
        total
    );
    assert!(r
        .points
        .iter()
        .all(|(_, p)| (NOW - 86_400..=NOW + 600).contains(&p.time)));
    Ok(r.points.len())
}

fn point_json(shape: Shape, first: &str, name: &str, time: i64, value: f64) -> serde_json::Value {
    match shape {
        Shape::MackerelHost => {
            serde_json::json!({"hostId": first, "name": name, "time": time, "value": value})
        }
        Shape::MackerelService => serde_json::json!({"name": first, "time": time, "value": value}),
        Shape::Native => serde_json::json!({"series": first, "time": time, "value": value}),
    }
}

fn a_write_request(n: usize, t: i64) -> WriteRequest {
    WriteRequest {
        timeseries: (0..n)
            .map(|i| TimeSeries {
                labels: vec![
                    Label {
                        name: "__name__".into(),
                        value: "node_cpu_seconds_total".into(),
                    },
                    Label {
                        name: "cpu".into(),
                        value: i.to_string(),
                    },
                ],
                samples: vec![Sample {
                    value: i as f64 * 0.5,
                    timestamp: t * 1000 + i as i64,
                }],
                histograms: Vec::new(),
            })
            .collect(),
    }
}

fn mutate(mut b: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(at, byte, op) in edits {
        if b.is_empty() {
            break;
        }
        let at = at % b.len();
        match op {
            0 => b[at] = byte,
            1 => b.truncate(at),
            _ => b.insert(at, byte),
        }
    }
    b
}

#[test]
fn snappy_headers_claiming_huge_bodies_are_refused_before_decompressing() {
    for claim in [MAX_BODY as u64 + 1, 1 << 30, u64::from(u32::MAX)] {
        let mut b = Vec::new();
        let mut v = claim;
        while v >= 0x80 {
            b.push((v as u8) | 0x80);
            v >>= 7;
        }
        b.push(v as u8);
        b.extend_from_slice(&[0x0c, b'a', b'b', b'c', b'd']);
        let e = remote_write_route(&b).unwrap_err();
        assert_eq!(e.status().as_u16(), 413, "{claim}: {e}");
        assert!(matches!(
            prompb::decode::<ReadRequest>(&b, 1 << 20, "prometheus.ReadRequest"),
            Err(prompb::DecodeError::TooLarge { .. })
        ));
    }
    // A real bomb: 64 MiB of zeros in ~3 MB of snappy.
    let bomb = snap::raw::Encoder::new()
        .compress_vec(&vec![0u8; 64 << 20])
        .unwrap();
    assert_eq!(
        remote_write_route(&bomb).unwrap_err().status().as_u16(),
        413
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Arbitrary bytes on every body decoder: a 4xx or a value, never a panic.
    #[test]
    fn arbitrary_bytes_get_a_4xx_or_a_value(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        for shape in SHAPES {
            if let Err(e) = json_route(shape, &bytes) {
                prop_assert!(is_4xx(&e), "{:?}: {}", shape, e);
            }
        }
        let snappy = snap::raw::Encoder::new().compress_vec(&bytes).unwrap();
        for b in [&bytes, &snappy] {
            if let Err(e) = remote_write_route(b) {
                prop_assert!(is_4xx(&e), "remote_write: {}", e);
            }
            let _ = prompb::decode::<ReadRequest>(b, 1 << 20, "prometheus.ReadRequest");
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Text that looks like JSON points (the tokens of the format, shuffled): the same.
    #[test]
    fn json_like_text_gets_a_4xx_or_a_value(
        tokens in proptest::collection::vec(prop_oneof![
            Just("["), Just("]"), Just("{"), Just("}"), Just(","), Just(":"),
            Just("\"series\""), Just("\"hostId\""), Just("\"name\""), Just("\"time\""), Just("\"value\""),
            Just("\"a.b\""), Just("1700000000"), Just("-1"), Just("1e999"), Just("NaN"), Just("null"),
            Just("1.5"), Just("\"x y\""), Just("9223372036854775808"), Just("true"), Just("\"\\u0000\""),
        ], 0..60),
    ) {
        let text = tokens.concat();
        for shape in SHAPES {
            if let Err(e) = json_route(shape, text.as_bytes()) {
                prop_assert!(is_4xx(&e), "{:?} {}: {}", shape, text, e);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Valid JSON bodies round-trip: every point back, names as sent, values bit-exact.
    #[test]
    fn json_bodies_round_trip_bit_exact(
        shape in prop_oneof![Just(Shape::MackerelHost), Just(Shape::MackerelService), Just(Shape::Native)],
        points in proptest::collection::vec(
            ("[A-Za-z0-9._-]{1,40}", "[A-Za-z0-9._-]{1,40}", any::<i64>(), any::<f64>().prop_filter("finite", |v| v.is_finite())),
            0..50,
        ),
    ) {
        let body: Vec<serde_json::Value> = points
            .iter()
            .map(|(a, b, t, v)| point_json(shape, a, b, *t, *v))
            .collect();
        let bytes = serde_json::to_vec(&body).unwrap();
        let back = body::parse(shape, &bytes, 1000).unwrap();
        prop_assert_eq!(back.len(), points.len());
        for (p, (a, b, t, v)) in back.iter().zip(&points) {
            prop_assert_eq!(&p.first, a);
            if shape == Shape::MackerelHost {
                prop_assert_eq!(&p.name, b);
            }
            prop_assert_eq!(p.time, *t);
            prop_assert_eq!(p.value.to_bits(), v.to_bits());
        }
    }

    /// Valid bodies of every route with bytes changed, cut or inserted: a 4xx or a value.
    #[test]
    fn mutated_bodies_get_a_4xx_or_a_value(
        n in 1usize..40,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        for shape in SHAPES {
            let body: Vec<serde_json::Value> = (0..n)
                .map(|i| point_json(shape, "h1", "cpu.user", NOW - i as i64, i as f64 / 3.0))
                .collect();
            let b = mutate(serde_json::to_vec(&body).unwrap(), &edits);
            if let Err(e) = json_route(shape, &b) {
                prop_assert!(is_4xx(&e), "{:?}: {}", shape, e);
            }
        }
        let raw = a_write_request(n, NOW).encode_to_vec();
        for b in [
            prompb::encode(&a_write_request(n, NOW)),
            snap::raw::Encoder::new().compress_vec(&mutate(raw.clone(), &edits)).unwrap(),
        ] {
            let b = mutate(b, &edits);
            if let Err(e) = remote_write_route(&b) {
                prop_assert!(is_4xx(&e), "remote_write: {}", e);
            }
        }
    }

    /// remote_write requests of any labels, values and times round-trip through
    /// snappy + protobuf bit-exact, and resolve without panicking: every sample stored
    /// or counted as dropped.
    #[test]
    fn write_requests_round_trip_and_resolve(
        series in proptest::collection::vec(
            (
                proptest::collection::vec(("(__name__|[a-z_]{0,8})", "\\PC{0,12}"), 0..5),
                proptest::collection::vec((any::<u64>(), prop_oneof![any::<i64>(), (NOW - 90_000)*1000..(NOW + 900) * 1000]), 0..8),
            ),
            0..12,
        ),
    ) {
        let req = WriteRequest {
            timeseries: series
                .iter()
                .map(|(labels, samples)| TimeSeries {
                    labels: labels.iter().map(|(n, v)| Label { name: n.clone(), value: v.clone() }).collect(),
                    samples: samples.iter().map(|&(bits, t)| Sample { value: f64::from_bits(bits), timestamp: t }).collect(),
                    histograms: Vec::new(),
                })
                .collect(),
        };
        let body = prompb::encode(&req);
        let back = remote_write::decode(&body, MAX_BODY).unwrap();
        prop_assert_eq!(back.timeseries.len(), req.timeseries.len());
        for (a, b) in back.timeseries.iter().zip(&req.timeseries) {
            prop_assert_eq!(&a.labels, &b.labels);
            prop_assert_eq!(a.samples.len(), b.samples.len());
            for (x, y) in a.samples.iter().zip(&b.samples) {
                prop_assert_eq!(x.timestamp, y.timestamp);
                // protobuf leaves a double equal to 0 off the wire: −0.0 comes back +0.0.
                let want = if y.value == 0.0 { 0.0f64.to_bits() } else { y.value.to_bits() };
                prop_assert_eq!(x.value.to_bits(), want);
            }
        }
        if let Err(e) = remote_write_route(&body) {
            prop_assert!(is_4xx(&e), "{}", e);
        }
    }

    /// remote_read requests of any times and matchers round-trip.
    #[test]
    fn read_requests_round_trip(
        queries in proptest::collection::vec(
            (any::<i64>(), any::<i64>(), proptest::collection::vec((0i32..6, "\\PC{0,10}", "\\PC{0,10}"), 0..4)),
            0..6,
        ),
        types in proptest::collection::vec(0i32..3, 0..3),
    ) {
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
            accepted_response_types: types,
        };
        let body = prompb::encode(&req);
        let back: ReadRequest = prompb::decode(&body, 1 << 20, "prometheus.ReadRequest").unwrap();
        prop_assert_eq!(back, req);
    }
}
