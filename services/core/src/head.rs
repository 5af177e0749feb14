//! The head: what the writer appends to the Redis head, one window per key, and the
//! deterministic merge that turns it back into the window's points.
//!
//! Two formats (docs/formats.md, "Head entry (Redis)" and "Head v2"):
//! - **v2** ([`blocks`], what this build writes): a Redis LIST per window, a 16-byte
//!   [`Header`] and one block per append — a few points as self-contained 12–13-byte
//!   entries, more as a stamped chunk (1–3 bytes per point). A LIST grows by the
//!   element, not by doubling as `APPEND` grows a string, so the head costs what its
//!   blocks weigh.
//! - **v1** ([`Entry`]): a string of 16-byte entries grown by `APPEND`, read (and moved
//!   into a v2 list by the next append) for the windows a v1 writer opened:
//!
//! ```text
//! offset 0  u32 LE  time − window start, seconds           (0 ≤ offset < window length)
//! offset 4  i32 LE  ingest stamp − window start·1000, ms    (the record's stamp)
//! offset 8  u64 LE  value, IEEE-754 bits
//! ```
//!
//! A replay appends the same points again. [`head_points`] (via [`decode`] and
//! [`latest_per_time`]) turns any multiset of appended points into the window's points:
//! one per time, the one with the greatest (stamp in whole seconds, value bits) — the
//! [`Stamped::wins`] order, which is also how a flush merges the head into what the
//! table already stores ([`merge_stored`]). The result depends only on the set of
//! points, never on their order, repetition, on how they were split into blocks or on
//! which tier held them, so a replay — of any prefix, suffix or the whole log — flushes
//! the same bytes, and a replayed old record cannot undo a newer value (its stamp is
//! smaller).
//!
//! Stamps compare in whole seconds: the stored item keeps one stamp per point, and
//! seconds cost a fraction of a bit per point where milliseconds cost ~10 bits
//! (docs/write-path.md). Two writes of one point within the same second are ordered by
//! their value bits: deterministic, if arbitrary.

pub mod blocks;

pub use blocks::{
    append_to, assemble, block_points, decode, encode_block, identity, is_v2, Header, Identity,
    HEADER_BYTES,
};

use crate::error::ChunkError;
use crate::point::Point;

/// Bytes per v1 head entry.
pub const ENTRY_BYTES: usize = 16;

/// One point as a v1 head stores it.
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

    /// The ingest stamp of this entry in whole epoch seconds (floor).
    #[must_use]
    pub fn stamp_secs(&self, window_start: i64) -> i64 {
        window_start
            .saturating_mul(1000)
            .saturating_add(i64::from(self.stamp_rel_ms))
            .div_euclid(1000)
    }

    /// This entry as a stamped point.
    #[must_use]
    pub fn stamped(&self, window_start: i64) -> Stamped {
        Stamped {
            time: window_start + i64::from(self.time_offset),
            value_bits: self.value_bits,
            stamp: self.stamp_secs(window_start),
        }
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

/// Decodes a v1 head byte string into its entries, in append order.
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

/// A point with the ingest stamp (epoch seconds) of the write that gave it its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamped {
    pub time: i64,
    pub value_bits: u64,
    pub stamp: i64,
}

impl Stamped {
    /// `point` as written by a record stamped `stamp_ms` (milliseconds; kept in whole
    /// seconds, floor).
    #[must_use]
    pub fn new(point: Point, stamp_ms: i64) -> Self {
        Self {
            time: point.time,
            value_bits: point.value.to_bits(),
            stamp: stamp_ms.div_euclid(1000),
        }
    }

    #[must_use]
    pub fn point(&self) -> Point {
        Point::new(self.time, f64::from_bits(self.value_bits))
    }

    /// Whether `self` replaces `other` for the same time: the greater (stamp, value
    /// bits) wins. A total order, so merges are order-independent.
    #[must_use]
    pub fn wins(&self, other: &Self) -> bool {
        (self.stamp, self.value_bits) > (other.stamp, other.value_bits)
    }
}

