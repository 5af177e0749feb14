//! Points and their validation.
//!
//! Validation is all-or-nothing at the API: the handler validates every point of a
//! request before it writes any, and the first error names the index and the field.

use crate::config::IngestConfig;
use crate::error::ValidationError;

/// One sample: epoch seconds and a value. The JSON routes accept finite values only (JSON
/// has none other); Prometheus remote_write samples keep any f64 (NaN quantiles, ±Inf,
/// staleness markers), and the chunk format stores every f64 bit-exact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub time: i64,
    pub value: f64,
}

impl Point {
    #[must_use]
    pub fn new(time: i64, value: f64) -> Self {
        Self { time, value }
    }

    /// Bit-exact equality (NaN payloads and -0.0 included), for tests and golden checks.
    #[must_use]
    pub fn same_bits(&self, other: &Self) -> bool {
        self.time == other.time && self.value.to_bits() == other.value.to_bits()
    }
}

/// Checks one point of a request at position `index` against the clock `now`
/// (epoch seconds) and the ingest limits.
///
/// # Errors
/// [`ValidationError::Field`] naming `time` (too old, too far in the future) or
/// `value` (NaN or infinite).
pub fn validate(
    index: usize,
    point: Point,
    now: i64,
    cfg: &IngestConfig,
) -> Result<(), ValidationError> {
    let field_err = |field, reason: String| ValidationError::Field {
        index,
        field,
        reason,
    };
    if !point.value.is_finite() {
        return Err(field_err(
            "value",
            format!("{} is not a finite number", point.value),
        ));
    }
    let oldest = now.saturating_sub(cfg.max_lateness_secs);
    if point.time < oldest {
        return Err(field_err(
            "time",
            format!(
                "{} is older than max_lateness ({} s before now {now})",
                point.time, cfg.max_lateness_secs
            ),
        ));
    }
    let newest = now.saturating_add(cfg.max_skew_secs);
    if point.time > newest {
        return Err(field_err(
            "time",
            format!(
                "{} is further in the future than max_skew ({} s after now {now})",
                point.time, cfg.max_skew_secs
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_finite_and_out_of_range_times() {
        let cfg = IngestConfig::default();
        let now = 1_700_000_000;
        assert!(validate(0, Point::new(now, 1.5), now, &cfg).is_ok());
        assert!(validate(0, Point::new(now - cfg.max_lateness_secs, 1.5), now, &cfg).is_ok());
        let e = validate(3, Point::new(now, f64::NAN), now, &cfg).unwrap_err();
        assert_eq!((e.index(), e.field()), (Some(3), "value"));
        let e = validate(4, Point::new(now, f64::INFINITY), now, &cfg).unwrap_err();
        assert_eq!(e.field(), "value");
        let e = validate(
            5,
            Point::new(now - cfg.max_lateness_secs - 1, 1.0),
            now,
            &cfg,
        )
        .unwrap_err();
        assert_eq!((e.index(), e.field()), (Some(5), "time"));
        let e = validate(6, Point::new(now + cfg.max_skew_secs + 1, 1.0), now, &cfg).unwrap_err();
        assert!(e.to_string().contains("max_skew"), "{e}");
    }
}
