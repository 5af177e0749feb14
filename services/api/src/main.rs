//! `carat-api`: the ingest API as a Lambda behind API Gateway (HTTP API), through
//! `lambda_http`. Everything is built once per container, then handed to the router.
//!
//! Environment (see `carat_store::env`):
//! - `CARAT_CONFIG` (carat.toml text) or `CARAT_CONFIG_FILE` (a path), optional, then the
//!   `CARAT_STREAM` / `CARAT_TABLE` / `CARAT_ARCHIVE_BUCKET` overrides;
//! - the key store (docs/api.md "Key store"): the Secrets Manager secret named by
//!   `CARAT_API_KEYS_SECRET_ARN` (as deployed), fetched at cold start and again at most
//!   every `CARAT_API_KEYS_REFRESH_SECS` (default 60) so revoked keys stop working; or,
//!   for local use, the JSON text of `CARAT_API_KEYS` (fixed).

use std::sync::Arc;

use async_trait::async_trait;
use carat_api::keys::{self, LoadError};
use carat_api::{router, AppState, KeySource, KeyStore, Keys, SystemClock};
use carat_store::env::API_KEYS_SECRET_ARN;
use carat_store::kinesis::KinesisLog;

/// The key store in Secrets Manager, fetched whole on every reload.
struct SecretKeys {
    sdk: aws_config::SdkConfig,
    secret_id: String,
}

#[async_trait]
impl KeySource for SecretKeys {
    fn describe(&self) -> String {
        format!("the secret named by {API_KEYS_SECRET_ARN}")
    }

    async fn load(&self) -> Result<KeyStore, LoadError> {
        let json = carat_store::secrets::fetch_secret_string(
            &self.sdk,
            API_KEYS_SECRET_ARN,
            &self.secret_id,
        )
        .await?;
        Ok(KeyStore::from_json(json.expose())?)
    }
}

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
    let refresh_secs = keys::refresh_secs_from_env(env)?;
    let keys = match env(API_KEYS_SECRET_ARN).map(|id| id.trim().to_string()) {
        Some(secret_id) if !secret_id.is_empty() => {
            let source = Arc::new(SecretKeys {
                sdk: sdk.clone(),
                secret_id,
            });
            Keys::load(source, Arc::new(SystemClock), refresh_secs).await?
        }
        Some(_) => return Err(format!("{API_KEYS_SECRET_ARN} is set but empty").into()),
        None => match env("CARAT_API_KEYS") {
            Some(json) => Keys::fixed(Arc::new(
                KeyStore::from_json(&json)
                    .map_err(|e| format!("key store from CARAT_API_KEYS: {e}"))?,
            )),
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
    let state = AppState::with_keys(Arc::new(log), Arc::new(keys), config);
    lambda_http::run(router(state)).await
}
