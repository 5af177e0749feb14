//! Redis from outside: a cluster of a scenario's own ([`PrivateCluster`]:
//! `scripts/redis-cluster.sh` with `CARAT_REDIS_BASE_PORT`, so killing one of its nodes
//! disturbs no other scenario), and what any cluster says about itself — who serves a slot
//! ([`master_of`]), which keys match a pattern ([`scan_keys`]), whether it is whole
//! ([`cluster_ok`]). Only Redis commands: `CLUSTER NODES`, `CLUSTER INFO`, `CLUSTER KEYSLOT`,
//! `SCAN`, `INFO`.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use crate::repo_root;

/// One node as `CLUSTER NODES` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub port: u16,
    pub master: bool,
    /// Flagged `fail` or `fail?` by the node asked.
    pub failed: bool,
    /// Slot ranges it serves (masters only), inclusive.
    pub slots: Vec<(u16, u16)>,
}

impl NodeInfo {
    #[must_use]
    pub fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
    }
}

/// A connection to one node (not the cluster), `None` if it does not answer within 1 s.
pub async fn node(port: u16) -> Option<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    tokio::time::timeout(
        Duration::from_secs(1),
        client.get_multiplexed_async_connection(),
    )
    .await
    .ok()?
    .ok()
}

/// One command to one node, bounded by 2 s; `None` on any failure.
pub async fn node_call<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> Option<T> {
    let mut c = node(port).await?;
    tokio::time::timeout(Duration::from_secs(2), cmd.query_async(&mut c))
        .await
        .ok()?
        .ok()
}

/// The ports of node URLs (`redis://127.0.0.1:7000` ⇒ 7000).
#[must_use]
pub fn ports_of(nodes: &[String]) -> Vec<u16> {
    nodes
        .iter()
        .filter_map(|n| n.rsplit(':').next()?.trim_end_matches('/').parse().ok())
        .collect()
}

/// The cluster as the first of `ports` that answers sees it.
pub async fn cluster_nodes(ports: &[u16]) -> Option<Vec<NodeInfo>> {
    for &port in ports {
        let Some(text) = node_call::<String>(port, redis::cmd("CLUSTER").arg("NODES")).await else {
            continue;
        };
        let mut out = Vec::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                continue;
            }
            let Some(port) = f[1]
                .split('@')
                .next()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
            else {
                continue;
            };
            let slots = f[8..]
                .iter()
                .filter(|r| !r.starts_with('['))
                .filter_map(|r| {
                    let (a, b) = r.split_once('-').unwrap_or((r, r));
                    Some((a.parse().ok()?, b.parse().ok()?))
                })
                .collect();
            out.push(NodeInfo {
                port,
                master: f[2].contains("master"),
                failed: f[2].contains("fail"),
                slots,
            });
        }
        return Some(out);
    }
    None
}

/// The port of the live master serving `slot`; `None` while no live master serves it
/// (between a master's failure and its replica's promotion) or no node answers.
pub async fn master_of(ports: &[u16], slot: u16) -> Option<u16> {
    cluster_nodes(ports)
        .await?
        .into_iter()
        .find(|n| n.master && !n.failed && n.serves(slot))
        .map(|n| n.port)
}

/// The slot of `key` (`CLUSTER KEYSLOT`, asked of the first node that answers).
pub async fn keyslot(ports: &[u16], key: &str) -> Option<u16> {
    for &port in ports {
        if let Some(s) = node_call(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).await {
            return Some(s);
        }
    }
    None
}

/// Every node of `ports` but `except` answers and reports `cluster_state:ok`.
pub async fn cluster_ok(ports: &[u16], except: Option<u16>) -> bool {
    for &port in ports.iter().filter(|&&p| Some(p) != except) {
        match node_call::<String>(port, redis::cmd("CLUSTER").arg("INFO")).await {
            Some(info) if info.contains("cluster_state:ok") => {}
            _ => return false,
        }
    }
    true
}

/// Every key matching `pattern` (SCAN … MATCH on every live master), sorted.
pub async fn scan_keys(ports: &[u16], pattern: &str) -> Vec<String> {
    let masters: Vec<u16> = cluster_nodes(ports)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.master && !n.failed && !n.slots.is_empty())
        .map(|n| n.port)
        .collect();
    let mut out = Vec::new();
    for port in masters {
        let mut cursor: u64 = 0;
        loop {
            let Some((next, keys)) = node_call::<(u64, Vec<String>)>(
                port,
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000),
            )
            .await
            else {
                break;
            };
            out.extend(keys);
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The process id a node reports (`INFO server`).
pub async fn node_pid(port: u16) -> Option<u32> {
    let info: String = node_call(port, redis::cmd("INFO").arg("server")).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|p| p.trim().parse().ok())
}

