//! `carat-bench cost`: the monthly bill of the reference workload, computed from the figures
//! the benchmarks measured (docs/cost-figures/*.json, written by `make bench`), beside Amazon
//! Timestream for LiveAnalytics for the same workload, and how the window length trades cache
//! memory against DynamoDB writes. docs/deploy.md "The reference workload's bill" is this
//! module's output for the committed figures; a test keeps the two equal.
//!
//! Everything measured comes from [`Figures`]; everything else is a price or an assumption,
//! named in the table's "formula" column. Prices: AWS list prices in us-east-1, on-demand, as
//! we know them (check the pricing pages before relying on them).

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What the benchmarks measured (one file per benchmark, merged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Figures {
    /// `writer_bench` (services/writer/examples): Redis head bytes per point of open 1-day
    /// windows (MEMORY USAGE, head keys + dirty sets).
    pub head_bytes_per_point: f64,
    /// `writer_bench`: write units per million points of full-day windows (steady state).
    pub dynamodb_write_units_per_million_points: f64,
    /// `writer_bench`: read units per million points of full-day windows (the flushes' reads).
    pub dynamodb_read_units_per_million_points: f64,
    /// `writer_bench`: average bytes of a full-day window item (what DynamoDB stores).
    pub dynamodb_item_bytes_full_day: f64,
    /// `writer_bench`: points per CPU-second of the writer process into the local Redis
    /// cluster (decode, group, encode and the Redis client; not the servers), agent-shaped
    /// posts by name set: the CPU the writer Lambda pays for.
    pub writer_points_per_cpu_second: f64,
    /// `kinesis_payload` (services/api/examples): Kinesis data + key bytes per point of a
    /// one-host Mackerel agent post.
    pub kinesis_bytes_per_point: f64,
    /// `kinesis_payload`: Kinesis records per point of that post.
    pub kinesis_records_per_point: f64,
    /// Where and when they were measured (commit, date), for the doc.
    pub measured: String,
}

impl Figures {
    /// Reads and merges `writer.json` and `kinesis.json` of `dir`.
    ///
    /// # Errors
    /// A missing or unreadable file, or a figure missing from both, named.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let mut merged = serde_json::Map::new();
        let mut measured = Vec::new();
        for name in ["writer.json", "kinesis.json"] {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{}: {e} (run `make bench` first)", path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
            let serde_json::Value::Object(map) = v else {
                return Err(format!("{}: not a JSON object", path.display()));
            };
            for (k, v) in map {
                if k == "measured" {
                    if let Some(s) = v.as_str() {
                        measured.push(format!("{name}: {s}"));
                    }
                } else {
                    merged.insert(k, v);
                }
            }
        }
        merged.insert("measured".into(), measured.join("; ").into());
        serde_json::from_value(serde_json::Value::Object(merged))
            .map_err(|e| format!("{}: {e}", dir.display()))
    }
}

/// The workload priced.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub series: f64,
    /// Series per host (one agent post per host per minute carries them all).
    pub series_per_host: f64,
    /// Window length, seconds.
    pub window_secs: f64,
    /// Raw retention in DynamoDB, days.
    pub raw_days: f64,
}

/// The reference workload of issue 12: 100,000 series × one point a minute, 1-day windows,
/// 30 days raw in DynamoDB, from Mackerel agents posting 100 series per host each minute
/// (the Kinesis benchmark's post).
pub const REFERENCE: Workload = Workload {
    series: 100_000.0,
    series_per_host: 100.0,
    window_secs: 86_400.0,
    raw_days: 30.0,
};

/// Hours in a billing month (AWS's convention).
pub const HOURS: f64 = 730.0;

impl Workload {
    #[must_use]
    pub fn points_per_month(&self) -> f64 {
        self.series * HOURS * 60.0
    }

    #[must_use]
    pub fn posts_per_month(&self) -> f64 {
        self.series / self.series_per_host * HOURS * 60.0
    }

    /// Points per series in one window (one a minute).
    #[must_use]
    pub fn points_per_window(&self) -> f64 {
        self.window_secs / 60.0
    }
}

