//! The value column, as f64 bit patterns.
//!
//! ```text
//! u8 mode, then per mode:
//!   0 DECIMAL  i8 e, the integer column, the correction column:
//!              value = bits(m / 10^e) + adj   (m · 10^−e when e < 0; wrapping u64 add)
//!   1 XOR      varint len, then a Gorilla XOR bit stream
//! ```
//!
//! DECIMAL stores "decimals in disguise" (12.34 = 1234 / 10², a counter 225260.0 =
//! 225260 / 10⁰) as integers. Division by an exact power of ten is correctly rounded,
//! so `m / 10^e` is exactly the f64 a parser makes of the decimal text. Values off by
//! binary noise (94.79799999999999 is 94.798 minus one ULP) cost a small correction
//! `adj`; values that are no decimal at all (NaN, ±inf, −0.0, huge) keep the previous
//! integer and carry their whole difference in `adj`. XOR is the fallback for columns
//! that are not decimals; the encoder writes whichever mode is smaller.

use super::bits::{BitReader, BitWriter};
use super::varint::{self, Cursor};
use super::{corrupt, put_block, read_block, read_i64, read_len, read_u8};
use crate::error::ChunkError;

const DECIMAL: u8 = 0;
const XOR: u8 = 1;

/// Integer column layouts.
const INTS_BLOCKS: u8 = 0;

/// Integers are bit-packed in blocks of this many, each block with its own width.
const BLOCK: usize = 64;

/// Exact powers of ten: every 10^k with k ≤ 22 is an f64 without rounding.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];
const MAX_EXP: i8 = 22;

/// Exponents the encoder tries, most likely first (ties keep the earlier one).
const CANDIDATES: [i8; 20] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, -1, -2, -3, -4, -5, -6, -7,
];

/// Largest |m| kept: beyond 2^53 an i64 is no longer an exact f64.
const MAX_INT: f64 = 9_007_199_254_740_992.0;

fn pow10(e: i8) -> f64 {
    POW10[usize::from(e.unsigned_abs()).min(POW10.len() - 1)]
}

/// The f64 the decimal `m · 10^−e` denotes.
pub(crate) fn dec(m: i64, e: i8) -> f64 {
    if e >= 0 {
        m as f64 / pow10(e)
    } else {
        m as f64 * pow10(e)
    }
}

/// The integer that `v` scaled by `10^e` rounds to, if it is within ±2^53.
pub(crate) fn to_int(v: f64, e: i8) -> Option<i64> {
    let x = if e >= 0 { v * pow10(e) } else { v / pow10(e) };
    if x.abs() <= MAX_INT {
        Some(x.round() as i64)
    } else {
        None
    }
}

/// Splits values into integers and ULP corrections for exponent `e`.
fn split(values: &[u64], e: i8) -> (Vec<i64>, Vec<i64>) {
    let mut ints = Vec::with_capacity(values.len());
    let mut adjs = Vec::with_capacity(values.len());
    let mut prev = 0i64;
    for &v in values {
        let m = to_int(f64::from_bits(v), e).unwrap_or(prev);
        ints.push(m);
        adjs.push(v.wrapping_sub(dec(m, e).to_bits()) as i64);
        prev = m;
    }
    (ints, adjs)
}

fn bit_len(z: u64) -> u32 {
    64 - z.leading_zeros()
}

/// Estimated bits of the DECIMAL column with exponent `e` over a sample.
fn estimate(sample: &[u64], e: i8) -> u64 {
    let mut cost = 0u64;
    let mut prev = 0i64;
    for &v in sample {
        let m = to_int(f64::from_bits(v), e).unwrap_or(prev);
        cost += u64::from(bit_len(varint::zigzag(m.wrapping_sub(prev))));
        let adj = v.wrapping_sub(dec(m, e).to_bits()) as i64;
        if adj != 0 {
            cost += 12 + u64::from(bit_len(varint::zigzag(adj)));
        }
        prev = m;
    }
    cost
}

fn choose_exponent(values: &[u64]) -> i8 {
    const SAMPLE: usize = 512;
    let stride = values.len().div_ceil(SAMPLE).max(1);
    let sample: Vec<u64> = values.iter().step_by(stride).copied().collect();
    let mut best = (u64::MAX, 0i8);
    for e in CANDIDATES {
        let cost = estimate(&sample, e);
        if cost < best.0 {
            best = (cost, e);
        }
    }
    best.1
}

pub(super) fn encode(values: &[u64], out: &mut Vec<u8>) {
    let decimal = encode_decimal(values);
    let xor = encode_xor(values);
    if decimal.len() <= xor.len() {
        out.extend_from_slice(&decimal);
    } else {
        out.extend_from_slice(&xor);
    }
}

fn encode_decimal(values: &[u64]) -> Vec<u8> {
    let e = choose_exponent(values);
    let (ints, adjs) = split(values, e);
    let mut out = vec![DECIMAL, e as u8];
    encode_ints(&ints, &mut out);
    encode_adjs(&adjs, &mut out);
    out
}

fn encode_ints(ints: &[i64], out: &mut Vec<u8>) {
    out.push(INTS_BLOCKS);
    let mut prev = 0i64;
    let zz: Vec<u64> = ints
        .iter()
        .map(|&m| {
            let z = varint::zigzag(m.wrapping_sub(prev));
            prev = m;
            z
        })
        .collect();
    let mut w = BitWriter::new();
    for block in zz.chunks(BLOCK) {
        let width = block.iter().map(|&z| bit_len(z)).max().unwrap_or(0);
        w.write(u64::from(width), 7);
        for &z in block {
            w.write(z, width);
        }
    }
    put_block(out, &w.finish());
}

