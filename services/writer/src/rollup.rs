//! Rollups of one raw window: count, sum, min and max per 1 h and 1 d bucket.
//!
//! Not a DynamoDB item any more: a separate item costs at least one write unit per
//! series-day however small it is, and the rollups are a pure function of the raw
//! points, which DynamoDB holds for `retention.raw_secs`. While the raw item lives the
//! reader computes them from it (5-minute and 10-minute reads too, which never need
//! more than 10 days); when it expires the archiver writes them to S3 beside the raw
//! chunk, for the long ranges (docs/write-path.md). The body format below is what the
//! archive stores; it lists its resolutions, so it did not change when 5 m went.
//!
//! A bucket longer than the raw window (or not aligned with it) is split across the
//! items of the windows it overlaps: each item holds the aggregate of *its* window's
//! points in that bucket, and the reader combines the partials of one bucket
//! (counts and sums add, min of mins, max of maxes). Computed from the merged points
//! of the whole window, so a re-flush writes the same bytes.
//!
//! Body format v1 (all integers little-endian):
//!
//! ```text
//! u8   version (1)
//! u8   number of resolutions R (3)
//! R ×  u32  resolution, seconds
//!      u32  non-empty buckets N
//!      if N > 0: 4 × (u32 length L, L bytes of a chunk v1 of N points)
//!          the columns count, sum, min, max, each point = (bucket start, value)
//! ```
//!
//! Reusing the chunk format for the columns gives delta-of-delta bucket starts (regular,
//! so almost free) and decimal-aware values without a second codec.

use std::collections::BTreeMap;

use carat_core::{chunk, window, ChunkError, Point};
use thiserror::Error;

/// Format version of the rollup body.
pub const VERSION: u8 = 1;

/// Bucket lengths of the rollups, seconds: 1 h, 1 d.
pub const RESOLUTIONS: [i64; 2] = [3_600, 86_400];

/// The aggregate of the points of one bucket (within one raw window).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aggregate {
    pub start: i64,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

/// The non-empty buckets of one resolution, ascending.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollup {
    pub resolution: i64,
    pub buckets: Vec<Aggregate>,
}

#[derive(Debug, Error)]
pub enum RollupError {
    #[error("rollup body is empty")]
    Empty,
    #[error("rollup format version {0} is not supported (this build reads version 1)")]
    UnsupportedVersion(u8),
    #[error("rollup body is truncated at byte {offset}: {what}")]
    Truncated { offset: usize, what: &'static str },
    #[error("rollup body is corrupt: {0}")]
    Corrupt(String),
    #[error("rollup column {column}: {source}")]
    Chunk {
        column: &'static str,
        source: ChunkError,
    },
}

/// The rollups of `points` (any order; the merge gives them sorted) at [`RESOLUTIONS`].
#[must_use]
pub fn compute(points: &[Point]) -> Vec<Rollup> {
    compute_at(points, &RESOLUTIONS)
}

/// The rollups of `points` at the given bucket lengths (seconds, each positive).
#[must_use]
pub fn compute_at(points: &[Point], resolutions: &[i64]) -> Vec<Rollup> {
    resolutions
        .iter()
        .map(|&resolution| {
            let mut buckets: BTreeMap<i64, Aggregate> = BTreeMap::new();
            for p in points {
                let start = window::start(resolution, p.time);
                buckets
                    .entry(start)
                    .and_modify(|a| {
                        a.count += 1;
                        a.sum += p.value;
                        a.min = a.min.min(p.value);
                        a.max = a.max.max(p.value);
                    })
                    .or_insert(Aggregate {
                        start,
                        count: 1,
                        sum: p.value,
                        min: p.value,
                        max: p.value,
                    });
            }
            Rollup {
                resolution,
                buckets: buckets.into_values().collect(),
            }
        })
        .collect()
}

const COLUMNS: [&str; 4] = ["count", "sum", "min", "max"];

/// Encodes rollups as body format v1.
#[must_use]
pub fn encode(rollups: &[Rollup]) -> Vec<u8> {
    let mut out = vec![VERSION, u8::try_from(rollups.len()).unwrap_or(u8::MAX)];
    for r in rollups.iter().take(usize::from(u8::MAX)) {
        out.extend_from_slice(&u32::try_from(r.resolution).unwrap_or(0).to_le_bytes());
        let n = u32::try_from(r.buckets.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&n.to_le_bytes());
        if r.buckets.is_empty() {
            continue;
        }
        #[allow(clippy::cast_precision_loss)] // counts stay far below 2^53
        let columns: [Vec<Point>; 4] = [
            r.buckets
                .iter()
                .map(|a| Point::new(a.start, a.count as f64))
                .collect(),
            r.buckets
                .iter()
                .map(|a| Point::new(a.start, a.sum))
                .collect(),
            r.buckets
                .iter()
                .map(|a| Point::new(a.start, a.min))
                .collect(),
            r.buckets
                .iter()
                .map(|a| Point::new(a.start, a.max))
                .collect(),
        ];
        for c in &columns {
            let bytes = chunk::encode(c);
            out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
    }
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], RollupError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(RollupError::Truncated {
                offset: self.pos,
                what,
            });
        };
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, RollupError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes(
            b.try_into().expect("take(4) gives 4 bytes"),
        ))
    }
}

