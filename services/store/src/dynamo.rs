//! [`DynamoTable`]: the window-table port over DynamoDB (aws-sdk-dynamodb).
//!
//! Item layout (docs/TEAM-NOTES.md, docs/formats.md): `pk` (S) `<tenant>#<series>#<res>`,
//! `sk` (N) window start (+ part index), `v` (N) format version, `c` (B) chunk (slice),
//! `n` (N) count, `ttl` (N) expiry, `p` (N) parts, `h` (B) content hash of the chunk.
//!
//! `write_window` is the flush's conditional write: one PutItem with the condition
//! `attribute_not_exists(pk)` (nothing stored yet) or `h = :expected` (the stored
//! window is the one the flush merged with); a window of several parts, or one that
//! drops parts, is one TransactWriteItems with that condition on the first part. A
//! failed condition is [`Written::Conflict`], not an error: the flush reads and merges
//! again.
//!
//! `put` enforces the BatchWriteItem limits itself (moto does not): at most
//! `limits.dynamodb_batch_items` items and `limits.dynamodb_batch_bytes` bytes per call,
//! no item over `limits.dynamodb_item_bytes`, no key twice in one call (DynamoDB rejects
//! the whole batch; the last write of a key wins, as it would have). Unprocessed items and
//! throttling are retried with backoff and full jitter until `retry.deadline_ms`, then
//! the call fails retryably. The sending of one batch goes through [`BatchSend`], so a
//! test can wrap the real sender and inject partial failures.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, KeysAndAttributes, Put, PutRequest, TransactWriteItem, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use carat_core::config::{RetryConfig, ServiceLimits};
use futures::{StreamExt, TryStreamExt};
use tokio::time::Instant;

use crate::aws::classify;
use crate::ports::{WindowItem, WindowTable, Written, MAX_BATCH_GET_KEYS, MAX_WINDOW_PARTS};
use crate::retry::Backoff;
use crate::StoreError;

const SERVICE: &str = "dynamodb";

/// BatchWriteItem calls in flight per `put`. A flush of 1,000 windows is 40 batches;
/// four at a time cut its latency about fourfold while one writer stays far below
/// a partition's 1,000 WCU/s.
const PUT_CONCURRENCY: usize = 4;

/// Sends one BatchWriteItem and returns the requests DynamoDB left unprocessed.
#[async_trait]
pub trait BatchSend: Send + Sync {
    /// # Errors
    /// The classified SDK error ([`StoreError::Retryable`] for throttling, 5xx, timeouts).
    async fn send(
        &self,
        table: &str,
        requests: &[WriteRequest],
    ) -> Result<Vec<WriteRequest>, StoreError>;
}

/// The real [`BatchSend`]: one BatchWriteItem call.
#[derive(Debug, Clone)]
pub struct SdkBatchSend {
    client: Client,
}

impl SdkBatchSend {
    #[must_use]
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl BatchSend for SdkBatchSend {
    async fn send(
        &self,
        table: &str,
        requests: &[WriteRequest],
    ) -> Result<Vec<WriteRequest>, StoreError> {
        let out = self
            .client
            .batch_write_item()
            .request_items(table, requests.to_vec())
            .send()
            .await
            .map_err(|e| classify(SERVICE, "put", e))?;
        Ok(out
            .unprocessed_items
            .and_then(|mut m| m.remove(table))
            .unwrap_or_default())
    }
}

/// What `/health` reports about the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableHealth {
    pub table: String,
    /// `ACTIVE`, `UPDATING`, …
    pub status: String,
}

/// The window table over DynamoDB.
#[derive(Clone)]
pub struct DynamoTable {
    client: Client,
    table: String,
    limits: ServiceLimits,
    retry: RetryConfig,
    sender: Arc<dyn BatchSend>,
}

impl std::fmt::Debug for DynamoTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoTable")
            .field("table", &self.table)
            .field("limits", &self.limits)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// The size DynamoDB charges for an item, estimated from above: attribute names plus
