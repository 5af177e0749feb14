//! Windows: fixed, UTC-aligned spans of time, pure functions of (length, time).
//!
//! A window of length `len` seconds containing `t` starts at `floor(t / len) * len`
//! (Euclidean, so times before 1970 work too) and ends (exclusive) at `start + len`.
//! Lengths are configuration ([`crate::config::WindowConfig`]).

/// Largest magnitude of a time (epoch seconds) carat accepts from a record: 2^40 s,
/// about 34,800 years either side of 1970. Within it every number derived from a time
/// (window starts and ends, expiries, stamps in milliseconds) fits an i64, so checking
/// this once per point is the writer's overflow guard.
pub const TIME_LIMIT: i64 = 1 << 40;

/// Whether `time` is within ±[`TIME_LIMIT`].
#[must_use]
pub fn in_range(time: i64) -> bool {
    (-TIME_LIMIT..=TIME_LIMIT).contains(&time)
}

/// Start of the window of length `len` that contains `time`.
///
/// # Panics
/// If `len` is not positive (config validation guarantees it is).
#[must_use]
pub fn start(len: i64, time: i64) -> i64 {
    assert!(len > 0, "window length must be positive");
    time.div_euclid(len) * len
}

/// End (exclusive) of the window of length `len` that contains `time`.
#[must_use]
pub fn end(len: i64, time: i64) -> i64 {
    start(len, time).saturating_add(len)
}

/// The windows of length `len` that overlap `[from, to]` (inclusive), oldest first.
pub fn covering(len: i64, from: i64, to: i64) -> impl Iterator<Item = i64> {
    let first = start(len, from);
    let last = if to < from {
        first - len
    } else {
        start(len, to)
    };
    (0..)
        .map(move |i| first + i * len)
        .take_while(move |s| *s <= last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn utc_aligned() {
        assert_eq!(start(86_400, 86_400 * 3 + 5), 86_400 * 3);
        assert_eq!(start(300, -1), -300);
        assert_eq!(end(300, 299), 300);
        assert_eq!(
            covering(100, 150, 420).collect::<Vec<_>>(),
            vec![100, 200, 300, 400]
        );
        assert_eq!(covering(100, 150, 100).count(), 0);
    }

    proptest! {
        #[test]
        fn time_is_inside_its_window(len in 1i64..1_000_000, t in -1_000_000_000_000i64..1_000_000_000_000) {
            let s = start(len, t);
            prop_assert!(s <= t && t < s + len);
            prop_assert_eq!(s.rem_euclid(len), 0);
        }
    }
}
