//! `connect()` builds every adapter from the default configuration and the environment
//! the local scripts export (`AWS_ENDPOINT_URL` and dummy credentials).
#![allow(clippy::unwrap_used)]

use carat_core::Config;

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn connect_builds_every_adapter_and_all_are_healthy() {
    // Never against real AWS: only when the environment points at a local stand-in.
    let local = std::env::var("AWS_ENDPOINT_URL")
        .is_ok_and(|u| u.contains("127.0.0.1") || u.contains("localhost"));
    if !local {
        eprintln!(
            "skipped: AWS_ENDPOINT_URL does not name a local stand-in (source scripts/env.sh)"
        );
        return;
    }
    let clients = carat_store::connect(&Config::default()).await.unwrap();
    let report = clients.health().await;
    assert!(report.all_ok(), "{report:?}");
    let head = report.head.unwrap();
    assert_eq!((head.masters, head.state.as_str()), (3, "ok"));
    assert_eq!(report.table.unwrap().status, "ACTIVE");
    assert!(report.log.unwrap().open_shards >= 2);
}
