//! The carat config from the environment: one loader for the Lambda `main`s and carat-local.
//!
//! The base is TOML: the text of `CARAT_CONFIG`, or the file named by `CARAT_CONFIG_FILE`
//! (setting both is an error), or the built-in defaults (which match the local system).
//! Then the deployment's resource names override it, and the result is validated:
//!
//! | variable | config key | example |
//! |---|---|---|
//! | `CARAT_REDIS_NODES` | `redis.nodes` | `rediss://host:6379` or `127.0.0.1:7000,127.0.0.1:7001` (scheme optional, `redis://` if none) |
//! | `CARAT_STREAM` | `resources.stream` | `carat-points` |
//! | `CARAT_TABLE` | `resources.table` | `carat-windows` |
//! | `CARAT_ARCHIVE_BUCKET` | `resources.archive_bucket` | `carat-archive` |
//! | `CARAT_CATALOG_TABLE` | `resources.catalog_table` | `carat-catalog` |
//!
//! Secrets are not config: `CARAT_REDIS_AUTH_SECRET_ARN` and `CARAT_API_KEYS_SECRET_ARN`
//! name Secrets Manager secrets fetched at cold start ([`crate::secrets`]).
//! Every error names the variable (or the config key) at fault.

use std::path::{Path, PathBuf};

use carat_core::{Config, ConfigError};
use thiserror::Error;

/// carat.toml text (what the CDK app hands the functions).
pub const CONFIG: &str = "CARAT_CONFIG";
/// Path of a carat.toml file.
pub const CONFIG_FILE: &str = "CARAT_CONFIG_FILE";
/// Comma-separated Redis node URLs.
pub const REDIS_NODES: &str = "CARAT_REDIS_NODES";
/// Kinesis stream name.
pub const STREAM: &str = "CARAT_STREAM";
/// DynamoDB table name.
pub const TABLE: &str = "CARAT_TABLE";
/// S3 archive bucket name.
pub const ARCHIVE_BUCKET: &str = "CARAT_ARCHIVE_BUCKET";
/// DynamoDB series catalog table name.
pub const CATALOG_TABLE: &str = "CARAT_CATALOG_TABLE";
/// Secrets Manager ARN of the Redis AUTH token (a plain string).
pub const REDIS_AUTH_SECRET_ARN: &str = "CARAT_REDIS_AUTH_SECRET_ARN";
/// Secrets Manager ARN of the API key store (JSON, docs/api.md "Key store").
pub const API_KEYS_SECRET_ARN: &str = "CARAT_API_KEYS_SECRET_ARN";

