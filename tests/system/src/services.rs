//! The services every scenario runs on: the Redis cluster (scripts/redis-cluster.sh) and
//! the AWS stand-in (scripts/aws-standin.sh). `make test` starts them; a scenario run on
//! its own (`cargo test -p carat-system-tests -- --include-ignored`) starts them with the
//! same scripts when they are not up, and leaves them up (`make local-down` stops them).

use std::process::Command;
use std::sync::{Once, OnceLock};

use crate::{localstack, repo_root};

static UP: Once = Once::new();

/// With `CARAT_AWS=localstack`: LocalStack's endpoint, or why it could not be started.
static LOCALSTACK: OnceLock<Result<String, String>> = OnceLock::new();

fn localstack() -> &'static Result<String, String> {
    LOCALSTACK.get_or_init(|| {
        let r = localstack::start();
        if let Ok(e) = &r {
            eprintln!("system tests: CARAT_AWS=localstack: LocalStack at {e}");
        }
        r
    })
}

/// Why the scenarios cannot run here, if they cannot: `CARAT_AWS=localstack` without a
/// reachable Docker daemon (or without the `localstack` feature).
#[must_use]
pub fn skip_reason() -> Option<String> {
    if localstack::wanted() {
        localstack().as_ref().err().cloned()
    } else {
        None
    }
}

/// `true`, after printing why, when the scenario cannot run here ([`skip_reason`]); a
/// scenario calls it first: `if services::skip("name") { return; }`.
#[must_use]
pub fn skip(scenario: &str) -> bool {
    match skip_reason() {
        Some(why) => {
            eprintln!("SKIPPED {scenario}: {why}");
            true
        }
        None => false,
    }
}

/// The environment the scripts give the stand-in's clients (scripts/env.sh): the
/// stand-in's endpoint and test credentials, never real AWS.
pub const AWS_ENV: [(&str, &str); 5] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// The stand-in's endpoint (LocalStack's with `CARAT_AWS=localstack`; else
/// `AWS_ENDPOINT_URL`, else moto's http://127.0.0.1:4566).
#[must_use]
pub fn aws_endpoint() -> String {
    if localstack::wanted() {
        if let Ok(e) = localstack() {
            return e.clone();
        }
    }
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
        let mut scripts = vec!["redis-cluster.sh"];
        if localstack::wanted() {
            if let Err(why) = localstack() {
                panic!(
                    "CARAT_AWS=localstack: {why} (a scenario skips on this with services::skip)"
                );
            }
        } else {
            scripts.push("aws-standin.sh");
        }
        for s in scripts {
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

/// A Redis cluster of a scenario's own: `masters` nodes without replicas on free ports
/// (bus ports + 10000), in `dir`. For a second system that must not share the head of
/// another: systems on one cluster share its dirty sets, and each one's flusher flushes
/// (and settles) every system's windows into its own table (tests/system/README.md).
/// Run its systems with `redis.replica_acks = 0`. Stopped when the guard drops.
pub struct OwnRedis {
    pub nodes: Vec<String>,
    children: Vec<std::process::Child>,
}

impl OwnRedis {
    /// Starts the nodes and creates the cluster; panics with what failed.
    #[must_use]
    pub fn start(dir: &std::path::Path, masters: u16) -> Self {
        use rand::Rng as _;
        let base = loop {
            let b: u16 = rand::rng().random_range(21_000..30_000);
            let free = (b..b + masters).all(|p| {
                std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
                    && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok()
            });
            if free {
                break b;
            }
        };
        let mut children = Vec::new();
        let mut addrs = Vec::new();
        for p in base..base + masters {
            let d = dir.join(format!("redis-{p}"));
            std::fs::create_dir_all(&d).unwrap();
            let child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &p.to_string()])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(&d)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("redis-server");
            children.push(child);
            addrs.push(format!("127.0.0.1:{p}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        let guard = Self {
            nodes: addrs.iter().map(|a| format!("redis://{a}")).collect(),
            children,
        };
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // Wait for cluster_state:ok.
        for _ in 0..100 {
            let info = Command::new("redis-cli")
                .args(["-p", &base.to_string(), "cluster", "info"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            if info.contains("cluster_state:ok") {
                return guard;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("own redis cluster on {addrs:?} not ok");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
