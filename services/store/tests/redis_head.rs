//! The Redis head against the local 6-node cluster (127.0.0.1:7000–7005).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use carat_core::config::RedisConfig;
use carat_core::head::{self as head_format, Entry, Header, Stamped, HEADER_BYTES};
use carat_core::Point;
use carat_store::ports::{Head, HeadAppend, WindowRef};
use carat_store::redis_head::{bucket_slot, dirty_key, dirty_member, head_key};
use carat_store::RedisHead;
use common::{now_secs, series_key, tenant};
use rand::Rng;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};

async fn head() -> RedisHead {
    RedisHead::connect(&RedisConfig::default()).await.unwrap()
}

async fn raw() -> ClusterConnection {
    ClusterClient::new(RedisConfig::default().nodes)
        .unwrap()
        .get_async_connection()
        .await
        .unwrap()
}

/// Buckets far above any real bucket count, so each test has dirty sets of its own.
fn buckets(n: u32) -> Vec<u32> {
    let base = rand::rng().random_range(1_000_000..2_000_000_000);
    (0..n).map(|i| base + i * 7).collect()
}

fn points(window_start: i64, n: usize, value: f64) -> Vec<Stamped> {
    (0..n)
        .map(|i| {
            let t = window_start + i64::try_from(i).unwrap();
            Stamped::new(Point::new(t, value), window_start * 1000 + 1)
        })
        .collect()
}

/// The block of `n` points from `window_start` on, one second apart (the window of the
/// block starts at 0 in these tests).
fn entries(window_start: i64, n: usize, value: f64) -> Vec<u8> {
    head_format::encode_block(0, &points(window_start, n, value))
}

fn append(w: &WindowRef, bytes: Vec<u8>, due: i64) -> HeadAppend {
    HeadAppend {
        window: w.clone(),
        block: bytes,
        flush_due: due,
        expire_at: now_secs() + 3_600,
    }
}