/// values, numbers counted as their decimal text plus one byte.
#[must_use]
pub fn item_size(item: &WindowItem) -> usize {
    const NAMES: usize = "pk".len()
        + "sk".len()
        + "v".len()
        + "c".len()
        + "n".len()
        + "ttl".len()
        + "p".len()
        + "h".len();
    let num = |digits: String| digits.len() + 1;
    NAMES
        + item.pk.len()
        + num(item.sk.to_string())
        + num(item.version.to_string())
        + item.body.len()
        + num(item.count.to_string())
        + num(item.expires_at.to_string())
        + num(item.parts.to_string())
        + item.hash.len()
}

fn to_attributes(item: &WindowItem) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_string(), AttributeValue::S(item.pk.clone())),
        ("sk".to_string(), AttributeValue::N(item.sk.to_string())),
        ("v".to_string(), AttributeValue::N(item.version.to_string())),
        (
            "c".to_string(),
            AttributeValue::B(Blob::new(item.body.clone())),
        ),
        ("n".to_string(), AttributeValue::N(item.count.to_string())),
        (
            "ttl".to_string(),
            AttributeValue::N(item.expires_at.to_string()),
        ),
        ("p".to_string(), AttributeValue::N(item.parts.to_string())),
        (
            "h".to_string(),
            AttributeValue::B(Blob::new(item.hash.clone())),
        ),
    ])
}

/// Reads an item back; a missing or ill-typed attribute is corrupt stored data (fatal).
fn from_attributes(
    op: &'static str,
    attrs: &HashMap<String, AttributeValue>,
) -> Result<WindowItem, StoreError> {
    let pk = match attrs.get("pk") {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => return Err(StoreError::fatal(SERVICE, op, "item without a string pk")),
    };
    let bad = |name: &str| {
        StoreError::fatal(
            SERVICE,
            op,
            format!("item pk={pk:?}: attribute {name} is missing or of the wrong type"),
        )
    };
    let num = |name: &str| match attrs.get(name) {
        Some(AttributeValue::N(n)) => Ok(n.as_str()),
        _ => Err(bad(name)),
    };
    let sk: i64 = num("sk")?.parse().map_err(|_| bad("sk"))?;
    let body = match attrs.get("c") {
        Some(AttributeValue::B(b)) => b.clone().into_inner(),
        _ => return Err(bad("c")),
    };
    // Items from before windows could be split have neither `p` nor `h`.
    let parts = match attrs.get("p") {
        None => 1,
        Some(AttributeValue::N(n)) => n.parse().map_err(|_| bad("p"))?,
        Some(_) => return Err(bad("p")),
    };
    let hash = match attrs.get("h") {
        None => Vec::new(),
        Some(AttributeValue::B(b)) => b.clone().into_inner(),
        Some(_) => return Err(bad("h")),
    };
    Ok(WindowItem {
        sk,
        version: num("v")?.parse().map_err(|_| bad("v"))?,
        body,
        count: num("n")?.parse().map_err(|_| bad("n"))?,
        expires_at: num("ttl")?.parse().map_err(|_| bad("ttl"))?,
        parts,
        hash,
        pk,
    })
}

