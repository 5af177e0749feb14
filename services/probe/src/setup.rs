//! What a probe needs from its environment (docs/deploy.md "Configuration"):
//!
//! - `CARAT_API_URL`: base URL of the HTTP API (the Services stack output `ApiUrl`);
//! - `CARAT_DEPLOYMENT`: the metric's `Deployment` dimension (e.g. `staging`);
//! - the probe's API key, which needs the `write` and `read` scopes. The key store holds
//!   only hashes, so the key itself comes from a secret of its own: the plain string of the
//!   Secrets Manager secret named by `CARAT_PROBE_API_KEY_SECRET_ARN` (the Storage stack's
//!   `ProbeApiKey`, generated at deployment; its hash goes into the key store under the
//!   name `probe`, docs/deploy.md), else the variable `CARAT_PROBE_API_KEY` (local use).

use aws_config::SdkConfig;
use carat_store::env::EnvError;
use carat_store::secrets::{secret_from_env, Secret};

/// Base URL of the HTTP API.
pub const API_URL: &str = "CARAT_API_URL";
/// The `Deployment` dimension of the metric.
pub const DEPLOYMENT: &str = "CARAT_DEPLOYMENT";
/// ARN of the secret whose plain string is the probe's API key (as deployed).
pub const API_KEY_SECRET_ARN: &str = "CARAT_PROBE_API_KEY_SECRET_ARN";
/// The probe's API key itself (local use; never set in AWS).
pub const API_KEY: &str = "CARAT_PROBE_API_KEY";

/// The probe's settings, read once per container.
#[derive(Debug, Clone)]
pub struct Setup {
    pub api_url: String,
    pub deployment: String,
    pub key: Secret,
}

/// A variable that must be set and not blank.
///
/// # Errors
/// [`EnvError::Var`] naming the variable.
pub fn required(
    env: &impl Fn(&str) -> Option<String>,
    var: &'static str,
) -> Result<String, EnvError> {
    match env(var) {
        Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        Some(_) => Err(EnvError::Var {
            var,
            reason: "is set but empty".to_string(),
        }),
        None => Err(EnvError::Var {
            var,
            reason: "is not set".to_string(),
        }),
    }
}

/// The probe's key: the secret named by [`API_KEY_SECRET_ARN`] (trimmed), else
/// [`API_KEY`].
///
/// # Errors
/// The secret cannot be read, is blank, or neither variable is set.
pub async fn api_key(
    sdk: &SdkConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Secret, EnvError> {
    let key = match secret_from_env(sdk, API_KEY_SECRET_ARN, &env).await? {
        Some(secret) => Some((API_KEY_SECRET_ARN, secret.expose().trim().to_string())),
        None => env(API_KEY).map(|k| (API_KEY, k.trim().to_string())),
    };
    match key {
        Some((_, k)) if !k.is_empty() => Ok(Secret::new(k)),
        Some((var, _)) => Err(EnvError::Var {
            var,
            reason: "gives an empty API key".to_string(),
        }),
        None => Err(EnvError::Var {
            var: API_KEY_SECRET_ARN,
            reason: format!(
                "is not set, nor is {API_KEY}: one gives the probe's API key (write and read \
                 scopes, docs/deploy.md)"
            ),
        }),
    }
}

impl Setup {
    /// Reads the settings (fetching the key's secret if named).
    ///
    /// # Errors
    /// A missing variable or an unreadable secret, named.
    pub async fn from_env(
        sdk: &SdkConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, EnvError> {
        Ok(Self {
            api_url: required(&env, API_URL)?,
            deployment: required(&env, DEPLOYMENT)?,
            key: api_key(sdk, &env).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn sdk() -> SdkConfig {
        SdkConfig::builder().build()
    }

    #[tokio::test]
    async fn local_key_and_names_come_from_the_environment() {
        let vars: HashMap<&str, &str> = [
            (API_URL, " http://127.0.0.1:8080/ "),
            (DEPLOYMENT, "local"),
            (API_KEY, " carat-dev-key\n"),
        ]
        .into();
        let setup = Setup::from_env(&sdk(), |v| vars.get(v).map(ToString::to_string))
            .await
            .expect("complete environment");
        assert_eq!(setup.api_url, "http://127.0.0.1:8080/");
        assert_eq!(setup.deployment, "local");
        assert_eq!(setup.key.expose(), "carat-dev-key");
    }

    #[tokio::test]
    async fn missing_pieces_are_named() {
        let vars: HashMap<&str, &str> = [(API_URL, "http://x"), (DEPLOYMENT, "d")].into();
        let err = Setup::from_env(&sdk(), |v| vars.get(v).map(ToString::to_string))
            .await
            .expect_err("no key");
        assert!(err.to_string().contains(API_KEY_SECRET_ARN), "{err}");
        assert!(err.to_string().contains(API_KEY), "{err}");
        let err = Setup::from_env(&sdk(), |_| None).await.expect_err("no url");
        assert!(err.to_string().contains(API_URL), "{err}");
    }
}
