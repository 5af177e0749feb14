/**
 * Typed per-environment configuration, validated at synth.
 *
 * The file `config/carat.json` (or the file named by the `config` context value) holds
 * `environments.<name>` objects that override the defaults below field by field, and an
 * optional `pipeline` object. `parseConfig` merges, then checks every field and names the
 * one at fault (`environments.prod.kinesis.shards: must be an integer in 1..500, got 0`),
 * so a typo fails the synth instead of deploying something else.
 *
 * Every default says why it is what it is; docs/deploy.md lists every field.
 */

export type RedisEngine = 'valkey' | 'redis';
export type TableClassName = 'STANDARD' | 'STANDARD_INFREQUENT_ACCESS';
export type ReplayStart = 'TRIM_HORIZON' | 'AT_TIMESTAMP';

/** Memory and timeout of one Lambda function. */
export interface FunctionConfig {
  readonly memoryMb: number;
  readonly timeoutSeconds: number;
}

export interface EnvironmentConfig {
  /** AWS account; absent = the account of the CLI credentials (or the pipeline's). */
  readonly account?: string;
  /** AWS region; absent = the region of the CLI credentials (or the pipeline's). */
  readonly region?: string;
  readonly kinesis: {
    /** Shards of the point stream. One shard takes 1 MB/s or 1 000 records/s in. */
    readonly shards: number;
    /** Hours the stream keeps records. ≥ 168 (7 days): Kinesis is the log Redis is rebuilt from. */
    readonly retentionHours: number;
  };
  readonly table: {
    /** STANDARD, or STANDARD_INFREQUENT_ACCESS when storage dominates (long retention). */
    readonly tableClass: TableClassName;
  };
  readonly archive: {
    /** Days after which archived chunks move to S3 Standard-IA. */
    readonly infrequentAccessAfterDays: number;
    /** Days after which archived chunks move to S3 Glacier Instant Retrieval. */
    readonly glacierInstantRetrievalAfterDays: number;
    /** Days after which archived chunks are deleted; absent = kept forever. */
    readonly expireAfterDays?: number;
  };
  readonly redis: {
    /** valkey (default: Redis protocol, priced ~20 % below Redis OSS) or redis. */
    readonly engine: RedisEngine;
    /** Engine version; the head's parameter group family (valkey8, redis7, …) is derived from it. */
    readonly engineVersion: string;
    /** ElastiCache node type. */
    readonly nodeType: string;
    /** Shards (node groups) of the cluster. */
    readonly shards: number;
    /** Replicas per shard; ≥ 1 for Multi-AZ with automatic failover. */
    readonly replicasPerShard: number;
  };
  readonly vpc: {
    /** CIDR of the VPC. */
    readonly cidr: string;
    /** Availability zones used; ≥ 2 for Multi-AZ ElastiCache. */
    readonly maxAzs: number;
  };
  readonly writer: FunctionConfig & {
    /** Most records per invocation of the writer. */
    readonly batchSize: number;
    /** Seconds the mapping waits to fill a batch. */
    readonly maxBatchingWindowSeconds: number;
    /** Concurrent batches per shard (1..10); order per partition key is kept. */
    readonly parallelizationFactor: number;
    /**
     * Retries of a failing batch (after bisecting) before it goes to the failure queue;
     * -1 = until the records leave the stream. The writer fails an invocation only for
     * transient reasons (it isolates and counts windows that fail for good), so giving up
     * would abandon acknowledged points; a finite value trades them for an unblocked shard.
     */
    readonly retryAttempts: number;
    /**
     * Age (s) past which a failing batch is given up on (sent to the failure queue);
     * -1 = never, i.e. the stream's retention. Otherwise 60..604 800 (Lambda's limits).
     */
    readonly maxRecordAgeSeconds: number;
  };
  readonly backupReplay: {
    /** The backup writer's mapping is created disabled; enable it to replay. */
    readonly enabled: boolean;
    /** Where the replay starts. */
    readonly startingPosition: ReplayStart;
    /** ISO-8601 time to start at when startingPosition is AT_TIMESTAMP. */
    readonly startingTimestamp?: string;
  };
  readonly api: FunctionConfig & {
    /** Steady request rate per second of the HTTP API stage (beyond it: 429). */
    readonly throttleRatePerSecond: number;
    /** Burst of the HTTP API stage. */
    readonly throttleBurst: number;
    /** Custom domain of the API; needs certificateArn. */
    readonly domainName?: string;
    /** ACM certificate (same region) for domainName. */
    readonly certificateArn?: string;
  };
  readonly flusher: FunctionConfig & {
    /** Minutes between flusher runs. */
    readonly scheduleMinutes: number;
  };
  readonly archiver: FunctionConfig & {
    /** Records per invocation: one staged S3 object per tenant-day of a batch, so large
     *  batches keep S3 PUTs far below 1 per 100 archived items (docs/BENCHMARKS.md, "Archive"). */
    readonly batchSize: number;
    /** Seconds the mapping gathers removals before invoking with a partial batch. */
    readonly maxBatchingWindowSeconds: number;
    readonly retryAttempts: number;
    /** Minutes between compaction runs (an EventBridge schedule on the archiver function). */
    readonly compactionScheduleMinutes: number;
  };
  readonly reader: FunctionConfig;
  readonly probe: FunctionConfig & {
    /** Minutes between end-to-end probes. */
    readonly scheduleMinutes: number;
  };
  /** Days CloudWatch keeps function and API access logs. */
  readonly logRetentionDays: number;
  /** Optional carat.toml text handed to every function as CARAT_CONFIG. */
  readonly serviceConfigToml?: string;
  readonly alarms: AlarmConfig;
}

