//! carat-store: how carat reaches its storage.
//!
//! Module map:
//! - [`ports`]: the traits the handlers use — [`ports::Head`] (Redis: open windows, and
//!   the writer's daily catalog markers), [`ports::WindowTable`] (DynamoDB: one item per
//!   series window), [`ports::Archive`] (S3: expired items), [`ports::Log`] (Kinesis: the
//!   write-ahead log) and [`ports::Catalog`] (DynamoDB: every series of a tenant, by group).
//! - [`error`]: [`StoreError`], which says whether a failure is worth retrying.
//! - [`fake`]: in-memory ports with injectable faults, for handler unit tests (one file per port).
//! - [`head_keys`]: the head's Redis key layout and append checks, shared by the Redis
//!   adapter and the fake head.
//! - [`retry`]: backoff with full jitter until a deadline, used by every adapter.
//! - adapters, one per service: [`redis_head`] ([`RedisHead`]: Lua scripts over the
//!   cluster, a timeout on every call), [`dynamo`] ([`DynamoTable`]: batches within
//!   BatchWriteItem limits, unprocessed items retried), [`kinesis`] ([`KinesisLog`]:
//!   PutRecords batches, failed records retried in place; shard readers), [`s3`]
//!   ([`S3Archive`]) and [`catalog`] ([`DynamoCatalog`]: one UpdateItem per new series
//!   per day, listing by one paginated Query per group).
//! - [`streams`]: [`DynamoStream`], the window table's DynamoDB stream
//!   ([`ports::TableStream`]) as Lambda event records, for carat-local's archiver poller;
//!   [`DynamoTable::expired`] and [`DynamoTable::delete_expired`] are its TTL sweeper's part.
//! - [`connect`]: builds every adapter once from `carat_core::Config` ([`connect()`]),
//!   and asks each for its health.
//! - [`env`]: the config from the environment (`CARAT_CONFIG`, `CARAT_*` overrides), one
//!   loader for the Lambda `main`s and carat-local; [`secrets`]: Secrets Manager values
//!   fetched at cold start (Redis AUTH token, API key store), redacted in `Debug`.
//! - [`name_sets`]: record v2's name sets over the [`ports::NameSets`] port (the
//!   catalog table): the API's put-once cache and the writer's fetch-once resolver.
//! - [`trace`]: every service call timed in one place (an SDK interceptor, a wrapper of
//!   each Redis command) into the invocation's phase totals and X-Ray subsegments.
//!
//! Data flow: a handler holds `Arc<dyn Port>`s; the adapter turns a port call into
//! service calls within the service limits, classifies each failure as retryable or
//! fatal, and retries the retryable parts itself until `retry.deadline_ms`.

// Tests may unwrap: a panic there is the failure report.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod aws;
pub mod catalog;
pub mod connect;
pub mod dynamo;
pub mod env;
pub mod error;
pub mod fake;
pub mod head_keys;
pub mod kinesis;
pub mod name_sets;
pub mod ports;
pub mod redis_head;
pub mod retry;
pub mod s3;
pub mod secrets;
pub mod streams;
pub mod trace;

pub use catalog::DynamoCatalog;
pub use connect::{connect, connect_with, Clients, HealthReport};
pub use dynamo::DynamoTable;
pub use env::{config_from_env, EnvError};
pub use error::StoreError;
pub use kinesis::KinesisLog;
pub use redis_head::RedisHead;
pub use s3::S3Archive;
pub use streams::DynamoStream;
