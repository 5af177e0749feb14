//! The flush invariant as a model-based property test (issue 8, "Tests").
//!
//! A random program of operations runs against the real [`Writer`] (a main writer and a
//! backup writer) and the real [`Flusher`], over an in-memory head and table defined
//! here with the faults the issue lists: appends of new records and replays of old
//! ones, head keys lost (eviction, failover without replica), a writer that lags past
//! seal, flushes whose table put is delayed (parked) and released in any order while
//! other flushes of the same window complete, and throttled / refused puts. After
//! quiescing (parked puts released, the clock past every flush due, the flusher run
//! until nothing is due), every stored window must equal the oracle: for each
//! (series, time), the value of the acknowledged write with the greatest stamp.
//!
//! Portability: the production code is reached only through `Writer` (new, process,
//! flush), `Flusher` (new, run), `record::pack`, `Config`, `ManualClock`, the `Head` and
//! `WindowTable` port traits, and the two functions [`stored_points`] and [`wins`]. A
//! change of the item format or of the ports touches those two functions, the two port
//! impls ([`ModelHead`], [`ModelTable`]) and the error constructors [`throttled`] /
//! [`refused`] — nothing else.
//!
//! Head format (issue 12): the head is the v2 list of blocks (`carat_core::head`); a
//! v1 writer (the release before, during a rolling deploy) may write 16-byte-entry
//! strings into windows the v2 writer has not touched, and fails on the lists the v2
//! writer made, as Redis answers WRONGTYPE (Lambda then re-sends the batch to the new
//! code); and a flush may read a head as it was before the latest append (a read that
//! raced an append): its settle must then refuse.
//!
//! `CARAT_MODEL_FAULTS` (comma-separated subset of `lose,park,lag,fail,v1,stale`; default all)
//! turns fault kinds off, to look at one finding at a time; `CARAT_MODEL_FAULTS=none`
//! must pass on any correct writer, including today's (a check of the model itself).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::encodings::{Base64Data, SecondTimestamp};
use aws_lambda_events::event::kinesis::{KinesisEncryptionType, KinesisEventRecord, KinesisRecord};
use carat_core::head::{self, Entry};
use carat_core::record::{self, SeriesPoints};
use carat_core::{window, Config, Point, SeriesKey, SeriesName, Tenant};
use carat_flusher::Flusher;
use carat_store::fake::FakeTable;
use carat_store::ports::{
    Head, HeadAppend, NameSets as _, WindowItem, WindowRef, WindowTable, Written,
};
use carat_store::StoreError;
use carat_writer::sink::{BadRecord, FailureSink};
use carat_writer::{ManualClock, Writer};
use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::{Config as RunnerConfig, TestRng, TestRunner};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------
// The two functions that know the stored format and the ordering of writes.

/// What the table stores for one window of `key`: (time, value bits), sorted by time.
/// Reads every part of the window (`read_window`) and decodes it as the flush does.
async fn stored_points(
    table: &dyn WindowTable,
    cfg: &Config,
    key: &SeriesKey,
    start: i64,
) -> Vec<(i64, u64)> {
    let items = table
        .read_window(&key.table_pk("raw"), start)
        .await
        .expect("the model table's read does not fail");
    let window = WindowRef {
        bucket: key.bucket(cfg.record.buckets),
        key: key.clone(),
        start,
    };
    carat_writer::flush::stored_window(&window, &items)
        .expect("stored window decodes")
        .map(|w| w.points.iter().map(|p| (p.time, p.value_bits)).collect())
        .unwrap_or_default()
}

/// Whether write `a` (stamp ms, value bits) replaces write `b` of the same (series, time).
fn wins(a: (i64, u64), b: (i64, u64)) -> bool {
    a > b
}

/// Errors the model table injects. Constructed here (not through `fake.rs`).
fn throttled() -> StoreError {
    StoreError::retryable("model", "write_window", "injected throttling")
}

fn refused() -> StoreError {
    StoreError::fatal("model", "write_window", "injected non-retryable failure")
}

// ---------------------------------------------------------------------------------------
// The universe.

const NAMES: [&str; 3] = ["host.a.cpu", "host.b.cpu", "host.c.mem"];
/// 2023-11-14T22:13:00Z, a minute start.
const T0: i64 = 1_699_999_980;
/// The scheduled flusher runs at every multiple of this (clock seconds).
const FLUSHER_TICK: i64 = 20;
/// Bound on re-sends of a batch (Lambda retries; the faults are one-shot).
const MAX_ATTEMPTS: usize = 8;

fn model_cfg() -> Config {
    let mut c = Config::default();
    c.window.raw_secs = 60;
    c.window.grace_secs = 10;
    c.window.flush_point_threshold = 3; // early (threshold) flushes happen often
    c.ingest.max_lateness_secs = 60;
    c.record.buckets = 2;
    c.flusher.interval_secs = FLUSHER_TICK.unsigned_abs();
    c.validate().expect("model config is valid");
    c
}

