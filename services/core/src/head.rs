//! Head entries: what the writer appends to the Redis head, one window per key.
//!
//! The head of a window is an append-only byte string of 16-byte entries, so appending
//! is one `APPEND` (O(1), no read) and the memory cost is 16 bytes per point:
//!
//! ```text
//! offset 0  u32 LE  time − window start, seconds           (0 ≤ offset < window length)
//! offset 4  i32 LE  ingest stamp − window start·1000, ms    (the record's stamp)
//! offset 8  u64 LE  value, IEEE-754 bits
//! ```
//!
//! A replay appends the same entries again. [`merge`] turns any multiset of entries into
//! the window's points: one per time, the one with the greatest (stamp, value bits).
//! The result depends only on the set of entries, never on their order or repetition,
//! so a replay — of any prefix, suffix or the whole log — flushes the same bytes, and a
//! replayed old record cannot undo a newer value (its stamp is smaller).

use crate::error::ChunkError;
use crate::point::Point;

/// Bytes per head entry.
pub const ENTRY_BYTES: usize = 16;

/// One point as the head stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub time_offset: u32,
    pub stamp_rel_ms: i32,
    pub value_bits: u64,
}

impl Entry {
    /// The entry for `point`, written by a record stamped `stamp_ms`, in the window
    /// starting at `window_start`. `None` if the point or stamp is outside what the
    /// entry can represent (the writer treats that as a bad record; config validation
    /// makes it impossible for validated input).
    #[must_use]
    pub fn new(window_start: i64, point: Point, stamp_ms: i64) -> Option<Self> {
        let time_offset = u32::try_from(point.time.checked_sub(window_start)?).ok()?;
        let stamp_rel_ms =
            i32::try_from(stamp_ms.checked_sub(window_start.checked_mul(1000)?)?).ok()?;
        Some(Self {
            time_offset,
            stamp_rel_ms,
            value_bits: point.value.to_bits(),
        })
    }

    #[must_use]
    pub fn point(&self, window_start: i64) -> Point {
        Point::new(
            window_start + i64::from(self.time_offset),
            f64::from_bits(self.value_bits),
        )
    }

    /// Appends the 16 bytes of this entry to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.time_offset.to_le_bytes());
        out.extend_from_slice(&self.stamp_rel_ms.to_le_bytes());
        out.extend_from_slice(&self.value_bits.to_le_bytes());
    }

    fn decode(b: &[u8; ENTRY_BYTES]) -> Self {
        let (t, rest) = b.split_at(4);
        let (s, v) = rest.split_at(4);
        Self {
            time_offset: u32::from_le_bytes(t.try_into().expect("4 bytes")),
            stamp_rel_ms: i32::from_le_bytes(s.try_into().expect("4 bytes")),
            value_bits: u64::from_le_bytes(v.try_into().expect("8 bytes")),
        }
    }
}

/// Decodes a head byte string into its entries, in append order.
///
/// # Errors
/// [`ChunkError::Truncated`] if the length is not a multiple of 16 (APPEND is atomic,
/// so this means the key was written by something else).
pub fn entries(bytes: &[u8]) -> Result<Vec<Entry>, ChunkError> {
    if !bytes.len().is_multiple_of(ENTRY_BYTES) {
        return Err(ChunkError::Truncated {
            offset: bytes.len() - bytes.len() % ENTRY_BYTES,
            what: "head entry",
        });
    }
    Ok(bytes
        .chunks_exact(ENTRY_BYTES)
        .map(|c| Entry::decode(c.try_into().expect("chunks_exact gives 16 bytes")))
        .collect())
}

/// The points of a window from its head entries: one per time, sorted by time, the
/// entry with the greatest (stamp, value bits) winning. Order-independent and
/// idempotent (see the module docs).
#[must_use]
pub fn merge(window_start: i64, entries: &[Entry]) -> Vec<Point> {
    let mut sorted = entries.to_vec();
    // Sort by time, then by the winning key descending, so the first entry of each time wins.
    sorted.sort_unstable_by(|a, b| {
        a.time_offset
            .cmp(&b.time_offset)
            .then_with(|| (b.stamp_rel_ms, b.value_bits).cmp(&(a.stamp_rel_ms, a.value_bits)))
    });
    sorted.dedup_by_key(|e| e.time_offset);
    sorted.iter().map(|e| e.point(window_start)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn later_stamp_wins_regardless_of_order() {
        let w = 86_400;
        let old = Entry::new(w, Point::new(w + 60, 1.0), w * 1000 + 5).unwrap();
        let new = Entry::new(w, Point::new(w + 60, 2.0), w * 1000 + 9).unwrap();
        let other = Entry::new(w, Point::new(w, 7.0), w * 1000 + 1).unwrap();
        let a = merge(w, &[old, new, other]);
        let b = merge(w, &[new, other, old, old]);
        assert_eq!(a, b);
        assert_eq!(a, vec![Point::new(w, 7.0), Point::new(w + 60, 2.0)]);
    }

    #[test]
    fn entry_bytes_are_frozen() {
        let e = Entry::new(100, Point::new(101, -0.0), 100_000 - 3).unwrap();
        let mut out = Vec::new();
        e.encode_into(&mut out);
        assert_eq!(out.len(), ENTRY_BYTES);
        insta::assert_snapshot!(out.iter().map(|b| format!("{b:02x}")).collect::<String>());
        assert_eq!(entries(&out).unwrap(), vec![e]);
        assert!(entries(&out[..15]).is_err());
    }

    #[test]
    fn out_of_range_is_refused() {
        assert!(Entry::new(100, Point::new(99, 1.0), 0).is_none());
        assert!(Entry::new(0, Point::new(0, 1.0), i64::from(i32::MAX) + 1).is_none());
    }

    proptest! {
        #[test]
        fn merge_is_order_and_repeat_independent(
            raw in proptest::collection::vec((0u32..50, -5i32..5, any::<u64>()), 0..60),
            seed in any::<u64>(),
        ) {
            let es: Vec<Entry> = raw.iter().map(|&(t, s, v)| Entry { time_offset: t, stamp_rel_ms: s, value_bits: v }).collect();
            let mut shuffled = es.clone();
            // A cheap deterministic shuffle plus repeats: what a replay does to the log.
            let n = shuffled.len().max(1);
            shuffled.rotate_left(usize::try_from(seed % n as u64).unwrap());
            shuffled.extend(es.iter().take(usize::try_from(seed % 7).unwrap()));
            let a: Vec<(i64, u64)> = merge(0, &es).iter().map(|p| (p.time, p.value.to_bits())).collect();
            let b: Vec<(i64, u64)> = merge(0, &shuffled).iter().map(|p| (p.time, p.value.to_bits())).collect();
            prop_assert_eq!(a, b);
        }
    }
}
