//! Kinesis record format v1 (see docs/formats.md). TO BE WRITTEN by the codec work:
//! signatures are fixed here so the API and the writer can be built against them.

use crate::error::RecordError;
use crate::point::Point;
use crate::series::{SeriesName, Tenant};

/// Format version written first in every record.
pub const VERSION: u8 = 1;

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

/// Encodes one record.
#[must_use]
pub fn encode(record: &Record) -> Vec<u8> {
    let _ = record;
    todo!("record format v1")
}

/// Decodes one record. Never panics, whatever the bytes.
///
/// # Errors
/// A typed [`RecordError`] for empty, truncated, corrupt or unknown-version input.
pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
    let _ = bytes;
    todo!("record format v1")
}

/// Packs the series of one bucket into as few records as fit `max_bytes` each,
/// splitting a series across records when it alone is too large.
///
/// # Errors
/// [`RecordError::TooLarge`] if not even one point fits `max_bytes`.
pub fn pack(
    tenant: &Tenant,
    stamp_ms: i64,
    series: Vec<SeriesPoints>,
    max_bytes: usize,
) -> Result<Vec<Vec<u8>>, RecordError> {
    let _ = (tenant, stamp_ms, series, max_bytes);
    todo!("record format v1")
}
