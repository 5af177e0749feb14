//! `carat-api`: the ingest API as a Lambda behind API Gateway (HTTP API), through
//! `lambda_http`. Everything is built once per container, then handed to the router.
//!
//! Environment (see `carat_store::env`):
//! - `CARAT_CONFIG` (carat.toml text) or `CARAT_CONFIG_FILE` (a path), optional, then the
//!   `CARAT_STREAM` / `CARAT_TABLE` / `CARAT_ARCHIVE_BUCKET` overrides;
//! - the key store (docs/api.md "Key store"): fetched at cold start from the Secrets
//!   Manager secret named by `CARAT_API_KEYS_SECRET_ARN` (as deployed), or, for local use,
//!   the JSON text of `CARAT_API_KEYS`.

use std::sync::Arc;

use carat_api::{router, AppState, KeyStore};
use carat_store::env::API_KEYS_SECRET_ARN;
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
    let keys = match carat_store::secrets::secret_from_env(&sdk, API_KEYS_SECRET_ARN, env).await? {
        Some(json) => KeyStore::from_json(json.expose())
            .map_err(|e| format!("key store from {API_KEYS_SECRET_ARN}: {e}"))?,
        None => match env("CARAT_API_KEYS") {
            Some(json) => KeyStore::from_json(&json)
                .map_err(|e| format!("key store from CARAT_API_KEYS: {e}"))?,
            None => {
                return Err(format!(
                    "neither {API_KEYS_SECRET_ARN} nor CARAT_API_KEYS is set: one gives the \
                     API key store (docs/api.md)"
                )
                .into())
            }
        },
    };
    let log = KinesisLog::new(
        aws_sdk_kinesis::Client::new(&sdk),
        config.resources.stream.clone(),
        config.limits.clone(),
        config.retry.clone(),
    );
    let state = AppState::new(Arc::new(log), Arc::new(keys), config);
    lambda_http::run(router(state)).await
}
