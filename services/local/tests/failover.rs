//! Issue 8 on the local system: a Redis master killed (`kill -9`) while points are being
//! ingested loses no acknowledged point. A task posts one point per series every 50 ms
//! (retrying 503s, as a client would) and keeps every acknowledged point; the master of the
//! test's buckets is killed, its replica takes over (`cluster-node-timeout` 5 s), the killed
//! node is started again as a replica (`scripts/redis-cluster.sh restart`, which the
//! writer needs: the promoted master has no replica to acknowledge `WAIT` until then), the
//! writer catches up, the flusher runs, and every acknowledged point must be in DynamoDB.
//!
//! Its own test binary: cargo runs test binaries one after another, so the kill hits no
//! other test of this crate. The cluster is restored even if the test fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use carat_core::{window, Tenant};
use carat_store::redis_head::bucket_slot;
use common::{
    init_tracing, json, now_ms, run_id, send, series_key, stored, test_config, window_ref, System,
};

const RAW_SECS: i64 = 60;
const PORTS: [u16; 6] = [7000, 7001, 7002, 7003, 7004, 7005];
const SERIES: usize = 8;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn node(port: u16) -> Option<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    tokio::time::timeout(
        Duration::from_secs(1),
        client.get_multiplexed_async_connection(),
    )
    .await
    .ok()?
    .ok()
}

/// The master (port) serving `slot`, from `CLUSTER NODES` of the first node that answers;
/// 0 while no live master serves it (between the failure and the failover).
/// The process id of the node on `port`, if this checkout's scripts started it: the test
/// can only kill a node that `scripts/redis-cluster.sh restart` can bring back (its
/// `nodes.conf` is under this checkout's `.run/redis/`). Anything else is a clear failure
/// before anything is killed, never a silent skip.
async fn own_pid(port: u16) -> String {
    let mut c = node(port).await.expect("the victim answers");
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut c)
        .await
        .unwrap();
    let running = info
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .map(|p| p.trim().to_string())
        .expect("INFO server has process_id");
    let file = repo_root().join(format!(".run/redis/{port}.pid"));
    let ours = std::fs::read_to_string(&file).map(|p| p.trim().to_string());
    assert_eq!(
        ours.as_deref().ok(),
        Some(running.as_str()),
        "the Redis node on {port} (pid {running}) was not started by this checkout's \
         scripts/redis-cluster.sh ({} has {ours:?}): this test kills a master and must restart \
         it afterwards, which only works for a cluster this checkout started. Stop the other \
         cluster (`make local-down` in the checkout that started it) and run the test again.",
        file.display()
    );
    running
}

async fn master_of(slot: u16) -> u16 {
    for port in PORTS {
        let Some(mut c) = node(port).await else {
            continue;
        };
        let Ok(text) = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async::<String>(&mut c)
            .await
        else {
            continue;
        };
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
                continue;
            }
            let owns = f[8..].iter().any(|r| {
                let (a, b) = r.split_once('-').unwrap_or((r, r));
                matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
            });
            if owns {
                let addr = f[1].split('@').next().unwrap();
                return addr.rsplit(':').next().unwrap().parse().unwrap();
            }
        }
    }
    0
}

/// Every node but `down` reports `cluster_state:ok`.
async fn cluster_ok(down: u16) -> bool {
    for port in PORTS.into_iter().filter(|&p| p != down) {
        let Some(mut c) = node(port).await else {
            return false;
        };
        let info: String = match redis::cmd("CLUSTER").arg("INFO").query_async(&mut c).await {
            Ok(i) => i,
            Err(_) => return false,
        };
        if !info.contains("cluster_state:ok") {
            return false;
        }
    }
    true
}

/// Starts the killed node again when dropped, so the cluster is whole for the tests that
/// run after this one whatever happens here.
struct Restore {
    port: Option<u16>,
}

