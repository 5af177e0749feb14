//! Head format v2: a window's head as a header and a list of blocks, one block per
//! append (docs/formats.md, "Head v2").
//!
//! In Redis the head of a window is a LIST: element 0 is the [`Header`], each further
//! element one block — the points one writer call appended to the window, coded on
//! their own (no block refers to another, so appending never reads). [`Head::read`]
//! (carat-store) hands the list back as one byte string, the *head bytes*: the header,
//! then every block as a varint length and its bytes ([`assemble`]). A v1 head (a
//! string of 16-byte entries, [`super::Entry`]) is told apart by bytes 2–3: `FF FF` in
//! a v2 header, while a v1 entry's time offset is below 2^21 (`window.raw_secs` ≤
//! `chunk::MAX_POINTS`), so its byte 2 is below `0x20`.
//!
//! A block is a kind byte and its payload:
//! - [`BLOCK_ENTRIES`] (few points: a live agent posting each minute appends one): a
//!   varint count, then per point zigzag(time − window start), zigzag(stamp − time) in
//!   seconds, and the value's 8 bytes: 12–13 bytes for a 1-minute point of a 1-day window;
//! - [`BLOCK_ONE`] (one point: what a live agent's minutely post appends to each of
//!   its windows, one batch at a time): zigzag(time − window start), zigzag(stamp −
//!   time), then the value's bits big-endian without their trailing zero bytes (the rest
//!   of the block: 0–8 bytes; 12.5 takes 2): 6–14 bytes for a 1-minute point of a 1-day
//!   window;
//! - [`BLOCK_CHUNK`] (more points: a batch, a replay): a stamped chunk
//!   (`chunk::encode_stamped`) of the points with times and stamps relative to the
//!   window start, in append order, repeats kept: 1–3 bytes per point on monitoring data;
//! - [`BLOCK_V1`]: the 16-byte entries of a v1 head, which the first v2 append to a
//!   window a v1 writer started moves into the list unchanged (the migration).
//!
//! Stamps are whole seconds, the unit every merge compares in (the v1 entry's
//! milliseconds were never used), so a block is the multiset of (time, value bits,
//! stamp) that its entries would have been, and [`decode`] gives the same points a v1
//! head of the same appends gives: flushes and replays write the same bytes.

use crate::chunk::{self, put_block, read_block, read_len, read_u64, varint};
use crate::error::ChunkError;
use crate::point::Point;

use super::{Entry, Stamped, ENTRY_BYTES};

/// Format version of a v2 head, byte 0 of its header.
pub const VERSION: u8 = 2;

/// Bytes of the header (list element 0).
pub const HEADER_BYTES: usize = 16;

/// Byte 1 of a v2 header.
const MAGIC: u8 = b'h';

/// Bytes 2–3 of a v2 header: no v1 head starts with them (see the module docs).
const MARK: [u8; 2] = [0xff, 0xff];

/// Block kind: 16-byte v1 entries (a v1 head moved into the list).
pub const BLOCK_V1: u8 = 1;
/// Block kind: a count, then self-contained entries.
pub const BLOCK_ENTRIES: u8 = 2;
/// Block kind: a stamped chunk of times and stamps relative to the window start.
pub const BLOCK_CHUNK: u8 = 3;
/// Block kind: one point, its value's trailing zero bytes dropped.
pub const BLOCK_ONE: u8 = 4;

/// Up to this many points a block is coded both ways and the smaller kept; above it,
/// always a chunk (which is then always smaller: a chunk's fixed cost is ~8 bytes, and
/// it saves more than that on 8 points of any shape).
const ENTRIES_MAX_POINTS: usize = 8;

/// The smallest entry of a [`BLOCK_ENTRIES`] block: two 1-byte varints and the value.
const MIN_ENTRY_BYTES: usize = 10;

