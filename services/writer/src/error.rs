//! Errors of the write path. The handler decides at its boundary: a retryable store
//! error becomes `batchItemFailures` (Lambda resumes at the first unprocessed record),
//! anything else fails the invocation (the ESM's bisect, retry and on-failure handle it).

use carat_core::ChunkError;
use carat_store::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum WriterError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The head of a window is not a whole number of entries: something else wrote
    /// the key. Not retryable: the same bytes would fail again.
    #[error("head of window {window} is corrupt: {source}")]
    CorruptHead { window: String, source: ChunkError },
}

impl WriterError {
    /// Whether trying again later may succeed (throttling, timeouts, failover).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_retryable())
    }
}
