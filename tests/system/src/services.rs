//! The services every scenario runs on: the Redis cluster (scripts/redis-cluster.sh) and
//! the AWS stand-in (scripts/aws-standin.sh). `make test` starts them; a scenario run on
//! its own (`cargo test -p carat-system-tests -- --include-ignored`) starts them with the
//! same scripts when they are not up, and leaves them up (`make local-down` stops them).

use std::process::Command;
use std::sync::Once;

use crate::repo_root;

static UP: Once = Once::new();

/// The environment the scripts give the stand-in's clients (scripts/env.sh): the
/// stand-in's endpoint and test credentials, never real AWS.
pub const AWS_ENV: [(&str, &str); 5] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// The stand-in's endpoint (`AWS_ENDPOINT_URL`, else moto's http://127.0.0.1:4566).
#[must_use]
pub fn aws_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".into())
}

fn script(name: &str, args: &[&str]) -> bool {
    let mut cmd = Command::new(repo_root().join("scripts").join(name));
    cmd.args(args).current_dir(repo_root());
    if args == ["status"] {
        // Only its exit status matters; its per-node lines would fill every test's output.
        return cmd.output().is_ok_and(|o| o.status.success());
    }
    cmd.status().is_ok_and(|s| s.success())
}

/// Makes sure the Redis cluster and the AWS stand-in are up (once per test binary),
/// starting them with the project's scripts if not; panics with what failed.
pub fn ensure() {
    UP.call_once(|| {
        for s in ["redis-cluster.sh", "aws-standin.sh"] {
            if !script(s, &["status"]) {
                eprintln!("system tests: {s} is not up; starting it (scripts/{s} start)");
                assert!(
                    script(s, &["start"]),
                    "scripts/{s} start failed: see .run/ logs"
                );
            }
        }
    });
}

/// Restarts one Redis node after a kill (`scripts/redis-cluster.sh restart PORT`: it
/// rejoins as a replica; waits for cluster_state:ok and every master's replica).
pub fn restart_redis_node(port: u16) {
    assert!(
        script("redis-cluster.sh", &["restart", &port.to_string()]),
        "scripts/redis-cluster.sh restart {port} failed"
    );
}
