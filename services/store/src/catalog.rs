//! [`DynamoCatalog`]: the series catalog port over a DynamoDB table of its own
//! (`resources.catalog_table`, default `carat-catalog`; layout in docs/formats.md,
//! "Catalog items").
//!
//! ```text
//! series item   pk (S) <tenant>#<group>     sk (S) <series>   d (N) day   l (L) [[name, value], …]
//! group item    pk (S) <tenant>##groups     sk (S) <group>    d (N) day
//! name set      pk (S) <tenant>##names      sk (S) <id, hex>  n (B) sealed set   v (N) 1
//! ```
//!
//! Name sets ([`NameSets`]) live here too: a record v2 names its series by one, so the
//! ingest API puts it (one PutItem per new set per API process) and the writer reads it
//! (one consistent GetItem per set per writer container).
//!
//! Groups are `carat_core::catalog::group_of` (a host, a service, a metric name), so a
//! tenant's series spread over as many partitions as it has groups, and listing a
//! group or a name prefix inside it is one Query on one partition key with
//! `begins_with(sk, prefix)`, paginated, never a scan — 1 M series per tenant cost
//! nothing more to list one host than 100 do. The groups partition of a tenant holds one
//! small item per group (hosts, services, metric names: thousands, not millions).
//!
//! Writes: one UpdateItem per series entry (`SET d = :d`, and `, l = :l` only when the
//! entry has labels, so a Mackerel/native write or a points-only write never erases a
//! Prometheus label set stored before). An UpdateItem bills 1 WU per KB of the larger of
//! the item before and after: 1 WU for every series item under 1 KB. BatchWriteItem
//! would be the same 1 WU per item but can only replace whole items (it would erase
//! labels), and a transaction bills 2 WU per item. Group items are written only the first
//! time this process records the group on a day (PutItem, 1 WU). The writer calls
//! [`Catalog::record`] at most once per new series per day (Redis markers), so the
//! catalog costs ≈ 1 WU per series per day.
//!
//! Every call is retried with backoff until `retry.deadline_ms` on throttling, 5xx and
//! timeouts (the SDK's operation timeout bounds each attempt); other errors are fatal.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use carat_core::catalog::group_of;
use carat_core::config::RetryConfig;
use carat_core::{SeriesName, Tenant};
use futures::{StreamExt, TryStreamExt};

use crate::aws::classify;
use crate::dynamo::TableHealth;
use crate::ports::{Catalog, CatalogEntry, NameSets};
use crate::retry::with_backoff;
use crate::StoreError;
use carat_core::record::{NameSet, NameSetId};

const SERVICE: &str = "dynamodb";

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned set of written groups is still a valid (conservative) set.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// UpdateItem calls in flight per `record`: a cold writer's first batch may carry
/// thousands of new series; 16 at a time keeps it to a few round trips per hundred
/// while one writer stays far below a partition's 1,000 WU/s.
const WRITE_CONCURRENCY: usize = 16;

/// Largest page one listing Query asks for (DynamoDB also stops a page at 1 MB).
const PAGE_ITEMS: usize = 1_000;

/// The partition key of a tenant's group items: `#` cannot start a group (series
/// names have no `#`), so it never meets a series partition `<tenant>#<group>`.
#[must_use]
pub fn groups_pk(tenant: &Tenant) -> String {
    format!("{tenant}##groups")
}

/// The partition key of the series items of `group`.
#[must_use]
pub fn series_pk(tenant: &Tenant, group: &str) -> String {
    format!("{tenant}#{group}")
}

/// The catalog over DynamoDB.
pub struct DynamoCatalog {
    client: Client,
    table: String,
    retry: RetryConfig,
    /// Groups this process has written on the day held: (day, {(tenant, group)}).
    groups_written: Mutex<(i64, BTreeSet<(Tenant, String)>)>,
}

impl std::fmt::Debug for DynamoCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoCatalog")
            .field("table", &self.table)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

fn labels_value(labels: &[(String, String)]) -> AttributeValue {
    AttributeValue::L(
        labels
            .iter()
            .map(|(k, v)| {
                AttributeValue::L(vec![
                    AttributeValue::S(k.clone()),
                    AttributeValue::S(v.clone()),
                ])
            })
            .collect(),
    )
}

