//! A binary range coder (the LZMA design: 11-bit adaptive probabilities, carry
//! propagation through a cached byte) and the adaptive model for unsigned integers
//! that the value column uses.
//!
//! Everything is integer arithmetic, so the bytes are the same on every platform.
//! The leading byte LZMA always writes (a zero) is left out, and trailing zero bytes
//! are trimmed: the decoder reads zeros past the end of its input. The decoder never
//! fails on corrupt input: it decodes garbage, which the caller's checks refuse.

const PROB_BITS: u32 = 11;
const PROB_ONE: u16 = 1 << PROB_BITS;
pub(crate) const PROB_INIT: u16 = PROB_ONE / 2;
/// Adaptation speed: a shift of 4 adapts within a few dozen symbols, which suits
/// chunks of a few hundred points better than LZMA's 5.
const ADAPT: u32 = 4;
const TOP: u32 = 1 << 24;
/// Most equiprobable bits coded in one step: the range (≥ 2^24) keeps ≥ 2^8 after it.
const DIRECT_STEP: u32 = 16;

pub(crate) struct Encoder {
    low: u64,
    range: u32,
    cache: u8,
    cache_size: u64,
    out: Vec<u8>,
}

impl Encoder {
    pub(crate) fn new() -> Self {
        Self {
            low: 0,
            range: u32::MAX,
            cache: 0,
            cache_size: 1,
            out: Vec::new(),
        }
    }

    fn shift_low(&mut self) {
        if (self.low as u32) < 0xff00_0000 || (self.low >> 32) != 0 {
            let carry = (self.low >> 32) as u8;
            let mut temp = self.cache;
            loop {
                self.out.push(temp.wrapping_add(carry));
                temp = 0xff;
                self.cache_size -= 1;
                if self.cache_size == 0 {
                    break;
                }
            }
            self.cache = (self.low >> 24) as u8;
        }
        self.cache_size += 1;
        self.low = (self.low & 0x00ff_ffff) << 8;
    }

    fn normalize(&mut self) {
        while self.range < TOP {
            self.range <<= 8;
            self.shift_low();
        }
    }

    pub(crate) fn bit(&mut self, p: &mut u16, bit: bool) {
        let bound = (self.range >> PROB_BITS) * u32::from(*p);
        if bit {
            self.low += u64::from(bound);
            self.range -= bound;
            *p -= *p >> ADAPT;
        } else {
            self.range = bound;
            *p += (PROB_ONE - *p) >> ADAPT;
        }
        self.normalize();
    }

    /// Writes the low `n` bits of `v` with equal probabilities, most significant
    /// first, up to [`DIRECT_STEP`] bits per step (one multiply instead of a loop).
    pub(crate) fn direct(&mut self, v: u64, n: u32) {
        let mut left = n;
        while left > 0 {
            let k = left.min(DIRECT_STEP);
            left -= k;
            let part = (v >> left) & ((1u64 << k) - 1);
            self.range >>= k;
            self.low += part * u64::from(self.range);
            self.normalize();
        }
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        for _ in 0..5 {
            self.shift_low();
        }
        let mut out = self.out;
        // The first byte is always 0 (the initial cache); the decoder assumes it.
        out.remove(0);
        while out.last() == Some(&0) {
            out.pop();
        }
        out
    }
}

pub(crate) struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
    range: u32,
    code: u32,
}

impl<'a> Decoder<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        let mut d = Self {
            bytes,
            pos: 0,
            range: u32::MAX,
            code: 0,
        };
        for _ in 0..4 {
            d.code = (d.code << 8) | u32::from(d.next_byte());
        }
        d
    }

    fn next_byte(&mut self) -> u8 {
        let b = self.bytes.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn normalize(&mut self) {
        while self.range < TOP {
            self.range <<= 8;
            self.code = (self.code << 8) | u32::from(self.next_byte());
        }
    }

    pub(crate) fn bit(&mut self, p: &mut u16) -> bool {
        let bound = (self.range >> PROB_BITS) * u32::from(*p);
        let bit = if self.code < bound {
            self.range = bound;
            *p += (PROB_ONE - *p) >> ADAPT;
            false
        } else {
            self.code -= bound;
            self.range -= bound;
            *p -= *p >> ADAPT;
            true
        };
        self.normalize();
        bit
    }

    pub(crate) fn direct(&mut self, n: u32) -> u64 {
        let mut v = 0u64;
        let mut left = n;
        while left > 0 {
            let k = left.min(DIRECT_STEP);
            left -= k;
            self.range >>= k;
            // A valid stream gives a part below 2^k; a corrupt one is clamped.
            let part = (self.code / self.range).min((1 << k) - 1);
            self.code -= part * self.range;
            v = (v << k) | u64::from(part);
            self.normalize();
        }
        v
    }
}

/// Contexts of the bit-length tree: the previous value's length, above or below the
/// middle of the chunk's range of lengths.
const CTX: usize = 2;
/// Mantissa bits below the leading one that get adaptive probabilities.
const MANT: u32 = 2;

/// The bit lengths a column uses: `lo ..= lo + 2^depth − 1`, so a chunk whose values
/// have similar magnitudes spends `depth` (not 7) binary decisions per length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lengths {
    pub(crate) lo: u32,
    pub(crate) depth: u32,
}

