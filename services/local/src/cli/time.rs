//! Times on the command line: epoch seconds, RFC 3339, `now`, and (for ranges and
//! `put --time`) relative times such as `-6h`, `now-30m`, `+5m`. Files hold absolute
//! times only ([`absolute`]).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch, now.
#[must_use]
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// An absolute time: epoch seconds (an integer) or RFC 3339 (fractions of a second are
/// floored, as carat stores seconds).
///
/// # Errors
/// A message saying what is accepted.
pub fn absolute(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(t) = s.parse::<i64>() {
        return Ok(t);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp())
        .map_err(|_| {
            format!("{s:?} is not a time: expected epoch seconds (an integer) or RFC 3339 (2025-12-01T13:00:00Z)")
        })
}

/// A time relative to `now` or absolute: `now`, `-6h`, `now-6h`, `+10m`, `now+10m`,
/// epoch seconds or RFC 3339. Durations are humantime's (`90s`, `30m`, `6h`, `2d`, `1w`).
///
/// # Errors
/// A message saying what is accepted.
pub fn parse(s: &str, now: i64) -> Result<i64, String> {
    let t = s.trim();
    let rest = t.strip_prefix("now").unwrap_or(t);
    if rest.is_empty() {
        return Ok(now);
    }
    let (sign, dur) = match rest.as_bytes()[0] {
        b'-' => (-1, &rest[1..]),
        b'+' => (1, &rest[1..]),
        _ if t.starts_with("now") => {
            return Err(format!("{s:?}: expected now, now-6h or now+10m"));
        }
        _ => return absolute(t).map_err(|e| format!("{e}, or relative: now, -6h, now-30m")),
    };
    let secs = humantime::parse_duration(dur.trim())
        .map_err(|e| format!("{s:?}: {e} (durations look like 90s, 30m, 6h, 2d, 1w)"))?
        .as_secs();
    let secs = i64::try_from(secs).map_err(|_| format!("{s:?} is too far"))?;
    Ok(now.saturating_add(sign * secs))
}

/// A time as RFC 3339 UTC (`2025-12-01T13:00:00Z`), for tables.
#[must_use]
pub fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(
        || t.to_string(),
        |d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_every_accepted_form() {
        let now = 1_764_594_000;
        assert_eq!(parse("now", now), Ok(now));
        assert_eq!(parse("-6h", now), Ok(now - 6 * 3_600));
        assert_eq!(parse("now-30m", now), Ok(now - 1_800));
        assert_eq!(parse("+10m", now), Ok(now + 600));
        assert!(parse("2d", now).is_err());
        assert_eq!(parse("1700000000", now), Ok(1_700_000_000));
        assert_eq!(parse("2025-12-01T13:00:00Z", now), Ok(1_764_594_000));
        assert_eq!(parse("2025-12-01T14:00:00.9+01:00", now), Ok(1_764_594_000));
        assert!(parse("yesterday", now).unwrap_err().contains("RFC 3339"));
        assert!(parse("-6x", now).unwrap_err().contains("durations"));
        assert!(parse("nowish", now).is_err());
        assert!(absolute("-6h").is_err());
        assert_eq!(rfc3339(1_764_594_000), "2025-12-01T13:00:00Z");
    }
}
