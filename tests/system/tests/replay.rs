//! Issue 11, scenario 3: `carat replay --from trim-horizon` beside the running carat while
//! ingest goes on leaves the DynamoDB items and the S3 objects byte-identical to a run
//! without the replay, and the answers identical.
//!
//! Two systems on one Kinesis stream: **A** takes the ingest through its API, and
//! `carat replay --from trim-horizon --until-caught-up` runs beside it mid-ingest;
//! **B** (the reference: [`Carat::start_on_stream_of`]) has its own tables and bucket and
//! processes the same records once, with no replay. A record carries its ingest stamp, so
//! both writers see identical input and must store identical bytes.
//!
//! Ingest (on A, `CARAT_REPLAY_SECS`, default 14 s): points at the current second of four
//! series, each second a late point into the previous window (a re-flush), each second an
//! overwrite of a point posted 3 s earlier (a newer stamp must win in both), and every 2 s
//! a remote_write NaN. After it: the windows table of A and B compared item by item, every
//! attribute (while all items are live); the answers of both compared with each other and
//! with an oracle of every acknowledged point; then, after every item's TTL passed, been
//! swept, archived and compacted, both buckets compared object by object, byte for byte;
//! and a second replay over the now-expired records must bring nothing back.
#![allow(clippy::unwrap_used, clippy::too_many_lines)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use carat_system_tests::aws::Item;
use carat_system_tests::prom;
use carat_system_tests::stored::{bucket, item_key, item_number, nudge};
use carat_system_tests::{now_ms, now_secs, Carat, Options};
use hyper::Method;
use serde_json::json;

const WINDOW: i64 = 10;
const RETENTION: i64 = 35;
const SERIES: [&str; 4] = ["rep.a", "rep.b", "rep.c", "rep.d"];
const OVER: &str = "rep.over";
const LATE: &str = "rep.late";
const RW: &str = "rep_rw.job.replay";

fn options(scenario: &str) -> Options {
    Options::new(scenario)
        .set("window.raw_secs", WINDOW)
        .set("window.grace_secs", 1)
        .set("ingest.max_lateness_secs", 25)
        .set("retention.raw_secs", RETENTION)
        .set("sweeper.interval_secs", 1)
        .set("table_stream.idle_poll_ms", 250)
        .set("table_stream.max_batching_window_ms", 100)
        .set("archiver.settle_secs", 2)
        .set("archiver.compaction_interval_secs", 1)
        .set("probe.interval_secs", 0)
}

/// An awkward value unique to (series, time, version).
fn value(series: usize, t: i64, version: u32) -> f64 {
    let s = f64::from(u32::try_from(series).unwrap());
    (t % 10_000) as f64 * 0.001 + s * 0.1 + f64::from(version) * 1e-9
}

/// The acknowledged points: (series, time) ⇒ value bits (the later request wins: every
/// overwrite comes ≥ 3 s after what it replaces, so stamps order them).
type Oracle = BTreeMap<(String, i64), u64>;

async fn post_points(c: &Carat, oracle: &mut Oracle, points: &[(String, i64, f64)]) {
    let body: Vec<serde_json::Value> = points
        .iter()
        .map(|(s, t, v)| json!({"series": s, "time": t, "value": v}))
        .collect();
    c.post("/api/v1/points", &json!(body)).await.expect(200);
    for (s, t, v) in points {
        oracle.insert((s.clone(), *t), v.to_bits());
    }
}

/// Per series: the answer's text and its points (time, value bits).
type Answers = BTreeMap<String, (String, Vec<(i64, u64)>)>;

/// Every series' raw points in `from..=to`, as the native route answers (NaN as the
/// canonical bits: JSON carries no payload).
async fn answers(c: &Carat, from: i64, to: i64) -> Answers {
    let mut out = BTreeMap::new();
    let all: Vec<&str> = SERIES.iter().copied().chain([OVER, LATE, RW]).collect();
    for s in all {
        let r = c
            .get(&format!(
                "/api/v1/points?series={s}&from={from}&to={to}&resolution=raw"
            ))
            .await;
        let text = r.text();
        let points = if r.status.as_u16() == 200 {
            r.json()["series"][0]["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let bits = match &p[1] {
                        serde_json::Value::String(x) if x == "NaN" => f64::NAN.to_bits(),
                        v => v.as_f64().unwrap().to_bits(),
                    };
                    (p[0].as_i64().unwrap(), bits)
                })
                .collect()
        } else {
            Vec::new()
        };
        out.insert(s.to_string(), (text, points));
    }
    out
}