/// Splits items into BatchWriteItem calls within the limits, after dropping all but the
/// last write of each (pk, sk). Fails on an item over the item size limit.
///
/// # Errors
/// [`StoreError::Fatal`] naming the pk and sk of an oversize item.
pub fn plan_batches(
    items: &[WindowItem],
    limits: &ServiceLimits,
) -> Result<Vec<Vec<WriteRequest>>, StoreError> {
    let mut seen = HashSet::new();
    let mut last_writes: Vec<&WindowItem> = items
        .iter()
        .rev()
        .filter(|i| seen.insert((i.pk.as_str(), i.sk)))
        .collect();
    last_writes.reverse();

    let max_items = limits.dynamodb_batch_items.max(1);
    let mut batches = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    for item in last_writes {
        let size = item_size(item);
        if size > limits.dynamodb_item_bytes {
            return Err(StoreError::fatal(
                SERVICE,
                "put",
                format!(
                    "item pk={:?} sk={} is about {size} bytes, over the {} byte item limit",
                    item.pk, item.sk, limits.dynamodb_item_bytes
                ),
            ));
        }
        if !batch.is_empty()
            && (batch.len() >= max_items || bytes + size > limits.dynamodb_batch_bytes)
        {
            batches.push(std::mem::take(&mut batch));
            bytes = 0;
        }
        let put = PutRequest::builder()
            .set_item(Some(to_attributes(item)))
            .build()
            .map_err(|e| StoreError::fatal(SERVICE, "put", e.to_string()))?;
        batch.push(WriteRequest::builder().put_request(put).build());
        bytes += size;
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    Ok(batches)
}

impl DynamoTable {
    /// The table `table` through `client`, with carat's limits and retry settings.
    #[must_use]
    pub fn new(
        client: Client,
        table: impl Into<String>,
        limits: ServiceLimits,
        retry: RetryConfig,
    ) -> Self {
        Self {
            sender: Arc::new(SdkBatchSend::new(client.clone())),
            client,
            table: table.into(),
            limits,
            retry,
        }
    }

    /// Replaces how one batch is sent (tests wrap [`SdkBatchSend`] to inject partial failures).
    #[must_use]
    pub fn with_batch_send(mut self, sender: Arc<dyn BatchSend>) -> Self {
        self.sender = sender;
        self
    }

    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    #[must_use]
    pub fn table(&self) -> &str {
        &self.table
    }

    /// DescribeTable, for carat-local's `/health`.
    ///
    /// # Errors
    /// Fatal if the table does not exist; retryable if DynamoDB cannot be reached.
    pub async fn health(&self) -> Result<TableHealth, StoreError> {
        describe_table(&self.client, &self.table, "health").await
    }

    /// Sends one batch until nothing is left unprocessed or the deadline passes.
    async fn write_batch(
        &self,
        mut pending: Vec<WriteRequest>,
        started: Instant,
    ) -> Result<(), StoreError> {
        let mut backoff = Backoff::starting_at(&self.retry, started);
        let total = pending.len();
        loop {
            let last = match self.sender.send(&self.table, &pending).await {
                Ok(unprocessed) if unprocessed.is_empty() => return Ok(()),
                Ok(unprocessed) => {
                    tracing::debug!(
                        table = %self.table,
                        unprocessed = unprocessed.len(),
                        of = pending.len(),
                        "BatchWriteItem left items unprocessed"
                    );
                    let msg = format!("{} of {total} items still unprocessed", unprocessed.len());
                    pending = unprocessed;
                    msg
                }
                Err(e) if e.is_retryable() => e.to_string(),
                Err(e) => return Err(e),
            };
            backoff.retry_after(SERVICE, "put", &last).await?;
        }
    }

    /// Items of `pk` with `from_sk <= sk <= to_sk`, ascending, all pages.
    async fn query_range(
        &self,
        pk: &str,
        from_sk: i64,
        to_sk: i64,
        consistent: bool,
    ) -> Result<Vec<WindowItem>, StoreError> {
        if from_sk > to_sk {
            // DynamoDB rejects BETWEEN with bounds out of order.
            return Ok(Vec::new());
        }
        let mut items = Vec::new();
        let mut start_key = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_string()))
                .expression_attribute_values(":from", AttributeValue::N(from_sk.to_string()))
                .expression_attribute_values(":to", AttributeValue::N(to_sk.to_string()))
                .consistent_read(consistent)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| classify(SERVICE, "query", e))?;
            for i in out.items.unwrap_or_default() {
                items.push(from_attributes("query", &i)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start_key = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// One attempt of [`WindowTable::write_window`].
    async fn write_window_once(
        &self,
        main: &WindowItem,
        parts: &[WindowItem],
        expected: Option<&[u8]>,
        stale: &[i64],
    ) -> Result<Written, StoreError> {
        let (cond, value) = condition(expected);
        if parts.len() == 1 && stale.is_empty() {
            let out = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(to_attributes(main)))
                .condition_expression(cond)
                .set_expression_attribute_values(
                    value.map(|v| HashMap::from([(":expected".to_string(), v)])),
                )
                .send()
                .await;
            return match out {
                Ok(_) => Ok(Written::Stored),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                {
                    Ok(Written::Conflict)
                }
                Err(e) => Err(classify(SERVICE, "write_window", e)),
            };
        }
        let mut ops = Vec::with_capacity(parts.len() + stale.len());
        for (i, part) in parts.iter().enumerate() {
            let mut put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(to_attributes(part)));
            if i == 0 {
                put = put
                    .condition_expression(cond)
                    .set_expression_attribute_values(
                        value
                            .clone()
                            .map(|v| HashMap::from([(":expected".to_string(), v)])),
                    );
            }
            let put = put
                .build()
                .map_err(|e| StoreError::fatal(SERVICE, "write_window", e.to_string()))?;
            ops.push(TransactWriteItem::builder().put(put).build());
        }
        for sk in stale {
            let delete = Delete::builder()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(main.pk.clone()))
                .key("sk", AttributeValue::N(sk.to_string()))
                .build()
                .map_err(|e| StoreError::fatal(SERVICE, "write_window", e.to_string()))?;
            ops.push(TransactWriteItem::builder().delete(delete).build());
        }
        let out = self
            .client
            .transact_write_items()
            .set_transact_items(Some(ops))
            .send()
            .await;
        match out {
            Ok(_) => Ok(Written::Stored),
            Err(e) => {
                let cancelled = e.as_service_error().and_then(|s| match s {
                    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => Some(c),
                    _ => None,
                });
                if let Some(c) = cancelled {
                    let codes: Vec<&str> = c
                        .cancellation_reasons()
                        .iter()
                        .filter_map(|r| r.code())
                        .collect();
                    if codes.contains(&"ConditionalCheckFailed") {
                        return Ok(Written::Conflict);
                    }
                    // Another transaction on the same items, or throttling: try again.
                    return Err(StoreError::retryable(
                        SERVICE,
                        "write_window",
                        format!("transaction cancelled: {codes:?}"),
                    )
                    .with_source(e));
                }
                Err(classify(SERVICE, "write_window", e))
            }
        }
    }
}

