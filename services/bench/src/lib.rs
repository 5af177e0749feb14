//! carat-bench: benchmarks of carat's formats, run as `carat-bench codec [DATA_DIR]`.
//!
//! Module map:
//! - [`data`]: loads the shared NAB CloudWatch CSVs and cuts them into chunks the way
//!   carat stores them (one chunk per series and UTC day).
//! - [`peers`]: the codecs carat is compared with: Gorilla (the `tsz` crate) and pco
//!   (the `pco` crate, times and values as two columns per chunk).
//! - [`codec`]: runs every codec over every chunk, checks each decodes bit-exact,
//!   times encode and decode, and prints the markdown tables of docs/BENCHMARKS.md.
//! - [`post`]: the Kinesis record size of a realistic Mackerel post.
//! - [`read`]: the reader's decode + merge per point, beside Gorilla's decode.
//! - [`cost`]: the reference workload's monthly bill from the measured figures
//!   (docs/cost-figures/), beside Timestream for LiveAnalytics; docs/deploy.md's section.
//!
//! Timing lives here only, never in pass/fail tests.

pub mod codec;
pub mod cost;
pub mod data;
pub mod peers;
pub mod post;
pub mod read;
