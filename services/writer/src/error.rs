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
    /// The head of a window does not decode (not a v1 or v2 head): something else wrote
    /// the key. Not retryable: the same bytes would fail again.
    #[error("head of window {window} is corrupt: {source}")]
    CorruptHead { window: String, source: ChunkError },
    /// The stored item(s) of a window do not decode. Not retryable: a flush of this
    /// window would overwrite points it cannot read, so it refuses and the window waits
    /// (counted as `FailedFlushes`, alarmed) for an operator.
    #[error("stored window {window} is corrupt: {reason}")]
    CorruptItem { window: String, reason: String },
    /// A window's chunk needs more items than one transaction may write.
    #[error("window {window} is {bytes} bytes, over the {limit} bytes one window may take")]
    WindowTooLarge {
        window: String,
        bytes: usize,
        limit: usize,
    },
    /// Other flushes of the same window kept winning the conditional write. Retryable.
    #[error("window {window}: {rounds} flush rounds lost to concurrent flushes")]
    Contended { window: String, rounds: usize },
}

impl WriterError {
    /// Whether trying again later may succeed (throttling, timeouts, failover).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Contended { .. } => true,
            Self::CorruptHead { .. } | Self::CorruptItem { .. } | Self::WindowTooLarge { .. } => {
                false
            }
        }
    }
}
