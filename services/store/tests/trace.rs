//! Every AWS call of the adapters is timed by the SDK interceptor, and inside a sampled
//! invocation with an X-Ray daemon address it is sent as a subsegment: against the AWS
//! stand-in (moto on 127.0.0.1:4566) and the local Redis cluster, with a UDP socket of the
//! test playing the daemon. Its own test binary: it sets the process's trace variables.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use carat_core::Config;
use carat_store::trace::{scoped, Service};
use common::sdk;

#[tokio::test]
#[ignore = "needs the AWS stand-in (moto on 127.0.0.1:4566) and the Redis cluster: make test starts them"]
async fn adapter_calls_are_timed_and_sent_to_the_xray_daemon() {
    let daemon = UdpSocket::bind("127.0.0.1:0").unwrap();
    daemon
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let root = "1-5759e988-bd862e3fe1be46a994272793";
    // Set before the first timed call: the daemon address is read once per process.
    std::env::set_var(
        "AWS_XRAY_DAEMON_ADDRESS",
        daemon.local_addr().unwrap().to_string(),
    );
    std::env::set_var(
        "_X_AMZN_TRACE_ID",
        format!("Root={root};Parent=53995c3f42cd8ad8;Sampled=1"),
    );

    let sdk = sdk().await;
    let mut cfg = Config::default();
    cfg.resources.table = "carat-windows".into();
    cfg.resources.stream = "carat-points".into();
    cfg.resources.archive_bucket = "carat-archive".into();
    let (table, log, archive) = carat_store::connect::aws_adapters(&sdk, &cfg);
    let head = carat_store::RedisHead::connect(&cfg.redis).await.unwrap();
    let ((), phases) = scoped(async {
        table.health().await.unwrap();
        log.health().await.unwrap();
        archive.health().await.unwrap();
        head.health().await.unwrap();
    })
    .await;
    for s in [
        Service::DynamoDb,
        Service::Kinesis,
        Service::S3,
        Service::Redis,
    ] {
        assert!(
            phases.calls(s) >= 1,
            "{s:?} calls were not timed: {:?}",
            phases.summary()
        );
    }

    let mut names = Vec::new();
    let mut buf = vec![0_u8; 65_536];
    while let Ok(n) = daemon.recv(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let (header, body) = text.split_once('\n').unwrap();
        assert_eq!(header, r#"{"format": "json", "version": 1}"#);
        let doc: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(doc["trace_id"], root);
        assert_eq!(doc["parent_id"], "53995c3f42cd8ad8");
        assert_eq!(doc["type"], "subsegment");
        assert!(doc["end_time"].as_f64().unwrap() >= doc["start_time"].as_f64().unwrap());
        names.push(format!(
            "{}:{}",
            doc["name"].as_str().unwrap(),
            doc["aws"]["operation"].as_str().unwrap()
        ));
    }
    eprintln!("subsegments: {names:?}; phases: {:?}", phases.summary());
    for service in ["DynamoDB:", "Kinesis:", "S3:", "Redis:"] {
        assert!(
            names.iter().any(|n| n.starts_with(service)),
            "no {service} subsegment in {names:?}"
        );
    }
    assert!(
        names.contains(&"DynamoDB:DescribeTable".to_string()),
        "{names:?}"
    );
}
