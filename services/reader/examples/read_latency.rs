//! Read latency per tier on the local system: a 1-day raw query of one series served
//! by the Redis head, the same from DynamoDB, and a 30-day query from DynamoDB, each
//! repeated and reported as p50/p99, and a 1-day query from the S3 archive, with the DynamoDB read units the query costs
//! (computed from item sizes as DynamoDB bills a Query: the total rounded up to 4 KB,
//! half a unit per 4 KB eventually consistent; moto does not report consumed capacity).
//!
//! Needs the Redis cluster and the AWS stand-in (`make local-up`):
//! `cargo run --release -p carat-reader --example read_latency [REPS]`.

use std::sync::Arc;
use std::time::Instant;

use carat_core::head::{self, Stamped};
use carat_core::{window, Point, SeriesKey, SeriesName, Tenant};
use carat_reader::Tiers;
use carat_store::dynamo::item_size;
use carat_store::ports::{HeadAppend, WindowRef};
use carat_writer::flush::window_items;

const DAY: i64 = 86_400;

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A day of one point a minute with CloudWatch-like values.
fn day(start: i64) -> Vec<Point> {
    (0..1_440)
        .map(|i| Point::new(start + i * 60, ((i * 37) % 1_000) as f64 / 10.0))
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let reps: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200);
    let cfg = Arc::new(carat_store::env::config_from(|n| std::env::var(n).ok())?);
    let clients = carat_store::connect(&cfg).await?;
    let tiers = Tiers {
        config: Arc::clone(&cfg),
        head: clients.head.clone(),
        table: clients.table.clone(),
        archive: carat_reader::archive_tier(clients.archive.clone(), &cfg),
    };
    let now = chrono::Utc::now().timestamp();
    let today = window::start(cfg.window.raw_secs, now);
    let run = format!("bench{}", now % 1_000_000);
    let tenant = Tenant::parse(&run)?;
    let key = |name: &str| {
        SeriesKey::new(
            tenant.clone(),
            SeriesName::parse(name, "name").expect("a valid name"),
        )
    };

    // Head: today's window of series A (1,440 points, one block each, as the writer
    // appends a live agent's minutely posts).
    let a = key("host.bench.head");
    let bucket = a.bucket(cfg.record.buckets);
    let window = WindowRef {
        bucket,
        key: a.clone(),
        start: today,
    };
    let appends: Vec<HeadAppend> = day(today)
        .into_iter()
        .map(|p| HeadAppend {
            window: window.clone(),
            block: head::encode_block(today, &[Stamped::new(p, (p.time + 30) * 1000)]),
            flush_due: now + DAY,
            expire_at: now + 3_600,
        })
        .collect();
    tiers.head.append(bucket, &appends).await?;

    // Table: yesterday's window of series B, and 30 windows of series C.
    let stamped = |pts: Vec<Point>| -> Vec<Stamped> {
        pts.iter()
            .map(|p| Stamped {
                time: p.time,
                value_bits: p.value.to_bits(),
                stamp: p.time + 30,
            })
            .collect()
    };
    let b = key("host.bench.table");
    let items = window_items(&cfg, &b, today - DAY, &stamped(day(today - DAY)))?;
    let b_bytes: usize = items.iter().map(item_size).sum();
    tiers.table.put(&items).await?;
    let c = key("host.bench.month");
    let mut c_bytes = 0;
    for d in 1..=30 {
        let items = window_items(&cfg, &c, today - d * DAY, &stamped(day(today - d * DAY)))?;
        c_bytes += items.iter().map(item_size).sum::<usize>();
        tiers.table.put(&items).await?;
    }

    // Archive: a day 40 days ago of series D, as the archiver stages it after TTL
    // removed it, then compacted into its tenant-day object.
    let d = key("host.bench.archive");
    let old = today - 40 * DAY;
    let items = window_items(&cfg, &d, old, &stamped(day(old)))?;
    let records = items
        .iter()
        .enumerate()
        .map(|(i, item)| carat_archiver::image::ttl_removal_record(item, &format!("{}", i + 1)))
        .collect();
    let event = aws_lambda_events::event::dynamodb::Event { records };
    carat_archiver::Archiver::new(clients.archive.clone(), Arc::clone(&cfg))
        .with_emf(false)
        .handle(&event)
        .await?;
    carat_archiver::compact::compact_day(clients.archive.as_ref(), &tenant, old).await?;

    println!("## Read latency on the local system ({reps} queries each, one at a time)\n");
    println!("| query | points | p50 ms | p99 ms | DynamoDB read units |");
    println!("|---|---|---|---|---|");
    let ru = |bytes: usize| (bytes.div_ceil(4_096) as f64) * 0.5;
    for (label, k, from, to, units) in [
        (
            "1 day raw, from the Redis head",
            &a,
            today,
            today + DAY - 1,
            0.0,
        ),
        (
            "1 day raw, from DynamoDB",
            &b,
            today - DAY,
            today - 1,
            ru(b_bytes),
        ),
        (
            "30 days raw, from DynamoDB",
            &c,
            today - 30 * DAY,
            today - 1,
            ru(c_bytes),
        ),
        (
            "1 day raw, from the S3 archive (compacted day object)",
            &d,
            old,
            old + DAY - 1,
            0.0,
        ),
    ] {
        let mut ms = Vec::with_capacity(reps);
        let mut n = 0;
        for _ in 0..reps {
            let t = Instant::now();
            n = tiers.raw(k, from, to, now).await?.len();
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "| {label} | {n} | {:.2} | {:.2} | {units} |",
            pct(&ms, 0.5),
            pct(&ms, 0.99)
        );
    }
    Ok(())
}
