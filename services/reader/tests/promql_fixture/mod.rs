//! The reader's router over in-memory tiers holding Prometheus series, for the PromQL
//! tests: series are named by the writer's own mapping (`remote_write::series_name`)
//! and recorded in the catalog with their full label sets, as remote_write stores them.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use carat_api::remote_write::{series_name, Label};
use carat_api::{FixedClock, KeyStore, Keys, Scope};
use carat_core::head::Stamped;
use carat_core::{Config, SeriesKey, Tenant};
use carat_reader::{router, NoArchive, ReadState, Tiers};
use carat_store::fake::{FakeCatalog, FakeHead, FakeTable};
use carat_store::ports::{Catalog, CatalogEntry, WindowTable};
use carat_writer::flush::window_items;
use serde_json::Value;
use tower::ServiceExt as _;

pub(crate) const READ: &str = "read-key";

pub(crate) struct Fixture {
    pub(crate) cfg: Arc<Config>,
    pub(crate) head: Arc<FakeHead>,
    pub(crate) table: Arc<FakeTable>,
    pub(crate) catalog: Arc<FakeCatalog>,
    /// The reader's "now", epoch seconds.
    pub(crate) now: i64,
}

impl Fixture {
    pub(crate) fn new(cfg: Config, now: i64) -> Self {
        Self {
            cfg: Arc::new(cfg),
            head: Arc::new(FakeHead::new()),
            table: Arc::new(FakeTable::new()),
            catalog: Arc::new(FakeCatalog::new()),
            now,
        }
    }

    /// Stores `points` (epoch seconds, value) of the series `labels` (with `__name__`),
    /// value bits kept exactly (stale markers included).
    pub(crate) async fn store(&self, labels: &[(&str, &str)], points: &[(i64, f64)]) {
        let mut sorted: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        sorted.sort();
        let wire: Vec<Label> = sorted
            .iter()
            .map(|(k, v)| Label {
                name: k.clone(),
                value: v.clone(),
            })
            .collect();
        let key = SeriesKey::new(Tenant::default_tenant(), series_name(&wire).unwrap());
        let mut by_window: BTreeMap<i64, Vec<Stamped>> = BTreeMap::new();
        for &(time, value) in points {
            by_window
                .entry(carat_core::window::start(self.cfg.window.raw_secs, time))
                .or_default()
                .push(Stamped {
                    time,
                    value_bits: value.to_bits(),
                    stamp: time,
                });
        }
        for (start, pts) in by_window {
            self.table
                .put(&window_items(&self.cfg, &key, start, &pts).unwrap())
                .await
                .unwrap();
        }
        let day = points
            .last()
            .map_or(0, |p| carat_core::catalog::day_of(p.0));
        self.catalog
            .record(
                &key.tenant,
                &[CatalogEntry {
                    series: key.series.clone(),
                    labels: sorted,
                    day,
                }],
            )
            .await
            .unwrap();
    }

    pub(crate) fn router(&self) -> axum::Router {
        let store = KeyStore::single("reader", READ, Tenant::default_tenant(), &[Scope::Read]);
        router(ReadState {
            tiers: Tiers {
                config: Arc::clone(&self.cfg),
                head: self.head.clone(),
                table: self.table.clone(),
                archive: Arc::new(NoArchive),
            },
            catalog: self.catalog.clone(),
            keys: Arc::new(Keys::fixed(Arc::new(store))),
            clock: Arc::new(FixedClock(self.now * 1000)),
        })
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, Value, Option<String>) {
        let res = self.router().oneshot(req).await.unwrap();
        let status = res.status();
        let retry = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = axum::body::to_bytes(res.into_body(), 64 << 20)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body, retry)
    }

    /// GET `uri` with the read key.
    pub(crate) async fn get(&self, uri: &str) -> (StatusCode, Value, Option<String>) {
        self.send(
            Request::get(uri)
                .header("X-Api-Key", READ)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// POST `form` (already encoded) to `uri`, as Grafana's POST method does.
    pub(crate) async fn post_form(
        &self,
        uri: &str,
        form: &str,
    ) -> (StatusCode, Value, Option<String>) {
        self.send(
            Request::post(uri)
                .header("X-Api-Key", READ)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(form.to_string()))
                .unwrap(),
        )
        .await
    }
}

/// Percent-encodes a query parameter value.
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
