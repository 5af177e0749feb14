//! Shared by the adapter tests: unique names (so tests run in parallel and repeatedly
//! against the same local system), the SDK configuration of the local stand-in, fast
//! retry settings.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use carat_core::config::RetryConfig;
use carat_core::{SeriesKey, SeriesName, Tenant};

pub const IGNORE: &str = "needs the local system (make test starts it)";

/// The stand-in's endpoint: `AWS_ENDPOINT_URL` if it names a local address, else moto's
/// default. Tests never talk to real AWS, whatever the shell exports.
pub fn endpoint() -> String {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(u) if u.contains("127.0.0.1") || u.contains("localhost") => u,
        _ => "http://127.0.0.1:4566".to_string(),
    }
}

/// SDK configuration for the local stand-in, with dummy credentials.
pub async fn sdk() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "carat-tests"))
        .load()
        .await
}

pub fn now_secs() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs(),
    )
    .expect("seconds fit in i64")
}

/// A name no other test run uses: prefix, time, process id, a counter.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}-{}",
        now_secs(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A tenant of its own for one test.
pub fn tenant() -> Tenant {
    Tenant::parse(&unique("t")).expect("valid tenant")
}

pub fn series_key(tenant: &Tenant, name: &str) -> SeriesKey {
    SeriesKey::new(
        tenant.clone(),
        SeriesName::parse(name, "name").expect("valid series name"),
    )
}

/// Retries that give up quickly, so a failing test fails fast.
pub fn fast_retry(deadline_ms: u64) -> RetryConfig {
    RetryConfig {
        deadline_ms,
        base_backoff_ms: 5,
        max_backoff_ms: 50,
    }
}
