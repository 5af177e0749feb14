//! Error types of carat-core. Each variant says what failed and with which input.

use thiserror::Error;

/// A point or a name in a request is invalid. `index` is the position of the point
/// in the request body (0-based), `field` the JSON field at fault.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ValidationError {
    #[error("point {index}: field `{field}`: {reason}")]
    Field {
        index: usize,
        field: &'static str,
        reason: String,
    },
    #[error("field `{field}`: {reason}")]
    Name { field: &'static str, reason: String },
}

impl ValidationError {
    /// The JSON field at fault.
    #[must_use]
    pub fn field(&self) -> &'static str {
        match self {
            Self::Field { field, .. } | Self::Name { field, .. } => field,
        }
    }

    /// The index of the point at fault, if the error is about one point.
    #[must_use]
    pub fn index(&self) -> Option<usize> {
        match self {
            Self::Field { index, .. } => Some(*index),
            Self::Name { .. } => None,
        }
    }

    /// The same error, attributed to the point at `index` (names are validated
    /// before the index is known).
    #[must_use]
    pub fn at(self, index: usize) -> Self {
        match self {
            Self::Name { field, reason } => Self::Field {
                index,
                field,
                reason,
            },
            other @ Self::Field { .. } => other,
        }
    }
}

/// A Kinesis record could not be decoded (or would not fit when encoding).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("record is empty")]
    Empty,
    #[error("record format version {0} is not supported (this build reads points records 1 and 2, labels record 0x81)")]
    UnsupportedVersion(u8),
    #[error("record is truncated at byte {offset}: {what}")]
    Truncated { offset: usize, what: &'static str },
    #[error("record is corrupt at byte {offset}: {what}")]
    Corrupt { offset: usize, what: String },
    #[error("record would be {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("record names its series by name set {0}, which the decoder was not given")]
    NeedsNameSet(crate::record::NameSetId),
}

/// A chunk could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChunkError {
    #[error("chunk is empty")]
    Empty,
    #[error("chunk format version {0} is not supported (this build reads versions 1 and 2)")]
    UnsupportedVersion(u8),
    #[error("chunk is truncated at byte {offset}: {what}")]
    Truncated { offset: usize, what: &'static str },
    #[error("chunk is corrupt at byte {offset}: {what}")]
    Corrupt { offset: usize, what: String },
}

/// The configuration is inconsistent; `key` is the config key at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("config `{key}`: {reason}")]
pub struct ConfigError {
    pub key: &'static str,
    pub reason: String,
}
