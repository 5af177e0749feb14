//! The writer's benchmarks (docs/BENCHMARKS.md, sections Writer, DynamoDB write units,
//! Redis head memory):
//!
//! ```text
//! cargo run --release -p carat-writer --example writer_bench -- [DATA_DIR] [--hosts N] [--no-redis] [--head-memory]
//! ```
//!
//! `--shape hourly|minutely|minutely-by-set` runs one request shape only (to profile it).
//! `--head-memory` runs only part 4 (and the 1-shard Redis run that fills the head):
//! the head's bytes per point, without the CPU, 4-shard and naive runs.
//!
//! Workload: every NAB CloudWatch series (DATA_DIR, default ../shared/data/nab-aws-cloudwatch)
//! re-timed to 1-minute steps from a UTC midnight (the real values, the cadence of
//! Mackerel host metrics), once per simulated host (`host.hNNN.<file>`), packed into
//! Kinesis records per bucket as the ingest API packs them, in Lambda batches of 100.
//!
//! 1. CPU only, one core (current-thread runtime, in-memory head and table): the whole
//!    writer path — decode, group, entry encode, append — then every window's flush —
//!    read the stored window, merge, stamped chunk encode, conditional write.
//! 2. Into the local Redis cluster (7000–7005): the writer with the real Redis head, beside
//!    a naive writer that sends one HSET per point (same decode, same 16 requests in
//!    flight on the same multiplexed cluster connection, no explicit pipelining).
//! 3. DynamoDB write and read units per million points: every `read_window` and
//!    `write_window` of run 1's flushes, sized as DynamoDB bills them (a strongly
//!    consistent read: 1 RU per started 4 KB, at least 1; a write: 1 WU per started KB
//!    per item, twice that inside a transaction), beside one item per point.
//! 4. Redis bytes per point of open windows: `MEMORY USAGE` of head keys and dirty sets.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::kinesis::KinesisEvent;
use carat_core::record::{self, Record, SeriesPoints};
use carat_core::{window, Config, Point, SeriesKey, SeriesName, Tenant};
use carat_store::dynamo::item_size;
use carat_store::fake::{FakeCatalog, FakeHead, FakeTable};
use carat_store::name_sets::{NameSetResolver, Resolved};
use carat_store::ports::{
    Head, LogEntry, NameSets as _, WindowItem, WindowRef, WindowTable, Written,
};
use carat_store::RedisHead;
use carat_writer::flush::flush_window;
use carat_writer::sink::LogSink;
use carat_writer::{event, ManualClock, Writer};
use futures::StreamExt as _;

/// The first point of every series: yesterday's UTC midnight, so every window of the
/// 2.5 days of data is open (head keys expire at end + max_lateness + grace, from now).
fn t0() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    now - now.rem_euclid(86_400) - 86_400
}
/// `--replay-batches`: minutely posts of 2 hosts in batches of 100 consecutive records
/// (~50 points per window per append), the shape this benchmark had before it batched
/// minutely posts per minute: to compare with earlier runs.
fn replay_batches() -> bool {
    std::env::args().any(|a| a == "--replay-batches")
}

/// Records per Lambda batch (the ESM default batch size).
const BATCH: usize = 100;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Workload {
    /// (series key, points) in 1-minute steps.
    series: Vec<(SeriesKey, Vec<Point>)>,
    events: Vec<KinesisEvent>,
    points: usize,
    records: usize,
    /// The name sets the records reference (record v2 by name set), as the ingest API
    /// stored them; empty for records with inline names.
    name_sets: Arc<FakeCatalog>,
}