/// Decodes a body of format v1. Never panics, whatever the bytes.
///
/// # Errors
/// A [`RollupError`] for empty, truncated, corrupt or unknown-version input.
pub fn decode(bytes: &[u8]) -> Result<Vec<Rollup>, RollupError> {
    let mut r = Reader { bytes, pos: 0 };
    let head = r.take(2, "header").map_err(|_| {
        if bytes.is_empty() {
            RollupError::Empty
        } else {
            RollupError::Truncated {
                offset: 0,
                what: "header",
            }
        }
    })?;
    if head[0] != VERSION {
        return Err(RollupError::UnsupportedVersion(head[0]));
    }
    let mut out = Vec::with_capacity(usize::from(head[1]));
    for _ in 0..head[1] {
        let resolution = i64::from(r.u32("resolution")?);
        let n = usize::try_from(r.u32("bucket count")?)
            .map_err(|e| RollupError::Corrupt(e.to_string()))?;
        if n == 0 {
            out.push(Rollup {
                resolution,
                buckets: Vec::new(),
            });
            continue;
        }
        let mut cols: Vec<Vec<Point>> = Vec::with_capacity(4);
        for column in COLUMNS {
            let len = usize::try_from(r.u32("column length")?)
                .map_err(|e| RollupError::Corrupt(e.to_string()))?;
            let body = r.take(len, "column")?;
            let points =
                chunk::decode(body).map_err(|source| RollupError::Chunk { column, source })?;
            if points.len() != n {
                return Err(RollupError::Corrupt(format!(
                    "column {column} of resolution {resolution} has {} points, expected {n}",
                    points.len()
                )));
            }
            cols.push(points);
        }
        let mut buckets = Vec::with_capacity(n);
        for i in 0..n {
            let start = cols[0][i].time;
            if cols.iter().any(|c| c[i].time != start) {
                return Err(RollupError::Corrupt(format!(
                    "bucket {i} of resolution {resolution}: columns disagree on its start"
                )));
            }
            let count = cols[0][i].value;
            if !(count >= 1.0 && count.fract() == 0.0 && count < 9.0e15) {
                return Err(RollupError::Corrupt(format!(
                    "bucket {i} of resolution {resolution}: count {count} is not a positive integer"
                )));
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // checked above
            buckets.push(Aggregate {
                start,
                count: count as u64,
                sum: cols[1][i].value,
                min: cols[2][i].value,
                max: cols[3][i].value,
            });
        }
        out.push(Rollup {
            resolution,
            buckets,
        });
    }
    if r.pos != bytes.len() {
        return Err(RollupError::Corrupt(format!(
            "{} trailing bytes",
            bytes.len() - r.pos
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day_of_minutes(day: i64) -> Vec<Point> {
        (0..1440)
            .map(|i| {
                Point::new(
                    day * 86_400 + i * 60,
                    f64::from(i32::try_from(i % 97).unwrap()) * 0.25,
                )
            })
            .collect()
    }

    #[test]
    fn aggregates_per_bucket() {
        let pts = [
            Point::new(600, 1.0),
            Point::new(660, 3.0),
            Point::new(900, -2.0),
            Point::new(3_600, 10.0),
        ];
        let r = compute_at(&pts, &[300, 3_600, 86_400]);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].resolution, 300);
        assert_eq!(
            r[0].buckets,
            vec![
                Aggregate {
                    start: 600,
                    count: 2,
                    sum: 4.0,
                    min: 1.0,
                    max: 3.0
                },
                Aggregate {
                    start: 900,
                    count: 1,
                    sum: -2.0,
                    min: -2.0,
                    max: -2.0
                },
                Aggregate {
                    start: 3_600,
                    count: 1,
                    sum: 10.0,
                    min: 10.0,
                    max: 10.0
                },
            ]
        );
        assert_eq!(r[1].buckets.len(), 2);
        assert_eq!(
            r[2].buckets,
            vec![Aggregate {
                start: 0,
                count: 4,
                sum: 12.0,
                min: -2.0,
                max: 10.0
            }]
        );
    }

    #[test]
    fn round_trip_and_empty() {
        let r = compute(&day_of_minutes(19_000));
        assert_eq!(decode(&encode(&r)).unwrap(), r);
        let empty = compute(&[]);
        assert_eq!(decode(&encode(&empty)).unwrap(), empty);
        assert!(matches!(decode(&[]), Err(RollupError::Empty)));
        assert!(matches!(
            decode(&[9, 0]),
            Err(RollupError::UnsupportedVersion(9))
        ));
        let bytes = encode(&r);
        for cut in [1, 5, 11, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn rollup_bytes_are_frozen() {
        let pts = [
            Point::new(86_400, 12.5),
            Point::new(86_460, 13.0),
            Point::new(86_700, 0.1),
            Point::new(90_000, -4.0),
        ];
        // Three resolutions as the format was frozen with; the body lists its own.
        let bytes = encode(&compute_at(&pts, &[300, 3_600, 86_400]));
        insta::assert_snapshot!(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
    }
}
