//! Errors of the archiver and of the archive's read API. The boundary decides: a
//! retryable store error becomes `batchItemFailures` in the stream handler (Lambda
//! retries from that record) and a retryable error to the reader's caller; anything
//! else is reported as it is.

use carat_store::StoreError;
use thiserror::Error;

use crate::format::FormatError;

#[derive(Debug, Error)]
pub enum ArchiverError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An archived object does not decode. Not retryable: the same bytes fail again.
    #[error("archive object {key} is corrupt: {source}")]
    CorruptObject {
        key: String,
        #[source]
        source: FormatError,
    },
    /// An archived rollup block does not decode.
    #[error("rollups of {series} in {key} are corrupt: {reason}")]
    CorruptRollups {
        key: String,
        series: String,
        reason: String,
    },
    /// Other compactions of the same object kept winning the conditional write. Retryable.
    #[error("{key}: {rounds} compaction rounds lost to concurrent compactions")]
    Contended { key: String, rounds: usize },
    /// An object changed between its index read and its block read, again after the
    /// index was read afresh. Retryable.
    #[error("{key} kept changing while it was read")]
    Changing { key: String },
    /// A request the read API cannot answer (a resolution without rollups).
    #[error("{0}")]
    BadRequest(String),
}

impl ArchiverError {
    /// Whether trying again later may succeed (throttling, timeouts, a concurrent compaction).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Contended { .. } | Self::Changing { .. } => true,
            Self::CorruptObject { .. } | Self::CorruptRollups { .. } | Self::BadRequest(_) => false,
        }
    }
}
