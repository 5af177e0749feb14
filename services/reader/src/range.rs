//! What a read asks for: a time range, a resolution and an aggregate, parsed from query
//! parameters with errors that name the parameter; and Mackerel's resolution ladder.

use carat_api::AppError;
use carat_core::window;

/// A closed time range, epoch seconds, `from <= to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: i64,
    pub to: i64,
}

impl Range {
    /// Parses `from` and `to` (epoch seconds). Both are required.
    ///
    /// # Errors
    /// 400 naming `from` or `to` when missing, not an integer, outside ±2^40 s, or
    /// reversed (`to` is named).
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<Self, AppError> {
        let from = epoch("from", from)?;
        let to = epoch("to", to)?;
        if to < from {
            return Err(param("to", format!("to ({to}) is before from ({from})")));
        }
        Ok(Self { from, to })
    }

    /// Seconds the range spans.
    #[must_use]
    pub fn span(&self) -> i64 {
        self.to - self.from
    }
}

/// A 400 naming query parameter `name`.
pub fn param(name: &str, message: impl Into<String>) -> AppError {
    AppError::BadInput {
        message: message.into(),
        index: None,
        field: Some(name.to_string()),
    }
}

fn epoch(name: &'static str, value: Option<&str>) -> Result<i64, AppError> {
    let value = value.ok_or_else(|| param(name, format!("{name} is required (epoch seconds)")))?;
    let t: i64 = value
        .trim()
        .parse()
        .map_err(|_| param(name, format!("{name} must be epoch seconds, got {value:?}")))?;
    if !window::in_range(t) {
        return Err(param(
            name,
            format!("{name} ({t}) is outside the times carat stores (±2^40 s)"),
        ));
    }
    Ok(t)
}

/// How the points of a series are summarised in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Avg,
    Sum,
    Min,
    Max,
    Count,
}

impl Aggregate {
    /// # Errors
    /// 400 naming `aggregate`.
    pub fn parse(value: Option<&str>) -> Result<Self, AppError> {
        Ok(match value.unwrap_or("avg") {
            "avg" | "average" => Self::Avg,
            "sum" => Self::Sum,
            "min" => Self::Min,
            "max" => Self::Max,
            "count" => Self::Count,
            other => {
                return Err(param(
                    "aggregate",
                    format!("aggregate must be one of avg, sum, min, max, count; got {other:?}"),
                ))
            }
        })
    }
}

/// Bucket length of a read: raw points, or buckets of `n` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Raw,
    Secs(i64),
}

/// Resolutions the native route chooses between with `resolution=auto`, and accepts by
/// name: what the tiers keep (raw chunks, 1 h and 1 d rollups in the archive).
pub const NATIVE: [(&str, Resolution); 3] = [
    ("raw", Resolution::Raw),
    ("1h", Resolution::Secs(3_600)),
    ("1d", Resolution::Secs(86_400)),
];

/// Interval assumed between raw points when `auto` estimates how many a range holds:
/// monitoring agents post once a minute (mackerel-agent's `metricsInterval`).
pub const ASSUMED_RAW_INTERVAL: i64 = 60;

impl Resolution {
    /// `raw`, `1h`, `1d`, `auto` (the default: the finest whose estimated point count
    /// over `range` fits `max_points`), or a whole number of seconds ≥ 1.
    ///
    /// # Errors
    /// 400 naming `resolution`.
    pub fn parse(value: Option<&str>, range: Range, max_points: usize) -> Result<Self, AppError> {
        let value = value.unwrap_or("auto");
        if let Some((_, r)) = NATIVE.iter().find(|(n, _)| *n == value) {
            return Ok(*r);
        }
        if value == "auto" {
            let fits = |step: i64| {
                usize::try_from(range.span() / step + 1).unwrap_or(usize::MAX) <= max_points
            };
            return Ok(if fits(ASSUMED_RAW_INTERVAL) {
                Self::Raw
            } else if fits(3_600) {
                Self::Secs(3_600)
            } else {
                Self::Secs(86_400)
            });
        }
        match value.parse::<i64>() {
            Ok(n) if (1..=366 * 86_400).contains(&n) => Ok(Self::Secs(n)),
            _ => Err(param(
                "resolution",
                format!(
                    "resolution must be raw, 1h, 1d, auto or seconds (1 to 31622400); got {value:?}"
                ),
            )),
        }
    }

