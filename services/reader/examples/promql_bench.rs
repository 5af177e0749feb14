//! PromQL query_range latency: `rate(bench_requests_total[5m])` over 100 series × 1 day
//! (one point a minute) at step 60 s, through the reader's router (auth, parameters,
//! catalog lookup, tier reads and merge, evaluation, JSON) over the in-memory fakes
//! (FakeTable/FakeCatalog: no network, no DynamoDB), reported as p50/p99 and raw points
//! decoded per second. `reader.max_points_per_answer` is raised to 1,000,000: the query
//! reads and answers 144,000 points, over the default 100,000.
//!
//! `cargo run --release -p carat-reader --example promql_bench [REPS]`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::Request;
use carat_api::remote_write::{series_name, Label};
use carat_api::{FixedClock, KeyStore, Keys, Scope};
use carat_core::head::Stamped;
use carat_core::{Config, SeriesKey, Tenant};
use carat_reader::{router, NoArchive, ReadState, Tiers};
use carat_store::fake::{FakeCatalog, FakeHead, FakeTable};
use carat_store::ports::{Catalog, CatalogEntry, WindowTable};
use carat_writer::flush::window_items;
use tower::ServiceExt as _;

const DAY: i64 = 86_400;
/// 2026-11-30 00:00 UTC.
const T0: i64 = 1_764_460_800;
const SERIES: usize = 100;

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let reps: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(50);
    let mut cfg = Config::default();
    cfg.reader.max_points_per_answer = 1_000_000;
    let cfg = Arc::new(cfg);
    let table = Arc::new(FakeTable::new());
    let catalog = Arc::new(FakeCatalog::new());
    let tenant = Tenant::default_tenant();
    for s in 0..SERIES {
        let instance = format!("host-{s:03}:9100");
        let mut labels = vec![
            ("__name__".to_string(), "bench_requests_total".to_string()),
            ("instance".to_string(), instance),
            ("job".to_string(), "bench".to_string()),
        ];
        labels.sort();
        let wire: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label {
                name: k.clone(),
                value: v.clone(),
            })
            .collect();
        let key = SeriesKey::new(tenant.clone(), series_name(&wire)?);
        // A counter: a few requests a minute, a reset at noon.
        let mut v = 0.0;
        let points: Vec<Stamped> = (0..1_440)
            .map(|i| {
                v = if i == 720 {
                    0.0
                } else {
                    v + ((i * 7 + s as i64) % 13) as f64
                };
                Stamped {
                    time: T0 + i * 60,
                    value_bits: f64::to_bits(v),
                    stamp: T0 + i * 60,
                }
            })
            .collect();
        table.put(&window_items(&cfg, &key, T0, &points)?).await?;
        catalog
            .record(
                &tenant,
                &[CatalogEntry {
                    series: key.series.clone(),
                    labels,
                    day: T0,
                }],
            )
            .await?;
    }
    let keys = KeyStore::single("bench", "bench-key", tenant.clone(), &[Scope::Read]);
    let app = router(ReadState {
        tiers: Tiers {
            config: Arc::clone(&cfg),
            head: Arc::new(FakeHead::new()),
            table,
            archive: Arc::new(NoArchive),
        },
        catalog,
        keys: Arc::new(Keys::fixed(Arc::new(keys))),
        clock: Arc::new(FixedClock((T0 + DAY + 600) * 1000)),
    });
    let uri = format!(
        "/api/v1/query_range?query=rate%28bench_requests_total%5B5m%5D%29&start={T0}&end={}&step=60",
        T0 + DAY
    );
    let mut lat = Vec::with_capacity(reps);
    let mut answered = 0usize;
    for rep in 0..=reps {
        let req = Request::get(&uri)
            .header("X-Api-Key", "bench-key")
            .body(Body::empty())?;
        let started = Instant::now();
        let res = app.clone().oneshot(req).await?;
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), 256 << 20).await?;
        let secs = started.elapsed().as_secs_f64();
        if !status.is_success() {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&body)).into());
        }
        if rep == 0 {
            // Warm-up; also checks the answer is what it should be.
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            let result = v["data"]["result"].as_array().ok_or("no result")?;
            answered = result
                .iter()
                .map(|s| s["values"].as_array().map_or(0, Vec::len))
                .sum();
            assert_eq!(result.len(), SERIES);
            continue;
        }
        lat.push(secs);
    }
    lat.sort_by(f64::total_cmp);
    // Each query reads the whole day (the 5 minutes before it hold no points).
    let decoded = SERIES * 1_440;
    let p50 = pct(&lat, 0.5);
    println!(
        "promql query_range rate(x[5m]), {SERIES} series x 1 day (1/min), step 60 s, {reps} reps, in-memory fakes:"
    );
    println!(
        "  p50 {:.1} ms, p99 {:.1} ms; {answered} points answered; {decoded} raw points decoded per query = {:.2} M points/s at p50",
        p50 * 1e3,
        pct(&lat, 0.99) * 1e3,
        decoded as f64 / p50 / 1e6
    );
    Ok(())
}