async fn cleanup(buckets: &[u32]) {
    let mut c = raw().await;
    for b in buckets {
        let _: i64 = redis::cmd("DEL")
            .arg(dirty_key(*b))
            .query_async(&mut c)
            .await
            .unwrap();
    }
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn keys_of_one_bucket_share_a_slot_and_buckets_spread_over_masters() {
    let h = head().await;
    let t = tenant();
    let mut slots = std::collections::BTreeSet::new();
    for bucket in 0..64u32 {
        let dirty = h.keyslot(&dirty_key(bucket)).await.unwrap();
        assert_eq!(
            bucket_slot(bucket),
            dirty,
            "CRC16 of the tag, as Redis has it"
        );
        for (name, start) in [("cpu", 0), ("host.x.mem-free", 86_400), ("a", -60)] {
            let w = WindowRef {
                bucket,
                key: series_key(&t, name),
                start,
            };
            assert_eq!(
                h.keyslot(&head_key(&w)).await.unwrap(),
                dirty,
                "bucket {bucket}"
            );
        }
        slots.insert(dirty);
    }
    // 64 buckets land in 64 distinct slots, i.e. on every master of the cluster.
    assert_eq!(slots.len(), 64);
    let ranges = [(0u16, 5460u16), (5461, 10922), (10923, 16383)];
    for (lo, hi) in ranges {
        assert!(
            slots.iter().any(|s| (lo..=hi).contains(s)),
            "no bucket in {lo}..={hi}"
        );
    }
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn append_read_due_settle_across_the_cluster() {
    let h = head().await;
    let t = tenant();
    let bs = buckets(12);
    let now = now_secs();
    for (i, &bucket) in bs.iter().enumerate() {
        let a = WindowRef {
            bucket,
            key: series_key(&t, &format!("cpu.{i}")),
            start: 0,
        };
        let b = WindowRef {
            start: 60,
            ..a.clone()
        };
        let c = WindowRef {
            key: series_key(&t, &format!("mem.{i}")),
            ..a.clone()
        };
        let counts = h
            .append(
                bucket,
                &[
                    append(&a, entries(0, 3, 1.5), 100),
                    append(&b, entries(60, 1, 2.5), 200),
                    append(&c, entries(0, 2, 3.5), 300),
                ],
            )
            .await
            .unwrap();
        assert_eq!(counts, vec![3, 1, 2]);
        // One script, many windows: the counts are per window, after the append.
        let counts = h
            .append(bucket, &[append(&a, entries(0, 2, 9.0), 100)])
            .await
            .unwrap();
        assert_eq!(counts, vec![5]);

        let mut expected = points(0, 3, 1.5);
        expected.extend(points(0, 2, 9.0));
        let read_a = h.read(&a).await.unwrap();
        assert_eq!(head_format::decode(0, &read_a).unwrap(), expected);
        assert_eq!(Header::parse(&read_a).unwrap().appended, 5);
        assert_eq!(
            head_format::decode(0, &h.read(&b).await.unwrap()).unwrap(),
            points(60, 1, 2.5)
        );
        let missing = WindowRef {
            start: 120,
            ..a.clone()
        };
        assert!(h.read(&missing).await.unwrap().is_empty());

        assert_eq!(h.due(bucket, 99, 10).await.unwrap(), vec![]);
        assert_eq!(
            h.due(bucket, 250, 10).await.unwrap(),
            vec![a.clone(), b.clone()]
        );
        assert_eq!(
            h.due(bucket, 1_000, 2).await.unwrap(),
            vec![a.clone(), b.clone()]
        );
        assert_eq!(h.due(bucket, 1_000, 10).await.unwrap().len(), 3);
        assert_eq!(h.due(bucket, 1_000, 0).await.unwrap(), vec![]);

        // A flush that read 3 points must not settle a window that now holds 5.
        let mut stale = read_a.clone();
        stale[4] = 3;
        assert!(!h.settle(&a, &stale).await.unwrap());
        assert!(h.settle(&a, &read_a).await.unwrap());
        assert_eq!(
            h.due(bucket, 1_000, 10).await.unwrap(),
            vec![b.clone(), c.clone()]
        );
        // Appending again re-marks it dirty; an earlier due time is kept (ZADD LT).
        h.append(bucket, &[append(&a, entries(0, 1, 1.0), 50)])
            .await
            .unwrap();
        h.append(bucket, &[append(&a, entries(0, 1, 1.0), 500)])
            .await
            .unwrap();
        assert_eq!(h.due(bucket, 60, 10).await.unwrap(), vec![a.clone()]);

        // The head key expires at expire_at.
        let mut c = raw().await;
        let at: i64 = redis::cmd("EXPIRETIME")
            .arg(head_key(&a))
            .query_async(&mut c)
            .await
            .unwrap();
        assert!((now + 3_600..=now_secs() + 3_600).contains(&at), "{at}");
    }
    cleanup(&bs).await;
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn foreign_bucket_and_torn_blocks_are_refused_before_any_write() {
    let h = head().await;
    let t = tenant();
    let bs = buckets(2);
    let w = WindowRef {
        bucket: bs[0],
        key: series_key(&t, "cpu"),
        start: 0,
    };
    let e = h
        .append(bs[1], &[append(&w, entries(0, 1, 1.0), 1)])
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    let mut torn = entries(0, 1, 1.0);
    torn[0] = 0x7f;
    assert!(h.append(bs[0], &[append(&w, torn, 1)]).await.is_err());
    assert!(h.append(bs[0], &[append(&w, Vec::new(), 1)]).await.is_err());
    assert!(h.read(&w).await.unwrap().is_empty());
    assert_eq!(h.append(bs[0], &[]).await.unwrap(), Vec::<u64>::new());
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn scripts_survive_a_script_flush() {
    let h = head().await;
    let t = tenant();
    let bs = buckets(3);
    let mut c = raw().await;
    let _: redis::Value = c
        .route_command(
            &redis::cmd("SCRIPT").arg("FLUSH").clone(),
            RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllNodes, None)),
        )
        .await
        .unwrap();
    for &bucket in &bs {
        let w = WindowRef {
            bucket,
            key: series_key(&t, "cpu"),
            start: 0,
        };
        assert_eq!(
            h.append(bucket, &[append(&w, entries(0, 2, 1.0), 5)])
                .await
                .unwrap(),
            vec![2]
        );
        let read = h.read(&w).await.unwrap();
        assert_eq!(head_format::decode(0, &read).unwrap().len(), 2);
        assert!(h.settle(&w, &read).await.unwrap());
    }
    cleanup(&bs).await;
}

/// A v1 head key (a string of 16-byte entries, as a v1 writer left it during a rolling
/// deploy) is read as it is, settles by its length, and the next append moves it into
/// a v2 list with its entries as the first block: every point stays, and a flush that
/// read the v1 string no longer settles.
#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn a_v1_head_is_read_and_moved_into_a_list_by_the_next_append() {
    let h = head().await;
    let t = tenant();
    let bs = buckets(1);
    let w = WindowRef {
        bucket: bs[0],
        key: series_key(&t, "cpu.v1"),
        start: 86_400,
    };
    let mut v1 = Vec::new();
    for i in 0..3 {
        Entry::new(
            w.start,
            Point::new(w.start + 60 * i, 1.0),
            w.start * 1000 + 10,
        )
        .unwrap()
        .encode_into(&mut v1);
    }
    let mut c = raw().await;
    let _: () = redis::cmd("SET")
        .arg(head_key(&w))
        .arg(v1.as_slice())
        .query_async(&mut c)
        .await
        .unwrap();
    let _: i64 = redis::cmd("ZADD")
        .arg(dirty_key(w.bucket))
        .arg(5)
        .arg(dirty_member(&w))
        .query_async(&mut c)
        .await
        .unwrap();
    let read_v1 = h.read(&w).await.unwrap();
    assert_eq!(read_v1, v1);
    let v1_points = head_format::head_points(w.start, &read_v1).unwrap();
    assert_eq!(v1_points.len(), 3);
    let newer = Stamped::new(Point::new(w.start + 60, 2.0), w.start * 1000 + 5_000);
    let counts = h
        .append(
            w.bucket,
            &[append(&w, head_format::encode_block(w.start, &[newer]), 5)],
        )
        .await
        .unwrap();
    assert_eq!(counts, vec![4], "3 v1 entries and 1 new point");
    let kind: String = redis::cmd("TYPE")
        .arg(head_key(&w))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(kind, "list");
    let read_v2 = h.read(&w).await.unwrap();
    assert_eq!(
        head_format::head_points(w.start, &read_v2).unwrap(),
        vec![v1_points[0], newer, v1_points[2]]
    );
    assert!(
        !h.settle(&w, &read_v1).await.unwrap(),
        "a flush of the v1 bytes missed the new point"
    );
    assert!(h.settle(&w, &read_v2).await.unwrap());
    h.forget(&w).await.unwrap();
    cleanup(&bs).await;
}

/// The Redis script and the in-memory fake (`head::append_to`) build the same head
/// bytes from the same appends, new keys and v1 keys alike, header nonce aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local system (make test starts it)"]
async fn redis_and_the_fake_build_the_same_head_bytes() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let h = head().await;
    let t = tenant();
    let bs = buckets(1);
    let rt = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicUsize::new(0);
    let strategy = (
        proptest::collection::vec(
            proptest::collection::vec((0i64..86_400, any::<u64>(), -5i64..90_000), 1..30),
            1..6,
        ),
        0usize..4,
    );
    let result = runner.run(&strategy, |(appends, v1_entries)| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let w = WindowRef {
            bucket: bs[0],
            key: series_key(&t, &format!("parity.{n}")),
            start: 86_400,
        };
        let got = tokio::task::block_in_place(|| {
            rt.block_on(async {
                let mut model = Vec::new();
                if v1_entries > 0 {
                    for i in 0..v1_entries {
                        Entry::new(w.start, Point::new(w.start + i as i64, 3.0), w.start * 1000)
                            .unwrap()
                            .encode_into(&mut model);
                    }
                    let mut c = raw().await;
                    let _: () = redis::cmd("SET")
                        .arg(head_key(&w))
                        .arg(model.as_slice())
                        .query_async(&mut c)
                        .await
                        .unwrap();
                }
                for pts in &appends {
                    let pts: Vec<Stamped> = pts
                        .iter()
                        .map(|&(t, v, s)| Stamped {
                            time: w.start + t,
                            value_bits: v,
                            stamp: w.start + s,
                        })
                        .collect();
                    let block = head_format::encode_block(w.start, &pts);
                    let count = h
                        .append(w.bucket, &[append(&w, block.clone(), 5)])
                        .await
                        .unwrap();
                    let want = head_format::append_to(&mut model, &block, 0).unwrap();
                    assert_eq!(count, vec![u64::from(want)]);
                }
                let read = h.read(&w).await.unwrap();
                h.forget(&w).await.unwrap();
                (read, model)
            })
        });
        let (read, model) = got;
        prop_assert_eq!(&read[..8], &model[..8], "version, mark and count");
        prop_assert_eq!(&read[HEADER_BYTES..], &model[HEADER_BYTES..], "blocks");
        Ok(())
    });
    cleanup(&bs).await;
    result.unwrap();
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn corrupt_dirty_members_are_skipped_and_removed() {
    let h = head().await;
    let t = tenant();
    let bs = buckets(1);
    let bucket = bs[0];
    let w = WindowRef {
        bucket,
        key: series_key(&t, "cpu"),
        start: 0,
    };
    h.append(bucket, &[append(&w, entries(0, 1, 1.0), 10)])
        .await
        .unwrap();
    let mut c = raw().await;
    for junk in ["garbage", "a:b", "bad tenant:cpu:1", "t:cpu:notanumber"] {
        let _: i64 = redis::cmd("ZADD")
            .arg(dirty_key(bucket))
            .arg(5)
            .arg(junk)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    assert_eq!(h.due(bucket, 100, 10).await.unwrap(), vec![w.clone()]);
    let left: Vec<String> = redis::cmd("ZRANGE")
        .arg(dirty_key(bucket))
        .arg(0)
        .arg(-1)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(left, vec![dirty_member(&w)]);
    cleanup(&bs).await;
}

#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn health_reports_every_master() {
    let h = head().await.health().await.unwrap();
    assert_eq!(h.state, "ok");
    assert_eq!(h.masters, 3);
    assert_eq!(h.known_nodes, 6);
}

