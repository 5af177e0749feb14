//! A plain HTTP/1.1 client (hyper 1, pooled): any method, any headers, any body bytes, so
//! scenarios can send exactly what a hostile or broken client would. Nothing is added to
//! a request but `Host` (and `Content-Length` from the body).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Answers larger than this are an error (a query answer is at most ~10 MB).
const MAX_ANSWER: usize = 64 << 20;

/// How long one exchange may take unless the caller says otherwise: a hang is a failure.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One answer: status, headers, whole body, and how long the exchange took.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub elapsed: Duration,
}

impl Reply {
    /// The body as text (lossy).
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body if it is not JSON.
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "answer {} is not JSON ({e}): {}",
                self.status,
                self.text().chars().take(500).collect::<String>()
            )
        })
    }

    /// A header's value as text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Panics unless the status is `want`, showing the body.
    #[track_caller]
    pub fn expect(self, want: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            want,
            "want {want}, got {}: {}",
            self.status,
            self.text().chars().take(500).collect::<String>()
        );
        self
    }
}

/// The client. Cheap to clone (one pool).
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Http")
    }
}

impl Http {
    #[must_use]
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
        }
    }

    /// Sends one request within [`DEFAULT_TIMEOUT`].
    ///
    /// # Errors
    /// A transport failure or the timeout, as text.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Reply, String> {
        self.send_within(method, url, headers, body, DEFAULT_TIMEOUT)
            .await
    }

    /// Sends one request; the whole exchange must end within `timeout`.
    ///
    /// # Errors
    /// A transport failure or the timeout, as text.
    pub async fn send_within(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Reply, String> {
        let mut req = Request::builder().method(method.clone()).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(body.into()))
            .map_err(|e| format!("{method} {url}: bad request: {e}"))?;
        let started = Instant::now();
        let exchange = async {
            let res = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("{method} {url}: {e:?}"))?;
            let (parts, body) = res.into_parts();
            let body = Limited::new(body, MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| format!("{method} {url}: reading the body: {e}"))?
                .to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
                elapsed: started.elapsed(),
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(format!("{method} {url}: no answer within {timeout:?}")),
        }
    }
}
