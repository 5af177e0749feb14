//! `carat-api`: the ingest API as a Lambda behind API Gateway (HTTP API), through
//! `lambda_http`. Everything is built once per container, then handed to the router.
//!
//! Environment:
//! - `CARAT_CONFIG`: path of a carat config TOML (optional; defaults otherwise);
//! - `CARAT_API_KEYS`: the key store as JSON (the Secrets Manager secret's text; see
//!   docs/api.md "Key store"). Fetching it by `CARAT_API_KEYS_SECRET_ARN` at cold start is
//!   left to the deploy work.

use std::sync::Arc;

use carat_api::{router, AppState, KeyStore};
use carat_core::Config;
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
    let config = match std::env::var("CARAT_CONFIG") {
        Ok(path) => Config::from_toml(&std::fs::read_to_string(&path)?)?,
        Err(_) => Config::default(),
    };
    if std::env::var_os("CARAT_API_KEYS").is_none() {
        return Err(
            "CARAT_API_KEYS is not set: it holds the API key store as JSON (docs/api.md)".into(),
        );
    }
    let keys = KeyStore::from_env(|name| std::env::var(name).ok())?;
    let config = Arc::new(config);
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let log = KinesisLog::new(
        aws_sdk_kinesis::Client::new(&sdk),
        config.resources.stream.clone(),
        config.limits.clone(),
        config.retry.clone(),
    );
    let state = AppState::new(Arc::new(log), Arc::new(keys), config);
    lambda_http::run(router(state)).await
}
