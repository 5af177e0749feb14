//! Every tunable of carat in one place, with the reason for each default.
//!
//! Loaded from TOML (`carat.toml`, see `config/` at the repository root) by the binaries;
//! every field has a default so a partial file works. [`Config::validate`] checks the
//! relations between fields and names the key at fault.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub ingest: IngestConfig,
    pub record: RecordConfig,
    pub window: WindowConfig,
    pub retention: RetentionConfig,
    pub limits: ServiceLimits,
    pub retry: RetryConfig,
    pub redis: RedisConfig,
    pub flusher: FlusherConfig,
    pub probe: ProbeConfig,
    pub writer: WriterConfig,
    pub poller: PollerConfig,
    pub reader: ReaderConfig,
    pub archiver: ArchiverConfig,
    pub resources: Resources,
    pub table_stream: TableStreamConfig,
    pub sweeper: SweeperConfig,
}

/// What the ingest API accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Points older than this are rejected. 24 h: Mackerel accepts a day of backfill,
    /// and the Redis head must keep a window this long after it closes.
    pub max_lateness_secs: i64,
    /// Points further in the future are rejected. 10 min covers clock skew of agents
    /// without letting a wrong clock open far-future windows.
    pub max_skew_secs: i64,
    /// Largest request body. 5 MiB stays under API Gateway's and Lambda's 6 MB payload
    /// limits with room for headers; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Most points in one request; keeps one request within one PutRecords deadline.
    pub max_points_per_request: usize,
    /// remote_write: label sets one API process remembers having sent (a labels record
    /// each, for the catalog). 100 k label sets take ~5 MB.
    pub labels_cache_series: usize,
    /// remote_write: a label set is sent again after this long. 1 h: a new writer-side
    /// catalog (or one that lost a write) has every active series' labels within the hour,
    /// at one small record per series per hour per API process.
    pub labels_resend_secs: i64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_lateness_secs: 24 * 3600,
            max_skew_secs: 600,
            max_body_bytes: 5 * 1024 * 1024,
            max_points_per_request: 200_000,
            labels_cache_series: 100_000,
            labels_resend_secs: 3_600,
        }
    }
}

/// How points are packed into Kinesis records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordConfig {
    /// Hash buckets a series is spread over. A bucket is the partition key and the Redis
    /// hash tag. 1024 ≫ any shard count (so shards stay even) and ≫ 3 Redis masters,
    /// while one record still gathers many series of a busy bucket.
    pub buckets: u32,
    /// Largest encoded record. Kinesis accepts 1 MiB of data plus the partition key per
    /// record; 1,000,000 leaves margin for the key.
    pub max_record_bytes: usize,
}

impl Default for RecordConfig {
    fn default() -> Self {
        Self {
            buckets: 1024,
            max_record_bytes: 1_000_000,
        }
    }
}

/// Window lengths and when a window is flushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WindowConfig {
    /// Raw window length. One day: 1,440 one-minute points make a chunk of ~3 KB, so a
    /// million points cost ~700 items (~2,100 write units) — hourly windows would cost
    /// 16,700 items. Tests shrink it to seconds.
    pub raw_secs: i64,
    /// A window is flushed this long after it ends, so points in flight are included.
    pub grace_secs: i64,
    /// An open window is flushed early once it holds this many points (entries in the
    /// head), and again at every further multiple: bounds the loss window of a very
    /// busy series without flushing a normal one (1,440/day at 1-minute steps) early.
    pub flush_point_threshold: u64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            raw_secs: 86_400,
            grace_secs: 120,
            flush_point_threshold: 20_000,
        }
    }
}