#[async_trait]
impl WindowTable for DynamoTable {
    async fn put(&self, items: &[WindowItem]) -> Result<(), StoreError> {
        let started = Instant::now();
        let batches = plan_batches(items, &self.limits)?;
        futures::stream::iter(batches)
            .map(|b| self.write_batch(b, started))
            .buffer_unordered(PUT_CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    async fn read_window(&self, pk: &str, start: i64) -> Result<Vec<WindowItem>, StoreError> {
        let end = start.saturating_add(MAX_WINDOW_PARTS as i64 - 1);
        crate::retry::with_backoff(&self.retry, SERVICE, "read_window", || {
            self.query_range(pk, start, end, true)
        })
        .await
    }

    async fn write_window(
        &self,
        parts: &[WindowItem],
        expected: Option<&[u8]>,
        stale: &[i64],
    ) -> Result<Written, StoreError> {
        let Some(main) = parts.first() else {
            return Err(StoreError::fatal(
                SERVICE,
                "write_window",
                "no parts to write",
            ));
        };
        for part in parts {
            let size = item_size(part);
            if size > self.limits.dynamodb_item_bytes {
                return Err(StoreError::fatal(
                    SERVICE,
                    "write_window",
                    format!(
                        "item pk={} sk={} is {size} bytes, over the {} byte item limit",
                        part.pk, part.sk, self.limits.dynamodb_item_bytes
                    ),
                ));
            }
        }
        crate::retry::with_backoff(&self.retry, SERVICE, "write_window", || {
            self.write_window_once(main, parts, expected, stale)
        })
        .await
    }

    async fn get(&self, pk: &str, sk: i64) -> Result<Option<WindowItem>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_string()))
            .key("sk", AttributeValue::N(sk.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(SERVICE, "get", e))?;
        out.item.map(|i| from_attributes("get", &i)).transpose()
    }

