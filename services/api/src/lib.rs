//! carat-api: the ingest API. An axum [`router`] that runs as a Lambda (`src/main.rs`,
//! through `lambda_http`) and inside carat-local. Routes and errors: docs/api.md.
//!
//! Module map, in the order a request flows through it:
//! - [`request_id`]: the outermost layer: a request id for every answer, and the log
//!   line of every error (its full cause, which the body never carries).
//! - [`auth`]: API keys (SHA-256 hashes with tenant and scopes), `X-Api-Key` /
//!   `Authorization: Bearer`, 401/403. Runs before the body is read.
//! - [`keys`]: the key store the routes check against, reloaded from its source
//!   (Secrets Manager, the keys file) at most every `refresh_secs`.
//! - [`ingest`]: the routes and the handler flow: read the body (413 over the limit),
//!   parse it whole, validate every point, then produce; answer only after the log
//!   acknowledged every record.
//! - [`body`]: the JSON bodies (Mackerel host/service, native), errors naming index and field.
//! - [`remote_write`]: Prometheus remote_write (snappy + protobuf), label set → series
//!   name; values kept bit-exact, unstorable samples dropped and counted.
//! - [`prompb`]: the Prometheus remote storage messages (remote_write's and
//!   remote_read's, the reader's route) and their snappy (block format) bodies.
//! - [`labels`]: which remote_write label sets this process sent lately (a labels record
//!   per series at most hourly, for the writer's catalog).
//! - [`produce`]: validated points → per-series dedupe → buckets → packed records
//!   (`carat_core::record`) with partition key `b<bucket>`.
//! - [`error`]: [`AppError`], the one error enum, and its JSON response.
//! - [`clock`]: the injected [`Clock`] (re-exported from `carat_core::clock`).

pub mod auth;
pub mod body;
pub mod error;
pub mod ingest;
pub mod keys;
pub mod labels;
pub mod produce;
pub mod prompb;
pub mod remote_write;
pub mod request_id;

pub use auth::{KeyStore, Scope};
pub use carat_core::clock;
pub use clock::{Clock, FixedClock, SystemClock};
pub use error::AppError;
pub use ingest::{router, AppState};
pub use keys::{KeySource, Keys};
