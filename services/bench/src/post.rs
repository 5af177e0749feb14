//! Kinesis payload of a realistic Mackerel post: one host, 100 metrics, one point each,
//! all at the same time.

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;

use carat_core::record::{self, SeriesPoints};
use carat_core::{Config, Point, SeriesKey, SeriesName, Tenant};

/// A small deterministic generator (xorshift64*), so the post is the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The 100 metrics of one Linux host as mackerel-agent names and computes them: CPU
/// shares are ratios of jiffies (arbitrary floats), memory and filesystem sizes whole
/// bytes, load averages two decimals, disk and interface deltas per-second rates.
#[must_use]
pub fn mackerel_post(host_id: &str, time: i64) -> Vec<SeriesPoints> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut metrics: Vec<(String, f64)> = Vec::new();
    let total = 6000 + rng.below(100);
    for cpu in [
        "user",
        "nice",
        "system",
        "idle",
        "iowait",
        "irq",
        "softirq",
        "steal",
        "guest",
        "guest_nice",
    ] {
        let jiffies = rng.below(total / 4);
        metrics.push((
            format!("cpu.{cpu}.percentage"),
            jiffies as f64 * 100.0 / total as f64,
        ));
    }
    for l in ["loadavg1", "loadavg5", "loadavg15"] {
        metrics.push((l.to_string(), rng.below(400) as f64 / 100.0));
    }
    for m in [
        "total",
        "free",
        "buffers",
        "cached",
        "used",
        "available",
        "swap_total",
        "swap_free",
        "mem_available",
        "swap_cached",
    ] {
        metrics.push((format!("memory.{m}"), (rng.below(16 << 20) * 1024) as f64));
    }
    for d in ["xvda", "xvdb", "nvme0n1"] {
        for k in ["reads", "writes", "readTime", "writeTime", "ioTime"] {
            metrics.push((
                format!("disk.{d}.{k}.delta"),
                rng.below(60_000) as f64 / 60.0,
            ));
        }
    }
    for i in ["eth0", "eth1", "docker0", "lo"] {
        for k in ["rxBytes", "txBytes"] {
            metrics.push((
                format!("interface.{i}.{k}.delta"),
                rng.below(600_000_000) as f64 / 60.0,
            ));
        }
    }
    for f in ["_dev_xvda1", "_dev_xvdb1", "_dev_nvme0n1p1", "_dev_shm"] {
        for k in ["size", "used"] {
            metrics.push((
                format!("filesystem.{f}.{k}"),
                (rng.below(1 << 30) * 1024) as f64,
            ));
        }
    }
    let custom = [
        "custom.nginx.requests.requests",
        "custom.nginx.connections.active",
        "custom.nginx.connections.reading",
        "custom.nginx.connections.writing",
        "custom.nginx.connections.waiting",
        "custom.nginx.queue.accepts",
        "custom.nginx.queue.handled",
        "custom.mysql.cmd.Com_insert",
        "custom.mysql.cmd.Com_select",
        "custom.mysql.cmd.Com_update",
        "custom.mysql.cmd.Com_delete",
        "custom.mysql.join.Select_full_join",
        "custom.mysql.threads.Threads_connected",
        "custom.mysql.threads.Threads_running",
        "custom.mysql.connections.Connections",
        "custom.mysql.connections.Max_used_connections",
        "custom.mysql.seconds_behind_master.Seconds_Behind_Master",
        "custom.redis.clients.connected_clients",
        "custom.redis.memory.used_memory",
        "custom.redis.keys.keys",
        "custom.redis.evicted_keys.evicted_keys",
        "custom.redis.expired_keys.expired_keys",
        "custom.redis.queries.queries",
        "custom.redis.keyspace.keyspace_hits",
        "custom.redis.keyspace.keyspace_misses",
        "custom.redis.lag.lag",
        "custom.linux.users.users",
        "custom.linux.swap.pswpin",
        "custom.linux.swap.pswpout",
        "custom.linux.interrupts.interrupts",
        "custom.linux.context_switches.context_switches",
        "custom.linux.forks.forks",
        "custom.linux.ss.ESTAB",
        "custom.linux.ss.TIME-WAIT",
        "custom.linux.ss.CLOSE-WAIT",
        "custom.linux.ss.LISTEN",
        "custom.proc.num.nginx",
        "custom.proc.num.mysqld",
        "custom.proc.num.redis-server",
        "custom.proc.num.sshd",
        "custom.proc.num.crond",
        "custom.uptime.seconds",
        "custom.conntrack.count.used",
        "custom.conntrack.count.max",
        "custom.ntp.offset.offset",
        "custom.ntp.stratum.stratum",
    ];
    for (i, name) in custom.iter().enumerate() {
        let v = if i % 3 == 0 {
            rng.below(100_000) as f64 / 60.0
        } else {
            rng.below(5_000) as f64
        };
        metrics.push(((*name).to_string(), v));
    }
    metrics.truncate(100);
    metrics
        .into_iter()
        .map(|(name, value)| SeriesPoints {
            series: SeriesName::mackerel_host(host_id, &name)
                .expect("the bench's metric names are valid"),
            points: vec![Point::new(time, value)],
        })
        .collect()
}