    async fn query(
        &self,
        pk: &str,
        from_sk: i64,
        to_sk: i64,
    ) -> Result<Vec<WindowItem>, StoreError> {
        self.query_range(pk, from_sk, to_sk, false).await
    }

    async fn batch_get(&self, keys: &[(String, i64)]) -> Result<Vec<WindowItem>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        let mut unique: Vec<&(String, i64)> = keys.iter().collect();
        unique.sort();
        unique.dedup();
        for chunk in unique.chunks(MAX_BATCH_GET_KEYS) {
            let mut pending: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|(pk, sk)| {
                    HashMap::from([
                        ("pk".to_string(), AttributeValue::S(pk.clone())),
                        ("sk".to_string(), AttributeValue::N(sk.to_string())),
                    ])
                })
                .collect();
            let mut backoff = Backoff::new(&self.retry);
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(false)
                    .build()
                    .map_err(|e| StoreError::fatal(SERVICE, "batch_get", e.to_string()))?;
                let last = match self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request.clone())
                    .send()
                    .await
                {
                    Ok(out) => {
                        for item in out
                            .responses
                            .and_then(|mut r| r.remove(&self.table))
                            .unwrap_or_default()
                        {
                            found.push(from_attributes("batch_get", &item)?);
                        }
                        pending = out
                            .unprocessed_keys
                            .and_then(|mut u| u.remove(&self.table))
                            .map(|k| k.keys)
                            .unwrap_or_default();
                        if pending.is_empty() {
                            break;
                        }
                        format!("{} keys still unprocessed", pending.len())
                    }
                    Err(e) => {
                        let e = classify(SERVICE, "batch_get", e);
                        if !e.is_retryable() {
                            return Err(e);
                        }
                        pending = request.keys;
                        e.to_string()
                    }
                };
                backoff.retry_after(SERVICE, "batch_get", &last).await?;
            }
        }
        Ok(found)
    }
}

/// An item past its TTL, as carat-local's TTL sweeper finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredItem {
    pub pk: String,
    pub sk: i64,
    /// Its `ttl` attribute, epoch seconds.
    pub expires_at: i64,
}

/// The TTL sweeper's part, for carat-local only: the stand-in never deletes expired
/// items, so carat-local does what DynamoDB's TTL process does. In AWS these are never
/// called (a Scan of the whole table would cost read units for every item).
impl DynamoTable {
    /// Up to `limit` items whose `ttl` is at or before `now`: a Scan with a filter,
    /// page after page until `limit` are found or the table ends (a local table is small;
    /// the next run finds the rest).
    ///
    /// # Errors
    /// Retryable for throttling and timeouts (retried until the deadline first); fatal
    /// for a missing table or an item without a string `pk` and numeric `sk`/`ttl`.
    pub async fn expired(&self, now: i64, limit: usize) -> Result<Vec<ExpiredItem>, StoreError> {
        let mut found = Vec::new();
        let mut start_key = None;
        while found.len() < limit {
            let page = crate::retry::with_backoff(&self.retry, SERVICE, "expired", || {
                let call = self
                    .client
                    .scan()
                    .table_name(&self.table)
                    // `ttl` is a reserved word in expressions.
                    .filter_expression("#ttl <= :now")
                    .projection_expression("pk, sk, #ttl")
                    .expression_attribute_names("#ttl", "ttl")
                    .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                    .set_exclusive_start_key(start_key.clone())
                    .send();
                async { call.await.map_err(|e| classify(SERVICE, "expired", e)) }
            });
            let out = page.await?;
            for attrs in out.items.unwrap_or_default() {
                found.push(expired_item(&attrs)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start_key = Some(k),
                _ => break,
            }
        }
        found.truncate(limit);
        Ok(found)
    }

    /// Deletes the item at (`pk`, `sk`) if its `ttl` is still at or before `now`: an
    /// item re-written meanwhile (a late point re-flushed its window, moving `ttl` on) is
    /// left alone, as DynamoDB's TTL process re-checks expiry before it deletes. Returns
    /// whether it deleted.
    ///
    /// # Errors
    /// Retryable for throttling and timeouts (retried until the deadline first).
    pub async fn delete_expired(&self, pk: &str, sk: i64, now: i64) -> Result<bool, StoreError> {
        crate::retry::with_backoff(&self.retry, SERVICE, "delete_expired", || async {
            let out = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(pk.to_string()))
                .key("sk", AttributeValue::N(sk.to_string()))
                .condition_expression("#ttl <= :now")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                .send()
                .await;
            match out {
                Ok(_) => Ok(true),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                {
                    Ok(false)
                }
                Err(e) => Err(classify(SERVICE, "delete_expired", e)),
            }
        })
        .await
    }
}

