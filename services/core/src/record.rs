//! Kinesis points records, formats v1 and v2 (byte layout and versioning rules:
//! docs/formats.md).
//!
//! ```text
//! u8 version (2; 1 still read) · u8 codec (0 stored, 1 raw DEFLATE) · varint body length · payload
//! body: tenant · stamp_ms · base time · series count · names (v2: inline, or a name set's id) ·
//!       counts · times (deltas) · values (decimal codes)
//! ```
//!
//! The body is columnar so that DEFLATE finds the repetition: names share prefixes
//! (`host.<hostId>.`), times of one request are equal or close, and values that are
//! short decimals (12.34, 225260.0) take 2–5 bytes before compression. Record v2 can
//! replace the names by the 16-byte id of a name set stored in the catalog table
//! ([`names`]): a Mackerel agent's 100 names are sent once, not every minute.

use std::cell::RefCell;

use miniz_oxide::deflate::core::{
    compress_to_output, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush, TDEFLStatus,
};
use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

use crate::chunk::values::{dec, to_int};
use crate::chunk::varint::{self, Cursor, VarintError};
use crate::error::RecordError;
use crate::point::Point;
use crate::series::{SeriesName, Tenant};

pub mod labels;
pub mod names;

pub use names::{NameSet, NameSetId};

/// Format version the encoder writes first in every points record.
pub const VERSION: u8 = 2;
/// The first points record format: still read (Kinesis keeps records for days, and a
/// rolling deploy runs writers of both versions), written only by [`encode_v1`].
pub const VERSION_1: u8 = 1;

/// How a v2 record carries its names.
const NAMES_INLINE: u8 = 0;
const NAMES_SET: u8 = 1;

/// A record of either kind, told apart by its first byte (docs/formats.md): points
/// record versions are below `0x80`, labels record versions `0x80 | n`.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyRecord {
    Points(Record),
    Labels(labels::LabelsRecord),
}

/// Decodes a points record or a labels record. Never panics, whatever the bytes.
///
/// # Errors
/// As [`decode`] and [`labels::decode`].
pub fn decode_any(bytes: &[u8]) -> Result<AnyRecord, RecordError> {
    match bytes.first() {
        Some(&labels::VERSION) => labels::decode(bytes).map(AnyRecord::Labels),
        _ => decode(bytes).map(AnyRecord::Points),
    }
}

/// Largest body the decoder accepts (after decompression), so a small corrupt or
/// hostile record cannot inflate to gigabytes. 4 MiB is four times Kinesis's 1 MiB
/// record limit: [`pack`] never comes near it.
pub const MAX_BODY_BYTES: usize = 4 << 20;

const CODEC_STORED: u8 = 0;
const CODEC_DEFLATE: u8 = 1;
/// DEFLATE level: 6 is zlib's default; higher levels gain < 1 % on records.
const DEFLATE_LEVEL: i32 = 6;
/// DEFLATE's largest expansion ratio (258-byte matches in about 2 bits): a payload
/// cannot honestly inflate to more than this many times its size.
const MAX_INFLATE_RATIO: usize = 1032;

/// The preset dictionary of record format v1: DEFLATE starts with these bytes as its
/// history, so the first occurrence of a common series name in a record already costs
/// a back-reference instead of its letters. It holds the names mackerel-agent sends
/// for every Linux host (the most frequent last: nearer matches are cheaper) and the
/// parts common to plugin and service names. Part of the format: changing it means a
/// new codec or version.
pub const DICTIONARY: &[u8] = b"service.custom.mackerel.plugin.linux.proc.num.uptime.seconds.\
conntrack.count.ntp.offset.nginx.requests.connections.active.reading.writing.waiting.\
mysql.cmd.Com_insert.Com_select.Com_update.Com_delete.threads.Threads_connected.\
redis.clients.connected_clients.keys.evicted_keys.expired_keys.queries.keyspace_hits.\
http.latency.response_time.status.2xx.4xx.5xx.count.errors.bytes.total.ms.p50.p90.p99.\
filesystem._dev_xvda1.size.filesystem._dev_nvme0n1p1.used.filesystem._dev_sda1.size.used.\
interface.eth0.rxBytes.delta.interface.eth0.txBytes.delta.interface.eth1.rxBytes.delta.\
disk.nvme0n1.reads.delta.disk.xvda.writes.delta.disk.sda.reads.delta.writes.delta.\
memory.swap_total.memory.swap_free.memory.swap_cached.memory.mem_available.\
memory.total.memory.free.memory.buffers.memory.cached.memory.used.memory.available.\
loadavg1.loadavg5.loadavg15.cpu.guest_nice.percentage.cpu.guest.percentage.\
cpu.steal.percentage.cpu.softirq.percentage.cpu.irq.percentage.cpu.iowait.percentage.\
cpu.idle.percentage.cpu.nice.percentage.cpu.system.percentage.cpu.user.percentage.host.";

