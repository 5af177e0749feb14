//! Tenants, series names and the keys derived from them.
//!
//! A series name is 1–255 bytes of `[A-Za-z0-9._-]` (DESIGN.md §2). Because that charset
//! has no `#`, `{`, `}`, `:` or `/`, those characters can separate parts of storage keys
//! without escaping.

use std::fmt;
use std::sync::Arc;

use crate::error::ValidationError;

/// Longest series name, in bytes.
pub const MAX_SERIES_LEN: usize = 255;
/// Longest tenant id, in bytes.
pub const MAX_TENANT_LEN: usize = 64;

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

fn check_name(value: &str, field: &'static str, max: usize) -> Result<(), ValidationError> {
    let reason = if value.is_empty() {
        "must not be empty".to_string()
    } else if value.len() > max {
        format!("is {} bytes long, over the limit of {max}", value.len())
    } else if let Some((i, c)) = value
        .char_indices()
        .find(|(_, c)| !c.is_ascii() || !is_name_byte(*c as u8))
    {
        format!("character {c:?} at byte {i} is not one of [A-Za-z0-9._-]")
    } else {
        return Ok(());
    };
    Err(ValidationError::Name { field, reason })
}

/// A validated series name. Shared, not copied, when cloned: a writer batch puts each
/// name into several maps and head keys (docs/BENCHMARKS.md, "Writer CPU").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesName(Arc<str>);

impl SeriesName {
    /// Validates `name` as a series name; `field` names the request field it came from.
    ///
    /// # Errors
    /// [`ValidationError::Name`] naming `field` if the name is empty, too long or has a
    /// character outside `[A-Za-z0-9._-]`.
    pub fn parse(name: &str, field: &'static str) -> Result<Self, ValidationError> {
        check_name(name, field, MAX_SERIES_LEN)?;
        Ok(Self(Arc::from(name)))
    }

    /// Mackerel host metric `name` of host `host_id` ⇒ `host.<hostId>.<name>`.
    ///
    /// # Errors
    /// Names `hostId` or `name` if either part is invalid, or `name` if the joined name is too long.
    pub fn mackerel_host(host_id: &str, name: &str) -> Result<Self, ValidationError> {
        check_name(host_id, "hostId", MAX_SERIES_LEN)?;
        check_name(name, "name", MAX_SERIES_LEN)?;
        Self::parse(&format!("host.{host_id}.{name}"), "name")
    }

