//! The ports: small traits over the four storage services. Handlers depend on these,
//! never on an SDK; adapters implement them per service and `fake` in memory.

use async_trait::async_trait;
use carat_core::record::{NameSet, NameSetId};
use carat_core::{SeriesKey, SeriesName, Tenant};

use crate::StoreError;

/// One window of one series in the head. `bucket` is `key.bucket(config.record.buckets)`,
/// carried so adapters need not know the bucket count; it is the Redis hash tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowRef {
    pub bucket: u32,
    pub key: SeriesKey,
    pub start: i64,
}

/// Points to append to one window of the head (see `carat_core::head`).
#[derive(Debug, Clone, PartialEq)]
pub struct HeadAppend {
    pub window: WindowRef,
    /// One head block (`carat_core::head::encode_block`): the points of this append.
    pub block: Vec<u8>,
    /// Epoch seconds at which the window becomes due for its flush (end + grace).
    pub flush_due: i64,
    /// Epoch seconds after which the head may forget the window.
    pub expire_at: i64,
}

/// The Redis head: open windows as append-only logs of blocks, plus per-bucket dirty marks.
#[async_trait]
pub trait Head: Send + Sync {
    /// Appends blocks to windows of one bucket and marks each window dirty (due at
    /// `flush_due`), atomically per bucket. Returns, for each append in order, how many
    /// points were appended to the window so far, repeats included (the header's count,
    /// used for the point-count flush threshold).
    async fn append(&self, bucket: u32, appends: &[HeadAppend]) -> Result<Vec<u64>, StoreError>;

    /// The head bytes of a window (v1 entries or v2 header and blocks,
    /// `carat_core::head::decode`); empty if the head does not hold it.
    async fn read(&self, window: &WindowRef) -> Result<Vec<u8>, StoreError>;

    /// Dirty windows of `bucket` whose flush is due at or before `now`, at most `limit`.
    async fn due(&self, bucket: u32, now: i64, limit: usize) -> Result<Vec<WindowRef>, StoreError>;

    /// [`Head::append`], then [`Head::due`] of the same bucket (none if `limit` is 0) as
    /// it stands after the append: what the writer does for every bucket of a batch, in
    /// one round trip where the head can (the Redis head: one script).
    async fn append_and_due(
        &self,
        bucket: u32,
        appends: &[HeadAppend],
        now: i64,
        limit: usize,
    ) -> Result<(Vec<u64>, Vec<WindowRef>), StoreError> {
        let counts = if appends.is_empty() {
            Vec::new()
        } else {
            self.append(bucket, appends).await?
        };
        let due = if limit == 0 {
            Vec::new()
        } else {
            self.due(bucket, now, limit).await?
        };
        Ok((counts, due))
    }

    /// After a flush that read `read` (what [`Head::read`] gave): clears the window's
    /// dirty mark if nothing was appended since — the head still has the identity
    /// (`carat_core::head::identity`) of what was read — atomically, and returns whether
    /// it did.
    async fn settle(&self, window: &WindowRef, read: &[u8]) -> Result<bool, StoreError>;

    /// Which of `series` (all in bucket `bucket`) carry no catalog marker for `day`
    /// (UTC midnight, epoch seconds), in order: the writer records those in the
    /// [`Catalog`] and only then marks them ([`Head::catalog_mark`]), so a series costs
    /// one catalog write per day however many containers see it. The default, a head
    /// without markers, says every series is unmarked (correct, only costlier).
    async fn catalog_unmarked(
        &self,
        bucket: u32,
        day: i64,
        series: &[SeriesKey],
    ) -> Result<Vec<bool>, StoreError> {
        let _ = (bucket, day);
        Ok(vec![true; series.len()])
    }

    /// Marks `series` (all in bucket `bucket`) as recorded in the catalog on `day`;
    /// the marks may be forgotten after `expire_at` (epoch seconds).
    async fn catalog_mark(
        &self,
        bucket: u32,
        day: i64,
        series: &[SeriesKey],
        expire_at: i64,
    ) -> Result<(), StoreError> {
        let _ = (bucket, day, series, expire_at);
        Ok(())
    }
}

