//! LEB128 varints and zigzag, shared by the chunk and record formats.

/// Appends `v` as an unsigned LEB128 varint (1–10 bytes).
pub(crate) fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-encoded as a varint.
pub(crate) fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_u64(out, zigzag(v));
}

/// Bytes `put_u64` writes for `v`.
pub(crate) fn len_u64(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[inline]
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintError {
    /// The input ended inside the varint.
    Truncated,
    /// More than 64 bits.
    Overflow,
}

/// A cursor over a byte slice that never reads out of bounds.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The bytes not read yet, without reading them.
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// The next `n` bytes, or `None` (and no progress) if fewer remain.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, VarintError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8().ok_or(VarintError::Truncated)?;
            if i == 9 && b > 1 {
                return Err(VarintError::Overflow);
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(VarintError::Overflow)
    }

    pub(crate) fn i64(&mut self) -> Result<i64, VarintError> {
        self.u64().map(unzigzag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip(v in any::<u64>(), s in any::<i64>()) {
            let mut out = Vec::new();
            put_u64(&mut out, v);
            prop_assert_eq!(out.len(), len_u64(v));
            put_i64(&mut out, s);
            let mut c = Cursor::new(&out);
            prop_assert_eq!(c.u64(), Ok(v));
            prop_assert_eq!(c.i64(), Ok(s));
            prop_assert_eq!(c.remaining(), 0);
        }
    }

    #[test]
    fn overlong_varints_are_refused() {
        let mut c = Cursor::new(&[0xff; 11]);
        assert_eq!(c.u64(), Err(VarintError::Overflow));
        let mut c = Cursor::new(&[0x80]);
        assert_eq!(c.u64(), Err(VarintError::Truncated));
    }
}