/// A 6-node cluster (3 masters, 3 replicas) of a scenario's own on `base`..`base`+5,
/// started with `CARAT_REDIS_BASE_PORT=base scripts/redis-cluster.sh start` (data under
/// `.run/redis-<base>/`). Stopped by [`PrivateCluster::stop`] or when dropped, so a failing
/// scenario leaves no nodes behind.
#[derive(Debug)]
pub struct PrivateCluster {
    pub base: u16,
    running: bool,
}

impl PrivateCluster {
    /// The base port of scenarios' clusters: `CARAT_FAULT_REDIS_BASE_PORT`, else 7100.
    #[must_use]
    pub fn default_base() -> u16 {
        std::env::var("CARAT_FAULT_REDIS_BASE_PORT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(7100)
    }

    /// Starts the cluster and waits for `cluster_state:ok` and every master's replica;
    /// panics with the script's output if it fails, or if a node on these ports was not
    /// started by this checkout's script (its nodes could not be killed and restarted).
    pub async fn start(base: u16) -> Self {
        assert_ne!(
            base, 7000,
            "7000-7005 is the shared cluster: a private one needs other ports"
        );
        let me = Self {
            base,
            running: true,
        };
        let out = me.script(&["start"]);
        assert!(
            out.status.success(),
            "CARAT_REDIS_BASE_PORT={base} scripts/redis-cluster.sh start failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for port in me.ports() {
            let ours = me.pidfile_pid(port);
            let running = node_pid(port).await;
            assert!(
                ours.is_some() && ours == running,
                "the Redis node on {port} (pid {running:?}) was not started by this checkout's \
                 scripts/redis-cluster.sh (its pid file says {ours:?}): choose other ports with \
                 CARAT_FAULT_REDIS_BASE_PORT"
            );
        }
        me
    }

    fn script(&self, args: &[&str]) -> Output {
        Command::new(repo_root().join("scripts/redis-cluster.sh"))
            .args(args)
            .env("CARAT_REDIS_BASE_PORT", self.base.to_string())
            .current_dir(repo_root())
            .output()
            .expect("run scripts/redis-cluster.sh")
    }

    /// Its data, logs and PID files.
    #[must_use]
    pub fn dir(&self) -> PathBuf {
        repo_root().join(format!(".run/redis-{}", self.base))
    }

    #[must_use]
    pub fn ports(&self) -> Vec<u16> {
        (self.base..self.base + 6).collect()
    }

    /// Node URLs, for `Options::set("redis.nodes", …)`.
    #[must_use]
    pub fn nodes(&self) -> Vec<String> {
        self.ports()
            .into_iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// A cluster connection to it (for `DEL` and the like; wrap calls in
    /// [`crate::redis_call`]).
    pub async fn connect(&self) -> redis::cluster_async::ClusterConnection {
        let client = redis::cluster::ClusterClientBuilder::new(self.nodes())
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), client.get_async_connection())
            .await
            .expect("redis cluster connection within 10 s")
            .expect("redis cluster connection")
    }

    fn pidfile_pid(&self, port: u16) -> Option<u32> {
        std::fs::read_to_string(self.dir().join(format!("{port}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// `kill -9` the node on `port`: no shutdown, no save. Panics if the node running
    /// there is not the one the script started.
    pub async fn kill9(&self, port: u16) {
        let pid = node_pid(port).await.expect("the node to kill answers");
        assert_eq!(
            self.pidfile_pid(port),
            Some(pid),
            "node {port} is not this cluster's"
        );
        let status = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -9 {pid}");
    }

    /// Starts a killed node again with its `nodes.conf` (it rejoins as a replica) and
    /// waits for `cluster_state:ok` and every master's replica (`redis-cluster.sh
    /// restart PORT`); the script's report, or its error.
    ///
    /// # Errors
    /// The script's output when it fails.
    pub fn restart_node(&self, port: u16) -> Result<String, String> {
        let out = self.script(&["restart", &port.to_string()]);
        let text = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }

    /// Stops every node (`redis-cluster.sh stop`).
    pub fn stop(&mut self) {
        if std::mem::take(&mut self.running) {
            let out = self.script(&["stop"]);
            if !out.status.success() {
                eprintln!(
                    "stopping the Redis cluster on {}: {}",
                    self.base,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        self.stop();
    }
}