/// Value codes: the low 4 bits of a value's varint. 0–14: the value is the decimal
/// `m / 10^code`, with `m` zigzagged in the higher bits. 15: 8 raw bytes follow.
const RAW_VALUE: u64 = 15;
/// Ends each name suffix: a byte no series name contains, and a line break, which
/// DEFLATE matches well.
const NAME_END: u8 = b'\n';
const MAX_DECIMAL_CODE: i8 = 14;

/// The points of one series inside a record, in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPoints {
    pub series: SeriesName,
    pub points: Vec<Point>,
}

/// A decoded record: points of many series of one tenant (and one bucket), all
/// written by one ingest request stamped `stamp_ms` (epoch milliseconds at ingest).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub tenant: Tenant,
    pub stamp_ms: i64,
    pub series: Vec<SeriesPoints>,
}

/// Encodes one record (format v2, names inline).
#[must_use]
pub fn encode(record: &Record) -> Vec<u8> {
    seal(&encode_body(record, Names::Inline), VERSION)
}

/// Encodes one record (format v2) that names its series by `set`, which must be
/// `NameSet::of` the record's series names (checked in debug builds). The set must be
/// stored (`carat_store::ports::NameSets`) before the record is sent.
#[must_use]
pub fn encode_with_set(record: &Record, set: &NameSet) -> Vec<u8> {
    debug_assert_eq!(
        set.id(),
        NameSet::of(record.series.iter().map(|s| &s.series)).id()
    );
    seal(&encode_body(record, Names::Set(set.id())), VERSION)
}

/// Encodes one record in format v1: what writers before record v2 read. For tests of
/// mixed-version streams and rolling deploys; the ingest API writes v2.
#[must_use]
pub fn encode_v1(record: &Record) -> Vec<u8> {
    seal(&encode_body(record, Names::V1), VERSION_1)
}

/// Where the names go in [`encode_body`].
#[derive(Clone, Copy)]
enum Names {
    V1,
    Inline,
    Set(NameSetId),
}

/// The envelope every record kind shares around `body`: version byte `version`, codec
/// (DEFLATE with [`DICTIONARY`] when it is smaller, else stored), body length, payload.
/// The inverse of [`open`].
pub(crate) fn seal(body: &[u8], version: u8) -> Vec<u8> {
    let packed = deflate_with_dictionary(body);
    let (codec, payload) = if packed.len() < body.len() {
        (CODEC_DEFLATE, packed.as_slice())
    } else {
        (CODEC_STORED, body)
    };
    let mut out = Vec::with_capacity(payload.len() + 12);
    out.push(version);
    out.push(codec);
    varint::put_u64(&mut out, body.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// Raw DEFLATE of `body` with [`DICTIONARY`] as history: the dictionary is compressed
/// first and flushed to a byte boundary, and only what follows is kept.
fn deflate_with_dictionary(body: &[u8]) -> Vec<u8> {
    thread_local! {
        // One compressor per thread, reset between records: creating one allocates
        // and zeroes ~300 KB of tables, more than compressing a typical record costs.
        static COMPRESSOR: RefCell<CompressorOxide> = RefCell::new(CompressorOxide::new(
            create_comp_flags_from_zip_params(DEFLATE_LEVEL, -15, 0),
        ));
    }
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        c.reset();
        let (status, _) = compress_to_output(&mut c, DICTIONARY, TDEFLFlush::Sync, |_| true);
        debug_assert_eq!(status, TDEFLStatus::Okay);
        let mut out = Vec::with_capacity(body.len() / 2 + 16);
        let (status, _) = compress_to_output(&mut c, body, TDEFLFlush::Finish, |b| {
            out.extend_from_slice(b);
            true
        });
        debug_assert_eq!(status, TDEFLStatus::Done);
        out
    })
}

