//! carat-core: the pure heart of carat. No I/O, no AWS, no tokio.
//!
//! Module map, in the order data flows through the write path:
//! - [`series`]: tenants, series names, the Mackerel host/service mapping, the
//!   storage keys derived from them and the hash bucket that picks a Kinesis shard.
//! - [`point`]: a point (time, value) and the all-or-nothing validation of a request
//!   (charset, length, finite values, `max_lateness`, `max_skew`), errors naming index and field.
//! - [`record`]: the Kinesis record format v1: many series of one bucket, packed and compressed;
//!   [`record::labels`]: the labels record (Prometheus label sets, for the catalog).
//! - [`window`]: UTC-aligned windows, pure functions of (length, time).
//! - [`head`]: what the writer appends to the Redis head (format v2: a header and one
//!   block per append; v1 16-byte entries still read), and the deterministic merge
//!   (latest ingest stamp wins) that makes replays idempotent.
//! - [`chunk`]: the chunk format v1 stored in DynamoDB and S3 (delta-of-delta times,
//!   decimal-aware values, XOR fallback), bit-exact for every f64.
//! - [`catalog`]: the series catalog's groups (`host.<hostId>`, `service.<service>`, a
//!   name's first segment), days, and the labels a plain name implies.
//! - [`config`]: every tunable, with why it has the value it has.
//! - [`clock`]: injected time ([`clock::Clock`], the system clock, fixed and manual
//!   clocks for tests), shared by the API, the writer and the flusher.
//! - [`error`]: one error enum per concern.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod catalog;
pub mod chunk;
pub mod clock;
pub mod config;
pub mod error;
pub mod head;
pub mod point;
pub mod record;
pub mod series;
pub mod window;

pub use config::Config;
pub use error::{ChunkError, ConfigError, RecordError, ValidationError};
pub use point::Point;
pub use series::{SeriesKey, SeriesName, Tenant};
