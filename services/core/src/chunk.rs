//! Chunks: the points of one window of one series, as stored in DynamoDB and S3. Byte
//! layout and versioning rules: docs/formats.md.
//!
//! Version 1 is a time column and a value column; version 2 (what the writer stores)
//! adds a stamp column, each compressed on its own:
//! - [`times`]: delta-of-delta, as a line (regular steps), sparse exceptions (a few
//!   gaps) or a bit stream (jitter); any i64 in any order, with wrapping arithmetic.
//! - [`values`]: decimals in disguise as scaled integers `m / 10^e` (ALP-like) with
//!   ULP corrections for values off by binary noise, range-coded ([`rc`]: adaptive bit
//!   lengths, so a chunk of a few hundred points needs no stored tables); or an XOR
//!   (Gorilla) stream for values that are not decimals. The smaller wins.
//! - [`stamps`] (v2 only): the ingest stamp, in seconds, of each point's value, so a
//!   flush can merge newer head entries into a stored window (`crate::head::merge_stored`).
//! - [`bits`] and [`varint`]: the bit streams and varints both formats are built from.
//!
//! The encoder is deterministic: the same points always give the same bytes, which is
//! what makes a replayed flush write identical items.

mod bits;
mod rc;
mod stamps;
mod times;
pub(crate) mod values;
pub(crate) mod varint;

use crate::error::ChunkError;
use crate::point::Point;
use varint::{Cursor, VarintError};

/// Format version of a plain chunk (times and values), written first.
pub const VERSION: u8 = 1;

/// Format version of a stamped chunk (times, values and ingest stamps), written first:
/// what window items hold.
pub const VERSION_STAMPED: u8 = 2;

/// Most points one chunk may hold. The decoder refuses larger counts, so a corrupt
/// count cannot make it allocate more than 32 MiB. 2,097,152 is 24 days of one point
/// per second: far above one window (a day), even with early flushes.
pub const MAX_POINTS: usize = 1 << 21;

/// Encodes points (any times, any f64 values, in the given order) into a chunk.
///
/// Callers keep chunks within [`MAX_POINTS`] (one window holds at most one point per
/// second); a larger chunk would encode but not decode.
#[must_use]
pub fn encode(points: &[Point]) -> Vec<u8> {
    encode_columns(points, None)
}

/// Encodes points with the ingest stamp (epoch seconds) of each, `stamps[i]` for
/// `points[i]`, into a stamped chunk (version 2). Deterministic, like [`encode`].
///
/// # Panics
/// If the two slices differ in length (a caller bug).
#[must_use]
pub fn encode_stamped(points: &[Point], stamps: &[i64]) -> Vec<u8> {
    assert_eq!(points.len(), stamps.len(), "one stamp per point");
    encode_columns(points, Some(stamps))
}

/// Version byte, count, time and value columns, and the stamp column if `stamps`.
fn encode_columns(points: &[Point], stamps: Option<&[i64]>) -> Vec<u8> {
    debug_assert!(points.len() <= MAX_POINTS, "chunk over MAX_POINTS");
    let mut out = Vec::with_capacity(16 + points.len() * 2);
    out.push(if stamps.is_some() {
        VERSION_STAMPED
    } else {
        VERSION
    });
    varint::put_u64(&mut out, points.len() as u64);
    if points.is_empty() {
        return out;
    }
    let times: Vec<i64> = points.iter().map(|p| p.time).collect();
    times::encode(&times, &mut out);
    let bits: Vec<u64> = points.iter().map(|p| p.value.to_bits()).collect();
    values::encode(&bits, &mut out);
    if let Some(stamps) = stamps {
        stamps::encode(&times, stamps, &mut out);
    }
    out
}

/// Decodes a chunk of either version bit-exact, without its stamps. Never panics,
/// whatever the bytes.
///
/// # Errors
/// A typed [`ChunkError`] for empty, truncated, corrupt or unknown-version input.
pub fn decode(bytes: &[u8]) -> Result<Vec<Point>, ChunkError> {
    decode_stamped(bytes).map(|(points, _)| points)
}

