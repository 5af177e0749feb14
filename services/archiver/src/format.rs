//! Archive object format v1: one S3 object holds blocks of many series of one tenant,
//! sorted by series name, with an index at the end (docs/formats.md, "Archive").
//!
//! ```text
//! u8      version (1)
//! u8      kind: 1 = windows (staged and day objects), 2 = rollups (month objects)
//! …       the blocks, one per series, in index order, back to back
//! index:  varint N, the number of series
//!         N × { varint shared: bytes in common with the previous name (0 first)
//!               varint suffix length, suffix bytes (name = previous[..shared] + suffix)
//!               varint block length }
//! u32 LE  index length, bytes
//! u8      kind (again, so a suffix read checks it)
//! u8      version (again)
//! ```
//!
//! Names are strictly ascending, so a reader finds a series by binary search, and the
//! block of the i-th series starts at 2 + the lengths of the blocks before it. A reader
//! fetches the footer and the index with one suffix range GET and a block with one range
//! GET (docs/formats.md has the read plan).
//!
//! A windows block holds window items (a chunk v2, or one part of one):
//!
//! ```text
//! varint M, the number of items
//! M × { zz sk; u8 chunk version; varint parts (1..=10); varint count (u32);
//!       zz expires_at; varint hash length (≤ 32), hash; varint body length, body;
//!       varint A, A × { varint length (≤ 32), hash } }
//! ```
//!
//! The `A` hashes (ascending, distinct) are the split versions (`parts` > 1) a merged
//! window of a day object has absorbed: a stray part of one of them that arrives again
//! (a replayed batch) is known to be included and dropped, instead of waiting forever
//! for siblings that were consumed already. Staged items have none.
//!
//! sorted by (sk, hash, body), no item twice. A rollups block is a rollup body v1
//! (`carat_writer::rollup`).
//!
//! Decoders never panic and bound their allocations by the bytes they were given.

use std::collections::BTreeMap;

use carat_store::ports::MAX_WINDOW_PARTS;
use thiserror::Error;

/// Format version of archive objects.
pub const VERSION: u8 = 1;

/// Bytes after the index: its length (u32 LE), the kind, the version.
pub const FOOTER_BYTES: usize = 6;

/// Longest content hash a window item may carry (the writer's is 16 bytes).
pub const MAX_HASH_BYTES: usize = 32;

