//! [`Api`]: carat_probe's HTTP client (hyper 1 + rustls) with the base URL and the key,
//! turning answers into [`CliError`]s that carry the server's own error message.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use carat_probe::http::{Answer, HttpClient, HttpError};
use hyper::{Method, StatusCode};
use serde_json::Value;

use super::{CliError, Conn, DEV_KEY};

/// Largest answer read: a query answer holds at most 100,000 points
/// (`reader.max_points_per_answer`), a name listing at most 100,000 names.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// How often a 503/429 answer is retried, waiting 1 s, 2 s, 4 s, … (the server's
/// `Retry-After` is 1 s by default, docs/api.md "Errors").
const RETRIES: u32 = 5;

/// A carat to talk to.
#[derive(Debug, Clone)]
pub struct Api {
    client: HttpClient,
    base: String,
    key: String,
    timeout: Duration,
}

/// What one successful post took.
#[derive(Debug, Clone, Copy)]
pub struct Posted {
    /// 503/429 answers retried before the success.
    pub retries: u32,
}

impl Api {
    /// Checks the URL and picks the key (the dev key only for a loopback URL).
    ///
    /// # Errors
    /// [`CliError::Input`] for a bad URL or a missing key, [`CliError::Local`] if TLS
    /// cannot be set up.
    pub fn new(conn: &Conn) -> Result<Self, CliError> {
        let base = conn.url.trim_end_matches('/').to_string();
        let uri: hyper::Uri = base
            .parse()
            .map_err(|e| CliError::Input(format!("--url {:?}: {e}", conn.url)))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(CliError::Input(format!(
                "--url {:?}: expected http://host[:port] or https://host[:port]",
                conn.url
            )));
        }
        let key = match &conn.key {
            Some(k) if !k.is_empty() => k.clone(),
            _ if is_loopback(uri.host().unwrap_or_default()) => DEV_KEY.to_string(),
            _ => {
                return Err(CliError::Input(format!(
                    "no API key for {base}: pass --key or set CARAT_KEY (the development key is used only for loopback URLs)"
                )))
            }
        };
        let client = HttpClient::new()
            .map_err(|e| CliError::Local(e.to_string()))?
            .with_max_body(MAX_ANSWER_BYTES);
        Ok(Self {
            client,
            base,
            key,
            timeout: Duration::from_secs(conn.timeout.max(1)),
        })
    }

    /// The base URL, without a trailing slash.
    #[must_use]
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path?params` ⇒ the JSON answer.
    ///
    /// # Errors
    /// The server's error, or no answer.
    pub async fn get(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, CliError> {
        let (url, body) = self.get_raw(path, params).await?;
        serde_json::from_slice(&body).map_err(|e| {
            let end = body.len().min(300);
            CliError::Server(format!(
                "GET {url}: the answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&body[..end])
            ))
        })
    }

    /// `GET path?params` ⇒ the URL asked and the answer body as it came.
    ///
    /// # Errors
    /// The server's error, or no answer.
    pub async fn get_raw(
        &self,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<(String, Bytes), CliError> {
        let url = format!("{}{path}{}", self.base, query_string(params));
        let answer = self.send(Method::GET, &url, None).await?;
        check(&url, &answer)?;
        Ok((url, answer.body))
    }

    /// [`Api::get_raw`], the answer written out verbatim when `verbatim` (`--format
    /// json`, returns `None`), else parsed as JSON and read by `shape`.
    ///
    /// # Errors
    /// The server's error, no answer, an answer that is not JSON or not of the shape.
    pub async fn get_shaped<T>(
        &self,
        path: &str,
        params: &[(&str, &str)],
        verbatim: bool,
        shape: impl FnOnce(&Value) -> Option<T>,
    ) -> Result<Option<T>, CliError> {
        use std::io::Write as _;
        let (url, body) = self.get_raw(path, params).await?;
        if verbatim {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            out.write_all(&body)?;
            writeln!(out)?;
            out.flush()?;
            return Ok(None);
        }
        let answer: Value = serde_json::from_slice(&body)
            .map_err(|e| CliError::Server(format!("GET {url}: the answer is not JSON: {e}")))?;
        shape(&answer)
            .map(Some)
            .ok_or_else(|| CliError::Server(format!("GET {url}: unexpected answer shape")))
    }

    /// `POST path` with a JSON `body`, retrying 503 and 429 answers.
    ///
    /// # Errors
    /// The server's error (after the retries), or no answer.
    pub async fn post(&self, path: &str, body: Bytes) -> Result<Posted, CliError> {
        let url = format!("{}{path}", self.base);
        let mut wait = Duration::from_secs(1);
        let mut retries = 0;
        loop {
            let answer = self.send(Method::POST, &url, Some(body.clone())).await?;
            let retryable = matches!(
                answer.status,
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
            );
            if retryable && retries < RETRIES {
                retries += 1;
                tokio::time::sleep(wait).await;
                wait *= 2;
                continue;
            }
            check(&url, &answer)?;
            return Ok(Posted { retries });
        }
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<Bytes>,
    ) -> Result<Answer, CliError> {
        let headers = [("x-api-key", self.key.as_str())];
        self.client
            .send(method, url, &headers, body, self.timeout)
            .await
            .map_err(|e| match e {
                HttpError::Url { .. } | HttpError::Request { .. } => CliError::Input(e.to_string()),
                HttpError::Tls(_) => CliError::Local(e.to_string()),
                HttpError::Send { .. } | HttpError::Timeout { .. } | HttpError::Body { .. } => {
                    CliError::Unreachable(format!("cannot reach carat: {}", chain(&e)))
                }
            })
    }
}

