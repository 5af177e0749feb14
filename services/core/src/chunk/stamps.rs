//! The stamp column of a chunk v2: for each point, the ingest stamp (whole seconds) of
//! the write that put its value there. The flush merge needs it to decide, for a point
//! that only the stored item still holds, whether a head entry is newer (docs/write-path.md).
//!
//! Layout (after the value column):
//!
//! ```text
//! u8      predictor: 0 = previous stamp (s[i] − s[i−1]), 1 = previous lag ((s[i]−t[i]) − (s[i−1]−t[i−1]))
//! varint  zigzag(s[0] − t[0])                  the first point's lag
//! varint  packed bit-length range of the residuals (as the value column's)
//! bytes   range-coded zigzag residuals of points 1.., to the end of the chunk
//! ```
//!
//! The two predictors are the two shapes writes take: a batch (one request, one stamp,
//! many times: residual 0 under "previous stamp") and a stream (an agent posting each
//! minute: a steady lag, residual 0 under "previous lag"). When every residual is 0 the
//! range has depth 0 and the column costs 3 bytes however many points it covers.
//! Arithmetic wraps, so any i64 stamps and times round-trip.

use super::rc::{Decoder, Encoder, Lengths, UintModel};
use super::varint::{self, Cursor};
use super::{corrupt, read_i64, read_u64, read_u8};
use crate::error::ChunkError;

const PRED_STAMP: u8 = 0;
const PRED_LAG: u8 = 1;

fn residuals<'a>(times: &'a [i64], stamps: &'a [i64], pred: u8) -> impl Iterator<Item = u64> + 'a {
    (1..stamps.len()).map(move |i| {
        let d = if pred == PRED_STAMP {
            stamps[i].wrapping_sub(stamps[i - 1])
        } else {
            stamps[i]
                .wrapping_sub(times[i])
                .wrapping_sub(stamps[i - 1].wrapping_sub(times[i - 1]))
        };
        varint::zigzag(d)
    })
}

fn cost(zs: impl Iterator<Item = u64>) -> u64 {
    zs.map(|z| u64::from(64 - z.leading_zeros()) + 1).sum()
}

/// Appends the stamp column of `stamps` (one per time of `times`, same order; at least one).
pub(super) fn encode(times: &[i64], stamps: &[i64], out: &mut Vec<u8>) {
    debug_assert_eq!(times.len(), stamps.len());
    let pred =
        if cost(residuals(times, stamps, PRED_LAG)) < cost(residuals(times, stamps, PRED_STAMP)) {
            PRED_LAG
        } else {
            PRED_STAMP
        };
    out.push(pred);
    varint::put_i64(out, stamps[0].wrapping_sub(times[0]));
    let lengths = Lengths::of(residuals(times, stamps, pred));
    varint::put_u64(out, lengths.packed());
    let mut enc = Encoder::new();
    let mut model = UintModel::new(lengths);
    for z in residuals(times, stamps, pred) {
        model.put(&mut enc, z);
    }
    out.extend_from_slice(&enc.finish());
}

/// Reads the stamp column of the points at `times`; it runs to the end of the input.
pub(super) fn decode(cur: &mut Cursor<'_>, times: &[i64]) -> Result<Vec<i64>, ChunkError> {
    let at = cur.pos();
    let pred = read_u8(cur, "stamp predictor")?;
    if pred != PRED_STAMP && pred != PRED_LAG {
        return Err(corrupt(at, format!("unknown stamp predictor {pred}")));
    }
    let first_lag = read_i64(cur, "first stamp")?;
    let at = cur.pos();
    let lengths = Lengths::unpack(read_u64(cur, "stamp lengths")?)
        .ok_or_else(|| corrupt(at, "stamp bit-length range out of bounds"))?;
    let rest = cur.rest();
    let mut dec = Decoder::new(rest);
    let mut model = UintModel::new(lengths);
    let mut stamps = Vec::with_capacity(times.len());
    let Some(&t0) = times.first() else {
        return Ok(stamps);
    };
    stamps.push(t0.wrapping_add(first_lag));
    for i in 1..times.len() {
        let z = model
            .get(&mut dec)
            .ok_or_else(|| corrupt(at, "stamp residual over 64 bits"))?;
        let d = varint::unzigzag(z);
        let prev = stamps[i - 1];
        stamps.push(if pred == PRED_STAMP {
            prev.wrapping_add(d)
        } else {
            times[i].wrapping_add(prev.wrapping_sub(times[i - 1]).wrapping_add(d))
        });
    }
    // The range coder trims trailing zero bytes and reads zeros past its input, so the
    // column owns the rest of the chunk; consume it.
    let _ = cur.take(rest.len());
    Ok(stamps)
}
