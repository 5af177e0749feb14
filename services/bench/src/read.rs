//! `carat-bench read [DATA_DIR]`: the reader's CPU work per point — decode the stored
//! chunk (v2, stamped) of each series-day and merge it with a head copy of the same
//! window (the last tenth of its points again, with newer stamps: an open window the
//! writer has not flushed in full) — beside Gorilla's decode alone, in the same run.
//!
//! The figure is merged points out per second of one core.

use std::error::Error;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use carat_core::head::{latest_per_time, Stamped};
use carat_core::{chunk, Point};

use crate::data;
use crate::peers::{Codec, Gorilla};

const MIN_TIMING: Duration = Duration::from_millis(800);

/// Points out per second of `f`, which produces `items` points per call.
fn rate(items: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut reps = 0usize;
    while reps == 0 || start.elapsed() < MIN_TIMING {
        f();
        reps += 1;
    }
    (items * reps) as f64 / start.elapsed().as_secs_f64()
}

fn stamped(points: &[Point], stamps: &[i64]) -> Vec<Stamped> {
    points
        .iter()
        .zip(stamps)
        .map(|(p, &stamp)| Stamped {
            time: p.time,
            value_bits: p.value.to_bits(),
            stamp,
        })
        .collect()
}

/// Runs the read benchmark on the CSVs of `dir` and prints a markdown table.
///
/// # Errors
/// Missing data, or a chunk that does not decode.
pub fn run(dir: &Path) -> Result<(), Box<dyn Error>> {
    let files = data::load(dir)?;
    let chunks: Vec<Vec<Point>> = files.iter().flat_map(|s| s.chunks.clone()).collect();
    let points: usize = chunks.iter().map(Vec::len).sum();
    // Stored: one stamped chunk per series-day, stamps = time + 30 s (one post a minute).
    let stored: Vec<Vec<u8>> = chunks
        .iter()
        .map(|c| {
            let stamps: Vec<i64> = c.iter().map(|p| p.time + 30).collect();
            chunk::encode_stamped(c, &stamps)
        })
        .collect();
    // Head: the last tenth of each window again, written later.
    let heads: Vec<Vec<Stamped>> = chunks
        .iter()
        .map(|c| {
            let tail = &c[c.len() - c.len() / 10..];
            let stamps: Vec<i64> = tail.iter().map(|p| p.time + 90).collect();
            stamped(tail, &stamps)
        })
        .collect();
    let mut merged_points = 0usize;
    for (s, h) in stored.iter().zip(&heads) {
        let (pts, stamps) = chunk::decode_stamped(s)?;
        let stamps = stamps.ok_or("stamped chunk without stamps")?;
        let mut all = stamped(&pts, &stamps);
        all.extend_from_slice(h);
        merged_points += latest_per_time(all).len();
    }
    // The data has a few repeated times within a day (its README): one point each.
    let distinct: usize = chunks
        .iter()
        .map(|c| {
            c.iter()
                .map(|p| p.time)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        })
        .sum();
    if merged_points != distinct {
        return Err(
            format!("merge gave {merged_points} points, {distinct} distinct times stored").into(),
        );
    }
    let decode_only = rate(points, || {
        for s in &stored {
            black_box(chunk::decode_stamped(black_box(s)).ok());
        }
    });
    let decode_merge = rate(points, || {
        for (s, h) in stored.iter().zip(&heads) {
            if let Ok((pts, Some(stamps))) = chunk::decode_stamped(black_box(s)) {
                let mut all = stamped(&pts, &stamps);
                all.extend_from_slice(h);
                black_box(latest_per_time(all));
            }
        }
    });
    let gorilla: Vec<Vec<Vec<u8>>> = chunks.iter().map(|c| Gorilla.encode(c)).collect();
    let gorilla_decode = rate(points, || {
        for g in &gorilla {
            black_box(Gorilla.decode(black_box(g)).ok());
        }
    });
    println!(
        "## Read: decode + merge, one core ({points} points, {} series-days)\n",
        chunks.len()
    );
    println!("| step | M points/s | × Gorilla decode |");
    println!("|---|---|---|");
    for (name, pps) in [
        ("carat chunk v2 decode (stamped)", decode_only),
        (
            "carat decode + merge with a head copy (10 % overlap)",
            decode_merge,
        ),
        ("Gorilla (tsz) decode, no stamps, no merge", gorilla_decode),
    ] {
        println!(
            "| {name} | {:.1} | {:.2} |",
            pps / 1e6,
            pps / gorilla_decode
        );
    }
    println!("\ntarget (DESIGN.md §6): ≥ 50 M points/s decode + merge");
    Ok(())
}
