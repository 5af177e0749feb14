//! What can stop carat-local. Everything here ends the process with a message naming
//! the file, address or dependency at fault.

use std::{net::SocketAddr, path::PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum LocalError {
    #[error("reading config {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config from {origin}: {source}")]
    Config {
        origin: String,
        source: carat_core::ConfigError,
    },
    #[error("environment variable {var}: {reason}")]
    Env { var: &'static str, reason: String },
    #[error("connecting to {dependency}: {detail}")]
    Connect {
        dependency: &'static str,
        detail: String,
    },
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("http server: {0}")]
    Serve(std::io::Error),
    #[error("background task {task} failed: {detail}")]
    Task { task: &'static str, detail: String },
}