fn build(
    cfg: &Config,
    dir: &std::path::Path,
    hosts: usize,
    tenant: &str,
    points_per_record: i64,
    by_set: bool,
) -> Result<Workload, BoxError> {
    let name_sets = Arc::new(FakeCatalog::new());
    let data = carat_bench::data::load(dir)?;
    let tenant = Tenant::parse(tenant)?;
    let mut series = Vec::new();
    for h in 0..hosts {
        for s in &data {
            let name = SeriesName::parse(&format!("host.h{h:03}.{}", s.name), "name")?;
            let points: Vec<Point> = s
                .chunks
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, p)| Point::new(t0() + 60 * i64::try_from(i).unwrap_or(0), p.value))
                .collect();
            series.push((SeriesKey::new(tenant.clone(), name), points));
        }
    }
    let points: usize = series.iter().map(|(_, p)| p.len()).sum();
    // One request per `points_per_record` minutes: each series' points of that span,
    // packed per bucket into records (what the ingest API does with one request).
    let span = 60 * points_per_record;
    let last = series
        .iter()
        .flat_map(|(_, p)| p.last())
        .map(|p| p.time)
        .max()
        .unwrap_or(t0());
    let mut entries = Vec::new();
    let mut seq = 0u64;
    let mut from = t0();
    while from <= last {
        let stamp = (from + span) * 1000;
        let mut by_bucket: BTreeMap<u32, Vec<SeriesPoints>> = BTreeMap::new();
        for (k, pts) in &series {
            let lo = pts.partition_point(|p| p.time < from);
            let hi = pts.partition_point(|p| p.time < from + span);
            if lo < hi {
                by_bucket
                    .entry(k.bucket(cfg.record.buckets))
                    .or_default()
                    .push(SeriesPoints {
                        series: k.series.clone(),
                        points: pts[lo..hi].to_vec(),
                    });
            }
        }
        for (b, sp) in by_bucket {
            for r in record::pack_records(&tenant, stamp, sp, cfg.record.max_record_bytes)? {
                let data = if by_set {
                    let set = record::NameSet::of(r.series.iter().map(|s| &s.series));
                    futures::executor::block_on(name_sets.put_name_set(&tenant, &set))?;
                    record::encode_with_set(&r, &set)
                } else {
                    record::encode(&r)
                };
                seq += 1;
                entries.push(LogEntry {
                    shard_id: "shardId-000000000000".into(),
                    sequence_number: seq.to_string(),
                    partition_key: carat_core::series::partition_key(b),
                    data,
                    arrival_ms: stamp,
                });
            }
        }
        from += span;
    }
    let records = entries.len();
    // Hourly requests: Lambda batches of BATCH records. Minutely posts: one batch per
    // minute (every host's post of that minute), as live traffic arrives — a batch
    // gathers at most its batching window, far less than a minute, so each window gets
    // one point per append. (Batches of 100 consecutive records would give a window ~50
    // points per append: a replay's shape, whose head is 6× smaller than live.)
    let events = if points_per_record == 1 && !replay_batches() {
        entries
            .chunk_by(|a, b| a.arrival_ms == b.arrival_ms)
            .flat_map(|minute| minute.chunks(BATCH))
            .map(|c| event::event("us-east-1", "carat-points", c))
            .collect()
    } else {
        entries
            .chunks(BATCH)
            .map(|c| event::event("us-east-1", "carat-points", c))
            .collect()
    };
    Ok(Workload {
        series,
        events,
        points,
        records,
        name_sets,
    })
}

/// A record in either form (names inline, or by one of the workload's name sets, fetched
/// once through `sets`).
async fn decode_record(sets: &NameSetResolver, data: &[u8]) -> Result<Record, BoxError> {
    let parts = record::decode_parts(data)?;
    let Some(id) = parts.name_set() else {
        return Ok(parts.into_record()?);
    };
    match sets.resolve(&parts.tenant, id).await? {
        Resolved::Names(names) => Ok(parts.with_names(&names)?),
        other => Err(format!("name set {id} of the workload: {other:?}").into()),
    }
}

/// The runtime of the Redis runs: the writer Lambda's (`services/writer/src/main.rs`),
/// current-thread unless `--multi-thread`.
fn redis_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    if std::env::args().any(|a| a == "--multi-thread") {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
}

fn bench_cfg() -> Config {
    let mut c = Config::default();
    // One flush per window at its close, as in steady state (1,440 points/day < 20,000).
    c.window.flush_point_threshold = 20_000;
    c
}

