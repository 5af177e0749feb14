//! `carat-api`: the ingest API as a Lambda behind API Gateway (HTTP API), through
//! `lambda_http`. Everything is built once per container, then handed to the router.
//!
//! Environment (see `carat_store::env`):
//! - `CARAT_CONFIG` (carat.toml text) or `CARAT_CONFIG_FILE` (a path), optional, then the
//!   `CARAT_STREAM` / `CARAT_TABLE` / `CARAT_ARCHIVE_BUCKET` / `CARAT_CATALOG_TABLE`
//!   overrides (the catalog table holds the name sets of record v2);
//! - the key store (docs/api.md "Key store"): the Secrets Manager secret named by
//!   `CARAT_API_KEYS_SECRET_ARN` (as deployed), fetched at cold start and again at most
//!   every `CARAT_API_KEYS_REFRESH_SECS` (default 60) so revoked keys stop working; or,
//!   for local use, the JSON text of `CARAT_API_KEYS` (fixed).

use std::sync::Arc;

use carat_api::keys;
use carat_api::{router, AppState};
use carat_store::kinesis::KinesisLog;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .without_time()
        .init();
    let env = |name: &str| std::env::var(name).ok();
    let config = Arc::new(carat_store::env::config_from(env)?);
    let sdk = carat_store::connect::aws_config(&config.retry).await;
    let keys = keys::from_lambda_env(env, &sdk).await?;
    let log = KinesisLog::new(
        carat_store::connect::kinesis_client(&sdk),
        config.resources.stream.clone(),
        config.limits.clone(),
        config.retry.clone(),
    );
    // Name sets (record v2) go to the catalog table: the writer reads them from there.
    let catalog = carat_store::connect::catalog_adapter(&sdk, &config);
    let state = AppState::with_keys(Arc::new(log), Arc::new(keys), config)
        .with_name_sets(Arc::new(catalog));
    lambda_http::run(router(state)).await
}
