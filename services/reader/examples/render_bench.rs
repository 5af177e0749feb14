//! Graphite render latency through the reader's router over the in-memory fakes
//! (FakeTable holding the day as the flusher writes window items, so every request
//! decodes the stored chunks; no Redis, no DynamoDB, no network): 100 series × 1 day at
//! one point a minute, `target=bench.*.value&maxDataPoints=1000`, as Grafana posts it.
//! Reports p50/p99 latency and raw points decoded per second.
//!
//! `cargo run --release -p carat-reader --example render_bench [REPS]`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::Request;
use carat_api::{FixedClock, KeyStore, Keys, Scope};
use carat_core::head::Stamped;
use carat_core::{window, Config, SeriesKey, SeriesName, Tenant};
use carat_reader::{router, NoArchive, ReadState, Tiers};
use carat_store::fake::{FakeCatalog, FakeHead, FakeTable};
use carat_store::ports::{Catalog, CatalogEntry, WindowTable};
use carat_writer::flush::window_items;
use tower::ServiceExt as _;

const SERIES: usize = 100;
const DAY: i64 = 86_400;
/// 2025-11-30 00:00 UTC.
const T0: i64 = 1_764_460_800;

fn pct(sorted: &[f64], p: f64) -> f64 {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let reps: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100);
    let cfg = Arc::new(Config::default());
    let table = Arc::new(FakeTable::new());
    let catalog = Arc::new(FakeCatalog::new());
    let tenant = Tenant::default_tenant();
    for i in 0..SERIES {
        let key = SeriesKey::new(
            tenant.clone(),
            SeriesName::parse(&format!("bench.s{i:03}.value"), "name")?,
        );
        let mut by_window: BTreeMap<i64, Vec<Stamped>> = BTreeMap::new();
        for m in 0..1_440_i64 {
            let time = T0 + m * 60;
            #[allow(clippy::cast_precision_loss)]
            let value = ((m * 37 + i as i64 * 11) % 1_000) as f64 / 10.0;
            by_window
                .entry(window::start(cfg.window.raw_secs, time))
                .or_default()
                .push(Stamped {
                    time,
                    value_bits: value.to_bits(),
                    stamp: time,
                });
        }
        for (start, pts) in by_window {
            table.put(&window_items(&cfg, &key, start, &pts)?).await?;
        }
        catalog
            .record(
                &tenant,
                &[CatalogEntry {
                    series: key.series.clone(),
                    labels: Vec::new(),
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
        clock: Arc::new(FixedClock((T0 + DAY) * 1000)),
    });
    let form = format!(
        "target=bench.*.value&from={T0}&until={}&format=json&maxDataPoints=1000",
        T0 + DAY
    );
    let mut lat = Vec::with_capacity(reps);
    let mut out_points = 0;
    for rep in 0..=reps {
        let req = Request::post("/render")
            .header("X-Api-Key", "bench-key")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(Body::from(form.clone()))?;
        let t = Instant::now();
        let res = app.clone().oneshot(req).await?;
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), 256 << 20).await?;
        let elapsed = t.elapsed().as_secs_f64();
        if !status.is_success() {
            return Err(format!("status {status}: {}", String::from_utf8_lossy(&body)).into());
        }
        if rep == 0 {
            // The first request warms the allocator; it is not counted.
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            out_points = v.as_array().map_or(0, |a| {
                a.iter()
                    .map(|s| s["datapoints"].as_array().map_or(0, Vec::len))
                    .sum()
            });
            continue;
        }
        lat.push(elapsed);
    }
    lat.sort_by(f64::total_cmp);
    #[allow(clippy::cast_precision_loss)]
    let mean = lat.iter().sum::<f64>() / lat.len() as f64;
    let decoded = SERIES * 1_440;
    #[allow(clippy::cast_precision_loss)]
    let rate = decoded as f64 / mean;
    println!(
        "render {SERIES} series x 1 day (1/min), maxDataPoints=1000, {reps} reps: p50 {:.2} ms, p99 {:.2} ms, mean {:.2} ms; {decoded} raw points decoded per request ({:.1} M points/s); {out_points} points answered",
        pct(&lat, 0.5) * 1e3,
        pct(&lat, 0.99) * 1e3,
        mean * 1e3,
        rate / 1e6
    );
    Ok(())
}