    /// The rung of Mackerel's ladder for a range of `span` seconds (Mackerel's API
    /// averages into coarser buckets as the range grows; thresholds from
    /// research/read-apis.md §1). The 1-minute rung is the raw points themselves.
    #[must_use]
    pub fn mackerel(span: i64) -> Self {
        const H: i64 = 3_600;
        const D: i64 = 86_400;
        match span {
            s if s <= 20 * H => Self::Raw,
            s if s <= 166 * H => Self::Secs(5 * 60),
            s if s <= 10 * D => Self::Secs(10 * 60),
            s if s <= 83 * D => Self::Secs(H),
            s if s <= 166 * D => Self::Secs(2 * H),
            s if s <= 240 * D => Self::Secs(4 * H),
            _ => Self::Secs(D),
        }
    }

    /// Seconds per bucket (`0` for raw), as answers report it.
    #[must_use]
    pub fn secs(self) -> i64 {
        match self {
            Self::Raw => 0,
            Self::Secs(n) => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: &AppError) -> Option<String> {
        match e {
            AppError::BadInput { field, .. } => field.clone(),
            _ => None,
        }
    }

    #[test]
    fn ranges_name_the_parameter_at_fault() {
        assert_eq!(
            Range::parse(Some("10"), Some("20")).unwrap(),
            Range { from: 10, to: 20 }
        );
        assert_eq!(
            field(&Range::parse(None, Some("1")).unwrap_err()).as_deref(),
            Some("from")
        );
        assert_eq!(
            field(&Range::parse(Some("x"), Some("1")).unwrap_err()).as_deref(),
            Some("from")
        );
        assert_eq!(
            field(&Range::parse(Some("1"), Some("1.5")).unwrap_err()).as_deref(),
            Some("to")
        );
        assert_eq!(
            field(&Range::parse(Some("5"), Some("4")).unwrap_err()).as_deref(),
            Some("to")
        );
        let huge = (1i64 << 41).to_string();
        assert_eq!(
            field(&Range::parse(Some(&huge), Some(&huge)).unwrap_err()).as_deref(),
            Some("from")
        );
    }

    #[test]
    fn mackerel_ladder_follows_the_thresholds() {
        const H: i64 = 3_600;
        assert_eq!(Resolution::mackerel(20 * H), Resolution::Raw);
        assert_eq!(Resolution::mackerel(20 * H + 1), Resolution::Secs(300));
        assert_eq!(Resolution::mackerel(166 * H), Resolution::Secs(300));
        assert_eq!(Resolution::mackerel(10 * 86_400), Resolution::Secs(600));
        assert_eq!(Resolution::mackerel(83 * 86_400), Resolution::Secs(H));
        assert_eq!(Resolution::mackerel(166 * 86_400), Resolution::Secs(2 * H));
        assert_eq!(Resolution::mackerel(240 * 86_400), Resolution::Secs(4 * H));
        assert_eq!(Resolution::mackerel(241 * 86_400), Resolution::Secs(86_400));
    }

    #[test]
    fn auto_resolution_fits_the_bound() {
        let day = Range {
            from: 0,
            to: 86_400,
        };
        assert_eq!(
            Resolution::parse(None, day, 11_000).unwrap(),
            Resolution::Raw
        );
        assert_eq!(
            Resolution::parse(None, day, 100).unwrap(),
            Resolution::Secs(3_600)
        );
        assert_eq!(
            Resolution::parse(None, day, 10).unwrap(),
            Resolution::Secs(86_400)
        );
        assert_eq!(
            Resolution::parse(Some("300"), day, 1).unwrap(),
            Resolution::Secs(300)
        );
        assert_eq!(
            field(&Resolution::parse(Some("0"), day, 1).unwrap_err()).as_deref(),
            Some("resolution")
        );
        assert_eq!(
            field(&Aggregate::parse(Some("median")).unwrap_err()).as_deref(),
            Some("aggregate")
        );
    }
}
