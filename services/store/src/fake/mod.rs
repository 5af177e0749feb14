//! In-memory implementations of the four ports, for handler unit tests.
//!
//! They keep the semantics the adapters promise (atomic append-and-mark per bucket,
//! whole-item puts where the last write wins, sequence numbers in input order,
//! shard iterators that expire), so a handler tested against a fake behaves the same
//! against Redis and AWS. Every fake has a [`Faults`] handle that makes upcoming calls
//! fail, retryably or not, wholly or after a partial write, so tests can drive the
//! error paths without a network.
//!
//! ```
//! # use carat_store::fake::FakeTable;
//! # use carat_store::ports::WindowTable;
//! # tokio_test_block_on(async {
//! let table = FakeTable::new();
//! table.faults().fail_next(2); // the next two calls fail with StoreError::Retryable
//! assert!(table.put(&[]).await.unwrap_err().is_retryable());
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

//!
//! One file per port: [`head`] ([`FakeHead`]), [`table`] ([`FakeTable`]), [`archive`]
//! ([`FakeArchive`]), [`log`] ([`FakeLog`]), [`catalog`] ([`FakeCatalog`]); this module
//! holds the [`Faults`] they share.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::StoreError;

mod archive;
mod catalog;
mod head;
mod log;
mod table;

pub use archive::FakeArchive;
pub use catalog::FakeCatalog;
pub use head::FakeHead;
pub use log::FakeLog;
pub use table::FakeTable;

pub(crate) const SERVICE: &str = "fake";

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread poisons the lock; the state is still usable for the others.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How an injected fault fails a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// `StoreError::Retryable`, as after throttling or a timeout.
    Retryable,
    /// `StoreError::Fatal`, as for a missing table.
    Fatal,
    /// For `put` of the table and the log: write the first `n` items or records, then
    /// fail retryably (a deadline ran out halfway). Other calls fail retryably.
    PartialThenRetryable(usize),
}

#[derive(Debug)]
struct FaultRule {
    op: Option<&'static str>,
    remaining: usize,
    kind: FaultKind,
}

/// Faults to inject into a fake: rules consumed by the calls they match, in order.
/// Also counts calls per operation.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
    calls: Mutex<HashMap<&'static str, u64>>,
}

impl Faults {
    /// The next `n` calls (any operation) fail retryably.
    pub fn fail_next(&self, n: usize) {
        self.inject(None, n, FaultKind::Retryable);
    }

    /// The next `n` calls of operation `op` (the port method's name: `"append"`,
    /// `"put"`, `"read"`, …) fail retryably.
    pub fn fail_next_op(&self, op: &'static str, n: usize) {
        self.inject(Some(op), n, FaultKind::Retryable);
    }

    /// The next `n` calls of `op` (or of any operation if `None`) fail as `kind`.
    pub fn inject(&self, op: Option<&'static str>, n: usize, kind: FaultKind) {
        if n > 0 {
            lock(&self.rules).push(FaultRule {
                op,
                remaining: n,
                kind,
            });
        }
    }

    /// Drops every pending fault.
    pub fn clear(&self) {
        lock(&self.rules).clear();
    }

    /// How many calls of `op` the fake received (failed ones included).
    #[must_use]
    pub fn calls(&self, op: &str) -> u64 {
        lock(&self.calls).get(op).copied().unwrap_or(0)
    }

    /// Counts the call and returns the fault it must suffer, if any.
    fn take(&self, op: &'static str) -> Option<FaultKind> {
        *lock(&self.calls).entry(op).or_insert(0) += 1;
        let mut rules = lock(&self.rules);
        let i = rules.iter().position(|r| r.op.is_none_or(|o| o == op))?;
        let kind = rules[i].kind;
        rules[i].remaining -= 1;
        if rules[i].remaining == 0 {
            rules.remove(i);
        }
        Some(kind)
    }

    /// `Err` if the call must fail outright; `Ok(Some(n))` if a put must stop after `n`.
    pub(crate) fn check(&self, op: &'static str) -> Result<Option<usize>, StoreError> {
        match self.take(op) {
            None => Ok(None),
            Some(FaultKind::PartialThenRetryable(n)) => Ok(Some(n)),
            Some(FaultKind::Retryable) => Err(injected(op, true)),
            Some(FaultKind::Fatal) => Err(injected(op, false)),
        }
    }
}

pub(crate) fn injected(op: &'static str, retryable: bool) -> StoreError {
    if retryable {
        StoreError::retryable(SERVICE, op, "injected fault")
    } else {
        StoreError::fatal(SERVICE, op, "injected fault")
    }
}

#[cfg(test)]
mod tests;