/// Prices (us-east-1, on-demand, USD).
pub mod price {
    /// Kinesis Data Streams, provisioned: per shard-hour.
    pub const KINESIS_SHARD_HOUR: f64 = 0.015;
    /// Kinesis retention beyond 24 h, up to 7 days: per shard-hour.
    pub const KINESIS_EXTENDED_RETENTION_SHARD_HOUR: f64 = 0.020;
    /// Kinesis PUT payload units (25 KB each): per million.
    pub const KINESIS_PUT_UNITS_PER_MILLION: f64 = 0.014;
    /// Lambda arm64: per GB-second.
    pub const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
    /// Lambda: per million requests.
    pub const LAMBDA_REQUESTS_PER_MILLION: f64 = 0.20;
    /// API Gateway HTTP API: per million requests.
    pub const HTTP_API_PER_MILLION: f64 = 1.00;
    /// DynamoDB on-demand: per million write request units.
    pub const DYNAMODB_WRITE_PER_MILLION: f64 = 0.625;
    /// DynamoDB on-demand: per million read request units.
    pub const DYNAMODB_READ_PER_MILLION: f64 = 0.125;
    /// DynamoDB standard storage + point-in-time recovery: per GB-month.
    pub const DYNAMODB_STORAGE_GB_MONTH: f64 = 0.25 + 0.20;
    /// S3 Standard: per GB-month.
    pub const S3_GB_MONTH: f64 = 0.023;
    /// The fixed lines of docs/deploy.md "What a million points a month costs": VPC endpoint
    /// (14.60), KMS keys (2.00), secrets (1.20), CloudWatch alarms (5.80), dashboard (3.00),
    /// custom metrics (16 EMF metrics × 0.30 = 4.80), logs and the read path (≈ 0.45).
    pub const FIXED_MONTH: f64 = 14.60 + 2.00 + 1.20 + 5.80 + 3.00 + 4.80 + 0.45;
    /// ElastiCache for Valkey node types: (name, usable GiB, USD per node-hour).
    pub const CACHE_NODES: [(&str, f64, f64); 6] = [
        ("cache.t4g.micro", 0.5, 0.0128),
        ("cache.t4g.small", 1.37, 0.0256),
        ("cache.t4g.medium", 3.09, 0.0520),
        ("cache.r7g.large", 13.07, 0.1752),
        ("cache.r7g.xlarge", 26.32, 0.3496),
        ("cache.r7g.2xlarge", 52.82, 0.6992),
    ];
    /// Timestream for LiveAnalytics: per million 1 KiB writes.
    pub const TIMESTREAM_WRITES_PER_MILLION: f64 = 0.50;
    /// Timestream memory store: per GB-hour.
    pub const TIMESTREAM_MEMORY_GB_HOUR: f64 = 0.036;
    /// Timestream magnetic store: per GB-month.
    pub const TIMESTREAM_MAGNETIC_GB_MONTH: f64 = 0.03;
}

/// The head may fill nodes up to this share of their memory (the `redis-memory` alarm's
/// 70 %), so sizing divides by it.
pub const HEAD_FILL: f64 = 0.7;
/// Lambda gives one full vCPU at 1,769 MB: a CPU-bound function's GB-seconds are its
/// CPU-seconds × 1.769 / 1.024 whatever its memory.
pub const GB_SECONDS_PER_CPU_SECOND: f64 = 1769.0 / 1024.0;
/// Kinesis write limits per shard.
pub const SHARD_BYTES_PER_SECOND: f64 = 1_048_576.0;
pub const SHARD_RECORDS_PER_SECOND: f64 = 1_000.0;
/// The API function per agent post (not benchmarked: an assumption, as in docs/deploy.md).
pub const API_GB_SECONDS_PER_POST: f64 = 0.25 * 0.03;

/// One line of a bill.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub item: String,
    pub formula: String,
    pub dollars: f64,
}

fn line(item: &str, formula: String, dollars: f64) -> Line {
    Line {
        item: item.to_string(),
        formula,
        dollars,
    }
}

