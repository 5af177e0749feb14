//! The series catalog's pure parts: which group a series is listed under, the UTC day
//! the writer records it on, and the labels a plain (Mackerel, native) name implies.
//!
//! The catalog (`carat_store::ports::Catalog`) lists series per group, so that "every
//! metric of host X" or "every series of metric M" is one query of one partition:
//! - `host.<hostId>.<metric>` ⇒ `host.<hostId>` (a Mackerel host metric),
//! - `service.<service>.<metric>` ⇒ `service.<service>` (a Mackerel service metric),
//! - any other name ⇒ its first dotted segment (a Prometheus series `up.job.node` ⇒
//!   `up`, its metric name), and a name with no dot is its own group.
//!
//! A group is always a non-empty prefix of the name that ends where a segment ends
//! (before a `.` or at the end of the name), so `series(group, prefix)` can list a
//! group by key prefix.

use crate::series::SeriesName;

/// Seconds of a UTC day.
pub const DAY_SECS: i64 = 86_400;

/// The group `name` is listed under (see the module docs).
#[must_use]
pub fn group_of(name: &str) -> &str {
    for prefix in ["host.", "service."] {
        if let Some(rest) = name.strip_prefix(prefix) {
            // The owner (host id, service) must be non-empty and followed by a metric.
            if let Some(dot) = rest.find('.') {
                if dot > 0 && dot + 1 < rest.len() {
                    return &name[..prefix.len() + dot];
                }
            }
        }
    }
    match name.find('.') {
        // `.x`: no first segment to speak of; the name is its own group (a group
        // is never empty: it is part of a DynamoDB key).
        Some(0) | None => name,
        Some(dot) => &name[..dot],
    }
}

/// Start (epoch seconds, UTC midnight) of the day holding `t`; total on i64.
#[must_use]
pub fn day_of(t: i64) -> i64 {
    t.div_euclid(DAY_SECS).saturating_mul(DAY_SECS)
}

/// The kind of owner a Mackerel name belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Host,
    Service,
}

/// The parts of a Mackerel name: `host.<hostId>.<metric>` or
/// `service.<service>.<metric>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MackerelName<'a> {
    pub owner: Owner,
    /// The host id or the service name.
    pub id: &'a str,
    /// The Mackerel metric name (may contain dots: `cpu.user.percentage`).
    pub metric: &'a str,
}

/// The Mackerel parts of `name`, if it is a host or service metric. Agrees with
/// [`group_of`]: the group of such a name is `host.<id>` / `service.<id>`.
#[must_use]
pub fn mackerel_parts(name: &str) -> Option<MackerelName<'_>> {
    let group = group_of(name);
    let (owner, id) = if let Some(id) = group.strip_prefix("host.") {
        (Owner::Host, id)
    } else if let Some(id) = group.strip_prefix("service.") {
        (Owner::Service, id)
    } else {
        return None;
    };
    let metric = name.get(group.len() + 1..)?;
    Some(MackerelName { owner, id, metric })
}