/// Inflates `payload` (raw DEFLATE with [`DICTIONARY`] as history) into exactly
/// `len` bytes; `None` if it is corrupt, shorter, longer, or has trailing bytes.
fn inflate_with_dictionary(payload: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; DICTIONARY.len() + len];
    out[..DICTIONARY.len()].copy_from_slice(DICTIONARY);
    let mut d = DecompressorOxide::new();
    let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let (status, consumed, written) =
        decompress(&mut d, payload, &mut out, DICTIONARY.len(), flags);
    if status != TINFLStatus::Done || consumed != payload.len() || written != len {
        return None;
    }
    out.drain(..DICTIONARY.len());
    Some(out)
}

/// The value's code (see [`RAW_VALUE`]): the shortest decimal that gives back the
/// same bits, else raw.
fn value_code(v: f64) -> (u64, Option<u64>) {
    for e in 0..=MAX_DECIMAL_CODE {
        if let Some(m) = to_int(v, e) {
            if dec(m, e).to_bits() == v.to_bits() {
                return ((varint::zigzag(m) << 4) | e as u64, None);
            }
        }
    }
    (RAW_VALUE, Some(v.to_bits()))
}

fn value_len(v: f64) -> usize {
    match value_code(v) {
        (h, None) => varint::len_u64(h),
        (h, Some(_)) => varint::len_u64(h) + 8,
    }
}

fn encode_body(record: &Record, names: Names) -> Vec<u8> {
    let mut out = Vec::new();
    let tenant = tenant_bytes(&record.tenant);
    varint::put_u64(&mut out, tenant.len() as u64);
    out.extend_from_slice(tenant);
    varint::put_i64(&mut out, record.stamp_ms);
    let base = first_time(&record.series);
    varint::put_i64(&mut out, base.wrapping_sub(stamp_secs(record.stamp_ms)));
    varint::put_u64(&mut out, record.series.len() as u64);
    let section = |out: &mut Vec<u8>| {
        names::put_section(out, record.series.iter().map(|s| s.series.as_str()));
    };
    match names {
        Names::V1 => section(&mut out),
        Names::Inline => {
            out.push(NAMES_INLINE);
            section(&mut out);
        }
        Names::Set(id) => {
            out.push(NAMES_SET);
            out.extend_from_slice(&id.0);
        }
    }
    for s in &record.series {
        varint::put_u64(&mut out, s.points.len() as u64);
    }
    let mut t = base;
    for p in record.series.iter().flat_map(|s| &s.points) {
        varint::put_i64(&mut out, p.time.wrapping_sub(t));
        t = p.time;
    }
    for p in record.series.iter().flat_map(|s| &s.points) {
        let (h, raw) = value_code(p.value);
        varint::put_u64(&mut out, h);
        if let Some(bits) = raw {
            out.extend_from_slice(&bits.to_le_bytes());
        }
    }
    out
}

/// The tenant as written: empty for the default tenant (the common case costs one
/// byte; an empty id is otherwise impossible).
fn tenant_bytes(tenant: &Tenant) -> &[u8] {
    if *tenant == Tenant::default_tenant() {
        b""
    } else {
        tenant.as_str().as_bytes()
    }
}

/// The stamp in whole seconds: times are written relative to it (they are within
/// minutes of the ingest stamp, so the base costs a byte or two).
fn stamp_secs(stamp_ms: i64) -> i64 {
    stamp_ms.div_euclid(1000)
}

fn first_time(series: &[SeriesPoints]) -> i64 {
    series
        .iter()
        .find_map(|s| s.points.first())
        .map_or(0, |p| p.time)
}

