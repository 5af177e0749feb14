//! [`AppError`]: every way an API request can fail, and its HTTP answer
//! (`{"error":{"message":…,"index":…,"field":…,"request_id":…}}`, DESIGN.md §2).
//!
//! The message a client sees is the variant's `Display`, which never holds a
//! dependency's error text (AWS errors name streams, accounts and roles): the cause
//! travels in the response's extensions to `request_id::layer`, which logs it with the
//! request id that the body carries.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use carat_core::ValidationError;
use carat_store::StoreError;
use serde::Serialize;
use thiserror::Error;

use crate::request_id::{self, ErrorDetail};

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
    #[error("the log is unavailable, nothing was stored; retry after {retry_after_secs} s")]
    Unavailable {
        retry_after_secs: u64,
        #[source]
        source: StoreError,
    },
    /// A read named a host, service or series carat does not know (Mackerel's 404).
    #[error("{0}")]
    NotFound(String),
    /// A read's answer would hold more than `reader.max_points_per_answer` points.
    #[error("the answer would hold {points} points, over the limit of {limit} (reader.max_points_per_answer); ask for a coarser resolution, fewer series or a shorter range")]
    AnswerTooLarge { points: usize, limit: usize },
    /// A pattern matched more series than `reader.max_series_per_query`.
    #[error(
        "`{pattern}` matches more than {limit} series (reader.max_series_per_query); narrow it"
    )]
    TooManySeries { pattern: String, limit: usize },
    /// A read could not reach a tier (throttling, a timeout, a failover) within the
    /// retry deadline: nothing is wrong with the request, ask again after `retry_after_secs`.
    #[error("storage is unavailable; retry after {retry_after_secs} s")]
    ReadUnavailable {
        retry_after_secs: u64,
        #[source]
        source: StoreError,
    },
    /// A read failed for a reason of ours (corrupt stored data, a bug); `detail` is for
    /// the log only.
    #[error("internal error while reading; quote the request id when reporting it")]
    ReadFailed { detail: String },
    /// Anything else: a store failure that retrying will not fix, or a bug. `detail` is
    /// for the log only.
    #[error(
        "internal error: the request may be partly stored (sending it again is safe); \
         quote the request id when reporting it"
    )]
    Internal { detail: String },
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

    /// A failure of ours, described by `detail` in the log only.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::Internal {
            detail: detail.into(),
        }
    }

    /// Everything known about the error, for the log: the public message and the cause.
    #[must_use]
    pub fn detail(&self) -> String {
        match self {
            Self::Unavailable { source, .. } | Self::ReadUnavailable { source, .. } => {
                format!("{self}: {source}")
            }
            Self::ReadFailed { detail } => format!("read failed: {detail}"),
            Self::Internal { detail } => format!("internal error: {detail}"),
            _ => self.to_string(),
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
            Self::Unavailable { .. } | Self::ReadUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::AnswerTooLarge { .. } | Self::TooManySeries { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::ReadFailed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (index, field) = match &self {
            Self::BadInput { index, field, .. } => (*index, field.as_deref()),
            _ => (None, None),
        };
        let body = Body {
            error: Detail {
                message: self.to_string(),
                index,
                field,
                request_id: request_id::current(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        response.extensions_mut().insert(ErrorDetail {
            status: status.as_u16(),
            detail: self.detail(),
        });
        if let Self::Unavailable {
            retry_after_secs, ..
        }
        | Self::ReadUnavailable {
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