struct CpuResult {
    ingest_s: f64,
    flush_s: f64,
    /// CPU time of the whole run (ingest + flush), this thread's.
    cpu_s: f64,
    windows: usize,
    items: Vec<WindowItem>,
    units: Units,
}

/// Capacity units the flushes consumed, as DynamoDB bills them.
#[derive(Debug, Default, Clone, Copy)]
struct Units {
    reads: u64,
    read_units: u64,
    writes: u64,
    write_units: u64,
}

/// The fake table, counting what every window read and write would cost in DynamoDB.
struct CountingTable {
    inner: FakeTable,
    units: std::sync::Mutex<Units>,
}

#[async_trait::async_trait]
impl WindowTable for CountingTable {
    async fn put(&self, items: &[WindowItem]) -> Result<(), carat_store::StoreError> {
        self.inner.put(items).await
    }

    async fn read_window(
        &self,
        pk: &str,
        start: i64,
    ) -> Result<Vec<WindowItem>, carat_store::StoreError> {
        let items = self.inner.read_window(pk, start).await?;
        let bytes: usize = items.iter().map(item_size).sum();
        let mut u = self.units.lock().expect("units lock");
        u.reads += 1;
        u.read_units += (bytes.div_ceil(4096) as u64).max(1);
        Ok(items)
    }

    async fn write_window(
        &self,
        parts: &[WindowItem],
        expected: Option<&[u8]>,
        stale: &[i64],
    ) -> Result<Written, carat_store::StoreError> {
        let written = self.inner.write_window(parts, expected, stale).await?;
        if written == Written::Stored {
            let transaction = parts.len() > 1 || !stale.is_empty();
            let wu: u64 =
                parts.iter().map(|p| units(item_size(p))).sum::<u64>() + stale.len() as u64;
            let mut u = self.units.lock().expect("units lock");
            u.writes += 1;
            u.write_units += if transaction { 2 * wu } else { wu };
        }
        Ok(written)
    }

    async fn get(&self, pk: &str, sk: i64) -> Result<Option<WindowItem>, carat_store::StoreError> {
        self.inner.get(pk, sk).await
    }

    async fn query(
        &self,
        pk: &str,
        from_sk: i64,
        to_sk: i64,
    ) -> Result<Vec<WindowItem>, carat_store::StoreError> {
        self.inner.query(pk, from_sk, to_sk).await
    }

    async fn batch_get(
        &self,
        keys: &[(String, i64)],
    ) -> Result<Vec<WindowItem>, carat_store::StoreError> {
        self.inner.batch_get(keys).await
    }
}

/// CPU seconds this thread has used: the scheduler's run time in nanoseconds (first
/// field of /proc/thread-self/schedstat), else utime + stime of /proc/thread-self/stat in
/// ticks of 1/100 s. On a shared machine the wall time of a CPU-bound run grows with the
/// load, its CPU time hardly does.
fn thread_cpu_secs() -> f64 {
    let ns = std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok());
    ns.map_or_else(|| stat_cpu_secs("/proc/thread-self/stat"), |ns| ns / 1e9)
}

/// CPU seconds of the whole process (every thread, including the runtime's workers, and
/// not the Redis servers): utime + stime of /proc/self/stat, in ticks of 1/100 s.
fn process_cpu_secs() -> f64 {
    stat_cpu_secs("/proc/self/stat")
}

