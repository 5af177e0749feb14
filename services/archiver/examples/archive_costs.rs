//! What the archive costs on the shared NAB CloudWatch data: S3 requests per archived
//! item, GETs per series-day read and per 400-day 1 d query, bytes per point after
//! compaction beside DynamoDB's chunk bytes per point.
//!
//! `cargo run --release -p carat-archiver --example archive_costs -- [DATA_DIR] [HOSTS] [BATCH]`
//!
//! Every CSV file is one metric; it is stored for `HOSTS` hosts (`host.h<i>.<file>`,
//! default 100), so a day holds as many items as a fleet of that size, and the items
//! expire in day order, as TTL deletes them, in stream batches of `BATCH` records
//! (default 1000; the ESM's BatchSize for DynamoDB streams goes up to 10,000). The
//! archive is the in-memory fake, which counts calls per operation.

use std::sync::Arc;

use carat_archiver::compact;
use carat_archiver::image::ttl_removal_record;
use carat_archiver::keys::{day_of, month_of, DAY};
use carat_archiver::{ArchiveReader, Archiver};
use carat_core::head::Stamped;
use carat_core::{Config, SeriesKey, SeriesName, Tenant};
use carat_store::fake::FakeArchive;
use carat_store::ports::WindowItem;

fn calls(a: &FakeArchive, ops: &[&str]) -> u64 {
    ops.iter().map(|op| a.faults().calls(op)).sum()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .first()
        .map_or_else(carat_bench::data::default_dir, std::path::PathBuf::from);
    let hosts: usize = args.get(1).map_or(Ok(100), |s| s.parse())?;
    let batch: usize = args.get(2).map_or(Ok(1000), |s| s.parse())?;
    let series = carat_bench::data::load(&dir)?;
    let cfg = Config::default();
    let tenant = Tenant::default_tenant();

    // The items DynamoDB holds: one per series-day, stamped as the writer stamps them.
    let mut items: Vec<(i64, WindowItem)> = Vec::new();
    let mut points = 0usize;
    let mut chunk_bytes = 0usize;
    let mut keys = Vec::new();
    for h in 0..hosts {
        for s in &series {
            let name = format!(
                "host.h{h}.{}",
                s.name
                    .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "-")
            );
            let key = SeriesKey::new(tenant.clone(), SeriesName::parse(&name, "name")?);
            for chunk in &s.chunks {
                let Some(first) = chunk.first() else { continue };
                let start = day_of(first.time);
                let stamped: Vec<Stamped> = chunk
                    .iter()
                    .map(|p| Stamped {
                        time: p.time,
                        value_bits: p.value.to_bits(),
                        stamp: p.time + 60,
                    })
                    .collect();
                let stamped = carat_core::head::latest_per_time(stamped);
                points += stamped.len();
                for item in carat_writer::flush::window_items(&cfg, &key, start, &stamped)? {
                    chunk_bytes += item.body.len();
                    items.push((start, item));
                }
            }
            keys.push(key);
        }
    }
    // TTL deletes in expiry order: day by day.
    items.sort_by(|a, b| (a.0, &a.1.pk).cmp(&(b.0, &b.1.pk)));
    let last_day = items.last().map_or(0, |(d, _)| *d);
    let archive = Arc::new(FakeArchive::new());
    let archiver = Archiver::new(Arc::clone(&archive) as _, Arc::new(cfg.clone())).with_emf(false);
    let mut seq = 0u64;
    for b in items.chunks(batch) {
        let records = b
            .iter()
            .map(|(_, item)| {
                seq += 1;
                ttl_removal_record(item, &format!("{seq:028}"))
            })
            .collect();
        let event = aws_lambda_events::event::dynamodb::Event { records };
        let r = archiver.archive_batch(&event).await?;
        assert!(r.first_failed.is_none());
    }
    let n_items = items.len() as f64;
    let stage_puts = calls(&archive, &["put", "put_if"]);

    // Everything due, far in the future: days, then months.
    let now = last_day + 400 * DAY;
    let before = calls(&archive, &["put", "put_if", "delete"]);
    let run = compact::run(
        archive.as_ref(),
        &{
            let mut c = cfg.clone();
            c.archiver.max_days_per_run = 100_000;
            c.archiver.max_months_per_run = 100_000;
            c
        },
        now,
    )
    .await?;
    let compaction_puts = calls(&archive, &["put", "put_if"]) - stage_puts;
    let compaction_deletes =
        calls(&archive, &["delete", "put", "put_if"]) - before - compaction_puts;
    let objects = archive.objects();
    let day_bytes: usize = objects
        .iter()
        .filter(|(k, _)| k.starts_with("day/"))
        .map(|(_, b)| b.len())
        .sum();
    let month_bytes: usize = objects
        .iter()
        .filter(|(k, _)| k.starts_with("month/"))
        .map(|(_, b)| b.len())
        .sum();

    // One series-day read by a fresh reader (nothing cached), then by a warm one.
    let get_ops = ["get", "get_range"];
    let list_ops = ["list"];
    let key = &keys[keys.len() / 2];
    let days: Vec<i64> = items
        .iter()
        .filter(|(_, i)| i.pk == key.table_pk("raw"))
        .map(|(d, _)| *d)
        .collect();
    let cold = ArchiveReader::new(Arc::clone(&archive) as _);
    let (g0, l0) = (calls(&archive, &get_ops), calls(&archive, &list_ops));
    let w = cold.raw(key, days[0], days[0] + DAY - 1).await?;
    assert_eq!(w.len(), 1);
    let (cold_gets, cold_lists) = (
        calls(&archive, &get_ops) - g0,
        calls(&archive, &list_ops) - l0,
    );
    // Every other series of that day through the now warm reader.
    let g1 = calls(&archive, &get_ops);
    for k in &keys {
        cold.raw(k, days[0], days[0] + DAY - 1).await?;
    }
    let warm_gets = (calls(&archive, &get_ops) - g1) as f64 / keys.len() as f64;

    // A 400-day query at 1 d ending at the last archived day, fresh reader.
    let fresh = ArchiveReader::new(Arc::clone(&archive) as _);
    let (g2, l2) = (calls(&archive, &get_ops), calls(&archive, &list_ops));
    let from = last_day - 399 * DAY;
    let daily = fresh.rollups(key, from, last_day + DAY - 1, 86_400).await?;
    let (q_gets, q_lists) = (
        calls(&archive, &get_ops) - g2,
        calls(&archive, &list_ops) - l2,
    );
    let months = {
        let mut m = std::collections::BTreeSet::new();
        for (d, _) in &items {
            m.insert(month_of(*d));
        }
        m.len()
    };

    println!("data: {} ({} files × {hosts} hosts = {} series, {points} points, {} items, {} days, {months} months)",
        dir.display(), series.len(), keys.len(), items.len(), days.len());
    println!("stream batches of {batch} records: {stage_puts} staged PUTs = {:.4} PUTs/item ({:.0} items/PUT)",
        stage_puts as f64 / n_items, n_items / stage_puts.max(1) as f64);
    println!("compaction: {} days, {} months, {compaction_puts} PUTs (day + month objects + due markers), {compaction_deletes} DeleteObjects calls",
        run.compacted_days, run.compacted_months);
    println!(
        "all S3 writes: {:.4} requests/item",
        (stage_puts + compaction_puts + compaction_deletes) as f64 / n_items
    );
    println!("bytes/point: DynamoDB chunks {:.3}, day objects {:.3} (index and item headers included); month objects {} bytes = {:.1} bytes/series-month",
        chunk_bytes as f64 / points as f64, day_bytes as f64 / points as f64, month_bytes,
        month_bytes as f64 / (keys.len() * months) as f64);
    println!("one series-day, cold reader: {cold_gets} GETs + {cold_lists} LISTs (the LISTs are per tenant, cached 30 s); warm reader: {warm_gets:.2} GETs per series-day");
    println!(
        "400-day query at 1 d, cold reader: {q_gets} GETs + {q_lists} LISTs, {} daily buckets",
        daily.len()
    );
    Ok(())
}
