//! `carat-archiver`: the archiver Lambda. One function for two event sources: the
//! DynamoDB stream's event source mapping (filtered to TTL removals,
//! ReportBatchItemFailures on) and an EventBridge schedule every
//! `archiver.compaction_interval_secs` that runs compaction. The S3 client is built
//! once per container; config from the environment (`carat_store::env`).

use std::sync::Arc;

use carat_archiver::Archiver;
use carat_store::S3Archive;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    carat_writer::init_lambda_tracing();
    let config = Arc::new(carat_store::env::config_from_env()?);
    let sdk = carat_store::connect::aws_config(&config.retry).await;
    let archive = S3Archive::new(
        carat_store::connect::s3_client(&sdk),
        config.resources.archive_bucket.clone(),
    );
    let archiver = Arc::new(Archiver::new(Arc::new(archive), Arc::clone(&config)));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let archiver = Arc::clone(&archiver);
        async move {
            archiver
                .handle_json(event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