/// What one read may cost (the reader: docs/api.md, "Read").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReaderConfig {
    /// Most points one answer may hold, over all its series. 11 000 per series is
    /// Prometheus's bound per time series; 100 000 in all keeps an answer under ~3 MB
    /// of JSON, well inside API Gateway's 10 MB and Lambda's 6 MB response limits.
    /// Over it: 413 naming `max_points` / `resolution` (a coarser resolution fits).
    pub max_points_per_answer: usize,
    /// Most series one pattern may expand to. Each costs at least one DynamoDB Query.
    pub max_series_per_query: usize,
    /// Most raw points one PromQL evaluation may read, over all its selectors (the answer
    /// is bounded by `max_points_per_answer` apart). A dashboard's `rate(x[5m])` over 100
    /// series × 1 day at one point a minute reads 144,000; 2,000,000 points are ~32 MB of
    /// (time, value) pairs in memory, inside the reader Lambda's memory with room for the
    /// evaluation's step vectors. Prometheus' own bound, `--query.max-samples`, is 50 M
    /// on a server; this is a Lambda. Over it: 422 naming the key.
    pub max_points_per_query: usize,
    /// Most samples one remote_read answer may hold, over all its queries. Apart from
    /// `max_points_per_answer` because a sample is denser in protobuf than in JSON: 18 B
    /// each, 13–14 B after snappy for noisy values (6 B for constant ones), measured on
    /// 10^6 node-exporter-like samples. 300,000 × 14 B = 4.2 MB, which base64 (a Lambda's
    /// binary answer) makes 5.6 MB, inside Lambda's 6 MB response limit. Over it: 413
    /// naming this key. (Prometheus' own server allows 5e7,
    /// `--storage.remote.read-sample-limit`.)
    pub max_samples_per_read: usize,
    /// Fetches (Redis GETs, DynamoDB Queries, S3 range GETs) in flight per request: 32
    /// keeps one Lambda's connections busy without tripping per-partition throttling.
    pub fetch_concurrency: usize,
    /// How long after an item's expiry its window is taken to be archived, so coarse
    /// reads (1 h, 1 d buckets) use the archive's rollups for it. DynamoDB deletes expired
    /// items "typically within a few days" and archiving follows the deletion; windows
    /// expired more recently are read raw (from the archive, or from DynamoDB while it
    /// still holds them), so nothing is missing while TTL deletion lags. 7 days.
    pub archive_settled_secs: i64,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        Self {
            max_points_per_answer: 100_000,
            max_series_per_query: 1_000,
            max_points_per_query: 2_000_000,
            max_samples_per_read: 300_000,
            fetch_concurrency: 32,
            archive_settled_secs: 7 * 86_400,
        }
    }
}

/// How long each tier keeps data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// TTL of raw chunks in DynamoDB, counted from the window's end; after it the
    /// archive (S3) serves them. 30 days keeps the hot month in DynamoDB.
    pub raw_secs: i64,
    /// How long 1 h / 1 d rollups are kept, counted from the window's end: in the archive
    /// (S3), where the archiver writes them when a raw item expires — DynamoDB holds no
    /// rollup items since issue 8. 460 days gives the "400+ days" of the original goal
    /// with margin.
    pub rollup_secs: i64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            raw_secs: 30 * 86_400,
            rollup_secs: 460 * 86_400,
        }
    }
}

/// Hard limits of the AWS services, enforced by carat's own code (the local stand-in
/// does not enforce them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceLimits {
    /// BatchWriteItem: at most 25 items per call.
    pub dynamodb_batch_items: usize,
    /// BatchWriteItem: at most 16 MiB per call.
    pub dynamodb_batch_bytes: usize,
    /// DynamoDB: at most 400 KB per item.
    pub dynamodb_item_bytes: usize,
    /// PutRecords: at most 500 records per call.
    pub kinesis_batch_records: usize,
    /// PutRecords: at most 5 MiB per call (data + partition keys).
    pub kinesis_batch_bytes: usize,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        Self {
            dynamodb_batch_items: 25,
            dynamodb_batch_bytes: 16 * 1024 * 1024,
            dynamodb_item_bytes: 400 * 1024,
            kinesis_batch_records: 500,
            kinesis_batch_bytes: 5 * 1024 * 1024,
        }
    }
}

/// Retries of partial failures and throttling (UnprocessedItems, FailedRecordCount, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Total time one call may spend retrying before it surfaces a retryable error.
    /// 10 s fits inside the ingest API's 29 s API Gateway limit and a writer invocation.
    pub deadline_ms: u64,
    /// First backoff; doubled on every attempt, with full jitter.
    pub base_backoff_ms: u64,
    /// Cap on one backoff.
    pub max_backoff_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            deadline_ms: 10_000,
            base_backoff_ms: 25,
            max_backoff_ms: 1_000,
        }
    }
}