export interface AlarmConfig {
  /** E-mail subscribed to the alarm topic; absent = subscribe yourself. */
  readonly email?: string;
  /** Kinesis GetRecords iterator age (ms, maximum over 5 min) above which the readers lag. */
  readonly kinesisIteratorAgeMs: number;
  /** Kinesis IncomingBytes per 5 min below which ingest is considered to have dropped. */
  readonly kinesisIncomingBytesMin: number;
  /** Throughput-exceeded events (sum over 5 min) above which the stream needs shards. */
  readonly kinesisThroughputExceeded: number;
  /** Lambda errors (sum over 5 min) at or above which a function alarms. */
  readonly lambdaErrors: number;
  /** Lambda throttles (sum over 5 min) at or above which a function alarms. */
  readonly lambdaThrottles: number;
  /** Maximum duration as a fraction of the timeout above which a function alarms. */
  readonly durationTimeoutRatio: number;
  /** Lambda iterator age (ms) above which a stream consumer lags. */
  readonly lambdaIteratorAgeMs: number;
  /** Writer concurrency ÷ (shards × parallelization factor) above which to add shards. */
  readonly writerConcurrencyRatio: number;
  /** DynamoDB read + write throttle events (sum over 5 min) at or above which to alarm. */
  readonly dynamoThrottles: number;
  /** DynamoDB system errors (sum over 5 min) at or above which to alarm. */
  readonly dynamoSystemErrors: number;
  /** ElastiCache engine CPU % (one core per node runs the engine). */
  readonly redisEngineCpuPercent: number;
  /**
   * ElastiCache DatabaseMemoryUsagePercentage (max over the nodes of a shard). The head runs
   * with maxmemory-policy noeviction, so at 100 % appends fail: alarm well before.
   */
  readonly redisMemoryPercent: number;
  /** Evictions (sum over 5 min) at or above which to alarm: an eviction loses head points. */
  readonly redisEvictions: number;
  /** Replication lag (seconds) above which a replica is too far behind for a failover. */
  readonly redisReplicationLagSeconds: number;
  /** Windows whose flush failed non-retryably (writer or flusher, sum over 5 min) at or above which to alarm. */
  readonly failedFlushes: number;
  /** Points processed per minute by the writer below which throughput is not normal. */
  readonly processedPointsPerMinuteMin: number;
  /** Minutes in a row below the minimum before the alarm fires. */
  readonly processedPointsMinutes: number;
  /** End-to-end latency (ms, post → readable) above which to alarm. */
  readonly endToEndLatencyMs: number;
}

export interface PipelineConfig {
  /** Account and region of the pipeline itself. */
  readonly account: string;
  readonly region: string;
  /** ARN of a CodeConnections (CodeStar Connections) connection to the repository host. */
  readonly connectionArn: string;
  /** owner/name of the repository. */
  readonly repository: string;
  readonly branch: string;
  /** Environment (key of `environments`) deployed as the staging stage. */
  readonly stagingEnvironment: string;
  /** Environment deployed as the production stage, after manual approval. */
  readonly productionEnvironment: string;
  /** Commands that install the toolchain in CodeBuild before `make test`. */
  readonly installCommands: readonly string[];
}