fn key(i: usize) -> SeriesKey {
    SeriesKey::new(
        Tenant::default_tenant(),
        SeriesName::parse(NAMES[i], "name").expect("model series name"),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Throttled,
    Refused,
    /// The raw item is written, then the put fails retryably (deadline ran out halfway).
    PartialThenThrottled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Flusher,
    Backup,
}

#[derive(Debug, Clone)]
enum Op {
    /// New records (one per bucket touched, each with the next stamp): points as
    /// (series, lateness in tens of seconds before ingest, value). The writer processes
    /// them `lag` seconds after ingest.
    Ingest {
        points: Vec<(usize, u8, u8)>,
        lag: u8,
    },
    /// Re-sends an earlier record (its old stamp), by the main or the backup writer.
    Replay {
        pick: usize,
        backup: bool,
    },
    /// A touched window's head key vanishes. `failover: false`: evicted (volatile-lru
    /// picks closed, flushed windows: only windows without a dirty mark are evicted).
    /// `failover: true`: a node replaced without replica loses the key and its dirty mark
    /// whatever they held, and the records of the window are replayed from the log by the
    /// backup writer (the design's recovery: Kinesis is the log).
    LoseHead {
        pick: usize,
        failover: bool,
    },
    Advance {
        secs: u8,
    },
    /// Starts a flush of a touched window whose table put is parked.
    FlushParked {
        who: Who,
        pick: usize,
    },
    /// Releases one parked put (any order) and lets its flush finish.
    Release {
        pick: usize,
    },
    FailNextPut(Fault),
    /// An extra flusher run, besides the scheduled ones.
    FlusherRun,
    /// New records written by a v1 writer (16-byte entries into a string), as [`Op::Ingest`].
    V1Ingest {
        points: Vec<(usize, u8, u8)>,
        lag: u8,
    },
    /// The next head read returns the window as it was before its latest append.
    StaleRead,
}

fn op() -> impl Strategy<Value = Op> {
    let points = prop::collection::vec((0..NAMES.len(), 0u8..=6, 0u8..4), 1..4);
    let lag = prop_oneof![3 => Just(0u8), 1 => 1u8..=40];
    prop_oneof![
        5 => (points, lag).prop_map(|(points, lag)| Op::Ingest { points, lag }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, backup)| Op::Replay { pick, backup }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(pick, failover)| Op::LoseHead { pick, failover }),
        3 => (1u8..=30).prop_map(|secs| Op::Advance { secs }),
        2 => (prop_oneof![Just(Who::Flusher), Just(Who::Backup)], any::<usize>())
            .prop_map(|(who, pick)| Op::FlushParked { who, pick }),
        2 => any::<usize>().prop_map(|pick| Op::Release { pick }),
        1 => prop_oneof![Just(Fault::Throttled), Just(Fault::Refused), Just(Fault::PartialThenThrottled)]
            .prop_map(Op::FailNextPut),
        1 => Just(Op::FlusherRun),
        1 => (prop::collection::vec((0..NAMES.len(), 0u8..=6, 0u8..4), 1..4), prop_oneof![3 => Just(0u8), 1 => 1u8..=40])
            .prop_map(|(points, lag)| Op::V1Ingest { points, lag }),
        1 => Just(Op::StaleRead),
    ]
}

/// A program of operations; printed one operation per line when proptest reports it.
#[derive(Clone)]
struct Program(Vec<Op>);

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "[")?;
        for op in &self.0 {
            writeln!(f, "    {op:?},")?;
        }
        write!(f, "]")
    }
}

fn program() -> impl Strategy<Value = Program> {
    prop::collection::vec(op(), 1..40).prop_map(Program)
}

/// Which fault kinds are on (`CARAT_MODEL_FAULTS`).
#[derive(Debug, Clone, Copy)]
struct Enabled {
    lose: bool,
    park: bool,
    lag: bool,
    fail: bool,
    v1: bool,
    stale: bool,
}

