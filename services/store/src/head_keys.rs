//! The head's key layout and the checks every head applies to an append, shared by
//! the Redis adapter and the in-memory fake (docs/TEAM-NOTES.md, fixed).
//!
//! The head of a window is the string `{b<bucket>}:h:<tenant>:<series>:<window_start>`;
//! the dirty set of a bucket is the ZSET `{b<bucket>}:dirty` with members
//! `<tenant>:<series>:<window_start>`. The catalog markers of a bucket and day are the
//! SET `{b<bucket>}:c:<day>` with members `<tenant>:<series>`. The hash tag `{b<bucket>}`
//! puts every key of a bucket in one slot.

use carat_core::head;
use carat_core::{SeriesKey, SeriesName, Tenant};

use crate::ports::{HeadAppend, WindowRef};
use crate::StoreError;

/// The hash tag of a bucket: every key of the bucket lives in its slot.
#[must_use]
pub fn bucket_tag(bucket: u32) -> String {
    format!("{{b{bucket}}}")
}

/// The Redis key holding a window's head entries.
#[must_use]
pub fn head_key(window: &WindowRef) -> String {
    // Built by hand, not with `format!`: the writer makes one per window per append,
    // and formatting was a tenth of its CPU into Redis (docs/BENCHMARKS.md).
    let (tenant, series) = (window.key.tenant.as_str(), window.key.series.as_str());
    let mut k = String::with_capacity(tenant.len() + series.len() + 40);
    k.push_str("{b");
    k.push_str(itoa::Buffer::new().format(window.bucket));
    k.push_str("}:h:");
    push_member(&mut k, window);
    k
}

/// `<tenant>:<series>:<start>` onto `out`.
fn push_member(out: &mut String, window: &WindowRef) {
    out.push_str(window.key.tenant.as_str());
    out.push(':');
    out.push_str(window.key.series.as_str());
    out.push(':');
    out.push_str(itoa::Buffer::new().format(window.start));
}

/// The Redis key of a bucket's dirty set.
#[must_use]
pub fn dirty_key(bucket: u32) -> String {
    format!("{{b{bucket}}}:dirty")
}

/// The member of a window in its bucket's dirty set.
#[must_use]
pub fn dirty_member(window: &WindowRef) -> String {
    let mut m = String::with_capacity(
        window.key.tenant.as_str().len() + window.key.series.as_str().len() + 22,
    );
    push_member(&mut m, window);
    m
}

/// The Redis key of a bucket's catalog markers for `day` (UTC midnight, epoch seconds).
#[must_use]
pub fn catalog_key(bucket: u32, day: i64) -> String {
    format!("{{b{bucket}}}:c:{day}")
}

/// The member of a series in its bucket's catalog marker set.
#[must_use]
pub fn catalog_member(key: &SeriesKey) -> String {
    format!("{}:{}", key.tenant, key.series)
}

/// Parses a dirty-set member back into a window of `bucket`. Tenants and series
/// names cannot contain `:`, so the split is unambiguous; `None` for anything that
/// is not a member carat wrote.
#[must_use]
pub fn parse_dirty_member(bucket: u32, member: &[u8]) -> Option<WindowRef> {
    let s = std::str::from_utf8(member).ok()?;
    let (tenant, rest) = s.split_once(':')?;
    let (series, start) = rest.rsplit_once(':')?;
    Some(WindowRef {
        bucket,
        key: SeriesKey::new(
            Tenant::parse(tenant).ok()?,
            SeriesName::parse(series, "series").ok()?,
        ),
        start: start.parse().ok()?,
    })
}

/// Checks what the Redis adapter also refuses: a window of another bucket (its key
/// would be in another slot) or a block that is not one (empty, unknown kind, no
/// points). Returns each block's point count.
pub fn check_appends(
    service: &'static str,
    bucket: u32,
    appends: &[HeadAppend],
) -> Result<Vec<usize>, StoreError> {
    let mut points = Vec::with_capacity(appends.len());
    for (i, a) in appends.iter().enumerate() {
        if a.window.bucket != bucket {
            return Err(StoreError::fatal(
                service,
                "append",
                format!(
                    "append {i}: window {} is in bucket {}, not {bucket}",
                    a.window.key, a.window.bucket
                ),
            ));
        }
        match head::block_points(&a.block) {
            Ok(n) if n > 0 => points.push(n),
            Ok(_) => {
                return Err(StoreError::fatal(
                    service,
                    "append",
                    format!("append {i}: an empty block"),
                ))
            }
            Err(e) => {
                return Err(StoreError::fatal(
                    service,
                    "append",
                    format!("append {i}: not a head block: {e}"),
                ))
            }
        }
    }
    Ok(points)
}

/// A fresh nonce for the header of a head key this append may create: random, so a
/// key that was lost and created again never has the identity it had (`Head::settle`).
#[must_use]
pub fn nonce() -> u64 {
    rand::random()
}