/// The Redis head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// Seed nodes of the cluster.
    pub nodes: Vec<String>,
    /// Every Redis call is bounded by this: redis-rs cluster connections can hang on
    /// some failures, and a hung writer blocks its shard.
    pub command_timeout_ms: u64,
    /// Connecting (and reconnecting after a failover) is bounded by this.
    pub connect_timeout_ms: u64,
    /// Replicas that must acknowledge a bucket's append (Redis `WAIT`) before the
    /// writer counts it stored. 1: a master that dies right after an append has
    /// passed it to the replica that takes over, so a failover loses nothing. 0 turns
    /// the wait off (a cluster without replicas).
    pub replica_acks: u32,
    /// How long one `WAIT` may block. Replication on one VPC takes well under a
    /// millisecond; 1 s means a replica is gone or failing over, and the append is
    /// retried (harmless: merges are idempotent).
    pub replica_ack_timeout_ms: u64,
    /// Put before every key carat writes (head, dirty sets, catalog markers), so that
    /// deployments sharing one cluster cannot see each other's windows: the flusher and
    /// the writer flush every window of every dirty set they see into *their* table, so
    /// two deployments on one keyspace flush each other's windows into the wrong table
    /// and settle them — the right one then never stores them (seen in the black-box
    /// suite, where every scenario's carat runs on the shared local cluster). Empty (the
    /// default): the keys of docs/TEAM-NOTES.md as they are. At most 64 characters of
    /// `[A-Za-z0-9._:-]`; no braces, so a key's hash tag, and with it its slot, stay.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            nodes: (7000..7006)
                .map(|p| format!("redis://127.0.0.1:{p}"))
                .collect(),
            command_timeout_ms: 2_000,
            connect_timeout_ms: 2_000,
            replica_acks: 1,
            replica_ack_timeout_ms: 1_000,
            key_prefix: String::new(),
        }
    }
}

/// The scheduled flusher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlusherConfig {
    /// Most windows flushed per run, so a run fits its schedule (one minute) and its
    /// Lambda timeout; the rest wait for the next run.
    pub max_windows_per_run: usize,
    /// Seconds between runs (EventBridge schedule in AWS, a timer in carat-local).
    pub interval_secs: u64,
}

impl Default for FlusherConfig {
    fn default() -> Self {
        Self {
            max_windows_per_run: 5_000,
            interval_secs: 60,
        }
    }
}

/// carat-local's end-to-end probe (in AWS an EventBridge schedule runs `carat-probe`, set
/// by the CDK's `probe.scheduleMinutes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbeConfig {
    /// Seconds between runs against carat-local's own listener; 0 turns the probe off.
    /// One minute, as the Lambda's schedule: one point per minute in `carat.probe` costs
    /// nothing, and a minute is the alarm's resolution.
    pub interval_secs: u64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self { interval_secs: 60 }
    }
}

/// The writer (Kinesis records ⇒ head ⇒ window table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriterConfig {
    /// Buckets of one batch appended (and flushed) concurrently. Buckets live in
    /// different Redis slots, often on different nodes: 16 in flight hides the round
    /// trip without queueing much on 3 masters.
    pub bucket_concurrency: usize,
    /// Closed windows of a touched bucket flushed per batch (the window-close trigger).
    /// Bounds the extra work of the batch that sees a day end; the rest goes to later
    /// batches and the scheduled flusher.
    pub due_flushes_per_bucket: usize,
    /// How long one invocation retries a bucket that failed retryably (throttling, a
    /// failover) before it hands the rest of the batch back to Lambda. 20 s: a Redis
    /// failover takes ~15 s, and the writer's Lambda timeout is 60 s.
    pub retry_deadline_ms: u64,
    /// Series one writer container remembers as already in the catalog today (the
    /// in-process filter before the Redis markers). 100 k series take ~15 MB; a
    /// container that sees more starts over, paying Redis round trips, not catalog writes.
    pub catalog_cache_series: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            bucket_concurrency: 16,
            due_flushes_per_bucket: 32,
            retry_deadline_ms: 20_000,
            catalog_cache_series: 100_000,
        }
    }
}