/// What the blocks of an object hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Window items: staged objects and day objects.
    Windows,
    /// Rollup bodies: month objects.
    Rollups,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Self::Windows => 1,
            Self::Rollups => 2,
        }
    }

    fn from_byte(b: u8, offset: usize) -> Result<Self, FormatError> {
        match b {
            1 => Ok(Self::Windows),
            2 => Ok(Self::Rollups),
            _ => Err(FormatError::Corrupt {
                offset,
                what: "object kind",
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FormatError {
    #[error("archive object is empty")]
    Empty,
    #[error("archive object format version {0} is not supported (this build reads version 1)")]
    UnsupportedVersion(u8),
    #[error("archive object is truncated at byte {offset}: {what}")]
    Truncated { offset: usize, what: &'static str },
    #[error("archive object is corrupt at byte {offset}: {what}")]
    Corrupt { offset: usize, what: &'static str },
    #[error("archive object is a {found:?} object, not a {expected:?} object")]
    WrongKind { expected: Kind, found: Kind },
}

/// One window item as the archive keeps it: a [`carat_store::ports::WindowItem`]
/// without its `pk` (the series is the block's, the tenant the object's).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Part {
    pub sk: i64,
    pub hash: Vec<u8>,
    pub body: Vec<u8>,
    pub version: u8,
    pub parts: u32,
    pub count: u32,
    pub expires_at: i64,
    /// Hashes of split versions merged into this window (see the module docs).
    pub absorbed: Vec<Vec<u8>>,
}

/// Where one series' block lies in an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub series: String,
    pub offset: u64,
    pub len: u64,
}

/// The decoded index of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub kind: Kind,
    /// Ascending by series name.
    pub entries: Vec<IndexEntry>,
}

impl Index {
    /// The block of `series`, if the object holds it.
    #[must_use]
    pub fn find(&self, series: &str) -> Option<&IndexEntry> {
        self.entries
            .binary_search_by(|e| e.series.as_str().cmp(series))
            .ok()
            .map(|i| &self.entries[i])
    }
}

/// The footer of an object: its kind and index length. `tail` is at least the last
/// [`FOOTER_BYTES`] of the object.
///
/// # Errors
/// [`FormatError`] if `tail` is short or the footer is not version 1.
pub fn footer(tail: &[u8]) -> Result<(Kind, usize), FormatError> {
    if tail.is_empty() {
        return Err(FormatError::Empty);
    }
    if tail.len() < FOOTER_BYTES {
        return Err(FormatError::Truncated {
            offset: tail.len(),
            what: "footer",
        });
    }
    let f = &tail[tail.len() - FOOTER_BYTES..];
    if f[5] != VERSION {
        return Err(FormatError::UnsupportedVersion(f[5]));
    }
    let kind = Kind::from_byte(f[4], tail.len() - 2)?;
    let len = u32::from_le_bytes([f[0], f[1], f[2], f[3]]);
    Ok((kind, usize::try_from(len).unwrap_or(usize::MAX)))
}

/// Encodes an object of `kind` from blocks by series name.
#[must_use]
pub fn encode_object(kind: Kind, blocks: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let body: usize = blocks.values().map(Vec::len).sum();
    let mut out = Vec::with_capacity(2 + body + blocks.len() * 16 + FOOTER_BYTES);
    out.push(VERSION);
    out.push(kind.byte());
    for block in blocks.values() {
        out.extend_from_slice(block);
    }
    let index_start = out.len();
    put_varint(&mut out, blocks.len() as u64);
    let mut prev: &str = "";
    for (name, block) in blocks {
        let shared = common_prefix(prev, name);
        put_varint(&mut out, shared as u64);
        put_varint(&mut out, (name.len() - shared) as u64);
        out.extend_from_slice(&name.as_bytes()[shared..]);
        put_varint(&mut out, block.len() as u64);
        prev = name;
    }
    let index_len = u32::try_from(out.len() - index_start).unwrap_or(u32::MAX);
    out.extend_from_slice(&index_len.to_le_bytes());
    out.push(kind.byte());
    out.push(VERSION);
    out
}

/// Bytes `a` and `b` share at the start, on a char boundary.
fn common_prefix(a: &str, b: &str) -> usize {
    let mut n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    while !b.is_char_boundary(n) {
        n -= 1;
    }
    n
}

/// Decodes an index: `index` is the index bytes (without the footer) of an object of
/// `kind` whose index starts at byte `index_start`.
///
/// # Errors
/// [`FormatError`] if the index is malformed or its blocks do not fill `2..index_start`.
pub fn decode_index(kind: Kind, index: &[u8], index_start: u64) -> Result<Index, FormatError> {
    let mut r = Reader::new(index);
    let n = r.varint("series count")?;
    // Every entry takes at least 3 bytes.
    if n > (r.remaining() / 3) as u64 {
        return Err(r.corrupt("series count"));
    }
    let mut entries: Vec<IndexEntry> = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let mut offset: u64 = 2;
    let mut prev: Vec<u8> = Vec::new();
    for _ in 0..n {
        let shared = usize::try_from(r.varint("shared prefix")?).unwrap_or(usize::MAX);
        if shared > prev.len() {
            return Err(r.corrupt("shared prefix"));
        }
        let suffix_len = usize::try_from(r.varint("name length")?).unwrap_or(usize::MAX);
        let suffix = r.bytes(suffix_len, "name")?;
        let mut name = prev[..shared].to_vec();
        name.extend_from_slice(suffix);
        if name.is_empty() || (!entries.is_empty() && name <= prev) {
            return Err(r.corrupt("series names not strictly ascending"));
        }
        let len = r.varint("block length")?;
        let series = String::from_utf8(name.clone()).map_err(|_| r.corrupt("series name"))?;
        entries.push(IndexEntry {
            series,
            offset,
            len,
        });
        offset = offset
            .checked_add(len)
            .filter(|&o| o <= index_start)
            .ok_or_else(|| r.corrupt("block length"))?;
        prev = name;
    }
    if r.remaining() != 0 {
        return Err(r.corrupt("trailing bytes after the index"));
    }
    if offset != index_start {
        return Err(FormatError::Corrupt {
            offset: 2,
            what: "blocks do not fill the object",
        });
    }
    Ok(Index { kind, entries })
}

/// The blocks of an object by series name, ascending.
pub type Blocks<'a> = Vec<(String, &'a [u8])>;

/// Decodes a whole object into its kind and its blocks by series, ascending.
///
/// # Errors
/// [`FormatError`] if the bytes are not an archive object v1.
pub fn decode_object(bytes: &[u8]) -> Result<(Kind, Blocks<'_>), FormatError> {
    let index = read_index(bytes)?;
    let blocks = index
        .entries
        .into_iter()
        .map(|e| {
            let (from, to) = (
                usize::try_from(e.offset).unwrap_or(usize::MAX),
                usize::try_from(e.offset + e.len).unwrap_or(usize::MAX),
            );
            (e.series, &bytes[from..to])
        })
        .collect();
    Ok((index.kind, blocks))
}

/// The index of a whole object (also checks its header).
///
/// # Errors
/// [`FormatError`] if the bytes are not an archive object v1.
pub fn read_index(bytes: &[u8]) -> Result<Index, FormatError> {
    if bytes.is_empty() {
        return Err(FormatError::Empty);
    }
    if bytes[0] != VERSION {
        return Err(FormatError::UnsupportedVersion(bytes[0]));
    }
    if bytes.len() < 2 + FOOTER_BYTES {
        return Err(FormatError::Truncated {
            offset: bytes.len(),
            what: "header and footer",
        });
    }
    let (kind, index_len) = footer(bytes)?;
    if Kind::from_byte(bytes[1], 1)? != kind {
        return Err(FormatError::Corrupt {
            offset: 1,
            what: "header and footer kinds differ",
        });
    }
    let end = bytes.len() - FOOTER_BYTES;
    if index_len > end - 2 {
        return Err(FormatError::Corrupt {
            offset: end,
            what: "index length",
        });
    }
    let start = end - index_len;
    decode_index(kind, &bytes[start..end], start as u64)
}

/// Encodes a windows block: `parts` are sorted and deduplicated here.
#[must_use]
pub fn encode_parts(parts: &[Part]) -> Vec<u8> {
    let mut sorted: Vec<&Part> = parts.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.body.len() + 40).sum());
    put_varint(&mut out, sorted.len() as u64);
    for p in sorted {
        put_varint(&mut out, zigzag(p.sk));
        out.push(p.version);
        put_varint(&mut out, u64::from(p.parts));
        put_varint(&mut out, u64::from(p.count));
        put_varint(&mut out, zigzag(p.expires_at));
        put_varint(&mut out, p.hash.len() as u64);
        out.extend_from_slice(&p.hash);
        put_varint(&mut out, p.body.len() as u64);
        out.extend_from_slice(&p.body);
        put_varint(&mut out, p.absorbed.len() as u64);
        for h in &p.absorbed {
            put_varint(&mut out, h.len() as u64);
            out.extend_from_slice(h);
        }
    }
    out
}

