//! Which label sets this process sent lately: the remote_write route sends a labels
//! record (`carat_core::record::labels`) for a series only when this process has not
//! sent that exact label set within `ingest.labels_resend_secs` (1 h), so the catalog
//! gets every Prometheus series' labels without a labels record per request.
//!
//! Bounded (`ingest.labels_cache_series` entries): when full, entries older than the
//! resend interval go first, then everything (a few label sets sent again, nothing lost).
//! Keys are 64-bit hashes of (tenant, series, labels); two label sets colliding would
//! delay one of them by at most the resend interval.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use carat_core::config::IngestConfig;
use carat_core::record::labels::SeriesLabels;
use carat_core::Tenant;

/// The label sets sent lately, by hash, with when they were sent (epoch ms).
#[derive(Debug)]
pub struct LabelsSent {
    sent: Mutex<HashMap<u64, i64>>,
    cap: usize,
    resend_ms: i64,
}

impl Default for LabelsSent {
    fn default() -> Self {
        Self::new(&IngestConfig::default())
    }
}

fn hash(tenant: &Tenant, s: &SeriesLabels) -> u64 {
    // SipHash with fixed keys: the same in every process run, which is all it needs.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tenant.hash(&mut h);
    s.series.hash(&mut h);
    s.labels.hash(&mut h);
    h.finish()
}

impl LabelsSent {
    #[must_use]
    pub fn new(cfg: &IngestConfig) -> Self {
        Self {
            sent: Mutex::new(HashMap::new()),
            cap: cfg.labels_cache_series.max(1),
            resend_ms: cfg.labels_resend_secs.saturating_mul(1000),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, i64>> {
        // A poisoned map is still a valid (conservative) memory.
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The label sets of `labels` not sent within the resend interval before `now_ms`,
    /// with the keys to pass to [`LabelsSent::mark`] once they were acknowledged.
    #[must_use]
    pub fn due(
        &self,
        tenant: &Tenant,
        labels: Vec<SeriesLabels>,
        now_ms: i64,
    ) -> (Vec<SeriesLabels>, Vec<u64>) {
        let sent = self.lock();
        let mut keys = Vec::new();
        let due = labels
            .into_iter()
            .filter(|s| {
                let k = hash(tenant, s);
                let fresh = sent
                    .get(&k)
                    .is_some_and(|&at| now_ms.saturating_sub(at) < self.resend_ms);
                if !fresh {
                    keys.push(k);
                }
                !fresh
            })
            .collect();
        (due, keys)
    }

    /// Notes label sets as sent at `now_ms` (after the log acknowledged them).
    pub fn mark(&self, keys: &[u64], now_ms: i64) {
        if keys.is_empty() {
            return;
        }
        let mut sent = self.lock();
        if sent.len() + keys.len() > self.cap {
            let resend_ms = self.resend_ms;
            sent.retain(|_, at| now_ms.saturating_sub(*at) < resend_ms);
            if sent.len() + keys.len() > self.cap {
                sent.clear();
            }
        }
        for &k in keys {
            sent.insert(k, now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carat_core::SeriesName;

    fn set(name: &str, job: &str) -> SeriesLabels {
        SeriesLabels {
            series: SeriesName::parse(name, "name").expect("valid"),
            labels: vec![
                ("__name__".to_string(), "up".to_string()),
                ("job".to_string(), job.to_string()),
            ],
        }
    }

    #[test]
    fn a_label_set_is_due_again_after_the_resend_interval_only() {
        let cfg = IngestConfig {
            labels_cache_series: 10,
            labels_resend_secs: 3_600,
            ..IngestConfig::default()
        };
        let cache = LabelsSent::new(&cfg);
        let t = Tenant::default_tenant();
        let (due, keys) = cache.due(&t, vec![set("up.job.a", "a")], 0);
        assert_eq!(due.len(), 1);
        // Not marked yet (the put may fail): still due.
        assert_eq!(cache.due(&t, vec![set("up.job.a", "a")], 1).0.len(), 1);
        cache.mark(&keys, 0);
        assert!(cache
            .due(&t, vec![set("up.job.a", "a")], 3_599_999)
            .0
            .is_empty());
        assert_eq!(
            cache.due(&t, vec![set("up.job.a", "a")], 3_600_000).0.len(),
            1
        );
        // Another label set under the same name, or another tenant: due.
        assert_eq!(cache.due(&t, vec![set("up.job.a", "b")], 1).0.len(), 1);
        let other = Tenant::parse("acme").expect("valid");
        assert_eq!(cache.due(&other, vec![set("up.job.a", "a")], 1).0.len(), 1);
    }

    #[test]
    fn the_cache_stays_within_its_bound() {
        let cfg = IngestConfig {
            labels_cache_series: 3,
            ..IngestConfig::default()
        };
        let cache = LabelsSent::new(&cfg);
        let t = Tenant::default_tenant();
        for i in 0..10 {
            let (_, keys) = cache.due(&t, vec![set(&format!("up.job.j{i}"), "x")], 0);
            cache.mark(&keys, 0);
            assert!(cache.lock().len() <= 3);
        }
    }
}
