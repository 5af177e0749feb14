//! Request ids, and the one place errors are logged.
//!
//! [`layer`] wraps every route: it takes the request's id from an incoming
//! `x-request-id` or `x-amzn-requestid` header, else from API Gateway's request context
//! (the id API Gateway itself reports as `apigw-requestid` and in its access logs), else
//! makes one; answers carry it in `x-request-id`, error bodies in `"request_id"`
//! ([`current`], read by `AppError`'s response). An error response hands the layer its
//! full detail — a dependency's error text included, which never goes into the body —
//! and the layer logs it with the same id, so a client's report finds the log line.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The header answers carry the request id in (and that an incoming id is read from).
pub const HEADER: &str = "x-request-id";
/// The header AWS services use for their request ids, also accepted from a caller.
const AMZN_HEADER: &str = "x-amzn-requestid";
/// Longest incoming id taken as is; longer or odd ones are replaced by a new id, so a
/// caller cannot put arbitrary text into the logs or the answer.
const MAX_ID_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: String;
}

/// The id of the request being handled, if called inside [`layer`].
#[must_use]
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// What an error response leaves for [`layer`] to log: the status, and the full detail
/// (the public message plus whatever caused it).
#[derive(Debug, Clone)]
pub struct ErrorDetail {
    pub status: u16,
    pub detail: String,
}

/// The middleware: finds or makes the id, runs the request inside it, logs an error
/// answer's detail with it, and sets `x-request-id` on the answer.
pub async fn layer(req: Request, next: Next) -> Response {
    let id = incoming(&req).unwrap_or_else(generate);
    let mut response = CURRENT.scope(id.clone(), next.run(req)).await;
    if let Some(e) = response.extensions_mut().remove::<ErrorDetail>() {
        let (status, detail) = (e.status, e.detail.as_str());
        match status {
            503 => tracing::warn!(request_id = %id, status, error = detail, "log unavailable"),
            500.. => tracing::error!(request_id = %id, status, error = detail, "request failed"),
            _ => tracing::debug!(request_id = %id, status, error = detail, "request rejected"),
        }
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, v);
    }
    response
}

fn incoming(req: &Request) -> Option<String> {
    from_headers(req.headers()).or_else(|| {
        use lambda_http::request::RequestContext;
        use lambda_http::RequestExt as _;
        match req.request_context_ref()? {
            RequestContext::ApiGatewayV2(ctx) => ctx.request_id.clone().filter(|id| valid(id)),
            _ => None,
        }
    })
}

fn from_headers(headers: &HeaderMap) -> Option<String> {
    [HEADER, AMZN_HEADER]
        .iter()
        .filter_map(|name| headers.get(*name)?.to_str().ok())
        .map(str::trim)
        .find(|id| valid(id))
        .map(str::to_string)
}

fn valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'='))
}

/// A new id: 32 hex digits, random per process and counting up within it, so two
/// requests never share one.
fn generate() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static PROCESS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let process = *PROCESS.get_or_init(rand::random::<u64>);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{process:016x}{n:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_ids_are_taken_only_when_plain() {
        let mut h = HeaderMap::new();
        assert_eq!(from_headers(&h), None);
        h.insert(
            AMZN_HEADER,
            "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
                .parse()
                .expect("header"),
        );
        assert_eq!(
            from_headers(&h).as_deref(),
            Some("c6af9ac6-7b61-11e6-9a41-93e8deadbeef")
        );
        h.insert(HEADER, "abc-1".parse().expect("header"));
        assert_eq!(from_headers(&h).as_deref(), Some("abc-1"));
        h.insert(HEADER, "has space".parse().expect("header"));
        assert_eq!(
            from_headers(&h).as_deref(),
            Some("c6af9ac6-7b61-11e6-9a41-93e8deadbeef"),
            "an odd id falls through to the next header"
        );
        h.remove(AMZN_HEADER);
        h.insert(HEADER, "x".repeat(MAX_ID_LEN + 1).parse().expect("header"));
        assert_eq!(from_headers(&h), None);
    }

    #[test]
    fn generated_ids_differ() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(valid(&a));
    }
}