/// The body of a record of kind `version`: the envelope every record kind shares
/// (version byte, codec, body length, stored or DEFLATE payload with [`DICTIONARY`]),
/// checked and opened. Never panics, whatever the bytes.
///
/// # Errors
/// [`RecordError::UnsupportedVersion`] for any other first byte; empty, truncated or
/// corrupt envelopes (a body length the payload cannot inflate to, an unknown codec).
/// Also returns the codec and the payload's offset in `bytes` (where a stored body's
/// offsets start).
pub(crate) fn open(
    bytes: &[u8],
    version: u8,
) -> Result<(std::borrow::Cow<'_, [u8]>, u8, usize), RecordError> {
    let mut cur = Cursor::new(bytes);
    let first = cur.u8().ok_or(RecordError::Empty)?;
    if first != version {
        return Err(RecordError::UnsupportedVersion(first));
    }
    let codec = cur.u8().ok_or(RecordError::Truncated {
        offset: 1,
        what: "codec",
    })?;
    let body_len = read_len(&mut cur, MAX_BODY_BYTES, "body length")?;
    let payload_at = cur.pos();
    let payload = cur.take(cur.remaining()).unwrap_or_default();
    let body = match codec {
        CODEC_STORED => std::borrow::Cow::Borrowed(payload),
        CODEC_DEFLATE => {
            if body_len > payload.len().saturating_mul(MAX_INFLATE_RATIO) {
                return Err(corrupt(
                    payload_at,
                    format!(
                        "body length {body_len} is impossible for a {}-byte payload",
                        payload.len()
                    ),
                ));
            }
            std::borrow::Cow::Owned(inflate_with_dictionary(payload, body_len).ok_or_else(
                || {
                    corrupt(
                        payload_at,
                        "DEFLATE payload does not inflate to the body length",
                    )
                },
            )?)
        }
        other => return Err(corrupt(1, format!("unknown codec {other}"))),
    };
    if body.len() != body_len {
        return Err(corrupt(
            payload_at,
            format!("body is {} bytes, header says {body_len}", body.len()),
        ));
    }
    Ok((body, codec, payload_at))
}

/// Decodes one record (v1, or v2 with its names inline). Never panics, whatever the
/// bytes.
///
/// # Errors
/// A typed [`RecordError`] for empty, truncated, corrupt or unknown-version input;
/// [`RecordError::NeedsNameSet`] for a v2 record that names a name set (decode it with
/// [`decode_parts`] and [`Parts::with_names`]).
pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
    decode_parts(bytes)?.into_record()
}

/// Decodes one record of either version, leaving a v2 record's name set unresolved.
/// Never panics, whatever the bytes.
///
/// # Errors
/// As [`decode`], but never `NeedsNameSet`.
pub fn decode_parts(bytes: &[u8]) -> Result<Parts, RecordError> {
    let version = match bytes.first() {
        None => return Err(RecordError::Empty),
        Some(&v @ (VERSION_1 | VERSION)) => v,
        Some(&other) => return Err(RecordError::UnsupportedVersion(other)),
    };
    let (body, codec, payload_at) = open(bytes, version)?;
    let body: &[u8] = &body;
    decode_body(body, version).map_err(|e| match e {
        // Offsets inside a compressed body are offsets into the decompressed body.
        RecordError::Truncated { offset, what } if codec == CODEC_STORED => {
            RecordError::Truncated {
                offset: offset + payload_at,
                what,
            }
        }
        other => other,
    })
}

/// A decoded record whose names may still be a name set's id ([`decode_parts`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Parts {
    pub tenant: Tenant,
    pub stamp_ms: i64,
    names: PartNames,
    counts: Vec<usize>,
    points: Vec<Point>,
}

#[derive(Debug, Clone, PartialEq)]
enum PartNames {
    Inline(Vec<SeriesName>),
    Set(NameSetId),
}

impl Parts {
    /// The name set the record names its series by, `None` if its names are inline.
    #[must_use]
    pub fn name_set(&self) -> Option<NameSetId> {
        match self.names {
            PartNames::Set(id) => Some(id),
            PartNames::Inline(_) => None,
        }
    }

    /// The number of series.
    #[must_use]
    pub fn series_count(&self) -> usize {
        self.counts.len()
    }

