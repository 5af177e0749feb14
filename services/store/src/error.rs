//! Storage errors. The boundary decides: retryable (throttling, timeouts, a node
//! failing over: back off and retry, or hand the batch back to Lambda) or not.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// Worth retrying later: throttling, a timeout, a failover, partial failures that
    /// outlasted the retry deadline.
    #[error("{service} {op}: retryable: {detail}")]
    Retryable {
        service: &'static str,
        op: &'static str,
        detail: String,
    },
    /// Retrying will not help: bad request, missing resource, corrupt stored data.
    #[error("{service} {op}: {detail}")]
    Fatal {
        service: &'static str,
        op: &'static str,
        detail: String,
    },
}

impl StoreError {
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }
}
