//! The graph page (docs/graph-page.md): one HTML page, its script and its style sheet,
//! compiled into the binary and served without a key. The page holds no key and no data:
//! it asks the person for a read key (kept in the browser's localStorage) and reads
//! `/api/v1/names` and `/api/v1/points` with it, like any other client.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::routes::ReadState;

const INDEX_HTML: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const APP_CSS: &str = include_str!("page/app.css");

/// Everything comes from this origin and nothing inline runs: no CDN, no fonts, no
/// inline script or style (the script sets styles through the CSSOM, which CSP allows),
/// data calls to this origin only, and the page cannot be framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The page's routes; they need no key (the data calls the page makes do).
pub(crate) fn routes() -> Router<ReadState> {
    Router::new()
        .route("/", get(index))
        .route("/page/{asset}", get(asset))
}

async fn index() -> Response {
    serve("text/html; charset=utf-8", INDEX_HTML)
}

async fn asset(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "app.js" => serve("text/javascript; charset=utf-8", APP_JS),
        "app.css" => serve("text/css; charset=utf-8", APP_CSS),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn serve(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            // Revalidate every load: a new release must not run beside a cached old script.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}
