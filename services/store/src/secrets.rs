//! Secrets fetched once at cold start from Secrets Manager, named by an environment
//! variable holding the secret's ARN (see [`crate::env`]). A [`Secret`] never shows its
//! value in `Debug` or `Display`, so it cannot reach a log by accident.

use aws_config::SdkConfig;

use crate::env::{EnvError, REDIS_AUTH_SECRET_ARN};

/// A secret string; `Debug` prints `Secret(***)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    #[must_use]
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The value, for the one place that needs it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The string value of the secret whose ARN (or name) is `secret_id`; `var` is the
/// variable that named it, for the error.
///
/// # Errors
/// [`EnvError::Secret`] if Secrets Manager does not answer with a string value.
pub async fn fetch_secret_string(
    sdk: &SdkConfig,
    var: &'static str,
    secret_id: &str,
) -> Result<Secret, EnvError> {
    let out = aws_sdk_secretsmanager::Client::new(sdk)
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| EnvError::Secret {
            var,
            detail: format!(
                "GetSecretValue {secret_id}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            ),
        })?;
    match out.secret_string {
        Some(value) => Ok(Secret(value)),
        None => Err(EnvError::Secret {
            var,
            detail: format!("{secret_id} has no string value (binary secrets are not supported)"),
        }),
    }
}

/// The secret named by the ARN in variable `var`, if `var` is set (and not empty).
///
/// # Errors
/// As [`fetch_secret_string`].
pub async fn secret_from_env(
    sdk: &SdkConfig,
    var: &'static str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, EnvError> {
    match env(var) {
        Some(id) if !id.trim().is_empty() => {
            fetch_secret_string(sdk, var, id.trim()).await.map(Some)
        }
        Some(_) => Err(EnvError::Var {
            var,
            reason: "is set but empty".to_string(),
        }),
        None => Ok(None),
    }
}

/// The Redis AUTH token named by `CARAT_REDIS_AUTH_SECRET_ARN` (none if unset: the local
/// cluster has no AUTH). Surrounding whitespace is dropped.
///
/// # Errors
/// As [`fetch_secret_string`].
pub async fn redis_password(
    sdk: &SdkConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, EnvError> {
    Ok(secret_from_env(sdk, REDIS_AUTH_SECRET_ARN, env)
        .await?
        .map(|s| Secret(s.0.trim().to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{:?}", Some(&s)), "Some(Secret(***))");
        assert_eq!(s.expose(), "hunter2");
    }
}
