//! Archived items of one series ⇒ its windows: parts joined, chunks decoded, the copies
//! of one window (a staged copy, the compacted copy, a later version) merged.
//!
//! The items of one series may come from several objects and overlap. Items are grouped
//! by (content hash, parts): a group whose `parts` items are all there, at consecutive
//! sort keys, is one stored version of a window starting at the smallest of them; it
//! decodes through the writer's own [`carat_writer::flush::stored_window`]. Versions of
//! one window are merged with [`carat_core::head::merge_stored`] (the greater (stamp,
//! value bits) per time wins): a join, so the result does not depend on how the items
//! were split across objects, nor on how often one was archived. A group with parts
//! missing (its siblings were deleted by TTL later, in another batch) is kept as it is
//! until they arrive.

use std::collections::{BTreeMap, BTreeSet};

use carat_core::chunk;
use carat_core::head::{merge_stored, Stamped};
use carat_core::SeriesKey;
use carat_store::ports::{WindowItem, WindowRef};
use carat_writer::flush::{content_hash, stored_window, RAW};

use crate::format::Part;

/// One window, merged across its archived copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// One per time, ascending.
    pub points: Vec<Stamped>,
    /// The latest expiry among its copies.
    pub expires_at: i64,
    /// Hashes of the split versions (parts > 1) merged into it, ascending.
    pub absorbed: Vec<Vec<u8>>,
}

/// What [`assemble`] made of a series' items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assembled {
    /// By window start.
    pub windows: BTreeMap<i64, Window>,
    /// Items whose window is incomplete, or whose chunk does not decode: kept as they are.
    pub leftovers: Vec<Part>,
    /// Why complete groups did not decode (window start, reason), for logs.
    pub corrupt: Vec<(i64, String)>,
}

/// Joins, decodes and merges the items of the series `key`.
#[must_use]
pub fn assemble(key: &SeriesKey, mut parts: Vec<Part>) -> Assembled {
    parts.sort();
    parts.dedup();
    // Split versions already merged into a compacted window: their stray parts are
    // included already.
    let mut absorbed: BTreeSet<Vec<u8>> = parts
        .iter()
        .flat_map(|p| p.absorbed.iter().cloned())
        .collect();
    // (hash, parts, sk if hash is empty): items written before hashes existed are
    // whole windows of one item each.
    let mut groups: BTreeMap<(Vec<u8>, u32, i64), Vec<Part>> = BTreeMap::new();
    for p in parts {
        let sk = if p.hash.is_empty() { p.sk } else { 0 };
        groups
            .entry((p.hash.clone(), p.parts, sk))
            .or_default()
            .push(p);
    }
    let mut out = Assembled::default();
    let mut incomplete: Vec<Part> = Vec::new();
    for ((hash, n, _), mut group) in groups {
        group.dedup_by_key(|p| p.sk);
        let start = group[0].sk;
        let complete = group.len() == n as usize
            && group
                .iter()
                .zip(0i64..)
                .all(|(p, i)| Some(p.sk) == start.checked_add(i));
        if !complete {
            incomplete.extend(group);
            continue;
        }
        let items: Vec<WindowItem> = group
            .iter()
            .map(|p| WindowItem {
                pk: key.table_pk(RAW),
                sk: p.sk,
                version: p.version,
                body: p.body.clone(),
                count: p.count,
                expires_at: p.expires_at,
                parts: p.parts,
                hash: p.hash.clone(),
            })
            .collect();
        let window = WindowRef {
            bucket: 0,
            key: key.clone(),
            start,
        };
        match stored_window(&window, &items) {
            Ok(Some(stored)) => {
                let expires_at = group.iter().map(|p| p.expires_at).max().unwrap_or(0);
                let mut carried: BTreeSet<Vec<u8>> = group
                    .iter()
                    .flat_map(|p| p.absorbed.iter().cloned())
                    .collect();
                if n > 1 && !hash.is_empty() {
                    carried.insert(hash.clone());
                    absorbed.insert(hash);
                }
                out.windows
                    .entry(start)
                    .and_modify(|w| {
                        w.points = merge_stored(&w.points, &stored.points);
                        w.expires_at = w.expires_at.max(expires_at);
                        carried.extend(std::mem::take(&mut w.absorbed));
                        w.absorbed = std::mem::take(&mut carried).into_iter().collect();
                    })
                    .or_insert_with(|| Window {
                        points: stored.points,
                        expires_at,
                        absorbed: std::mem::take(&mut carried).into_iter().collect(),
                    });
            }
            Ok(None) => {}
            Err(e) => {
                out.corrupt.push((start, e.to_string()));
                out.leftovers.extend(group);
            }
        }
    }
    out.leftovers.extend(
        incomplete
            .into_iter()
            .filter(|p| p.parts <= 1 || !absorbed.contains(&p.hash)),
    );
    out.leftovers.sort();
    out
}