/// Bytes of the records `series` packs into.
fn packed_bytes(
    tenant: &Tenant,
    stamp_ms: i64,
    series: Vec<SeriesPoints>,
    max: usize,
) -> Result<(usize, usize), Box<dyn Error>> {
    let records = record::pack(tenant, stamp_ms, series, max)?;
    Ok((records.len(), records.iter().map(Vec::len).sum()))
}

/// The Kinesis payload report (markdown).
///
/// # Errors
/// If packing fails (it cannot for this post).
pub fn report() -> Result<String, Box<dyn Error>> {
    let cfg = Config::default();
    let tenant = Tenant::default_tenant();
    let time = 1_764_072_000;
    let stamp_ms = time * 1000 + 1234;
    let post = mackerel_post("3hXYZabc12k", time);
    let n = post.iter().map(|s| s.points.len()).sum::<usize>();
    assert_eq!(n, 100, "the post has 100 points");
    let max = cfg.record.max_record_bytes;
    let (one_records, one_bytes) = packed_bytes(&tenant, stamp_ms, post.clone(), max)?;
    // As the ingest API sends it: grouped by hash bucket of the series, one record set
    // per bucket.
    let mut by_bucket: BTreeMap<u32, Vec<SeriesPoints>> = BTreeMap::new();
    for s in &post {
        let key = SeriesKey::new(tenant.clone(), s.series.clone());
        by_bucket
            .entry(key.bucket(cfg.record.buckets))
            .or_default()
            .push(s.clone());
    }
    let (mut b_records, mut b_bytes) = (0, 0);
    for series in by_bucket.into_values() {
        let (r, b) = packed_bytes(&tenant, stamp_ms, series, max)?;
        b_records += r;
        b_bytes += b;
    }
    // Speed of the record codec on this post (the writer decodes every record).
    let records = record::pack(&tenant, stamp_ms, post.clone(), max)?;
    let start = std::time::Instant::now();
    let mut reps = 0u32;
    while start.elapsed() < std::time::Duration::from_millis(300) {
        std::hint::black_box(record::pack(&tenant, stamp_ms, post.clone(), max)?);
        reps += 1;
    }
    let encode_pps = f64::from(reps) * n as f64 / start.elapsed().as_secs_f64();
    let start = std::time::Instant::now();
    let mut reps = 0u32;
    while start.elapsed() < std::time::Duration::from_millis(300) {
        for r in &records {
            std::hint::black_box(record::decode(std::hint::black_box(r))?);
        }
        reps += 1;
    }
    let decode_pps = f64::from(reps) * n as f64 / start.elapsed().as_secs_f64();
    let plain_names: usize = post.iter().map(|s| s.series.as_str().len()).sum();
    let mut out = String::new();
    writeln!(
        out,
        "### Kinesis record payload: one Mackerel host, 100 metrics, one point each, same time\n"
    )?;
    writeln!(out, "| packing | records | bytes | bytes/point |")?;
    writeln!(out, "|---|---:|---:|---:|")?;
    writeln!(
        out,
        "| all 100 series in one record | {one_records} | {one_bytes} | {:.2} |",
        one_bytes as f64 / n as f64
    )?;
    writeln!(
        out,
        "| split by series bucket ({} buckets, as configured) | {b_records} | {b_bytes} | {:.2} |",
        cfg.record.buckets,
        b_bytes as f64 / n as f64
    )?;
    // Values whose shortest exact decimal has 15+ significant digits (or none) take
    // 8–9 bytes in a record whatever the coding: binary fractions, not decimals.
    let long = post
        .iter()
        .flat_map(|s| &s.points)
        .filter(|p| {
            (0..=14)
                .find_map(|e| {
                    let scale = 10f64.powi(e);
                    let m = (p.value * scale).round();
                    (m / scale == p.value).then_some(m.abs())
                })
                .is_none_or(|m| m >= 1e14)
        })
        .count();
    writeln!(
        out,
        "\nThe 100 series names alone are {plain_names} bytes ({:.1} per point); {long} of the 100 \
         values are binary fractions (CPU shares, per-second rates: 15–17 significant digits) \
         that take 8–9 bytes each. Record codec on this post: pack {:.2} M points/s, decode {:.2} M points/s.",
        plain_names as f64 / n as f64,
        encode_pps / 1e6,
        decode_pps / 1e6
    )?;
    Ok(out)
}
