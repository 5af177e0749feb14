//! End-to-end post ⇒ readable latency of a running carat (docs/BENCHMARKS.md): runs the
//! probe `N` times in a row against an API and prints p50 / p99 / max and the failures.
//!
//! ```sh
//! cargo run --release -p carat-probe --example latency -- http://127.0.0.1:8080 200
//! ```
//!
//! The key is `CARAT_PROBE_API_KEY` (default: the development key `carat-dev-probe`); each
//! run has the Lambda's default budget (48 s). The figure includes the probe's backoff between
//! reads (100 ms doubling to 1 s), as the deployed probe's metric does.

use std::sync::Arc;
use std::time::Duration;

use carat_core::clock::SystemClock;
use carat_probe::{HttpClient, Probe};
use carat_store::secrets::Secret;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_string());
    let runs: usize = args.next().map_or(Ok(50), |n| n.parse())?;
    let key = std::env::var(carat_probe::setup::API_KEY)
        .unwrap_or_else(|_| "carat-dev-probe".to_string());
    let probe = Probe::new(
        HttpClient::new()?,
        &url,
        Secret::new(key),
        Arc::new(SystemClock),
    );
    let mut latencies = Vec::with_capacity(runs);
    let mut failures = Vec::new();
    for _ in 0..runs {
        let result = probe.run(Duration::from_secs(48)).await;
        match (result.latency_ms, result.error) {
            (Some(ms), _) => latencies.push(ms),
            (None, error) => failures.push(error.unwrap_or_default()),
        }
    }
    latencies.sort_unstable();
    let pct = |p: usize| {
        latencies
            .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
            .copied()
    };
    println!(
        "{url}: {} runs, {} read back: p50 {:?} ms, p99 {:?} ms, max {:?} ms; {} failed",
        runs,
        latencies.len(),
        pct(50),
        pct(99),
        latencies.last(),
        failures.len()
    );
    if let Some(first) = failures.first() {
        println!("first failure: {first}");
    }
    Ok(())
}
