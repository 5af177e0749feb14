//! The schedules of the write path: the flusher every `flusher.interval_secs`, as the
//! EventBridge rule invokes the flusher Lambda in AWS.

use std::sync::Arc;
use std::time::Duration;

use carat_flusher::Flusher;
use carat_writer::SystemClock;
use tokio::time::MissedTickBehavior;
use tracing::warn;

use crate::state::{AppState, Shutdown, TaskResult};

/// The flusher of the local system (system clock, EMF off: carat-local logs instead).
#[must_use]
pub fn flusher(state: &AppState) -> Flusher {
    Flusher::new(
        Arc::clone(&state.config),
        state.clients.head.clone(),
        state.clients.table.clone(),
        Arc::new(SystemClock),
    )
    .with_emf(false)
}

/// Runs the flusher every `flusher.interval_secs` until shutdown. A failed run is logged
/// (its windows stay dirty for the next run); it never stops the process.
///
/// # Errors
/// None in practice: the signature is the task list's.
pub async fn run_flusher(state: AppState, shutdown: Shutdown) -> TaskResult {
    let flusher = flusher(&state);
    let every = Duration::from_secs(state.config.flusher.interval_secs.max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = flusher.run().await {
                    warn!(error = %e, "flusher run failed; its windows stay dirty");
                }
            }
            () = shutdown.clone().wait() => return Ok(()),
        }
    }
}
