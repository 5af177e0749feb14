//! The archive's S3 key layout (docs/formats.md, "Archive") and the UTC day and month
//! arithmetic behind it.
//!
//! ```text
//! stage/<tenant>/<day>/<expires>-<hash>   a batch's items of one tenant-day (windows object)
//! day/<tenant>/<day>                      a tenant-day, compacted (windows object)
//! month/<tenant>/<month>                  a tenant-month's 1 h and 1 d rollups (rollups object)
//! due/<tenant>/<month>/<day>-<hash>       marker: that day object changed since its month
//!                                          was last compacted (empty object)
//! ```
//!
//! `<day>` and `<month>` are the epoch seconds of the UTC day's or month's start (a day
//! holds the windows whose first sort key falls in it), `<expires>` the latest
//! `expires_at` of the staged items, `<hash>` 32 hex digits of the SHA-256 of the
//! object's bytes: a replayed batch writes the same keys with the same bytes.

use carat_core::{window, Tenant};
use chrono::{DateTime, Datelike, Months, NaiveDate};
use sha2::{Digest, Sha256};

/// Seconds in a UTC day.
pub const DAY: i64 = 86_400;

/// The start of the UTC day containing `t`.
#[must_use]
pub fn day_of(t: i64) -> i64 {
    window::start(DAY, t)
}

/// The start of the UTC month containing `t`.
#[must_use]
pub fn month_of(t: i64) -> i64 {
    let Some(d) = DateTime::from_timestamp(day_of(t), 0) else {
        return day_of(t);
    };
    NaiveDate::from_ymd_opt(d.year(), d.month(), 1)
        .and_then(|m| m.and_hms_opt(0, 0, 0))
        .map_or_else(|| day_of(t), |m| m.and_utc().timestamp())
}

/// The start of the month after the month starting at `month`.
#[must_use]
pub fn next_month(month: i64) -> i64 {
    DateTime::from_timestamp(month, 0)
        .and_then(|d| d.checked_add_months(Months::new(1)))
        .map_or(month.saturating_add(31 * DAY), |d| d.timestamp())
}

/// 32 hex digits of the SHA-256 of `bytes`: the content part of staged and marker keys.
#[must_use]
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..16])
}

#[must_use]
pub fn stage_prefix(tenant: &Tenant, day: i64) -> String {
    format!("stage/{tenant}/{day}/")
}

#[must_use]
pub fn stage_key(tenant: &Tenant, day: i64, expires: i64, bytes: &[u8]) -> String {
    format!(
        "{}{expires}-{}",
        stage_prefix(tenant, day),
        content_hash(bytes)
    )
}

#[must_use]
pub fn day_key(tenant: &Tenant, day: i64) -> String {
    format!("day/{tenant}/{day}")
}

#[must_use]
pub fn month_key(tenant: &Tenant, month: i64) -> String {
    format!("month/{tenant}/{month}")
}

#[must_use]
pub fn due_prefix(tenant: &Tenant, month: i64) -> String {
    format!("due/{tenant}/{month}/")
}

#[must_use]
pub fn due_key(tenant: &Tenant, day: i64, day_object: &[u8]) -> String {
    format!(
        "{}{day}-{}",
        due_prefix(tenant, month_of(day)),
        content_hash(day_object)
    )
}

/// A staged key, parsed: (tenant, day, latest expiry).
#[must_use]
pub fn parse_stage(key: &str) -> Option<(Tenant, i64, i64)> {
    let rest = key.strip_prefix("stage/")?;
    let mut it = rest.splitn(3, '/');
    let tenant = Tenant::parse(it.next()?).ok()?;
    let day = it.next()?.parse().ok()?;
    let (expires, _) = it.next()?.split_once('-')?;
    Some((tenant, day, expires.parse().ok()?))
}

/// A day key, parsed: (tenant, day).
#[must_use]
pub fn parse_day(key: &str) -> Option<(Tenant, i64)> {
    let (tenant, day) = key.strip_prefix("day/")?.split_once('/')?;
    Some((Tenant::parse(tenant).ok()?, day.parse().ok()?))
}

/// A due marker, parsed: (tenant, month).
#[must_use]
pub fn parse_due(key: &str) -> Option<(Tenant, i64)> {
    let mut it = key.strip_prefix("due/")?.splitn(3, '/');
    let tenant = Tenant::parse(it.next()?).ok()?;
    let month = it.next()?.parse().ok()?;
    it.next()?;
    Some((tenant, month))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_months() {
        // 2023-11-14T22:13:20Z
        let t = 1_700_000_000;
        assert_eq!(day_of(t), 1_699_920_000);
        assert_eq!(month_of(t), 1_698_796_800); // 2023-11-01
        assert_eq!(next_month(1_698_796_800), 1_701_388_800); // 2023-12-01
        assert_eq!(next_month(1_701_388_800), 1_704_067_200); // 2024-01-01
        assert_eq!(month_of(-1), -2_678_400); // 1969-12-01
        assert_eq!(day_of(-1), -86_400);
    }

    #[test]
    fn keys_parse_back() {
        let t = Tenant::parse("acme").unwrap();
        let k = stage_key(&t, 1_699_920_000, 1_702_600_000, b"x");
        assert_eq!(
            k,
            "stage/acme/1699920000/1702600000-2d711642b726b04401627ca9fbac32f5"
        );
        assert_eq!(
            parse_stage(&k),
            Some((t.clone(), 1_699_920_000, 1_702_600_000))
        );
        assert_eq!(parse_day(&day_key(&t, 5)), Some((t.clone(), 5)));
        let d = due_key(&t, 1_699_920_000, b"");
        assert!(d.starts_with("due/acme/1698796800/1699920000-"), "{d}");
        assert_eq!(parse_due(&d), Some((t, 1_698_796_800)));
        assert_eq!(parse_stage("stage/x"), None);
        assert_eq!(parse_day("day/bad tenant/1"), None);
    }
}