/// Decodes a chunk of either version with its stamps: `None` for a version 1 chunk,
/// which has none. Never panics, whatever the bytes.
///
/// # Errors
/// As [`decode`].
pub fn decode_stamped(bytes: &[u8]) -> Result<(Vec<Point>, Option<Vec<i64>>), ChunkError> {
    let mut cur = Cursor::new(bytes);
    let version = cur.u8().ok_or(ChunkError::Empty)?;
    if version != VERSION && version != VERSION_STAMPED {
        return Err(ChunkError::UnsupportedVersion(version));
    }
    let stamped = version == VERSION_STAMPED;
    let n = read_len(&mut cur, MAX_POINTS, "point count")?;
    if n == 0 {
        return finish(&cur, Vec::new()).map(|p| (p, stamped.then(Vec::new)));
    }
    let times = times::decode(&mut cur, n)?;
    let values = values::decode(&mut cur, n)?;
    let stamps = if stamped {
        Some(stamps::decode(&mut cur, &times)?)
    } else {
        None
    };
    let points = times
        .into_iter()
        .zip(values)
        .map(|(t, v)| Point::new(t, f64::from_bits(v)))
        .collect();
    finish(&cur, points).map(|p| (p, stamps))
}

fn finish(cur: &Cursor<'_>, points: Vec<Point>) -> Result<Vec<Point>, ChunkError> {
    if cur.remaining() != 0 {
        return Err(corrupt(cur.pos(), "trailing bytes after the value column"));
    }
    Ok(points)
}

pub(crate) fn corrupt(offset: usize, what: impl Into<String>) -> ChunkError {
    ChunkError::Corrupt {
        offset,
        what: what.into(),
    }
}

fn varint_err(offset: usize, what: &'static str, e: VarintError) -> ChunkError {
    match e {
        VarintError::Truncated => ChunkError::Truncated { offset, what },
        VarintError::Overflow => corrupt(offset, format!("{what}: varint over 64 bits")),
    }
}

pub(crate) fn read_u8(cur: &mut Cursor<'_>, what: &'static str) -> Result<u8, ChunkError> {
    let offset = cur.pos();
    cur.u8().ok_or(ChunkError::Truncated { offset, what })
}

pub(crate) fn read_u64(cur: &mut Cursor<'_>, what: &'static str) -> Result<u64, ChunkError> {
    let offset = cur.pos();
    cur.u64().map_err(|e| varint_err(offset, what, e))
}

pub(crate) fn read_i64(cur: &mut Cursor<'_>, what: &'static str) -> Result<i64, ChunkError> {
    let offset = cur.pos();
    cur.i64().map_err(|e| varint_err(offset, what, e))
}

/// Reads a count or length and checks it against `max`.
pub(crate) fn read_len(
    cur: &mut Cursor<'_>,
    max: usize,
    what: &'static str,
) -> Result<usize, ChunkError> {
    let offset = cur.pos();
    let v = read_u64(cur, what)?;
    match usize::try_from(v) {
        Ok(v) if v <= max => Ok(v),
        _ => Err(corrupt(
            offset,
            format!("{what} {v} is over the limit of {max}"),
        )),
    }
}

/// Reads a varint byte length, then that many bytes.
pub(crate) fn read_block<'a>(
    cur: &mut Cursor<'a>,
    what: &'static str,
) -> Result<&'a [u8], ChunkError> {
    let max = cur.remaining();
    let len = read_len(cur, max, what)?;
    let offset = cur.pos();
    cur.take(len).ok_or(ChunkError::Truncated { offset, what })
}

/// Writes a varint byte length, then the bytes.
pub(crate) fn put_block(out: &mut Vec<u8>, block: &[u8]) {
    varint::put_u64(out, block.len() as u64);
    out.extend_from_slice(block);
}

#[cfg(test)]
mod tests;