/// carat-local's stand-in for Lambda's Kinesis event source mapping (one poller per shard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PollerConfig {
    /// Most records per writer invocation (the ESM's BatchSize). 100 is the ESM
    /// default; a record carries many points, so a batch is already large.
    pub batch_size: usize,
    /// How long a poller gathers records before invoking the writer with a partial
    /// batch (the ESM's MaximumBatchingWindowInSeconds). 200 ms keeps local end-to-end
    /// latency well under the 2 s target.
    pub max_batching_window_ms: u64,
    /// Pause between GetRecords calls on an idle shard. Kinesis allows 5 reads per
    /// shard per second; 200 ms is that limit.
    pub idle_poll_ms: u64,
    /// First backoff after a failed batch; doubled per failure up to `max_backoff_ms`.
    pub retry_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Attempts of a batch whose writer invocation fails before it is written to
    /// `failed_records_dir` and skipped (the ESM's MaximumRetryAttempts and on-failure
    /// destination). 0, the default: retry without limit, as the stack does — the
    /// writer fails an invocation only for transient reasons (a window that fails for
    /// good is isolated inside it), so giving up would abandon acknowledged points.
    pub max_retry_attempts: u32,
    /// Where pollers persist the last processed sequence number per shard.
    pub checkpoint_dir: String,
    /// Where undecodable records are written (one file each), as an on-failure destination.
    pub failed_records_dir: String,
}

impl Default for PollerConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            max_batching_window_ms: 200,
            idle_poll_ms: 200,
            retry_backoff_ms: 100,
            max_backoff_ms: 5_000,
            max_retry_attempts: 0,
            checkpoint_dir: ".run/checkpoints".to_string(),
            failed_records_dir: ".run/failed-records".to_string(),
        }
    }
}

/// carat-local's stand-in for the archiver's DynamoDB-stream event source mapping: one
/// poller per shard of the window table's stream, handing TTL removals to the archiver.
/// Not used in AWS, where Lambda reads the stream (cdk/lib/constructs/archiver.ts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TableStreamConfig {
    /// Most records per archiver invocation: the ESM's BatchSize in the stack (100).
    pub batch_size: usize,
    /// How long a poller gathers TTL removals before it invokes the archiver with a
    /// partial batch. The stack sets no batching window (0); locally 500 ms lets a sweep
    /// of many items reach the archiver as full batches instead of one per GetRecords.
    pub max_batching_window_ms: u64,
    /// Pause between GetRecords calls on an idle shard. Lambda polls 4 times a second;
    /// the stand-in keeps every iterator it ever handed out (about 1 KB each), so
    /// carat-local polls once a second.
    pub idle_poll_ms: u64,
    /// First backoff after a failed invocation; doubled per failure up to `max_backoff_ms`.
    pub retry_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Retries of a batch that failed (a non-retryable error, or batch item failures)
    /// before its failed records are logged and skipped: the ESM's retryAttempts in the
    /// stack (5, then the failure queue), same meaning (0: one attempt, no retry).
    /// Retryable errors (the archive unreachable) are retried without limit: skipping
    /// them would lose archived chunks.
    pub retry_attempts: u32,
    /// How often the shard list is read again (new child shards after a split; AWS rolls
    /// shards about every 4 hours, the stand-in never).
    pub shard_refresh_secs: u64,
}

impl Default for TableStreamConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            max_batching_window_ms: 500,
            idle_poll_ms: 1_000,
            retry_backoff_ms: 200,
            max_backoff_ms: 10_000,
            retry_attempts: 5,
            shard_refresh_secs: 60,
        }
    }
}

/// carat-local's TTL sweeper: the stand-in never expires items, so carat-local deletes
/// window items whose `ttl` has passed, as DynamoDB's TTL process does, and their REMOVE
/// records reach the archiver as TTL removals (docs/archive-local.md). Local only: a Scan
/// of the whole table per run would cost read units in AWS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SweeperConfig {
    /// Off: expired items stay (the reader treats them as absent anyway).
    pub enabled: bool,
    /// Seconds between runs. DynamoDB deletes expired items within days; a minute keeps
    /// local tests with compressed TTLs short.
    pub interval_secs: u64,
    /// Most items deleted per run, so one run stays short; the next run takes the rest.
    pub max_items_per_run: usize,
}

impl Default for SweeperConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 60,
            max_items_per_run: 1_000,
        }
    }
}