/// Memory per point of one window's head key (MEMORY USAGE), printed for the benchmark
/// notes: the blocks plus Redis's per-key overhead and allocator slack, for appends of 1
/// point (an agent posting each minute, one point per batch), 10 and 60 (a batch).
#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn head_memory_per_point() {
    let h = head().await;
    let t = tenant();
    let bs = buckets(1);
    for per_append in [1usize, 10, 60] {
        for points in [60usize, 1_440] {
            let w = WindowRef {
                bucket: bs[0],
                key: series_key(
                    &t,
                    &format!("host.0123456789a.cpu.user.percentage.{points}.{per_append}"),
                ),
                start: 0,
            };
            // 1-minute points of a 1-day window, values of a CPU percentage.
            for chunk in 0..points / per_append {
                let pts: Vec<Stamped> = (0..per_append)
                    .map(|i| {
                        let m = i64::try_from(chunk * per_append + i).unwrap();
                        let v = ((m * 37) % 1000) as f64 / 10.0;
                        Stamped::new(Point::new(60 * m, v), (60 * m + 60) * 1000)
                    })
                    .collect();
                let block = head_format::encode_block(0, &pts);
                h.append(bs[0], &[append(&w, block, 100)]).await.unwrap();
            }
            let bytes = h.memory_usage(&w).await.unwrap().unwrap();
            let per_point = bytes as f64 / points as f64;
            println!("head memory: {points} points, {per_append} per append, {bytes} bytes = {per_point:.2} bytes/point (head key only)");
            if points == 1_440 {
                assert!(per_point <= 16.0, "{per_append} per append: {per_point}");
            }
            h.forget(&w).await.unwrap();
        }
    }
    let absent = WindowRef {
        bucket: bs[0],
        key: series_key(&t, "absent"),
        start: 0,
    };
    assert_eq!(h.memory_usage(&absent).await.unwrap(), None);
    cleanup(&bs).await;
}