/// Element 0 of a v2 head.
///
/// ```text
/// offset 0  u8      version = 2
/// offset 1  u8      'h'
/// offset 2  u8[2]   FF FF
/// offset 4  u32 LE  points appended so far, repeats included, mod 2^32
/// offset 8  u64 LE  nonce: random, drawn by the append that created the key
/// ```
///
/// The appended count drives the point-count flush threshold. The header as a whole is
/// the window's identity for `Head::settle`: every append raises the count, and a key
/// that was lost and created again has another nonce, so equal headers mean nothing
/// was appended since the flush read the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub appended: u32,
    pub nonce: u64,
}

impl Header {
    #[must_use]
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut out = [0u8; HEADER_BYTES];
        out[0] = VERSION;
        out[1] = MAGIC;
        out[2..4].copy_from_slice(&MARK);
        out[4..8].copy_from_slice(&self.appended.to_le_bytes());
        out[8..16].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    /// The header at the start of `bytes`.
    ///
    /// # Errors
    /// `Truncated` if shorter than a header, `UnsupportedVersion` for another version
    /// with the v2 mark, `Corrupt` without the mark.
    pub fn parse(bytes: &[u8]) -> Result<Self, ChunkError> {
        let h: &[u8; HEADER_BYTES] = bytes
            .get(..HEADER_BYTES)
            .and_then(|h| h.try_into().ok())
            .ok_or(ChunkError::Truncated {
                offset: 0,
                what: "head header",
            })?;
        if h[2..4] != MARK || h[1] != MAGIC {
            return Err(chunk::corrupt(0, "not a v2 head header"));
        }
        if h[0] != VERSION {
            return Err(ChunkError::UnsupportedVersion(h[0]));
        }
        let (count, nonce) = h[4..].split_at(4);
        Ok(Self {
            appended: u32::from_le_bytes(count.try_into().expect("4 bytes")),
            nonce: u64::from_le_bytes(nonce.try_into().expect("8 bytes")),
        })
    }
}

/// Whether head bytes are v2 (a header) rather than v1 (16-byte entries).
#[must_use]
pub fn is_v2(bytes: &[u8]) -> bool {
    bytes.get(2..4) == Some(&MARK[..])
}

/// What `Head::settle` compares: a flush may clear a window's dirty mark only if the
/// head still has the identity it had when the flush read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The head holds nothing for the window.
    Absent,
    /// A v1 head of this many bytes (APPEND only grows it).
    V1 { len: usize },
    /// A v2 head with this header.
    V2 { header: [u8; HEADER_BYTES] },
}

/// The identity of head bytes (v1, v2 or empty).
///
/// # Errors
/// As [`Header::parse`], for bytes marked v2.
pub fn identity(bytes: &[u8]) -> Result<Identity, ChunkError> {
    if bytes.is_empty() {
        Ok(Identity::Absent)
    } else if is_v2(bytes) {
        Header::parse(bytes).map(|h| Identity::V2 { header: h.encode() })
    } else {
        Ok(Identity::V1 { len: bytes.len() })
    }
}

/// Encodes the points one append adds to the window starting at `window_start` into
/// one block, in the given order, repeats kept. Deterministic.
///
/// # Panics
/// Never for callers that keep a block within `chunk::MAX_POINTS` points (a writer
/// batch holds far fewer).
#[must_use]
pub fn encode_block(window_start: i64, points: &[Stamped]) -> Vec<u8> {
    let as_chunk = || {
        let rel: Vec<Point> = points
            .iter()
            .map(|p| {
                Point::new(
                    p.time.wrapping_sub(window_start),
                    f64::from_bits(p.value_bits),
                )
            })
            .collect();
        let stamps: Vec<i64> = points
            .iter()
            .map(|p| p.stamp.wrapping_sub(window_start))
            .collect();
        let mut out = vec![BLOCK_CHUNK];
        out.extend_from_slice(&chunk::encode_stamped(&rel, &stamps));
        out
    };
    if points.len() > ENTRIES_MAX_POINTS {
        return as_chunk();
    }
    if let [p] = points {
        let mut out = Vec::with_capacity(14);
        out.push(BLOCK_ONE);
        varint::put_i64(&mut out, p.time.wrapping_sub(window_start));
        varint::put_i64(&mut out, p.stamp.wrapping_sub(p.time));
        let be = p.value_bits.to_be_bytes();
        let keep = 8 - (p.value_bits.trailing_zeros() / 8) as usize;
        out.extend_from_slice(&be[..keep]);
        return out;
    }
    let mut out = Vec::with_capacity(2 + points.len() * 13);
    out.push(BLOCK_ENTRIES);
    varint::put_u64(&mut out, points.len() as u64);
    for p in points {
        varint::put_i64(&mut out, p.time.wrapping_sub(window_start));
        varint::put_i64(&mut out, p.stamp.wrapping_sub(p.time));
        out.extend_from_slice(&p.value_bits.to_le_bytes());
    }
    if points.len() > 1 {
        let c = as_chunk();
        if c.len() < out.len() {
            return c;
        }
    }
    out
}