impl Lengths {
    /// The range that covers every value of `zs`.
    pub(crate) fn of(zs: impl Iterator<Item = u64>) -> Self {
        let (lo, hi) = zs
            .map(|z| 64 - z.leading_zeros())
            .fold((64, 0), |(lo, hi), l| (lo.min(l), hi.max(l)));
        let lo = lo.min(hi);
        Self {
            lo,
            depth: 32 - (hi - lo).leading_zeros(),
        }
    }

    /// Packed as one varint: `lo << 3 | depth`.
    pub(crate) fn packed(self) -> u64 {
        u64::from(self.lo << 3 | self.depth)
    }

    /// `None` unless `lo` ≤ 64 and `depth` ≤ 7 (a depth of 7 spans every length).
    pub(crate) fn unpack(v: u64) -> Option<Self> {
        let lo = u32::try_from(v >> 3).ok().filter(|&lo| lo <= 64)?;
        Some(Self {
            lo,
            depth: (v & 7) as u32,
        })
    }
}

/// An adaptive model of u64 values: the bit length through a binary tree of
/// `depth` levels per context, the next [`MANT`] bits below the leading one adaptive
/// per length, the rest as direct bits.
pub(crate) struct UintModel {
    lengths: Lengths,
    mid: u32,
    tree: [[u16; 128]; CTX],
    mant: [[u16; 1 << MANT]; 65],
    prev_len: u32,
}

impl UintModel {
    pub(crate) fn new(lengths: Lengths) -> Self {
        Self {
            lengths,
            mid: lengths.lo + (1 << lengths.depth) / 2,
            tree: [[PROB_INIT; 128]; CTX],
            mant: [[PROB_INIT; 1 << MANT]; 65],
            prev_len: lengths.lo,
        }
    }

    fn ctx(&self) -> usize {
        usize::from(self.prev_len >= self.mid)
    }

    /// Encodes `z`, whose bit length must be within the model's [`Lengths`].
    pub(crate) fn put(&mut self, enc: &mut Encoder, z: u64) {
        let len = 64 - z.leading_zeros();
        let sym = len - self.lengths.lo;
        let tree = &mut self.tree[self.ctx()];
        let mut node = 1usize;
        for i in (0..self.lengths.depth).rev() {
            let b = (sym >> i) & 1 == 1;
            enc.bit(&mut tree[node], b);
            node = (node << 1) | usize::from(b);
        }
        if len >= 2 {
            let below = len - 1;
            let m = MANT.min(below);
            let probs = &mut self.mant[len as usize];
            let mut node = 1usize;
            for i in 0..m {
                let b = (z >> (below - 1 - i)) & 1 == 1;
                enc.bit(&mut probs[node], b);
                node = (node << 1) | usize::from(b);
            }
            enc.direct(z, below - m);
        }
        self.prev_len = len;
    }

    /// `None` if the stream encodes a bit length over 64 (corrupt input).
    pub(crate) fn get(&mut self, dec: &mut Decoder<'_>) -> Option<u64> {
        let tree = &mut self.tree[self.ctx()];
        let mut node = 1usize;
        for _ in 0..self.lengths.depth {
            let b = dec.bit(&mut tree[node]);
            node = (node << 1) | usize::from(b);
        }
        let len = self.lengths.lo + (node as u32 - (1 << self.lengths.depth));
        if len > 64 {
            return None;
        }
        let z = if len < 2 {
            u64::from(len)
        } else {
            let below = len - 1;
            let m = MANT.min(below);
            let probs = &mut self.mant[len as usize];
            let mut node = 1usize;
            for _ in 0..m {
                let b = dec.bit(&mut probs[node]);
                node = (node << 1) | usize::from(b);
            }
            ((node as u64) << (below - m)) | dec.direct(below - m)
        };
        self.prev_len = len;
        Some(z)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn values_and_bits_round_trip(items in proptest::collection::vec((any::<u64>(), 0u32..64, any::<bool>()), 0..200)) {
            let lengths = Lengths::of(items.iter().map(|&(v, shift, _)| v >> shift));
            let mut enc = Encoder::new();
            let mut model = UintModel::new(lengths);
            let mut p = PROB_INIT;
            for &(v, shift, b) in &items {
                model.put(&mut enc, v >> shift);
                enc.bit(&mut p, b);
                enc.direct(v, shift);
            }
            let bytes = enc.finish();
            let mut dec = Decoder::new(&bytes);
            let mut model = UintModel::new(Lengths::unpack(lengths.packed()).expect("valid"));
            let mut p = PROB_INIT;
            for &(v, shift, b) in &items {
                prop_assert_eq!(model.get(&mut dec), Some(v >> shift));
                prop_assert_eq!(dec.bit(&mut p), b);
                let mask = if shift == 0 { 0 } else { u64::MAX >> (64 - shift) };
                prop_assert_eq!(dec.direct(shift), v & mask);
            }
        }
    }

    #[test]
    fn garbage_decodes_without_panicking() {
        for seed in 0u8..=255 {
            let bytes: Vec<u8> = (0..40)
                .map(|i: u8| i.wrapping_mul(seed).wrapping_add(seed))
                .collect();
            let mut dec = Decoder::new(&bytes);
            let mut model = UintModel::new(Lengths {
                lo: u32::from(seed) % 65,
                depth: 7,
            });
            for _ in 0..100 {
                let _ = model.get(&mut dec);
                let _ = dec.direct(64);
            }
        }
    }
}
