//! [`AppError`]: every way an API request can fail, and its HTTP answer
//! (`{"error":{"message":…,"index":…,"field":…}}`, DESIGN.md §2).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use carat_core::ValidationError;
use carat_store::StoreError;
use serde::Serialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AppError {
    /// The body is not what the route accepts (syntax, types, missing fields, bad
    /// names, bad times or values). `index` is the 0-based position of the point (or,
    /// for remote_write, of the time series) at fault, `field` the field at fault.
    #[error("{message}")]
    BadInput {
        message: String,
        index: Option<usize>,
        field: Option<String>,
    },
    /// The body is larger than `ingest.max_body_bytes` (also after snappy decompression).
    #[error("request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// The request holds more points than `ingest.max_points_per_request`.
    #[error("request holds more than {limit} points (ingest.max_points_per_request); split it")]
    TooManyPoints { limit: usize },
    /// The body's media type is not one this route reads.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// No API key, or one that is not known.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The key is known but lacks the scope the route needs.
    #[error("API key `{key}` lacks the `{scope}` scope")]
    Forbidden { key: String, scope: &'static str },
    /// Kinesis throttled or failed retryably past the retry deadline: nothing is stored,
    /// the client should send the same request again after `retry_after_secs`.
    #[error("the log is throttled or unavailable, nothing was stored; retry after {retry_after_secs} s ({source})")]
    Unavailable {
        retry_after_secs: u64,
        source: StoreError,
    },
    /// Anything else: a store failure that retrying will not fix, or a bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// A body error naming the point at `index` and its `field`.
    pub fn at(index: usize, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadInput {
            message: message.into(),
            index: Some(index),
            field: Some(field.into()),
        }
    }

    /// A body error that is about the body as a whole.
    pub fn body(message: impl Into<String>) -> Self {
        Self::BadInput {
            message: message.into(),
            index: None,
            field: None,
        }
    }

    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadInput { .. } => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge { .. } | Self::TooManyPoints { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<ValidationError> for AppError {
    fn from(e: ValidationError) -> Self {
        let (index, field) = (e.index(), e.field().to_string());
        Self::BadInput {
            message: e.to_string(),
            index,
            field: Some(field),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Unavailable { .. } => tracing::warn!(error = %self, "ingest unavailable"),
            Self::Internal(_) => tracing::error!(error = %self, "ingest failed"),
            _ => tracing::debug!(error = %self, status = status.as_u16(), "ingest rejected"),
        }
        let (index, field) = match &self {
            Self::BadInput { index, field, .. } => (*index, field.as_deref()),
            _ => (None, None),
        };
        let body = Body {
            error: Detail {
                message: self.to_string(),
                index,
                field,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Self::Unavailable {
            retry_after_secs, ..
        } = &self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        if let Self::Unauthorized(_) = &self {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"carat\""),
            );
        }
        response
    }
}
