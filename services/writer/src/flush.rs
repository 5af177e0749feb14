//! Flushing one window: head ⇒ stamped points ⇒ merged with what the table stores ⇒
//! conditional write of the window's item(s) ⇒ settle.
//!
//! Shared by the writer (threshold and window-close triggers) and the flusher (quiet
//! series). The flush invariant (docs/write-path.md): a flush may only make a stored
//! window gain points or take values with a newer ingest stamp. So a flush never
//! writes the head alone: it reads the stored window (strongly consistent), merges the
//! head into it point by point ([`carat_core::head::merge_stored`]: the greater
//! (stamp, value bits) wins), and writes the result only if the stored window is still
//! the one it read (the item's content hash, [`WindowTable::write_window`]). If another
//! flush wrote first, it reads and merges again. Whatever the head lost, whatever ran
//! concurrently and in whatever order, every write is a merge of everything written
//! before it, and the stored bytes are a pure function of the set of entries ever
//! merged: replays converge on the same bytes.

use carat_core::chunk;
use carat_core::head::{self, Stamped};
use carat_core::{Config, SeriesKey};
use carat_store::ports::{
    Head, WindowItem, WindowRef, WindowTable, Written, MAX_WINDOW_PARTS, WINDOW_PART_BYTES,
};
use sha2::{Digest, Sha256};

use crate::error::WriterError;

/// DynamoDB resolution suffix of raw chunks.
pub const RAW: &str = "raw";

/// Read–merge–write rounds a flush tries before it reports contention (retryable).
/// Each conflict means another flush of the same window succeeded, so rounds are rare
/// and short; 8 covers the writer, the flusher and a replay all flushing at once.
pub const MAX_MERGE_ROUNDS: usize = 8;

/// Bytes of the content hash: 128 bits of SHA-256 make an accidental match between
/// two versions of a window (which would let a stale write through) negligible.
pub const HASH_BYTES: usize = 16;

/// What a flush did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flushed {
    /// Points of the window as stored after the flush (0: the head held nothing).
    pub points: usize,
    /// Whether the flush wrote (false: the table already held everything the head had).
    pub wrote: bool,
    /// Whether the window's dirty mark was cleared (closed and unchanged since read).
    pub settled: bool,
}

/// A window as the table stores it, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWindow {
    /// One per time, ascending. Points of a version 1 chunk (no stamps) have the stamp
    /// `i64::MIN`: any write replaces them.
    pub points: Vec<Stamped>,
    /// What a conditional write must find to replace this window.
    pub hash: Vec<u8>,
    /// Sort keys of every item read (parts, and leftovers of a larger version).
    pub sks: Vec<i64>,
    /// Whether the stored bytes are exactly what this build would write for `points`.
    pub current: bool,
}

/// The content hash of a chunk.
#[must_use]
pub fn content_hash(body: &[u8]) -> Vec<u8> {
    Sha256::digest(body)[..HASH_BYTES].to_vec()
}

/// The items of a window holding `points` (merged: sorted, one per time): one item, or
/// parts of at most [`WINDOW_PART_BYTES`] each for a chunk larger than one item.
///
/// # Errors
/// [`WriterError::WindowTooLarge`] if the chunk needs more than [`MAX_WINDOW_PARTS`].
pub fn window_items(
    cfg: &Config,
    key: &SeriesKey,
    start: i64,
    points: &[Stamped],
) -> Result<Vec<WindowItem>, WriterError> {
    let pts: Vec<carat_core::Point> = points.iter().map(Stamped::point).collect();
    let stamps: Vec<i64> = points.iter().map(|p| p.stamp).collect();
    let body = chunk::encode_stamped(&pts, &stamps);
    let hash = content_hash(&body);
    let slices: Vec<&[u8]> = body.chunks(WINDOW_PART_BYTES).collect();
    if slices.len() > MAX_WINDOW_PARTS {
        return Err(WriterError::WindowTooLarge {
            window: format!("{key}@{start}"),
            bytes: body.len(),
            limit: MAX_WINDOW_PARTS * WINDOW_PART_BYTES,
        });
    }
    let count = u32::try_from(points.len()).unwrap_or(u32::MAX);
    let parts = u32::try_from(slices.len()).expect("at most MAX_WINDOW_PARTS");
    let end = start.saturating_add(cfg.window.raw_secs);
    Ok(slices
        .iter()
        .zip(0i64..)
        .map(|(slice, i)| WindowItem {
            pk: key.table_pk(RAW),
            sk: start + i,
            version: chunk::VERSION_STAMPED,
            body: slice.to_vec(),
            count,
            expires_at: end.saturating_add(cfg.retention.raw_secs),
            parts,
            hash: hash.clone(),
        })
        .collect())
}

