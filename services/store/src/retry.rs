//! Backoff with full jitter until a deadline, for throttling and partial failures.
//!
//! Attempt `k` (0-based) waits a uniformly random time in `[0, min(max, base·2^k)]`
//! ("full jitter", AWS Architecture Blog, 2015): many writers retrying at once spread
//! out instead of hammering the service in step. Waiting never passes the deadline;
//! once it is reached the caller surfaces [`StoreError::Retryable`] and the batch goes
//! back to Lambda (or the client) as a whole.
//!
//! Time is `tokio::time`, so tests run with `tokio::time::pause()` and never sleep.

use std::future::Future;
use std::time::Duration;

use carat_core::config::RetryConfig;
use rand::Rng;
use tokio::time::Instant;

use crate::StoreError;

/// The backoff state of one call.
#[derive(Debug, Clone)]
pub struct Backoff {
    base_ms: u64,
    max_ms: u64,
    started: Instant,
    deadline: Instant,
    attempt: u32,
}

impl Backoff {
    /// Starts the clock: the deadline is `cfg.deadline_ms` from now.
    #[must_use]
    pub fn new(cfg: &RetryConfig) -> Self {
        Self::starting_at(cfg, Instant::now())
    }

    /// A backoff whose deadline counts from `started`: the parts of one call (batches
    /// sent concurrently) share the call's deadline.
    #[must_use]
    pub fn starting_at(cfg: &RetryConfig, started: Instant) -> Self {
        Self {
            base_ms: cfg.base_backoff_ms.max(1),
            max_ms: cfg.max_backoff_ms.max(cfg.base_backoff_ms.max(1)),
            started,
            deadline: started + Duration::from_millis(cfg.deadline_ms),
            attempt: 0,
        }
    }

    /// The cap of the next wait: `min(max, base·2^attempt)`.
    #[must_use]
    pub fn cap_ms(&self) -> u64 {
        let doubled = self
            .base_ms
            .saturating_mul(1u64.checked_shl(self.attempt.min(63)).unwrap_or(u64::MAX));
        doubled.min(self.max_ms)
    }

    /// Retries made so far.
    #[must_use]
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Time since the call started.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether the deadline has passed.
    #[must_use]
    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Time left before the deadline (zero once it passed).
    #[must_use]
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Waits before the next attempt, never past the deadline. Returns `false` (without
    /// waiting) if the deadline has already passed: the caller gives up.
    pub async fn wait(&mut self) -> bool {
        let remaining = self.remaining();
        if remaining.is_zero() {
            return false;
        }
        let jitter = rand::rng().random_range(0..=self.cap_ms());
        self.attempt = self.attempt.saturating_add(1);
        tokio::time::sleep(Duration::from_millis(jitter).min(remaining)).await;
        true
    }

    /// After a failed attempt (`last` says how it failed): waits before the next one,
    /// or gives up once the deadline has passed. The loop every retrying call shares.
    ///
    /// # Errors
    /// [`StoreError::Retryable`] naming `last` and the retries made, once the deadline passed.
    pub async fn retry_after(
        &mut self,
        service: &'static str,
        op: &'static str,
        last: &str,
    ) -> Result<(), StoreError> {
        if self.wait().await {
            Ok(())
        } else {
            Err(self.give_up(service, op, last))
        }
    }

    /// The error to surface when retries ran out.
    #[must_use]
    pub fn give_up(&self, service: &'static str, op: &'static str, last: &str) -> StoreError {
        StoreError::retryable(
            service,
            op,
            format!(
                "gave up after {} retries in {} ms: {last}",
                self.attempt,
                self.elapsed().as_millis()
            ),
        )
    }
}

/// Runs `call` until it succeeds, fails for good, or the deadline passes, backing off
/// after every retryable error. The last retryable error, with the attempt count, is
/// what surfaces after the deadline.
///
/// # Errors
/// The first non-retryable error, or a [`StoreError::Retryable`] once the deadline passed.
pub async fn with_backoff<T, F, Fut>(
    cfg: &RetryConfig,
    service: &'static str,
    op: &'static str,
    mut call: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut backoff = Backoff::new(cfg);
    loop {
        match call().await {
            Err(e) if e.is_retryable() => {
                tracing::debug!(service, op, attempt = backoff.attempts(), error = %e, "retrying");
                backoff.retry_after(service, op, &e.to_string()).await?;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn cfg() -> RetryConfig {
        RetryConfig {
            deadline_ms: 1_000,
            base_backoff_ms: 10,
            max_backoff_ms: 80,
        }
    }

    #[test]
    fn caps_double_up_to_the_max() {
        let mut b = Backoff::new(&cfg());
        let mut caps = Vec::new();
        for _ in 0..6 {
            caps.push(b.cap_ms());
            b.attempt += 1;
        }
        assert_eq!(caps, vec![10, 20, 40, 80, 80, 80]);
        b.attempt = 200;
        assert_eq!(b.cap_ms(), 80);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_stay_under_the_cap_and_stop_at_the_deadline() {
        let mut b = Backoff::new(&cfg());
        let mut last = Instant::now();
        let mut n = 0;
        while b.wait().await {
            let waited = last.elapsed();
            last = Instant::now();
            assert!(waited <= Duration::from_millis(80), "{waited:?}");
            n += 1;
            assert!(n < 10_000, "never reached the deadline");
        }
        assert!(b.expired());
        // Full jitter averages half the cap: ~40 ms per wait, so about 25 waits in 1 s.
        assert!(n >= 12, "{n} waits");
        let e = b.give_up("x", "op", "boom");
        assert!(e.is_retryable());
        assert!(e.to_string().contains("boom"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn with_backoff_retries_retryable_errors_only() {
        let calls = AtomicU32::new(0);
        let out = with_backoff(&cfg(), "x", "op", || async {
            if calls.fetch_add(1, Ordering::Relaxed) < 3 {
                Err(StoreError::retryable("x", "op", "throttled"))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(out.unwrap(), 7);
        assert_eq!(calls.load(Ordering::Relaxed), 4);

        let calls = AtomicU32::new(0);
        let out: Result<(), _> = with_backoff(&cfg(), "x", "op", || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err(StoreError::fatal("x", "op", "bad"))
        })
        .await;
        assert!(!out.unwrap_err().is_retryable());
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn with_backoff_gives_up_at_the_deadline() {
        let start = Instant::now();
        let out: Result<(), _> = with_backoff(&cfg(), "x", "op", || async {
            Err(StoreError::retryable("x", "op", "throttled"))
        })
        .await;
        let e = out.unwrap_err();
        assert!(e.is_retryable(), "{e}");
        assert!(e.to_string().contains("throttled"), "{e}");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1_000) && took < Duration::from_millis(1_100),
            "{took:?}"
        );
    }
}
