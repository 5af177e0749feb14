//! In-memory implementations of the four ports, for handler unit tests.
//!
//! They keep the semantics the adapters promise (atomic append-and-mark per bucket,
//! whole-item puts where the last write wins, sequence numbers in input order,
//! shard iterators that expire), so a handler tested against a fake behaves the same
//! against Redis and AWS. Every fake has a [`Faults`] handle that makes upcoming calls
//! fail, retryably or not, wholly or after a partial write, so tests can drive the
//! error paths without a network.
//!
//! ```
//! # use carat_store::fake::FakeTable;
//! # use carat_store::ports::WindowTable;
//! # tokio_test_block_on(async {
//! let table = FakeTable::new();
//! table.faults().fail_next(2); // the next two calls fail with StoreError::Retryable
//! assert!(table.put(&[]).await.unwrap_err().is_retryable());
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use carat_core::head::ENTRY_BYTES;

use crate::ports::{
    cmp_sequence, Archive, Head, HeadAppend, Log, LogBatch, LogEntry, LogRecord, StartAt,
    WindowItem, WindowRef, WindowTable,
};
use crate::redis_head::dirty_member;
use crate::StoreError;

const SERVICE: &str = "fake";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread poisons the lock; the state is still usable for the others.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How an injected fault fails a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// `StoreError::Retryable`, as after throttling or a timeout.
    Retryable,
    /// `StoreError::Fatal`, as for a missing table.
    Fatal,
    /// For `put` of the table and the log: write the first `n` items or records, then
    /// fail retryably (a deadline ran out halfway). Other calls fail retryably.
    PartialThenRetryable(usize),
}

#[derive(Debug)]
struct FaultRule {
    op: Option<&'static str>,
    remaining: usize,
    kind: FaultKind,
}

/// Faults to inject into a fake: rules consumed by the calls they match, in order.
/// Also counts calls per operation.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
    calls: Mutex<HashMap<&'static str, u64>>,
}

impl Faults {
    /// The next `n` calls (any operation) fail retryably.
    pub fn fail_next(&self, n: usize) {
        self.inject(None, n, FaultKind::Retryable);
    }

    /// The next `n` calls of operation `op` (the port method's name: `"append"`,
    /// `"put"`, `"read"`, …) fail retryably.
    pub fn fail_next_op(&self, op: &'static str, n: usize) {
        self.inject(Some(op), n, FaultKind::Retryable);
    }

    /// The next `n` calls of `op` (or of any operation if `None`) fail as `kind`.
    pub fn inject(&self, op: Option<&'static str>, n: usize, kind: FaultKind) {
        if n > 0 {
            lock(&self.rules).push(FaultRule {
                op,
                remaining: n,
                kind,
            });
        }
    }

    /// Drops every pending fault.
    pub fn clear(&self) {
        lock(&self.rules).clear();
    }

    /// How many calls of `op` the fake received (failed ones included).
    #[must_use]
    pub fn calls(&self, op: &str) -> u64 {
        lock(&self.calls).get(op).copied().unwrap_or(0)
    }

    /// Counts the call and returns the fault it must suffer, if any.
    fn take(&self, op: &'static str) -> Option<FaultKind> {
        *lock(&self.calls).entry(op).or_insert(0) += 1;
        let mut rules = lock(&self.rules);
        let i = rules.iter().position(|r| r.op.is_none_or(|o| o == op))?;
        let kind = rules[i].kind;
        rules[i].remaining -= 1;
        if rules[i].remaining == 0 {
            rules.remove(i);
        }
        Some(kind)
    }

    /// `Err` if the call must fail outright; `Ok(Some(n))` if a put must stop after `n`.
    fn check(&self, op: &'static str) -> Result<Option<usize>, StoreError> {
        match self.take(op) {
            None => Ok(None),
            Some(FaultKind::PartialThenRetryable(n)) => Ok(Some(n)),
            Some(FaultKind::Retryable) => Err(injected(op, true)),
            Some(FaultKind::Fatal) => Err(injected(op, false)),
        }
    }
}

