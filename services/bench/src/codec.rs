//! The chunk codec benchmark: carat beside Gorilla and pco on the same chunks.

use std::error::Error;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use carat_core::Point;

use crate::data::{self, Series};
use crate::peers::{Carat, Codec, Gorilla, Pco};

/// Each timing repeats its work until at least this long has passed: long enough to
/// smooth the scheduler noise of a shared machine, short enough for 17 files × 3 codecs.
const MIN_TIMING: Duration = Duration::from_millis(150);

/// Sizes and speeds of one codec on one set of chunks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measure {
    pub points: usize,
    pub bytes: usize,
    /// Bytes of the time column alone, where the codec has separate columns.
    pub encode_pps: f64,
    pub decode_pps: f64,
}

impl Measure {
    #[must_use]
    pub fn bytes_per_point(&self) -> f64 {
        self.bytes as f64 / self.points.max(1) as f64
    }
}

fn same(a: &[Point], b: &[Point]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(p, q)| p.same_bits(q))
}

/// Repeats `f` until [`MIN_TIMING`] has passed; returns work items per second.
fn rate(items: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut reps = 0usize;
    while reps == 0 || start.elapsed() < MIN_TIMING {
        f();
        reps += 1;
    }
    (items * reps) as f64 / start.elapsed().as_secs_f64()
}

/// Encodes, checks and times `codec` on `chunks`.
///
/// # Errors
/// If any chunk does not decode bit-exact: the benchmark refuses lossy numbers.
pub fn measure(codec: &dyn Codec, label: &str, chunks: &[Vec<Point>]) -> Result<Measure, String> {
    let encoded: Vec<Vec<Vec<u8>>> = chunks.iter().map(|c| codec.encode(c)).collect();
    for (i, (c, e)) in chunks.iter().zip(&encoded).enumerate() {
        let back = codec
            .decode(e)
            .map_err(|err| format!("{}: {label} chunk {i} does not decode: {err}", codec.name()))?;
        if !same(c, &back) {
            return Err(format!(
                "{}: {label} chunk {i} is not lossless ({} points in, {} out)",
                codec.name(),
                c.len(),
                back.len()
            ));
        }
    }
    let points: usize = chunks.iter().map(Vec::len).sum();
    let bytes = encoded.iter().flatten().map(Vec::len).sum();
    let encode_pps = rate(points, || {
        for c in chunks {
            black_box(codec.encode(black_box(c)));
        }
    });
    let decode_pps = rate(points, || {
        for e in &encoded {
            black_box(codec.decode(black_box(e)).ok());
        }
    });
    Ok(Measure {
        points,
        bytes,
        encode_pps,
        decode_pps,
    })
}

fn mps(pps: f64) -> String {
    format!("{:.1}", pps / 1e6)
}

/// Runs the codec benchmark on the CSVs of `dir` and prints markdown tables.
///
/// # Errors
/// Missing data, or a codec that is not lossless on it.
pub fn run(dir: &Path) -> Result<(), Box<dyn Error>> {
    let files = data::load(dir)?;
    let codecs: [&dyn Codec; 3] = [&Carat, &Gorilla, &Pco];
    let all: Vec<Vec<Point>> = files.iter().flat_map(|s| s.chunks.clone()).collect();
    let mut rows: Vec<(&Series, Vec<Measure>)> = Vec::new();
    for s in &files {
        let m = codecs
            .iter()
            .map(|c| measure(*c, &s.name, &s.chunks))
            .collect::<Result<Vec<_>, _>>()?;
        rows.push((s, m));
    }
    let overall = codecs
        .iter()
        .map(|c| measure(*c, "all", &all))
        .collect::<Result<Vec<_>, _>>()?;

    let mut out = String::new();
    let total_points: usize = files.iter().map(Series::points).sum();
    writeln!(
        out,
        "{} files, {total_points} points, {} chunks (one per series and UTC day). Every codec decoded every chunk bit-exact.\n",
        files.len(),
        all.len()
    )?;
    writeln!(out, "### Size (bytes/point; lower is better)\n")?;
    writeln!(
        out,
        "| file | points | chunks | carat | Gorilla (tsz) | pco | carat/Gorilla | carat/pco |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
    let size_row = |out: &mut String, name: &str, chunks: usize, m: &[Measure]| {
        let (c, g, p) = (
            m[0].bytes_per_point(),
            m[1].bytes_per_point(),
            m[2].bytes_per_point(),
        );
        writeln!(
            out,
            "| {name} | {} | {chunks} | {c:.3} | {g:.3} | {p:.3} | {:.2} | {:.2} |",
            m[0].points,
            c / g,
            c / p
        )
    };
    for (s, m) in &rows {
        size_row(&mut out, &s.name, s.chunks.len(), m)?;
    }
    size_row(&mut out, "**overall**", all.len(), &overall)?;

    // Where carat's bytes go: the same chunks with every value 0.0 cost the time column
    // (plus a few bytes of value header per chunk).
    let zeroed: Vec<Vec<Point>> = all
        .iter()
        .map(|c| c.iter().map(|p| Point::new(p.time, 0.0)).collect())
        .collect();
    let carat_times: usize = zeroed
        .iter()
        .map(|c| carat_core::chunk::encode(c).len())
        .sum();
    let pco_times: usize = all.iter().map(|c| Pco.encode(c)[0].len()).sum();
    let tp = total_points as f64;
    writeln!(
        out,
        "\nTime column: carat ≈ {:.3} B/point (chunks with values zeroed), pco {:.3} B/point; \
         value column: carat ≈ {:.3}, pco {:.3}.\n",
        carat_times as f64 / tp,
        pco_times as f64 / tp,
        (overall[0].bytes - carat_times) as f64 / tp,
        (overall[2].bytes - pco_times) as f64 / tp,
    )?;

    writeln!(out, "### Speed (million points/s, one thread)\n")?;
    writeln!(
        out,
        "| file | carat enc | carat dec | Gorilla enc | Gorilla dec | pco enc | pco dec |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|")?;
    let speed_row = |out: &mut String, name: &str, m: &[Measure]| {
        writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} |",
            mps(m[0].encode_pps),
            mps(m[0].decode_pps),
            mps(m[1].encode_pps),
            mps(m[1].decode_pps),
            mps(m[2].encode_pps),
            mps(m[2].decode_pps)
        )
    };
    for (s, m) in &rows {
        speed_row(&mut out, &s.name, m)?;
    }
    speed_row(&mut out, "**overall**", &overall)?;
    writeln!(
        out,
        "\nRatios carat/peer, overall: size {:.2} × Gorilla, {:.2} × pco; encode speed {:.2} × Gorilla, {:.2} × pco; decode speed {:.2} × Gorilla, {:.2} × pco.",
        overall[0].bytes_per_point() / overall[1].bytes_per_point(),
        overall[0].bytes_per_point() / overall[2].bytes_per_point(),
        overall[0].encode_pps / overall[1].encode_pps,
        overall[0].encode_pps / overall[2].encode_pps,
        overall[0].decode_pps / overall[1].decode_pps,
        overall[0].decode_pps / overall[2].decode_pps,
    )?;
    print!("{out}");
    println!();
    print!("{}", crate::post::report()?);
    Ok(())
}