/// Nothing listens: connecting fails retryably (the cluster may be starting).
#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn a_refused_connection_is_retryable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = RedisConfig {
        nodes: vec![format!("redis://127.0.0.1:{port}")],
        command_timeout_ms: 300,
        connect_timeout_ms: 300,
        ..RedisConfig::default()
    };
    let e = RedisHead::connect(&cfg).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
}

/// A one-node "cluster" that answers the handshake (CLUSTER SLOTS names itself for every
/// slot) and then never answers anything else: a node that hangs mid-failover. Every
/// head call must come back, retryably, within the command timeout.
#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn a_node_that_hangs_after_connecting_times_out_every_call() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n) = s.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    // Answer only what the connection handshake asks, hang on the rest.
                    let text = String::from_utf8_lossy(&buf).to_uppercase();
                    let mut reply = String::new();
                    for cmd in text.split("*").skip(1) {
                        if cmd.contains("SLOTS") {
                            reply += &format!(
                                "*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:{port}\r\n"
                            );
                        } else if cmd.contains("PING") {
                            reply += "+PONG\r\n";
                        } else if cmd.contains("CLIENT") || cmd.contains("READONLY") {
                            reply += "+OK\r\n";
                        }
                    }
                    buf.clear();
                    if !reply.is_empty() && s.write_all(reply.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let cfg = RedisConfig {
        nodes: vec![format!("redis://127.0.0.1:{port}")],
        command_timeout_ms: 300,
        connect_timeout_ms: 1_000,
        ..RedisConfig::default()
    };
    let h = RedisHead::connect(&cfg).await.unwrap();
    let t = tenant();
    let w = WindowRef {
        bucket: 1,
        key: series_key(&t, "cpu"),
        start: 0,
    };
    for (what, result) in [
        (
            "append",
            h.append(1, &[append(&w, entries(0, 1, 1.0), 1)])
                .await
                .map(|_| ()),
        ),
        ("read", h.read(&w).await.map(|_| ())),
        ("due", h.due(1, 10, 10).await.map(|_| ())),
        ("settle", h.settle(&w, &[]).await.map(|_| ())),
    ] {
        let e = result.unwrap_err();
        assert!(e.is_retryable(), "{what}: {e}");
    }
    let started = Instant::now();
    assert!(h.read(&w).await.unwrap_err().is_retryable());
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1_000), "{took:?}");
    server.abort();
}