/// One DynamoDB item: a stamped chunk of one series window, or one part of it.
///
/// A window whose chunk exceeds one item is split into `parts` items under the same
/// `pk`: part `i` has `sk = window start + i` and the `i`-th slice of the chunk, and
/// every part carries the window's `count`, `parts` and `hash` (docs/formats.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowItem {
    /// `<tenant>#<series>#<resolution>` (see `SeriesKey::table_pk`).
    pub pk: String,
    /// Window start (+ part index), epoch seconds.
    pub sk: i64,
    /// Format version of `body`.
    pub version: u8,
    /// The encoded chunk (or this part's slice of it).
    pub body: Vec<u8>,
    /// Points in the whole window, for cheap inspection.
    pub count: u32,
    /// TTL attribute: epoch seconds after which DynamoDB may delete the item.
    pub expires_at: i64,
    /// Items the window is split over (1 for all but the largest windows).
    pub parts: u32,
    /// Content hash of the whole chunk: what a conditional write expects to replace.
    /// Empty for items written before hashes existed.
    pub hash: Vec<u8>,
}

/// Most items one window may be split over: a transaction writes at most 100 items
/// and 4 MB, and 10 parts of at most `WINDOW_PART_BYTES` stay under 4 MB.
pub const MAX_WINDOW_PARTS: usize = 10;

/// Largest chunk slice in one item: DynamoDB's 400 KB item limit less room for the
/// key and the other attributes.
pub const WINDOW_PART_BYTES: usize = 390_000;

/// Most keys of one BatchGetItem call (DynamoDB's limit; more is a ValidationException).
pub const MAX_BATCH_GET_KEYS: usize = 100;

/// What a conditional window write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The parts are stored.
    Stored,
    /// The stored window was not the one expected (another flush wrote first):
    /// nothing was written; read again, merge again.
    Conflict,
}

/// The DynamoDB window table.
#[async_trait]
pub trait WindowTable: Send + Sync {
    /// Writes items (whole-item puts, unconditional), split into batches within the
    /// service limits, unprocessed items retried with backoff until the deadline. For
    /// tools and benchmarks: flushes go through [`WindowTable::write_window`].
    async fn put(&self, items: &[WindowItem]) -> Result<(), StoreError>;

    /// The stored items of the window of `pk` starting at `start`: the parts with
    /// `start <= sk < start + MAX_WINDOW_PARTS`, ascending, read strongly consistent
    /// (a flush merges with exactly what is stored).
    async fn read_window(&self, pk: &str, start: i64) -> Result<Vec<WindowItem>, StoreError>;

    /// Writes the parts of one window (`parts[0]` at the window start) if and only if
    /// the stored window is still the one the caller read: `expected` is its hash
    /// (`None`: no item stored). Deletes the parts at `stale` (left over from a larger
    /// earlier version) in the same atomic write. Throttling is retried with backoff
    /// until the deadline.
    async fn write_window(
        &self,
        parts: &[WindowItem],
        expected: Option<&[u8]>,
        stale: &[i64],
    ) -> Result<Written, StoreError>;

    async fn get(&self, pk: &str, sk: i64) -> Result<Option<WindowItem>, StoreError>;

    /// The items at `keys` (`(pk, sk)`), read eventually consistent in BatchGetItem
    /// calls of at most [`MAX_BATCH_GET_KEYS`], unprocessed keys retried with backoff
    /// until the deadline. Missing items are left out; order is not kept.
    async fn batch_get(&self, keys: &[(String, i64)]) -> Result<Vec<WindowItem>, StoreError>;

    /// Items of `pk` with `from_sk <= sk <= to_sk`, ascending.
    async fn query(
        &self,
        pk: &str,
        from_sk: i64,
        to_sk: i64,
    ) -> Result<Vec<WindowItem>, StoreError>;
}