impl Restore {
    fn now(&mut self) -> std::process::Output {
        let port = self.port.take().expect("restored once");
        Command::new(repo_root().join("scripts/redis-cluster.sh"))
            .arg("restart")
            .arg(port.to_string())
            .current_dir(repo_root())
            .output()
            .unwrap()
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        if self.port.is_some() {
            let out = self.now();
            eprintln!(
                "restored the cluster: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn stop_done(rx: &tokio::sync::watch::Receiver<bool>) -> bool {
    *rx.borrow()
}

type Acked = Arc<Mutex<BTreeMap<(String, i64), u64>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local system (make test starts it)"]
async fn a_killed_redis_master_loses_no_acknowledged_point() {
    init_tracing();
    let run = run_id();
    let mut cfg = test_config(&run, RAW_SECS);
    cfg.ingest.max_lateness_secs = 1_800;
    cfg.validate().unwrap();
    let sys = System::start(cfg).await;
    let tenant = Tenant::parse(&format!("kill{run}")).unwrap();
    let api = sys.api(&tenant);
    let buckets = sys.cfg.record.buckets;

    let names: Vec<String> = (0..SERIES)
        .map(|i| format!("failover.s{run}.{i}"))
        .collect();
    let slot = bucket_slot(series_key(&tenant, &names[0]).bucket(buckets));
    let victim = master_of(slot).await;
    assert_ne!(victim, 0, "the cluster serves slot {slot}");
    let pid = own_pid(victim).await;
    let mut on_victim = 0;
    for n in &names {
        if master_of(bucket_slot(series_key(&tenant, n).bucket(buckets))).await == victim {
            on_victim += 1;
        }
    }
    eprintln!("killing the master on {victim}: it serves {on_victim} of {SERIES} series");

    // Times well in the past (closed windows), one second per request.
    let base = window::start(RAW_SECS, now_ms() / 1000 - 1_200);
    let acked: Acked = Arc::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let ingest = {
        let (api, acked, names) = (api.clone(), Arc::clone(&acked), names.clone());
        tokio::spawn(async move {
            let mut retried = 0u32;
            for i in 0..1_000i64 {
                if stop_done(&stop_rx) {
                    break;
                }
                let body: Vec<serde_json::Value> = names
                    .iter()
                    .enumerate()
                    .map(|(k, n)| {
                        serde_json::json!({"series": n, "time": base + i, "value": i as f64 * 1.25 + k as f64})
                    })
                    .collect();
                loop {
                    let (status, text) = send(
                        &api,
                        json("/api/v1/points", &serde_json::Value::Array(body.clone())),
                    )
                    .await;
                    match status {
                        StatusCode::OK | StatusCode::NO_CONTENT => break,
                        StatusCode::SERVICE_UNAVAILABLE => {
                            retried += 1;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        s => panic!("ingest answered {s}: {text}"),
                    }
                }
                {
                    let mut a = acked.lock().unwrap();
                    for (k, n) in names.iter().enumerate() {
                        a.insert(
                            (n.clone(), base + i),
                            (i as f64 * 1.25 + k as f64).to_bits(),
                        );
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            retried
        })
    };

    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut restore = Restore { port: Some(victim) };
    let killed_at = Instant::now();
    let status = Command::new("kill").args(["-9", &pid]).status().unwrap();
    assert!(status.success(), "kill -9 {pid}");
    let acked_at_kill = acked.lock().unwrap().len();

    let deadline = killed_at + Duration::from_secs(60);
    // The others report ok until they mark the victim failed (node timeout): wait for
    // its slots to have moved to the promoted replica, and the state to be ok again.
    while [0, victim].contains(&master_of(slot).await) || !cluster_ok(victim).await {
        assert!(Instant::now() < deadline, "no failover within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let failover = killed_at.elapsed();
    let new_master = master_of(slot).await;
    eprintln!("failover: {failover:?}, slot {slot} now on {new_master}");
    assert_ne!(new_master, victim);

    tokio::time::sleep(Duration::from_secs(2)).await;
    let out = restore.now();
    assert!(
        out.status.success(),
        "redis-cluster.sh restart {victim}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("restarted: {}", String::from_utf8_lossy(&out.stderr).trim());
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_tx.send_replace(true);
    let retried = ingest.await.unwrap();
    let acked = acked.lock().unwrap().clone();

    // Every acknowledged point, per window.
    let mut want: BTreeMap<(String, i64), Vec<(i64, u64)>> = BTreeMap::new();
    for ((n, t), bits) in &acked {
        want.entry((n.clone(), window::start(RAW_SECS, *t)))
            .or_default()
            .push((*t, *bits));
    }
    let table = sys.state.clients.table.as_ref();
    let catch_up = Instant::now();
    let check = || async {
        let mut stored_points = 0;
        let mut missing = Vec::new();
        for ((n, start), points) in &want {
            let (got, _) = stored(table, &window_ref(&sys.cfg, &tenant, n, *start)).await;
            let got: BTreeMap<i64, u64> = got.iter().map(|p| (p.time, p.value_bits)).collect();
            for (t, b) in points {
                if got.get(t) == Some(b) {
                    stored_points += 1;
                } else {
                    missing.push((n.clone(), *t, *b, got.get(t).copied()));
                }
            }
        }
        (stored_points, missing)
    };
    let (mut stored_points, mut missing) = check().await;
    while !missing.is_empty() && catch_up.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        (stored_points, missing) = check().await;
    }
    // The final flush, then the final comparison.
    carat_local::schedule::flusher(&sys.state)
        .run()
        .await
        .unwrap();
    let (final_stored, final_missing) = check().await;
    eprintln!(
        "points acknowledged: {} ({acked_at_kill} before the kill, {retried} requests retried after 503); \
         points stored: {final_stored} (caught up {:?} after ingest stopped); failover {:.1} s",
        acked.len(),
        catch_up.elapsed(),
        failover.as_secs_f64()
    );
    assert!(
        final_missing.is_empty(),
        "{} acknowledged points not stored (first: {:?}); before the final flush {stored_points} stored, {} missing",
        final_missing.len(),
        &final_missing[..final_missing.len().min(10)],
        missing.len()
    );
    assert!(
        acked.len() > acked_at_kill,
        "points were acknowledged during the failover"
    );
    sys.stop().await;
}
