//! The four dependencies of carat-local, connected once at start-up through
//! [`carat_store::connect()`] (as a Lambda builds its clients once per container), and a
//! health probe for each.

use std::{future::Future, pin::Pin, time::Duration};

use carat_core::Config;
pub use carat_store::Clients;
use tokio::time::Instant;
use tracing::warn;

use crate::LocalError;

/// One dependency's answer: what it reported when up, what went wrong when not.
pub type ProbeResult = Result<String, String>;
/// A running health probe.
pub type Probe = Pin<Box<dyn Future<Output = ProbeResult> + Send>>;

/// A named health probe: `name` is the dependency, `target` what exactly is asked.
pub struct NamedProbe {
    pub name: &'static str,
    pub target: String,
    pub probe: Probe,
}

/// How long start-up keeps trying to reach the Redis cluster (the AWS clients connect
/// lazily). `make local-up` starts carat-local right after the cluster reports ok, and a
/// cluster that has just formed can refuse for a moment; longer than this is a real fault.
pub const CONNECT_PATIENCE: Duration = Duration::from_secs(30);

/// Builds every adapter, retrying retryable failures for [`CONNECT_PATIENCE`].
///
/// # Errors
/// [`LocalError::Connect`] with the last failure.
pub async fn connect(config: &Config) -> Result<Clients, LocalError> {
    let deadline = Instant::now() + CONNECT_PATIENCE;
    loop {
        match carat_store::connect(config).await {
            Ok(clients) => return Ok(clients),
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                warn!(error = %e, "storage not reachable yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                return Err(LocalError::Connect {
                    dependency: "storage",
                    detail: e.to_string(),
                })
            }
        }
    }
}

/// One probe per dependency, in a fixed order: Redis, DynamoDB, Kinesis, S3, the
/// catalog table. Each asks
/// the adapter's own `health()` and checks that the resource is usable, not only there.
#[must_use]
pub fn probes(clients: &Clients, config: &Config) -> Vec<NamedProbe> {
    let res = &config.resources;
    let (head, table, log, archive, catalog) = (
        clients.head.clone(),
        clients.table.clone(),
        clients.log.clone(),
        clients.archive.clone(),
        clients.catalog.clone(),
    );
    vec![
        NamedProbe {
            name: "redis",
            target: config.redis.nodes.join(","),
            probe: Box::pin(async move {
                let h = head.health().await.map_err(|e| e.to_string())?;
                let detail = format!(
                    "cluster_state:{}, {} masters answered, {} nodes known",
                    h.state, h.masters, h.known_nodes
                );
                if h.state == "ok" {
                    Ok(detail)
                } else {
                    Err(detail)
                }
            }),
        },
        NamedProbe {
            name: "dynamodb",
            target: format!("table {}", res.table),
            probe: Box::pin(async move {
                let h = table.health().await.map_err(|e| e.to_string())?;
                active(&h.status, format!("table {}", h.status))
            }),
        },
        NamedProbe {
            name: "kinesis",
            target: format!("stream {}", res.stream),
            probe: Box::pin(async move {
                let h = log.health().await.map_err(|e| e.to_string())?;
                active(
                    &h.status,
                    format!("stream {}, {} open shards", h.status, h.open_shards),
                )
            }),
        },
        NamedProbe {
            name: "s3",
            target: format!("bucket {}", res.archive_bucket),
            probe: Box::pin(async move {
                let h = archive.health().await.map_err(|e| e.to_string())?;
                Ok(format!("bucket {} reachable", h.bucket))
            }),
        },
        NamedProbe {
            name: "catalog",
            target: format!("table {}", res.catalog_table),
            probe: Box::pin(async move {
                let h = catalog.health().await.map_err(|e| e.to_string())?;
                active(&h.status, format!("table {}", h.status))
            }),
        },
    ]
}

/// A table or stream serves reads and writes while ACTIVE or UPDATING.
fn active(status: &str, detail: String) -> ProbeResult {
    match status {
        "ACTIVE" | "UPDATING" => Ok(detail),
        _ => Err(detail),
    }
}
