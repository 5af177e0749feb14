//! `carat-writer`: the writer Lambda behind the Kinesis event source mapping
//! (ReportBatchItemFailures on). Clients are built once per container; each batch goes
//! to the library handler. `CARAT_CONFIG`: optional path of a carat config TOML.

use std::sync::Arc;

use aws_lambda_events::event::kinesis::KinesisEvent;
use carat_core::Config;
use carat_writer::sink::LogSink;
use carat_writer::{SystemClock, Writer};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    carat_writer::init_lambda_tracing();
    let config = Arc::new(match std::env::var("CARAT_CONFIG") {
        Ok(path) => Config::from_toml(&std::fs::read_to_string(&path)?)?,
        Err(_) => Config::default(),
    });
    let clients = carat_store::connect(&config).await?;
    let writer = Arc::new(Writer::new(
        Arc::clone(&config),
        clients.head,
        clients.table,
        Arc::new(LogSink),
        Arc::new(SystemClock),
    ));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<KinesisEvent>| {
        let writer = Arc::clone(&writer);
        async move {
            writer
                .handle(&event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