export interface CaratConfig {
  readonly environments: Readonly<Record<string, EnvironmentConfig>>;
  readonly pipeline?: PipelineConfig;
}

/** Defaults of one environment: sized for about a million points a month (docs/deploy.md). */
export const ENVIRONMENT_DEFAULTS: EnvironmentConfig = {
  // One shard is 1 MB/s in: ~100 000 points/s at ≤ 8 bytes/point, far above a million a month.
  kinesis: { shards: 1, retentionHours: 168 },
  table: { tableClass: 'STANDARD' },
  // Archived chunks are read rarely; IA after a month, Glacier IR after a quarter (both
  // read in milliseconds, so the reader needs no restore step).
  archive: { infrequentAccessAfterDays: 30, glacierInstantRetrievalAfterDays: 90 },
  // The smallest cluster-mode Multi-AZ group: one shard, one replica in another AZ.
  redis: { engine: 'valkey', engineVersion: '8.0', nodeType: 'cache.t4g.micro', shards: 1, replicasPerShard: 1 },
  vpc: { cidr: '10.40.0.0/16', maxAzs: 2 },
  // Batches of up to 100 records or 1 s: one invocation per second per shard under load,
  // each well inside the timeout. Retries and record age unlimited (-1): the writer skips
  // and counts bad records and isolates windows that fail for good, so a failing batch is a
  // transient outage (head or table) and waiting it out loses nothing, up to the stream's
  // retention; a finite limit would drop acknowledged points after a few minutes of outage.
  writer: {
    memoryMb: 512, timeoutSeconds: 60,
    batchSize: 100, maxBatchingWindowSeconds: 1, parallelizationFactor: 1, retryAttempts: -1, maxRecordAgeSeconds: -1,
  },
  backupReplay: { enabled: false, startingPosition: 'TRIM_HORIZON' },
  // API Gateway's integration limit is 29 s; the ingest path retries for at most 10 s.
  api: { memoryMb: 256, timeoutSeconds: 29, throttleRatePerSecond: 100, throttleBurst: 200 },
  // The flusher runs every minute and must finish before the next run.
  flusher: { memoryMb: 512, timeoutSeconds: 55, scheduleMinutes: 1 },
  // Compaction hourly: a tenant-day's batch objects are packed into one sorted object within
  // the hour after the day ends (docs/formats.md), and an idle run costs one LIST.
  archiver: { memoryMb: 256, timeoutSeconds: 60, batchSize: 1000, maxBatchingWindowSeconds: 60, retryAttempts: 5, compactionScheduleMinutes: 60 },
  reader: { memoryMb: 1024, timeoutSeconds: 29 },
  probe: { memoryMb: 128, timeoutSeconds: 50, scheduleMinutes: 1 },
  logRetentionDays: 30,
  alarms: {
    kinesisIteratorAgeMs: 60_000,
    kinesisIncomingBytesMin: 1,
    kinesisThroughputExceeded: 0,
    lambdaErrors: 1,
    lambdaThrottles: 1,
    durationTimeoutRatio: 0.8,
    lambdaIteratorAgeMs: 60_000,
    writerConcurrencyRatio: 0.7,
    dynamoThrottles: 1,
    dynamoSystemErrors: 1,
    redisEngineCpuPercent: 80,
    // noeviction: a full head rejects appends. 70 % leaves time to scale (a resize takes
    // tens of minutes) while the writer keeps up.
    redisMemoryPercent: 70,
    redisEvictions: 1,
    redisReplicationLagSeconds: 10,
    // A window that failed for good is not stored until someone acts: the first one alarms.
    failedFlushes: 1,
    processedPointsPerMinuteMin: 1,
    processedPointsMinutes: 15,
    endToEndLatencyMs: 30_000,
  },
};

export const PIPELINE_DEFAULTS: Partial<PipelineConfig> = {
  branch: 'main',
  stagingEnvironment: 'staging',
  productionEnvironment: 'production',
  // CodeBuild's standard image has no Rust toolchain for arm64 Lambda builds: add it, then the
  // repository's own dependencies (redis, moto, aws CLI, cargo-lambda, node modules).
  installCommands: [
    'command -v rustup >/dev/null || curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal',
    'export PATH="$HOME/.cargo/bin:$PATH"',
    'rustup target add aarch64-unknown-linux-gnu',
    'bash scripts/install-deps.sh',
  ],
};

