//! What the Prometheus-facing routes (PromQL selectors, remote_read matchers) share
//! about the catalog: the labels a series answers with, and the groups the series of
//! one metric name are listed under.

use carat_core::catalog::{group_of, implied_labels};
use carat_core::Tenant;
use carat_store::ports::{Catalog, CatalogEntry};
use carat_store::StoreError;

use crate::routes::group_of_prefix;

/// The labels a series answers with: the catalog's set (a Prometheus series'), else the
/// labels its plain name implies; sorted by name (Prometheus' client checks duplicates
/// on neighbours), empty values left out (Prometheus treats them as absent).
pub(crate) fn labels_of(entry: &CatalogEntry) -> Vec<(String, String)> {
    let mut labels = if entry.labels.is_empty() {
        implied_labels(&entry.series)
    } else {
        entry.labels.clone()
    };
    labels.retain(|(_, v)| !v.is_empty());
    labels.sort();
    labels
}

/// Where the series of the Prometheus metric `metric` are listed: the catalog groups,
/// and the series name they start with (`metric` sanitized, as remote_write names it:
/// a series is `<metric>` or `<metric>.<label>.<value>…`). `None`: no series name can
/// start with it (over 255 bytes), so nothing matches. For `host` / `service` each
/// further label starts a group of its own (`host.instance`, …): those are listed, at
/// most `limit + 1`.
///
/// # Errors
/// The catalog's failure.
pub(crate) async fn metric_groups(
    catalog: &dyn Catalog,
    tenant: &Tenant,
    metric: &str,
    limit: usize,
) -> Result<Option<(Vec<String>, String)>, StoreError> {
    let Ok(name) = carat_api::remote_write::series_name(&[carat_api::remote_write::Label {
        name: "__name__".into(),
        value: metric.into(),
    }]) else {
        return Ok(None);
    };
    let name = name.as_str().to_string();
    let mut groups = vec![group_of(&name).to_string()];
    let within = format!("{name}.");
    match group_of_prefix(&within) {
        Some(g) => groups.push(g.to_string()),
        None => groups.extend(catalog.groups(tenant, &within, limit + 1).await?),
    }
    groups.sort();
    groups.dedup();
    Ok(Some((groups, name)))
}

/// Whether the series `name` belongs to the metric whose series start with `prefix`
/// (`""`: any metric).
pub(crate) fn of_metric(name: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || name == prefix
        || name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use carat_core::SeriesName;
    use carat_store::fake::FakeCatalog;

    #[tokio::test]
    async fn groups_follow_the_writers_name_mapping() {
        let catalog = FakeCatalog::new();
        let tenant = Tenant::parse("t").unwrap();
        let entry = |name: &str| CatalogEntry {
            series: SeriesName::parse(name, "s").unwrap(),
            labels: Vec::new(),
            day: 0,
        };
        catalog
            .record(&tenant, &[entry("host.instance.a_9100.job.node")])
            .await
            .unwrap();
        let groups = |m: &'static str| {
            let (catalog, tenant) = (&catalog, &tenant);
            async move {
                metric_groups(catalog, tenant, m, 10)
                    .await
                    .unwrap()
                    .unwrap()
            }
        };
        assert_eq!(
            groups("up").await,
            (vec!["up".to_string()], "up".to_string())
        );
        assert_eq!(
            groups("job:requests:rate5m").await,
            (
                vec!["job_requests_rate5m".to_string()],
                "job_requests_rate5m".to_string()
            )
        );
        // A metric named `host`: its series sit in groups `host.<first label>`.
        assert_eq!(
            groups("host").await,
            (
                vec!["host".to_string(), "host.instance".to_string()],
                "host".to_string()
            )
        );
        assert!(of_metric("up.job.node", "up"));
        assert!(of_metric("up", "up"));
        assert!(!of_metric("upstream", "up"));
        assert!(of_metric("anything", ""));
    }
}