/// The number of points in a block, read from its first bytes.
///
/// # Errors
/// A corrupt or unknown block.
pub fn block_points(block: &[u8]) -> Result<usize, ChunkError> {
    let mut cur = varint::Cursor::new(block);
    let kind = chunk::read_u8(&mut cur, "block kind")?;
    match kind {
        BLOCK_V1 => {
            if !(block.len() - 1).is_multiple_of(ENTRY_BYTES) {
                return Err(ChunkError::Truncated {
                    offset: block.len(),
                    what: "v1 block entry",
                });
            }
            Ok((block.len() - 1) / ENTRY_BYTES)
        }
        BLOCK_ENTRIES => {
            let max = cur.remaining() / MIN_ENTRY_BYTES;
            read_len(&mut cur, max, "entry count")
        }
        BLOCK_ONE => Ok(1),
        BLOCK_CHUNK => {
            let at = cur.pos();
            let version = chunk::read_u8(&mut cur, "block chunk version")?;
            if version != chunk::VERSION_STAMPED {
                return Err(chunk::corrupt(at, "a chunk block holds a stamped chunk"));
            }
            read_len(&mut cur, chunk::MAX_POINTS, "chunk point count")
        }
        other => Err(chunk::corrupt(
            0,
            format!("unknown head block kind {other}"),
        )),
    }
}

/// The points of one block, in append order, into `out`.
fn decode_block(window_start: i64, block: &[u8], out: &mut Vec<Stamped>) -> Result<(), ChunkError> {
    let n = block_points(block)?;
    let payload = &block[1..];
    match block[0] {
        BLOCK_V1 => {
            for e in super::entries(payload)? {
                out.push(e.stamped(window_start));
            }
        }
        BLOCK_ENTRIES => {
            let mut cur = varint::Cursor::new(payload);
            read_u64(&mut cur, "entry count")?;
            out.reserve(n);
            for _ in 0..n {
                let time = window_start.wrapping_add(chunk::read_i64(&mut cur, "entry time")?);
                let stamp = time.wrapping_add(chunk::read_i64(&mut cur, "entry stamp")?);
                let at = cur.pos();
                let bits = cur.take(8).ok_or(ChunkError::Truncated {
                    offset: at,
                    what: "entry value",
                })?;
                out.push(Stamped {
                    time,
                    value_bits: u64::from_le_bytes(bits.try_into().expect("8 bytes")),
                    stamp,
                });
            }
            if cur.remaining() != 0 {
                return Err(chunk::corrupt(
                    cur.pos(),
                    "trailing bytes after the entries",
                ));
            }
        }
        BLOCK_ONE => {
            let mut cur = varint::Cursor::new(payload);
            let time = window_start.wrapping_add(chunk::read_i64(&mut cur, "entry time")?);
            let stamp = time.wrapping_add(chunk::read_i64(&mut cur, "entry stamp")?);
            let rest = cur.rest();
            if rest.len() > 8 {
                return Err(chunk::corrupt(cur.pos(), "a value over 8 bytes"));
            }
            let mut be = [0u8; 8];
            be[..rest.len()].copy_from_slice(rest);
            out.push(Stamped {
                time,
                value_bits: u64::from_be_bytes(be),
                stamp,
            });
        }
        _ => {
            let (points, stamps) = chunk::decode_stamped(payload)?;
            let stamps = stamps.ok_or_else(|| chunk::corrupt(1, "chunk block without stamps"))?;
            out.reserve(points.len());
            for (p, s) in points.iter().zip(stamps) {
                out.push(Stamped {
                    time: p.time.wrapping_add(window_start),
                    value_bits: p.value.to_bits(),
                    stamp: s.wrapping_add(window_start),
                });
            }
        }
    }
    Ok(())
}

