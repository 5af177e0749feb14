//! Bit streams, least significant bit first: bit `i` of the stream is bit `i % 8` of
//! byte `i / 8`. A value of `n` bits is written low bit first.

/// Appends bits to a byte vector.
#[derive(Debug, Default)]
pub(crate) struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    /// Bits held in `acc` (always < 8 between calls).
    n: u32,
}

impl BitWriter {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Writes the low `n` bits of `v` (`n` ≤ 64; higher bits of `v` are ignored).
    pub(crate) fn write(&mut self, v: u64, n: u32) {
        debug_assert!(n <= 64);
        if n == 0 {
            return;
        }
        let v = if n == 64 { v } else { v & ((1u64 << n) - 1) };
        if n > 56 {
            self.write(v, 32);
            self.write(v >> 32, n - 32);
            return;
        }
        self.acc |= v << self.n;
        self.n += n;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    pub(crate) fn bit(&mut self, b: bool) {
        self.write(u64::from(b), 1);
    }

    /// The bytes written, the last one padded with zero bits.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// Reads bits from a byte slice; reading past the end is an error, never a panic.
#[derive(Debug)]
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    /// Next bit to read.
    pos: usize,
}

/// The bit stream ended before the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutOfBits;

impl<'a> BitReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// Reads `n` bits (`n` ≤ 64).
    pub(crate) fn read(&mut self, n: u32) -> Result<u64, OutOfBits> {
        if n == 0 {
            return Ok(0);
        }
        if n > 56 {
            let lo = self.read(32)?;
            let hi = self.read(n - 32)?;
            return Ok(lo | (hi << 32));
        }
        let end = self.pos + n as usize;
        if end > self.bytes.len() * 8 {
            return Err(OutOfBits);
        }
        let first = self.pos / 8;
        let mut word = [0u8; 8];
        let avail = (self.bytes.len() - first).min(8);
        word[..avail].copy_from_slice(&self.bytes[first..first + avail]);
        let v = u64::from_le_bytes(word) >> (self.pos % 8);
        self.pos = end;
        Ok(v & ((1u64 << n) - 1))
    }

    pub(crate) fn bit(&mut self) -> Result<bool, OutOfBits> {
        Ok(self.read(1)? == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn bits_round_trip(items in proptest::collection::vec((any::<u64>(), 0u32..=64), 0..50)) {
            let mut w = BitWriter::new();
            for &(v, n) in &items {
                w.write(v, n);
            }
            let bytes = w.finish();
            let total: u32 = items.iter().map(|&(_, n)| n).sum();
            prop_assert_eq!(bytes.len(), (total as usize).div_ceil(8));
            let mut r = BitReader::new(&bytes);
            for &(v, n) in &items {
                let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
                prop_assert_eq!(r.read(n), Ok(v & mask));
            }
        }
    }

    #[test]
    fn reading_past_the_end_is_an_error() {
        let mut r = BitReader::new(&[0xff]);
        assert_eq!(r.read(8), Ok(0xff));
        assert_eq!(r.read(1), Err(OutOfBits));
    }
}