/// The cache cluster the head needs: (node type, shards, nodes, $/month), the cheapest of
/// 1–16 shards of each type with one replica each that keeps `bytes` under [`HEAD_FILL`].
#[must_use]
pub fn cache_cluster(bytes: f64) -> (&'static str, u32, u32, f64) {
    let mut best: Option<(&'static str, u32, u32, f64)> = None;
    for (name, gib, hourly) in price::CACHE_NODES {
        for shards in 1..=16_u32 {
            if f64::from(shards) * gib * 1024.0 * 1024.0 * 1024.0 * HEAD_FILL >= bytes {
                let nodes = shards * 2;
                let cost = f64::from(nodes) * hourly * HOURS;
                if best.is_none_or(|b| cost < b.3) {
                    best = Some((name, shards, nodes, cost));
                }
                break;
            }
        }
    }
    best.unwrap_or(("cache.r7g.2xlarge", 16, 32, 32.0 * 0.6992 * HOURS))
}

/// Write units per million points for windows of `w`'s length: the measured full-day figure,
/// scaled by the number of items per point and the 1 KiB units each item takes (item size
/// ∝ points, plus the fixed part the measured full-day item implies).
#[must_use]
pub fn write_units_per_million(f: &Figures, w: &Workload) -> f64 {
    let full_points = 1440.0;
    let per_point = item_bytes_per_point(f);
    let fixed = (f.dynamodb_item_bytes_full_day - per_point * full_points).max(0.0);
    let units = |points: f64| ((fixed + per_point * points) / 1024.0).ceil().max(1.0);
    let full_units = units(full_points);
    // Measured units per full-day item (conditional writes, re-flushes) ÷ its 1 KiB units.
    let writes_per_unit =
        f.dynamodb_write_units_per_million_points * full_points / 1e6 / full_units;
    let p = w.points_per_window();
    1e6 / p * units(p) * writes_per_unit
}

/// Stored item bytes per point (the chunk): the full-day item less a fixed ~200 B of keys
/// and attributes is what points cost; estimated as 90 % of the item.
fn item_bytes_per_point(f: &Figures) -> f64 {
    f.dynamodb_item_bytes_full_day * 0.9 / 1440.0
}

/// The HTTP front every agent post goes through: API Gateway HTTP API, the API function and
/// the function it feeds (carat's writer; a Timestream writer for the peer).
fn api_front(posts: f64) -> Line {
    line(
        "Ingest front: API Gateway + API Lambda + requests",
        format!(
            "{:.1} M agent posts × ($1.00/M + 0.0075 GB-s + 2 Lambda requests × $0.20/M)",
            posts / 1e6
        ),
        posts * API_GB_SECONDS_PER_POST * price::LAMBDA_GB_SECOND
            + posts / 1e6
                * (2.0 * price::LAMBDA_REQUESTS_PER_MILLION + price::HTTP_API_PER_MILLION),
    )
}

/// The bill for `w` from `f`.
#[must_use]
pub fn carat_bill(f: &Figures, w: &Workload) -> Vec<Line> {
    let points = w.points_per_month();
    let mpts = points / 1e6;
    let seconds = HOURS * 3600.0;
    let bytes_per_s = points / seconds * f.kinesis_bytes_per_point;
    let records_per_s = points / seconds * f.kinesis_records_per_point;
    let shards = (bytes_per_s / SHARD_BYTES_PER_SECOND)
        .max(records_per_s / SHARD_RECORDS_PER_SECOND)
        .ceil()
        .max(1.0);
    let records = points * f.kinesis_records_per_point;
    let cpu_s = points / f.writer_points_per_cpu_second;
    let writer_gbs = cpu_s * GB_SECONDS_PER_CPU_SECOND;
    let posts = w.posts_per_month();
    let wu = write_units_per_million(f, w) * mpts;
    let ru = f.dynamodb_read_units_per_million_points * mpts;
    // Steady state: `raw_days` of points stored at once.
    let stored_gb = w.series * 1440.0 * w.raw_days * item_bytes_per_point(f) / 1e9;
    let head_bytes = w.series * w.points_per_window() * f.head_bytes_per_point;
    let (node, cache_shards, nodes, cache_cost) = cache_cluster(head_bytes);
    vec![
        line(
            "Kinesis shards + 7-day retention",
            format!(
                "{shards:.0} shard(s) ({:.0} KB/s at {:.2} B/point, {:.0} records/s) × 730 h × ($0.015 + $0.020)",
                bytes_per_s / 1000.0,
                f.kinesis_bytes_per_point,
                records_per_s
            ),
            shards
                * HOURS
                * (price::KINESIS_SHARD_HOUR + price::KINESIS_EXTENDED_RETENTION_SHARD_HOUR),
        ),
        line(
            "Kinesis PUT payload units",
            format!(
                "{:.1} M records ({:.3} per point, each ≤ 25 KB) × $0.014/M",
                records / 1e6,
                f.kinesis_records_per_point
            ),
            records / 1e6 * price::KINESIS_PUT_UNITS_PER_MILLION,
        ),
        line(
            "Lambda: writer",
            format!(
                "{:.0} CPU-s ({:.2} M points/s per core) × 1.73 GB-s per CPU-s × $0.0000133",
                cpu_s,
                f.writer_points_per_cpu_second / 1e6
            ),
            writer_gbs * price::LAMBDA_GB_SECOND,
        ),
        api_front(posts),
        line(
            "DynamoDB writes",
            format!(
                "{:.0} WU per million points × {mpts:.0} M points × $0.625/M",
                write_units_per_million(f, w)
            ),
            wu / 1e6 * price::DYNAMODB_WRITE_PER_MILLION,
        ),
        line(
            "DynamoDB reads (flushes)",
            format!(
                "{:.0} RU per million points × {mpts:.0} M points × $0.125/M",
                f.dynamodb_read_units_per_million_points
            ),
            ru / 1e6 * price::DYNAMODB_READ_PER_MILLION,
        ),
        line(
            "DynamoDB storage + PITR",
            format!(
                "{stored_gb:.1} GB ({:.0} days at {:.2} B/point) × $0.45",
                w.raw_days,
                item_bytes_per_point(f)
            ),
            stored_gb * price::DYNAMODB_STORAGE_GB_MONTH,
        ),
        line(
            "ElastiCache head",
            format!(
                "{:.2} GB of open windows ({:.0} points/series × {:.1} B/point) ÷ 70 % ⇒ {cache_shards} shard(s) × 2 {node} × 730 h",
                head_bytes / 1e9,
                w.points_per_window(),
                f.head_bytes_per_point
            ),
            cache_cost,
        ),
        line(
            "S3 archive",
            format!(
                "{:.1} GB a month added at the stored size × $0.023 (first month)",
                points * item_bytes_per_point(f) / 1e9
            ),
            points * item_bytes_per_point(f) / 1e9 * price::S3_GB_MONTH,
        ),
        line(
            "Fixed: endpoint, KMS, secrets, alarms, dashboard, metrics, logs",
            "docs/deploy.md \"What a million points a month costs\"".to_string(),
            price::FIXED_MONTH,
        ),
    ]
    .into_iter()
    .map(|mut l| {
        if l.item.starts_with("ElastiCache") {
            l.item = format!("ElastiCache head ({nodes} nodes)");
        }
        l
    })
    .collect()
}

/// Timestream for LiveAnalytics for `w`, with `memory_hours` in the memory store: each agent
/// post is one batched write (8-byte time, the host dimension counted once at ~20 bytes, and
/// per measure a ~20-byte name and an 8-byte double, rounded up to 1 KiB units — the cheapest
/// the peer bills this shape); storage per point = 8 B time + 20 B host dimension + 20 B measure name + 8 B
/// value = 56 B; 30 days in the magnetic store; queries (TCU-hours) not counted, as carat's
/// reads are not. Mackerel agents cannot post to Timestream: the same HTTP front as carat's
/// ([`api_front`]) turns their posts into WriteRecords calls.
#[must_use]
pub fn timestream_bill(w: &Workload, memory_hours: f64) -> Vec<Line> {
    let points = w.points_per_month();
    let posts = w.posts_per_month();
    let point_bytes = 56.0;
    let post_units = ((8.0 + 20.0 + w.series_per_host * 28.0) / 1024.0).ceil();
    let per_hour_gb = w.series * 60.0 * point_bytes / 1e9;
    let memory_gb = per_hour_gb * memory_hours;
    let magnetic_gb = points * point_bytes / 1e9 * (w.raw_days / 30.0);
    vec![
        api_front(posts),
        line(
            "Timestream writes",
            format!(
                "{:.1} M agent posts × {post_units:.0} KiB write units × $0.50/M",
                posts / 1e6
            ),
            posts * post_units / 1e6 * price::TIMESTREAM_WRITES_PER_MILLION,
        ),
        line(
            "Timestream memory store",
            format!("{memory_gb:.2} GB ({memory_hours:.0} h of points at 56 B) × 730 h × $0.036"),
            memory_gb * HOURS * price::TIMESTREAM_MEMORY_GB_HOUR,
        ),
        line(
            "Timestream magnetic store",
            format!("{magnetic_gb:.0} GB (30 days at 56 B/point) × $0.03"),
            magnetic_gb * price::TIMESTREAM_MAGNETIC_GB_MONTH,
        ),
    ]
}

#[must_use]
pub fn total(lines: &[Line]) -> f64 {
    lines.iter().map(|l| l.dollars).sum()
}

fn table(out: &mut String, lines: &[Line]) {
    out.push_str("| item | formula | $/month |\n|---|---|---:|\n");
    for l in lines {
        let _ = writeln!(out, "| {} | {} | {:.2} |", l.item, l.formula, l.dollars);
    }
    let _ = writeln!(out, "| **total** | | **{:.2}** |", total(lines));
}

/// The doc section: the bill, the peer, the window table.
#[must_use]
pub fn render(f: &Figures) -> String {
    let w = REFERENCE;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Generated by `make bench` (`carat-bench cost docs/cost-figures`) from the figures the benchmarks measured ({}). Reference workload: {:.0} series × 1 point a minute ({:.2} billion points a month), agent posts of {:.0} series per host, {:.0}-day windows, {:.0} days raw in DynamoDB; us-east-1 list prices, on-demand.\n",
        f.measured,
        w.series,
        w.points_per_month() / 1e9,
        w.series_per_host,
        w.window_secs / 86_400.0,
        w.raw_days
    );
    let carat = carat_bill(f, &w);
    table(&mut out, &carat);
    let ts1 = timestream_bill(&w, 1.0);
    let ts24 = timestream_bill(&w, 24.0);
    let _ = writeln!(
        out,
        "\nAmazon Timestream for LiveAnalytics, same workload, behind the same HTTP front (the agents cannot post to it directly); the memory store at its 1-hour minimum, and at 24 hours — the recent day carat's head serves:\n"
    );
    table(&mut out, &ts1);
    let _ = writeln!(
        out,
        "\nWith 24 hours in the memory store: **{:.2}**. carat ÷ Timestream: **{:.0} %** (1 h memory store), **{:.0} %** (24 h).\n",
        total(&ts24),
        100.0 * total(&carat) / total(&ts1),
        100.0 * total(&carat) / total(&ts24)
    );
    let mut big: Vec<&Line> = carat.iter().collect();
    big.sort_by(|a, b| b.dollars.total_cmp(&a.dollars));
    let shares: Vec<String> = big
        .iter()
        .take(3)
        .map(|l| format!("{} {:.0} %", l.item, 100.0 * l.dollars / total(&carat)))
        .collect();
    let _ = writeln!(
        out,
        "carat's largest lines: {}. The write path itself (Kinesis, writer, DynamoDB, S3) is the rest.\n",
        shares.join(", ")
    );
    out.push_str("Window length trades cache memory against DynamoDB writes (same figures; write units scaled by items per point and their 1 KiB units):\n\n| window | head GB | cache | DynamoDB WU per million points | DynamoDB writes $ | cache $ | total $ | ÷ Timestream (1 h) |\n|---|---:|---|---:|---:|---:|---:|---:|\n");
    for (label, secs) in [("1 h", 3_600.0), ("6 h", 21_600.0), ("1 d", 86_400.0)] {
        let wl = Workload {
            window_secs: secs,
            ..REFERENCE
        };
        let bill = carat_bill(f, &wl);
        let head = wl.series * wl.points_per_window() * f.head_bytes_per_point;
        let (node, shards, _, cache) = cache_cluster(head);
        let writes = bill
            .iter()
            .find(|l| l.item == "DynamoDB writes")
            .map_or(0.0, |l| l.dollars);
        let _ = writeln!(
            out,
            "| {label} | {:.2} | {shards} × 2 {node} | {:.0} | {writes:.2} | {cache:.2} | {:.2} | {:.0} % |",
            head / 1e9,
            write_units_per_million(f, &wl),
            total(&bill),
            100.0 * total(&bill) / total(&ts1)
        );
    }
    out
}