fn stat_cpu_secs(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name's closing parenthesis; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn cpu_run(cfg: &Config, w: &Workload) -> Result<CpuResult, BoxError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let cfg = Arc::new(cfg.clone());
        let head = Arc::new(FakeHead::new());
        let table = Arc::new(CountingTable {
            inner: FakeTable::new(),
            units: std::sync::Mutex::new(Units::default()),
        });
        let clock = Arc::new(ManualClock::at_ms(t0() * 1000));
        let writer = Writer::new(
            cfg.clone(),
            head.clone(),
            table.clone(),
            Arc::new(FakeCatalog::new()),
            Arc::new(LogSink),
            clock.clone(),
        )
        .with_name_sets(w.name_sets.clone())
        .with_emf(false);
        let cpu0 = thread_cpu_secs();
        let t = Instant::now();
        for ev in &w.events {
            let r = writer.process(&ev.records).await?;
            if r.first_failed.is_some() || r.bad_records > 0 {
                return Err("cpu run: a batch failed".into());
            }
        }
        let ingest_s = t.elapsed().as_secs_f64();
        let now = t0() + 30 * 86_400;
        let t = Instant::now();
        let mut windows = 0;
        for b in 0..cfg.record.buckets {
            for win in head.due(b, now, usize::MAX).await? {
                flush_window(&cfg, head.as_ref(), table.as_ref(), &win, now).await?;
                windows += 1;
            }
        }
        let flush_s = t.elapsed().as_secs_f64();
        let cpu_s = thread_cpu_secs() - cpu0;
        let units = *table.units.lock().expect("units lock");
        Ok(CpuResult {
            ingest_s,
            flush_s,
            cpu_s,
            windows,
            items: table.inner.items(),
            units,
        })
    })
}

/// Runs `events` through `writer`, `shards` batches at a time (batches of one bucket stay
/// in order: a bucket always goes to one shard).
async fn run_shards(
    writer: &Writer,
    events: &[KinesisEvent],
    shards: usize,
) -> Result<(), BoxError> {
    let mut per_shard: Vec<Vec<&KinesisEvent>> = vec![Vec::new(); shards];
    for (i, ev) in events.iter().enumerate() {
        per_shard[i % shards].push(ev);
    }
    let runs = per_shard.into_iter().map(|evs| async move {
        for ev in evs {
            let r = writer.process(&ev.records).await?;
            if let Some(f) = r.first_failed {
                return Err::<(), BoxError>(format!("redis run: batch failed at {f}").into());
            }
        }
        Ok(())
    });
    for r in futures::future::join_all(runs).await {
        r?;
    }
    Ok(())
}

struct RedisResult {
    carat_s: Vec<(usize, f64)>,
    naive_s: f64,
    /// CPU seconds of this process (the writer's side: decode, group, encode, the Redis
    /// client; not the Redis servers) for the 1-shard carat run and for the naive run.
    carat_cpu_s: f64,
    naive_cpu_s: f64,
    head_bytes_per_point: f64,
    head_sampled: usize,
    dirty_bytes_per_point: f64,
}