/// A series item back as an entry; anything else is corrupt stored data (fatal).
fn entry_of(attrs: &HashMap<String, AttributeValue>) -> Result<CatalogEntry, StoreError> {
    let bad = |what: &str| {
        StoreError::fatal(
            SERVICE,
            "series",
            format!("catalog item {:?}: {what}", attrs.get("pk")),
        )
    };
    let series = match attrs.get("sk") {
        Some(AttributeValue::S(s)) => {
            SeriesName::parse(s, "sk").map_err(|e| bad(&format!("sk: {e}")))?
        }
        _ => return Err(bad("sk is missing or not a string")),
    };
    let day = match attrs.get("d") {
        Some(AttributeValue::N(n)) => n.parse().map_err(|_| bad("d is not an integer"))?,
        _ => return Err(bad("d is missing or not a number")),
    };
    let labels = match attrs.get("l") {
        None => Vec::new(),
        Some(AttributeValue::L(pairs)) => pairs
            .iter()
            .map(|p| match p {
                AttributeValue::L(kv) => match kv.as_slice() {
                    [AttributeValue::S(k), AttributeValue::S(v)] => Ok((k.clone(), v.clone())),
                    _ => Err(bad("a label is not a [name, value] pair of strings")),
                },
                _ => Err(bad("a label is not a list")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("l is not a list")),
    };
    Ok(CatalogEntry {
        series,
        labels,
        day,
    })
}

impl DynamoCatalog {
    #[must_use]
    pub fn new(client: Client, table: impl Into<String>, retry: RetryConfig) -> Self {
        Self {
            client,
            table: table.into(),
            retry,
            groups_written: Mutex::new((i64::MIN, BTreeSet::new())),
        }
    }

    #[must_use]
    pub fn table(&self) -> &str {
        &self.table
    }

    /// DescribeTable, for `/health`.
    ///
    /// # Errors
    /// Fatal if the table does not exist; retryable if DynamoDB cannot be reached.
    pub async fn health(&self) -> Result<TableHealth, StoreError> {
        crate::dynamo::describe_table(&self.client, &self.table, "catalog_health").await
    }

    async fn update_series(&self, tenant: &Tenant, e: &CatalogEntry) -> Result<(), StoreError> {
        let pk = series_pk(tenant, group_of(e.series.as_str()));
        with_backoff(&self.retry, SERVICE, "record", || async {
            let mut req = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(pk.clone()))
                .key("sk", AttributeValue::S(e.series.as_str().to_string()))
                .expression_attribute_values(":d", AttributeValue::N(e.day.to_string()));
            req = if e.labels.is_empty() {
                req.update_expression("SET d = :d")
            } else {
                req.update_expression("SET d = :d, l = :l")
                    .expression_attribute_values(":l", labels_value(&e.labels))
            };
            req.send()
                .await
                .map(|_| ())
                .map_err(|err| classify(SERVICE, "record", err))
        })
        .await
    }

    async fn put_group(&self, tenant: &Tenant, group: &str, day: i64) -> Result<(), StoreError> {
        with_backoff(&self.retry, SERVICE, "record", || async {
            self.client
                .put_item()
                .table_name(&self.table)
                .item("pk", AttributeValue::S(groups_pk(tenant)))
                .item("sk", AttributeValue::S(group.to_string()))
                .item("d", AttributeValue::N(day.to_string()))
                .send()
                .await
                .map(|_| ())
                .map_err(|err| classify(SERVICE, "record", err))
        })
        .await
    }

    /// Groups among `groups` (with the day each is recorded on) not yet written by this
    /// process on that day.
    fn unwritten_groups(
        &self,
        tenant: &Tenant,
        groups: BTreeMap<String, i64>,
    ) -> Vec<(String, i64)> {
        let written = lock(&self.groups_written);
        groups
            .into_iter()
            .filter(|(g, day)| {
                *day != written.0 || !written.1.contains(&(tenant.clone(), g.clone()))
            })
            .collect()
    }

    fn note_groups(&self, tenant: &Tenant, groups: &[(String, i64)]) {
        let mut written = lock(&self.groups_written);
        for (g, day) in groups {
            if *day > written.0 {
                // A new day: forget yesterday's (bounds the set to one day's groups).
                *written = (*day, BTreeSet::new());
            }
            if *day == written.0 {
                written.1.insert((tenant.clone(), g.clone()));
            }
        }
    }

    /// One paginated Query of `pk` with `begins_with(sk, prefix)`, at most `limit` items.
    async fn query_prefix(
        &self,
        op: &'static str,
        pk: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        let mut start_key = None;
        while items.len() < limit {
            let page = (limit - items.len()).min(PAGE_ITEMS);
            let page = i32::try_from(page).unwrap_or(i32::MAX);
            let out = with_backoff(&self.retry, SERVICE, op, || {
                let mut q = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .expression_attribute_values(":pk", AttributeValue::S(pk.to_string()))
                    .limit(page)
                    .set_exclusive_start_key(start_key.clone());
                q = if prefix.is_empty() {
                    q.key_condition_expression("pk = :pk")
                } else {
                    q.key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                        .expression_attribute_values(":p", AttributeValue::S(prefix.to_string()))
                };
                async move { q.send().await.map_err(|e| classify(SERVICE, op, e)) }
            })
            .await?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start_key = Some(k),
                _ => break,
            }
        }
        items.truncate(limit);
        Ok(items)
    }
}