/// Markers of the generated section in docs/deploy.md.
pub const BEGIN: &str = "<!-- cost-model:begin (generated by `carat-bench cost`; do not edit) -->";
pub const END: &str = "<!-- cost-model:end -->";

/// `doc` with the text between [`BEGIN`] and [`END`] replaced by `section`.
///
/// # Errors
/// The markers are missing or out of order.
pub fn splice(doc: &str, section: &str) -> Result<String, String> {
    let b = doc.find(BEGIN).ok_or("the begin marker is missing")?;
    let e = doc.find(END).ok_or("the end marker is missing")?;
    if e < b {
        return Err("the end marker comes before the begin marker".into());
    }
    Ok(format!("{}{BEGIN}\n{section}{}", &doc[..b], &doc[e..]))
}

/// `carat-bench cost DIR [--write DOC]`: prints the section; with `--write`, splices it into DOC.
///
/// # Errors
/// As [`Figures::load`] and [`splice`], and I/O on DOC.
pub fn run(dir: &Path, write: Option<&Path>) -> Result<(), String> {
    let f = Figures::load(dir)?;
    let section = render(&f);
    print!("{section}");
    if let Some(doc) = write {
        let text = std::fs::read_to_string(doc).map_err(|e| format!("{}: {e}", doc.display()))?;
        let new = splice(&text, &section).map_err(|e| format!("{}: {e}", doc.display()))?;
        std::fs::write(doc, new).map_err(|e| format!("{}: {e}", doc.display()))?;
        eprintln!("wrote the cost section of {}", doc.display());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn figures() -> Figures {
        Figures {
            head_bytes_per_point: 26.0,
            dynamodb_write_units_per_million_points: 1706.0,
            dynamodb_read_units_per_million_points: 694.0,
            dynamodb_item_bytes_full_day: 2300.0,
            writer_points_per_cpu_second: 1.28e6,
            kinesis_bytes_per_point: 12.26,
            kinesis_records_per_point: 0.06,
            measured: "test".into(),
        }
    }

    #[test]
    fn cache_cluster_is_the_cheapest_that_fits() {
        // 0.3 GB fits one shard of t4g.micro (0.5 GiB × 70 % = 0.376 GB).
        assert_eq!(cache_cluster(0.3e9).0, "cache.t4g.micro");
        assert_eq!(cache_cluster(0.3e9).2, 2);
        // 3.7 GB: 4 shards of t4g.small (4 × 1.37 GiB × 70 % = 4.12 GB, 8 nodes: $149.50)
        // beat 2 of t4g.medium ($151.84) and one r7g.large ($255.79).
        let (node, shards, nodes, cost) = cache_cluster(3.7e9);
        assert_eq!((node, shards, nodes), ("cache.t4g.small", 4, 8));
        assert!((cost - 8.0 * 0.0256 * 730.0).abs() < 1e-9);
    }

    #[test]
    fn full_day_write_units_are_the_measured_figure() {
        let f = figures();
        assert!((write_units_per_million(&f, &REFERENCE) - 1706.0).abs() < 1e-6);
        // Shorter windows: more, smaller items.
        let hour = Workload {
            window_secs: 3600.0,
            ..REFERENCE
        };
        assert!(write_units_per_million(&f, &hour) > 10_000.0);
    }

    #[test]
    fn the_bill_moves_with_each_measured_figure() {
        let f = figures();
        let base = total(&carat_bill(&f, &REFERENCE));
        let mut g = f.clone();
        g.head_bytes_per_point = 13.0;
        assert!(
            total(&carat_bill(&g, &REFERENCE)) < base,
            "a denser head needs fewer cache nodes"
        );
        let mut g = f.clone();
        g.dynamodb_write_units_per_million_points *= 2.0;
        assert!(total(&carat_bill(&g, &REFERENCE)) > base);
        let mut g = f.clone();
        g.writer_points_per_cpu_second /= 10.0;
        assert!(total(&carat_bill(&g, &REFERENCE)) > base);
        let mut g = f;
        g.kinesis_records_per_point = 2.0; // 3,333 records/s: 4 shards
        assert!(total(&carat_bill(&g, &REFERENCE)) > base + 50.0);
    }

    #[test]
    fn timestream_lines() {
        let t = timestream_bill(&REFERENCE, 1.0);
        // 1,000 hosts × 43,800 posts = 43.8 M writes of 100 measures (2,828 B: 3 KiB units) × $0.50/M.
        assert_eq!(t[0].item, api_front(1.0).item);
        assert!((t[1].dollars - 1_000.0 * 43_800.0 * 3.0 / 1e6 * 0.5).abs() < 1e-6);
        assert!(total(&timestream_bill(&REFERENCE, 24.0)) > total(&t));
    }

    #[test]
    fn splice_replaces_only_the_section() {
        let doc = format!("a\n{BEGIN}\nold\n{END}\nb\n");
        assert_eq!(
            splice(&doc, "new\n").unwrap(),
            format!("a\n{BEGIN}\nnew\n{END}\nb\n")
        );
        assert!(splice("no markers", "x").is_err());
    }

    /// docs/deploy.md's section is what the committed figures give: the bill in the doc is
    /// computed, never typed in.
    #[test]
    fn the_doc_section_is_generated_from_the_committed_figures() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let f = Figures::load(&root.join("docs/cost-figures")).unwrap();
        let doc = std::fs::read_to_string(root.join("docs/deploy.md")).unwrap();
        let want = splice(&doc, &render(&f)).unwrap();
        assert!(
            doc == want,
            "docs/deploy.md's cost section is stale: run `cargo run -p carat-bench -- cost docs/cost-figures --write docs/deploy.md`"
        );
    }
}