/** Optional fields: absent from the defaults, allowed in the file, with their types. */
const OPTIONAL: Record<string, 'string' | 'number'> = {
  account: 'string',
  region: 'string',
  'archive.expireAfterDays': 'number',
  'backupReplay.startingTimestamp': 'string',
  'api.domainName': 'string',
  'api.certificateArn': 'string',
  serviceConfigToml: 'string',
  'alarms.email': 'string',
};

const PIPELINE_REQUIRED = ['account', 'region', 'connectionArn', 'repository'] as const;

// CloudWatch Logs accepts only these retention periods.
const LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid carat configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Merges `override` onto `base`, reporting unknown keys and wrong types with their path. */
function merge(base: unknown, override: unknown, path: string, rel: string, problems: string[]): unknown {
  if (!isObject(override)) {
    problems.push(`${path}: must be an object, got ${JSON.stringify(override)}`);
    return base;
  }
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [key, value] of Object.entries(override)) {
    const p = `${path}.${key}`;
    const r = rel ? `${rel}.${key}` : key;
    const def = (base as Record<string, unknown>)[key];
    if (def === undefined) {
      const type = OPTIONAL[r];
      if (type === undefined) {
        problems.push(`${p}: unknown field`);
      } else if (typeof value !== type) {
        problems.push(`${p}: must be a ${type}, got ${JSON.stringify(value)}`);
      } else {
        out[key] = value;
      }
    } else if (isObject(def)) {
      out[key] = merge(def, value, p, r, problems);
    } else if (typeof def !== typeof value) {
      problems.push(`${p}: must be a ${typeof def}, got ${JSON.stringify(value)}`);
    } else {
      out[key] = value;
    }
  }
  return out;
}

function checkInt(problems: string[], path: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) {
    problems.push(`${path}: must be an integer in ${min}..${max}, got ${v}`);
  }
}

/** -1 (unlimited, as Lambda's mapping settings spell it) or an integer in min..max. */
function checkUnlimitedOr(problems: string[], path: string, v: number, min: number, max: number): void {
  if (v !== -1 && (!Number.isInteger(v) || v < min || v > max)) {
    problems.push(`${path}: must be -1 (unlimited) or an integer in ${min}..${max}, got ${v}`);
  }
}

function checkNum(problems: string[], path: string, v: number, min: number, max: number): void {
  if (!Number.isFinite(v) || v < min || v > max) {
    problems.push(`${path}: must be a number in ${min}..${max}, got ${v}`);
  }
}

function checkFunction(problems: string[], path: string, f: FunctionConfig, maxTimeout = 900): void {
  checkInt(problems, `${path}.memoryMb`, f.memoryMb, 128, 10_240);
  checkInt(problems, `${path}.timeoutSeconds`, f.timeoutSeconds, 1, maxTimeout);
}