fn expired_item(attrs: &HashMap<String, AttributeValue>) -> Result<ExpiredItem, StoreError> {
    let bad = |name: &str| {
        StoreError::fatal(
            SERVICE,
            "expired",
            format!("scanned item: attribute {name} is missing or of the wrong type"),
        )
    };
    let num = |name: &str| match attrs.get(name) {
        Some(AttributeValue::N(n)) => n.parse::<i64>().map_err(|_| bad(name)),
        _ => Err(bad(name)),
    };
    let pk = match attrs.get("pk") {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => return Err(bad("pk")),
    };
    Ok(ExpiredItem {
        sk: num("sk")?,
        expires_at: num("ttl")?,
        pk,
    })
}

/// DescribeTable of `table`, for `/health` (the window table and the catalog).
///
/// # Errors
/// Fatal if the table does not exist; retryable if DynamoDB cannot be reached.
pub(crate) async fn describe_table(
    client: &Client,
    table: &str,
    op: &'static str,
) -> Result<TableHealth, StoreError> {
    let out = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| classify(SERVICE, op, e))?;
    Ok(TableHealth {
        table: table.to_string(),
        status: out
            .table
            .and_then(|t| t.table_status)
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
    })
}

/// The condition of a window write: nothing stored, or the stored hash.
/// An item from before content hashes (no `h`) is matched by `expected = Some(&[])`.
fn condition(expected: Option<&[u8]>) -> (&'static str, Option<AttributeValue>) {
    match expected {
        None => ("attribute_not_exists(pk)", None),
        Some([]) => ("attribute_exists(pk) AND attribute_not_exists(h)", None),
        Some(h) => (
            "h = :expected",
            Some(AttributeValue::B(Blob::new(h.to_vec()))),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pk: &str, sk: i64, body: usize) -> WindowItem {
        WindowItem {
            pk: pk.to_string(),
            sk,
            version: 1,
            body: vec![0xab; body],
            count: 3,
            expires_at: 1_700_000_000,
            parts: 1,
            hash: vec![7; 16],
        }
    }

    fn sk_of(r: &WriteRequest) -> String {
        match r.put_request().and_then(|p| p.item().get("sk")) {
            Some(AttributeValue::N(n)) => n.clone(),
            other => panic!("no sk: {other:?}"),
        }
    }

    #[test]
    fn attributes_round_trip() {
        let i = item("default#cpu#raw", 86_400, 10);
        assert_eq!(from_attributes("get", &to_attributes(&i)).unwrap(), i);
        let mut broken = to_attributes(&i);
        broken.insert("n".into(), AttributeValue::S("x".into()));
        let e = from_attributes("get", &broken).unwrap_err();
        assert!(e.to_string().contains("attribute n"), "{e}");
    }

    #[test]
    fn batches_respect_the_item_count() {
        let items: Vec<_> = (0..60).map(|i| item("p", i, 10)).collect();
        let b = plan_batches(&items, &ServiceLimits::default()).unwrap();
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![25, 25, 10]);
    }

    #[test]
    fn batches_respect_the_byte_limit() {
        let limits = ServiceLimits {
            dynamodb_batch_bytes: 3_000,
            ..ServiceLimits::default()
        };
        let items: Vec<_> = (0..10).map(|i| item("p", i, 1_000)).collect();
        let b = plan_batches(&items, &limits).unwrap();
        assert_eq!(
            b.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![2, 2, 2, 2, 2]
        );
        for batch in &b {
            assert!(batch.len() * item_size(&items[0]) <= 3_000);
        }
    }

    #[test]
    fn oversize_item_is_fatal_and_named() {
        let items = vec![item("p", 1, 10), item("big#one#raw", 42, 500 * 1024)];
        let e = plan_batches(&items, &ServiceLimits::default()).unwrap_err();
        assert!(!e.is_retryable());
        let msg = e.to_string();
        assert!(
            msg.contains("big#one#raw") && msg.contains("sk=42"),
            "{msg}"
        );
    }

    #[test]
    fn duplicate_keys_keep_the_last_write() {
        let mut second = item("p", 1, 10);
        second.body = vec![2];
        let items = vec![item("p", 1, 10), item("p", 2, 10), second.clone()];
        let b = plan_batches(&items, &ServiceLimits::default()).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].iter().map(sk_of).collect::<Vec<_>>(), vec!["2", "1"]);
        let body = b[0][1]
            .put_request()
            .and_then(|p| p.item().get("c"))
            .cloned();
        assert_eq!(body, Some(AttributeValue::B(Blob::new(vec![2]))));
    }

    proptest::proptest! {
        /// Any mix of keys and sizes: batches stay within both limits, no batch
        /// repeats a key, and exactly the last write of every key is sent.
        #[test]
        fn batches_stay_within_limits_and_keep_last_writes(
            spec in proptest::collection::vec((0u8..6, 0i64..6, 0usize..3_000), 0..120),
            max_items in 1usize..=25,
            max_bytes in 3_100usize..20_000,
        ) {
            let limits = ServiceLimits {
                dynamodb_batch_items: max_items,
                dynamodb_batch_bytes: max_bytes,
                ..ServiceLimits::default()
            };
            let items: Vec<WindowItem> = spec
                .iter()
                .enumerate()
                .map(|(i, &(p, sk, len))| WindowItem {
                    count: u32::try_from(i).unwrap(),
                    ..item(&format!("p{p}"), sk, len)
                })
                .collect();
            let batches = plan_batches(&items, &limits).unwrap();
            let mut sent = HashMap::new();
            for b in &batches {
                proptest::prop_assert!(!b.is_empty() && b.len() <= max_items);
                let mut bytes = 0;
                let mut keys = HashSet::new();
                for r in b {
                    let it = from_attributes("put", r.put_request().unwrap().item()).unwrap();
                    bytes += item_size(&it);
                    proptest::prop_assert!(keys.insert((it.pk.clone(), it.sk)));
                    proptest::prop_assert!(sent.insert((it.pk.clone(), it.sk), it.count).is_none());
                }
                proptest::prop_assert!(bytes <= max_bytes || b.len() == 1);
            }
            let mut last = HashMap::new();
            for it in &items {
                last.insert((it.pk.clone(), it.sk), it.count);
            }
            proptest::prop_assert_eq!(sent, last);
        }
    }

    #[test]
    fn size_estimate_is_at_least_names_and_values() {
        let i = item("default#cpu#raw", 86_400, 100);
        let exact_lower = 2 + 2 + 1 + 1 + 1 + 3 + 1 + 1 + i.pk.len() + 100 + 16;
        assert!(item_size(&i) > exact_lower);
        assert!(item_size(&i) < exact_lower + 40);
    }
}