async fn redis_run(cfg: &Config, w: &Workload, memory_only: bool) -> Result<RedisResult, BoxError> {
    let cfg = Arc::new(cfg.clone());
    let head = Arc::new(RedisHead::connect(&cfg.redis).await?);
    let all_windows: Vec<(WindowRef, usize)> = w
        .series
        .iter()
        .flat_map(|(k, pts)| {
            let mut per: BTreeMap<i64, usize> = BTreeMap::new();
            for p in pts {
                *per.entry(window::start(cfg.window.raw_secs, p.time))
                    .or_default() += 1;
            }
            let bucket = k.bucket(cfg.record.buckets);
            per.into_iter().map(move |(start, n)| {
                (
                    WindowRef {
                        bucket,
                        key: k.clone(),
                        start,
                    },
                    n,
                )
            })
        })
        .collect();
    let forget_all = || async {
        for (win, _) in &all_windows {
            head.forget(win).await?;
        }
        Ok::<(), BoxError>(())
    };
    forget_all().await?;
    let mut carat_s = Vec::new();
    let mut sampled_windows = 0;
    let mut carat_cpu_s = f64::NAN;
    let runs: &[usize] = if memory_only { &[1] } else { &[1, 4] };
    for &shards in runs {
        let writer = Writer::new(
            cfg.clone(),
            head.clone(),
            Arc::new(FakeTable::new()),
            Arc::new(FakeCatalog::new()),
            Arc::new(LogSink),
            Arc::new(ManualClock::at_ms(t0() * 1000)),
        )
        .with_name_sets(w.name_sets.clone())
        .with_emf(false);
        let t = Instant::now();
        let cpu0 = process_cpu_secs();
        run_shards(&writer, &w.events, shards).await?;
        carat_s.push((shards, t.elapsed().as_secs_f64()));
        if shards == 1 {
            carat_cpu_s = process_cpu_secs() - cpu0;
        }
        if shards == 1 {
            // Memory of open windows, as the writer left them.
            let mut bytes = 0u64;
            let mut points = 0usize;
            let mut sampled = 0usize;
            for (win, n) in all_windows.iter().step_by((all_windows.len() / 300).max(1)) {
                if let Some(m) = head.memory_usage(win).await? {
                    bytes += m;
                    points += n;
                    sampled += 1;
                }
            }
            let client = redis::cluster::ClusterClient::new(cfg.redis.nodes.clone())?;
            let mut conn = client.get_async_connection().await?;
            let mut dirty = 0u64;
            let buckets: std::collections::BTreeSet<u32> =
                all_windows.iter().map(|(w, _)| w.bucket).collect();
            for b in &buckets {
                let m: Option<u64> = redis::cmd("MEMORY")
                    .arg("USAGE")
                    .arg(carat_store::redis_head::dirty_key(*b))
                    .arg("SAMPLES")
                    .arg(0)
                    .query_async(&mut conn)
                    .await?;
                dirty += m.unwrap_or(0);
            }
            let head_bpp = bytes as f64 / points.max(1) as f64;
            let dirty_bpp = dirty as f64 / w.points as f64;
            carat_s.push((0, head_bpp));
            carat_s.push((usize::MAX, dirty_bpp));
            sampled_windows = sampled;
            eprintln!("  memory sampled over {sampled} windows ({points} points)");
        }
        forget_all().await?;
    }
    let head_bytes_per_point = carat_s.iter().find(|(s, _)| *s == 0).map_or(0.0, |x| x.1);
    let dirty_bytes_per_point = carat_s
        .iter()
        .find(|(s, _)| *s == usize::MAX)
        .map_or(0.0, |x| x.1);
    carat_s.retain(|(s, _)| *s != 0 && *s != usize::MAX);
    let head_sampled = sampled_windows;

    if memory_only {
        return Ok(RedisResult {
            carat_s,
            naive_s: f64::NAN,
            carat_cpu_s,
            naive_cpu_s: f64::NAN,
            head_bytes_per_point,
            head_sampled,
            dirty_bytes_per_point,
        });
    }
    // Naive: one HSET per point (key per series window, field = time, value = value).
    let client = redis::cluster::ClusterClient::new(cfg.redis.nodes.clone())?;
    let conn = client.get_async_connection().await?;
    let t = Instant::now();
    let cpu0 = process_cpu_secs();
    let sets = NameSetResolver::new(w.name_sets.clone());
    let mut naive_keys: HashMap<String, ()> = HashMap::new();
    for ev in &w.events {
        let mut cmds: Vec<(String, i64, f64)> = Vec::new();
        for r in &ev.records {
            let rec: Record = decode_record(&sets, &r.kinesis.data).await?;
            for sp in rec.series {
                let key = SeriesKey::new(rec.tenant.clone(), sp.series);
                let b = key.bucket(cfg.record.buckets);
                for p in sp.points {
                    let k = format!(
                        "{{b{b}}}:naive:{key}:{}",
                        window::start(cfg.window.raw_secs, p.time)
                    );
                    cmds.push((k, p.time, p.value));
                }
            }
        }
        let results: Vec<redis::RedisResult<i64>> =
            futures::stream::iter(cmds.iter().map(|(k, t, v)| {
                let mut c = conn.clone();
                async move {
                    redis::cmd("HSET")
                        .arg(k)
                        .arg(*t)
                        .arg(v.to_bits())
                        .query_async::<i64>(&mut c)
                        .await
                }
            }))
            .buffer_unordered(16)
            .collect()
            .await;
        for r in results {
            r?;
        }
        for (k, _, _) in cmds {
            naive_keys.insert(k, ());
        }
    }
    let naive_s = t.elapsed().as_secs_f64();
    let naive_cpu_s = process_cpu_secs() - cpu0;
    let mut c = conn.clone();
    for k in naive_keys.keys() {
        redis::cmd("DEL").arg(k).query_async::<i64>(&mut c).await?;
    }
    Ok(RedisResult {
        carat_s,
        naive_s,
        carat_cpu_s,
        naive_cpu_s,
        head_bytes_per_point,
        head_sampled,
        dirty_bytes_per_point,
    })
}