/// The item a compacted object stores for a merged window: the whole chunk v2 in one
/// part (S3 has no item size limit), its hash as the writer computes it.
#[must_use]
pub fn window_part(start: i64, window: &Window) -> Part {
    let pts: Vec<carat_core::Point> = window.points.iter().map(Stamped::point).collect();
    let stamps: Vec<i64> = window.points.iter().map(|p| p.stamp).collect();
    let body = chunk::encode_stamped(&pts, &stamps);
    Part {
        sk: start,
        hash: content_hash(&body),
        body,
        version: chunk::VERSION_STAMPED,
        parts: 1,
        count: u32::try_from(window.points.len()).unwrap_or(u32::MAX),
        expires_at: window.expires_at,
        absorbed: window.absorbed.clone(),
    }
}

/// The compacted form of `assembled`: one part per window, then the leftovers.
#[must_use]
pub fn compacted_parts(assembled: &Assembled) -> Vec<Part> {
    let mut parts: Vec<Part> = assembled
        .windows
        .iter()
        .filter(|(_, w)| !w.points.is_empty())
        .map(|(&start, w)| window_part(start, w))
        .collect();
    parts.extend(assembled.leftovers.iter().cloned());
    parts
}

/// A window item as the archive keeps it.
#[must_use]
pub fn part_of(item: &WindowItem) -> Part {
    Part {
        sk: item.sk,
        hash: item.hash.clone(),
        body: item.body.clone(),
        version: item.version,
        parts: item.parts,
        count: item.count,
        expires_at: item.expires_at,
        absorbed: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carat_core::{SeriesName, Tenant};

    fn key() -> SeriesKey {
        SeriesKey::new(
            Tenant::default_tenant(),
            SeriesName::parse("a.b", "name").unwrap(),
        )
    }

    fn st(time: i64, value: f64, stamp: i64) -> Stamped {
        Stamped {
            time,
            value_bits: value.to_bits(),
            stamp,
        }
    }

    /// A window's chunk split into `n` parts (any split is valid; the writer splits at
    /// WINDOW_PART_BYTES, which tests cannot afford).
    fn split(start: i64, points: &[Stamped], n: usize) -> Vec<Part> {
        let whole = window_part(
            start,
            &Window {
                points: points.to_vec(),
                expires_at: 99,
                absorbed: Vec::new(),
            },
        );
        let size = whole.body.len().div_ceil(n);
        whole
            .body
            .chunks(size.max(1))
            .zip(0i64..)
            .map(|(b, i)| Part {
                sk: start + i,
                body: b.to_vec(),
                parts: u32::try_from(n).unwrap(),
                ..whole.clone()
            })
            .collect()
    }

    #[test]
    fn parts_join_and_copies_merge() {
        let v1 = vec![st(100, 1.0, 5), st(160, 2.0, 5)];
        let v2 = vec![st(160, 3.0, 9), st(220, 4.0, 9)];
        let mut parts = split(100, &v1, 3);
        parts.extend(split(100, &v2, 1));
        parts.extend(split(100, &v1, 1)); // the same window compacted already
        let a = assemble(&key(), parts);
        assert!(a.leftovers.is_empty() && a.corrupt.is_empty());
        assert_eq!(
            a.windows[&100].points,
            vec![st(100, 1.0, 5), st(160, 3.0, 9), st(220, 4.0, 9)]
        );
    }

    #[test]
    fn incomplete_windows_wait_for_their_parts() {
        let pts = vec![st(100, 1.0, 5), st(160, 2.0, 5)];
        let mut parts = split(100, &pts, 2);
        let last = parts.pop().unwrap();
        let a = assemble(&key(), parts.clone());
        assert!(a.windows.is_empty());
        assert_eq!(a.leftovers, parts);
        // Carried as leftovers, completed later.
        let mut later = compacted_parts(&a);
        later.push(last);
        let b = assemble(&key(), later);
        assert_eq!(b.windows[&100].points, pts);
        assert!(b.leftovers.is_empty());
    }

    #[test]
    fn undecodable_windows_are_kept_and_reported() {
        let bad = Part {
            sk: 100,
            hash: vec![1; 16],
            body: vec![2, 0xff, 0xff],
            version: 2,
            parts: 1,
            count: 1,
            expires_at: 0,
            absorbed: Vec::new(),
        };
        let a = assemble(&key(), vec![bad.clone()]);
        assert!(a.windows.is_empty());
        assert_eq!(a.leftovers, vec![bad]);
        assert_eq!(a.corrupt.len(), 1);
    }
}
