//! [`FakeLog`]: the Kinesis log in memory.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{lock, Faults, SERVICE};
use crate::ports::{cmp_sequence, Log, LogBatch, LogEntry, LogRecord, StartAt};
use crate::StoreError;

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

pub(crate) fn shard_for(partition_key: &str, shards: usize) -> usize {
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
                source: None,
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