/** Checks the relations between the fields of one merged environment. */
function validateEnvironment(name: string, e: EnvironmentConfig, problems: string[]): void {
  const p = `environments.${name}`;
  if (!/^[a-z][a-z0-9-]{0,15}$/.test(name)) {
    problems.push(`${p}: the name must be lowercase letters, digits and '-', 1..16 characters (it names resources)`);
  }
  if (e.account !== undefined && !/^\d{12}$/.test(e.account)) {
    problems.push(`${p}.account: must be 12 digits, got ${JSON.stringify(e.account)}`);
  }
  if (e.region !== undefined && !/^[a-z]{2}(-[a-z]+)+-\d$/.test(e.region)) {
    problems.push(`${p}.region: must look like us-east-1, got ${JSON.stringify(e.region)}`);
  }
  checkInt(problems, `${p}.kinesis.shards`, e.kinesis.shards, 1, 500);
  checkInt(problems, `${p}.kinesis.retentionHours`, e.kinesis.retentionHours, 168, 8760);
  if (!['STANDARD', 'STANDARD_INFREQUENT_ACCESS'].includes(e.table.tableClass)) {
    problems.push(`${p}.table.tableClass: must be STANDARD or STANDARD_INFREQUENT_ACCESS, got ${JSON.stringify(e.table.tableClass)}`);
  }
  // S3 requires 30 days in Standard before Standard-IA, and IA objects stay ≥ 30 days.
  checkInt(problems, `${p}.archive.infrequentAccessAfterDays`, e.archive.infrequentAccessAfterDays, 30, 36_500);
  checkInt(problems, `${p}.archive.glacierInstantRetrievalAfterDays`, e.archive.glacierInstantRetrievalAfterDays,
    e.archive.infrequentAccessAfterDays + 30, 36_500);
  if (e.archive.expireAfterDays !== undefined) {
    checkInt(problems, `${p}.archive.expireAfterDays`, e.archive.expireAfterDays,
      e.archive.glacierInstantRetrievalAfterDays + 90, 36_500);
  }
  if (!['valkey', 'redis'].includes(e.redis.engine)) {
    problems.push(`${p}.redis.engine: must be valkey or redis, got ${JSON.stringify(e.redis.engine)}`);
  }
  if (!/^\d+\.\d+$/.test(e.redis.engineVersion)) {
    problems.push(`${p}.redis.engineVersion: must be MAJOR.MINOR like 8.0, got ${JSON.stringify(e.redis.engineVersion)}`);
  } else {
    const major = Number(e.redis.engineVersion.split('.')[0]);
    const minMajor = e.redis.engine === 'valkey' ? 7 : 6;
    if (major < minMajor) {
      problems.push(`${p}.redis.engineVersion: ${e.redis.engine} ${e.redis.engineVersion} is too old (need ≥ ${minMajor}.x for TLS + AUTH in cluster mode)`);
    }
  }
  if (!/^cache\.[a-z0-9]+\.[a-z0-9]+$/.test(e.redis.nodeType)) {
    problems.push(`${p}.redis.nodeType: must look like cache.t4g.micro, got ${JSON.stringify(e.redis.nodeType)}`);
  }
  checkInt(problems, `${p}.redis.shards`, e.redis.shards, 1, 500);
  checkInt(problems, `${p}.redis.replicasPerShard`, e.redis.replicasPerShard, 1, 5);
  if (!/^(\d{1,3}\.){3}\d{1,3}\/(1[6-9]|2[0-4])$/.test(e.vpc.cidr)) {
    problems.push(`${p}.vpc.cidr: must be an IPv4 CIDR with a /16../24 mask, got ${JSON.stringify(e.vpc.cidr)}`);
  }
  checkInt(problems, `${p}.vpc.maxAzs`, e.vpc.maxAzs, 2, 6);
  checkFunction(problems, `${p}.writer`, e.writer);
  checkInt(problems, `${p}.writer.batchSize`, e.writer.batchSize, 1, 10_000);
  checkInt(problems, `${p}.writer.maxBatchingWindowSeconds`, e.writer.maxBatchingWindowSeconds, 0, 300);
  checkInt(problems, `${p}.writer.parallelizationFactor`, e.writer.parallelizationFactor, 1, 10);
  checkUnlimitedOr(problems, `${p}.writer.retryAttempts`, e.writer.retryAttempts, 0, 10_000);
  checkUnlimitedOr(problems, `${p}.writer.maxRecordAgeSeconds`, e.writer.maxRecordAgeSeconds, 60, 604_800);
  if (!['TRIM_HORIZON', 'AT_TIMESTAMP'].includes(e.backupReplay.startingPosition)) {
    problems.push(`${p}.backupReplay.startingPosition: must be TRIM_HORIZON or AT_TIMESTAMP, got ${JSON.stringify(e.backupReplay.startingPosition)}`);
  }
  if (e.backupReplay.startingPosition === 'AT_TIMESTAMP') {
    const t = e.backupReplay.startingTimestamp;
    if (t === undefined || Number.isNaN(Date.parse(t))) {
      problems.push(`${p}.backupReplay.startingTimestamp: AT_TIMESTAMP needs an ISO-8601 time, got ${JSON.stringify(t)}`);
    }
  } else if (e.backupReplay.startingTimestamp !== undefined) {
    problems.push(`${p}.backupReplay.startingTimestamp: only used with startingPosition AT_TIMESTAMP`);
  }
  // API Gateway stops waiting after 29 s, so a longer function timeout only hides errors.
  checkFunction(problems, `${p}.api`, e.api, 29);
  checkInt(problems, `${p}.api.throttleRatePerSecond`, e.api.throttleRatePerSecond, 1, 10_000);
  checkInt(problems, `${p}.api.throttleBurst`, e.api.throttleBurst, 1, 5_000);
  if ((e.api.domainName === undefined) !== (e.api.certificateArn === undefined)) {
    problems.push(`${p}.api: domainName and certificateArn go together`);
  }
  if (e.api.certificateArn !== undefined && !e.api.certificateArn.startsWith('arn:aws:acm:')) {
    problems.push(`${p}.api.certificateArn: must be an ACM certificate ARN, got ${JSON.stringify(e.api.certificateArn)}`);
  }
  checkFunction(problems, `${p}.flusher`, e.flusher);
  checkInt(problems, `${p}.flusher.scheduleMinutes`, e.flusher.scheduleMinutes, 1, 60);
  if (e.flusher.timeoutSeconds >= e.flusher.scheduleMinutes * 60) {
    problems.push(`${p}.flusher.timeoutSeconds: must be shorter than the schedule (${e.flusher.scheduleMinutes * 60} s) so runs do not overlap`);
  }
  checkFunction(problems, `${p}.archiver`, e.archiver);
  checkInt(problems, `${p}.archiver.batchSize`, e.archiver.batchSize, 1, 10_000);
  checkInt(problems, `${p}.archiver.maxBatchingWindowSeconds`, e.archiver.maxBatchingWindowSeconds, 0, 300);
  checkInt(problems, `${p}.archiver.retryAttempts`, e.archiver.retryAttempts, 0, 10_000);
  checkInt(problems, `${p}.archiver.compactionScheduleMinutes`, e.archiver.compactionScheduleMinutes, 1, 1_440);
  checkFunction(problems, `${p}.reader`, e.reader, 29);
  checkFunction(problems, `${p}.probe`, e.probe);
  checkInt(problems, `${p}.probe.scheduleMinutes`, e.probe.scheduleMinutes, 1, 60);
  // The probe reads until its invocation's deadline; a run must end before the next starts.
  if (e.probe.timeoutSeconds >= e.probe.scheduleMinutes * 60) {
    problems.push(`${p}.probe.timeoutSeconds: must be shorter than the schedule (${e.probe.scheduleMinutes * 60} s) so runs do not overlap`);
  }
  if (!LOG_RETENTION_DAYS.includes(e.logRetentionDays)) {
    problems.push(`${p}.logRetentionDays: must be one of ${LOG_RETENTION_DAYS.join(', ')}, got ${e.logRetentionDays}`);
  }
  // Lambda allows 4 KB of environment in total; leave room for the resource names.
  if (e.serviceConfigToml !== undefined && Buffer.byteLength(e.serviceConfigToml) > 3_000) {
    problems.push(`${p}.serviceConfigToml: at most 3000 bytes (Lambda environment limit is 4 KB)`);
  }
  const a = e.alarms;
  const ap = `${p}.alarms`;
  if (a.email !== undefined && !/^[^@\s]+@[^@\s]+$/.test(a.email)) {
    problems.push(`${ap}.email: not an e-mail address: ${JSON.stringify(a.email)}`);
  }
  checkNum(problems, `${ap}.kinesisIteratorAgeMs`, a.kinesisIteratorAgeMs, 1_000, 604_800_000);
  checkNum(problems, `${ap}.kinesisIncomingBytesMin`, a.kinesisIncomingBytesMin, 0, 1e12);
  checkNum(problems, `${ap}.kinesisThroughputExceeded`, a.kinesisThroughputExceeded, 0, 1e9);
  checkNum(problems, `${ap}.lambdaErrors`, a.lambdaErrors, 1, 1e9);
  checkNum(problems, `${ap}.lambdaThrottles`, a.lambdaThrottles, 1, 1e9);
  checkNum(problems, `${ap}.durationTimeoutRatio`, a.durationTimeoutRatio, 0.1, 1);
  checkNum(problems, `${ap}.lambdaIteratorAgeMs`, a.lambdaIteratorAgeMs, 1_000, 604_800_000);
  checkNum(problems, `${ap}.writerConcurrencyRatio`, a.writerConcurrencyRatio, 0.1, 1);
  checkNum(problems, `${ap}.dynamoThrottles`, a.dynamoThrottles, 1, 1e9);
  checkNum(problems, `${ap}.dynamoSystemErrors`, a.dynamoSystemErrors, 1, 1e9);
  checkNum(problems, `${ap}.redisEngineCpuPercent`, a.redisEngineCpuPercent, 1, 100);
  checkNum(problems, `${ap}.redisMemoryPercent`, a.redisMemoryPercent, 1, 100);
  checkNum(problems, `${ap}.redisEvictions`, a.redisEvictions, 1, 1e9);
  checkNum(problems, `${ap}.redisReplicationLagSeconds`, a.redisReplicationLagSeconds, 0.1, 3_600);
  checkNum(problems, `${ap}.failedFlushes`, a.failedFlushes, 1, 1e9);
  checkNum(problems, `${ap}.processedPointsPerMinuteMin`, a.processedPointsPerMinuteMin, 0, 1e12);
  checkInt(problems, `${ap}.processedPointsMinutes`, a.processedPointsMinutes, 1, 1_440);
  checkNum(problems, `${ap}.endToEndLatencyMs`, a.endToEndLatencyMs, 100, 3_600_000);
}