/// The head bytes of a v2 head from its list elements: the header, then each block
/// framed by its varint length.
#[must_use]
pub fn assemble<'a>(header: &[u8], blocks: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = header.to_vec();
    for b in blocks {
        put_block(&mut out, b);
    }
    out
}

/// Every point of a head (v1 or v2 head bytes; empty: none), in append order, repeats
/// kept: what [`super::latest_per_time`] turns into the window's points. Never panics,
/// whatever the bytes.
///
/// # Errors
/// A typed [`ChunkError`] for truncated, corrupt or unknown input.
pub fn decode(window_start: i64, bytes: &[u8]) -> Result<Vec<Stamped>, ChunkError> {
    if !is_v2(bytes) {
        return Ok(super::entries(bytes)?
            .iter()
            .map(|e| e.stamped(window_start))
            .collect());
    }
    Header::parse(bytes)?;
    let mut cur = varint::Cursor::new(&bytes[HEADER_BYTES..]);
    let mut out = Vec::new();
    while cur.remaining() > 0 {
        let at = HEADER_BYTES + cur.pos();
        let block = read_block(&mut cur, "head block")?;
        if block.is_empty() {
            return Err(chunk::corrupt(at, "empty head block"));
        }
        decode_block(window_start, block, &mut out).map_err(|e| offset_by(e, at))?;
    }
    Ok(out)
}

/// Applies one append to head bytes the way the Redis script does to the list (the
/// fakes use it; `services/store/tests/redis_head.rs` checks both give the same bytes):
/// a new head gets a header with `nonce`; a v1 head becomes a v2 head whose first block
/// holds its entries; the count grows by the block's points. Returns the count after.
///
/// # Errors
/// A corrupt `block` or a corrupt v2 header in `head`.
pub fn append_to(head: &mut Vec<u8>, block: &[u8], nonce: u64) -> Result<u32, ChunkError> {
    let n = block_points(block)?;
    let add = (n % (1 << 32)) as u32;
    if is_v2(head) {
        let mut h = Header::parse(head)?;
        h.appended = h.appended.wrapping_add(add);
        head[..HEADER_BYTES].copy_from_slice(&h.encode());
        put_block(head, block);
        return Ok(h.appended);
    }
    super::entries(head)?;
    let before = (head.len() / ENTRY_BYTES % (1 << 32)) as u32;
    let h = Header {
        appended: before.wrapping_add(add),
        nonce,
    };
    let mut v1 = Vec::with_capacity(head.len() + 1);
    if !head.is_empty() {
        v1.push(BLOCK_V1);
        v1.extend_from_slice(head);
    }
    let mut out = h.encode().to_vec();
    if !v1.is_empty() {
        put_block(&mut out, &v1);
    }
    put_block(&mut out, block);
    *head = out;
    Ok(h.appended)
}

fn offset_by(e: ChunkError, at: usize) -> ChunkError {
    match e {
        ChunkError::Truncated { offset, what } => ChunkError::Truncated {
            offset: offset + at,
            what,
        },
        ChunkError::Corrupt { offset, what } => ChunkError::Corrupt {
            offset: offset + at,
            what,
        },
        other => other,
    }
}

/// v1 entries as a block (tests and tools that hold v1 bytes).
#[must_use]
pub fn v1_block(entries: &[Entry]) -> Vec<u8> {
    let mut out = vec![BLOCK_V1];
    for e in entries {
        e.encode_into(&mut out);
    }
    out
}