/// The archiver: TTL-expired window items staged in S3, compacted per tenant-day and
/// tenant-month (docs/formats.md, "Archive").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiverConfig {
    /// A day's staged objects are compacted once this long has passed after the latest
    /// expiry among them, and a month once this long has passed after it ended.
    /// DynamoDB deletes expired items "within a few days" (typically 48 h): waiting a
    /// day after the last expiry gathers most of a day's deletions into one compaction,
    /// while the reader pays for at most a day and a half of staged objects. Stragglers
    /// that arrive later are compacted into the day (and its month) by the next run.
    pub settle_secs: i64,
    /// Seconds between compaction runs (the EventBridge schedule in AWS, a timer in
    /// carat-local). Hourly keeps a run small (a day's worth of tenant-days is due at
    /// once at most) and stragglers no more than an hour behind.
    pub compaction_interval_secs: u64,
    /// Most tenant-days compacted per run, so a run fits the Lambda timeout; the rest
    /// wait for the next run (the oldest first).
    pub max_days_per_run: usize,
    /// Most tenant-months compacted per run (a month reads ~30 day objects).
    pub max_months_per_run: usize,
    /// Staged objects written concurrently by one batch (one per tenant and day in it;
    /// usually one or two). 8 bounds the fan-out of a batch that spans many tenants.
    pub put_concurrency: usize,
}

impl Default for ArchiverConfig {
    fn default() -> Self {
        Self {
            settle_secs: 86_400,
            compaction_interval_secs: 3_600,
            max_days_per_run: 200,
            max_months_per_run: 20,
            put_concurrency: 8,
        }
    }
}

/// Names of the AWS resources (the CDK stack and the local init script create them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Resources {
    pub stream: String,
    pub table: String,
    pub archive_bucket: String,
    /// The series catalog (DynamoDB, pk `<tenant>#<group>`, sk series name).
    pub catalog_table: String,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            stream: "carat-points".to_string(),
            table: "carat-windows".to_string(),
            archive_bucket: "carat-archive".to_string(),
            catalog_table: "carat-catalog".to_string(),
        }
    }
}

