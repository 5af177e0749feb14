//! The carat config of carat-local: a TOML file (`--config`), or without one what the
//! environment gives (`CARAT_CONFIG` as TOML text, or `CARAT_CONFIG_FILE` as a path,
//! else the defaults, which match the local system), and then environment overrides, so a
//! test or a second instance can point elsewhere without a file of its own:
//!
//! | variable | config key | example |
//! |---|---|---|
//! | `CARAT_REDIS_NODES` | `redis.nodes` | `127.0.0.1:7000,127.0.0.1:7001` (scheme optional) |
//! | `CARAT_STREAM` | `resources.stream` | `carat-points` |
//! | `CARAT_TABLE` | `resources.table` | `carat-windows` |
//! | `CARAT_ARCHIVE_BUCKET` | `resources.archive_bucket` | `carat-archive` |
//! | `CARAT_CATALOG_TABLE` | `resources.catalog_table` | `carat-catalog` |
//!
//! One implementation, shared with the Lambdas: `carat_store::env`.
//! The AWS endpoint and credentials come from the SDK's own variables (`AWS_ENDPOINT_URL`, …).

use std::path::Path;

use carat_core::Config;
use carat_store::env::EnvError;

use crate::LocalError;

/// Loads the config file (if any), applies the overrides found by `env`, and validates.
///
/// `env` is `|name| std::env::var(name).ok()` in the binary; tests pass a map.
///
/// # Errors
/// [`LocalError::ReadConfig`] if the file cannot be read, [`LocalError::Config`] naming the
/// key at fault, [`LocalError::Env`] for an unusable override.
pub fn load(
    path: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, LocalError> {
    let loaded = match path {
        Some(path) => carat_store::env::config_from_file(path, env),
        None => carat_store::env::config_from(env),
    };
    loaded.map_err(|e| match e {
        EnvError::Var { var, reason } => LocalError::Env { var, reason },
        EnvError::ReadFile { path, source } => LocalError::ReadConfig { path, source },
        EnvError::Config { origin, source } => LocalError::Config { origin, source },
        EnvError::Secret { var, detail } => LocalError::Env {
            var,
            reason: detail,
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
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
    fn without_a_file_the_defaults_match_the_local_system() {
        let config = load(None, env(&[])).expect("defaults are valid");
        assert_eq!(config.redis.nodes.len(), 6);
        assert_eq!(config.redis.nodes[0], "redis://127.0.0.1:7000");
        assert_eq!(config.resources.stream, "carat-points");
    }

    #[test]
    fn the_repository_local_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/local.toml");
        let config = load(Some(&path), env(&[])).expect("config/local.toml is valid");
        assert_eq!(config.resources.table, "carat-windows");
        assert_eq!(config.resources.archive_bucket, "carat-archive");
        assert_eq!(config.resources.catalog_table, "carat-catalog");
    }

    #[test]
    fn environment_overrides_win() {
        let config = load(
            None,
            env(&[
                (
                    "CARAT_REDIS_NODES",
                    "127.0.0.1:7100, redis://10.0.0.1:6379,",
                ),
                ("CARAT_STREAM", "s"),
                ("CARAT_TABLE", "t"),
                ("CARAT_ARCHIVE_BUCKET", "b"),
            ]),
        )
        .expect("overrides are valid");
        assert_eq!(
            config.redis.nodes,
            ["redis://127.0.0.1:7100", "redis://10.0.0.1:6379"]
        );
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
    fn bad_overrides_name_the_variable() {
        let err = load(None, env(&[("CARAT_REDIS_NODES", " , ")])).expect_err("must fail");
        assert!(
            matches!(
                err,
                LocalError::Env {
                    var: "CARAT_REDIS_NODES",
                    ..
                }
            ),
            "{err}"
        );
        let err = load(None, env(&[("CARAT_TABLE", "")])).expect_err("must fail");
        assert!(
            matches!(
                err,
                LocalError::Env {
                    var: "CARAT_TABLE",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_bad_file_names_the_file_and_key() {
        let dir = std::env::temp_dir().join(format!("carat-local-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("bad.toml");
        std::fs::write(&path, "[window]\nraw_secs = 0\n").expect("write temp file");
        let err = load(Some(&path), env(&[])).expect_err("must fail");
        let text = err.to_string();
        assert!(
            text.contains("bad.toml") && text.contains("window.raw_secs"),
            "{text}"
        );
        let err = load(Some(&dir.join("missing.toml")), env(&[])).expect_err("must fail");
        assert!(matches!(err, LocalError::ReadConfig { .. }), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
