//! `carat-reader`: the read API as a Lambda behind API Gateway (HTTP API), through
//! `lambda_http`. Clients are built once per container, then handed to the router.
//!
//! Environment: as `carat-api` (`CARAT_CONFIG` / `CARAT_CONFIG_FILE` and the
//! `CARAT_*` resource overrides, the key store from `CARAT_API_KEYS_SECRET_ARN` or
//! `CARAT_API_KEYS`), plus the Redis AUTH secret (`carat_store::secrets`).

use std::sync::Arc;

use carat_api::{keys, SystemClock};
use carat_reader::{router, ReadState, Tiers};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    carat_writer::init_lambda_tracing();
    let env = |name: &str| std::env::var(name).ok();
    let config = Arc::new(carat_store::env::config_from(env)?);
    let sdk = carat_store::connect::aws_config(&config.retry).await;
    let password = carat_store::secrets::redis_password(&sdk, env).await?;
    let clients = carat_store::connect_with(&sdk, &config, password.as_ref()).await?;
    let keys = keys::from_lambda_env(env, &sdk).await?;
    let archive = carat_reader::archive_tier(clients.archive, &config);
    let state = ReadState {
        tiers: Tiers {
            config,
            head: clients.head,
            table: clients.table,
            archive,
        },
        catalog: clients.catalog,
        keys: Arc::new(keys),
        clock: Arc::new(SystemClock),
    };
    lambda_http::run(router(state)).await
}
