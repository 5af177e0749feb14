//! `carat-flusher`: the flusher Lambda, invoked by an EventBridge schedule each minute.
//! Clients are built once per container. `CARAT_CONFIG`: optional path of a carat config TOML.

use std::sync::Arc;

use carat_core::Config;
use carat_flusher::Flusher;
use carat_writer::SystemClock;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    carat_writer::init_lambda_tracing();
    let config = Arc::new(match std::env::var("CARAT_CONFIG") {
        Ok(path) => Config::from_toml(&std::fs::read_to_string(&path)?)?,
        Err(_) => Config::default(),
    });
    let clients = carat_store::connect(&config).await?;
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
