//! `carat-probe`: the end-to-end probe Lambda, invoked by an EventBridge schedule (and by
//! the pipeline's staging check). Settings from the environment (`carat_probe::setup`),
//! read once per container; each invocation is one run, returning its `ProbeResult`.

use std::sync::Arc;

use carat_core::clock::{Clock, SystemClock};
use carat_probe::{lambda, HttpClient, Probe, Setup};
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    carat_probe::init_lambda_tracing();
    let sdk = carat_store::connect::aws_config(&carat_core::config::RetryConfig::default()).await;
    let setup = Setup::from_env(&sdk, |name| std::env::var(name).ok()).await?;
    let probe = Arc::new(Probe::new(
        HttpClient::new()?,
        &setup.api_url,
        setup.key,
        Arc::new(SystemClock),
    ));
    let deployment = Arc::new(setup.deployment);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let (probe, deployment) = (Arc::clone(&probe), Arc::clone(&deployment));
        async move {
            let result = lambda::handle(
                &probe,
                &deployment,
                event.context.deadline,
                SystemClock.now_ms(),
            )
            .await;
            Ok::<_, lambda_runtime::Error>(result)
        }
    }))
    .await
}