/// Part of an object read with a range GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRange {
    /// The bytes asked for (fewer if the object ends sooner).
    pub body: Vec<u8>,
    /// The object's size, bytes.
    pub size: u64,
    /// The object's ETag: a second range read passes it as `if_match`, so an object
    /// overwritten between two reads is noticed instead of mixed.
    pub etag: String,
}

/// The S3 archive of expired items.
#[async_trait]
pub trait Archive: Send + Sync {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError>;
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Bytes `start..end` of the object (`end` clamped to its size), or its last
    /// `-start` bytes when `start < 0` (a suffix range: `end` is ignored). `None` if
    /// there is no such object. With `if_match`, an object whose ETag differs is a
    /// retryable [`StoreError`] (it was overwritten: read its index again).
    async fn get_range(
        &self,
        key: &str,
        start: i64,
        end: u64,
        if_match: Option<&str>,
    ) -> Result<Option<ObjectRange>, StoreError>;
    /// Puts `body` at `key` if and only if the object is still the one the caller read:
    /// `if_match` is its ETag (`None`: no object may exist). [`Written::Conflict`] if
    /// another writer changed it first (read again, merge again): the compare-and-swap
    /// that lets two compactions of one object run at once without losing either.
    async fn put_if(
        &self,
        key: &str,
        body: Vec<u8>,
        if_match: Option<&str>,
    ) -> Result<Written, StoreError>;
    /// Deletes the objects at `keys` (missing ones are no error), in calls of at most
    /// 1,000 keys (DeleteObjects' limit).
    async fn delete(&self, keys: &[String]) -> Result<(), StoreError>;
}

/// One series in the catalog: written by the writer at most once per series per day
/// (UTC), read by the reader to list and match series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    pub series: SeriesName,
    /// The labels the series came with, sorted by name: a Prometheus series' full
    /// label set (with `__name__`) before the name mapping. Empty when the series came
    /// as a plain name (Mackerel, native): its labels follow from the name.
    pub labels: Vec<(String, String)>,
    /// Start (epoch seconds, UTC midnight) of the last day the writer recorded it.
    pub day: i64,
}

/// The series catalog of every tenant. Series are grouped by
/// `carat_core::catalog::group_of` (`host.<hostId>`, `service.<service>`, else the
/// name's first dotted segment): listing a group, or a prefix within one, is one query
/// (paginated by the adapter), never a scan.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// Records entries (an upsert per series; `labels` are kept when an entry with
    /// empty labels records the same series again) and their groups.
    async fn record(&self, tenant: &Tenant, entries: &[CatalogEntry]) -> Result<(), StoreError>;

    /// Groups of `tenant` whose name starts with `prefix`, ascending, at most `limit`.
    async fn groups(
        &self,
        tenant: &Tenant,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;

    /// Series of `group` whose name starts with `prefix` (`""`: all), ascending by
    /// name, at most `limit`.
    async fn series(
        &self,
        tenant: &Tenant,
        group: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<CatalogEntry>, StoreError>;
}

/// Name sets (`carat_core::record::names`): the series names of a record stored once
/// and referenced by id from record v2. Content-addressed, so a put is idempotent and
/// a get can be checked against the id. The ingest API puts a set before it sends the
/// first record naming it; the writer gets it to decode that record.
#[async_trait]
pub trait NameSets: Send + Sync {
    /// Stores `set` for `tenant` (the same set twice writes the same item).
    async fn put_name_set(&self, tenant: &Tenant, set: &NameSet) -> Result<(), StoreError>;

    /// The sealed bytes of `tenant`'s set `id` (`NameSet::open` checks them), `None` if
    /// it was never stored. A strongly consistent read: a set put before its record was
    /// sent is always found.
    async fn get_name_set(
        &self,
        tenant: &Tenant,
        id: NameSetId,
    ) -> Result<Option<Vec<u8>>, StoreError>;
}

/// A record to put on the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub shard_id: String,
    /// Opaque: AWS gives 56-digit decimals, moto small integers. Compare with
    /// [`cmp_sequence`], never as strings.
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Vec<u8>,
    /// Approximate arrival time, epoch milliseconds.
    pub arrival_ms: i64,
}

