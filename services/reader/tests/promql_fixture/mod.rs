//! The reader's router over in-memory tiers (`common`) holding Prometheus series, for
//! the PromQL tests: series are stored as remote_write stores them (`store_labelled`),
//! read with [`READ`]. A test crate using this declares `mod common;` too.
#![allow(dead_code, clippy::unwrap_used)]

use std::ops::Deref;

use axum::http::StatusCode;
use carat_core::Config;
use serde_json::Value;

use crate::common;
pub(crate) use crate::common::READ;

pub(crate) struct Fixture {
    base: common::Fixture,
    /// The reader's "now", epoch seconds.
    pub(crate) now: i64,
}

impl Deref for Fixture {
    type Target = common::Fixture;

    fn deref(&self) -> &common::Fixture {
        &self.base
    }
}

impl Fixture {
    pub(crate) fn new(cfg: Config, now: i64) -> Self {
        Self {
            base: common::Fixture::new(cfg, common::reader(READ), now),
            now,
        }
    }

    /// Stores `points` (epoch seconds, value) of the series `labels` (with `__name__`),
    /// value bits kept exactly (stale markers included), in the catalog on the day of
    /// its last point.
    pub(crate) async fn store(&self, labels: &[(&str, &str)], points: &[(i64, f64)]) {
        let day = points
            .last()
            .map_or(0, |p| carat_core::catalog::day_of(p.0));
        self.store_labelled("default", labels, day, points).await;
    }

    /// GET `uri` with the read key.
    pub(crate) async fn get(&self, uri: &str) -> (StatusCode, Value, Option<String>) {
        let answer = self.send(common::get(uri, Some(READ))).await;
        (answer.status, answer.json(), answer.retry_after())
    }

    /// POST `form` (already encoded) to `uri`, as Grafana's POST method does.
    pub(crate) async fn post_form(
        &self,
        uri: &str,
        form: &str,
    ) -> (StatusCode, Value, Option<String>) {
        let answer = self
            .send(common::post_form(uri, READ, form.to_string()))
            .await;
        (answer.status, answer.json(), answer.retry_after())
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
