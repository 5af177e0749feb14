//! What the routes and tasks of carat-local share, apart from `serve` so that every
//! module that uses it (pollers, schedules, the reader) imports downward.

use std::sync::Arc;

use carat_core::Config;
use tokio::sync::watch;

use crate::clients::Clients;
use crate::LocalError;

/// What every route and task shares: the config and the clients, built once.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub clients: Clients,
    /// The local end-to-end probe's target and last result (`probe` task, `/health`).
    pub probe: Arc<crate::probe::LocalProbe>,
}

/// How a background task ends: `Err` names the task and the cause.
pub type TaskResult = Result<(), LocalError>;

/// Fires once, on SIGINT/SIGTERM or when a task fails; every task watches it.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A shutdown that fires when `stop` turns true (or its sender is dropped).
    #[must_use]
    pub fn new(stop: watch::Receiver<bool>) -> Self {
        Self(stop)
    }

    /// Resolves once shutdown has been asked for.
    pub async fn wait(mut self) {
        // An error means the sender is gone, which also means: stop.
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    #[must_use]
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }
}