/// Decodes the items [`WindowTable::read_window`] returned for `window`.
///
/// # Errors
/// [`WriterError::CorruptItem`] if the parts are incomplete or do not decode.
pub fn stored_window(
    window: &WindowRef,
    items: &[WindowItem],
) -> Result<Option<StoredWindow>, WriterError> {
    let corrupt = |reason: String| WriterError::CorruptItem {
        window: format!("{}@{}", window.key, window.start),
        reason,
    };
    let Some(main) = items.first() else {
        return Ok(None);
    };
    if main.sk != window.start {
        return Err(corrupt(format!(
            "part at sk {} without the first part at {}",
            main.sk, window.start
        )));
    }
    let parts = usize::try_from(main.parts).unwrap_or(usize::MAX);
    if parts == 0 || parts > MAX_WINDOW_PARTS || items.len() < parts {
        return Err(corrupt(format!(
            "{} of {} parts present",
            items.len(),
            main.parts
        )));
    }
    let mut body = Vec::with_capacity(parts * WINDOW_PART_BYTES.min(main.body.len().max(1)));
    for (i, part) in items[..parts].iter().enumerate() {
        if part.sk != window.start + i as i64 || part.hash != main.hash {
            return Err(corrupt(format!(
                "part {i} (sk {}) does not belong to the first part",
                part.sk
            )));
        }
        body.extend_from_slice(&part.body);
    }
    let (pts, stamps) = chunk::decode_stamped(&body).map_err(|e| corrupt(e.to_string()))?;
    let current = stamps.is_some() && main.hash == content_hash(&body);
    let stamps = stamps.unwrap_or_else(|| vec![i64::MIN; pts.len()]);
    let mut points: Vec<Stamped> = pts
        .iter()
        .zip(&stamps)
        .map(|(p, &stamp)| Stamped {
            time: p.time,
            value_bits: p.value.to_bits(),
            stamp,
        })
        .collect();
    // Chunks this build writes are sorted with one point per time; keep that true for
    // anything else that was stored (the latest stamp of a time wins, as everywhere).
    if points.windows(2).any(|w| w[0].time >= w[1].time) {
        points = head::latest_per_time(points);
    }
    Ok(Some(StoredWindow {
        points,
        hash: main.hash.clone(),
        sks: items.iter().map(|i| i.sk).collect(),
        current,
    }))
}

/// The stamped points of a window from its head bytes (v1 or v2): one per time, sorted,
/// the latest stamp winning.
///
/// # Errors
/// [`WriterError::CorruptHead`] if the bytes are not a head.
pub fn head_points(window: &WindowRef, bytes: &[u8]) -> Result<Vec<Stamped>, WriterError> {
    head::head_points(window.start, bytes).map_err(|source| WriterError::CorruptHead {
        window: format!("{}@{}", window.key, window.start),
        source,
    })
}

/// Merges `fresh` (sorted, one per time) into the stored window: read, merge,
/// conditional write, again on conflict. Returns the stored point count and whether it
/// wrote.
///
/// # Errors
/// Store errors; [`WriterError::Contended`] (retryable) after [`MAX_MERGE_ROUNDS`]
/// conflicts; corrupt or oversize windows (not retryable).
pub async fn merge_into_table(
    cfg: &Config,
    table: &dyn WindowTable,
    window: &WindowRef,
    fresh: &[Stamped],
) -> Result<(usize, bool), WriterError> {
    let pk = window.key.table_pk(RAW);
    for round in 0..MAX_MERGE_ROUNDS {
        let items = table.read_window(&pk, window.start).await?;
        let stored = stored_window(window, &items)?;
        let merged = match &stored {
            Some(s) => head::merge_stored(&s.points, fresh),
            None => fresh.to_vec(),
        };
        if let Some(s) = &stored {
            if s.current && s.points == merged {
                return Ok((merged.len(), false));
            }
        }
        let parts = window_items(cfg, &window.key, window.start, &merged)?;
        let stale: Vec<i64> = stored
            .as_ref()
            .map(|s| {
                s.sks
                    .iter()
                    .copied()
                    .filter(|&sk| sk >= window.start + parts.len() as i64)
                    .collect()
            })
            .unwrap_or_default();
        let expected = stored.as_ref().map(|s| s.hash.as_slice());
        match table.write_window(&parts, expected, &stale).await? {
            Written::Stored => return Ok((merged.len(), true)),
            Written::Conflict => {
                tracing::debug!(window = %window.key, start = window.start, round, "flush conflict; merging again");
            }
        }
    }
    Err(WriterError::Contended {
        window: format!("{}@{}", window.key, window.start),
        rounds: MAX_MERGE_ROUNDS,
    })
}

/// Flushes `window` at time `now` (epoch seconds): reads its head, merges it into the
/// stored window, and clears its dirty mark if the window is closed
/// (`now ≥ flush_due`). An early flush (point threshold) keeps the mark, so the window
/// is flushed again once closed.
///
/// # Errors
/// Store errors (retryable or not), a corrupt head or item, an oversize window.
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
        // The head forgot the window (expired, or lost and not yet replayed): what the
        // table holds is the best there is, and there is nothing to add to it.
        let settled = closed && head.settle(window, &bytes).await?;
        return Ok(Flushed {
            points: 0,
            wrote: false,
            settled,
        });
    }
    let fresh = head_points(window, &bytes)?;
    let (points, wrote) = merge_into_table(cfg, table, window, &fresh).await?;
    let settled = closed && head.settle(window, &bytes).await?;
    tracing::debug!(window = %window.key, start = window.start, points, wrote, settled, "flushed");
    Ok(Flushed {
        points,
        wrote,
        settled,
    })
}
