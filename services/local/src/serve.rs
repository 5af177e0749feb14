//! `carat local`: one process that serves HTTP on 127.0.0.1:8080 and runs the background
//! work that Lambda's event source mappings and schedules do in AWS.
//!
//! To add a handler, add one line: an HTTP router to [`router`], a background task to
//! [`spawn_tasks`]. Both get the shared [`AppState`]; tasks also get a [`Shutdown`] and
//! must return soon after it fires.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::Router;
use carat_core::Config;
use tokio::{net::TcpListener, sync::watch, task::JoinSet};

pub use crate::state::{AppState, Shutdown, TaskResult};
use tracing::{error, info, warn};

use crate::{clients, health, LocalError};

/// Options of `carat local`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Examples:\n  carat local --config config/local.toml\n  CARAT_LISTEN=127.0.0.1:9090 carat local\n\nscripts/carat-local.sh start runs it in the background (README.md)."
)]
pub struct LocalArgs {
    /// Address of the HTTP server (health and the ingest API).
    #[arg(long, env = "CARAT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
}

/// Every HTTP route of carat-local, one `.merge` per router: health, the ingest API
/// (the same router the ingest Lambda serves) and the read API (the reader Lambda's) with the API keys in `keys` (reloaded
/// from their file at most every `CARAT_API_KEYS_REFRESH_SECS`, so a revoked key stops
/// working within a minute).
pub fn router(state: &AppState, keys: Arc<carat_api::Keys>) -> Router {
    let (clients, config) = (state.clients.clone(), Arc::clone(&state.config));
    let ingest = carat_api::AppState::with_keys(
        state.clients.log.clone(),
        Arc::clone(&keys),
        Arc::clone(&state.config),
    )
    .with_name_sets(state.clients.catalog.clone());
    Router::new()
        .merge(health::router_with_probe(
            Arc::new(move || clients::probes(&clients, &config)),
            Arc::clone(&state.probe),
        ))
        .merge(carat_api::router(ingest))
        .merge(carat_reader::router(reader(state, keys)))
}

/// The reader's state over this process's clients: the router the reader Lambda serves.
#[must_use]
pub fn reader(state: &AppState, keys: Arc<carat_api::Keys>) -> carat_reader::ReadState {
    let c = &state.clients;
    carat_reader::ReadState {
        tiers: carat_reader::Tiers {
            config: Arc::clone(&state.config),
            head: c.head.clone(),
            table: c.table.clone(),
            archive: carat_reader::archive_tier(c.archive.clone(), &state.config),
        },
        catalog: c.catalog.clone(),
        keys,
        clock: Arc::new(carat_api::SystemClock),
    }
}

/// Every background task of carat-local, one `tasks.spawn` per task. A task returns
/// `Ok(())` once `shutdown` fires; an error (or an early return) stops the process.
pub fn spawn_tasks(state: &AppState, shutdown: &Shutdown, tasks: &mut JoinSet<TaskResult>) {
    tasks.spawn(crate::poller::run_pollers(state.clone(), shutdown.clone()));
    tasks.spawn(crate::schedule::run_flusher(
        state.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(crate::archive::run_ttl_sweeper(
        state.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(crate::probe::run_probe(state.clone(), shutdown.clone()));
    tasks.spawn(crate::archive::run_stream_poller(
        state.clone(),
        shutdown.clone(),
        Arc::new(crate::archive::ArchiverHandler::new(state)),
    ));
    tasks.spawn(crate::archive::run_compactor(
        state.clone(),
        shutdown.clone(),
    ));
}

/// How long tasks get to finish after shutdown before the process exits anyway.
const DRAIN: Duration = Duration::from_secs(10);

/// `carat local`: binds `args.listen` and serves until SIGINT/SIGTERM or a task failure.
///
/// # Errors
/// The first task failure, or a bind/serve failure.
pub async fn run(config: Config, args: &LocalArgs) -> Result<(), LocalError> {
    // API keys: CARAT_API_KEYS (JSON), else CARAT_API_KEYS_FILE, else config/api-keys.local.toml.
    let keys = carat_api::Keys::from_env(
        |name| std::env::var(name).ok(),
        Arc::new(carat_api::SystemClock),
    )
    .await
    .map_err(|e| LocalError::Env {
        var: "CARAT_API_KEYS_FILE",
        reason: e.to_string(),
    })?;
    let clients = clients::connect(&config).await?;
    let probe = Arc::new(crate::probe::LocalProbe::new(
        args.listen,
        config.probe.interval_secs,
    ));
    let state = AppState {
        config: Arc::new(config),
        clients,
        probe,
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|source| LocalError::Bind {
            addr: args.listen,
            source,
        })?;
    let (stop, stop_rx) = watch::channel(false);
    let stop = Arc::new(stop);
    tokio::spawn(on_signal(Arc::clone(&stop)));
    serve(state, Arc::new(keys), listener, Shutdown::new(stop_rx)).await
}

/// Serves [`router`] on `listener` and runs [`spawn_tasks`] until `shutdown` fires or a
/// task fails (as mini-redis's `server::run(listener, shutdown)`): a test binds
/// `127.0.0.1:0` and starts the real server with its own shutdown.
///
/// # Errors
/// The first task failure, or a serve failure.
pub async fn serve(
    state: AppState,
    keys: Arc<carat_api::Keys>,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), LocalError> {
    // Our own stop: fires on the caller's shutdown and on the first task failure.
    let (stop, stop_rx) = watch::channel(false);
    let ours = Shutdown::new(stop_rx);
    let mut tasks = JoinSet::new();
    spawn_tasks(&state, &ours, &mut tasks);

    let addr = listener.local_addr().map_err(LocalError::Serve)?;
    info!(listen = %addr, tasks = tasks.len(), "carat-local serving");
    let server =
        axum::serve(listener, router(&state, keys)).with_graceful_shutdown(ours.clone().wait());
    let mut server = tokio::spawn(async move { server.await.map_err(LocalError::Serve) });

    let mut failure = None;
    let mut outer = Box::pin(shutdown.wait());
    loop {
        tokio::select! {
            () = &mut outer, if !ours.is_set() => {
                stop.send_replace(true);
            }
            served = &mut server => {
                if let Err(e) = served.map_err(|e| LocalError::Serve(std::io::Error::other(e))).and_then(|r| r) {
                    failure.get_or_insert(e);
                }
                break;
            }
            Some(ended) = tasks.join_next(), if !tasks.is_empty() => {
                let result = ended.unwrap_or_else(|e| Err(LocalError::Task { task: "unknown", detail: e.to_string() }));
                if !ours.is_set() {
                    let e = result.err().unwrap_or(LocalError::Task { task: "unknown", detail: "ended before shutdown".to_string() });
                    error!(error = %e, "background task failed; stopping");
                    failure.get_or_insert(e);
                    stop.send_replace(true);
                }
            }
        }
    }
    stop.send_replace(true);
    if tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        warn!("background tasks did not stop within {DRAIN:?}; exiting anyway");
    }
    info!("carat-local stopped");
    failure.map_or(Ok(()), Err)
}

async fn on_signal(stop: Arc<watch::Sender<bool>>) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                futures::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = futures::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        () = term => {}
    }
    info!("shutdown requested");
    stop.send_replace(true);
}
