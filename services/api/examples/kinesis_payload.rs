//! Kinesis payload of a realistic ingest post: bytes and PUT payload units per point of
//! carat's bucketed records beside one-record-per-series JSON (a naive producer).
//!
//! `cargo run --release -p carat-api --example kinesis_payload`
//!
//! The post is what a Mackerel agent sends every minute: one host, 100 metrics (cpu,
//! memory, disk, interface, filesystem and plugin metrics), one point each, same time,
//! values shaped like the agent's (full-precision percentages and per-second deltas,
//! integer byte counts). It goes through the same code as the handler
//! (`body::resolve` → `produce::records`), for 1, 10 and 1,000 hosts in one post, with
//! the default bucket count and with fewer buckets for comparison.
//!
//! Units: a record costs ceil(size / 25 KiB) PUT payload units on a provisioned stream
//! and ceil(size / 1 KiB) on an on-demand stream, where size = data + partition key
//! (what counts against the record limit).

use std::sync::Arc;

use carat_api::body::{self, Posted, Shape};
use carat_api::produce;
use carat_core::config::{IngestConfig, RecordConfig};
use carat_core::record;
use carat_store::fake::FakeCatalog;
use carat_store::name_sets::SentNameSets;

use carat_core::Tenant;

const NOW: i64 = 1_700_000_040;
const STAMP_MS: i64 = NOW * 1000 + 123;

/// A deterministic generator (xorshift), so every run measures the same post.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let x = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        x
    }
}

/// How a metric's values look.
#[derive(Clone, Copy)]
enum Kind {
    /// A percentage computed from tick deltas: full-precision float (2.5125628140703515).
    Percent,
    /// A per-second rate of a counter delta over 60 s: n / 60 (1234.5666666666666).
    Rate,
    /// Bytes or a count: an integer.
    Bytes,
    /// loadavg: two decimals.
    Load,
}

fn metric_names() -> Vec<(String, Kind)> {
    let mut m: Vec<(String, Kind)> = Vec::new();
    let mut add = |name: String, kind| m.push((name, kind));
    for c in [
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
        add(format!("cpu.{c}.percentage"), Kind::Percent);
    }
    for l in ["loadavg1", "loadavg5", "loadavg15"] {
        add(l.to_string(), Kind::Load);
    }
    for mem in [
        "total",
        "used",
        "available",
        "free",
        "buffers",
        "cached",
        "swap_total",
        "swap_free",
        "swap_cached",
    ] {
        add(format!("memory.{mem}"), Kind::Bytes);
    }
    for d in ["sda", "sda1", "sdb", "nvme0n1"] {
        for op in ["reads", "writes"] {
            add(format!("disk.{d}.{op}.delta"), Kind::Rate);
        }
    }
    for i in ["eth0", "eth1", "docker0"] {
        for dir in ["rxBytes", "txBytes"] {
            add(format!("interface.{i}.{dir}.delta"), Kind::Rate);
        }
    }
    for f in ["sda1", "sdb1", "nvme0n1p1"] {
        for what in ["size", "used"] {
            add(format!("filesystem.{f}.{what}"), Kind::Bytes);
        }
    }
    for c in [
        "com_select",
        "com_insert",
        "com_update",
        "com_delete",
        "com_replace",
        "com_load",
        "com_delete_multi",
        "com_insert_select",
        "com_update_multi",
        "com_replace_select",
    ] {
        add(format!("custom.mysql.cmd.{c}"), Kind::Rate);
    }
    for c in [
        "connections",
        "max_used_connections",
        "threads_connected",
        "threads_running",
        "aborted_clients",
        "aborted_connects",
    ] {
        add(format!("custom.mysql.connections.{c}"), Kind::Bytes);
    }
    for c in ["active", "reading", "writing", "waiting"] {
        add(format!("custom.nginx.connections.{c}"), Kind::Bytes);
    }
    add("custom.nginx.requests.requests".into(), Kind::Rate);
    for c in [
        "context_switches",
        "interrupts",
        "forks",
        "pswpin",
        "pswpout",
        "pgpgin",
        "pgpgout",
    ] {
        add(format!("custom.linux.{c}"), Kind::Rate);
    }
    add("custom.linux.users.users".into(), Kind::Bytes);
    for c in ["3f9a2c", "b71e04", "c02d5e", "e9a481", "51fc37"] {
        add(format!("custom.docker.cpuacct.{c}.user"), Kind::Rate);
        add(format!("custom.docker.cpuacct.{c}.system"), Kind::Rate);
        add(format!("custom.docker.memory.{c}.rss"), Kind::Bytes);
        add(format!("custom.docker.memory.{c}.cache"), Kind::Bytes);
    }
    for c in [
        "used_memory",
        "connected_clients",
        "keys",
        "expired_keys",
        "evicted_keys",
    ] {
        add(format!("custom.redis.{c}"), Kind::Bytes);
    }
    for c in [
        "total_commands_processed",
        "keyspace_hits",
        "keyspace_misses",
        "instantaneous_ops_per_sec",
    ] {
        add(format!("custom.redis.{c}"), Kind::Rate);
    }
    assert_eq!(m.len(), 100, "the realistic post has 100 metrics");
    m
}

