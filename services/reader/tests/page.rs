//! The graph page's routes through the real router: the page and its assets are served
//! without a key, with their content types and the Content-Security-Policy, and refer to
//! nothing outside the origin; the API routes the page's script calls exist and still
//! need a key. (What the page draws is checked in a browser: services/local/tests/graph_page.rs.)
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use carat_api::{FixedClock, KeyStore, Keys, Scope};
use carat_core::{Config, Tenant};
use carat_reader::page::CONTENT_SECURITY_POLICY;
use carat_reader::{router, NoArchive, ReadState, Tiers};
use carat_store::fake::{FakeCatalog, FakeHead, FakeTable};
use tower::ServiceExt as _;

const READ: &str = "page-test-read-key";

fn app() -> axum::Router {
    let keys = KeyStore::single("reader", READ, Tenant::default_tenant(), &[Scope::Read]);
    router(ReadState {
        tiers: Tiers {
            config: Arc::new(Config::default()),
            head: Arc::new(FakeHead::new()),
            table: Arc::new(FakeTable::new()),
            archive: Arc::new(NoArchive),
        },
        catalog: Arc::new(FakeCatalog::new()),
        keys: Arc::new(Keys::fixed(Arc::new(keys))),
        clock: Arc::new(FixedClock(1_764_460_800_000)),
    })
}

async fn call(method: Method, uri: &str, key: Option<&str>) -> (StatusCode, HeaderMap, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(k) = key {
        req = req.header("X-Api-Key", k);
    }
    let res = app()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let body = axum::body::to_bytes(res.into_body(), 1 << 22)
        .await
        .unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn h(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(&name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_without_a_key() {
    for (uri, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/page/app.js", "text/javascript; charset=utf-8"),
        ("/page/app.css", "text/css; charset=utf-8"),
    ] {
        let (status, headers, body) = call(Method::GET, uri, None).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert_eq!(h(&headers, header::CONTENT_TYPE), content_type, "{uri}");
        assert_eq!(
            h(&headers, header::CONTENT_SECURITY_POLICY),
            CONTENT_SECURITY_POLICY,
            "{uri}"
        );
        assert_eq!(h(&headers, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert!(body.len() > 1_000, "{uri}: {} bytes", body.len());
        // The same request id layer as the API's routes.
        assert!(headers.contains_key("x-request-id"), "{uri}");
        let (status, _, _) = call(Method::HEAD, uri, None).await;
        assert_eq!(status, StatusCode::OK, "HEAD {uri}");
    }
    let (status, _, _) = call(Method::GET, "/page/nope.js", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn the_policy_allows_nothing_from_elsewhere_and_nothing_inline() {
    let directives: Vec<&str> = CONTENT_SECURITY_POLICY.split(';').map(str::trim).collect();
    assert!(directives.contains(&"default-src 'none'"));
    for d in [
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(directives.contains(&d), "{d} in {CONTENT_SECURITY_POLICY}");
    }
    assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-"));
    assert!(!CONTENT_SECURITY_POLICY.contains("http"));
}

#[tokio::test]
async fn the_page_loads_nothing_from_outside_and_holds_no_key() {
    let (_, _, html) = call(Method::GET, "/", None).await;
    let (_, _, js) = call(Method::GET, "/page/app.js", None).await;
    let (_, _, css) = call(Method::GET, "/page/app.css", None).await;
    // Every src/href of the page is this origin's or a data: URL.
    for attr in ["src=\"", "href=\""] {
        for value in html.split(attr).skip(1) {
            let url = value.split('"').next().unwrap();
            assert!(
                url.starts_with('/') && !url.starts_with("//") || url.starts_with("data:"),
                "{attr}{url}\""
            );
        }
    }
    // No inline script or style for the CSP to block; no URL to elsewhere but SVG's
    // namespace (a name, never fetched).
    assert!(!html.contains("<script>") && !html.contains("style="));
    for (name, text) in [("index.html", &html), ("app.js", &js), ("app.css", &css)] {
        let outside: Vec<&str> = text
            .match_indices("http")
            .map(|(i, _)| &text[i..(i + 40).min(text.len())])
            .filter(|s| !s.starts_with("http://www.w3.org/2000/svg"))
            .collect();
        assert!(outside.is_empty(), "{name} refers to {outside:?}");
        assert!(!text.contains("@import"), "{name}");
        // `url(#id)` names an element of the page (the SVG clip path); nothing else.
        assert!(
            text.match_indices("url(")
                .all(|(i, _)| text[i + 4..].starts_with('#')),
            "{name} loads a url(…)"
        );
        assert!(!text.contains("carat-dev"), "{name} holds a key");
    }
}

#[tokio::test]
async fn the_api_routes_the_script_calls_exist_and_need_a_key() {
    let (_, _, js) = call(Method::GET, "/page/app.js", None).await;
    let mut paths: Vec<&str> = js
        .match_indices("'/api/")
        .map(|(i, _)| js[i + 1..].split(['?', '\'']).next().unwrap())
        .collect();
    paths.sort_unstable();
    paths.dedup();
    assert_eq!(paths, ["/api/v1/names", "/api/v1/points"]);
    for (path, query) in [
        ("/api/v1/names", "match=*&limit=200"),
        (
            "/api/v1/points",
            // What the page sends for a day at 800 px: 2-minute buckets.
            "series=a.*&from=1764374400&to=1764460800&max_points=800&resolution=120",
        ),
    ] {
        assert!(paths.contains(&path));
        let uri = format!("{path}?{query}");
        let (status, headers, _) = call(Method::GET, &uri, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri} without a key");
        assert!(headers.contains_key(header::WWW_AUTHENTICATE));
        let (status, _, _) = call(Method::GET, &uri, Some("wrong-key")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri} with a wrong key");
        let (status, _, body) = call(Method::GET, &uri, Some(READ)).await;
        assert_eq!(status, StatusCode::OK, "{uri} with the key: {body}");
    }
}
