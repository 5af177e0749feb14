//! The value column, as f64 bit patterns.
//!
//! ```text
//! u8 mode, then per mode:
//!   0 DECIMAL  i8 e, u8 predictor, [zz base], varint len, range-coded stream:
//!              per value: the integer m (through the predictor), a correction flag,
//!              and when the flag is set the correction adj;
//!              value = bits(m / 10^e) + adj   (m · 10^−e when e < 0; wrapping u64 add)
//!   1 XOR      varint len, then a Gorilla XOR bit stream
//! ```
//!
//! DECIMAL stores "decimals in disguise" (12.34 = 1234 / 10², a counter 225260.0 =
//! 225260 / 10⁰) as integers. Division by an exact power of ten is correctly rounded,
//! so `m / 10^e` is exactly the f64 a parser makes of the decimal text. Values off by
//! binary noise (94.79799999999999 is 94.798 minus one ULP) cost a flag and a small
//! correction; values that are no decimal at all (NaN, ±inf, −0.0, huge) keep the
//! previous integer and carry their whole difference as the correction. XOR is the
//! fallback for columns that are not decimals; the encoder writes the smaller.

use super::bits::{BitReader, BitWriter};
use super::rc::{Decoder, Encoder, Lengths, UintModel, PROB_INIT};
use super::varint::{self, Cursor};
use super::{corrupt, put_block, read_block, read_i64, read_u64, read_u8};
use crate::error::ChunkError;

const DECIMAL: u8 = 0;
const XOR: u8 = 1;

/// Predictors of the integer column: the previous integer (trends, counters) or a
/// base, the column's minimum (noise around a level: a delta of two noisy values
/// spreads twice as wide as the values).
const PRED_DELTA: u8 = 0;
const PRED_BASE: u8 = 1;

/// Exact powers of ten: every 10^k with k ≤ 22 is an f64 without rounding.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];
const MAX_EXP: i8 = 22;
/// The encoder looks for decimals with up to this many places, and for integers with
/// up to this many trailing zeros (negative exponents).
const MAX_PLACES: i8 = 12;
const MAX_TRAILING_ZEROS: i8 = 8;

/// Largest |m| kept: beyond 2^53 an i64 is no longer an exact f64.
const MAX_INT: f64 = 9_007_199_254_740_992.0;

/// XOR is tried too when the DECIMAL column takes more bytes per value than this
/// (decimals take 0–3): it only wins on columns that are not decimals.
const TRY_XOR_ABOVE: usize = 4;

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

fn exact(v: u64, e: i8) -> bool {
    to_int(f64::from_bits(v), e).is_some_and(|m| dec(m, e).to_bits() == v)
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
            cost += 4 + u64::from(bit_len(varint::zigzag(adj)));
        }
        prev = m;
    }
    cost
}

/// The exponent for the column: each sampled value votes for the fewest places that
/// represent it exactly (ALP's idea); the candidates voted for are then costed, so a
/// few values with more places become corrections instead of widening every integer.
fn choose_exponent(values: &[u64]) -> i8 {
    const VOTERS: usize = 64;
    const SAMPLE: usize = 256;
    let voters = values.iter().step_by(values.len().div_ceil(VOTERS).max(1));
    let mut voted = [false; (MAX_PLACES + 1) as usize];
    for &v in voters {
        if let Some(e) = (0..=MAX_PLACES).find(|&e| exact(v, e)) {
            voted[e as usize] = true;
        }
    }
    let mut candidates: Vec<i8> = (0..=MAX_PLACES).filter(|&e| voted[e as usize]).collect();
    if candidates == [0] {
        // Integers: maybe with trailing zeros (counters of bytes in thousands…).
        candidates.extend((1..=MAX_TRAILING_ZEROS).map(|z| -z));
    }
    match candidates.as_slice() {
        [] => return 0,
        [only] => return *only,
        _ => {}
    }
    let sample: Vec<u64> = values
        .iter()
        .step_by(values.len().div_ceil(SAMPLE).max(1))
        .copied()
        .collect();
    let mut best = (u64::MAX, 0i8);
    for e in candidates {
        let cost = estimate(&sample, e);
        if cost < best.0 {
            best = (cost, e);
        }
    }
    best.1
}

pub(super) fn encode(values: &[u64], out: &mut Vec<u8>) {
    let decimal = encode_decimal(values);
    if decimal.len() > TRY_XOR_ABOVE * values.len() {
        let xor = encode_xor(values);
        if xor.len() < decimal.len() {
            out.extend_from_slice(&xor);
            return;
        }
    }
    out.extend_from_slice(&decimal);
}