impl Config {
    /// Parses a TOML document and validates it.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key that failed to parse or validate.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: Self = toml_de(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the relations between fields.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key, reason: &str| {
            Err(ConfigError {
                key,
                reason: reason.to_string(),
            })
        };
        // A window split into parts uses the sort keys start .. start + 9
        // (carat_store::ports::MAX_WINDOW_PARTS): they must stay inside the window.
        if self.window.raw_secs < 10 {
            return err("window.raw_secs", "must be at least 10 seconds");
        }
        // A window holds at most one point per second; a chunk decodes at most
        // chunk::MAX_POINTS points (the bound that keeps corrupt input from allocating).
        if self.window.raw_secs > i64::try_from(crate::chunk::MAX_POINTS).unwrap_or(i64::MAX) {
            return err(
                "window.raw_secs",
                "must not exceed chunk::MAX_POINTS seconds",
            );
        }
        if self.window.grace_secs < 0 {
            return err("window.grace_secs", "must not be negative");
        }
        if self.window.flush_point_threshold == 0 {
            return err("window.flush_point_threshold", "must be at least 1");
        }
        if self.ingest.max_lateness_secs < 0 || self.ingest.max_skew_secs < 0 {
            return err(
                "ingest.max_lateness_secs",
                "lateness and skew must not be negative",
            );
        }
        // Head entries store the ingest stamp as i32 milliseconds from the window start
        // (crate::head): the window plus lateness and skew must fit in ±24.8 days.
        let span_ms =
            (self.window.raw_secs + self.ingest.max_lateness_secs + self.ingest.max_skew_secs)
                .saturating_mul(1000);
        if span_ms > i64::from(i32::MAX) {
            return err(
                "window.raw_secs",
                "window + max_lateness + max_skew must stay under 24 days (head stamp range)",
            );
        }
        if self.record.buckets == 0 {
            return err("record.buckets", "must be at least 1");
        }
        if self.record.max_record_bytes < 1024 || self.record.max_record_bytes > 1_048_576 {
            return err(
                "record.max_record_bytes",
                "must be between 1 KiB and 1 MiB (Kinesis limit)",
            );
        }
        if self.limits.dynamodb_batch_items == 0 || self.limits.dynamodb_batch_items > 25 {
            return err(
                "limits.dynamodb_batch_items",
                "must be 1..=25 (BatchWriteItem limit)",
            );
        }
        if self.limits.kinesis_batch_records == 0 || self.limits.kinesis_batch_records > 500 {
            return err(
                "limits.kinesis_batch_records",
                "must be 1..=500 (PutRecords limit)",
            );
        }
        if self.retention.raw_secs <= 0 || self.retention.rollup_secs <= 0 {
            return err("retention.raw_secs", "retentions must be positive");
        }
        if self.redis.nodes.is_empty() {
            return err("redis.nodes", "needs at least one seed node");
        }
        if self.redis.command_timeout_ms == 0 {
            return err(
                "redis.command_timeout_ms",
                "must be positive: every Redis call needs a timeout",
            );
        }
        if self.redis.key_prefix.len() > 64
            || !self
                .redis
                .key_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        {
            return err(
                "redis.key_prefix",
                "at most 64 characters of [A-Za-z0-9._:-] (no braces: the hash tag decides the slot)",
            );
        }
        if self.writer.bucket_concurrency == 0 {
            return err("writer.bucket_concurrency", "must be at least 1");
        }
        if self.poller.batch_size == 0 || self.poller.batch_size > 10_000 {
            return err("poller.batch_size", "must be 1..=10000 (GetRecords limit)");
        }
        if self.poller.retry_backoff_ms == 0
            || self.poller.max_backoff_ms < self.poller.retry_backoff_ms
        {
            return err(
                "poller.max_backoff_ms",
                "needs 0 < retry_backoff_ms <= max_backoff_ms",
            );
        }
        if self.reader.max_points_per_answer == 0 {
            return err("reader.max_points_per_answer", "must be at least 1");
        }
        if self.reader.max_points_per_query == 0 {
            return err("reader.max_points_per_query", "must be at least 1");
        }
        if self.reader.max_samples_per_read == 0 {
            return err("reader.max_samples_per_read", "must be at least 1");
        }
        if self.reader.max_series_per_query == 0 {
            return err("reader.max_series_per_query", "must be at least 1");
        }
        if self.reader.fetch_concurrency == 0 {
            return err("reader.fetch_concurrency", "must be at least 1");
        }
        if self.reader.archive_settled_secs < 0 {
            return err("reader.archive_settled_secs", "must not be negative");
        }
        let ts = &self.table_stream;
        if ts.batch_size == 0 || ts.batch_size > 10_000 {
            return err(
                "table_stream.batch_size",
                "must be 1..=10000 (the ESM's BatchSize range)",
            );
        }
        if ts.retry_backoff_ms == 0 || ts.max_backoff_ms < ts.retry_backoff_ms {
            return err(
                "table_stream.max_backoff_ms",
                "needs 0 < retry_backoff_ms <= max_backoff_ms",
            );
        }
        if ts.idle_poll_ms == 0 {
            return err("table_stream.idle_poll_ms", "must be positive");
        }
        if ts.shard_refresh_secs == 0 {
            return err("table_stream.shard_refresh_secs", "must be positive");
        }
        if self.sweeper.interval_secs == 0 {
            return err("sweeper.interval_secs", "must be positive");
        }
        if self.sweeper.max_items_per_run == 0 {
            return err("sweeper.max_items_per_run", "must be at least 1");
        }
        if self.archiver.settle_secs < 0 {
            return err("archiver.settle_secs", "must not be negative");
        }
        if self.archiver.compaction_interval_secs == 0 {
            return err("archiver.compaction_interval_secs", "must be positive");
        }
        if self.archiver.max_days_per_run == 0 || self.archiver.max_months_per_run == 0 {
            return err(
                "archiver.max_days_per_run",
                "max_days_per_run and max_months_per_run must be at least 1",
            );
        }
        if self.archiver.put_concurrency == 0 {
            return err("archiver.put_concurrency", "must be at least 1");
        }
        if self.retry.base_backoff_ms == 0 || self.retry.max_backoff_ms < self.retry.base_backoff_ms
        {
            return err(
                "retry.max_backoff_ms",
                "needs 0 < base_backoff_ms <= max_backoff_ms",
            );
        }
        Ok(())
    }

    /// Seconds after which a window that contains `time` is flushed: its end plus grace.
    #[must_use]
    pub fn flush_due(&self, window_start: i64) -> i64 {
        window_start + self.window.raw_secs + self.window.grace_secs
    }

    /// When the head may forget a window: after its end, the longest lateness, and the
    /// grace. Points for such a window can no longer arrive from ingest.
    #[must_use]
    pub fn head_expiry(&self, window_start: i64) -> i64 {
        window_start + self.window.raw_secs + self.ingest.max_lateness_secs + self.window.grace_secs
    }
}

