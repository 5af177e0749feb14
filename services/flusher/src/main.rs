//! `carat-flusher`: the flusher Lambda, invoked by an EventBridge schedule each minute.
//! Clients are built once per container. Config from the environment
//! (`carat_store::env`: `CARAT_CONFIG` TOML text or `CARAT_CONFIG_FILE`, then the `CARAT_*`
//! overrides); the Redis AUTH token from the secret named by `CARAT_REDIS_AUTH_SECRET_ARN`.

use std::sync::Arc;

use carat_flusher::Flusher;
use carat_writer::SystemClock;
use lambda_runtime::{service_fn, LambdaEvent};

// One thread: a Lambda container serves one invocation at a time, and the work is
// Redis and DynamoDB round trips. The multi-thread runtime's cross-thread wake-ups cost
// the writer 1.6× the CPU per point into Redis (docs/BENCHMARKS.md, "Writer CPU into
// Redis"); concurrent bucket stores still overlap their I/O on the one thread.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    carat_writer::init_lambda_tracing();
    let env = |name: &str| std::env::var(name).ok();
    let config = Arc::new(carat_store::env::config_from(env)?);
    let sdk = carat_store::connect::aws_config(&config.retry).await;
    let password = carat_store::secrets::redis_password(&sdk, env).await?;
    let clients = carat_store::connect_with(&sdk, &config, password.as_ref()).await?;
    let flusher = Arc::new(Flusher::new(
        config,
        clients.head,
        clients.table,
        Arc::new(SystemClock),
    ));
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let flusher = Arc::clone(&flusher);
        async move {
            let report = flusher.run().await.map_err(lambda_runtime::Error::from)?;
            Ok::<_, lambda_runtime::Error>(serde_json::json!({
                "flushedWindows": report.flushed_windows,
                "settledWindows": report.settled_windows,
                "budgetExhausted": report.budget_exhausted,
            }))
        }
    }))
    .await
}