fn oracle_points(oracle: &Oracle) -> BTreeMap<String, Vec<(i64, u64)>> {
    let mut out: BTreeMap<String, Vec<(i64, u64)>> = BTreeMap::new();
    for ((s, t), b) in oracle {
        let b = if f64::from_bits(*b).is_nan() {
            f64::NAN.to_bits()
        } else {
            *b
        };
        out.entry(s.clone()).or_default().push((*t, b));
    }
    out
}

fn describe(items: &[Item]) -> String {
    let mut s = String::new();
    for i in items {
        let (pk, sk) = item_key(i);
        writeln!(s, "    {pk} {sk}: {i:?}").unwrap();
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the local system's Redis cluster and AWS stand-in (make test starts them)"]
async fn a_replay_beside_running_ingest_changes_no_stored_byte() {
    let ingest_secs: i64 = std::env::var("CARAT_REPLAY_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(14);
    let started = Instant::now();
    let a = Carat::start(options("replay")).await;
    // B's head must not be A's: on one cluster, A's flusher would settle windows B's table
    // then never gets (tests/system/README.md).
    let own_redis = carat_system_tests::services::OwnRedis::start(&a.dir, 3);
    let nodes: Vec<toml::Value> = own_redis.nodes.iter().cloned().map(Into::into).collect();
    let b = Carat::start_on_stream_of(
        options("replay-ref")
            .set("redis.nodes", toml::Value::Array(nodes))
            .set("redis.replica_acks", 0),
        &a,
    )
    .await;
    eprintln!(
        "replay: A {} and reference B {} up in {:.1} s (B reads A's stream {})",
        a.name,
        b.name,
        started.elapsed().as_secs_f64(),
        a.resources.stream
    );
    let aws = a.aws().await;

    // Start in the first half of a window, so the ingest spans at most two windows whose
    // items all live past the moment they are compared.
    while now_secs().rem_euclid(WINDOW) > 4 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let t0 = now_secs() - now_secs().rem_euclid(WINDOW);
    let mut oracle = Oracle::new();
    let mut requests = 0u32;
    let mut last_time: BTreeMap<usize, i64> = BTreeMap::new();
    let mut replay: Option<std::process::Child> = None;
    let mut requests_before_replay = 0;
    let ingest_end = Instant::now() + Duration::from_secs(u64::try_from(ingest_secs).unwrap());
    let mut tick = 0usize;
    while Instant::now() < ingest_end {
        let now = now_secs();
        let s = tick % SERIES.len();
        if last_time.get(&s) != Some(&now) {
            last_time.insert(s, now);
            let mut points = vec![(SERIES[s].to_string(), now, value(s, now, 0))];
            if s == 0 {
                // A new point, and the overwrite of the one 3 s ago.
                points.push((OVER.to_string(), now, value(4, now, 1)));
                if now - 3 >= t0 {
                    points.push((OVER.to_string(), now - 3, value(4, now - 3, 2)));
                }
            }
            if s == 1 && now - 6 >= t0 {
                points.push((LATE.to_string(), now - 6, value(5, now - 6, 0)));
            }
            post_points(&a, &mut oracle, &points).await;
            requests += 1;
        }
        if s == 2 && now % 2 == 0 {
            let ms = now_ms();
            let t = ms.div_euclid(1000);
            let bits = if t % 4 == 0 {
                0x7ff8_0000_0000_0001
            } else {
                value(6, t, 0).to_bits()
            };
            let body = prom::write_request(&[prom::Series {
                labels: vec![
                    ("__name__".into(), "rep_rw".into()),
                    ("job".into(), "replay".into()),
                ],
                samples: vec![(ms, bits)],
            }]);
            a.request(
                Method::POST,
                "/api/v1/write",
                Some(&a.key.key),
                &[
                    ("Content-Encoding", "snappy"),
                    ("Content-Type", "application/x-protobuf"),
                ],
                Bytes::from(prom::snappy(&body)),
            )
            .await
            .unwrap()
            .expect(204);
            oracle.insert((RW.to_string(), t), bits);
            requests += 1;
        }
        if replay.is_none() && Instant::now() + Duration::from_secs(6) >= ingest_end {
            requests_before_replay = requests;
            replay = Some(
                a.cli()
                    .args(["replay", "--from", "trim-horizon", "--until-caught-up"])
                    // Its log goes to stdout; the summary line is all this reads.
                    .env("RUST_LOG", "warn")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
        }
        tick += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let last_point = oracle.keys().map(|(_, t)| *t).max().unwrap();
    let out = replay.take().unwrap().wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "carat replay failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("replayed "))
        .unwrap_or_else(|| panic!("no summary from carat replay: {stdout}"))
        .to_string();
    let count = |after: &str| -> u64 {
        summary
            .split(after)
            .next()
            .and_then(|s| s.split_whitespace().last())
            .map(|n| n.trim_start_matches('(').parse().unwrap())
            .unwrap()
    };
    let (replayed_records, replayed_points) = (count(" records"), count(" points"));
    eprintln!(
        "replay: {requests} requests, {} points acknowledged in {ingest_secs} s (windows from \
         {t0}); the replay started after {requests_before_replay} requests: {summary}",
        oracle.len()
    );
    // The replay read the stream from its start: at least one record per request before it.
    assert!(
        replayed_records >= u64::from(requests_before_replay) && replayed_points > 0,
        "the replay processed too little: {summary} for {requests_before_replay} requests"
    );

    // Everything flushed: the last window closed (plus grace and a flusher run), every
    // acknowledged point readable from both systems.
    let last_window_end = last_point - last_point.rem_euclid(WINDOW) + WINDOW;
    let want = oracle_points(&oracle);
    let tenant = a.key.tenant.clone();
    let buckets: Vec<u32> = SERIES
        .iter()
        .copied()
        .chain([OVER, LATE, RW])
        .map(|s| bucket(&tenant, s, 1024))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(45);
    let (ans_a, ans_b) = loop {
        // Another tenant's points in every bucket used: the writers (A's and B's, both
        // read them from A's stream) flush the closed windows at once.
        nudge(&a, &a.other, &buckets, now_secs()).await;
        let ready = now_secs() >= last_window_end + 3;
        let (x, y) = (
            answers(&a, t0, last_point).await,
            answers(&b, t0, last_point).await,
        );
        let matches = |m: &Answers| {
            want.iter()
                .all(|(s, p)| m.get(s).map(|(_, g)| g) == Some(p))
        };
        if ready && matches(&x) && matches(&y) {
            break (x, y);
        }
        assert!(
            Instant::now() < deadline,
            "acknowledged points not all readable from both systems: A {x:?}\nB {y:?}\nwant {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // The same answers, byte for byte.
    for (s, (text, _)) in &ans_a {
        assert_eq!(text, &ans_b[s].0, "{s}: A and B answer differently");
    }
    // The scenario's tenant only (the nudges are another tenant's).
    let mine = |items: Vec<Item>| -> Vec<Item> {
        items
            .into_iter()
            .filter(|i| item_key(i).0.starts_with(&format!("{tenant}#")))
            .collect()
    };
    let items_a = mine(aws.items(&a.resources.table).await.unwrap());
    let items_b = mine(aws.items(&b.resources.table).await.unwrap());
    let now = now_secs();
    let min_ttl = items_a
        .iter()
        .chain(&items_b)
        .filter_map(|i| item_number(i, "ttl"))
        .min()
        .unwrap();
    assert!(
        min_ttl > now,
        "the items were compared too late: one expired at {min_ttl}, now {now}"
    );
    let windows: std::collections::BTreeSet<i64> = items_a.iter().map(|i| item_key(i).1).collect();
    eprintln!(
        "replay: windows tables at t0+{}s: A {} items, B {} items ({} series × windows {:?})",
        now - t0,
        items_a.len(),
        items_b.len(),
        items_a
            .iter()
            .map(|i| item_key(i).0)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        windows
    );
    assert!(
        items_a.len() >= 7,
        "too few items to compare: {}",
        describe(&items_a)
    );
    assert!(
        items_a == items_b,
        "the windows tables differ:\nA (with the replay):\n{}B (without):\n{}",
        describe(&items_a),
        describe(&items_b)
    );

    // Every item expired, swept, archived and compacted in both; then the buckets match.
    let max_ttl = items_a
        .iter()
        .filter_map(|i| item_number(i, "ttl"))
        .max()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(70);
    let own = |o: BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        o.into_iter()
            .filter(|(k, _)| k.split('/').nth(1) == Some(tenant.as_str()))
            .collect()
    };
    let (objects_a, objects_b) = loop {
        let settled = now_secs() > max_ttl + 4;
        // A listing races compaction (a staged object listed, then deleted): look again.
        let (Ok(oa), Ok(ob)) = (
            aws.objects(&a.resources.bucket).await,
            aws.objects(&b.resources.bucket).await,
        ) else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let (oa, ob) = (own(oa), own(ob));
        let compacted = |o: &BTreeMap<String, Vec<u8>>| {
            !o.keys().any(|k| k.starts_with("stage/")) && o.keys().any(|k| k.starts_with("day/"))
        };
        let ta = mine(aws.items(&a.resources.table).await.unwrap());
        let tb = mine(aws.items(&b.resources.table).await.unwrap());
        if settled && compacted(&oa) && compacted(&ob) && ta.is_empty() && tb.is_empty() {
            break (oa, ob);
        }
        assert!(
            Instant::now() < deadline,
            "not archived in time: A {:?} ({} items), B {:?} ({} items)",
            oa.keys().collect::<Vec<_>>(),
            ta.len(),
            ob.keys().collect::<Vec<_>>(),
            tb.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let sizes: Vec<String> = objects_a
        .iter()
        .map(|(k, v)| format!("{k} ({} B)", v.len()))
        .collect();
    eprintln!(
        "replay: archives at t0+{}s: {}",
        now_secs() - t0,
        sizes.join(", ")
    );
    assert_eq!(
        objects_a.keys().collect::<Vec<_>>(),
        objects_b.keys().collect::<Vec<_>>(),
        "the archives hold different objects"
    );
    for (k, v) in &objects_a {
        assert!(
            v == &objects_b[k],
            "archive object {k} differs between A and B"
        );
    }
    // Answers from the archive: the same in both, and the oracle.
    let (end_a, end_b) = (
        answers(&a, t0, last_point).await,
        answers(&b, t0, last_point).await,
    );
    for (s, p) in &want {
        assert_eq!(&end_a[s].1, p, "{s} from A's archive");
        assert_eq!(
            end_a[s].0, end_b[s].0,
            "{s}: A and B answer differently from the archive"
        );
    }

    // A replay now: every record is past its window's TTL, so nothing comes back.
    let out = a
        .cli()
        .args(["replay", "--from", "trim-horizon", "--until-caught-up"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let summary2 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("replayed "))
        .unwrap_or_default()
        .to_string();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = mine(aws.items(&a.resources.table).await.unwrap());
    assert!(
        after.is_empty(),
        "a replay of expired records wrote items again:\n{}",
        describe(&after)
    );
    let objects_after = own(aws.objects(&a.resources.bucket).await.unwrap());
    assert!(
        objects_after == objects_a,
        "a replay of expired records changed the archive"
    );
    eprintln!(
        "replay: a second replay after expiry ({summary2}) left the table empty and the archive \
         unchanged; compared {} items and {} objects; {:.1} s in all",
        items_a.len(),
        objects_a.len(),
        started.elapsed().as_secs_f64()
    );
    b.finish().await;
    a.finish().await;
    drop(own_redis);
}