fn encode_adjs(adjs: &[i64], out: &mut Vec<u8>) {
    let k = adjs.iter().filter(|&&a| a != 0).count();
    varint::put_u64(out, k as u64);
    let mut gap = 0u64;
    for &a in adjs {
        if a == 0 {
            gap += 1;
        } else {
            varint::put_u64(out, gap);
            varint::put_i64(out, a);
            gap = 0;
        }
    }
}

fn encode_xor(values: &[u64]) -> Vec<u8> {
    let mut w = BitWriter::new();
    let Some((&first, rest)) = values.split_first() else {
        return vec![XOR, 0];
    };
    w.write(first, 64);
    let mut prev = first;
    // The previous (leading zeros, meaningful length); None until one is written.
    let mut window: Option<(u32, u32)> = None;
    for &v in rest {
        let x = v ^ prev;
        prev = v;
        if x == 0 {
            w.bit(false);
            continue;
        }
        w.bit(true);
        let lz = x.leading_zeros().min(63);
        let tz = x.trailing_zeros();
        match window {
            Some((plz, plen)) if lz >= plz && tz >= 64 - plz - plen => {
                w.bit(false);
                w.write(x >> (64 - plz - plen), plen);
            }
            _ => {
                let len = 64 - lz - tz;
                w.bit(true);
                w.write(u64::from(lz), 6);
                w.write(u64::from(len - 1), 6);
                w.write(x >> tz, len);
                window = Some((lz, len));
            }
        }
    }
    let mut out = vec![XOR];
    put_block(&mut out, &w.finish());
    out
}

pub(super) fn decode(cur: &mut Cursor<'_>, n: usize) -> Result<Vec<u64>, ChunkError> {
    let mode_at = cur.pos();
    match read_u8(cur, "value mode")? {
        DECIMAL => decode_decimal(cur, n),
        XOR => decode_xor(cur, n),
        other => Err(corrupt(mode_at, format!("unknown value mode {other}"))),
    }
}

fn decode_decimal(cur: &mut Cursor<'_>, n: usize) -> Result<Vec<u64>, ChunkError> {
    let e_at = cur.pos();
    let e = read_u8(cur, "decimal exponent")? as i8;
    if !(-MAX_EXP..=MAX_EXP).contains(&e) {
        return Err(corrupt(e_at, format!("decimal exponent {e} out of range")));
    }
    let ints = decode_ints(cur, n)?;
    let mut values: Vec<u64> = ints.iter().map(|&m| dec(m, e).to_bits()).collect();
    let k = read_len(cur, n, "correction count")?;
    let mut next = 0usize;
    for _ in 0..k {
        let gap_at = cur.pos();
        let gap = read_len(cur, n, "correction gap")?;
        let adj = read_i64(cur, "correction")?;
        let slot = next
            .checked_add(gap)
            .and_then(|i| values.get_mut(i).map(|v| (i, v)));
        let Some((i, v)) = slot else {
            return Err(corrupt(gap_at, "correction past the last point"));
        };
        *v = v.wrapping_add(adj as u64);
        next = i + 1;
    }
    Ok(values)
}

fn decode_ints(cur: &mut Cursor<'_>, n: usize) -> Result<Vec<i64>, ChunkError> {
    let mode_at = cur.pos();
    let mode = read_u8(cur, "integer column mode")?;
    if mode != INTS_BLOCKS {
        return Err(corrupt(
            mode_at,
            format!("unknown integer column mode {mode}"),
        ));
    }
    let block_at = cur.pos();
    let block = read_block(cur, "integer column")?;
    let truncated = ChunkError::Truncated {
        offset: block_at,
        what: "integer column",
    };
    let mut r = BitReader::new(block);
    let mut ints = Vec::with_capacity(n);
    let mut prev = 0i64;
    while ints.len() < n {
        let width = r.read(7).map_err(|_| truncated.clone())? as u32;
        if width > 64 {
            return Err(corrupt(block_at, format!("integer block width {width}")));
        }
        for _ in 0..BLOCK.min(n - ints.len()) {
            let z = r.read(width).map_err(|_| truncated.clone())?;
            prev = prev.wrapping_add(varint::unzigzag(z));
            ints.push(prev);
        }
    }
    Ok(ints)
}

fn decode_xor(cur: &mut Cursor<'_>, n: usize) -> Result<Vec<u64>, ChunkError> {
    let block_at = cur.pos();
    let block = read_block(cur, "XOR stream")?;
    let truncated = ChunkError::Truncated {
        offset: block_at,
        what: "XOR stream",
    };
    let mut r = BitReader::new(block);
    let mut values = Vec::with_capacity(n);
    let mut prev = r.read(64).map_err(|_| truncated.clone())?;
    values.push(prev);
    let mut window: Option<(u32, u32)> = None;
    while values.len() < n {
        let t = |r: &mut BitReader<'_>, bits: u32| r.read(bits).map_err(|_| truncated.clone());
        if t(&mut r, 1)? == 1 {
            let (lz, len) = if t(&mut r, 1)? == 0 {
                window.ok_or_else(|| corrupt(block_at, "XOR reuses a window before the first"))?
            } else {
                let lz = t(&mut r, 6)? as u32;
                let len = t(&mut r, 6)? as u32 + 1;
                if lz + len > 64 {
                    return Err(corrupt(block_at, "XOR window wider than 64 bits"));
                }
                window = Some((lz, len));
                (lz, len)
            };
            prev ^= t(&mut r, len)? << (64 - lz - len);
        }
        values.push(prev);
    }
    Ok(values)
}
