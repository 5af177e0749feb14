//! carat-archiver: TTL-expired DynamoDB windows into S3, compacted, and read back
//! (docs/formats.md, "Archive").
//!
//! Module map, in the order an expired window flows through it:
//! - [`image`]: which stream records are TTL removals, and their `OldImage` as a
//!   `WindowItem` (and the reverse, for carat-local and fixtures).
//! - [`handler`]: the stream handler ([`Archiver`]): a batch ⇒ one staged object per
//!   tenant-day, its key derived from its bytes (replays rewrite the same objects).
//! - [`format`]: the archive object format v1 (blocks sorted by series + an index at
//!   the end), shared by staged, day and month objects. Pure, never panics.
//! - [`keys`]: the S3 key layout and the UTC day/month arithmetic.
//! - [`assemble`]: a series' archived items ⇒ its windows (parts joined, copies merged
//!   with the flush's join, so any split and any replay give the same windows).
//! - [`compact`]: day compaction (staged ⇒ day object), month compaction (day objects
//!   ⇒ 1 h / 1 d rollups), [`compact::find_due`] and one scheduled [`compact::run`].
//! - [`read`]: [`ArchiveReader`], the read API the reader calls: raw windows and rollups.
//! - [`dispatch`]: one Lambda for both event shapes (stream batch, schedule).
//! - [`error`]: [`ArchiverError`] and its retryable/not split.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod assemble;
pub mod compact;
pub mod dispatch;
pub mod error;
pub mod format;
pub mod handler;
pub mod image;
pub mod keys;
pub mod read;

pub use error::ArchiverError;
pub use handler::{Archiver, BatchReport};
pub use read::{ArchiveReader, ArchivedWindow};