/// Where a shard reader starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    TrimHorizon,
    Latest,
    /// Epoch milliseconds.
    AtTimestamp(i64),
    AfterSequence(String),
    AtSequence(String),
}

/// One read from a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBatch {
    pub records: Vec<LogEntry>,
    /// `None` when the shard is closed and fully read.
    pub next_iterator: Option<String>,
    pub millis_behind_latest: i64,
}

/// The Kinesis log.
#[async_trait]
pub trait Log: Send + Sync {
    /// Puts records, split into calls within the service limits; failed records are
    /// retried with backoff until the deadline. Returns the sequence numbers in input
    /// order, only once every record was acknowledged.
    async fn put(&self, records: &[LogRecord]) -> Result<Vec<String>, StoreError>;

    async fn shards(&self) -> Result<Vec<String>, StoreError>;

    async fn iterator(&self, shard_id: &str, start: &StartAt) -> Result<String, StoreError>;

    async fn read(&self, iterator: &str, limit: usize) -> Result<LogBatch, StoreError>;
}

/// One shard of a table's DynamoDB stream. Shards split and close (on AWS about every
/// four hours); a child's records follow its parent's, so a reader finishes the parent
/// before it starts the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamShard {
    pub shard_id: String,
    /// `None` for a shard without a parent, or whose parent was trimmed (past 24 h).
    pub parent_shard_id: Option<String>,
    /// The shard has an ending sequence number: it takes no new records, and a reader
    /// that reaches its end is done with it.
    pub closed: bool,
}

/// Where a table-stream reader starts in a shard (DynamoDB Streams has no AT_TIMESTAMP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamStart {
    TrimHorizon,
    Latest,
    AtSequence(String),
    AfterSequence(String),
}

/// One read from a table-stream shard: the records in the shape Lambda hands a function
/// (`aws_lambda_events::event::dynamodb::EventRecord`), so a stream handler runs unchanged
/// under Lambda and under carat-local.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamBatch {
    pub records: Vec<aws_lambda_events::event::dynamodb::EventRecord>,
    /// `None` when the shard is closed and fully read.
    pub next_iterator: Option<String>,
}

/// The window table's DynamoDB stream (its latest one): what carat-local reads in place
/// of Lambda's DynamoDB event source mapping.
#[async_trait]
pub trait TableStream: Send + Sync {
    /// The shards of the table's latest stream, parents listed before their children
    /// as DynamoDB lists them (callers must not rely on it: check `parent_shard_id`).
    async fn shards(&self) -> Result<Vec<StreamShard>, StoreError>;

    /// A shard iterator. A sequence number older than the stream keeps (24 h) is
    /// [`StoreError::IteratorExpired`]: start again from [`StreamStart::TrimHorizon`].
    async fn iterator(&self, shard_id: &str, start: &StreamStart) -> Result<String, StoreError>;

    /// Up to `limit` records (at most 1,000). An expired iterator (15 minutes on AWS) is
    /// [`StoreError::IteratorExpired`]: ask for a new one after the last record processed.
    async fn read(&self, iterator: &str, limit: usize) -> Result<StreamBatch, StoreError>;
}

/// Orders two Kinesis sequence numbers numerically (decimal strings of any length).
#[must_use]
pub fn cmp_sequence(a: &str, b: &str) -> std::cmp::Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::cmp_sequence;
    use std::cmp::Ordering;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert_eq!(cmp_sequence("9", "10"), Ordering::Less);
        assert_eq!(cmp_sequence("0010", "10"), Ordering::Equal);
        assert_eq!(
            cmp_sequence(
                "49590338271490256608559692538361571095921575989136588898",
                "49590338271490256608559692538361571095921575989136588899"
            ),
            Ordering::Less
        );
    }
}
