//! The harness itself: a scenario's own carat starts, takes a point over HTTP and gives it
//! back through the read API; the `carat` CLI reaches it; kill -9 and a restart work.
#![allow(clippy::unwrap_used)]

use carat_system_tests::{now_secs, services, wait_for, Carat, Options};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local system's Redis cluster and AWS stand-in (make test starts them)"]
async fn a_point_posted_is_read_back_and_survives_a_restart() {
    if services::skip("smoke") {
        return;
    }
    let mut c = Carat::start(Options::new("smoke")).await;
    let t = now_secs() - 30;
    c.post(
        "/api/v1/points",
        &serde_json::json!([{"series": "smoke.a", "time": t, "value": 1.25}]),
    )
    .await
    .expect(200);
    let path = format!(
        "/api/v1/points?series=smoke.a&from={}&to={}&resolution=raw",
        t - 60,
        t + 60
    );
    wait_for("the point to be readable", Duration::from_secs(30), || {
        read(&c, &path, t)
    })
    .await;

    let out = c.cli().args(["series", "smoke.*"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("smoke.a"));

    c.kill9();
    c.restart().await;
    wait_for("the point after a restart", Duration::from_secs(30), || {
        read(&c, &path, t)
    })
    .await;
    c.finish().await;
}

/// `Some` once the raw read of `smoke.a` gives exactly the posted point.
async fn read(c: &Carat, path: &str, t: i64) -> Option<()> {
    let r = c.get(path).await;
    (r.status.as_u16() == 200 && r.json()["series"][0]["points"] == serde_json::json!([[t, 1.25]]))
        .then_some(())
}