/// DynamoDB's size of a number attribute value: 1 byte per two significant digits, plus 1.
fn num_size(digits: &str) -> usize {
    let d = digits.trim_start_matches('-').replace('.', "");
    let sig = d.trim_start_matches('0').trim_end_matches('0').len().max(1);
    sig.div_ceil(2) + 1
}

fn units(size: usize) -> u64 {
    size.div_ceil(1024) as u64
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut dir = carat_bench::data::default_dir();
    let mut hosts = 16usize;
    let mut redis = true;
    // `--figures DIR`: also write DIR/writer.json for `carat-bench cost` (docs/deploy.md).
    let mut figures_dir: Option<PathBuf> = None;
    let mut figures = serde_json::Map::new();
    let mut memory_only = false;
    // `--shape hourly|minutely|minutely-by-set`: only that request shape (for a profiler).
    let mut only: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--hosts" => hosts = it.next().and_then(|h| h.parse().ok()).ok_or("--hosts N")?,
            "--no-redis" => redis = false,
            "--figures" => figures_dir = Some(PathBuf::from(it.next().ok_or("--figures DIR")?)),
            "--head-memory" => memory_only = true,
            "--replay-batches" | "--multi-thread" => {}
            "--shape" => {
                only = Some(
                    it.next()
                        .ok_or("--shape hourly|minutely|minutely-by-set")?
                        .clone(),
                )
            }
            other => dir = PathBuf::from(other),
        }
    }
    let cfg = bench_cfg();
    let tenant = format!("bench{}", std::process::id());
    println!(
        "data: {} × {hosts} hosts, 1-minute steps; load average {}",
        dir.display(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    // (label, points per series per record, records name their name set). The stored
    // bytes do not depend on the record form, so the Redis and DynamoDB parts run once
    // per request shape: hourly, and minutely by name set (the steady state of agents).
    for (label, per_record, by_set) in [
        ("hourly records (60 points/series/record)", 60i64, false),
        (
            "minutely requests, names inline (one Mackerel agent post per host per minute: 17 series, 1 point each; one batch per minute; a host's first post, or record v1)",
            1,
            false,
        ),
        (
            "minutely requests, by name set (the same posts and batches, record v2 naming each host's stored name set: the steady state)",
            1,
            true,
        ),
    ] {
        let shape = match (per_record, by_set) {
            (1, false) => "minutely",
            (1, true) => "minutely-by-set",
            _ => "hourly",
        };
        if only.as_deref().is_some_and(|o| o != shape) {
            continue;
        }
        let h = if per_record == 1 && replay_batches() { hosts.min(2) } else { hosts };
        let w = build(&cfg, &dir, h, &tenant, per_record, by_set)?;
        if per_record == 1 && !by_set && memory_only {
            continue;
        }
        if memory_only {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let rr = rt.block_on(redis_run(&cfg, &w, true))?;
            println!(
                "\n## Redis head memory — {label} ({} points, {} records; MEMORY USAGE, {} sampled 1-day windows)\n| what | bytes per point |\n|---|---|\n| head keys | {:.2} |\n| dirty sets, amortised | {:.2} |\n| **total** | **{:.2}** |",
                w.points, w.records, rr.head_sampled, rr.head_bytes_per_point, rr.dirty_bytes_per_point, rr.head_bytes_per_point + rr.dirty_bytes_per_point
            );
            continue;
        }
        let r = cpu_run(&cfg, &w)?;
        let total = r.ingest_s + r.flush_s;
        let cpu_only = per_record == 1 && !by_set;
        println!(
            "\n## CPU only, one core — {label}\n{} points, {} records, {} batches, {} windows\n| phase | seconds | points/s |\n|---|---|---|\n| decode + group + entries + append (in-memory head) | {:.3} | {:.0} |\n| flush: read + merge + stamped chunk + conditional write (in-memory table) | {:.3} | {:.0} |\n| **whole writer path** | {:.3} | **{:.0}** |\n| whole writer path, per CPU-second ({:.2} CPU-s: the figure a loaded machine does not distort) | {:.3} | **{:.0}** |",
            w.points, w.records, w.events.len(), r.windows,
            r.ingest_s, w.points as f64 / r.ingest_s,
            r.flush_s, w.points as f64 / r.flush_s,
            total, w.points as f64 / total,
            r.cpu_s, r.cpu_s, w.points as f64 / r.cpu_s.max(0.01),
        );
        if cpu_only {
            continue;
        }
        // DynamoDB units: what the flushes read and wrote, and the items they left.
        let per_m = |u: u64, p: u64| u as f64 * 1e6 / p.max(1) as f64;
        let stored_points: u64 = r
            .items
            .iter()
            .filter(|i| i.sk == window::start(cfg.window.raw_secs, i.sk))
            .map(|i| u64::from(i.count))
            .sum();
        let full: Vec<&WindowItem> = r.items.iter().filter(|i| i.count == 1440).collect();
        let full_units: u64 = full.iter().map(|i| units(item_size(i))).sum();
        let full_read_units: u64 = full
            .iter()
            .map(|_| 1u64) // the close flush reads nothing stored yet: the 1-unit minimum
            .sum();
        let item_bytes: usize = r.items.iter().map(item_size).sum();
        // Naive: one item per point: pk, sk = time, v = value, ttl.
        let mut naive_units = 0u64;
        for (k, pts) in &w.series {
            let pk = k.table_pk("raw");
            for p in pts {
                let size = "pk".len()
                    + pk.len()
                    + "sk".len()
                    + num_size(&p.time.to_string())
                    + "v".len()
                    + num_size(&format!("{}", p.value))
                    + "ttl".len()
                    + num_size(&(p.time + cfg.retention.raw_secs).to_string());
                naive_units += units(size);
            }
        }
        println!(
            "\n## DynamoDB units (1-day windows, flush at close, threshold re-flushes: 0)\n| what | count | avg item bytes | units | per million points |\n|---|---|---|---|---|\n| items stored (one per window, parts included) | {} | {:.0} | | |\n| window reads (strongly consistent Query) | {} | | {} RU | **{:.0} RU** |\n| window writes (conditional PutItem / TransactWriteItems) | {} | | {} WU | **{:.0} WU** |\n| full-day windows only (steady state): writes | {} | | {} WU | **{:.0} WU** |\n| full-day windows only (steady state): reads | {} | | {} RU | **{:.0} RU** |\n| naive: one item per point | {} | | {} WU | {:.0} WU |",
            r.items.len(), item_bytes as f64 / r.items.len().max(1) as f64,
            r.units.reads, r.units.read_units, per_m(r.units.read_units, stored_points),
            r.units.writes, r.units.write_units, per_m(r.units.write_units, stored_points),
            full.len(), full_units, per_m(full_units, full.len() as u64 * 1440),
            full.len(), full_read_units, per_m(full_read_units, full.len() as u64 * 1440),
            w.points, naive_units, per_m(naive_units, w.points as u64),
        );
        if per_record == 1 {
            // The agent-shaped run is the reference workload's (docs/deploy.md).
            let full_bytes: usize = full.iter().map(|i| item_size(i)).sum();
            for (k, v) in [
                ("writer_points_per_cpu_second", w.points as f64 / r.cpu_s.max(0.01)),
                ("dynamodb_write_units_per_million_points", per_m(full_units, full.len() as u64 * 1440)),
                ("dynamodb_read_units_per_million_points", per_m(full_read_units, full.len() as u64 * 1440)),
                ("dynamodb_item_bytes_full_day", full_bytes as f64 / full.len().max(1) as f64),
            ] {
                figures.insert(k.into(), v.into());
            }
        }
        if redis {
            let rt = redis_runtime()?;
            match rt.block_on(redis_run(&cfg, &w, false)) {
                Ok(rr) => {
                    println!("\n## Into the local Redis cluster ({} points, {} records)\n| writer | seconds | points/s | vs naive |\n|---|---|---|---|", w.points, w.records);
                    for (shards, s) in &rr.carat_s {
                        println!("| carat writer, {shards} shard(s) in parallel | {s:.3} | {:.0} | {:.1}× |", w.points as f64 / s, rr.naive_s / s);
                    }
                    println!(
                        "| naive: one HSET per point, 16 in flight | {:.3} | {:.0} | 1× |",
                        rr.naive_s,
                        w.points as f64 / rr.naive_s
                    );
                    println!(
                        "\n## Writer-side CPU into Redis (this process: decode, group, encode, Redis client; not the servers)\n| writer | CPU-s | points per CPU-second | vs naive |\n|---|---|---|---|\n| carat writer, 1 shard | {:.2} | **{:.0}** | {:.1}× |\n| naive: one HSET per point | {:.2} | {:.0} | 1× |",
                        rr.carat_cpu_s,
                        w.points as f64 / rr.carat_cpu_s.max(0.01),
                        rr.naive_cpu_s / rr.carat_cpu_s.max(0.01),
                        rr.naive_cpu_s,
                        w.points as f64 / rr.naive_cpu_s.max(0.01),
                    );
                    println!(
                        "| carat writer, 1 shard, and its flushes at window close (the in-memory run's flush phase; the bill's figure) | {:.2} | {:.0} | |",
                        rr.carat_cpu_s + r.flush_s,
                        w.points as f64 / (rr.carat_cpu_s + r.flush_s).max(0.01),
                    );
                    if per_record == 1 && by_set {
                        // The bill's Lambda line: the writer's CPU as the Lambda pays it,
                        // Redis client included (this run), plus the flushes at window
                        // close, which this run does not reach (the in-memory run's flush
                        // phase, one thread: its seconds are CPU-seconds).
                        figures.insert(
                            "writer_points_per_cpu_second".into(),
                            (w.points as f64 / (rr.carat_cpu_s + r.flush_s).max(0.01)).into(),
                        );
                    }
                    println!(
                        "\n## Redis head memory (MEMORY USAGE, {} sampled 1-day windows, as this workload appended them)\n| what | bytes per point |\n|---|---|\n| head keys (blocks + key + allocator) | {:.2} |\n| dirty sets, amortised | {:.2} |\n| **total** | **{:.2}** |",
                        rr.head_sampled, rr.head_bytes_per_point, rr.dirty_bytes_per_point, rr.head_bytes_per_point + rr.dirty_bytes_per_point
                    );
                    if per_record == 1 {
                        figures.insert(
                            "head_bytes_per_point".into(),
                            (rr.head_bytes_per_point + rr.dirty_bytes_per_point).into(),
                        );
                    }
                }
                Err(e) => println!("\n(redis run skipped: {e})"),
            }
        }
    }
    if let Some(out) = figures_dir {
        if !figures.contains_key("head_bytes_per_point") {
            return Err(
                "--figures needs the Redis run (the head bytes per point): drop --no-redis".into(),
            );
        }
        figures.insert(
            "measured".into(),
            format!(
                "writer_bench over {} × {hosts} hosts, agent-shaped posts",
                dir.file_name().map_or_else(
                    || dir.display().to_string(),
                    |n| n.to_string_lossy().into_owned()
                )
            )
            .into(),
        );
        std::fs::create_dir_all(&out)?;
        let path = out.join("writer.json");
        std::fs::write(&path, format!("{:#}\n", serde_json::Value::Object(figures)))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