impl Config {
    /// When the head may forget a window that received a point at `now`: its
    /// [`Config::head_expiry`], but never before two flusher runs and the grace have
    /// passed after `now`, so a late point — close to the expiry or past it (a lagging
    /// writer, a replay) — is flushed before its head key goes.
    #[must_use]
    pub fn head_expiry_after(&self, window_start: i64, now: i64) -> i64 {
        let hold = i64::try_from(self.flusher.interval_secs)
            .unwrap_or(i64::MAX / 4)
            .saturating_mul(2)
            .saturating_add(self.window.grace_secs);
        self.head_expiry(window_start).max(now.saturating_add(hold))
    }
}

fn toml_de(text: &str) -> Result<Config, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError {
        key: "config",
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn key_prefixes_keep_the_hash_tag() {
        let mut c = Config::default();
        c.redis.key_prefix = "awsfault-1-2:".into();
        c.validate().unwrap();
        for bad in ["a{b}", "x y", &"p".repeat(65)] {
            c.redis.key_prefix = bad.to_string();
            assert_eq!(c.validate().unwrap_err().key, "redis.key_prefix", "{bad}");
        }
    }

    #[test]
    fn partial_toml_keeps_defaults_and_unknown_keys_fail() {
        let c = Config::from_toml("[window]\nraw_secs = 60\n").unwrap();
        assert_eq!(c.window.raw_secs, 60);
        assert_eq!(c.record, RecordConfig::default());
        let e = Config::from_toml("[window]\nraw_sec = 60\n").unwrap_err();
        assert!(e.reason.contains("raw_sec"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        let mut c = Config::default();
        c.window.raw_secs = 0;
        assert_eq!(c.validate().unwrap_err().key, "window.raw_secs");
        c.window.raw_secs = 9;
        assert_eq!(c.validate().unwrap_err().key, "window.raw_secs");
        let mut c = Config::default();
        c.limits.dynamodb_batch_items = 26;
        assert_eq!(c.validate().unwrap_err().key, "limits.dynamodb_batch_items");
        let mut c = Config::default();
        c.window.raw_secs = 30 * 86_400;
        assert_eq!(c.validate().unwrap_err().key, "window.raw_secs");
    }

    #[test]
    fn table_stream_and_sweeper_keys_are_checked() {
        let c = Config::from_toml(
            "[table_stream]\nbatch_size = 10\nmax_batching_window_ms = 50\n[sweeper]\ninterval_secs = 1\n",
        )
        .unwrap();
        assert_eq!(c.table_stream.batch_size, 10);
        assert_eq!(c.table_stream.max_batching_window_ms, 50);
        assert_eq!(c.sweeper.interval_secs, 1);
        assert!(c.sweeper.enabled);
        let mut c = Config::default();
        c.table_stream.batch_size = 0;
        assert_eq!(c.validate().unwrap_err().key, "table_stream.batch_size");
        let mut c = Config::default();
        c.table_stream.retry_backoff_ms = 20_000;
        assert_eq!(c.validate().unwrap_err().key, "table_stream.max_backoff_ms");
        let mut c = Config::default();
        c.sweeper.max_items_per_run = 0;
        assert_eq!(c.validate().unwrap_err().key, "sweeper.max_items_per_run");
        let mut c = Config::default();
        c.sweeper.interval_secs = 0;
        assert_eq!(c.validate().unwrap_err().key, "sweeper.interval_secs");
    }

    #[test]
    fn archiver_section_is_validated() {
        let c = Config::from_toml("[archiver]\nsettle_secs = 0\n").unwrap();
        assert_eq!(c.archiver.settle_secs, 0);
        assert_eq!(c.archiver.max_days_per_run, 200);
        let mut c = Config::default();
        c.archiver.settle_secs = -1;
        assert_eq!(c.validate().unwrap_err().key, "archiver.settle_secs");
        let mut c = Config::default();
        c.archiver.compaction_interval_secs = 0;
        assert_eq!(
            c.validate().unwrap_err().key,
            "archiver.compaction_interval_secs"
        );
        let mut c = Config::default();
        c.archiver.max_months_per_run = 0;
        assert_eq!(c.validate().unwrap_err().key, "archiver.max_days_per_run");
        let mut c = Config::default();
        c.archiver.put_concurrency = 0;
        assert_eq!(c.validate().unwrap_err().key, "archiver.put_concurrency");
    }
}
