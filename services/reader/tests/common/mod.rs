//! The reader's router over in-memory tiers, shared by its integration tests: a
//! `ReadState` over the store's fakes, series stored as the flusher stores them (one
//! table write per raw window, value bits kept exactly) and recorded in the catalog, and
//! requests sent through a fresh router, answered whole. Each test file keeps its own
//! data set and its own request shapes on top of this.
// Each test crate uses a part of this module.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use carat_api::remote_write::{series_name, Label};
use carat_api::{FixedClock, KeyStore, Keys, Scope};
use carat_core::head::Stamped;
use carat_core::{Config, SeriesKey, SeriesName, Tenant};
use carat_reader::{router, NoArchive, ReadState, Tiers};
use carat_store::fake::{FakeCatalog, FakeHead, FakeTable};
use carat_store::ports::{Catalog, CatalogEntry, WindowTable};
use carat_writer::flush::window_items;
use serde_json::Value;
use tower::ServiceExt as _;

/// A key with the `read` scope on the default tenant.
pub(crate) const READ: &str = "read-key";
/// A key with only the `write` scope on the default tenant.
pub(crate) const WRITE_ONLY: &str = "write-key";
/// A key with the `read` scope on the tenant `other`.
pub(crate) const OTHER: &str = "other-tenant-key";

/// Answers are read whole up to this size; the largest (a PromQL range over many
/// series, a Graphite render) stay well under it.
const MAX_BODY: usize = 64 << 20;

/// [`READ`], [`WRITE_ONLY`] and [`OTHER`].
pub(crate) fn reader_writer_other() -> KeyStore {
    reader(READ)
        .with(KeyStore::single(
            "writer",
            WRITE_ONLY,
            Tenant::default_tenant(),
            &[Scope::Write],
        ))
        .with(KeyStore::single(
            "other",
            OTHER,
            Tenant::parse("other").unwrap(),
            &[Scope::Read],
        ))
}

/// `key` alone, with the `read` scope on the default tenant.
pub(crate) fn reader(key: &str) -> KeyStore {
    KeyStore::single("reader", key, Tenant::default_tenant(), &[Scope::Read])
}

pub(crate) struct Fixture {
    pub(crate) cfg: Arc<Config>,
    pub(crate) head: Arc<FakeHead>,
    pub(crate) table: Arc<FakeTable>,
    pub(crate) catalog: Arc<FakeCatalog>,
    keys: Arc<KeyStore>,
    /// The reader's clock, epoch seconds.
    clock: i64,
}

impl Fixture {
    /// Empty tiers read with `keys`, the reader's clock standing at `clock` (epoch seconds).
    pub(crate) fn new(cfg: Config, keys: KeyStore, clock: i64) -> Self {
        Self {
            cfg: Arc::new(cfg),
            head: Arc::new(FakeHead::new()),
            table: Arc::new(FakeTable::new()),
            catalog: Arc::new(FakeCatalog::new()),
            keys: Arc::new(keys),
            clock,
        }
    }

    /// Stores `points` (epoch seconds, value) of the series `series` of `tenant`, posted
    /// by name: no labels in the catalog, where it is recorded under `day`.
    pub(crate) async fn store(&self, tenant: &str, series: &str, day: i64, points: &[(i64, f64)]) {
        let key = SeriesKey::new(
            Tenant::parse(tenant).unwrap(),
            SeriesName::parse(series, "s").unwrap(),
        );
        self.store_key(&key, Vec::new(), day, points).await;
    }

    /// Stores `points` of the series `labels` (with `__name__`) of `tenant` as
    /// remote_write does: named by the writer's own mapping (`remote_write::series_name`),
    /// recorded in the catalog under `day` with its labels, sorted.
    pub(crate) async fn store_labelled(
        &self,
        tenant: &str,
        labels: &[(&str, &str)],
        day: i64,
        points: &[(i64, f64)],
    ) {
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
        let key = SeriesKey::new(Tenant::parse(tenant).unwrap(), series_name(&wire).unwrap());
        self.store_key(&key, sorted, day, points).await;
    }

    /// One table write per raw window, as the flusher does, then the catalog entry.
    async fn store_key(
        &self,
        key: &SeriesKey,
        labels: Vec<(String, String)>,
        day: i64,
        points: &[(i64, f64)],
    ) {
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
                .put(&window_items(&self.cfg, key, start, &pts).unwrap())
                .await
                .unwrap();
        }
        self.catalog
            .record(
                &key.tenant,
                &[CatalogEntry {
                    series: key.series.clone(),
                    labels,
                    day,
                }],
            )
            .await
            .unwrap();
    }

    pub(crate) fn state(&self) -> ReadState {
        ReadState {
            tiers: Tiers {
                config: Arc::clone(&self.cfg),
                head: self.head.clone(),
                table: self.table.clone(),
                archive: Arc::new(NoArchive),
            },
            catalog: self.catalog.clone(),
            keys: Arc::new(Keys::fixed(Arc::clone(&self.keys))),
            clock: Arc::new(FixedClock(self.clock * 1000)),
        }
    }

    pub(crate) fn router(&self) -> axum::Router {
        router(self.state())
    }

    /// Sends `req` through a fresh router and reads the whole answer.
    pub(crate) async fn send(&self, req: Request<Body>) -> Answer {
        let res = self.router().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = axum::body::to_bytes(res.into_body(), MAX_BODY)
            .await
            .unwrap()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }
}

/// A GET of `uri`, with `key` as `X-Api-Key` if there is one.
pub(crate) fn get(uri: &str, key: Option<&str>) -> Request<Body> {
    let mut req = Request::get(uri);
    if let Some(k) = key {
        req = req.header("X-Api-Key", k);
    }
    req.body(Body::empty()).unwrap()
}

/// A POST of `form` (already encoded) to `uri` with `key`, as Grafana's POST method does.
pub(crate) fn post_form(uri: &str, key: &str, form: String) -> Request<Body> {
    Request::post(uri)
        .header("X-Api-Key", key)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap()
}

/// A whole answer of the router.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    /// The body as JSON, `Null` if it is not JSON.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as text; panics unless it is UTF-8.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    pub(crate) fn retry_after(&self) -> Option<String> {
        self.headers
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string())
    }
}