/// A success, or the server's error message as a [`CliError::Server`].
fn check(url: &str, answer: &Answer) -> Result<(), CliError> {
    if answer.status.is_success() {
        return Ok(());
    }
    Err(CliError::Server(format!(
        "{url}: {}",
        server_message(answer.status, &answer.body)
    )))
}

/// `HTTP 400 Bad Request: <message> (request id …)` from carat's error shape
/// `{"error":{"message","field"?,"index"?,"request_id"}}`, else the status and the start
/// of the body.
#[must_use]
pub fn server_message(status: StatusCode, body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    match error.and_then(|e| e.get("message")).and_then(Value::as_str) {
        Some(message) => {
            let id = error
                .and_then(|e| e.get("request_id"))
                .and_then(Value::as_str)
                .map(|id| format!(" (request id {id})"))
                .unwrap_or_default();
            format!("HTTP {status}: {message}{id}")
        }
        None if body.is_empty() => format!("HTTP {status}"),
        None => {
            let end = body.len().min(300);
            format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..end]).trim()
            )
        }
    }
}

/// An error with its causes (hyper's "client error (Connect)" alone says little).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

/// Whether `host` (as in a URL: `[::1]` with brackets) is a loopback address.
#[must_use]
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `?k=v&…` with every byte outside `[A-Za-z0-9._~-]` percent-encoded (globs hold
/// `*`, `{`, `[`, `,`).
#[must_use]
pub fn query_string(params: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in params.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        encode_into(&mut out, k);
        out.push('=');
        encode_into(&mut out, v);
    }
    out
}

fn encode_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_are_recognised() {
        for h in ["127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "[::1]"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["10.0.0.1", "carat.example.com", "[::2]", "0.0.0.0"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn the_dev_key_is_only_for_loopback() {
        let conn = |url: &str, key: Option<&str>| Conn {
            url: url.to_string(),
            key: key.map(str::to_string),
            timeout: 5,
        };
        assert_eq!(
            Api::new(&conn("http://127.0.0.1:8080/", None))
                .map(|a| a.key)
                .ok()
                .as_deref(),
            Some(DEV_KEY)
        );
        let err = Api::new(&conn("https://carat.example.com", None)).unwrap_err();
        assert!(
            matches!(err, CliError::Input(ref m) if m.contains("--key")),
            "{err}"
        );
        assert_eq!(
            Api::new(&conn("https://carat.example.com", Some("k")))
                .map(|a| a.key)
                .ok()
                .as_deref(),
            Some("k")
        );
        assert!(matches!(
            Api::new(&conn("ftp://x", None)),
            Err(CliError::Input(_))
        ));
    }

    #[test]
    fn globs_are_encoded() {
        assert_eq!(
            query_string(&[("series", "host.{a,b}.cpu*"), ("from", "-6")]),
            "?series=host.%7Ba%2Cb%7D.cpu%2A&from=-6"
        );
    }

    #[test]
    fn the_server_message_is_shown() {
        let body = br#"{"error":{"message":"point 0: field `time`: too old","index":0,"field":"time","request_id":"r1"}}"#;
        assert_eq!(
            server_message(StatusCode::BAD_REQUEST, body),
            "HTTP 400 Bad Request: point 0: field `time`: too old (request id r1)"
        );
        assert_eq!(
            server_message(StatusCode::NOT_FOUND, b""),
            "HTTP 404 Not Found"
        );
    }
}