    /// The record, for one whose names are inline.
    ///
    /// # Errors
    /// [`RecordError::NeedsNameSet`] if it names a name set.
    pub fn into_record(self) -> Result<Record, RecordError> {
        match self.names {
            PartNames::Inline(names) => Ok(assemble(
                self.tenant,
                self.stamp_ms,
                names,
                &self.counts,
                self.points,
            )),
            PartNames::Set(id) => Err(RecordError::NeedsNameSet(id)),
        }
    }

    /// The record, with `names` the names of its name set (`NameSet::open`); a record
    /// with inline names ignores them.
    ///
    /// # Errors
    /// `Corrupt` if the set has another number of names than the record has series.
    pub fn with_names(self, names: &[SeriesName]) -> Result<Record, RecordError> {
        if self.name_set().is_none() {
            return self.into_record();
        }
        if names.len() != self.counts.len() {
            return Err(corrupt(
                0,
                format!(
                    "the record has {} series, its name set {} names",
                    self.counts.len(),
                    names.len()
                ),
            ));
        }
        Ok(assemble(
            self.tenant,
            self.stamp_ms,
            names.to_vec(),
            &self.counts,
            self.points,
        ))
    }
}

fn assemble(
    tenant: Tenant,
    stamp_ms: i64,
    names: Vec<SeriesName>,
    counts: &[usize],
    points: Vec<Point>,
) -> Record {
    let mut points = points.into_iter();
    let series = names
        .into_iter()
        .zip(counts)
        .map(|(series, &c)| SeriesPoints {
            series,
            points: points.by_ref().take(c).collect(),
        })
        .collect();
    Record {
        tenant,
        stamp_ms,
        series,
    }
}

fn corrupt(offset: usize, what: impl Into<String>) -> RecordError {
    RecordError::Corrupt {
        offset,
        what: what.into(),
    }
}

fn varint_err(offset: usize, what: &'static str, e: VarintError) -> RecordError {
    match e {
        VarintError::Truncated => RecordError::Truncated { offset, what },
        VarintError::Overflow => corrupt(offset, format!("{what}: varint over 64 bits")),
    }
}

fn read_u64(cur: &mut Cursor<'_>, what: &'static str) -> Result<u64, RecordError> {
    let offset = cur.pos();
    cur.u64().map_err(|e| varint_err(offset, what, e))
}

fn read_i64(cur: &mut Cursor<'_>, what: &'static str) -> Result<i64, RecordError> {
    let offset = cur.pos();
    cur.i64().map_err(|e| varint_err(offset, what, e))
}

fn read_len(cur: &mut Cursor<'_>, max: usize, what: &'static str) -> Result<usize, RecordError> {
    let offset = cur.pos();
    let v = read_u64(cur, what)?;
    match usize::try_from(v) {
        Ok(v) if v <= max => Ok(v),
        _ => Err(corrupt(
            offset,
            format!("{what} {v} is over the limit of {max}"),
        )),
    }
}

fn read_bytes<'a>(
    cur: &mut Cursor<'a>,
    n: usize,
    what: &'static str,
) -> Result<&'a [u8], RecordError> {
    let offset = cur.pos();
    cur.take(n).ok_or(RecordError::Truncated { offset, what })
}