fn value(kind: Kind, rng: &mut Rng) -> f64 {
    match kind {
        Kind::Percent => {
            // Ticks over one minute on a few cores: share of ~24,000 ticks.
            #[allow(clippy::cast_precision_loss)]
            let ticks = (rng.next() % 2_400) as f64;
            ticks * 100.0 / (23_880.0 + (rng.next() % 240) as f64)
        }
        #[allow(clippy::cast_precision_loss)]
        Kind::Rate => (rng.next() % 5_000_000) as f64 / 60.0,
        #[allow(clippy::cast_precision_loss)]
        Kind::Bytes => (rng.next() % 64_000_000_000) as f64,
        Kind::Load => (rng.unit() * 400.0).round() / 100.0,
    }
}

fn host_id(rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    (0..11)
        .map(|_| {
            let i = usize::try_from(rng.next() % ALPHABET.len() as u64).expect("index fits");
            char::from(ALPHABET[i])
        })
        .collect()
}

fn post(hosts: usize) -> Vec<Posted> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let names = metric_names();
    let mut out = Vec::with_capacity(hosts * names.len());
    for _ in 0..hosts {
        let host = host_id(&mut rng);
        for (name, kind) in &names {
            out.push(Posted {
                first: host.clone(),
                name: name.clone(),
                time: NOW,
                value: value(*kind, &mut rng),
            });
        }
    }
    out
}

struct Cost {
    records: usize,
    bytes: usize,
    units_25k: usize,
    units_1k: usize,
}

impl Cost {
    fn add(&mut self, data: usize, key: usize) {
        let size = data + key;
        self.records += 1;
        self.bytes += data;
        self.units_25k += size.div_ceil(25 * 1024);
        self.units_1k += size.div_ceil(1024);
    }
}

fn row(hosts: usize, points: usize, scheme: &str, c: &Cost) {
    #[allow(clippy::cast_precision_loss)]
    let per = |x: usize| x as f64 / points as f64;
    println!(
        "| {hosts} | {points} | {scheme} | {} | {:.2} | {:.4} | {:.4} |",
        c.records,
        per(c.bytes),
        per(c.units_25k),
        per(c.units_1k)
    );
}

