//! The everyday `carat` client commands (docs/cli.md): `put`, `query`, `series`, `bench`.
//! They talk HTTP to a running carat — the local system by default, or any deployment
//! with a URL and a key — through the public API (docs/api.md), never to the stores.
//!
//! Module map, in the order a command flows through it:
//! - [`Conn`] (here): `--url`, `--key`, `--timeout`, shared by every client command.
//! - [`time`]: times and ranges on the command line (epoch, RFC 3339, `-6h`, `now`).
//! - [`input`]: points from arguments, JSON and CSV files, each validated whole first
//!   (the server's own parser and rules) so that a bad file sends nothing.
//! - [`http`]: [`http::Api`], carat_probe's HTTP client with the key, the server's error
//!   message on failure and retries of 503/429.
//! - [`progress`]: progress bars on a terminal (indicatif), nothing otherwise.
//! - [`put`], [`query`], [`series`], [`bench`]: one file per command.
//! - [`CliError`] (here): what can go wrong, and its exit code.

pub mod bench;
pub mod http;
pub mod input;
pub mod progress;
pub mod put;
pub mod query;
pub mod series;
pub mod time;

/// The local development key (config/api-keys.local.toml), used when no key is given and
/// the URL is a loopback address.
pub const DEV_KEY: &str = "carat-dev-key";

/// Where carat is and which key to use: every client command takes these.
#[derive(Debug, Clone, clap::Args)]
pub struct Conn {
    /// carat's base URL (the ingest and read API).
    #[arg(long, env = "CARAT_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API key (sent as X-Api-Key). Without one, the local development key
    /// `carat-dev-key` is used, but only when the URL is a loopback address
    /// (127.0.0.0/8, ::1, localhost); any other URL needs a key.
    #[arg(long, env = "CARAT_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub timeout: u64,
}

/// Output formats of `query` and `series`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a person.
    Table,
    /// `series,time,value` rows with a header (what `carat put` reads back).
    Csv,
    /// The server's JSON answer as it came.
    Json,
}

/// What a client command can fail with. Exit codes (docs/cli.md): 2 bad usage or bad
/// input (nothing was sent), 1 the server refused or failed, 3 carat could not be
/// reached, 4 `bench --verify` found missing or wrong points.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments, or a bad file (named with its line and field): nothing was sent.
    #[error("{0}")]
    Input(String),
    /// The server answered with an error (its message is in the text).
    #[error("{0}")]
    Server(String),
    /// No answer: connection refused, DNS, TLS, a timeout.
    #[error("{0}")]
    Unreachable(String),
    /// `bench --verify`: points missing or wrong after the wait.
    #[error("{0}")]
    Verify(String),
    /// A local failure (writing the output, the TLS setup).
    #[error("{0}")]
    Local(String),
}

impl CliError {
    /// The process exit code of this error.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Input(_) => 2,
            Self::Server(_) | Self::Local(_) => 1,
            Self::Unreachable(_) => 3,
            Self::Verify(_) => 4,
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        Self::Local(format!("writing the output: {e}"))
    }
}

/// Formats a value so that it reads back as the same f64 (shortest round-trip form),
/// without exponents except for very large and very small magnitudes.
#[must_use]
pub fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-5..1e16).contains(&a) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn values_print_so_they_read_back() {
        for v in [
            0.0,
            -0.0,
            12.5,
            3.0,
            0.1 + 0.2,
            1e300,
            -2.5e-12,
            f64::MAX,
            f64::MIN_POSITIVE,
            123_456_789.123,
        ] {
            let s = fmt_value(v);
            assert_eq!(s.parse::<f64>().map(f64::to_bits), Ok(v.to_bits()), "{s}");
        }
        assert_eq!(fmt_value(3.0), "3");
        assert_eq!(fmt_value(1e300), "1e300");
        assert_eq!(fmt_value(f64::NAN), "NaN");
        assert_eq!(fmt_value(f64::NEG_INFINITY), "-Inf");
    }
}
