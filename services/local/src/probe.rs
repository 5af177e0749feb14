//! The end-to-end probe of the local system: every `probe.interval_secs` (default 60; 0 =
//! off) it runs `carat_probe::Probe` against carat-local's own listener — post one point of
//! `carat.probe`, read it back through the reader — as the EventBridge schedule runs the
//! `carat-probe` Lambda in AWS. No EMF here: each result is logged, and the last one is
//! shown in `GET /health` under `probe` (docs/probe-metric.md).
//!
//! The key: `CARAT_PROBE_API_KEY`, else the documented development key `carat-dev-probe`
//! (entry `probe` of `config/api-keys.local.toml`: write + read, tenant `carat-probe`, so the
//! probe's series stays out of the development tenant, as in AWS).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use carat_core::clock::SystemClock;
use carat_probe::{HttpClient, Probe, ProbeResult};
use carat_store::secrets::Secret;
use serde::Serialize;
use tokio::time::MissedTickBehavior;
use tracing::{info, warn};

use crate::serve::{AppState, Shutdown, TaskResult};

/// The variable with the local probe's API key.
pub const KEY_VAR: &str = carat_probe::setup::API_KEY;
/// The key used when [`KEY_VAR`] is not set: the development probe key (write and read).
pub const DEV_KEY: &str = "carat-dev-probe";
/// Longest run: the local loop takes well under a second, so 30 s means it is broken.
pub const MAX_DEADLINE: Duration = Duration::from_secs(30);

/// Delay of the first run after start.
pub const FIRST_RUN_AFTER: Duration = Duration::from_secs(2);

/// Where the local probe points and what it last found; shared by the task and `/health`.
#[derive(Debug)]
pub struct LocalProbe {
    target: String,
    interval_secs: u64,
    last: RwLock<Option<ProbeResult>>,
}

/// The `probe` object of `/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeStatus {
    /// Base URL probed (carat-local's own listener).
    pub target: String,
    /// Seconds between runs.
    pub interval_secs: u64,
    /// The last run (`at_ms` its start, then `latency_ms` or `error`); null before the first.
    pub last: Option<ProbeResult>,
}

impl LocalProbe {
    /// The probe of the listener at `listen` (an unspecified address is probed on loopback).
    #[must_use]
    pub fn new(listen: SocketAddr, interval_secs: u64) -> Self {
        let ip = match listen.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            ip => ip,
        };
        Self {
            target: format!("http://{}", SocketAddr::new(ip, listen.port())),
            interval_secs,
            last: RwLock::new(None),
        }
    }

    /// A probe that never runs (`carat replay`, tests that start parts of the system).
    #[must_use]
    pub fn off() -> Self {
        Self::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), 0)
    }

    /// What `/health` shows; `None` when the probe is off.
    #[must_use]
    pub fn status(&self) -> Option<ProbeStatus> {
        (self.interval_secs > 0).then(|| ProbeStatus {
            target: self.target.clone(),
            interval_secs: self.interval_secs,
            last: self
                .last
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        })
    }

    pub(crate) fn record(&self, result: ProbeResult) {
        *self.last.write().unwrap_or_else(PoisonError::into_inner) = Some(result);
    }
}

/// Runs the probe every `probe.interval_secs` until shutdown (returns at once when 0). A
/// failed run is logged and shown in `/health`; it never stops the process.
///
/// # Errors
/// None in practice: the signature is the task list's.
pub async fn run_probe(state: AppState, shutdown: Shutdown) -> TaskResult {
    let local = Arc::clone(&state.probe);
    if local.interval_secs == 0 {
        shutdown.wait().await;
        return Ok(());
    }
    let key = std::env::var(KEY_VAR).unwrap_or_else(|_| DEV_KEY.to_string());
    let client = match HttpClient::new() {
        Ok(client) => client,
        Err(e) => {
            warn!(error = %e, "the local probe cannot build its HTTP client; it stays off");
            local.record(ProbeResult {
                latency_ms: None,
                error: Some(e.to_string()),
                at_ms: carat_core::clock::Clock::now_ms(&SystemClock),
            });
            shutdown.wait().await;
            return Ok(());
        }
    };
    let probe = Probe::new(
        client,
        &local.target,
        Secret::new(key),
        Arc::new(SystemClock),
    );
    let every = Duration::from_secs(local.interval_secs);
    let deadline = every.min(MAX_DEADLINE);
    // The first run a moment after start: the tasks are spawned before the listener is
    // bound, and a run that finds no listener would only report that.
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + FIRST_RUN_AFTER.min(every),
        every,
    );
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let result = tokio::select! {
                    r = probe.run(deadline) => r,
                    () = shutdown.clone().wait() => return Ok(()),
                };
                match (&result.latency_ms, &result.error) {
                    (Some(latency_ms), _) => info!(latency_ms, "probe: point read back"),
                    (None, error) => warn!(error = error.as_deref().unwrap_or("unknown"), "probe failed"),
                }
                local.record(result);
            }
            () = shutdown.clone().wait() => return Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_probe_key_is_the_local_key_files_probe_entry() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(carat_api::auth::LOCAL_KEYS_FILE);
        let store = carat_api::KeyStore::load(&path).expect("the local keys file parses");
        let key = store.find(DEV_KEY).expect("carat-dev-probe is in the file");
        assert_eq!(key.name, "probe");
        assert_eq!(key.tenant.as_str(), "carat-probe");
        assert!(key.has(carat_api::Scope::Write) && key.has(carat_api::Scope::Read));
    }

    #[test]
    fn an_unspecified_listener_is_probed_on_loopback() {
        let p = LocalProbe::new("0.0.0.0:8080".parse().expect("addr"), 60);
        assert_eq!(p.target, "http://127.0.0.1:8080");
        let p = LocalProbe::new("127.0.0.1:9000".parse().expect("addr"), 60);
        assert_eq!(p.target, "http://127.0.0.1:9000");
    }

    #[test]
    fn status_shows_the_last_run_and_nothing_when_off() {
        let p = LocalProbe::new("127.0.0.1:9000".parse().expect("addr"), 60);
        assert_eq!(p.status().expect("on").last, None);
        p.record(ProbeResult {
            latency_ms: Some(12),
            error: None,
            at_ms: 1_764_072_000_000,
        });
        assert_eq!(
            serde_json::to_value(p.status()).expect("json"),
            serde_json::json!({
                "target": "http://127.0.0.1:9000",
                "interval_secs": 60,
                "last": {"latency_ms": 12, "error": null, "at_ms": 1_764_072_000_000_i64}
            })
        );
        let off = LocalProbe::new("127.0.0.1:9000".parse().expect("addr"), 0);
        assert_eq!(off.status(), None);
    }
}
