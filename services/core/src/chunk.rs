//! Chunk format v1 (see docs/formats.md). TO BE WRITTEN by the codec work: signatures
//! are fixed here so the writer and the reader can be built against them.

use crate::error::ChunkError;
use crate::point::Point;

/// Format version written first in every chunk.
pub const VERSION: u8 = 1;

/// Encodes points (any times, any f64 values, in the given order) into a chunk.
#[must_use]
pub fn encode(points: &[Point]) -> Vec<u8> {
    let _ = points;
    todo!("chunk format v1")
}

/// Decodes a chunk bit-exact. Never panics, whatever the bytes.
///
/// # Errors
/// A typed [`ChunkError`] for empty, truncated, corrupt or unknown-version input.
pub fn decode(bytes: &[u8]) -> Result<Vec<Point>, ChunkError> {
    let _ = bytes;
    todo!("chunk format v1")
}
