//! `GET /health`: asks every dependency at once and answers
//!
//! ```json
//! {"status":"ok","dependencies":[
//!   {"name":"redis","target":"redis://127.0.0.1:7000,…","ok":true,"latency_ms":2,"detail":"cluster_state:ok, 3 masters answered, 6 nodes known"},
//!   {"name":"dynamodb","target":"table carat-windows","ok":false,"latency_ms":2000,"error":"timed out after 2000 ms"}]}
//! ```
//!
//! with 200 when every dependency is up and 503 (`"status":"unavailable"`) otherwise, so
//! `curl -f` and load balancers can use it as it is.
//!
//! When the local end-to-end probe runs (`probe.interval_secs` > 0), a `probe` object shows
//! its last run:
//!
//! ```json
//! "probe":{"target":"http://127.0.0.1:8080","interval_secs":60,
//!          "last":{"latency_ms":412,"error":null,"at_ms":1764072000123}}
//! ```
//!
//! (`last` is null before the first run; a failed run has `latency_ms` null and `error`
//! set). The probe does not change `status` or the code: it measures the whole loop, reader
//! included, and a readiness check (`make local-up`) must not wait for it.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{extract::State, http::StatusCode, routing::get, Json, Router};
use serde::Serialize;

use crate::clients::NamedProbe;
use crate::probe::{LocalProbe, ProbeStatus};

/// Longest wait for one dependency. A healthy local answer takes milliseconds; 2 s keeps
/// `/health` well inside the 1 s × 60 polling of `make local-up` even when all time out.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the probes come from: `Clients::probes` in the server, fixed answers in tests.
pub type Probes = Arc<dyn Fn() -> Vec<NamedProbe> + Send + Sync>;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Health {
    pub status: &'static str,
    pub dependencies: Vec<Dependency>,
    /// The local end-to-end probe's last run; absent when it is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeStatus>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Dependency {
    pub name: &'static str,
    pub target: String,
    pub ok: bool,
    pub latency_ms: u64,
    /// What the dependency reported when up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What went wrong when down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The `/health` route (dependencies only).
pub fn router(probes: Probes) -> Router {
    router_with_probe(probes, Arc::new(LocalProbe::off()))
}

/// The `/health` route, with the end-to-end probe's last result.
pub fn router_with_probe(probes: Probes, probe: Arc<LocalProbe>) -> Router {
    Router::new()
        .route("/health", get(health))
        .with_state((probes, probe))
}

async fn health(
    State((probes, probe)): State<(Probes, Arc<LocalProbe>)>,
) -> (StatusCode, Json<Health>) {
    let mut report = check(probes()).await;
    report.probe = probe.status();
    let code = if report.status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(report))
}

/// Runs every probe concurrently, each bounded by [`PROBE_TIMEOUT`].
pub async fn check(probes: Vec<NamedProbe>) -> Health {
    let dependencies = futures::future::join_all(probes.into_iter().map(|p| async move {
        let started = Instant::now();
        let result = match tokio::time::timeout(PROBE_TIMEOUT, p.probe).await {
            Ok(result) => result,
            Err(_) => Err(format!("timed out after {} ms", PROBE_TIMEOUT.as_millis())),
        };
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (detail, error) = match result {
            Ok(detail) => (Some(detail), None),
            Err(error) => (None, Some(error)),
        };
        Dependency {
            name: p.name,
            target: p.target,
            ok: error.is_none(),
            latency_ms,
            detail,
            error,
        }
    }))
    .await;
    let status = if dependencies.iter().all(|d| d.ok) {
        "ok"
    } else {
        "unavailable"
    };
    Health {
        status,
        dependencies,
        probe: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::{body::Body, http::Request};
    use tower::ServiceExt;

    use super::*;

    fn probe(name: &'static str, result: Result<&'static str, &'static str>) -> NamedProbe {
        NamedProbe {
            name,
            target: format!("{name} target"),
            probe: Box::pin(async move { result.map(str::to_string).map_err(str::to_string) }),
        }
    }

    async fn get_health(probes: Probes) -> (StatusCode, serde_json::Value) {
        get_health_with(probes, Arc::new(LocalProbe::off())).await
    }

    async fn get_health_with(
        probes: Probes,
        probe: Arc<LocalProbe>,
    ) -> (StatusCode, serde_json::Value) {
        let response = router_with_probe(probes, probe)
            .oneshot(
                Request::get("/health")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("router answers");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, serde_json::from_slice(&body).expect("JSON body"))
    }

    #[tokio::test]
    async fn all_up_is_200() {
        let (status, body) = get_health(Arc::new(|| {
            vec![
                probe("redis", Ok("cluster_state:ok")),
                probe("s3", Ok("bucket b reachable")),
            ]
        }))
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok");
        assert_eq!(body["dependencies"][0]["name"], "redis");
        assert_eq!(body["dependencies"][1]["ok"], true);
        assert_eq!(body["dependencies"][1]["detail"], "bucket b reachable");
        assert!(body["dependencies"][1].get("error").is_none());
    }

    #[tokio::test]
    async fn one_down_is_503_and_names_it() {
        let (status, body) = get_health(Arc::new(|| {
            vec![
                probe("redis", Ok("cluster_state:ok")),
                probe("kinesis", Err("stream missing")),
            ]
        }))
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "unavailable");
        assert_eq!(body["dependencies"][1]["name"], "kinesis");
        assert_eq!(body["dependencies"][1]["ok"], false);
        assert_eq!(body["dependencies"][1]["error"], "stream missing");
    }

    #[tokio::test]
    async fn the_probe_is_shown_but_does_not_decide_the_status() {
        let local = Arc::new(LocalProbe::new("127.0.0.1:8080".parse().expect("addr"), 60));
        let up: Probes = Arc::new(|| vec![probe("redis", Ok("cluster_state:ok"))]);
        let (status, body) = get_health_with(Arc::clone(&up), Arc::clone(&local)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["probe"]["target"], "http://127.0.0.1:8080");
        assert_eq!(body["probe"]["last"], serde_json::Value::Null);
        local.record(carat_probe::ProbeResult {
            latency_ms: None,
            error: Some("the point was not readable".to_string()),
            at_ms: 1_764_072_000_123,
        });
        let (status, body) = get_health_with(up, local).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok");
        assert_eq!(
            body["probe"]["last"],
            serde_json::json!({"latency_ms": null, "error": "the point was not readable", "at_ms": 1_764_072_000_123_i64})
        );
    }

    #[tokio::test]
    async fn no_probe_object_when_it_is_off() {
        let (_, body) = get_health(Arc::new(|| vec![probe("redis", Ok("ok"))])).await;
        assert!(body.get("probe").is_none(), "{body}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_dependency_times_out() {
        let hung = NamedProbe {
            name: "dynamodb",
            target: "table t".to_string(),
            probe: Box::pin(futures::future::pending()),
        };
        let report = check(vec![hung]).await;
        assert_eq!(report.status, "unavailable");
        assert_eq!(
            report.dependencies[0].error.as_deref(),
            Some("timed out after 2000 ms")
        );
    }
}