/// The labels a plain name implies, for a catalog entry recorded without labels:
/// `host.<hostId>.<metric>` ⇒ `{hostId, name}`, `service.<service>.<metric>` ⇒
/// `{service, name}`, anything else ⇒ `{__name__: <name>}`. Sorted by label name.
#[must_use]
pub fn implied_labels(name: &SeriesName) -> Vec<(String, String)> {
    let name = name.as_str();
    match mackerel_parts(name) {
        Some(m) => {
            let owner = match m.owner {
                Owner::Host => "hostId",
                Owner::Service => "service",
            };
            let mut v = vec![
                (owner.to_string(), m.id.to_string()),
                ("name".to_string(), m.metric.to_string()),
            ];
            v.sort();
            v
        }
        None => vec![("__name__".to_string(), name.to_string())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn groups_of_known_shapes() {
        for (name, group) in [
            ("host.3Ab9.cpu.user.percentage", "host.3Ab9"),
            ("host.3Ab9.loadavg1", "host.3Ab9"),
            ("service.web.latency.p99", "service.web"),
            ("http_requests_total.job.api.le.0.5", "http_requests_total"),
            ("up", "up"),
            ("host.noservice", "host"),
            ("host..x", "host"),
            ("host.h1.", "host"),
            ("service.web", "service"),
            (".x.y", ".x.y"),
            ("a.", "a"),
        ] {
            assert_eq!(group_of(name), group, "{name}");
        }
    }

    #[test]
    fn days_are_utc_midnights() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(86_399), 0);
        assert_eq!(day_of(86_400), 86_400);
        assert_eq!(day_of(-1), -86_400);
        assert_eq!(day_of(1_700_000_000), 1_699_920_000);
        let _ = day_of(i64::MIN);
        let _ = day_of(i64::MAX);
    }

    #[test]
    fn mackerel_names_split_and_imply_labels() {
        let m = mackerel_parts("host.3Ab9.cpu.user").unwrap();
        assert_eq!((m.owner, m.id, m.metric), (Owner::Host, "3Ab9", "cpu.user"));
        let m = mackerel_parts("service.web.latency.p99").unwrap();
        assert_eq!(
            (m.owner, m.id, m.metric),
            (Owner::Service, "web", "latency.p99")
        );
        assert_eq!(mackerel_parts("host.x"), None);
        assert_eq!(mackerel_parts("up.job.a"), None);
        let n = |s: &str| SeriesName::parse(s, "name").unwrap();
        assert_eq!(
            implied_labels(&n("host.h1.memory.used")),
            vec![
                ("hostId".to_string(), "h1".to_string()),
                ("name".to_string(), "memory.used".to_string())
            ]
        );
        assert_eq!(
            implied_labels(&n("service.web.rps")),
            vec![
                ("name".to_string(), "rps".to_string()),
                ("service".to_string(), "web".to_string())
            ]
        );
        assert_eq!(
            implied_labels(&n("cpu")),
            vec![("__name__".to_string(), "cpu".to_string())]
        );
    }

    proptest! {
        /// A group is a non-empty prefix of the name ending at a segment boundary
        /// (so listing a group by key prefix finds the name).
        #[test]
        fn group_is_a_segment_prefix(name in "[A-Za-z0-9._-]{1,60}") {
            let g = group_of(&name);
            prop_assert!(!g.is_empty());
            prop_assert!(name.starts_with(g));
            prop_assert!(g.len() == name.len() || name.as_bytes()[g.len()] == b'.');
            // Listing the group by the key prefix `<group>.` finds the name (or it is the group).
            prop_assert!(g == name || name[g.len()..].starts_with('.'));
            // Idempotent: a group is its own group's group unless it is host./service.
            if mackerel_parts(&name).is_none() {
                prop_assert_eq!(group_of(g), g);
            }
        }

        #[test]
        fn mackerel_names_group_by_owner(
            kind in prop_oneof![Just("host"), Just("service")],
            id in "[A-Za-z0-9_-][A-Za-z0-9._-]{0,20}",
            metric in "[A-Za-z0-9_-][A-Za-z0-9._-]{0,30}",
        ) {
            // An id with a dot would end at its first dot: Mackerel ids have none.
            prop_assume!(!id.contains('.'));
            let name = format!("{kind}.{id}.{metric}");
            let group = format!("{kind}.{id}");
            prop_assert_eq!(group_of(&name), group.as_str());
            let m = mackerel_parts(&name).unwrap();
            prop_assert_eq!(m.id, id.as_str());
            prop_assert_eq!(m.metric, metric.as_str());
        }

        #[test]
        fn day_of_is_a_midnight_at_or_before(t in -(1i64 << 40)..(1i64 << 40)) {
            let d = day_of(t);
            prop_assert!(d <= t && t - d < DAY_SECS);
            prop_assert_eq!(d.rem_euclid(DAY_SECS), 0);
        }
    }
}
