//! Scenario 6 (issue 11): kill -9 of carat-local between a Redis append and the DynamoDB
//! flush, in the middle of a flush, and at random during ingest; each time restarted with
//! the same config and checkpoints. One oracle of every acknowledged point across all
//! phases; at the end every window is stored whole (item counts = oracle) and the read
//! API gives back exactly the acknowledged points, bit for bit, with the head and with the
//! head deleted (only the stored windows answer).
//!
//! carat's AWS calls go through a [`FaultProxy`] that forwards everything, but can hold
//! the window table's writes (PutItem / TransactWriteItems / BatchWriteItem on the
//! scenario's table): that is how a flush is frozen in flight. Held writes released after
//! the kill still reach the stand-in — late, as a request already on the wire would.
//!
//! 1. **Between append and flush**: points of the current (open) window posted and
//!    acknowledged; the read API shows them all (from the head), the table holds none of
//!    them; kill -9; restart.
//! 2. **Mid-flush**: points of closed windows posted while the table's writes are held;
//!    once flushes are in flight, some are released (they land), then kill -9 with the
//!    rest held; restart; the rest released after the restart (late writes racing the new
//!    process's flushes).
//! 3. **Random kills** (`CARAT_CRASH_KILLS`, default 3; seed `CARAT_CRASH_SEED`, printed):
//!    two clients post into open and closed windows; carat is killed at random moments and
//!    restarted; the clients retry whatever got no answer.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use carat_system_tests::acked::{
    check_reads_with_and_without_head, compare_reads, expected_counts, post_until_acked,
    stored_counts, value, wait_stored, ClientStats, Oracle, Target,
};
use carat_system_tests::proxy::{FaultProxy, Matcher};
use carat_system_tests::{now_secs, wait_for, Carat, Options};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

const WINDOW_SECS: i64 = 20;

fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// `n` points for each of `series`, times from `times` (unused ones only).
fn batch(
    rng: &mut StdRng,
    used: &mut std::collections::HashSet<(String, i64)>,
    series: &[String],
    times: std::ops::RangeInclusive<i64>,
    n: usize,
) -> Vec<(String, i64, f64)> {
    let mut out = Vec::new();
    for s in series {
        for _ in 0..n {
            let t = rng.random_range(times.clone());
            if used.insert((s.clone(), t)) {
                out.push((s.clone(), t, value(rng)));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the local system's Redis cluster and AWS stand-in (make test starts them)"]
async fn kill9_between_append_and_flush_mid_flush_and_at_random_loses_nothing() {
    let seed: u64 = env_or("CARAT_CRASH_SEED", rand::random());
    let kills: usize = env_or("CARAT_CRASH_KILLS", 3);
    eprintln!("crash: seed {seed} (CARAT_CRASH_SEED), {kills} random kills (CARAT_CRASH_KILLS)");
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);

    let proxy = FaultProxy::start(seed).await;
    let mut c = Carat::start(
        Options::new("crash")
            .aws_endpoint(proxy.url())
            .set("window.raw_secs", WINDOW_SECS),
    )
    .await;
    let target = Target::of(&c);
    let table_writes = Matcher::ops(&[
        "dynamodb:PutItem",
        "dynamodb:TransactWriteItems",
        "dynamodb:BatchWriteItem",
    ])
    .body_contains(&format!("\"{}\"", c.resources.table));
    let oracle = Oracle::new();
    let stats = Arc::new(ClientStats::default());
    let mut used = std::collections::HashSet::new();
    let series: Vec<String> = (0..6).map(|i| format!("crash.s{i}")).collect();

    // 1. Between append and flush: the current window, open for ≥ 12 s more.
    let mut now = now_secs();
    if WINDOW_SECS - now.rem_euclid(WINDOW_SECS) < 12 {
        tokio::time::sleep(Duration::from_secs(
            u64::try_from(WINDOW_SECS - now.rem_euclid(WINDOW_SECS)).unwrap(),
        ))
        .await;
        now = now_secs();
    }
    let window = now - now.rem_euclid(WINDOW_SECS);
    proxy.hold(table_writes.clone());
    for _ in 0..3 {
        // The whole open window, its end a few seconds ahead (within ingest.max_skew).
        let points = batch(
            &mut rng,
            &mut used,
            &series,
            window..=window + WINDOW_SECS - 1,
            4,
        );
        assert!(post_until_acked(&target, &points, &oracle, &stats, Duration::from_secs(30)).await);
    }
    let acked_1 = oracle.points();
    wait_for(
        "phase 1's points in the read API (from the head)",
        Duration::from_secs(20),
        || {
            let (t, o) = (target.clone(), oracle.clone());
            async move { compare_reads(&t, &o).await.0.is_empty().then_some(()) }
        },
    )
    .await;
    let stored_1 = stored_counts(&c, &c.key.tenant).await.unwrap();
    assert!(
        stored_1.is_empty(),
        "the open window was flushed before the kill: {stored_1:?}"
    );
    assert!(
        now_secs() < window + WINDOW_SECS,
        "the window closed before the kill: phase 1 took too long"
    );
    c.kill9();
    let held_1 = proxy.release_all();
    proxy.stop_holding();
    c.restart().await;
    eprintln!(
        "crash 1 (between append and flush): {acked_1} points of the open window {window} acknowledged, \
         all readable from the head, none stored; kill -9 ({held_1} table writes had been held); restarted"
    );

    // 2. Mid-flush: closed windows, table writes held until flushes are in flight.
    proxy.hold(table_writes.clone());
    let t_now = now_secs();
    let closed_hi = t_now - t_now.rem_euclid(WINDOW_SECS) - 1;
    let points = batch(
        &mut rng,
        &mut used,
        &series,
        (closed_hi - 4 * WINDOW_SECS)..=closed_hi,
        8,
    );
    assert!(post_until_acked(&target, &points, &oracle, &stats, Duration::from_secs(30)).await);
    let held = wait_for("flushes in flight (held)", Duration::from_secs(20), || {
        let n = proxy.held().len();
        async move { (n >= 4).then_some(n) }
    })
    .await;
    let released = proxy.release(held / 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let landed = stored_counts(&c, &c.key.tenant).await.unwrap().len();
    c.kill9();
    proxy.stop_holding();
    let left = proxy.held().len();
    c.restart().await;
    let late = proxy.release_all();
    eprintln!(
        "crash 2 (mid-flush): {} points into closed windows; {held} table writes in flight, {released} released \
         ({landed} windows stored) before kill -9, {late} released after the restart ({left} were held at the kill)",
        points.len()
    );

    // 3. Random kills while two clients post into open and closed windows.
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for k in 0..2u64 {
        let (t, o, s, stop) = (target.clone(), oracle.clone(), stats.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed ^ (k + 1));
            let mut used = std::collections::HashSet::new();
            let series: Vec<String> = (0..4).map(|i| format!("crash.r{k}.s{i}")).collect();
            while !stop.load(Ordering::Relaxed) {
                let now = now_secs();
                let points = batch(
                    &mut rng,
                    &mut used,
                    &series,
                    (now - 3 * WINDOW_SECS)..=now,
                    3,
                );
                post_until_acked(&t, &points, &o, &s, Duration::from_secs(60)).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    let mut kill_at = Vec::new();
    for _ in 0..kills {
        let wait = rng.random_range(800..3_000);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        kill_at.push(wait);
        c.kill9();
        c.restart().await;
    }
    tokio::time::sleep(Duration::from_millis(rng.random_range(500..1_500))).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!(
        "crash 3 (random kills): killed after {kill_at:?} ms of running each time; clients: {}",
        stats.line()
    );
    let bad = stats.bad_answers.lock().unwrap().clone();
    assert!(
        bad.is_empty(),
        "answers other than 200 / 503 + Retry-After: {bad:?}"
    );

    // Everything stored whole, and read back exactly.
    let t0 = Instant::now();
    wait_stored(&c, &oracle, WINDOW_SECS, Duration::from_secs(90)).await;
    let settle = t0.elapsed().as_secs_f64();
    let (with_head, dropped, stored_only) =
        check_reads_with_and_without_head(&target, &oracle, &c.key.tenant).await;
    eprintln!(
        "crash: {} acknowledged points in {} series over {} windows, {} starts of carat; all stored whole \
         {settle:.1} s after the last post (item counts = oracle); read back bit-exact with the head \
         ({with_head} points) and from the stored windows alone ({stored_only} points, {dropped} head keys \
         deleted); no duplicate, nothing unacknowledged",
        oracle.points(),
        oracle.snapshot().len(),
        expected_counts(&oracle, WINDOW_SECS).len(),
        c.starts
    );
    eprintln!("crash: proxy:\n{}", proxy.report());
    assert_eq!(
        c.log().matches("panicked").count(),
        0,
        "carat panicked; log:\n{}",
        c.log_tail(40)
    );
    eprintln!(
        "crash: whole scenario {:.1} s",
        started.elapsed().as_secs_f64()
    );
    c.finish().await;
}
