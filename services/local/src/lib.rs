//! carat-local: every carat handler on one machine, playing the part of Lambda's event
//! source mappings and schedules, for development and the end-to-end tests.
//!
//! Module map (data flows config → clients → server and tasks):
//! - [`config`]: the carat config from a TOML file plus `CARAT_*` environment overrides.
//! - [`clients`]: connects once to the Redis cluster, DynamoDB, Kinesis and S3, and tells
//!   whether each answers.
//! - [`health`]: `GET /health`, one entry per dependency; 200 when all are up, 503 otherwise.
//! - [`state`]: what routes and tasks share ([`state::AppState`]: config and clients;
//!   [`state::Shutdown`]), imported downward by every module below.
//! - [`serve`]: `carat local` — the HTTP server on 127.0.0.1:8080 (the router merge point)
//!   and the background tasks (the task list), stopped together on SIGINT/SIGTERM.
//! - [`poller`]: per-shard Kinesis pollers running the writer (the event source mapping's
//!   part: batch size, batching window, checkpoints under `.run/`, batch item failures).
//! - [`schedule`]: the flusher every `flusher.interval_secs`.
//! - [`archive`]: the archive's local machinery — the TTL sweeper (the stand-in never
//!   expires items) and the DynamoDB-stream poller that marks TTL removals and hands them
//!   to a [`archive::StreamHandler`] (the archiver) as its event source mapping would.
//! - [`probe`]: the end-to-end probe (`carat_probe`) every `probe.interval_secs` against
//!   the local listener; its last result is shown in `/health`.
//! - [`replay`]: `carat replay` — the backup writer from TRIM_HORIZON / AT_TIMESTAMP.
//! - [`cli`]: the client commands `carat put`, `query`, `series`, `bench` (over HTTP,
//!   to any carat).
//! - [`error`]: what can stop carat-local ([`LocalError`]).

pub mod archive;
pub mod cli;
pub mod clients;
pub mod config;
pub mod error;
pub mod health;
pub mod poller;
pub mod probe;
pub mod replay;
pub mod schedule;
pub mod serve;
pub mod state;

pub use error::LocalError;
