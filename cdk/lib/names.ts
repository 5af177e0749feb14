/**
 * Names shared with the Rust code: environment variables the functions read and the
 * metrics they emit. Change one here only together with the code that reads it.
 */

/** Environment variables handed to the functions. */
export const ENV = {
  /** Kinesis stream name (the log). */
  stream: 'CARAT_STREAM',
  /** DynamoDB table name (window chunks). */
  table: 'CARAT_TABLE',
  /** DynamoDB table name of the series catalog (writer, backup writer, flusher, reader). */
  catalogTable: 'CARAT_CATALOG_TABLE',
  /** S3 bucket name (archived chunks). */
  archiveBucket: 'CARAT_ARCHIVE_BUCKET',
  /** Comma-separated Redis URLs; in AWS the cluster configuration endpoint as rediss://host:port. */
  redisNodes: 'CARAT_REDIS_NODES',
  /** Secrets Manager ARN of the Redis AUTH token (plain string). */
  redisAuthSecretArn: 'CARAT_REDIS_AUTH_SECRET_ARN',
  /** Secrets Manager ARN of the API keys. */
  apiKeysSecretArn: 'CARAT_API_KEYS_SECRET_ARN',
  /**
   * Secrets Manager ARN of the probe's own API key, the key itself as a plain string (the key
   * store holds only hashes); its hash is in the key store under the name `probe`.
   */
  probeApiKeySecretArn: 'CARAT_PROBE_API_KEY_SECRET_ARN',
  /** Optional carat.toml text. */
  config: 'CARAT_CONFIG',
  /** Name of the deployment (the configuration environment, e.g. staging): the probe's metric dimension. */
  deployment: 'CARAT_DEPLOYMENT',
  /** Base URL of the HTTP API, for the probe. */
  apiUrl: 'CARAT_API_URL',
} as const;

/** Metrics emitted by the functions with CloudWatch EMF (see docs/probe-metric.md). */
export const METRICS = {
  namespace: 'Carat',
  /**
   * Points the writer processed per invocation; dimension Function = `writer`, the role name
   * carat-writer writes (services/writer/src/emf.rs), with BadRecords, FlushedWindows and
   * FailedFlushes beside it. The flusher emits FlushedWindows and FailedFlushes as `flusher`.
   */
  processedPoints: { name: 'ProcessedPoints', dimension: 'Function', unit: 'Count', writer: 'writer', flusher: 'flusher' },
  /**
   * Windows whose flush failed non-retryably and were set aside (the rest of the batch went
   * on); emitted by the writer (and backup writer) as `writer` and the flusher as `flusher`.
   */
  failedFlushes: { name: 'FailedFlushes', dimension: 'Function', unit: 'Count', writer: 'writer', flusher: 'flusher' },
  /** Post → readable latency measured by the probe; dimension Deployment = CARAT_DEPLOYMENT. */
  endToEndLatency: { name: 'EndToEndLatency', dimension: 'Deployment', unit: 'Milliseconds' },
  /**
   * Per-invocation phase timings (services/writer/src/emf.rs PHASE_METRICS, dimension Function):
   * milliseconds spent in Redis (AppendMs), DynamoDB (FlushMs), Kinesis (PutMs) and S3
   * (ArchiveMs) calls, summed over concurrent calls; the writer adds DecodeMs; all add TotalMs.
   */
  phases: {
    names: ['DecodeMs', 'AppendMs', 'FlushMs', 'PutMs', 'ArchiveMs', 'TotalMs'],
    functions: ['writer', 'flusher', 'archiver'],
  },
} as const;

/** The Rust binaries (cargo packages under services/, one Lambda each). */
export type Binary = 'carat-api' | 'carat-writer' | 'carat-flusher' | 'carat-archiver' | 'carat-reader' | 'carat-probe';

/**
 * The binaries that exist in the workspace today. Adding one here is the one line that
 * deploys it: the Services stack wires its function, mapping or schedule, grants and
 * routes, and the Monitoring stack its alarms.
 */
export const LANDED_BINARIES: readonly Binary[] = [
  'carat-api', 'carat-writer', 'carat-flusher', 'carat-reader', 'carat-archiver', 'carat-probe',
];

/**
 * The reader's routes on the HTTP API (services/reader's router serves the same paths).
 * `GET /api/v1/points` reads while `POST /api/v1/points` (under the ingest's `POST /{proxy+}`)
 * writes: API Gateway routes on method and path, the most specific path first, so the read
 * APIs that Grafana and Prometheus POST to (form-encoded queries, remote_read) are listed
 * here with their POST and reach the reader, not the ingest.
 */
export const READER_ROUTES: readonly string[] = [
  'GET /api/v0/hosts/{hostId}/metrics',
  'GET /api/v0/hosts/{hostId}/metric-names',
  'GET /api/v0/services/{service}/metrics',
  'GET /api/v0/services/{service}/metric-names',
  'GET /api/v0/tsdb/latest',
  'GET /api/v1/points',
  'GET /api/v1/names',
  // Graphite (docs/graphite.md): Grafana posts render and find as forms.
  'GET /render',
  'POST /render',
  'GET /metrics/find',
  'POST /metrics/find',
  'GET /metrics/expand',
  'POST /metrics/expand',
  'GET /version',
  // The Prometheus HTTP API (docs/prometheus.md) and remote_read (docs/remote-read.md).
  'GET /api/v1/query',
  'POST /api/v1/query',
  'GET /api/v1/query_range',
  'POST /api/v1/query_range',
  'GET /api/v1/series',
  'POST /api/v1/series',
  'GET /api/v1/labels',
  'POST /api/v1/labels',
  'GET /api/v1/label/{name}/values',
  'GET /api/v1/metadata',
  'GET /api/v1/status/buildinfo',
  'GET /api/v1/query_exemplars',
  'POST /api/v1/query_exemplars',
  'POST /api/v1/read',
  // The graph page and its script and style sheet (docs/graph-page.md).
  'GET /',
  'GET /page/{asset}',
];