/// A node that accepts connections but never answers (what a hung cluster connection
/// looks like): connecting must give up within the timeout, retryably, not hang.
#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn an_unresponsive_node_times_out_retryably() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let cfg = RedisConfig {
        nodes: vec![format!("redis://{addr}")],
        command_timeout_ms: 300,
        connect_timeout_ms: 300,
        ..RedisConfig::default()
    };
    let started = Instant::now();
    let e = RedisHead::connect(&cfg).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    hold.abort();
}

/// Appends spread over many buckets, as the writer does per record batch, to see what
/// the head sustains on this machine (printed; the writer benchmark owns the target).
#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn append_throughput() {
    let h = head().await;
    let t = tenant();
    let bs = buckets(64);
    let started = Instant::now();
    let mut points = 0usize;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, &bucket) in bs.iter().enumerate() {
        let h = h.clone();
        let t = t.clone();
        points += 20 * 50;
        tasks.spawn(async move {
            let appends: Vec<HeadAppend> = (0..20)
                .map(|s| {
                    append(
                        &WindowRef {
                            bucket,
                            key: series_key(&t, &format!("s{i}.{s}")),
                            start: 0,
                        },
                        entries(0, 50, 1.0),
                        10,
                    )
                })
                .collect();
            h.append(bucket, &appends).await.unwrap();
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "head append: {points} points in {} windows over 64 buckets in {:.1} ms = {:.0} points/s (debug build)",
        64 * 20,
        secs * 1e3,
        points as f64 / secs
    );
    cleanup(&bs).await;
}

/// Two deployments on one cluster with their own `redis.key_prefix` see nothing of each
/// other: no dirty window, no head, no settle across them; the keys keep their slot.
#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn key_prefixes_keep_deployments_on_one_cluster_apart() {
    let with_prefix = |p: &str| RedisConfig {
        key_prefix: p.to_string(),
        ..RedisConfig::default()
    };
    let one = RedisHead::connect(&with_prefix("one:")).await.unwrap();
    let two = RedisHead::connect(&with_prefix("two:")).await.unwrap();
    let plain = head().await;
    let t = tenant();
    let bucket = buckets(1)[0];
    let w = WindowRef {
        bucket,
        key: series_key(&t, "cpu.prefixed"),
        start: 0,
    };
    one.append(bucket, &[append(&w, entries(0, 2, 1.5), 100)])
        .await
        .unwrap();
    assert_eq!(one.due(bucket, 1_000, 10).await.unwrap(), vec![w.clone()]);
    assert!(two.due(bucket, 1_000, 10).await.unwrap().is_empty());
    assert!(plain.due(bucket, 1_000, 10).await.unwrap().is_empty());
    assert!(two.read(&w).await.unwrap().is_empty());
    let _ = two.settle(&w, &[]).await.unwrap();
    assert_eq!(one.due(bucket, 1_000, 10).await.unwrap(), vec![w.clone()]);
    let read = one.read(&w).await.unwrap();
    assert_eq!(head_format::decode(0, &read).unwrap(), points(0, 2, 1.5));
    let mut c = raw().await;
    let blocks: i64 = redis::cmd("LLEN")
        .arg(format!("one:{}", head_key(&w)))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(blocks, 2, "header and one block, under the prefixed key");
    let slot = |k: String| {
        let mut c = c.clone();
        async move {
            redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(k)
                .query_async::<i64>(&mut c)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        slot(format!("one:{}", head_key(&w))).await,
        slot(head_key(&w)).await,
        "the prefix comes first, the hash tag stays"
    );
    assert!(one.settle(&w, &read).await.unwrap());
    let _: i64 = redis::cmd("DEL")
        .arg(format!("one:{}", head_key(&w)))
        .query_async(&mut c)
        .await
        .unwrap();
}

/// `append_and_due` in one script gives what `append` then `due` give — the trait's
/// default, which the in-memory head uses — for random appends, due times, `now` and
/// limits; and, like `due`, it skips and removes dirty members carat did not write.
#[tokio::test]
#[ignore = "needs the local system (make test starts it)"]
async fn append_and_due_in_one_script_matches_append_then_due() {
    use carat_store::fake::FakeHead;
    let h = head().await;
    let fake = FakeHead::new();
    let t = tenant();
    let bs = buckets(1);
    let bucket = bs[0];
    let mut rng = rand::rng();
    let windows: Vec<WindowRef> = (0..6)
        .map(|i| WindowRef {
            bucket,
            key: series_key(&t, &format!("due.{}", i % 3)),
            start: 86_400 * (i / 3),
        })
        .collect();
    for round in 0..40 {
        let n = rng.random_range(0..4usize);
        let appends: Vec<HeadAppend> = (0..n)
            .map(|_| {
                let w = &windows[rng.random_range(0..windows.len())];
                let pts = points(w.start, rng.random_range(1..4), f64::from(round));
                HeadAppend {
                    window: w.clone(),
                    block: head_format::encode_block(w.start, &pts),
                    flush_due: rng.random_range(0..5_000),
                    expire_at: now_secs() + 3_600,
                }
            })
            .collect();
        // One window per append call (as the writer groups them).
        let mut seen = std::collections::HashSet::new();
        let appends: Vec<HeadAppend> = appends
            .into_iter()
            .filter(|a| seen.insert(a.window.clone()))
            .collect();
        let now = rng.random_range(0..2_000);
        let limit = rng.random_range(0..4usize);
        let got = h
            .append_and_due(bucket, &appends, now, limit)
            .await
            .unwrap();
        let want = fake
            .append_and_due(bucket, &appends, now, limit)
            .await
            .unwrap();
        assert_eq!(got, want, "round {round}: now {now}, limit {limit}");
        if round % 2 == 1 {
            // A flush of the first due window settles it in both heads (so that windows
            // come back with later due times: ZADD LT only ever lowers them).
            if let Some(w) = want.1.first() {
                let read = h.read(w).await.unwrap();
                assert!(h.settle(w, &read).await.unwrap());
                let read = fake.read(w).await.unwrap();
                assert!(fake.settle(w, &read).await.unwrap());
            }
        }
    }
    let mut c = raw().await;
    let _: i64 = redis::cmd("ZADD")
        .arg(dirty_key(bucket))
        .arg(-1)
        .arg("not a member")
        .query_async(&mut c)
        .await
        .unwrap();
    let w = &windows[0];
    let (_, due) = h
        .append_and_due(
            bucket,
            &[append(w, entries(w.start, 1, 1.0), 0)],
            2_000,
            100,
        )
        .await
        .unwrap();
    assert!(due.contains(w), "{due:?}");
    let junk: Option<f64> = redis::cmd("ZSCORE")
        .arg(dirty_key(bucket))
        .arg("not a member")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(junk, None, "the corrupt member is removed");
    for w in &windows {
        h.forget(w).await.unwrap();
    }
    cleanup(&bs).await;
}