#[async_trait]
impl Catalog for DynamoCatalog {
    async fn record(&self, tenant: &Tenant, entries: &[CatalogEntry]) -> Result<(), StoreError> {
        // The last entry of a series wins (labels: the last non-empty set).
        let mut last: BTreeMap<&SeriesName, CatalogEntry> = BTreeMap::new();
        for e in entries {
            last.entry(&e.series)
                .and_modify(|prev| {
                    prev.day = prev.day.max(e.day);
                    if !e.labels.is_empty() {
                        prev.labels.clone_from(&e.labels);
                    }
                })
                .or_insert_with(|| e.clone());
        }
        // Futures collected first: a lazy `map` over borrowed entries trips the
        // higher-ranked lifetime check of `async_trait`'s boxed future.
        let writes: Vec<_> = last
            .values()
            .map(|e| self.update_series(tenant, e))
            .collect();
        futures::stream::iter(writes)
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        // Groups after their series: a failure here fails the call, the writer records
        // the series again (their markers are not set), and the group with them.
        let mut groups: BTreeMap<String, i64> = BTreeMap::new();
        for e in last.values() {
            let day = groups
                .entry(group_of(e.series.as_str()).to_string())
                .or_insert(e.day);
            *day = (*day).max(e.day);
        }
        let todo = self.unwritten_groups(tenant, groups);
        let puts: Vec<_> = todo
            .iter()
            .map(|(g, day)| self.put_group(tenant, g, *day))
            .collect();
        futures::stream::iter(puts)
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        self.note_groups(tenant, &todo);
        Ok(())
    }

    async fn groups(
        &self,
        tenant: &Tenant,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let items = self
            .query_prefix("groups", &groups_pk(tenant), prefix, limit)
            .await?;
        items
            .iter()
            .map(|i| match i.get("sk") {
                Some(AttributeValue::S(s)) => Ok(s.clone()),
                _ => Err(StoreError::fatal(
                    SERVICE,
                    "groups",
                    "group item without a string sk",
                )),
            })
            .collect()
    }

    async fn series(
        &self,
        tenant: &Tenant,
        group: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<CatalogEntry>, StoreError> {
        if group.is_empty() {
            return Ok(Vec::new());
        }
        let items = self
            .query_prefix("series", &series_pk(tenant, group), prefix, limit)
            .await?;
        items.iter().map(entry_of).collect()
    }
}

/// The partition of `tenant`'s name sets.
fn names_pk(tenant: &Tenant) -> String {
    format!("{tenant}##names")
}

#[async_trait]
impl NameSets for DynamoCatalog {
    async fn put_name_set(&self, tenant: &Tenant, set: &NameSet) -> Result<(), StoreError> {
        let sealed = set.sealed();
        with_backoff(&self.retry, SERVICE, "put_name_set", || async {
            self.client
                .put_item()
                .table_name(&self.table)
                .item("pk", AttributeValue::S(names_pk(tenant)))
                .item("sk", AttributeValue::S(set.id().to_hex()))
                .item("n", AttributeValue::B(sealed.clone().into()))
                .item(
                    "v",
                    AttributeValue::N(carat_core::record::names::NAME_SET_VERSION.to_string()),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|err| classify(SERVICE, "put_name_set", err))
        })
        .await
    }

    async fn get_name_set(
        &self,
        tenant: &Tenant,
        id: NameSetId,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let out = with_backoff(&self.retry, SERVICE, "get_name_set", || async {
            self.client
                .get_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(names_pk(tenant)))
                .key("sk", AttributeValue::S(id.to_hex()))
                .consistent_read(true)
                .send()
                .await
                .map_err(|err| classify(SERVICE, "get_name_set", err))
        })
        .await?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        match item.get("n") {
            Some(AttributeValue::B(b)) => Ok(Some(b.clone().into_inner())),
            _ => Err(StoreError::fatal(
                SERVICE,
                "get_name_set",
                format!("name set {id} of tenant {tenant}: attribute n is missing or not binary"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_layout() {
        let t = Tenant::default_tenant();
        assert_eq!(groups_pk(&t), "default##groups");
        assert_eq!(series_pk(&t, "host.h1"), "default#host.h1");
    }

    #[test]
    fn items_read_back_and_corrupt_ones_are_fatal() {
        let labels = vec![
            ("__name__".to_string(), "up".to_string()),
            ("empty".to_string(), String::new()),
        ];
        let item = HashMap::from([
            ("pk".to_string(), AttributeValue::S("default#up".into())),
            ("sk".to_string(), AttributeValue::S("up.job.a".into())),
            ("d".to_string(), AttributeValue::N("86400".into())),
            ("l".to_string(), labels_value(&labels)),
        ]);
        let e = entry_of(&item).unwrap();
        assert_eq!(e.series.as_str(), "up.job.a");
        assert_eq!((e.day, e.labels), (86_400, labels));
        let mut bad = item.clone();
        bad.insert(
            "l".into(),
            AttributeValue::L(vec![AttributeValue::S("x".into())]),
        );
        assert!(!entry_of(&bad).unwrap_err().is_retryable());
        let mut bad = item;
        bad.remove("d");
        assert!(entry_of(&bad)
            .unwrap_err()
            .to_string()
            .contains("d is missing"));
    }
}
