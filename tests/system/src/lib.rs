//! carat's whole-system proof, black box (issue 11; tests/system/README.md).
//!
//! Every scenario under `tests/` starts `carat local` processes of its own ([`Carat`]) with
//! resources of its own (a Kinesis stream, window and catalog tables and an archive bucket,
//! made as `localstack/init/ready.d/10-carat-resources.sh` makes the shared ones), on
//! the Redis cluster and the AWS stand-in that `make test` started ([`services::ensure`]
//! starts them with the project's scripts when they are not up). It then talks to carat
//! only as a user would:
//!
//! - HTTP on the process's own port ([`http::Http`], [`Carat::get`], [`Carat::post`]);
//! - the `carat` binary ([`Carat::cli`]);
//! - process signals ([`Carat::kill9`], [`Carat::stop`], [`Carat::restart`]);
//! - the Redis cluster and the AWS stand-in through their own interfaces ([`aws`], [`redis`]),
//!   to see what is stored and to break things;
//! - a fault-injecting proxy between carat and the stand-in ([`proxy::FaultProxy`]).
//!
//! [`acked`] keeps the oracle of acknowledged points and checks carat's answers and stored
//! windows against it.
//!
//! No carat crate is linked: nothing here can reach around the public interfaces.
//!
//! Each scenario file is its own test binary; cargo runs test binaries one after another,
//! so a fault one scenario injects (a killed Redis master) hits no other scenario.
//! Tests that need the running services are `#[ignore]`d with the reason, as in the rest of
//! the workspace; `make test` runs them with `--include-ignored`.
#![allow(clippy::unwrap_used)] // a test harness: a failure is a panic with its message

pub mod acked;
pub mod aws;
pub mod http;
pub mod localstack;
pub mod prom;
pub mod proxy;
pub mod redis_cluster;
pub mod services;
pub mod stored;
pub mod system;

pub use http::{Http, Reply};
pub use system::{Carat, Options};

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The repository's root (the harness is `tests/system/`).
#[must_use]
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Unix seconds now.
#[must_use]
pub fn now_secs() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// Unix milliseconds now.
#[must_use]
pub fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// A lowercase name unique to this process and moment (resource names, tenants).
#[must_use]
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        now_ms().rem_euclid(100_000_000)
    )
    .to_lowercase()
}

/// Polls `cond` every 200 ms until it gives `Some`, or panics naming `what` after
/// `patience`.
pub async fn wait_for<T, F, Fut>(what: &str, patience: Duration, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {patience:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The Redis cluster's nodes the local system uses (`CARAT_REDIS_NODES`, else
/// scripts/redis-cluster.sh's 127.0.0.1:7000–7005).
#[must_use]
pub fn redis_nodes() -> Vec<String> {
    match std::env::var("CARAT_REDIS_NODES") {
        Ok(v) if !v.trim().is_empty() => v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                if s.contains("://") {
                    s.to_string()
                } else {
                    format!("redis://{s}")
                }
            })
            .collect(),
        _ => (7000..=7005)
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect(),
    }
}

/// A Redis cluster connection, for breaking things (deleting a head key) and looking.
/// Every call through it should be wrapped in a timeout (redis-rs cluster connections can
/// hang on some failures): [`redis_call`].
pub async fn redis() -> redis::cluster_async::ClusterConnection {
    let client = redis::cluster::ClusterClientBuilder::new(redis_nodes())
        .connection_timeout(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), client.get_async_connection())
        .await
        .expect("redis cluster connection within 10 s")
        .expect("redis cluster connection")
}

/// One Redis command with a 5 s bound.
pub async fn redis_call<T: redis::FromRedisValue>(
    conn: &mut redis::cluster_async::ClusterConnection,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    match tokio::time::timeout(Duration::from_secs(5), cmd.query_async(conn)).await {
        Ok(r) => r,
        Err(_) => Err(redis::RedisError::from((
            redis::ErrorKind::IoError,
            "redis call timed out after 5 s",
        ))),
    }
}