/// Decodes a windows block.
///
/// # Errors
/// [`FormatError`] if the block is malformed (fields out of range, not sorted, trailing bytes).
pub fn decode_parts(block: &[u8]) -> Result<Vec<Part>, FormatError> {
    let mut r = Reader::new(block);
    let m = r.varint("item count")?;
    // Every item takes at least 8 bytes.
    if m > (r.remaining() / 8) as u64 {
        return Err(r.corrupt("item count"));
    }
    let mut parts: Vec<Part> = Vec::with_capacity(usize::try_from(m).unwrap_or(0));
    for _ in 0..m {
        let sk = unzigzag(r.varint("sk")?);
        let version = r.byte("chunk version")?;
        let n = r.varint("parts")?;
        if n == 0 || n > MAX_WINDOW_PARTS as u64 {
            return Err(r.corrupt("parts"));
        }
        let count = u32::try_from(r.varint("count")?).map_err(|_| r.corrupt("count"))?;
        let expires_at = unzigzag(r.varint("expires_at")?);
        let hash_len = usize::try_from(r.varint("hash length")?).unwrap_or(usize::MAX);
        if hash_len > MAX_HASH_BYTES {
            return Err(r.corrupt("hash length"));
        }
        let hash = r.bytes(hash_len, "hash")?.to_vec();
        let body_len = usize::try_from(r.varint("body length")?).unwrap_or(usize::MAX);
        let body = r.bytes(body_len, "body")?.to_vec();
        let a = r.varint("absorbed count")?;
        if a > r.remaining() as u64 {
            return Err(r.corrupt("absorbed count"));
        }
        let mut absorbed: Vec<Vec<u8>> = Vec::with_capacity(usize::try_from(a).unwrap_or(0));
        for _ in 0..a {
            let len = usize::try_from(r.varint("absorbed hash length")?).unwrap_or(usize::MAX);
            if len > MAX_HASH_BYTES {
                return Err(r.corrupt("absorbed hash length"));
            }
            let h = r.bytes(len, "absorbed hash")?.to_vec();
            if absorbed.last().is_some_and(|prev| *prev >= h) {
                return Err(r.corrupt("absorbed hashes not strictly ascending"));
            }
            absorbed.push(h);
        }
        let part = Part {
            sk,
            hash,
            body,
            version,
            parts: u32::try_from(n).map_err(|_| r.corrupt("parts"))?,
            count,
            expires_at,
            absorbed,
        };
        if parts.last().is_some_and(|prev| *prev >= part) {
            return Err(r.corrupt("items not strictly ascending"));
        }
        parts.push(part);
    }
    if r.remaining() != 0 {
        return Err(r.corrupt("trailing bytes after the items"));
    }
    Ok(parts)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn corrupt(&self, what: &'static str) -> FormatError {
        FormatError::Corrupt {
            offset: self.pos,
            what,
        }
    }

    fn truncated(&self, what: &'static str) -> FormatError {
        FormatError::Truncated {
            offset: self.pos,
            what,
        }
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, FormatError> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| self.truncated(what))?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self, what: &'static str) -> Result<u64, FormatError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.byte(what)?;
            let low = u64::from(b & 0x7f);
            if i == 9 && low > 1 {
                return Err(self.corrupt(what));
            }
            v |= low << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.corrupt(what))
    }

    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], FormatError> {
        if n > self.remaining() {
            return Err(self.truncated(what));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn part(sk: i64, body: &[u8]) -> Part {
        Part {
            sk,
            hash: vec![0xab; 4],
            body: body.to_vec(),
            version: 2,
            parts: 1,
            count: 3,
            expires_at: 1_700_086_400,
            absorbed: Vec::new(),
        }
    }

    /// Frozen bytes of a windows object with two series (docs/formats.md shows them).
    #[test]
    fn object_bytes_are_frozen() {
        let mut blocks = BTreeMap::new();
        blocks.insert(
            "host.h1.cpu".to_string(),
            encode_parts(&[part(1_700_000_000, b"xy")]),
        );
        blocks.insert(
            "host.h1.mem".to_string(),
            encode_parts(&[part(1_700_000_000, b"z"), part(1_700_000_001, b"")]),
        );
        let bytes = encode_object(Kind::Windows, &blocks);
        insta::assert_snapshot!(hex::encode(&bytes));
        let (kind, decoded) = decode_object(&bytes).unwrap();
        assert_eq!(kind, Kind::Windows);
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[1].0, "host.h1.mem");
        assert_eq!(decode_parts(decoded[1].1).unwrap()[1].sk, 1_700_000_001);
    }

    #[test]
    fn an_empty_object_round_trips() {
        let bytes = encode_object(Kind::Rollups, &BTreeMap::new());
        assert_eq!(bytes, [1, 2, 0, 1, 0, 0, 0, 2, 1]);
        let (kind, blocks) = decode_object(&bytes).unwrap();
        assert_eq!(kind, Kind::Rollups);
        assert!(blocks.is_empty());
    }

    #[test]
    fn bad_objects_are_typed_errors() {
        assert_eq!(decode_object(&[]).unwrap_err(), FormatError::Empty);
        assert_eq!(
            decode_object(&[9, 1, 0, 1, 0, 0, 0, 1, 9]).unwrap_err(),
            FormatError::UnsupportedVersion(9)
        );
        let good = encode_object(Kind::Windows, &BTreeMap::new());
        let mut bad = good.clone();
        bad[1] = 2;
        assert!(matches!(
            decode_object(&bad),
            Err(FormatError::Corrupt { .. })
        ));
        // Unsorted items in a block.
        let mut block = Vec::new();
        put_varint(&mut block, 2);
        for p in [part(5, b"a"), part(4, b"a")] {
            let one = encode_parts(&[p]);
            block.extend_from_slice(&one[1..]);
        }
        assert!(matches!(
            decode_parts(&block),
            Err(FormatError::Corrupt { .. })
        ));
    }

    fn arb_part() -> impl Strategy<Value = Part> {
        (
            any::<i64>(),
            proptest::collection::vec(any::<u8>(), 0..=32),
            proptest::collection::vec(any::<u8>(), 0..40),
            any::<u8>(),
            1u32..=10,
            any::<u32>(),
            any::<i64>(),
            proptest::collection::btree_set(proptest::collection::vec(any::<u8>(), 0..=32), 0..3),
        )
            .prop_map(
                |(sk, hash, body, version, parts, count, expires_at, absorbed)| Part {
                    sk,
                    hash,
                    body,
                    version,
                    parts,
                    count,
                    expires_at,
                    absorbed: absorbed.into_iter().collect(),
                },
            )
    }

    proptest! {
        #[test]
        fn objects_round_trip(
            blocks in proptest::collection::btree_map(
                "[a-z.]{1,12}",
                proptest::collection::vec(arb_part(), 0..4),
                0..6,
            )
        ) {
            let encoded: BTreeMap<String, Vec<u8>> =
                blocks.iter().map(|(k, v)| (k.clone(), encode_parts(v))).collect();
            let bytes = encode_object(Kind::Windows, &encoded);
            let (kind, decoded) = decode_object(&bytes).unwrap();
            prop_assert_eq!(kind, Kind::Windows);
            prop_assert_eq!(decoded.len(), blocks.len());
            for ((name, block), (want_name, want)) in decoded.iter().zip(&blocks) {
                prop_assert_eq!(name, want_name);
                let mut want = want.clone();
                want.sort();
                want.dedup();
                prop_assert_eq!(decode_parts(block).unwrap(), want);
            }
            // The index alone, as a reader gets it from a suffix read.
            let (_, index_len) = footer(&bytes).unwrap();
            let end = bytes.len() - FOOTER_BYTES;
            let index = decode_index(kind, &bytes[end - index_len..end], (end - index_len) as u64).unwrap();
            for name in blocks.keys() {
                prop_assert!(index.find(name).is_some());
            }
            prop_assert!(index.find("~absent").is_none());
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_object(&bytes);
            let _ = decode_parts(&bytes);
            let _ = footer(&bytes);
            let _ = decode_index(Kind::Windows, &bytes, 1_000);
        }

        #[test]
        fn mutated_objects_never_panic(
            blocks in proptest::collection::btree_map(
                "[a-z]{1,6}",
                proptest::collection::vec(arb_part(), 0..3),
                1..4,
            ),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
            cut in any::<usize>(),
        ) {
            let encoded: BTreeMap<String, Vec<u8>> =
                blocks.iter().map(|(k, v)| (k.clone(), encode_parts(v))).collect();
            let mut bytes = encode_object(Kind::Windows, &encoded);
            for (at, x) in flips {
                let n = bytes.len();
                bytes[at % n] ^= x;
            }
            if let Ok((_, blocks)) = decode_object(&bytes) {
                for (_, b) in blocks {
                    let _ = decode_parts(b);
                }
            }
            let n = bytes.len();
            let _ = decode_object(&bytes[..cut % n]);
        }
    }
}