function parsePipeline(raw: unknown, environments: Record<string, EnvironmentConfig>, problems: string[]): PipelineConfig | undefined {
  if (raw === undefined) return undefined;
  if (!isObject(raw)) {
    problems.push(`pipeline: must be an object, got ${JSON.stringify(raw)}`);
    return undefined;
  }
  const known = new Set([...PIPELINE_REQUIRED, ...Object.keys(PIPELINE_DEFAULTS)]);
  for (const key of Object.keys(raw)) {
    if (!known.has(key)) problems.push(`pipeline.${key}: unknown field`);
  }
  for (const key of PIPELINE_REQUIRED) {
    if (typeof raw[key] !== 'string' || raw[key] === '') problems.push(`pipeline.${key}: required (a string)`);
  }
  const p = { ...PIPELINE_DEFAULTS, ...raw } as PipelineConfig;
  if (!Array.isArray(p.installCommands) || !p.installCommands.every((c) => typeof c === 'string')) {
    problems.push('pipeline.installCommands: must be a list of strings');
  }
  for (const key of ['branch', 'stagingEnvironment', 'productionEnvironment'] as const) {
    if (typeof p[key] !== 'string') problems.push(`pipeline.${key}: must be a string`);
  }
  if (typeof p.account === 'string' && !/^\d{12}$/.test(p.account)) {
    problems.push(`pipeline.account: must be 12 digits, got ${JSON.stringify(p.account)}`);
  }
  if (typeof p.connectionArn === 'string' && !/^arn:aws:(codestar-connections|codeconnections):/.test(p.connectionArn)) {
    problems.push(`pipeline.connectionArn: must be a CodeConnections (codestar-connections) ARN, got ${JSON.stringify(p.connectionArn)}`);
  }
  if (typeof p.repository === 'string' && !/^[^/\s]+\/[^/\s]+$/.test(p.repository)) {
    problems.push(`pipeline.repository: must be owner/name, got ${JSON.stringify(p.repository)}`);
  }
  for (const key of ['stagingEnvironment', 'productionEnvironment'] as const) {
    if (typeof p[key] === 'string' && environments[p[key]] === undefined) {
      problems.push(`pipeline.${key}: no environment named ${JSON.stringify(p[key])} in environments`);
    }
  }
  return p;
}