/// The points of a window from its head entries: one per time, sorted by time, the
/// entry that [`Stamped::wins`] kept. Order-independent and idempotent (see the module docs).
#[must_use]
pub fn merge_stamped(window_start: i64, entries: &[Entry]) -> Vec<Stamped> {
    latest_per_time(entries.iter().map(|e| e.stamped(window_start)).collect())
}

/// Any stamped points ⇒ one per time, sorted by time, the one that [`Stamped::wins`].
#[must_use]
pub fn latest_per_time(mut points: Vec<Stamped>) -> Vec<Stamped> {
    // Sort by time, then by the winning key descending, so the first point of each time wins.
    points.sort_unstable_by(|a, b| {
        a.time
            .cmp(&b.time)
            .then_with(|| (b.stamp, b.value_bits).cmp(&(a.stamp, a.value_bits)))
    });
    points.dedup_by_key(|p| p.time);
    points
}

/// The points of a window from its head bytes (v1 or v2; empty: none): one per time,
/// sorted by time, the one that [`Stamped::wins`].
///
/// # Errors
/// As [`decode`].
pub fn head_points(window_start: i64, bytes: &[u8]) -> Result<Vec<Stamped>, ChunkError> {
    decode(window_start, bytes).map(latest_per_time)
}

/// [`merge_stamped`] without the stamps.
#[must_use]
pub fn merge(window_start: i64, entries: &[Entry]) -> Vec<Point> {
    merge_stamped(window_start, entries)
        .iter()
        .map(Stamped::point)
        .collect()
}

