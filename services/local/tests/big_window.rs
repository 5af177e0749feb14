//! Issue 8 on the local system: a day of one-second points with full-entropy value bits
//! in one window of one series (86,400 points, `raw_secs = 86400`) is stored in several
//! parts and reads back bit-exact, while another tenant's series of the same bucket is
//! stored in the same run.
//!
//! The points go through the ingest API (remote_write: JSON cannot carry NaN or ±Inf) into
//! yesterday's window. The API runs on a fixed clock 10 minutes before that window's end,
//! so that every second of the window is within its lateness (24 h) and skew (10 min)
//! checks; the writer and the flusher run on the system clock, for which the window is
//! closed (so it is flushed as soon as its points are in the head).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use carat_core::{window, Point, Tenant};
use carat_store::ports::WindowTable as _;
use common::{
    init_tracing, now_ms, point_bits, remote_write_with, run_id, send, series_key, test_config,
    wait_stored, window_ref, System, KEY,
};
use rand::{Rng as _, SeedableRng as _};

const DAY: i64 = 86_400;
/// Samples per remote_write request: well under `ingest.max_points_per_request`
/// (200,000) and `ingest.max_body_bytes` (5 MB), about what Prometheus sends at most.
const PER_REQUEST: usize = 10_000;
const OTHER_KEY: &str = "big-window-other-tenant-key";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local system (make test starts it)"]
async fn a_day_of_random_f64_is_stored_in_parts_and_reads_back_exactly() {
    init_tracing();
    let run = run_id();
    let mut cfg = test_config(&run, DAY);
    cfg.ingest.max_lateness_secs = DAY;
    cfg.validate().unwrap();
    let sys = System::start(cfg).await;
    let buckets = sys.cfg.record.buckets;

    let start = window::start(DAY, now_ms() / 1000) - DAY;
    let api_clock = Arc::new(carat_api::FixedClock((start + DAY - 600) * 1000));
    let tenant = Tenant::parse(&format!("big{run}")).unwrap();
    let name = format!("big_{run}");
    let series = format!("{name}.job.it");
    let api = sys.api_with(&tenant, KEY, api_clock.clone());
    let bucket = series_key(&tenant, &series).bucket(buckets);

    // Another tenant's series that hashes to the same bucket.
    let other = Tenant::parse(&format!("other{run}")).unwrap();
    let other_name = (0..100_000)
        .map(|i| format!("other_{run}_{i}"))
        .find(|n| series_key(&other, &format!("{n}.job.it")).bucket(buckets) == bucket)
        .expect("one in 100,000 names hashes to any given bucket");
    let other_series = format!("{other_name}.job.it");
    let other_api = sys.api_with(&other, OTHER_KEY, api_clock);

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x00ca_7a7d_a7a5);
    let points: Vec<Point> = (0..DAY)
        .map(|i| Point::new(start + i, f64::from_bits(rng.random::<u64>())))
        .collect();
    let non_finite = points.iter().filter(|p| !p.value.is_finite()).count();
    let other_points: Vec<Point> = (0..300)
        .map(|i| Point::new(start + 7 * i, i as f64 * 0.5))
        .collect();

    let begun = Instant::now();
    for (k, batch) in points.chunks(PER_REQUEST).enumerate() {
        let (status, body) = send(&api, remote_write_with(&name, KEY, batch)).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "request {k}: {body}");
        if k == 4 {
            let (status, body) = send(
                &other_api,
                remote_write_with(&other_name, OTHER_KEY, &other_points),
            )
            .await;
            assert_eq!(status, StatusCode::NO_CONTENT, "other tenant: {body}");
        }
    }
    eprintln!(
        "posted {} points ({non_finite} not finite) in {:?}; other tenant's series {other_series} in bucket {bucket}",
        points.len(),
        begun.elapsed()
    );

    let table = sys.state.clients.table.as_ref();
    let w = window_ref(&sys.cfg, &tenant, &series, start);
    let want = point_bits(&points);
    let (got, parts) = wait_stored(table, &w, &want, Duration::from_secs(180)).await;
    let stored_after = begun.elapsed();
    assert_eq!(got.len(), want.len(), "points stored");
    let first_diff = got.iter().zip(&want).position(|(a, b)| a != b);
    assert!(
        got == want,
        "stored bits differ from the posted ones, first at index {first_diff:?}"
    );
    assert!(
        parts > 1,
        "a day of full-entropy points takes more than one item ({parts})"
    );
    let items = table
        .read_window(&w.key.table_pk(carat_writer::flush::RAW), start)
        .await
        .unwrap();
    let bytes: usize = items.iter().map(|i| i.body.len()).sum();
    eprintln!(
        "stored {} points in {parts} parts ({bytes} chunk bytes) {stored_after:?} after the first request",
        got.len()
    );

    let ow = window_ref(&sys.cfg, &other, &other_series, start);
    assert_eq!(ow.bucket, bucket);
    let (got, _) = wait_stored(
        table,
        &ow,
        &point_bits(&other_points),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        got,
        point_bits(&other_points),
        "the other tenant's batch is stored"
    );
    sys.stop().await;
}