fn injected(op: &'static str, retryable: bool) -> StoreError {
    if retryable {
        StoreError::retryable(SERVICE, op, "injected fault")
    } else {
        StoreError::fatal(SERVICE, op, "injected fault")
    }
}

// ---------------------------------------------------------------------------------------
// Head

#[derive(Debug, Default)]
struct HeadState {
    windows: HashMap<WindowRef, (Vec<u8>, i64)>,
    /// bucket ⇒ member ⇒ (score, window), like the `{b<bucket>}:dirty` ZSET.
    dirty: HashMap<u32, BTreeMap<String, (i64, WindowRef)>>,
}

/// The Redis head in memory. Window expiry happens only when a test calls [`FakeHead::expire`].
#[derive(Debug, Default)]
pub struct FakeHead {
    state: Mutex<HeadState>,
    faults: Faults,
}

impl FakeHead {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Forgets every window whose `expire_at` is at or before `now` (what Redis's
    /// EXPIREAT does), leaving dirty marks in place as Redis does.
    pub fn expire(&self, now: i64) {
        lock(&self.state).windows.retain(|_, (_, at)| *at > now);
    }

    /// Every window the head holds, with its entry bytes, sorted.
    #[must_use]
    pub fn windows(&self) -> Vec<(WindowRef, Vec<u8>)> {
        let mut v: Vec<_> = lock(&self.state)
            .windows
            .iter()
            .map(|(w, (b, _))| (w.clone(), b.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The dirty windows of `bucket` with their flush-due scores, in ZSET order.
    #[must_use]
    pub fn dirty(&self, bucket: u32) -> Vec<(WindowRef, i64)> {
        let state = lock(&self.state);
        let mut v: Vec<_> = state
            .dirty
            .get(&bucket)
            .map(|m| {
                m.iter()
                    .map(|(member, (s, w))| (*s, member.clone(), w.clone()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v.into_iter().map(|(s, _, w)| (w, s)).collect()
    }
}

/// Checks what the Redis adapter also refuses: a window of another bucket (its key
/// would be in another slot) or entries that are not whole 16-byte entries.
pub(crate) fn check_appends(
    service: &'static str,
    bucket: u32,
    appends: &[HeadAppend],
) -> Result<(), StoreError> {
    for (i, a) in appends.iter().enumerate() {
        if a.window.bucket != bucket {
            return Err(StoreError::fatal(
                service,
                "append",
                format!(
                    "append {i}: window {} is in bucket {}, not {bucket}",
                    a.window.key, a.window.bucket
                ),
            ));
        }
        if a.entries.len() % ENTRY_BYTES != 0 {
            return Err(StoreError::fatal(
                service,
                "append",
                format!(
                    "append {i}: {} entry bytes is not a multiple of {ENTRY_BYTES}",
                    a.entries.len()
                ),
            ));
        }
    }
    Ok(())
}

#[async_trait]
impl Head for FakeHead {
    async fn append(&self, bucket: u32, appends: &[HeadAppend]) -> Result<Vec<u64>, StoreError> {
        self.faults.check("append")?;
        check_appends(SERVICE, bucket, appends)?;
        let mut state = lock(&self.state);
        let mut counts = Vec::with_capacity(appends.len());
        for a in appends {
            let slot = state
                .windows
                .entry(a.window.clone())
                .or_insert_with(|| (Vec::new(), a.expire_at));
            slot.0.extend_from_slice(&a.entries);
            slot.1 = a.expire_at;
            counts.push((slot.0.len() / ENTRY_BYTES) as u64);
            // Like `ZADD LT`: the earliest due time a window was given stays.
            state
                .dirty
                .entry(bucket)
                .or_default()
                .entry(dirty_member(&a.window))
                .and_modify(|(due, _)| *due = (*due).min(a.flush_due))
                .or_insert_with(|| (a.flush_due, a.window.clone()));
        }
        Ok(counts)
    }

    async fn read(&self, window: &WindowRef) -> Result<Vec<u8>, StoreError> {
        self.faults.check("read")?;
        Ok(lock(&self.state)
            .windows
            .get(window)
            .map(|(b, _)| b.clone())
            .unwrap_or_default())
    }

    async fn due(&self, bucket: u32, now: i64, limit: usize) -> Result<Vec<WindowRef>, StoreError> {
        self.faults.check("due")?;
        let state = lock(&self.state);
        let Some(set) = state.dirty.get(&bucket) else {
            return Ok(Vec::new());
        };
        let mut v: Vec<_> = set
            .iter()
            .filter(|(_, (score, _))| *score <= now)
            .map(|(member, (score, w))| (*score, member, w))
            .collect();
        v.sort();
        Ok(v.into_iter()
            .take(limit)
            .map(|(_, _, w)| w.clone())
            .collect())
    }

    async fn settle(&self, window: &WindowRef, len: usize) -> Result<bool, StoreError> {
        self.faults.check("settle")?;
        let mut state = lock(&self.state);
        let current = state.windows.get(window).map_or(0, |(b, _)| b.len());
        if current != len {
            return Ok(false);
        }
        if let Some(set) = state.dirty.get_mut(&window.bucket) {
            set.remove(&dirty_member(window));
        }
        Ok(true)
    }
}

// ---------------------------------------------------------------------------------------
// Window table

/// The DynamoDB window table in memory: whole-item puts, the last one wins.
#[derive(Debug, Default)]
pub struct FakeTable {
    items: Mutex<BTreeMap<(String, i64), WindowItem>>,
    faults: Faults,
    puts: AtomicU64,
}

impl FakeTable {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Every item, sorted by (pk, sk).
    #[must_use]
    pub fn items(&self) -> Vec<WindowItem> {
        lock(&self.items).values().cloned().collect()
    }

    /// Items written so far (each item of each successful or partial put counts once).
    #[must_use]
    pub fn items_written(&self) -> u64 {
        self.puts.load(Ordering::Relaxed)
    }

    /// Removes an item, as a TTL sweep or a user delete would.
    pub fn delete(&self, pk: &str, sk: i64) -> Option<WindowItem> {
        lock(&self.items).remove(&(pk.to_string(), sk))
    }
}

#[async_trait]
impl WindowTable for FakeTable {
    async fn put(&self, items: &[WindowItem]) -> Result<(), StoreError> {
        let stop = self.faults.check("put")?;
        let n = stop.unwrap_or(items.len()).min(items.len());
        let mut map = lock(&self.items);
        for item in &items[..n] {
            map.insert((item.pk.clone(), item.sk), item.clone());
        }
        self.puts.fetch_add(n as u64, Ordering::Relaxed);
        if stop.is_some() {
            return Err(StoreError::retryable(
                SERVICE,
                "put",
                format!("injected fault after {n} of {} items", items.len()),
            ));
        }
        Ok(())
    }

    async fn get(&self, pk: &str, sk: i64) -> Result<Option<WindowItem>, StoreError> {
        self.faults.check("get")?;
        Ok(lock(&self.items).get(&(pk.to_string(), sk)).cloned())
    }

    async fn query(
        &self,
        pk: &str,
        from_sk: i64,
        to_sk: i64,
    ) -> Result<Vec<WindowItem>, StoreError> {
        self.faults.check("query")?;
        if from_sk > to_sk {
            return Ok(Vec::new());
        }
        Ok(lock(&self.items)
            .range((pk.to_string(), from_sk)..=(pk.to_string(), to_sk))
            .map(|(_, v)| v.clone())
            .collect())
    }
}

// ---------------------------------------------------------------------------------------
// Archive

/// The S3 archive in memory.
#[derive(Debug, Default)]
pub struct FakeArchive {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    faults: Faults,
}

impl FakeArchive {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Every object, sorted by key.
    #[must_use]
    pub fn objects(&self) -> Vec<(String, Vec<u8>)> {
        lock(&self.objects)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[async_trait]
impl Archive for FakeArchive {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        self.faults.check("put")?;
        lock(&self.objects).insert(key.to_string(), body);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.faults.check("get")?;
        Ok(lock(&self.objects).get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.faults.check("list")?;
        Ok(lock(&self.objects)
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }
}

// ---------------------------------------------------------------------------------------
// Log

#[derive(Debug, Default)]
struct LogState {
    shards: Vec<Vec<LogEntry>>,
    next_sequence: u64,
    /// Iterators handed out before the last [`FakeLog::expire_iterators`] are refused.
    generation: u64,
}

/// The Kinesis log in memory: shards chosen from the partition key's hash (the same
/// key always goes to the same shard, in order), sequence numbers that are small
/// integers like moto's (so string comparison would be wrong, as it is there).
#[derive(Debug)]
pub struct FakeLog {
    state: Mutex<LogState>,
    faults: Faults,
    /// Arrival clock in epoch ms; 0 means the system clock.
    now_ms: AtomicI64,
}

impl FakeLog {
    /// A log with `shards` shards (at least one).
    #[must_use]
    pub fn new(shards: usize) -> Self {
        Self {
            state: Mutex::new(LogState {
                shards: vec![Vec::new(); shards.max(1)],
                next_sequence: 1,
                generation: 0,
            }),
            faults: Faults::default(),
            now_ms: AtomicI64::new(0),
        }
    }

    #[must_use]
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Fixes the arrival time stamped on records put from now on (epoch ms).
    pub fn set_now_ms(&self, ms: i64) {
        self.now_ms.store(ms, Ordering::Relaxed);
    }

    /// Makes every iterator handed out so far invalid: reads with them fail with
    /// [`StoreError::IteratorExpired`], as Kinesis does after five minutes.
    pub fn expire_iterators(&self) {
        lock(&self.state).generation += 1;
    }

    /// The shard id of shard number `i`, in Kinesis's format.
    #[must_use]
    pub fn shard_id(i: usize) -> String {
        format!("shardId-{i:012}")
    }

    /// The shard a partition key goes to. Kinesis splits the MD5 hash-key range
    /// evenly; the fake splits a 64-bit FNV-1a range (mixed) evenly: stable, spread, cheap.
    #[must_use]
    pub fn shard_of(&self, partition_key: &str) -> usize {
        let n = lock(&self.state).shards.len();
        shard_for(partition_key, n)
    }

    /// Every record of a shard, in order.
    #[must_use]
    pub fn records(&self, shard: usize) -> Vec<LogEntry> {
        lock(&self.state)
            .shards
            .get(shard)
            .cloned()
            .unwrap_or_default()
    }

    fn now(&self) -> i64 {
        match self.now_ms.load(Ordering::Relaxed) {
            0 => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            ms => ms,
        }
    }
}

fn shard_for(partition_key: &str, shards: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in partition_key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's high bits barely change between short keys like `b1`, `b2`: mix (the
    // murmur3 finaliser) so the even split below spreads them.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    // Even split of the hash range, as Kinesis splits its hash-key range.
    let shards = shards.max(1) as u128;
    usize::try_from((u128::from(h) * shards) >> 64).expect("result is below the shard count")
}

/// Iterator strings: `fake:<generation>:<shard>:<position>`.
fn parse_iterator(it: &str) -> Option<(u64, usize, usize)> {
    let mut parts = it.strip_prefix("fake:")?.split(':');
    let g = parts.next()?.parse().ok()?;
    let s = parts.next()?.parse().ok()?;
    let p = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((g, s, p))
}

fn shard_index(shard_id: &str) -> Option<usize> {
    shard_id.strip_prefix("shardId-")?.parse().ok()
}

#[async_trait]
impl Log for FakeLog {
    async fn put(&self, records: &[LogRecord]) -> Result<Vec<String>, StoreError> {
        let stop = self.faults.check("put")?;
        let n = stop.unwrap_or(records.len()).min(records.len());
        let now = self.now();
        let mut state = lock(&self.state);
        let shards = state.shards.len();
        let mut seqs = Vec::with_capacity(n);
        for r in &records[..n] {
            let shard = shard_for(&r.partition_key, shards);
            let seq = state.next_sequence.to_string();
            state.next_sequence += 1;
            state.shards[shard].push(LogEntry {
                shard_id: Self::shard_id(shard),
                sequence_number: seq.clone(),
                partition_key: r.partition_key.clone(),
                data: r.data.clone(),
                arrival_ms: now,
            });
            seqs.push(seq);
        }
        if stop.is_some() {
            return Err(StoreError::retryable(
                SERVICE,
                "put",
                format!("injected fault after {n} of {} records", records.len()),
            ));
        }
        Ok(seqs)
    }

    async fn shards(&self) -> Result<Vec<String>, StoreError> {
        self.faults.check("shards")?;
        Ok((0..lock(&self.state).shards.len())
            .map(Self::shard_id)
            .collect())
    }

    async fn iterator(&self, shard_id: &str, start: &StartAt) -> Result<String, StoreError> {
        self.faults.check("iterator")?;
        let state = lock(&self.state);
        let shard = shard_index(shard_id)
            .filter(|&i| i < state.shards.len())
            .ok_or_else(|| {
                StoreError::fatal(SERVICE, "iterator", format!("no shard {shard_id:?}"))
            })?;
        let recs = &state.shards[shard];
        let pos = match start {
            StartAt::TrimHorizon => 0,
            StartAt::Latest => recs.len(),
            StartAt::AtTimestamp(ms) => recs.partition_point(|r| r.arrival_ms < *ms),
            StartAt::AtSequence(s) => {
                recs.partition_point(|r| cmp_sequence(&r.sequence_number, s).is_lt())
            }
            StartAt::AfterSequence(s) => {
                recs.partition_point(|r| cmp_sequence(&r.sequence_number, s).is_le())
            }
        };
        Ok(format!("fake:{}:{shard}:{pos}", state.generation))
    }

    async fn read(&self, iterator: &str, limit: usize) -> Result<LogBatch, StoreError> {
        self.faults.check("read")?;
        let state = lock(&self.state);
        let (generation, shard, pos) = parse_iterator(iterator)
            .filter(|(_, s, _)| *s < state.shards.len())
            .ok_or_else(|| {
                StoreError::fatal(SERVICE, "read", format!("invalid iterator {iterator:?}"))
            })?;
        if generation != state.generation {
            return Err(StoreError::IteratorExpired {
                service: SERVICE,
                op: "read",
                detail: iterator.to_string(),
            });
        }
        let recs = &state.shards[shard];
        let pos = pos.min(recs.len());
        let end = pos.saturating_add(limit.max(1)).min(recs.len());
        let records = recs[pos..end].to_vec();
        let behind = match (recs.last(), records.last()) {
            (Some(last), Some(got)) if end < recs.len() => {
                (last.arrival_ms - got.arrival_ms).max(0)
            }
            _ => 0,
        };
        Ok(LogBatch {
            records,
            next_iterator: Some(format!("fake:{generation}:{shard}:{end}")),
            millis_behind_latest: behind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carat_core::{SeriesKey, SeriesName, Tenant};

    fn window(series: &str, start: i64) -> WindowRef {
        let key = SeriesKey::new(
            Tenant::default_tenant(),
            SeriesName::parse(series, "name").expect("valid name"),
        );
        WindowRef {
            bucket: key.bucket(16),
            key,
            start,
        }
    }

    fn append(w: &WindowRef, entries: usize, due: i64) -> HeadAppend {
        HeadAppend {
            window: w.clone(),
            entries: vec![7; entries * ENTRY_BYTES],
            flush_due: due,
            expire_at: due + 100,
        }
    }

    #[tokio::test]
    async fn head_appends_counts_due_and_settles() {
        let head = FakeHead::new();
        let a = window("cpu", 0);
        let b = WindowRef {
            start: 60,
            ..a.clone()
        };
        let counts = head
            .append(a.bucket, &[append(&a, 2, 120), append(&b, 1, 180)])
            .await
            .unwrap();
        assert_eq!(counts, vec![2, 1]);
        let counts = head.append(a.bucket, &[append(&a, 3, 120)]).await.unwrap();
        assert_eq!(counts, vec![5]);
        assert_eq!(head.read(&a).await.unwrap().len(), 5 * ENTRY_BYTES);
        assert_eq!(head.due(a.bucket, 119, 10).await.unwrap(), vec![]);
        assert_eq!(
            head.due(a.bucket, 200, 10).await.unwrap(),
            vec![a.clone(), b.clone()]
        );
        assert_eq!(head.due(a.bucket, 200, 1).await.unwrap(), vec![a.clone()]);
        // A stale length does not settle; the current one does.
        assert!(!head.settle(&a, 2 * ENTRY_BYTES).await.unwrap());
        assert!(head.settle(&a, 5 * ENTRY_BYTES).await.unwrap());
        assert_eq!(head.due(a.bucket, 200, 10).await.unwrap(), vec![b.clone()]);
        head.expire(280);
        assert!(head.read(&b).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn head_keeps_the_earliest_due_time() {
        let head = FakeHead::new();
        let a = window("cpu", 0);
        head.append(a.bucket, &[append(&a, 1, 50)]).await.unwrap();
        head.append(a.bucket, &[append(&a, 1, 500)]).await.unwrap();
        assert_eq!(head.dirty(a.bucket), vec![(a.clone(), 50)]);
        head.append(a.bucket, &[append(&a, 1, 10)]).await.unwrap();
        assert_eq!(head.dirty(a.bucket), vec![(a.clone(), 10)]);
    }

    #[tokio::test]
    async fn head_refuses_foreign_bucket_and_torn_entries() {
        let head = FakeHead::new();
        let a = window("cpu", 0);
        let e = head
            .append(a.bucket + 1, &[append(&a, 1, 1)])
            .await
            .unwrap_err();
        assert!(!e.is_retryable());
        let mut torn = append(&a, 1, 1);
        torn.entries.pop();
        assert!(head.append(a.bucket, &[torn]).await.is_err());
        assert!(head.windows().is_empty());
    }

    #[tokio::test]
    async fn faults_fail_the_next_calls_then_clear() {
        let head = FakeHead::new();
        let a = window("cpu", 0);
        head.faults().fail_next_op("append", 2);
        head.faults().inject(Some("read"), 1, FaultKind::Fatal);
        assert!(head
            .append(a.bucket, &[append(&a, 1, 1)])
            .await
            .unwrap_err()
            .is_retryable());
        assert!(head.read(&a).await.is_err_and(|e| !e.is_retryable()));
        assert!(head.append(a.bucket, &[append(&a, 1, 1)]).await.is_err());
        assert_eq!(
            head.append(a.bucket, &[append(&a, 1, 1)]).await.unwrap(),
            vec![1]
        );
        assert_eq!(head.faults().calls("append"), 3);
    }

    fn item(pk: &str, sk: i64, body: u8) -> WindowItem {
        WindowItem {
            pk: pk.to_string(),
            sk,
            version: 1,
            body: vec![body],
            count: 1,
            expires_at: 99,
        }
    }

    #[tokio::test]
    async fn table_last_put_wins_and_queries_ranges() {
        let t = FakeTable::new();
        t.put(&[
            item("a", 0, 1),
            item("a", 60, 2),
            item("b", 0, 3),
            item("a", 0, 4),
        ])
        .await
        .unwrap();
        assert_eq!(t.get("a", 0).await.unwrap().unwrap().body, vec![4]);
        assert_eq!(t.get("a", 1).await.unwrap(), None);
        let q = t.query("a", 0, 60).await.unwrap();
        assert_eq!(q.iter().map(|i| i.sk).collect::<Vec<_>>(), vec![0, 60]);
        assert_eq!(t.query("a", 1, 59).await.unwrap(), vec![]);
        assert_eq!(t.query("a", 60, 0).await.unwrap(), vec![]);
    }

    #[tokio::test]
    async fn table_partial_fault_writes_a_prefix() {
        let t = FakeTable::new();
        t.faults()
            .inject(Some("put"), 1, FaultKind::PartialThenRetryable(1));
        let e = t
            .put(&[item("a", 0, 1), item("a", 60, 2)])
            .await
            .unwrap_err();
        assert!(e.is_retryable());
        assert_eq!(t.items().len(), 1);
        t.put(&[item("a", 0, 1), item("a", 60, 2)]).await.unwrap();
        assert_eq!(t.items().len(), 2);
    }

    #[tokio::test]
    async fn archive_lists_by_prefix() {
        let s = FakeArchive::new();
        for k in ["x/1", "x/2", "y/1", "x"] {
            s.put(k, k.as_bytes().to_vec()).await.unwrap();
        }
        assert_eq!(s.list("x/").await.unwrap(), vec!["x/1", "x/2"]);
        assert_eq!(s.get("y/1").await.unwrap(), Some(b"y/1".to_vec()));
        assert_eq!(s.get("z").await.unwrap(), None);
    }

    #[tokio::test]
    async fn log_keeps_key_order_and_reads_from_every_start() {
        let log = FakeLog::new(4);
        log.set_now_ms(1_000);
        let recs: Vec<_> = (0..30)
            .map(|i| LogRecord {
                partition_key: format!("b{}", i % 3),
                data: vec![i],
            })
            .collect();
        let seqs = log.put(&recs).await.unwrap();
        assert_eq!(seqs.len(), 30);
        for w in seqs.windows(2) {
            assert!(cmp_sequence(&w[0], &w[1]).is_lt());
        }
        log.set_now_ms(2_000);
        log.put(&recs[..3]).await.unwrap();
        let shards = log.shards().await.unwrap();
        assert_eq!(shards.len(), 4);
        let shard = log.shard_of("b1");
        let sid = &shards[shard];
        let it = log.iterator(sid, &StartAt::TrimHorizon).await.unwrap();
        let batch = log.read(&it, 1000).await.unwrap();
        let of_b1: Vec<_> = batch
            .records
            .iter()
            .filter(|r| r.partition_key == "b1")
            .collect();
        assert_eq!(of_b1.len(), 11);
        assert!(of_b1
            .windows(2)
            .all(|w| w[0].data[0] < w[1].data[0] || w[1].arrival_ms == 2_000));
        // Empty read at the end keeps the iterator usable.
        let more = log
            .read(batch.next_iterator.as_ref().unwrap(), 10)
            .await
            .unwrap();
        assert!(more.records.is_empty());
        let at = log
            .iterator(sid, &StartAt::AtTimestamp(2_000))
            .await
            .unwrap();
        assert!(log
            .read(&at, 100)
            .await
            .unwrap()
            .records
            .iter()
            .all(|r| r.arrival_ms == 2_000));
        let first = &batch.records[0].sequence_number;
        let after = log
            .iterator(sid, &StartAt::AfterSequence(first.clone()))
            .await
            .unwrap();
        assert_eq!(
            log.read(&after, 100).await.unwrap().records.len(),
            batch.records.len() - 1
        );
        let at_seq = log
            .iterator(sid, &StartAt::AtSequence(first.clone()))
            .await
            .unwrap();
        assert_eq!(
            log.read(&at_seq, 1).await.unwrap().records[0].sequence_number,
            *first
        );
        let latest = log.iterator(sid, &StartAt::Latest).await.unwrap();
        assert!(log.read(&latest, 100).await.unwrap().records.is_empty());
    }

    #[tokio::test]
    async fn log_iterators_expire() {
        let log = FakeLog::new(1);
        let it = log
            .iterator(&FakeLog::shard_id(0), &StartAt::Latest)
            .await
            .unwrap();
        log.expire_iterators();
        assert!(log.read(&it, 1).await.unwrap_err().is_iterator_expired());
        assert!(log
            .iterator("shardId-000000000009", &StartAt::Latest)
            .await
            .is_err());
    }

    #[test]
    fn shards_spread_buckets() {
        let mut counts = [0usize; 4];
        for b in 0..1024 {
            counts[shard_for(&format!("b{b}"), 4)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 150), "{counts:?}");
    }
}
