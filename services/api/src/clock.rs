//! The clock the API validates and stamps with. Injected so tests use a fixed time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Current time, epoch milliseconds.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;

    /// Current time, epoch seconds (floor).
    fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A clock that always says the same time (tests, benchmarks).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0
    }
}