fn encode_decimal(values: &[u64]) -> Vec<u8> {
    let e = choose_exponent(values);
    let (ints, adjs) = split(values, e);
    let mut out = vec![DECIMAL, e as u8];
    let min = ints.iter().copied().min().unwrap_or(0);
    let mut prev = 0i64;
    let (mut delta_cost, mut base_cost) = (0u64, 0u64);
    for &m in &ints {
        delta_cost += u64::from(bit_len(varint::zigzag(m.wrapping_sub(prev))));
        base_cost += u64::from(bit_len(m.wrapping_sub(min) as u64));
        prev = m;
    }
    let pred = if base_cost < delta_cost {
        PRED_BASE
    } else {
        PRED_DELTA
    };
    out.push(pred);
    if pred == PRED_BASE {
        varint::put_i64(&mut out, min);
    }
    let zs: Vec<u64> = ints
        .iter()
        .scan(0i64, |prev, &m| {
            let z = if pred == PRED_BASE {
                m.wrapping_sub(min) as u64
            } else {
                varint::zigzag(m.wrapping_sub(*prev))
            };
            *prev = m;
            Some(z)
        })
        .collect();
    let int_lengths = Lengths::of(zs.iter().copied());
    varint::put_u64(&mut out, int_lengths.packed());
    let corrections = adjs.iter().any(|&a| a != 0);
    let adj_lengths = Lengths::of(
        adjs.iter()
            .filter(|&&a| a != 0)
            .map(|&a| varint::zigzag(a) - 1),
    );
    // 0: no corrections (no flag per value); else 1 + the packed lengths.
    varint::put_u64(
        &mut out,
        if corrections {
            1 + adj_lengths.packed()
        } else {
            0
        },
    );
    let mut enc = Encoder::new();
    let mut int_model = UintModel::new(int_lengths);
    let mut adj_model = UintModel::new(adj_lengths);
    let mut flags = [PROB_INIT; 2];
    let mut prev_flag = 0usize;
    for (&z, &a) in zs.iter().zip(&adjs) {
        int_model.put(&mut enc, z);
        if corrections {
            enc.bit(&mut flags[prev_flag], a != 0);
            if a != 0 {
                adj_model.put(&mut enc, varint::zigzag(a) - 1);
            }
            prev_flag = usize::from(a != 0);
        }
    }
    put_block(&mut out, &enc.finish());
    out
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
    let pred_at = cur.pos();
    let pred = read_u8(cur, "predictor")?;
    let base = match pred {
        PRED_DELTA => 0,
        PRED_BASE => read_i64(cur, "base")?,
        other => return Err(corrupt(pred_at, format!("unknown predictor {other}"))),
    };
    let lengths_at = cur.pos();
    let int_lengths = Lengths::unpack(read_u64(cur, "integer lengths")?)
        .ok_or_else(|| corrupt(lengths_at, "integer lengths out of range"))?;
    let lengths_at = cur.pos();
    let adj_lengths = match read_u64(cur, "correction lengths")? {
        0 => None,
        v => Some(
            Lengths::unpack(v - 1)
                .ok_or_else(|| corrupt(lengths_at, "correction lengths out of range"))?,
        ),
    };
    let block_at = cur.pos();
    let block = read_block(cur, "value stream")?;
    let bad = || corrupt(block_at, "value stream encodes a length over 64 bits");
    let mut rd = Decoder::new(block);
    let mut int_model = UintModel::new(int_lengths);
    let mut adj_model = adj_lengths.map(UintModel::new);
    let mut flags = [PROB_INIT; 2];
    let mut values = Vec::with_capacity(n);
    let mut prev = 0i64;
    let mut prev_flag = 0usize;
    for _ in 0..n {
        let z = int_model.get(&mut rd).ok_or_else(bad)?;
        let m = if pred == PRED_BASE {
            base.wrapping_add(z as i64)
        } else {
            prev.wrapping_add(varint::unzigzag(z))
        };
        prev = m;
        let mut v = dec(m, e).to_bits();
        if let Some(adj_model) = adj_model.as_mut() {
            let flag = rd.bit(&mut flags[prev_flag]);
            if flag {
                let za = adj_model.get(&mut rd).ok_or_else(bad)?;
                v = v.wrapping_add(varint::unzigzag(za.wrapping_add(1)) as u64);
            }
            prev_flag = usize::from(flag);
        }
        values.push(v);
    }
    Ok(values)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_follow_the_decimals() {
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(choose_exponent(&bits(&[12.34, 12.5, 13.0])), 2);
        assert_eq!(
            choose_exponent(&bits(&[225_260.0, 225_270.0, 225_300.0])),
            -1
        );
        assert_eq!(
            choose_exponent(&bits(&[94.797_999_999_999_99, 94.798, 91.958])),
            3
        );
        assert_eq!(choose_exponent(&bits(&[f64::NAN])), 0);
    }
}