    /// Mackerel service metric `name` of `service` ⇒ `service.<service>.<name>`.
    ///
    /// # Errors
    /// Names `service` or `name` if either part is invalid, or `name` if the joined name is too long.
    pub fn mackerel_service(service: &str, name: &str) -> Result<Self, ValidationError> {
        check_name(service, "service", MAX_SERIES_LEN)?;
        check_name(name, "name", MAX_SERIES_LEN)?;
        Self::parse(&format!("service.{service}.{name}"), "name")
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SeriesName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated tenant id (same charset as series names, at most 64 bytes); shared when
/// cloned, like [`SeriesName`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tenant(Arc<str>);

impl Tenant {
    /// # Errors
    /// [`ValidationError::Name`] naming `tenant` if the id is invalid.
    pub fn parse(id: &str) -> Result<Self, ValidationError> {
        check_name(id, "tenant", MAX_TENANT_LEN)?;
        Ok(Self(Arc::from(id)))
    }

    /// The tenant every deployment has unless configured otherwise.
    #[must_use]
    pub fn default_tenant() -> Self {
        Self(Arc::from("default"))
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A series of one tenant: the unit every storage key is built from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    pub tenant: Tenant,
    pub series: SeriesName,
}

impl SeriesKey {
    #[must_use]
    pub fn new(tenant: Tenant, series: SeriesName) -> Self {
        Self { tenant, series }
    }

    /// The hash bucket of this series among `buckets` (stable across versions:
    /// FNV-1a 64 over `tenant` `0x1f` [`Self::bucket_group`]). A bucket is the Kinesis
    /// partition key and the Redis hash tag, so one series always goes to one shard and
    /// one slot.
    #[must_use]
    pub fn bucket(&self, buckets: u32) -> u32 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self
            .tenant
            .as_str()
            .bytes()
            .chain(std::iter::once(0x1f))
            .chain(self.bucket_group().bytes())
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // buckets is validated to be ≥ 1 by Config::validate.
        u32::try_from(h % u64::from(buckets.max(1)))
            .expect("remainder of a u32 modulus fits in u32")
    }

    /// The part of the name that picks the bucket. Mackerel host and service series
    /// (`host.<hostId>.<metric>`, `service.<service>.<metric>`) group by host or
    /// service: an agent posts all metrics of one host at once, and grouping them puts
    /// the whole post into one Kinesis record instead of one record per metric (Kinesis
    /// bills every record at least one PUT payload unit; see docs/BENCHMARKS.md, "Ingest").
    /// Every other series is its own group.
    #[must_use]
    pub fn bucket_group(&self) -> &str {
        let name = self.series.as_str();
        for prefix in ["host.", "service."] {
            if let Some(rest) = name.strip_prefix(prefix) {
                if let Some(dot) = rest.find('.') {
                    return &name[..prefix.len() + dot];
                }
            }
        }
        name
    }

    /// DynamoDB partition key of this series at resolution `res` (`raw`, `agg`, …):
    /// `<tenant>#<series>#<res>`.
    #[must_use]
    pub fn table_pk(&self, res: &str) -> String {
        format!("{}#{}#{res}", self.tenant, self.series)
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.series)
    }
}

/// The Kinesis partition key of bucket `b`.
#[must_use]
pub fn partition_key(bucket: u32) -> String {
    format!("b{bucket}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_charset() {
        assert!(SeriesName::parse("cpu.user-1_x", "name").is_ok());
        let e = SeriesName::parse("cpu user", "name").unwrap_err();
        assert_eq!(e.field(), "name");
        assert!(e.to_string().contains("' '"), "{e}");
        assert!(SeriesName::parse("", "name").is_err());
        assert!(SeriesName::parse(&"a".repeat(255), "name").is_ok());
        assert!(SeriesName::parse(&"a".repeat(256), "name").is_err());
        assert!(SeriesName::parse("é", "name").is_err());
    }

    #[test]
    fn mackerel_mapping() {
        let h = SeriesName::mackerel_host("3Ab9", "cpu.user.percentage").unwrap();
        assert_eq!(h.as_str(), "host.3Ab9.cpu.user.percentage");
        let s = SeriesName::mackerel_service("web", "latency.p99").unwrap();
        assert_eq!(s.as_str(), "service.web.latency.p99");
        assert_eq!(
            SeriesName::mackerel_host("bad id", "x")
                .unwrap_err()
                .field(),
            "hostId"
        );
        assert_eq!(
            SeriesName::mackerel_service("web", "a/b")
                .unwrap_err()
                .field(),
            "name"
        );
    }

    #[test]
    fn host_and_service_series_group_by_host_and_service() {
        let key = |n: &str| {
            SeriesKey::new(
                Tenant::default_tenant(),
                SeriesName::parse(n, "name").unwrap(),
            )
        };
        assert_eq!(key("host.3Ab9.cpu.user").bucket_group(), "host.3Ab9");
        assert_eq!(key("service.web.latency.p99").bucket_group(), "service.web");
        assert_eq!(key("host.noservice").bucket_group(), "host.noservice");
        assert_eq!(
            key("http_requests_total.job.api").bucket_group(),
            "http_requests_total.job.api"
        );
        assert_eq!(
            key("host.a.cpu").bucket(1024),
            key("host.a.memory.used").bucket(1024)
        );
    }

    #[test]
    fn bucket_is_stable_and_in_range() {
        let k = SeriesKey::new(
            Tenant::default_tenant(),
            SeriesName::parse("cpu", "name").unwrap(),
        );
        // Frozen: changing the hash moves every series to another shard and slot.
        assert_eq!(k.bucket(1024), k.bucket(1024));
        assert!(k.bucket(7) < 7);
        insta::assert_snapshot!(format!(
            "{} {} {}",
            k.bucket(1024),
            k.bucket(64),
            k.table_pk("raw")
        ));
    }
}