/** Merges the defaults into `raw` and validates everything; throws a ConfigError listing every problem. */
export function parseConfig(raw: unknown): CaratConfig {
  const problems: string[] = [];
  if (!isObject(raw)) throw new ConfigError(['(root): must be an object']);
  for (const key of Object.keys(raw)) {
    if (key !== 'environments' && key !== 'pipeline' && key !== '$comment') problems.push(`${key}: unknown field`);
  }
  const environments: Record<string, EnvironmentConfig> = {};
  if (!isObject(raw.environments) || Object.keys(raw.environments).length === 0) {
    problems.push('environments: must be an object with at least one environment');
  } else {
    for (const [name, value] of Object.entries(raw.environments)) {
      const env = merge(ENVIRONMENT_DEFAULTS, value, `environments.${name}`, '', problems) as EnvironmentConfig;
      validateEnvironment(name, env, problems);
      environments[name] = env;
    }
  }
  const pipeline = parsePipeline(raw.pipeline, environments, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return { environments, pipeline };
}

/** The environment named `name`, or a clear error naming the ones that exist. */
export function environment(config: CaratConfig, name: string): EnvironmentConfig {
  const env = config.environments[name];
  if (env === undefined) {
    throw new ConfigError([`environment ${JSON.stringify(name)} is not in the configuration (have: ${Object.keys(config.environments).join(', ')})`]);
  }
  return env;
}
