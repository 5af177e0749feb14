//! Times as graphite-web's `attime.py` parses them (`parseATTime`, `parseTimeOffset`),
//! in UTC (graphite-web's default `TIME_ZONE`): epoch seconds, `now`, `-6h`,
//! `HH:MM_YYYYMMDD`, `YYYYMMDD`, `noon`/`midnight`/`teatime`,
//! `yesterday`/`today`/`tomorrow`, `MM/DD/YY[YY]`, month names, weekdays, `am`/`pm`,
//! and offsets by unit prefix (`s`, `min`, `h`, `d`, `w`, `mon` = 30 d, `y` = 365 d).
//! The golden file `tests/graphite/golden/attime.json` holds graphite-web's own answers.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Timelike};

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// `s` at `now` (epoch seconds) as epoch seconds, or why not.
///
/// # Errors
/// A message naming what could not be read.
pub fn parse(s: &str, now: i64) -> Result<i64, String> {
    let s: String = s
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| !matches!(c, '_' | ',' | ' '))
        .collect();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let yyyymmdd = s.len() == 8
            && s[..4].parse::<u32>().is_ok_and(|y| y > 1900)
            && s[4..6].parse::<u32>().is_ok_and(|m| m < 13)
            && s[6..].parse::<u32>().is_ok_and(|d| d < 32);
        if !yyyymmdd {
            return s
                .parse::<i64>()
                .map_err(|_| format!("{s:?} is out of range"));
        }
    }
    // Python's order: split at the first `+` if there is one, else at the first `-`.
    let (reference, offset) = match s.find('+').or_else(|| s.find('-')) {
        Some(i) => s.split_at(i),
        None => (s.as_str(), ""),
    };
    let at = reference_time(reference, now)?;
    let off = offset_secs(offset)?;
    at.checked_add(off)
        .ok_or_else(|| format!("{s:?} is out of range"))
}

fn int(s: &str, what: &str) -> Result<i64, String> {
    s.parse::<i64>()
        .map_err(|_| format!("invalid {what} {s:?}"))
}

fn reference_time(reference: &str, now: i64) -> Result<i64, String> {
    if reference.is_empty() || reference == "now" {
        return Ok(now);
    }
    let now_dt = DateTime::from_timestamp(now, 0)
        .ok_or_else(|| "now is out of range".to_string())?
        .naive_utc();
    let raw = reference;
    let mut r = reference;
    let (mut hour, mut minute) = (0_i64, 0_i64);
    if let Some(i) = r.find(':').filter(|&i| 0 < i && i < 3) {
        hour = int(&r[..i], "hour")?;
        let end = (i + 3).min(r.len());
        minute = int(r.get(i + 1..end).unwrap_or(""), "minute")?;
        r = r.get(end..).unwrap_or("");
        if let Some(rest) = r.strip_prefix("am") {
            r = rest;
        } else if let Some(rest) = r.strip_prefix("pm") {
            hour = (hour + 12) % 24;
            r = rest;
        }
    }
    if let Some(i) = r.find("am").filter(|&i| 0 < i && i < 3) {
        hour = int(&r[..i], "hour")?;
        r = &r[i + 2..];
    }
    if let Some(i) = r.find("pm").filter(|&i| 0 < i && i < 3) {
        hour = (int(&r[..i], "hour")? + 12) % 24;
        r = &r[i + 2..];
    }
    for (word, h) in [("noon", 12), ("midnight", 0), ("teatime", 16)] {
        if let Some(rest) = r.strip_prefix(word) {
            (hour, minute) = (h, 0);
            r = rest;
            break;
        }
    }
    let bad_time = || format!("invalid time of day in {raw:?}");
    let (h, m) = (
        u32::try_from(hour).map_err(|_| bad_time())?,
        u32::try_from(minute).map_err(|_| bad_time())?,
    );
    let mut date: NaiveDateTime = now_dt
        .with_hour(h)
        .and_then(|d| d.with_minute(m))
        .and_then(|d| d.with_second(0))
        .ok_or_else(bad_time)?;
    let at = |y: i64, mo: i64, d: i64| -> Result<NaiveDateTime, String> {
        let y = i32::try_from(y).map_err(|_| format!("invalid year in {raw:?}"))?;
        let (mo, d) = (
            u32::try_from(mo).map_err(|_| format!("invalid month in {raw:?}"))?,
            u32::try_from(d).map_err(|_| format!("invalid day in {raw:?}"))?,
        );
        NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|d| d.and_hms_opt(h, m, 0))
            .ok_or_else(|| format!("invalid date in {raw:?}"))
    };
    if matches!(r, "yesterday" | "today" | "tomorrow") {
        let days = match r {
            "yesterday" => -1,
            "tomorrow" => 1,
            _ => 0,
        };
        date = date
            .checked_add_signed(Duration::days(days))
            .ok_or_else(bad_time)?;
    } else if r.matches('/').count() == 2 {
        let parts: Vec<&str> = r.split('/').collect();
        let (mo, d, mut y) = (
            int(parts[0], "month")?,
            int(parts[1], "day")?,
            int(parts[2], "year")?,
        );
        if y < 1900 {
            y += 1900;
        }
        if y < 1970 {
            y += 100;
        }
        date = at(y, mo, d)?;
    } else if r.len() == 8 && r.bytes().all(|b| b.is_ascii_digit()) {
        date = at(
            int(&r[..4], "year")?,
            int(&r[4..6], "month")?,
            int(&r[6..], "day")?,
        )?;
    } else if let Some(mo) = r.get(..3).and_then(|p| MONTHS.iter().position(|m| *m == p)) {
        let tail2 = r.get(r.len().saturating_sub(2)..).unwrap_or("");
        let tail1 = r.get(r.len().saturating_sub(1)..).unwrap_or("");
        let d = if tail2.len() == 2 && tail2.bytes().all(|b| b.is_ascii_digit()) {
            int(tail2, "day")?
        } else if tail1.len() == 1 && tail1.bytes().all(|b| b.is_ascii_digit()) {
            int(tail1, "day")?
        } else {
            return Err(format!("day of month required after month name in {raw:?}"));
        };
        date = at(i64::from(date.year()), mo as i64 + 1, d)?;
    } else if let Some(wd) = r
        .get(..3)
        .and_then(|p| WEEKDAYS.iter().position(|w| *w == p))
    {
        let today = date.weekday().num_days_from_sunday() as i64;
        let mut back = today - wd as i64;
        if back < 0 {
            back += 7;
        }
        date = date
            .checked_sub_signed(Duration::days(back))
            .ok_or_else(bad_time)?;
    } else if !r.is_empty() {
        return Err(format!("unknown day reference {raw:?}"));
    }
    Ok(date.and_utc().timestamp())
}