fn main() {
    // `--figures DIR`: also write DIR/kinesis.json for `carat-bench cost` (docs/deploy.md).
    let args: Vec<String> = std::env::args().skip(1).collect();
    let figures_dir = match args.as_slice() {
        [flag, dir] if flag == "--figures" => Some(std::path::PathBuf::from(dir)),
        [] => None,
        _ => {
            eprintln!("usage: kinesis_payload [--figures DIR]");
            std::process::exit(2);
        }
    };
    let mut figures = None;
    let mut set_items: Vec<(usize, u64)> = Vec::new();
    let tenant = Tenant::default_tenant();
    let ingest = IngestConfig::default();
    println!("| hosts | points | scheme | records | data bytes/point | 25 KiB units/point (provisioned) | 1 KiB units/point (on-demand) |");
    println!("|---:|---:|---|---:|---:|---:|---:|");
    for hosts in [1, 10, 1_000] {
        let points = body::resolve(Shape::MackerelHost, None, post(hosts), NOW, &ingest)
            .expect("the realistic post is valid");
        let n = points.len();

        // Naive: one record per series, the point as JSON, the series name as key.
        let mut naive = Cost {
            records: 0,
            bytes: 0,
            units_25k: 0,
            units_1k: 0,
        };
        for (series, p) in &points {
            let json =
                serde_json::json!({"series": series.as_str(), "time": p.time, "value": p.value});
            naive.add(json.to_string().len(), series.as_str().len());
        }
        row(hosts, n, "one JSON record per series (naive)", &naive);

        let default_buckets = RecordConfig::default().buckets;
        for buckets in [default_buckets, 64, 1] {
            let cfg = RecordConfig {
                buckets,
                ..RecordConfig::default()
            };
            let label = if buckets == default_buckets {
                format!("carat, {buckets} buckets (default)")
            } else if buckets == 1 {
                "carat, 1 bucket (bound: whole post in one record)".to_string()
            } else {
                format!("carat, {buckets} buckets")
            };
            let cost = |records: &[(usize, usize)]| {
                let mut c = Cost {
                    records: 0,
                    bytes: 0,
                    units_25k: 0,
                    units_1k: 0,
                };
                for &(data, key) in records {
                    c.add(data, key);
                }
                c
            };
            // Record v1, as before record v2: names inline in every record.
            let mut v1 = Vec::new();
            for (bucket, series) in produce::buckets(&tenant, points.clone(), buckets) {
                let key = carat_core::series::partition_key(bucket).len();
                for r in record::pack_records(&tenant, STAMP_MS, series, cfg.max_record_bytes)
                    .expect("records pack")
                {
                    v1.push((record::encode_v1(&r).len(), key));
                }
            }
            row(
                hosts,
                n,
                &format!("{label}, record v1 (before)"),
                &cost(&v1),
            );
            // Record v2 with names inline: a set's first post from an API process, or
            // the catalog table unreachable.
            let inline: Vec<_> = produce::records(&tenant, STAMP_MS, points.clone(), &cfg)
                .expect("records pack")
                .iter()
                .map(|r| (r.data.len(), r.partition_key.len()))
                .collect();
            row(
                hosts,
                n,
                &format!("{label}, record v2, names inline"),
                &cost(&inline),
            );
            // Record v2 naming stored name sets: every later post of the same names.
            let store = Arc::new(FakeCatalog::new());
            let sent = SentNameSets::new(store.clone());
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime");
            let with_sets = |stamp: i64| {
                rt.block_on(produce::records_with_sets(
                    &tenant,
                    stamp,
                    points.clone(),
                    &cfg,
                    &sent,
                ))
                .expect("records pack")
            };
            let _first = with_sets(STAMP_MS - 60_000);
            let (puts, _) = store.name_set_calls();
            let steady: Vec<_> = with_sets(STAMP_MS)
                .iter()
                .map(|r| (r.data.len(), r.partition_key.len()))
                .collect();
            assert_eq!(
                store.name_set_calls().0,
                puts,
                "the second post stores no set"
            );
            let c = cost(&steady);
            row(
                hosts,
                n,
                &format!("{label}, record v2, name sets stored (steady state)"),
                &c,
            );
            if buckets == default_buckets {
                set_items.push((hosts, puts));
            }
            if hosts == 1 && buckets == default_buckets {
                #[allow(clippy::cast_precision_loss)]
                let per = |x: usize| x as f64 / n as f64;
                figures = Some(serde_json::json!({
                    "kinesis_bytes_per_point": per(c.bytes),
                    "kinesis_records_per_point": per(c.records),
                    "measured": format!("kinesis_payload, one-host agent post of {n} points, {buckets} buckets, record v2 with its name set stored"),
                }));
            }
        }
    }
    // What the name sets cost once: one catalog item per host's set per API process.
    let names: Vec<_> = metric_names()
        .iter()
        .map(|(m, _)| {
            carat_core::SeriesName::parse(&format!("host.3hXYZabc12.{m}"), "name").expect("valid")
        })
        .collect();
    let set = record::NameSet::of(names.iter());
    println!(
        "\nName set of one host's 100 metrics: {} bytes as stored (sealed; {} before DEFLATE), one PutItem per API process, one GetItem per writer container. Sets stored for the posts above (default buckets): {}.",
        set.sealed().len(),
        set.body().len(),
        set_items
            .iter()
            .map(|(h, p)| format!("{h} host(s): {p}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let (Some(dir), Some(f)) = (figures_dir, figures) {
        std::fs::create_dir_all(&dir).expect("create the figures directory");
        let path = dir.join("kinesis.json");
        std::fs::write(&path, format!("{f:#}\n")).expect("write kinesis.json");
        eprintln!("wrote {}", path.display());
    }
}
