//! Storage errors. The boundary decides: retryable (throttling, timeouts, a node
//! failing over: back off and retry, or hand the batch back to Lambda) or not.

use thiserror::Error;

/// The dependency's own error, kept as the source of a [`StoreError`] (for logs and
/// `Error::source` chains; never for HTTP bodies).
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, Error)]
pub enum StoreError {
    /// Worth retrying later: throttling, a timeout, a failover, partial failures that
    /// outlasted the retry deadline.
    #[error("{service} {op}: retryable: {detail}")]
    Retryable {
        service: &'static str,
        op: &'static str,
        detail: String,
        #[source]
        source: Option<Source>,
    },
    /// Retrying will not help: bad request, missing resource, corrupt stored data.
    #[error("{service} {op}: {detail}")]
    Fatal {
        service: &'static str,
        op: &'static str,
        detail: String,
        #[source]
        source: Option<Source>,
    },
    /// A shard iterator is no longer valid (Kinesis expires them after 5 minutes, and a
    /// reshard closes them). Not retryable as is: the poller asks for a new iterator
    /// after the last sequence number it processed and carries on.
    #[error("{service} {op}: shard iterator expired: {detail}")]
    IteratorExpired {
        service: &'static str,
        op: &'static str,
        detail: String,
        #[source]
        source: Option<Source>,
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

    /// A failure worth retrying, described by `detail`.
    pub fn retryable(service: &'static str, op: &'static str, detail: impl Into<String>) -> Self {
        Self::Retryable {
            service,
            op,
            detail: detail.into(),
            source: None,
        }
    }

    /// A failure that retrying will not fix, described by `detail`.
    pub fn fatal(service: &'static str, op: &'static str, detail: impl Into<String>) -> Self {
        Self::Fatal {
            service,
            op,
            detail: detail.into(),
            source: None,
        }
    }

    /// This error with the dependency's error that caused it as its source.
    #[must_use]
    pub fn with_source(mut self, cause: impl Into<Source>) -> Self {
        match &mut self {
            Self::Retryable { source, .. }
            | Self::Fatal { source, .. }
            | Self::IteratorExpired { source, .. } => *source = Some(cause.into()),
        }
        self
    }

    /// The service (`redis`, `dynamodb`, …) and operation that failed, for logs and
    /// for messages that must not carry the dependency's own text.
    #[must_use]
    pub fn service_op(&self) -> (&'static str, &'static str) {
        match self {
            Self::Retryable { service, op, .. }
            | Self::Fatal { service, op, .. }
            | Self::IteratorExpired { service, op, .. } => (service, op),
        }
    }
}
