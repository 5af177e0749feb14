//! The names section of a points record, and name sets: a record's name list stored once
//! in the catalog table and referenced from record v2 by a 16-byte id (docs/formats.md,
//! "Name set v1").
//!
//! A Mackerel agent posts the same ~100 metric names every minute. Inline, the names
//! are half of a record even front-coded and DEFLATEd against the preset dictionary;
//! by reference they cost 16 bytes. The id is the first 16 bytes of the SHA-256 of the
//! set's canonical bytes (the names section below), so it is content-addressed: every
//! API instance computes the same id for the same names, writing a set twice writes the
//! same item, and a reader checks what it fetched against the id it asked for.
//!
//! ```text
//! names section   S × varint shared prefix with the previous name (0 first)
//!                 S × name suffix, then 0x0a
//! name set body   varint S · names section            (id = SHA-256(body)[..16])
//! ```

use std::fmt;

use sha2::{Digest as _, Sha256};

use crate::chunk::varint::{self, Cursor};
use crate::error::RecordError;
use crate::series::{SeriesName, MAX_SERIES_LEN};

use super::{corrupt, read_len, NAME_END};

/// Format version of a stored name set (first byte of its sealed form).
pub const NAME_SET_VERSION: u8 = 1;

/// Largest name set body: 64 KiB, far above a realistic post (100 names ≈ 2.5 KB) and
/// far below DynamoDB's 400 KB item limit; records with more names stay inline.
pub const MAX_NAME_SET_BYTES: usize = 64 << 10;

/// A record's names section is referenced only from this many bytes on: below it the
/// 16-byte id gains too little to be worth a catalog item.
pub const MIN_NAME_SET_BYTES: usize = 64;

/// The id of a name set: SHA-256 of its body, first 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameSetId(pub [u8; 16]);

impl NameSetId {
    /// Lowercase hex, 32 characters: the catalog item's sort key.
    #[must_use]
    pub fn to_hex(&self) -> String {
        use fmt::Write as _;
        self.0.iter().fold(String::with_capacity(32), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

impl fmt::Display for NameSetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for NameSetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NameSetId({})", self.to_hex())
    }
}

/// Bytes `a` and `b` share at their start (the front coding of names).
pub(super) fn shared_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

/// Appends the names section of `names` to `out`.
pub(crate) fn put_section<'a>(out: &mut Vec<u8>, names: impl Iterator<Item = &'a str> + Clone) {
    let mut prev = "";
    for name in names.clone() {
        varint::put_u64(out, shared_prefix(prev, name) as u64);
        prev = name;
    }
    let mut prev = "";
    for name in names {
        out.extend_from_slice(&name.as_bytes()[shared_prefix(prev, name)..]);
        out.push(NAME_END);
        prev = name;
    }
}

/// Reads a names section of `n` names.
pub(crate) fn read_section(cur: &mut Cursor<'_>, n: usize) -> Result<Vec<SeriesName>, RecordError> {
    let mut shared = Vec::with_capacity(n);
    for _ in 0..n {
        shared.push(read_len(cur, MAX_SERIES_LEN, "shared name prefix")?);
    }
    let mut names: Vec<SeriesName> = Vec::with_capacity(n);
    let mut prev = String::new();
    for shared in shared {
        let at = cur.pos();
        let rest = cur.rest();
        let end = rest
            .iter()
            .take(MAX_SERIES_LEN + 1)
            .position(|&b| b == NAME_END)
            .ok_or(RecordError::Truncated {
                offset: at,
                what: "series name",
            })?;
        cur.take(end + 1);
        let suffix = std::str::from_utf8(&rest[..end])
            .map_err(|_| corrupt(at, "series name is not UTF-8"))?;
        let Some(head) = prev.get(..shared) else {
            return Err(corrupt(
                at,
                format!("shared prefix {shared} is longer than the previous name"),
            ));
        };
        let mut name = String::with_capacity(shared + suffix.len());
        name.push_str(head);
        name.push_str(suffix);
        let parsed = SeriesName::parse(&name, "name")
            .map_err(|e| corrupt(at, format!("series name {name:?}: {e}")))?;
        names.push(parsed);
        prev = name;
    }
    Ok(names)
}

/// A name set: the names of one record, in record order, as stored in the catalog.
#[derive(Clone, PartialEq, Eq)]
pub struct NameSet {
    id: NameSetId,
    body: Vec<u8>,
}

impl fmt::Debug for NameSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NameSet({}, {} bytes)", self.id, self.body.len())
    }
}

impl NameSet {
    /// The set of `names` (in this order).
    #[must_use]
    pub fn of<'a>(names: impl Iterator<Item = &'a SeriesName> + Clone) -> Self {
        let mut body = Vec::new();
        varint::put_u64(&mut body, names.clone().count() as u64);
        put_section(&mut body, names.map(SeriesName::as_str));
        Self {
            id: id_of(&body),
            body,
        }
    }

    #[must_use]
    pub fn id(&self) -> NameSetId {
        self.id
    }

    /// The canonical bytes (what the id hashes).
    #[must_use]
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Whether a record should reference this set rather than carry the names: the set
    /// is within the bounds above.
    #[must_use]
    pub fn worth_referencing(&self) -> bool {
        (MIN_NAME_SET_BYTES..=MAX_NAME_SET_BYTES).contains(&self.body.len())
    }

    /// The stored form: the record envelope (version [`NAME_SET_VERSION`], DEFLATE with
    /// the record dictionary when smaller) around the body.
    #[must_use]
    pub fn sealed(&self) -> Vec<u8> {
        super::seal(&self.body, NAME_SET_VERSION)
    }

    /// Opens a stored set and checks it is the set `id` names.
    ///
    /// # Errors
    /// A corrupt envelope or body, a body larger than [`MAX_NAME_SET_BYTES`], or bytes
    /// whose SHA-256 is not `id` (`Corrupt`, "name set … does not match its id").
    pub fn open(sealed: &[u8], id: NameSetId) -> Result<Vec<SeriesName>, RecordError> {
        let (body, _, _) = super::open(sealed, NAME_SET_VERSION)?;
        if body.len() > MAX_NAME_SET_BYTES {
            return Err(corrupt(0, format!("name set body of {} bytes", body.len())));
        }
        if id_of(&body) != id {
            return Err(corrupt(
                0,
                format!("name set bytes do not match the id {id}"),
            ));
        }
        let mut cur = Cursor::new(&body);
        let n = read_len(&mut cur, body.len() / 2, "name count")?;
        let names = read_section(&mut cur, n)?;
        if cur.remaining() != 0 {
            return Err(corrupt(cur.pos(), "trailing bytes after the names"));
        }
        Ok(names)
    }
}

fn id_of(body: &[u8]) -> NameSetId {
    let digest = Sha256::digest(body);
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    NameSetId(id)
}