/// An offset (`-1h30min`, `+2d`, `5min`) in seconds, as `parseTimeOffset` reads it.
///
/// # Errors
/// A message naming the offset or unit at fault.
pub fn offset_secs(offset: &str) -> Result<i64, String> {
    if offset.is_empty() {
        return Ok(0);
    }
    let (sign, mut rest) = match offset.as_bytes()[0] {
        b'0'..=b'9' => (1, offset),
        b'+' => (1, &offset[1..]),
        b'-' => (-1, &offset[1..]),
        _ => return Err(format!("invalid offset {offset:?}")),
    };
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let num: i64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid offset {offset:?}"))?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..letters];
        rest = &rest[letters..];
        let secs = unit_secs(unit).ok_or_else(|| format!("invalid offset unit {unit:?}"))?;
        total = num
            .checked_mul(secs)
            .and_then(|v| total.checked_add(sign * v))
            .ok_or_else(|| format!("offset {offset:?} is out of range"))?;
    }
    Ok(total)
}

/// Seconds per unit, by the prefixes `getUnitString` checks in its order.
fn unit_secs(unit: &str) -> Option<i64> {
    const D: i64 = 86_400;
    [
        ("s", 1),
        ("min", 60),
        ("h", 3_600),
        ("d", D),
        ("w", 7 * D),
        ("mon", 30 * D),
        ("y", 365 * D),
    ]
    .into_iter()
    .find(|(p, _)| unit.starts_with(p))
    .map(|(_, s)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_504_000; // 2025-11-30 12:00:00 UTC, a Sunday

    #[test]
    fn references_and_offsets() {
        assert_eq!(parse("now", NOW), Ok(NOW));
        assert_eq!(parse("-6h", NOW), Ok(NOW - 6 * 3600));
        assert_eq!(parse("-1h30min", NOW), Ok(NOW - 5400));
        assert_eq!(parse("midnight", NOW), Ok(NOW - 12 * 3600));
        assert_eq!(parse("12:30_20251130", NOW), Ok(NOW + 1800));
        assert_eq!(parse("20251130", NOW), Ok(NOW - 12 * 3600));
        assert_eq!(parse("1764460800", NOW), Ok(1_764_460_800));
        assert_eq!(parse("sat", NOW), Ok(NOW - 12 * 3600 - 86_400));
        assert!(parse("-6m", NOW).unwrap_err().contains("unit"));
        assert!(parse("25:00", NOW).is_err());
        assert!(parse("bogus", NOW).is_err());
        assert!(parse("99999999999999999999", NOW).is_err());
    }
}