impl Enabled {
    fn from_env() -> Self {
        let v = std::env::var("CARAT_MODEL_FAULTS").unwrap_or_else(|_| "all".to_string());
        let has = |k: &str| v == "all" || v.split(',').any(|p| p.trim() == k);
        Self {
            lose: has("lose"),
            park: has("park"),
            lag: has("lag"),
            fail: has("fail"),
            v1: has("v1"),
            stale: has("stale"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The head: an in-memory Redis head with the faults of the issue.

#[derive(Debug, Default)]
struct HeadState {
    /// Window ⇒ (head bytes, expire_at).
    windows: HashMap<WindowRef, (Vec<u8>, i64)>,
    /// Window ⇒ its head bytes before its latest append (for stale reads).
    before: HashMap<WindowRef, Vec<u8>>,
    /// The next read is stale.
    stale_next: bool,
    /// Stale reads served.
    stale_reads: u64,
    /// Nonces drawn so far (each append call draws one, as `RedisHead` does).
    nonces: u64,
    /// Dirty marks: window ⇒ flush due (the `{b<bucket>}:dirty` ZSET).
    dirty: BTreeMap<WindowRef, i64>,
}

/// Implements the four `Head` methods as `carat_store::RedisHead` does (atomic
/// append-and-mark of v2 blocks, `head::append_to`; `ZADD LT` due times; settle only if
/// the head's identity is unchanged), plus a v1 writer's append.
#[derive(Debug, Default)]
struct ModelHead(Mutex<HeadState>);

impl ModelHead {
    /// Head key loss (eviction, a failover without replica, a DEL): the bytes and the
    /// dirty mark vanish. Returns whether the key held entries.
    fn lose(&self, w: &WindowRef) -> bool {
        let mut s = self.0.lock().unwrap();
        s.dirty.remove(w);
        s.windows.remove(w).is_some_and(|(b, _)| !b.is_empty())
    }

    /// A v1 writer's append script: 16-byte entries `APPEND`ed to each window's string,
    /// in order; a window the v2 writer made a list stops it with WRONGTYPE (the windows
    /// before it keep their appends, as a Redis script that errors halfway does).
    /// Returns whether every window was appended.
    fn v1_append(&self, appends: &[(WindowRef, Vec<u8>, i64, i64)]) -> bool {
        let mut s = self.0.lock().unwrap();
        for (w, entries, due, expire_at) in appends {
            let slot = s
                .windows
                .entry(w.clone())
                .or_insert_with(|| (Vec::new(), *expire_at));
            if head::is_v2(&slot.0) {
                return false;
            }
            let before = slot.0.clone();
            slot.0.extend_from_slice(entries);
            slot.1 = *expire_at;
            s.before.insert(w.clone(), before);
            s.dirty
                .entry(w.clone())
                .and_modify(|d| *d = (*d).min(*due))
                .or_insert(*due);
        }
        true
    }

    fn is_dirty(&self, w: &WindowRef) -> bool {
        self.0.lock().unwrap().dirty.contains_key(w)
    }

    /// EXPIREAT: forgets windows whose expiry is at or before `now`; dirty marks stay.
    fn expire(&self, now: i64) {
        self.0
            .lock()
            .unwrap()
            .windows
            .retain(|_, (_, at)| *at > now);
    }

    fn due_count(&self, now: i64) -> usize {
        self.0
            .lock()
            .unwrap()
            .dirty
            .values()
            .filter(|d| **d <= now)
            .count()
    }
}

#[async_trait]
impl Head for ModelHead {
    async fn append(&self, bucket: u32, appends: &[HeadAppend]) -> Result<Vec<u64>, StoreError> {
        let mut s = self.0.lock().unwrap();
        s.nonces += 1;
        let nonce = s.nonces;
        let mut counts = Vec::with_capacity(appends.len());
        for a in appends {
            assert_eq!(a.window.bucket, bucket, "append to another bucket");
            let slot = s
                .windows
                .entry(a.window.clone())
                .or_insert_with(|| (Vec::new(), a.expire_at));
            let before = slot.0.clone();
            let count =
                head::append_to(&mut slot.0, &a.block, nonce).expect("the writer appends blocks");
            slot.1 = a.expire_at;
            s.before.insert(a.window.clone(), before);
            counts.push(u64::from(count));
            s.dirty
                .entry(a.window.clone())
                .and_modify(|d| *d = (*d).min(a.flush_due))
                .or_insert(a.flush_due);
        }
        Ok(counts)
    }

    async fn read(&self, window: &WindowRef) -> Result<Vec<u8>, StoreError> {
        let mut s = self.0.lock().unwrap();
        let current = s
            .windows
            .get(window)
            .map(|(b, _)| b.clone())
            .unwrap_or_default();
        if std::mem::take(&mut s.stale_next) {
            if let Some(before) = s.before.get(window) {
                if s.windows.contains_key(window) {
                    let before = before.clone();
                    s.stale_reads += 1;
                    return Ok(before);
                }
            }
        }
        Ok(current)
    }

    async fn due(&self, bucket: u32, now: i64, limit: usize) -> Result<Vec<WindowRef>, StoreError> {
        let s = self.0.lock().unwrap();
        let mut v: Vec<_> = s
            .dirty
            .iter()
            .filter(|(w, d)| w.bucket == bucket && **d <= now)
            .map(|(w, d)| (*d, w.clone()))
            .collect();
        v.sort();
        Ok(v.into_iter().take(limit).map(|(_, w)| w).collect())
    }

    async fn settle(&self, window: &WindowRef, read: &[u8]) -> Result<bool, StoreError> {
        let mut s = self.0.lock().unwrap();
        let current = s
            .windows
            .get(window)
            .map(|(b, _)| b.as_slice())
            .unwrap_or_default();
        if head::identity(current).unwrap() != head::identity(read).unwrap() {
            return Ok(false);
        }
        s.dirty.remove(window);
        Ok(true)
    }
}

// ---------------------------------------------------------------------------------------
// The table: `FakeTable` behind puts that can be parked, reordered and failed.

#[derive(Default)]
struct TableState {
    /// The next put parks (set just before a parked flush starts).
    park_next: bool,
    next_id: u64,
    parked: Vec<(u64, oneshot::Sender<()>)>,
    faults: VecDeque<Fault>,
}

struct ModelTable {
    inner: FakeTable,
    state: Mutex<TableState>,
    /// Tells the driver that a put parked (its id).
    parked_tx: mpsc::UnboundedSender<u64>,
    parked_puts: AtomicU64,
    failed_puts: AtomicU64,
}

enum PutAction {
    Fail(Fault),
    Park(oneshot::Receiver<()>),
    Go,
}

impl ModelTable {
    fn new(parked_tx: mpsc::UnboundedSender<u64>) -> Self {
        Self {
            inner: FakeTable::new(),
            state: Mutex::new(TableState::default()),
            parked_tx,
            parked_puts: AtomicU64::new(0),
            failed_puts: AtomicU64::new(0),
        }
    }

    fn release(&self, id: u64) {
        let mut s = self.state.lock().unwrap();
        if let Some(i) = s.parked.iter().position(|(p, _)| *p == id) {
            let (_, tx) = s.parked.remove(i);
            let _ = tx.send(());
        }
    }
}

#[async_trait]
impl WindowTable for ModelTable {
    async fn put(&self, items: &[WindowItem]) -> Result<(), StoreError> {
        self.inner.put(items).await
    }

    async fn read_window(&self, pk: &str, start: i64) -> Result<Vec<WindowItem>, StoreError> {
        self.inner.read_window(pk, start).await
    }

    /// The write a flush makes: parked (delayed until the driver releases it, while
    /// other flushes of the window go on), failed, or sent to the inner table.
    async fn write_window(
        &self,
        parts: &[WindowItem],
        expected: Option<&[u8]>,
        stale: &[i64],
    ) -> Result<Written, StoreError> {
        let action = {
            let mut s = self.state.lock().unwrap();
            if let Some(f) = s.faults.pop_front() {
                PutAction::Fail(f)
            } else if s.park_next {
                s.park_next = false;
                let id = s.next_id;
                s.next_id += 1;
                let (tx, rx) = oneshot::channel();
                s.parked.push((id, tx));
                let _ = self.parked_tx.send(id);
                PutAction::Park(rx)
            } else {
                PutAction::Go
            }
        };
        match action {
            PutAction::Fail(f) => {
                self.failed_puts.fetch_add(1, Ordering::Relaxed);
                match f {
                    Fault::Throttled => Err(throttled()),
                    Fault::Refused => Err(refused()),
                    // The write lands but its answer is lost (a timeout after the commit).
                    Fault::PartialThenThrottled => {
                        self.inner.write_window(parts, expected, stale).await?;
                        Err(throttled())
                    }
                }
            }
            PutAction::Park(rx) => {
                self.parked_puts.fetch_add(1, Ordering::Relaxed);
                let _ = rx.await;
                self.inner.write_window(parts, expected, stale).await
            }
            PutAction::Go => self.inner.write_window(parts, expected, stale).await,
        }
    }

    async fn get(&self, pk: &str, sk: i64) -> Result<Option<WindowItem>, StoreError> {
        self.inner.get(pk, sk).await
    }

    async fn query(
        &self,
        pk: &str,
        from_sk: i64,
        to_sk: i64,
    ) -> Result<Vec<WindowItem>, StoreError> {
        self.inner.query(pk, from_sk, to_sk).await
    }

    async fn batch_get(&self, keys: &[(String, i64)]) -> Result<Vec<WindowItem>, StoreError> {
        self.inner.batch_get(keys).await
    }
}

struct PanicSink;

#[async_trait]
impl FailureSink for PanicSink {
    async fn put(&self, bad: &BadRecord<'_>) -> Result<(), std::io::Error> {
        panic!(
            "the model only sends good records, got a bad one: {}",
            bad.reason
        );
    }
}

// ---------------------------------------------------------------------------------------
// The driver.

/// One record on the log.
struct LogRec {
    seq: String,
    partition_key: String,
    stamp_ms: i64,
    data: Vec<u8>,
    /// (series, time, value bits)
    points: Vec<(usize, i64, u64)>,
}

struct Inflight {
    park_id: u64,
    task: JoinHandle<()>,
}

/// What one case exercised.
#[derive(Debug, Default, Clone, Copy)]
struct CaseStats {
    acked: u64,
    unacked: u64,
    replays: u64,
    heads_lost: u64,
    parked: u64,
    failed_puts: u64,
    /// Points delivered to the writer at or after their window's head expiry (sealed).
    past_seal: u64,
    /// Points of replayed records whose window is sealed.
    replays_past_seal: u64,
    /// Records a v1 writer appended (as 16-byte-entry strings).
    v1_records: u64,
    /// Head reads that returned the window as it was before its latest append.
    stale_reads: u64,
}

struct World {
    cfg: Arc<Config>,
    on: Enabled,
    clock: Arc<ManualClock>,
    head: Arc<ModelHead>,
    table: Arc<ModelTable>,
    writer: Arc<Writer>,
    backup: Arc<Writer>,
    flusher: Arc<Flusher>,
    keys: Vec<SeriesKey>,
    now: i64,
    log: Vec<LogRec>,
    oracle: BTreeMap<(usize, i64), (i64, u64)>,
    touched: BTreeSet<(usize, i64)>,
    inflight: Vec<Inflight>,
    parked_rx: mpsc::UnboundedReceiver<u64>,
    stats: CaseStats,
    /// Where the API stores name sets and the writers read them (record v2).
    name_sets: Arc<carat_store::fake::FakeCatalog>,
}

impl World {
    fn new(on: Enabled) -> Self {
        let cfg = Arc::new(model_cfg());
        let now = T0 + 60;
        let clock = Arc::new(ManualClock::at_ms(now * 1000));
        let head = Arc::new(ModelHead::default());
        let (tx, parked_rx) = mpsc::unbounded_channel();
        let table = Arc::new(ModelTable::new(tx));
        let name_sets = Arc::new(carat_store::fake::FakeCatalog::new());
        let mk = || {
            Arc::new(
                Writer::new(
                    cfg.clone(),
                    head.clone(),
                    table.clone(),
                    Arc::new(carat_store::fake::FakeCatalog::new()),
                    Arc::new(PanicSink),
                    clock.clone(),
                )
                .with_name_sets(name_sets.clone())
                .with_emf(false),
            )
        };
        let (writer, backup) = (mk(), mk());
        let flusher = Arc::new(
            Flusher::new(cfg.clone(), head.clone(), table.clone(), clock.clone()).with_emf(false),
        );
        Self {
            keys: (0..NAMES.len()).map(key).collect(),
            cfg,
            on,
            clock,
            head,
            table,
            writer,
            backup,
            flusher,
            now,
            log: Vec::new(),
            oracle: BTreeMap::new(),
            touched: BTreeSet::new(),
            inflight: Vec::new(),
            parked_rx,
            stats: CaseStats::default(),
            name_sets,
        }
    }

    fn window_ref(&self, series: usize, start: i64) -> WindowRef {
        let key = self.keys[series].clone();
        WindowRef {
            bucket: key.bucket(self.cfg.record.buckets),
            key,
            start,
        }
    }

    /// Moves the clock to `to`, running the scheduled flusher at each tick on the way and
    /// letting the head expire windows, as time does.
    async fn advance_to(&mut self, to: i64) {
        let mut tick = (self.now.div_euclid(FLUSHER_TICK) + 1) * FLUSHER_TICK;
        while tick <= to {
            self.set_now(tick);
            // The scheduled runs do not suffer injected faults: they stand for a flusher
            // that gets through between a window's flush due and its head expiry (in
            // production max_lateness gives it a day; here 60 s).
            let faults = std::mem::take(&mut self.table.state.lock().unwrap().faults);
            let _ = self.flusher.run().await;
            self.table.state.lock().unwrap().faults = faults;
            tick += FLUSHER_TICK;
        }
        self.set_now(to);
    }

    fn set_now(&mut self, now: i64) {
        self.now = now.max(self.now);
        self.clock.set_ms(self.now * 1000);
        self.head.expire(self.now);
    }

    fn event_record(&self, i: usize) -> KinesisEventRecord {
        let r = &self.log[i];
        KinesisEventRecord {
            aws_region: Some("us-east-1".to_string()),
            event_id: Some(format!("shardId-000000000000:{}", r.seq)),
            event_name: Some("aws:kinesis:record".to_string()),
            event_source: Some("aws:kinesis".to_string()),
            event_source_arn: Some(
                "arn:aws:kinesis:us-east-1:000000000000:stream/carat-points".to_string(),
            ),
            event_version: Some("1.0".to_string()),
            invoke_identity_arn: None,
            kinesis: KinesisRecord {
                approximate_arrival_timestamp: SecondTimestamp(
                    chrono::DateTime::from_timestamp_millis(r.stamp_ms).unwrap_or_default(),
                ),
                data: Base64Data(r.data.clone()),
                encryption_type: KinesisEncryptionType::None,
                partition_key: r.partition_key.clone(),
                sequence_number: r.seq.clone(),
                kinesis_schema_version: Some("1.0".to_string()),
            },
        }
    }

    fn ack(&mut self, i: usize) {
        self.stats.acked += 1;
        let stamp = self.log[i].stamp_ms;
        for &(s, t, bits) in &self.log[i].points {
            let cand = (stamp, bits);
            let slot = self.oracle.entry((s, t)).or_insert(cand);
            if wins(cand, *slot) {
                *slot = cand;
            }
        }
    }

    /// Points of records `idxs` whose window is sealed now (past its head expiry).
    fn points_past_seal(&self, idxs: &[usize]) -> u64 {
        let len = self.cfg.window.raw_secs;
        let sealed = |t: i64| self.now >= self.cfg.head_expiry(window::start(len, t));
        idxs.iter()
            .flat_map(|&i| &self.log[i].points)
            .filter(|&&(_, t, _)| sealed(t))
            .count() as u64
    }

    /// Sends records `idxs` to `writer` as one batch and re-sends what was not stored,
    /// as Lambda does, until everything is acknowledged (bounded).
    async fn deliver(&mut self, backup: bool, mut idxs: Vec<usize>) {
        for _ in 0..MAX_ATTEMPTS {
            if idxs.is_empty() {
                return;
            }
            let recs: Vec<_> = idxs.iter().map(|&i| self.event_record(i)).collect();
            let writer = if backup { &self.backup } else { &self.writer };
            // A function error (`Err`): Lambda retries the whole batch.
            if let Ok(report) = writer.process(&recs).await {
                let n = report
                    .first_failed
                    .as_ref()
                    .and_then(|seq| idxs.iter().position(|&i| &self.log[i].seq == seq))
                    .unwrap_or(idxs.len());
                for &i in &idxs[..n] {
                    self.ack(i);
                }
                idxs.drain(..n);
            }
        }
        self.stats.unacked += idxs.len() as u64;
    }

    async fn ingest(&mut self, points: &[(usize, u8, u8)], lag: u8, v1: bool) {
        let mut by_bucket: BTreeMap<u32, Vec<(usize, u8, u8)>> = BTreeMap::new();
        for &p in points {
            by_bucket
                .entry(self.keys[p.0].bucket(self.cfg.record.buckets))
                .or_default()
                .push(p);
        }
        let mut batch = Vec::new();
        for (bucket, pts) in by_bucket {
            let stamp_s = self.now;
            let no = self.log.len();
            // Every point is valid for the ingest API: within max_lateness of its stamp.
            let top = stamp_s.div_euclid(10) * 10 + if stamp_s % 10 == 0 { 0 } else { 10 };
            let mut per_series: BTreeMap<usize, BTreeMap<i64, f64>> = BTreeMap::new();
            for (s, late, v) in pts {
                let t = top - i64::from(late) * 10;
                let value = (no * 4) as f64 + f64::from(v);
                per_series.entry(s).or_default().insert(t, value);
            }
            let mut flat = Vec::new();
            let series: Vec<SeriesPoints> = per_series
                .into_iter()
                .map(|(s, pts)| {
                    for (&t, &v) in &pts {
                        flat.push((s, t, v.to_bits()));
                        self.touched
                            .insert((s, window::start(self.cfg.window.raw_secs, t)));
                    }
                    SeriesPoints {
                        series: self.keys[s].series.clone(),
                        points: pts.into_iter().map(|(t, v)| Point::new(t, v)).collect(),
                    }
                })
                .collect();
            let mut packed = record::pack_records(
                &Tenant::default_tenant(),
                stamp_s * 1000,
                series,
                self.cfg.record.max_record_bytes,
            )
            .expect("a few points fit a record");
            assert_eq!(packed.len(), 1, "one record per bucket");
            // Every record format a writer meets during a rolling deploy: v1 (an old
            // API), v2 with inline names, v2 naming a name set (stored first, as the
            // API does). The stored bytes must not depend on which.
            let r = packed.remove(0);
            let mut datas = vec![match no % 3 {
                0 => record::encode_v1(&r),
                1 => record::encode(&r),
                _ => {
                    let set = record::NameSet::of(r.series.iter().map(|s| &s.series));
                    self.name_sets
                        .put_name_set(&r.tenant, &set)
                        .await
                        .expect("the fake catalog stores name sets");
                    record::encode_with_set(&r, &set)
                }
            }];
            self.log.push(LogRec {
                seq: (no + 1).to_string(),
                partition_key: carat_core::series::partition_key(bucket),
                stamp_ms: stamp_s * 1000,
                data: datas.remove(0),
                points: flat,
            });
            batch.push(no);
            // Distinct whole-second stamps per record.
            let next = self.now + 1;
            self.advance_to(next).await;
        }
        if self.on.lag && lag > 0 {
            let to = self.now + i64::from(lag);
            self.advance_to(to).await;
        }
        self.stats.past_seal += self.points_past_seal(&batch);
        if v1 {
            // A v1 writer takes the batch; what it cannot append (a window is a v2 list
            // already) fails the batch, and Lambda re-sends it to the v2 writer.
            let mut rest = Vec::new();
            for i in batch {
                if self.v1_write(i) {
                    self.ack(i);
                    self.stats.v1_records += 1;
                } else {
                    rest.push(i);
                }
            }
            self.deliver(false, rest).await;
        } else {
            self.deliver(false, batch).await;
        }
    }

    /// What the v1 writer did with record `i`: one 16-byte entry per point, appended to
    /// its window's string with the v1 dirty mark and expiry. Whether it all landed.
    fn v1_write(&self, i: usize) -> bool {
        let r = &self.log[i];
        let len = self.cfg.window.raw_secs;
        let mut per: BTreeMap<(usize, i64), Vec<u8>> = BTreeMap::new();
        for &(s, t, bits) in &r.points {
            let start = window::start(len, t);
            Entry::new(start, Point::new(t, f64::from_bits(bits)), r.stamp_ms)
                .expect("model points fit a v1 entry")
                .encode_into(per.entry((s, start)).or_default());
        }
        let appends: Vec<_> = per
            .into_iter()
            .map(|((s, start), bytes)| {
                (
                    self.window_ref(s, start),
                    bytes,
                    self.cfg.flush_due(start),
                    self.cfg.head_expiry_after(start, self.now),
                )
            })
            .collect();
        self.head.v1_append(&appends)
    }

    /// Waits until `task` (started with the next table put parked) parked or finished.
    async fn start_parked(&mut self, task: JoinHandle<()>) {
        let mut task = task;
        tokio::select! {
            biased;
            Some(id) = self.parked_rx.recv() => {
                self.stats.parked += 1;
                self.inflight.push(Inflight { park_id: id, task });
            }
            _ = &mut task => {}
        }
        self.table.state.lock().unwrap().park_next = false;
        if let Ok(id) = self.parked_rx.try_recv() {
            panic!("put {id} parked outside a parked flush");
        }
    }

    async fn release(&mut self, pick: usize) {
        if self.inflight.is_empty() {
            return;
        }
        let f = self.inflight.remove(pick % self.inflight.len());
        self.table.release(f.park_id);
        f.task.await.expect("flush task does not panic");
    }

    async fn step(&mut self, op: &Op) {
        match *op {
            Op::Ingest { ref points, lag } => self.ingest(points, lag, false).await,
            Op::V1Ingest { ref points, lag } => self.ingest(points, lag, self.on.v1).await,
            Op::StaleRead => {
                if self.on.stale {
                    self.head.0.lock().unwrap().stale_next = true;
                }
            }
            Op::Replay { pick, backup } => {
                if !self.log.is_empty() {
                    self.stats.replays += 1;
                    let k = pick % self.log.len();
                    self.stats.replays_past_seal += self.points_past_seal(&[k]);
                    self.deliver(backup, vec![k]).await;
                }
            }
            Op::LoseHead { pick, failover } => {
                if self.on.lose && !self.touched.is_empty() {
                    let &(s, start) = self.touched.iter().nth(pick % self.touched.len()).unwrap();
                    let w = self.window_ref(s, start);
                    if !failover && self.head.is_dirty(&w) {
                        return; // not flushed yet: eviction does not pick it
                    }
                    if self.head.lose(&w) {
                        self.stats.heads_lost += 1;
                    }
                    if failover {
                        let len = self.cfg.window.raw_secs;
                        let of_window: Vec<usize> = (0..self.log.len())
                            .filter(|&i| {
                                self.log[i]
                                    .points
                                    .iter()
                                    .any(|&(ps, t, _)| ps == s && window::start(len, t) == start)
                            })
                            .collect();
                        self.stats.replays += of_window.len() as u64;
                        self.deliver(true, of_window).await;
                    }
                }
            }
            Op::Advance { secs } => {
                let to = self.now + i64::from(secs);
                self.advance_to(to).await;
            }
            Op::FlushParked { who, pick } => {
                if self.on.park && !self.touched.is_empty() {
                    let &(s, start) = self.touched.iter().nth(pick % self.touched.len()).unwrap();
                    let w = self.window_ref(s, start);
                    self.table.state.lock().unwrap().park_next = true;
                    let task = match who {
                        Who::Flusher => {
                            let f = self.flusher.clone();
                            tokio::spawn(async move {
                                let _ = f.run().await;
                            })
                        }
                        Who::Backup => {
                            let b = self.backup.clone();
                            tokio::spawn(async move {
                                let _ = b.flush(&w).await;
                            })
                        }
                    };
                    self.start_parked(task).await;
                }
            }
            Op::Release { pick } => self.release(pick).await,
            Op::FailNextPut(f) => {
                let mut s = self.table.state.lock().unwrap();
                // One pending fault at most: a table down longer than the flusher's
                // slack (max_lateness) is an outage the model does not claim to survive.
                if self.on.fail && s.faults.is_empty() {
                    s.faults.push_back(f);
                }
            }
            Op::FlusherRun => {
                let _ = self.flusher.run().await;
            }
        }
    }

    async fn quiesce(&mut self) {
        while !self.inflight.is_empty() {
            self.release(0).await;
        }
        let last_due = self
            .touched
            .iter()
            .map(|&(_, start)| self.cfg.flush_due(start))
            .max()
            .unwrap_or(self.now);
        let to = self.now.max(last_due);
        self.advance_to(to).await;
        for _ in 0..10 {
            if self.head.due_count(self.now) == 0 {
                break;
            }
            let _ = self.flusher.run().await;
        }
        self.stats.failed_puts = self.table.failed_puts.load(Ordering::Relaxed);
        self.stats.stale_reads = self.head.0.lock().unwrap().stale_reads;
        assert_eq!(
            self.stats.parked,
            self.table.parked_puts.load(Ordering::Relaxed)
        );
    }

    /// Every touched window against the oracle; `Err` names the first that differs.
    async fn check(&self) -> Result<(), String> {
        assert_eq!(
            self.stats.unacked, 0,
            "every record is acknowledged in the end"
        );
        let len = self.cfg.window.raw_secs;
        let mut windows: BTreeSet<(usize, i64)> = self.touched.clone();
        windows.extend(self.oracle.keys().map(|&(s, t)| (s, window::start(len, t))));
        for (s, start) in windows {
            let expected: Vec<(i64, u64)> = self
                .oracle
                .range((s, start)..(s, start + len))
                .map(|(&(_, t), &(_, bits))| (t, bits))
                .collect();
            let stored = stored_points(self.table.as_ref(), &self.cfg, &self.keys[s], start).await;
            if stored != expected {
                return Err(format!(
                    "window {}@{start} (T0+{}): stored {} points {:?}, oracle {} points {:?}",
                    NAMES[s],
                    start - T0,
                    stored.len(),
                    rel(&stored),
                    expected.len(),
                    rel(&expected),
                ));
            }
        }
        Ok(())
    }
}

/// (time − T0, value) for readable messages.
fn rel(points: &[(i64, u64)]) -> Vec<(i64, f64)> {
    points
        .iter()
        .map(|&(t, b)| (t - T0, f64::from_bits(b)))
        .collect()
}

fn run_program(ops: &[Op], on: Enabled) -> (CaseStats, Result<(), String>) {
    // Paused time: the writer's retry backoff sleeps advance the clock at once.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut w = World::new(on);
        for op in ops {
            w.step(op).await;
        }
        w.quiesce().await;
        let verdict = w.check().await;
        (w.stats, verdict)
    })
}

// ---------------------------------------------------------------------------------------
// The tests.

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The flush invariant: after any program of appends, replays and faults, every
    /// stored window equals the oracle.
    #[test]
    fn every_stored_window_equals_the_oracle(ops in program()) {
        let (_, verdict) = run_program(&ops.0, Enabled::from_env());
        if let Err(msg) = verdict {
            return Err(TestCaseError::fail(msg));
        }
    }
}

/// The property test is not vacuous: over a run of the same generator, enough cases
/// exercise each fault. Reports how many cases broke the invariant (not asserted here).
#[test]
fn the_model_exercises_every_fault() {
    let cases = 256u32;
    let config = RunnerConfig {
        cases,
        ..RunnerConfig::default()
    };
    // A fixed seed: the same counts every run (the property test itself explores).
    let rng = TestRng::deterministic_rng(config.rng_algorithm);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let strategy = program();
    let on = Enabled {
        lose: true,
        park: true,
        lag: true,
        fail: true,
        v1: true,
        stale: true,
    };
    let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
    let mut violations = 0u32;
    let mut first_violation = None;
    for _ in 0..cases {
        let ops = strategy.new_tree(&mut runner).expect("strategy").current();
        let (st, verdict) = run_program(&ops.0, on);
        for (name, n) in [
            ("replays", st.replays),
            ("heads lost", st.heads_lost),
            ("puts parked", st.parked),
            ("puts failed", st.failed_puts),
            ("ingests past seal", st.past_seal),
            ("replays past seal", st.replays_past_seal),
            ("v1 records", st.v1_records),
            ("stale reads", st.stale_reads),
        ] {
            if n > 0 {
                *seen.entry(name).or_default() += 1;
            }
        }
        if let Err(msg) = verdict {
            violations += 1;
            first_violation.get_or_insert(msg);
        }
    }
    eprintln!(
        "model coverage over {cases} cases (cases with ≥ 1): {seen:?}; invariant broken in {violations} cases{}",
        first_violation.map(|m| format!(", e.g. {m}")).unwrap_or_default()
    );
    for name in [
        "replays",
        "heads lost",
        "puts parked",
        "puts failed",
        "replays past seal",
        "v1 records",
        "stale reads",
    ] {
        let n = seen.get(name).copied().unwrap_or(0);
        assert!(n >= cases / 10, "only {n} of {cases} cases had {name}");
    }
    // A lagging writer is rarer (lag > grace and lateness near max_lateness).
    let n = seen.get("ingests past seal").copied().unwrap_or(0);
    assert!(
        n >= cases / 25,
        "only {n} of {cases} cases had ingests past seal"
    );
}

/// Finding 1 as an example: 50 points flushed, the head key lost, one late point ⇒ the
/// window keeps all 51 points.
#[test]
fn lost_head_key_and_a_late_point_keep_the_window() {
    // Paused time: the writer's retry backoff sleeps advance the clock at once.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut w = World::new(Enabled::from_env());
        let start = T0;
        let s = 0;
        // 50 points into the window [T0, T0+60), posted at T0+55, stamp T0+55 s.
        w.set_now(start + 55);
        let points: Vec<Point> = (0..50).map(|i| Point::new(start + i, i as f64)).collect();
        push_record(&mut w, s, points);
        w.deliver(false, vec![0]).await;
        // Closed and flushed.
        w.set_now(w.cfg.flush_due(start));
        let _ = w.flusher.run().await;
        assert_eq!(
            stored_points(w.table.as_ref(), &w.cfg, &w.keys[s], start)
                .await
                .len(),
            50
        );
        // The head key vanishes (eviction / failover without replica / DEL).
        let wr = w.window_ref(s, start);
        assert!(!w.head.is_dirty(&wr), "flushed and settled");
        assert!(w.head.lose(&wr));
        // One late point, within max_lateness, into the same closed window.
        w.set_now(w.cfg.flush_due(start) + 5);
        push_record(&mut w, s, vec![Point::new(start + 55, 55.0)]);
        w.deliver(false, vec![1]).await;
        w.set_now(w.now + 1);
        let _ = w.flusher.run().await;
        let stored = stored_points(w.table.as_ref(), &w.cfg, &w.keys[s], start).await;
        assert_eq!(
            stored.len(),
            51,
            "the window must keep its 50 flushed points and gain the late one; stored {:?}",
            rel(&stored)
        );
        assert_eq!(w.check().await, Ok(()));
    });
}

/// Appends a record of one series at the current clock (stamp = now) to the log.
fn push_record(w: &mut World, s: usize, points: Vec<Point>) {
    let no = w.log.len();
    let stamp_ms = w.now * 1000;
    let len = w.cfg.window.raw_secs;
    for p in &points {
        w.touched.insert((s, window::start(len, p.time)));
    }
    let flat = points
        .iter()
        .map(|p| (s, p.time, p.value.to_bits()))
        .collect();
    let mut datas = record::pack(
        &Tenant::default_tenant(),
        stamp_ms,
        vec![SeriesPoints {
            series: w.keys[s].series.clone(),
            points,
        }],
        w.cfg.record.max_record_bytes,
    )
    .expect("fits");
    w.log.push(LogRec {
        seq: (no + 1).to_string(),
        partition_key: carat_core::series::partition_key(w.keys[s].bucket(w.cfg.record.buckets)),
        stamp_ms,
        data: datas.remove(0),
        points: flat,
    });
}