/// What is wrong with the configuration the environment gives.
#[derive(Debug, Error)]
pub enum EnvError {
    /// A variable is set to something unusable.
    #[error("environment variable {var}: {reason}")]
    Var { var: &'static str, reason: String },
    /// The config file cannot be read.
    #[error("reading config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The config (TOML or after the overrides) is invalid; `source` names the key.
    #[error("config from {origin}: {source}")]
    Config { origin: String, source: ConfigError },
    /// A secret named by `var` could not be fetched.
    #[error("secret named by {var}: {detail}")]
    Secret { var: &'static str, detail: String },
}

/// [`config_from`] with the process environment.
///
/// # Errors
/// See [`config_from`].
pub fn config_from_env() -> Result<Config, EnvError> {
    config_from(|name| std::env::var(name).ok())
}

/// The config that `env` (a variable lookup: `|name| std::env::var(name).ok()` in a binary,
/// a map in tests) describes: base TOML, overrides, validation.
///
/// # Errors
/// [`EnvError::Var`] naming the variable at fault, [`EnvError::ReadFile`] for an unreadable
/// `CARAT_CONFIG_FILE`, [`EnvError::Config`] naming the variable and the config key at fault.
pub fn config_from(env: impl Fn(&str) -> Option<String>) -> Result<Config, EnvError> {
    let text = env(CONFIG);
    let file = env(CONFIG_FILE);
    let (config, origin) = match (text, file) {
        (Some(_), Some(_)) => {
            return Err(EnvError::Var {
                var: CONFIG_FILE,
                reason: format!("is set together with {CONFIG}; set one of them"),
            })
        }
        (Some(text), None) => (parse(&text, CONFIG.to_string())?, CONFIG.to_string()),
        (None, Some(path)) => {
            if path.trim().is_empty() {
                return Err(EnvError::Var {
                    var: CONFIG_FILE,
                    reason: "is set but empty".to_string(),
                });
            }
            let path = PathBuf::from(path);
            let text = read(&path)?;
            let origin = format!("{CONFIG_FILE}={}", path.display());
            (parse(&text, origin.clone())?, origin)
        }
        (None, None) => (Config::default(), "built-in defaults".to_string()),
    };
    finish(config, &origin, env)
}

/// The config of the file at `path` (carat-local's `--config`) with the overrides of `env`;
/// `CARAT_CONFIG` and `CARAT_CONFIG_FILE` are not consulted.
///
/// # Errors
/// As [`config_from`].
pub fn config_from_file(
    path: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, EnvError> {
    let text = read(path)?;
    let origin = path.display().to_string();
    let config = parse(&text, origin.clone())?;
    finish(config, &origin, env)
}

fn read(path: &Path) -> Result<String, EnvError> {
    std::fs::read_to_string(path).map_err(|source| EnvError::ReadFile {
        path: path.to_path_buf(),
        source,
    })
}

fn parse(text: &str, origin: String) -> Result<Config, EnvError> {
    Config::from_toml(text).map_err(|source| EnvError::Config { origin, source })
}

fn finish(
    mut config: Config,
    origin: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, EnvError> {
    apply_overrides(&mut config, env)?;
    // The overrides can break a relation the base satisfied (an empty node list, say).
    config.validate().map_err(|source| EnvError::Config {
        origin: format!("{origin} with CARAT_* overrides"),
        source,
    })?;
    Ok(config)
}

/// Applies the `CARAT_*` resource overrides found by `env` (not validated).
///
/// # Errors
/// [`EnvError::Var`] naming an unusable variable.
pub fn apply_overrides(
    config: &mut Config,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(), EnvError> {
    if let Some(nodes) = env(REDIS_NODES) {
        config.redis.nodes = parse_nodes(&nodes)?;
    }
    let names = [
        (STREAM, &mut config.resources.stream),
        (TABLE, &mut config.resources.table),
        (ARCHIVE_BUCKET, &mut config.resources.archive_bucket),
        (CATALOG_TABLE, &mut config.resources.catalog_table),
    ];
    for (var, field) in names {
        if let Some(value) = env(var) {
            let value = value.trim();
            if value.is_empty() {
                return Err(EnvError::Var {
                    var,
                    reason: "is set but empty".to_string(),
                });
            }
            *field = value.to_string();
        }
    }
    Ok(())
}

fn parse_nodes(nodes: &str) -> Result<Vec<String>, EnvError> {
    let mut out = Vec::new();
    for node in nodes.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let url = match node.split_once("://") {
            Some(("redis" | "rediss", rest)) if !rest.is_empty() => node.to_string(),
            Some((scheme, _)) => {
                return Err(EnvError::Var {
                    var: REDIS_NODES,
                    reason: format!(
                        "node {node:?}: scheme {scheme:?} is not redis:// or rediss://"
                    ),
                })
            }
            None => format!("redis://{node}"),
        };
        out.push(url);
    }
    if out.is_empty() {
        return Err(EnvError::Var {
            var: REDIS_NODES,
            reason: "names no node (expected [redis[s]://]host:port[,…])".to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn without_variables_the_defaults_match_the_local_system() {
        let config = config_from(env(&[])).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.redis.nodes[0], "redis://127.0.0.1:7000");
    }

    #[test]
    fn config_text_then_overrides() {
        let config = config_from(env(&[
            (
                CONFIG,
                "[redis]\ncommand_timeout_ms = 750\n[resources]\nstream = \"from-toml\"\n",
            ),
            (REDIS_NODES, "rediss://clustercfg.example:6379"),
            (STREAM, " s "),
            (TABLE, "t"),
            (ARCHIVE_BUCKET, "b"),
            (CATALOG_TABLE, "c"),
        ]))
        .unwrap();
        assert_eq!(config.resources.catalog_table, "c");
        assert_eq!(config.redis.command_timeout_ms, 750);
        assert_eq!(config.redis.nodes, ["rediss://clustercfg.example:6379"]);
        assert_eq!(
            (
                config.resources.stream.as_str(),
                config.resources.table.as_str(),
                config.resources.archive_bucket.as_str()
            ),
            ("s", "t", "b")
        );
    }

    #[test]
    fn nodes_without_a_scheme_get_redis() {
        let config = config_from(env(&[(
            REDIS_NODES,
            "127.0.0.1:7100, redis://10.0.0.1:6379,",
        )]))
        .unwrap();
        assert_eq!(
            config.redis.nodes,
            ["redis://127.0.0.1:7100", "redis://10.0.0.1:6379"]
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (pairs, var) in [
            (vec![(REDIS_NODES, " , ")], REDIS_NODES),
            (vec![(REDIS_NODES, "http://x:1")], REDIS_NODES),
            (vec![(TABLE, "")], TABLE),
            (vec![(STREAM, "  ")], STREAM),
            (vec![(ARCHIVE_BUCKET, "")], ARCHIVE_BUCKET),
            (vec![(CATALOG_TABLE, " ")], CATALOG_TABLE),
            (vec![(CONFIG_FILE, "")], CONFIG_FILE),
            (vec![(CONFIG, ""), (CONFIG_FILE, "/x.toml")], CONFIG_FILE),
        ] {
            let err = config_from(env(&pairs)).unwrap_err();
            assert!(
                matches!(err, EnvError::Var { var: v, .. } if v == var),
                "{pairs:?}: {err}"
            );
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn toml_errors_name_the_variable_and_key() {
        let err = config_from(env(&[(CONFIG, "[window]\nraw_secs = 0\n")])).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, EnvError::Config { .. }), "{text}");
        assert!(
            text.contains(CONFIG) && text.contains("window.raw_secs"),
            "{text}"
        );
        let err = config_from(env(&[(CONFIG, "[redis]\nnodez = []\n")])).unwrap_err();
        assert!(err.to_string().contains(CONFIG), "{err}");
    }

    #[test]
    fn config_file_is_read_and_errors_name_it() {
        let dir = std::env::temp_dir().join(format!("carat-store-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, "[resources]\ntable = \"from-file\"\n").unwrap();
        let config = config_from(env(&[(CONFIG_FILE, good.to_str().unwrap())])).unwrap();
        assert_eq!(config.resources.table, "from-file");
        let config = config_from_file(&good, env(&[(TABLE, "t2")])).unwrap();
        assert_eq!(config.resources.table, "t2");

        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "[window]\nraw_secs = 0\n").unwrap();
        let text = config_from(env(&[(CONFIG_FILE, bad.to_str().unwrap())]))
            .unwrap_err()
            .to_string();
        assert!(
            text.contains(CONFIG_FILE)
                && text.contains("bad.toml")
                && text.contains("window.raw_secs"),
            "{text}"
        );
        let missing = dir.join("missing.toml");
        let err = config_from(env(&[(CONFIG_FILE, missing.to_str().unwrap())])).unwrap_err();
        assert!(matches!(err, EnvError::ReadFile { .. }), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_repository_local_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/local.toml");
        let config = config_from_file(&path, env(&[])).unwrap();
        assert_eq!(config.resources.table, "carat-windows");
    }
}