/// The flush merge: the union of what the table stores and what the head holds, one
/// point per time, the winner by [`Stamped::wins`] where both have one. Both inputs
/// are sorted by time with one point per time (what [`merge_stamped`] and a decoded
/// item give). The result never lacks a time of either input and never holds an older
/// value than either: the flush invariant, point by point.
#[must_use]
pub fn merge_stored(stored: &[Stamped], head: &[Stamped]) -> Vec<Stamped> {
    let mut out = Vec::with_capacity(stored.len() + head.len());
    let (mut i, mut j) = (0, 0);
    while i < stored.len() && j < head.len() {
        let (a, b) = (stored[i], head[j]);
        match a.time.cmp(&b.time) {
            std::cmp::Ordering::Less => {
                out.push(a);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(if b.wins(&a) { b } else { a });
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&stored[i..]);
    out.extend_from_slice(&head[j..]);
    out
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

    fn st(time: i64, value_bits: u64, stamp: i64) -> Stamped {
        Stamped {
            time,
            value_bits,
            stamp,
        }
    }

    #[test]
    fn stamps_compare_in_seconds() {
        let w = 86_400;
        // 400 ms apart, same second: the greater value bits wins, whatever came first.
        let a = Entry::new(w, Point::new(w, 2.0), w * 1000 + 100).unwrap();
        let b = Entry::new(w, Point::new(w, 1.0), w * 1000 + 500).unwrap();
        assert_eq!(merge(w, &[a, b]), vec![Point::new(w, 2.0)]);
        assert_eq!(a.stamp_secs(w), w);
        let before = Entry::new(w, Point::new(w, 1.0), w * 1000 - 1).unwrap();
        assert_eq!(before.stamp_secs(w), w - 1);
    }

    #[test]
    fn stored_merge_keeps_every_time_and_the_newest_value() {
        let stored = [st(0, 10, 5), st(60, 11, 5), st(120, 12, 9)];
        let head = [st(60, 21, 7), st(120, 22, 8), st(180, 23, 1)];
        assert_eq!(
            merge_stored(&stored, &head),
            vec![st(0, 10, 5), st(60, 21, 7), st(120, 12, 9), st(180, 23, 1)]
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn v2_bytes_are_frozen() {
        let w = 86_400;
        let header = Header {
            appended: 3,
            nonce: 0x0102_0304_0506_0708,
        };
        // One point (an agent's minutely post): a one-point block.
        let one = encode_block(w, &[st(w + 60, 2.5f64.to_bits(), w + 61)]);
        assert_eq!(one[0], blocks::BLOCK_ONE);
        // A few points of noise: entries (no chunk codes them shorter).
        let few: Vec<Stamped> = [
            (86_340, 0x9e37_79b9_7f4a_7c15, 86_400),
            (17, 0x3fb9_9999_9999_999a, 86_401),
            (86_000, 0xbff0_1234_5678_9abc, -3),
        ]
        .iter()
        .map(|&(t, v, s)| st(w + t, v, w + s))
        .collect();
        let three = encode_block(w, &few);
        assert_eq!(three[0], blocks::BLOCK_ENTRIES);
        // A batch of an hour's points: a chunk block.
        let batch: Vec<Stamped> = (0..60)
            .map(|i| st(w + 60 * i, (10.0 + i as f64 / 4.0).to_bits(), w + 3600))
            .collect();
        let many = encode_block(w, &batch);
        assert_eq!(many[0], blocks::BLOCK_CHUNK);
        let bytes = assemble(
            &header.encode(),
            [one.as_slice(), three.as_slice(), many.as_slice()],
        );
        insta::assert_snapshot!(format!(
            "header {}\none-point block {}\nentries block {}\nchunk block {} ({} bytes for 60 points)\nhead bytes {}",
            hex(&header.encode()),
            hex(&one),
            hex(&three),
            hex(&many),
            many.len(),
            hex(&bytes)
        ));
        let mut want = vec![st(w + 60, 2.5f64.to_bits(), w + 61)];
        want.extend(&few);
        want.extend(&batch);
        assert_eq!(decode(w, &bytes).unwrap(), want);
        assert_eq!(Header::parse(&bytes).unwrap(), header);
        assert_eq!(block_points(&one).unwrap(), 1);
        assert_eq!(block_points(&three).unwrap(), 3);
        assert_eq!(one.len(), 5, "kind, time, stamp and 2 value bytes");
        assert_eq!(block_points(&many).unwrap(), 60);
    }

    #[test]
    fn v1_heads_still_read_and_move_into_a_list_on_append() {
        let w = 86_400;
        let v1: Vec<Entry> = [(w, 1.0, w * 1000 + 5), (w + 60, 2.0, w * 1000 + 1500)]
            .iter()
            .map(|&(t, v, s)| Entry::new(w, Point::new(t, v), s).unwrap())
            .collect();
        let mut bytes = Vec::new();
        for e in &v1 {
            e.encode_into(&mut bytes);
        }
        assert!(!is_v2(&bytes));
        assert_eq!(identity(&bytes).unwrap(), Identity::V1 { len: 32 });
        let before = head_points(w, &bytes).unwrap();
        assert_eq!(before, merge_stamped(w, &v1));
        let newer = st(w + 60, 9.0f64.to_bits(), w + 2);
        let mut head = bytes.clone();
        assert_eq!(
            append_to(&mut head, &encode_block(w, &[newer]), 7).unwrap(),
            3
        );
        assert!(is_v2(&head));
        assert_eq!(
            Header::parse(&head).unwrap(),
            Header {
                appended: 3,
                nonce: 7
            }
        );
        assert_eq!(
            head_points(w, &head).unwrap(),
            vec![before[0], newer],
            "the v1 points stay; the newer stamp wins"
        );
        // The same v1 bytes as a block of a list give the same points.
        let listed = assemble(&head[..HEADER_BYTES], [blocks::v1_block(&v1).as_slice()]);
        assert_eq!(head_points(w, &listed).unwrap(), before);
    }

    #[test]
    fn identity_changes_with_every_append_and_incarnation() {
        let w = 0;
        let b = encode_block(w, &[st(1, 1, 1)]);
        let mut a = Vec::new();
        assert_eq!(identity(&a).unwrap(), Identity::Absent);
        append_to(&mut a, &b, 1).unwrap();
        let first = identity(&a).unwrap();
        append_to(&mut a, &b, 99).unwrap();
        assert_ne!(identity(&a).unwrap(), first);
        let mut again = Vec::new();
        append_to(&mut again, &b, 2).unwrap();
        assert_ne!(
            identity(&again).unwrap(),
            first,
            "a new key has another nonce"
        );
        assert!(append_to(&mut a, &[9, 9], 1).is_err(), "unknown block kind");
        assert!(block_points(&[]).is_err());
    }

    proptest! {
        /// merge_stored(merge(A), merge(B)) == merge(A ∪ B): splitting the entries
        /// between the table and the head changes nothing, in any split.
        #[test]
        fn stored_merge_equals_merging_everything(
            raw in proptest::collection::vec((0u32..30, -3000i32..3000, 0u64..4, any::<bool>()), 0..60),
        ) {
            let es: Vec<(Entry, bool)> = raw.iter().map(|&(t, s, v, side)| (Entry { time_offset: t, stamp_rel_ms: s, value_bits: v }, side)).collect();
            let all: Vec<Entry> = es.iter().map(|(e, _)| *e).collect();
            let a: Vec<Entry> = es.iter().filter(|(_, s)| *s).map(|(e, _)| *e).collect();
            let b: Vec<Entry> = es.iter().filter(|(_, s)| !*s).map(|(e, _)| *e).collect();
            let split = merge_stored(&merge_stamped(1000, &a), &merge_stamped(1000, &b));
            prop_assert_eq!(split, merge_stamped(1000, &all));
        }

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

        /// Any stamped points, split into any blocks, decode to exactly those points in
        /// order; and the merged window equals the v1 merge of the same entries.
        #[test]
        fn blocks_round_trip_and_merge_like_v1(
            raw in proptest::collection::vec((0u32..600, -40_000i32..40_000, prop_oneof![any::<u64>(), 0u64..4, Just(0x4059_0000_0000_0000u64)]), 0..80),
            cuts in proptest::collection::vec(0usize..80, 0..6),
            nonce in any::<u64>(),
        ) {
            let w = 86_400 * 3;
            let es: Vec<Entry> = raw.iter().map(|&(t, s, v)| Entry { time_offset: t, stamp_rel_ms: s, value_bits: v }).collect();
            let pts: Vec<Stamped> = es.iter().map(|e| e.stamped(w)).collect();
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (pts.len() + 1)).collect();
            bounds.push(0);
            bounds.push(pts.len());
            bounds.sort_unstable();
            bounds.dedup();
            let mut head = Vec::new();
            for r in bounds.windows(2) {
                append_to(&mut head, &encode_block(w, &pts[r[0]..r[1]]), nonce).unwrap();
            }
            if pts.is_empty() {
                prop_assert!(head.is_empty());
            } else {
                prop_assert_eq!(Header::parse(&head).unwrap().appended as usize, pts.len());
            }
            prop_assert_eq!(&decode(w, &head).unwrap(), &pts);
            prop_assert_eq!(head_points(w, &head).unwrap(), merge_stamped(w, &es));
        }

        /// Any i64 times and stamps and any value bits round-trip in a block.
        #[test]
        fn any_block_round_trips(
            pts in proptest::collection::vec((any::<i64>(), any::<u64>(), any::<i64>()), 1..20),
            w in any::<i64>(),
        ) {
            let pts: Vec<Stamped> = pts.iter().map(|&(t, v, s)| st(t, v, s)).collect();
            let mut head = Vec::new();
            append_to(&mut head, &encode_block(w, &pts), 0).unwrap();
            prop_assert_eq!(decode(w, &head).unwrap(), pts);
        }

        /// Whatever the bytes, decoding never panics.
        #[test]
        fn decoding_any_bytes_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            v2 in any::<bool>(),
        ) {
            let mut b = bytes.clone();
            if v2 {
                let mut h = Header { appended: 1, nonce: 2 }.encode().to_vec();
                h.extend_from_slice(&bytes);
                b = h;
            }
            let _ = decode(0, &b);
            let _ = identity(&b);
            let _ = block_points(&bytes);
            let mut head = b.clone();
            let _ = append_to(&mut head, &bytes, 0);
        }
    }
}
