//! carat-local's health probes against the real local system (Redis cluster on 7000–7005,
//! the AWS stand-in on 4566 with the resources of localstack/init/ready.d/).

use carat_local::{clients, config, health};

fn local_config(overrides: &[(&str, &str)]) -> carat_core::Config {
    // Without the stand-in's endpoint the SDK would look for real credentials (and the
    // instance metadata service): refuse rather than leave this machine.
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: run `make test`, or `. scripts/env.sh` first"
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/local.toml");
    config::load(Some(&path), |name| {
        overrides
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_string())
    })
    .expect("config/local.toml loads")
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn every_dependency_is_up() {
    let config = local_config(&[]);
    let clients = clients::connect(&config).await.expect("connects");
    let report = health::check(clients::probes(&clients, &config)).await;
    assert_eq!(report.status, "ok", "{report:#?}");
    let names: Vec<_> = report.dependencies.iter().map(|d| d.name).collect();
    assert_eq!(names, ["redis", "dynamodb", "kinesis", "s3", "catalog"]);
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn a_missing_resource_is_named() {
    let config = local_config(&[
        ("CARAT_TABLE", "carat-no-such-table"),
        ("CARAT_ARCHIVE_BUCKET", "carat-no-such-bucket"),
    ]);
    let clients = clients::connect(&config).await.expect("connects");
    let report = health::check(clients::probes(&clients, &config)).await;
    assert_eq!(report.status, "unavailable");
    let down: Vec<_> = report
        .dependencies
        .iter()
        .filter(|d| !d.ok)
        .map(|d| (d.name, d.target.as_str()))
        .collect();
    assert_eq!(
        down,
        [
            ("dynamodb", "table carat-no-such-table"),
            ("s3", "bucket carat-no-such-bucket")
        ],
        "{report:#?}"
    );
}
