//! Flushing one window: head ⇒ merged points ⇒ raw chunk item + rollup item ⇒ table.
//!
//! Shared by the writer (threshold and window-close triggers) and the flusher (quiet
//! series). The items are a pure function of the set of head entries, so any number
//! of flushes of the same window — early, late, replayed — converge on the same bytes.

use carat_core::{chunk, head, Config, Point, SeriesKey};
use carat_store::ports::{Head, WindowItem, WindowRef, WindowTable};

use crate::error::WriterError;
use crate::rollup;

/// DynamoDB resolution suffix of raw chunks.
pub const RAW: &str = "raw";
/// DynamoDB resolution suffix of the rollup item.
pub const AGG: &str = "agg";

/// What a flush did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flushed {
    /// Points in the written raw chunk (0: the head held nothing, nothing written).
    pub points: usize,
    /// Whether the window's dirty mark was cleared (closed and unchanged since read).
    pub settled: bool,
}

/// The two items of a window holding `points` (merged: sorted, one per time): the raw
/// chunk and the rollups.
#[must_use]
pub fn window_items(
    cfg: &Config,
    key: &SeriesKey,
    start: i64,
    points: &[Point],
) -> [WindowItem; 2] {
    let end = start + cfg.window.raw_secs;
    let count = u32::try_from(points.len()).unwrap_or(u32::MAX);
    [
        WindowItem {
            pk: key.table_pk(RAW),
            sk: start,
            version: chunk::VERSION,
            body: chunk::encode(points),
            count,
            expires_at: end + cfg.retention.raw_secs,
        },
        WindowItem {
            pk: key.table_pk(AGG),
            sk: start,
            version: rollup::VERSION,
            body: rollup::encode(&rollup::compute(points)),
            count,
            expires_at: end + cfg.retention.rollup_secs,
        },
    ]
}

/// The points of a window from its head bytes.
///
/// # Errors
/// [`WriterError::CorruptHead`] if the bytes are not whole entries.
pub fn merged_points(window: &WindowRef, bytes: &[u8]) -> Result<Vec<Point>, WriterError> {
    let entries = head::entries(bytes).map_err(|source| WriterError::CorruptHead {
        window: format!("{}@{}", window.key, window.start),
        source,
    })?;
    Ok(head::merge(window.start, &entries))
}

/// Flushes `window` at time `now` (epoch seconds): reads its head, writes both items,
/// and clears its dirty mark if the window is closed (`now ≥ flush_due`). An early
/// flush (point threshold) keeps the mark, so the window is flushed again once closed.
///
/// # Errors
/// Store errors (retryable or not) and a corrupt head.
pub async fn flush_window(
    cfg: &Config,
    head: &dyn Head,
    table: &dyn WindowTable,
    window: &WindowRef,
    now: i64,
) -> Result<Flushed, WriterError> {
    let bytes = head.read(window).await?;
    let closed = now >= cfg.flush_due(window.start);
    if bytes.is_empty() {
        // The head forgot the window (expired, or lost and not yet replayed): the item
        // already in the table is the best there is; never overwrite it with nothing.
        let settled = closed && head.settle(window, 0).await?;
        return Ok(Flushed { points: 0, settled });
    }
    let points = merged_points(window, &bytes)?;
    let items = window_items(cfg, &window.key, window.start, &points);
    table.put(&items).await?;
    let settled = closed && head.settle(window, bytes.len()).await?;
    tracing::debug!(window = %window.key, start = window.start, points = points.len(), settled, "flushed");
    Ok(Flushed {
        points: points.len(),
        settled,
    })
}
