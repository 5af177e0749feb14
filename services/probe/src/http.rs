//! The probe's HTTP client: hyper-util's pooled client over rustls (aws-lc-rs, the system's
//! root certificates), plain HTTP allowed for carat-local and the tests. One request at a
//! time, each bounded by a timeout; the answer body is read whole (the probe's answers are
//! a few hundred bytes, and [`MAX_BODY_BYTES`] bounds a misbehaving server).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{header, Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

/// Largest answer body read; a reader answer for one point is far below it.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// What went wrong on the way (not an HTTP status: those are answers).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot build the TLS client (system root certificates): {0}")]
    Tls(#[source] std::io::Error),
    #[error("invalid URL {url:?}: {source}")]
    Url {
        url: String,
        #[source]
        source: hyper::http::uri::InvalidUri,
    },
    #[error("invalid request to {url}: {source}")]
    Request {
        url: String,
        #[source]
        source: hyper::http::Error,
    },
    #[error("{method} {url}: {source}")]
    Send {
        method: Method,
        url: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("{method} {url}: no answer within {} ms", timeout.as_millis())]
    Timeout {
        method: Method,
        url: String,
        timeout: Duration,
    },
    #[error("{method} {url}: reading the answer body: {detail}")]
    Body {
        method: Method,
        url: String,
        detail: String,
    },
}

/// An answer: status and whole body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Answer {
    /// The start of the body as text, for an error message (carat's error bodies are JSON
    /// without dependency text, docs/api.md "Errors").
    #[must_use]
    pub fn body_excerpt(&self) -> String {
        let end = self.body.len().min(300);
        String::from_utf8_lossy(&self.body[..end]).into_owned()
    }
}

/// A pooled HTTP/1.1 client (HTTPS and HTTP).
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    max_body: usize,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

impl HttpClient {
    /// A client trusting the system's root certificates.
    ///
    /// # Errors
    /// [`HttpError::Tls`] if the root certificates cannot be loaded.
    pub fn new() -> Result<Self, HttpError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(HttpError::Tls)?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            inner: Client::builder(TokioExecutor::new()).build(https),
            max_body: MAX_BODY_BYTES,
        })
    }

    /// The same client reading answer bodies of up to `max_body` bytes (the `carat` CLI
    /// reads query answers of up to 100,000 points).
    #[must_use]
    pub fn with_max_body(mut self, max_body: usize) -> Self {
        self.max_body = max_body;
        self
    }

    /// Sends one request with `headers` (and a JSON `body` if given) and reads the answer,
    /// all within `timeout`.
    ///
    /// # Errors
    /// A bad URL, a transport failure, the timeout, or a body over [`MAX_BODY_BYTES`]
    /// (or the limit given to [`HttpClient::with_max_body`]).
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<Answer, HttpError> {
        let uri: Uri = url.parse().map_err(|source| HttpError::Url {
            url: url.to_string(),
            source,
        })?;
        let mut request = Request::builder().method(method.clone()).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|source| HttpError::Request {
                url: url.to_string(),
                source,
            })?;
        let exchange = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|source| HttpError::Send {
                    method: method.clone(),
                    url: url.to_string(),
                    source,
                })?;
            let status = response.status();
            let body = Limited::new(response.into_body(), self.max_body)
                .collect()
                .await
                .map_err(|e| HttpError::Body {
                    method: method.clone(),
                    url: url.to_string(),
                    detail: e.to_string(),
                })?
                .to_bytes();
            Ok(Answer { status, body })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(HttpError::Timeout {
                method,
                url: url.to_string(),
                timeout,
            }),
        }
    }
}
