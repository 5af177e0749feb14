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
    /// A shard iterator is no longer valid (Kinesis expires them after 5 minutes, and a
    /// reshard closes them). Not retryable as is: the poller asks for a new iterator
    /// after the last sequence number it processed and carries on.
    #[error("{service} {op}: shard iterator expired: {detail}")]
    IteratorExpired {
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

    /// Whether the poller must get a fresh shard iterator (see [`Self::IteratorExpired`]).
    #[must_use]
    pub fn is_iterator_expired(&self) -> bool {
        matches!(self, Self::IteratorExpired { .. })
    }

    pub(crate) fn retryable(
        service: &'static str,
        op: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self::Retryable {
            service,
            op,
            detail: detail.into(),
        }
    }

    pub(crate) fn fatal(
        service: &'static str,
        op: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self::Fatal {
            service,
            op,
            detail: detail.into(),
        }
    }
}