fn decode_body(body: &[u8], version: u8) -> Result<Parts, RecordError> {
    let mut cur = Cursor::new(body);
    let tenant_len = read_len(&mut cur, crate::series::MAX_TENANT_LEN, "tenant length")?;
    let tenant_at = cur.pos();
    let tenant = read_bytes(&mut cur, tenant_len, "tenant")?;
    let tenant = if tenant.is_empty() {
        Tenant::default_tenant()
    } else {
        std::str::from_utf8(tenant)
            .ok()
            .and_then(|t| Tenant::parse(t).ok())
            .ok_or_else(|| corrupt(tenant_at, "tenant is not a valid tenant id"))?
    };
    let stamp_ms = read_i64(&mut cur, "stamp")?;
    let base = read_i64(&mut cur, "base time")?.wrapping_add(stamp_secs(stamp_ms));
    // Every series costs at least 1 body byte of its own (its count) with a name set,
    // 3 with inline names (shared prefix, name end, count).
    let max_series = cur.remaining();
    let n_series = read_len(&mut cur, max_series, "series count")?;
    let kind = if version == VERSION_1 {
        NAMES_INLINE
    } else {
        let at = cur.pos();
        let kind = cur.u8().ok_or(RecordError::Truncated {
            offset: at,
            what: "names kind",
        })?;
        if kind != NAMES_INLINE && kind != NAMES_SET {
            return Err(corrupt(at, format!("unknown names kind {kind}")));
        }
        kind
    };
    let names = if kind == NAMES_SET {
        let raw = read_bytes(&mut cur, 16, "name set id")?;
        let mut id = [0u8; 16];
        id.copy_from_slice(raw);
        PartNames::Set(NameSetId(id))
    } else {
        if n_series > cur.remaining() / 3 {
            return Err(corrupt(
                cur.pos(),
                format!(
                    "{n_series} series cannot fit the {} bytes left",
                    cur.remaining()
                ),
            ));
        }
        PartNames::Inline(names::read_section(&mut cur, n_series)?)
    };
    if n_series > cur.remaining() {
        return Err(corrupt(
            cur.pos(),
            format!(
                "{n_series} series cannot fit the {} bytes left",
                cur.remaining()
            ),
        ));
    }
    // Every point costs at least 2 body bytes (time delta, value code).
    let mut left = cur.remaining() / 2;
    let mut counts = Vec::with_capacity(n_series);
    for _ in 0..n_series {
        let c = read_len(&mut cur, left, "point count")?;
        left -= c;
        counts.push(c);
    }
    let total: usize = counts.iter().sum();
    let mut times = Vec::with_capacity(total);
    let mut t = base;
    for _ in 0..total {
        t = t.wrapping_add(read_i64(&mut cur, "time")?);
        times.push(t);
    }
    let mut points = Vec::with_capacity(total);
    for t in times {
        let at = cur.pos();
        let h = read_u64(&mut cur, "value")?;
        let code = h & 15;
        let v = if code == RAW_VALUE {
            if h >> 4 != 0 {
                return Err(corrupt(at, "raw value code with a payload"));
            }
            let raw = read_bytes(&mut cur, 8, "raw value")?;
            let mut b = [0u8; 8];
            b.copy_from_slice(raw);
            f64::from_bits(u64::from_le_bytes(b))
        } else {
            dec(varint::unzigzag(h >> 4), code as i8)
        };
        points.push(Point::new(t, v));
    }
    if cur.remaining() != 0 {
        return Err(corrupt(cur.pos(), "trailing bytes after the values"));
    }
    Ok(Parts {
        tenant,
        stamp_ms,
        names,
        counts,
        points,
    })
}

/// Packs the series of one bucket into as few records as fit `max_bytes` each,
/// splitting a series across records when it alone is too large.
///
/// Records are filled by their uncompressed size, so each one fits even where DEFLATE
/// gains nothing. Series and points keep their order; a series split across records
/// continues, in order, at the start of the next one.
///
/// # Errors
/// [`RecordError::TooLarge`] if not even one point fits `max_bytes`.
pub fn pack(
    tenant: &Tenant,
    stamp_ms: i64,
    series: Vec<SeriesPoints>,
    max_bytes: usize,
) -> Result<Vec<Vec<u8>>, RecordError> {
    pack_records(tenant, stamp_ms, series, max_bytes)?
        .iter()
        .map(|r| {
            let bytes = encode(r);
            if bytes.len() > max_bytes {
                return Err(RecordError::TooLarge {
                    size: bytes.len(),
                    limit: max_bytes,
                });
            }
            Ok(bytes)
        })
        .collect()
}

/// [`pack`], before encoding: each record encodes ([`encode`], or [`encode_with_set`],
/// which is never larger for a set worth referencing) to at most `max_bytes`.
///
/// # Errors
/// As [`pack`].
pub fn pack_records(
    tenant: &Tenant,
    stamp_ms: i64,
    series: Vec<SeriesPoints>,
    max_bytes: usize,
) -> Result<Vec<Record>, RecordError> {
    let mut records = Vec::new();
    let mut b = Builder::new(tenant, stamp_ms);
    for s in series {
        let mut first = true;
        if s.points.is_empty() && !b.push(&s.series, None, true, max_bytes) {
            b.flush(&mut records, tenant, stamp_ms);
            if !b.push(&s.series, None, true, max_bytes) {
                return Err(b.too_large(&s.series, None, max_bytes));
            }
        }
        for p in s.points {
            if !b.push(&s.series, Some(p), first, max_bytes) {
                b.flush(&mut records, tenant, stamp_ms);
                if !b.push(&s.series, Some(p), true, max_bytes) {
                    return Err(b.too_large(&s.series, Some(p), max_bytes));
                }
            }
            first = false;
        }
    }
    b.flush(&mut records, tenant, stamp_ms);
    Ok(records)
}

