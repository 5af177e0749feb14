//! The time column: delta-of-delta with wrapping arithmetic, so any i64 times in any
//! order (repeats included) round-trip.
//!
//! ```text
//! u8 mode, zz t0, then if n ≥ 2: zz d1 (= t1 − t0), then per mode:
//!   0 LINE    nothing: every delta-of-delta is 0
//!   1 SPARSE  varint k, then k × (varint gap, zz dod): the non-zero delta-of-deltas,
//!             gap = points skipped since the previous one
//!   2 BITS    varint len, then a bit stream of n − 2 codes (see `put_dod`)
//! ```

use super::bits::{BitReader, BitWriter};
use super::varint::{self, Cursor};
use super::{corrupt, put_block, read_block, read_i64, read_len, read_u8};
use crate::error::ChunkError;

const LINE: u8 = 0;
const SPARSE: u8 = 1;
const BITS: u8 = 2;

pub(super) fn encode(times: &[i64], out: &mut Vec<u8>) {
    let Some((&t0, rest)) = times.split_first() else {
        return;
    };
    let mut head = Vec::with_capacity(20);
    varint::put_i64(&mut head, t0);
    let Some(&t1) = rest.first() else {
        out.push(LINE);
        out.extend_from_slice(&head);
        return;
    };
    varint::put_i64(&mut head, t1.wrapping_sub(t0));
    let dods: Vec<i64> = times
        .windows(3)
        .map(|w| {
            w[2].wrapping_sub(w[1])
                .wrapping_sub(w[1].wrapping_sub(w[0]))
        })
        .collect();
    let nonzero = dods.iter().filter(|&&d| d != 0).count();
    if nonzero == 0 {
        out.push(LINE);
        out.extend_from_slice(&head);
        return;
    }
    let mut sparse = Vec::new();
    varint::put_u64(&mut sparse, nonzero as u64);
    let mut gap = 0u64;
    for &d in &dods {
        if d == 0 {
            gap += 1;
        } else {
            varint::put_u64(&mut sparse, gap);
            varint::put_i64(&mut sparse, d);
            gap = 0;
        }
    }
    let mut w = BitWriter::new();
    for &d in &dods {
        put_dod(&mut w, d);
    }
    let stream = w.finish();
    let bits_len = varint::len_u64(stream.len() as u64) + stream.len();
    if sparse.len() <= bits_len {
        out.push(SPARSE);
        out.extend_from_slice(&head);
        out.extend_from_slice(&sparse);
    } else {
        out.push(BITS);
        out.extend_from_slice(&head);
        put_block(out, &stream);
    }
}

/// Prefix codes for one delta-of-delta (zz = zigzag):
/// `0` → 0; `10` + 7 bits zz; `110` + 12 bits zz; `1110` + 20 bits zz; `1111` + 64 bits.
fn put_dod(w: &mut BitWriter, d: i64) {
    if d == 0 {
        w.write(0b0, 1);
        return;
    }
    let z = varint::zigzag(d);
    if z < 1 << 7 {
        w.write(0b01, 2);
        w.write(z, 7);
    } else if z < 1 << 12 {
        w.write(0b011, 3);
        w.write(z, 12);
    } else if z < 1 << 20 {
        w.write(0b0111, 4);
        w.write(z, 20);
    } else {
        w.write(0b1111, 4);
        w.write(z, 64);
    }
}

fn get_dod(r: &mut BitReader<'_>) -> Option<i64> {
    let width = if !r.bit().ok()? {
        return Some(0);
    } else if !r.bit().ok()? {
        7
    } else if !r.bit().ok()? {
        12
    } else if !r.bit().ok()? {
        20
    } else {
        64
    };
    Some(varint::unzigzag(r.read(width).ok()?))
}

pub(super) fn decode(cur: &mut Cursor<'_>, n: usize) -> Result<Vec<i64>, ChunkError> {
    let mode_at = cur.pos();
    let mode = read_u8(cur, "time mode")?;
    let t0 = read_i64(cur, "first time")?;
    let mut times = Vec::with_capacity(n);
    times.push(t0);
    if n == 1 {
        return if mode == LINE {
            Ok(times)
        } else {
            Err(corrupt(mode_at, format!("time mode {mode} with one point")))
        };
    }
    let mut delta = read_i64(cur, "first delta")?;
    let mut t = t0.wrapping_add(delta);
    times.push(t);
    let mut step = |dod: i64| {
        delta = delta.wrapping_add(dod);
        t = t.wrapping_add(delta);
        t
    };
    match mode {
        LINE => times.extend((2..n).map(|_| step(0))),
        SPARSE => {
            let k = read_len(cur, n - 2, "delta-of-delta count")?;
            let mut left = n - 2;
            for _ in 0..k {
                let gap_at = cur.pos();
                let gap = read_len(cur, left, "delta-of-delta gap")?;
                let dod = read_i64(cur, "delta-of-delta")?;
                if gap == left {
                    return Err(corrupt(gap_at, "delta-of-delta past the last point"));
                }
                times.extend((0..gap).map(|_| step(0)));
                times.push(step(dod));
                left -= gap + 1;
            }
            times.extend((0..left).map(|_| step(0)));
        }
        BITS => {
            let block_at = cur.pos();
            let block = read_block(cur, "delta-of-delta stream")?;
            let mut r = BitReader::new(block);
            for _ in 2..n {
                let dod = get_dod(&mut r).ok_or(ChunkError::Truncated {
                    offset: block_at,
                    what: "delta-of-delta stream",
                })?;
                times.push(step(dod));
            }
        }
        other => return Err(corrupt(mode_at, format!("unknown time mode {other}"))),
    }
    Ok(times)
}
