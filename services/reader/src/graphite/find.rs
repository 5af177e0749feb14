//! `/metrics/find` and `/metrics/expand` over the catalog. Series names are dotted
//! paths, so a query of N segments names the nodes made of the first N segments of
//! the names it matches: a leaf if a series has exactly that name, a branch if
//! longer names continue under it (a node can be both).

use std::collections::BTreeMap;

use carat_api::AppError;
use carat_core::Tenant;
use carat_store::ports::Catalog;

use crate::pattern::Pattern;
use crate::range::param;
use crate::routes::{group_of_prefix, store_error};

/// A node: its path and whether it is a leaf, a branch, or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kind {
    pub leaf: bool,
    pub branch: bool,
}

/// The segments of a query, split at dots outside `{…}` and `[…]`.
fn segments(query: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut from) = (0_i32, 0);
    for (i, b) in query.bytes().enumerate() {
        match b {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            b'.' if depth <= 0 => {
                out.push(&query[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    out.push(&query[from..]);
    out
}

/// The nodes `query` names, by path, scanning at most `limit` series (more: 413).
///
/// # Errors
/// 400 for a malformed query, 413 past `limit`, a store failure.
pub async fn nodes(
    catalog: &dyn Catalog,
    tenant: &Tenant,
    query: &str,
    limit: usize,
) -> Result<BTreeMap<String, Kind>, AppError> {
    let pattern =
        Pattern::parse(query).map_err(|e| param("query", format!("query {query:?}: {e}")))?;
    let n = segments(query).len();
    let prefix = pattern.literal_prefix();
    let groups = match group_of_prefix(prefix) {
        Some(g) => vec![g.to_string()],
        None => catalog
            .groups(tenant, prefix, limit + 1)
            .await
            .map_err(store_error)?,
    };
    let too_many = || AppError::TooManySeries {
        pattern: query.to_string(),
        limit,
    };
    if groups.len() > limit {
        return Err(too_many());
    }
    let mut out: BTreeMap<String, Kind> = BTreeMap::new();
    for group in groups {
        let gsegs: Vec<&str> = group.split('.').collect();
        if gsegs.len() > n {
            // Every name of the group is longer than the query: its first segments are
            // a branch.
            let node = gsegs[..n].join(".");
            if pattern.matches(&node) {
                out.entry(node).or_default().branch = true;
            }
            continue;
        }
        if gsegs.len() == n {
            if !pattern.matches(&group) {
                continue;
            }
            let entries = catalog
                .series(tenant, &group, &group, 2)
                .await
                .map_err(store_error)?;
            let kind = out.entry(group.clone()).or_default();
            for e in entries {
                let name = e.series.as_str();
                if name == group {
                    kind.leaf = true;
                } else if name.starts_with(group.as_str()) && name[group.len()..].starts_with('.') {
                    kind.branch = true;
                }
            }
            if !kind.leaf && !kind.branch {
                out.remove(&group);
            }
            continue;
        }
        let within = if prefix.starts_with(group.as_str()) {
            prefix
        } else {
            group.as_str()
        };
        let entries = catalog
            .series(tenant, &group, within, limit + 1)
            .await
            .map_err(store_error)?;
        if entries.len() > limit {
            return Err(too_many());
        }
        for e in entries {
            let segs: Vec<&str> = e.series.as_str().split('.').collect();
            if segs.len() < n {
                continue;
            }
            let node = segs[..n].join(".");
            if pattern.matches(&node) {
                let kind = out.entry(node).or_default();
                if segs.len() == n {
                    kind.leaf = true;
                } else {
                    kind.branch = true;
                }
            }
        }
        if out.len() > limit {
            return Err(too_many());
        }
    }
    Ok(out)
}

/// graphite-web's `tree_json`: ids are the query's parent path plus the node's last
/// segment, one entry per distinct last segment and kind, branches first, each sorted.
#[must_use]
pub fn tree_json(
    query: &str,
    nodes: &BTreeMap<String, Kind>,
    leaves_only: bool,
) -> serde_json::Value {
    let base = query
        .rsplit_once('.')
        .map_or(String::new(), |(parent, _)| format!("{parent}."));
    let last = |p: &str| p.rsplit('.').next().unwrap_or(p).to_string();
    let mut branches: BTreeMap<String, ()> = BTreeMap::new();
    let mut leaves: BTreeMap<String, ()> = BTreeMap::new();
    for (path, kind) in nodes {
        if kind.branch && !leaves_only {
            branches.insert(last(path), ());
        }
        if kind.leaf {
            leaves.insert(last(path), ());
        }
    }
    let entry = |name: &String, leaf: bool| {
        let flag = i32::from(!leaf);
        serde_json::json!({
            "text": name,
            "id": format!("{base}{name}"),
            "leaf": i32::from(leaf),
            "expandable": flag,
            "allowChildren": flag,
        })
    };
    serde_json::Value::Array(
        branches
            .keys()
            .map(|n| entry(n, false))
            .chain(leaves.keys().map(|n| entry(n, true)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_ignore_dots_in_alternatives() {
        assert_eq!(segments("a.{b.c,d}.e"), vec!["a", "{b.c,d}", "e"]);
        assert_eq!(segments("*"), vec!["*"]);
    }

    #[test]
    fn tree_json_ids_and_order() {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "a.x.lat".to_string(),
            Kind {
                leaf: true,
                branch: true,
            },
        );
        nodes.insert(
            "a.y.cpu".to_string(),
            Kind {
                leaf: true,
                branch: false,
            },
        );
        nodes.insert(
            "a.x.cpu".to_string(),
            Kind {
                leaf: true,
                branch: false,
            },
        );
        let v = tree_json("a.*.*", &nodes, false);
        let ids: Vec<(&str, i64)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["id"].as_str().unwrap(), e["leaf"].as_i64().unwrap()))
            .collect();
        assert_eq!(ids, vec![("a.*.lat", 0), ("a.*.cpu", 1), ("a.*.lat", 1)]);
    }
}