/// Builds one record while tracking its exact uncompressed size.
struct Builder {
    record: Record,
    /// Body bytes, except the series-count varint and the point-count varints.
    body: usize,
    counts_len: usize,
    prev_time: Option<i64>,
}

impl Builder {
    fn new(tenant: &Tenant, stamp_ms: i64) -> Self {
        let t = tenant_bytes(tenant).len();
        Self {
            record: Record {
                tenant: tenant.clone(),
                stamp_ms,
                series: Vec::new(),
            },
            // + 1: the names kind byte of format v2.
            body: varint::len_u64(t as u64) + t + varint::len_u64(varint::zigzag(stamp_ms)) + 1,
            counts_len: 0,
            prev_time: None,
        }
    }

    /// The size of the record if it were stored uncompressed (an upper bound).
    fn record_size(body: usize) -> usize {
        2 + varint::len_u64(body as u64) + body
    }

    /// The body size with `name` (as a new series when `new`) and `point` added.
    fn size_with(&self, name: &SeriesName, point: Option<Point>, new: bool) -> (usize, usize) {
        let mut body = self.body;
        let mut counts_len = self.counts_len;
        let n_series = self.record.series.len() + usize::from(new);
        if new {
            let prev = self.record.series.last().map_or("", |s| s.series.as_str());
            let name = name.as_str();
            let shared = names::shared_prefix(prev, name);
            body += varint::len_u64(shared as u64) + (name.len() - shared) + 1;
            counts_len += 1;
        }
        if let Some(p) = point {
            let count = if new {
                0
            } else {
                self.record.series.last().map_or(0, |s| s.points.len())
            };
            counts_len += varint::len_u64(count as u64 + 1) - varint::len_u64(count as u64);
            let delta = match self.prev_time {
                // The first point is the base time: delta 0, and the base varint.
                None => {
                    let base = p.time.wrapping_sub(stamp_secs(self.record.stamp_ms));
                    varint::len_u64(varint::zigzag(base)) + 1
                }
                Some(t) => varint::len_u64(varint::zigzag(p.time.wrapping_sub(t))),
            };
            body += delta + value_len(p.value);
        }
        let base = if self.prev_time.is_none() && point.is_none() {
            1
        } else {
            0
        };
        let total = body + base + counts_len + varint::len_u64(n_series as u64);
        (body, total)
    }

    fn push(&mut self, name: &SeriesName, point: Option<Point>, new: bool, max: usize) -> bool {
        let (body, total) = self.size_with(name, point, new);
        if Self::record_size(total) > max {
            return false;
        }
        self.body = body;
        if new {
            self.counts_len += 1;
            self.record.series.push(SeriesPoints {
                series: name.clone(),
                points: Vec::new(),
            });
        }
        if let Some(p) = point {
            let last = self
                .record
                .series
                .last_mut()
                .expect("a series was pushed above or before");
            let count = last.points.len() as u64;
            self.counts_len += varint::len_u64(count + 1) - varint::len_u64(count);
            last.points.push(p);
            self.prev_time = Some(p.time);
        }
        true
    }

    fn flush(&mut self, records: &mut Vec<Record>, tenant: &Tenant, stamp_ms: i64) {
        if self.record.series.is_empty() {
            return;
        }
        let done = std::mem::replace(self, Self::new(tenant, stamp_ms));
        records.push(done.record);
    }

    fn too_large(&self, name: &SeriesName, point: Option<Point>, max: usize) -> RecordError {
        let (_, total) = self.size_with(name, point, true);
        RecordError::TooLarge {
            size: Self::record_size(total),
            limit: max,
        }
    }
}

#[cfg(test)]
mod tests;
