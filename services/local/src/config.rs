//! The carat config of carat-local: a TOML file (`--config` or `CARAT_CONFIG`; without
//! one, the defaults, which match the local system) and then environment overrides, so a
//! test or a second instance can point elsewhere without a file of its own:
//!
//! | variable | config key | example |
//! |---|---|---|
//! | `CARAT_REDIS_NODES` | `redis.nodes` | `127.0.0.1:7000,127.0.0.1:7001` (scheme optional) |
//! | `CARAT_STREAM` | `resources.stream` | `carat-points` |
//! | `CARAT_TABLE` | `resources.table` | `carat-windows` |
//! | `CARAT_ARCHIVE_BUCKET` | `resources.archive_bucket` | `carat-archive` |
//!
//! The AWS endpoint and credentials come from the SDK's own variables (`AWS_ENDPOINT_URL`, …).

use std::path::Path;

use carat_core::Config;

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
    let (mut config, origin) = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| LocalError::ReadConfig {
                path: path.to_path_buf(),
                source,
            })?;
            let origin = path.display().to_string();
            let config = Config::from_toml(&text).map_err(|source| LocalError::Config {
                origin: origin.clone(),
                source,
            })?;
            (config, origin)
        }
        None => (Config::default(), "built-in defaults".to_string()),
    };
    apply_env(&mut config, env)?;
    // The overrides can break a relation the file satisfied (an empty node list, say).
    config.validate().map_err(|source| LocalError::Config {
        origin: format!("{origin} with CARAT_* overrides"),
        source,
    })?;
    Ok(config)
}

fn apply_env(config: &mut Config, env: impl Fn(&str) -> Option<String>) -> Result<(), LocalError> {
    if let Some(nodes) = env("CARAT_REDIS_NODES") {
        let nodes: Vec<String> = nodes
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| {
                if n.contains("://") {
                    n.to_string()
                } else {
                    format!("redis://{n}")
                }
            })
            .collect();
        if nodes.is_empty() {
            return Err(LocalError::Env {
                var: "CARAT_REDIS_NODES",
                reason: "names no node (expected host:port[,host:port…])".to_string(),
            });
        }
        config.redis.nodes = nodes;
    }
    let names = [
        ("CARAT_STREAM", &mut config.resources.stream),
        ("CARAT_TABLE", &mut config.resources.table),
        ("CARAT_ARCHIVE_BUCKET", &mut config.resources.archive_bucket),
    ];
    for (var, field) in names {
        if let Some(value) = env(var) {
            let value = value.trim();
            if value.is_empty() {
                return Err(LocalError::Env {
                    var,
                    reason: "is set but empty".to_string(),
                });
            }
            *field = value.to_string();
        }
    }
    Ok(())
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
