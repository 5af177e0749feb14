//! [`Keys`]: the key store as the routes see it — the last good [`KeyStore`], reloaded
//! from its [`KeySource`] at most every `refresh_secs`, so that a key revoked in the
//! source stops working within that time (≤ 60 s) in every warm container.
//!
//! The refresh is lazy: the first request after the store is due reloads it (one at a
//! time; requests that arrive meanwhile use the store they have). A Lambda container is
//! frozen between invocations, so a background timer would not run there, while a
//! request always does. A failed reload keeps the last good store and is logged: a
//! Secrets Manager outage never locks every client out. The first load has no store to
//! fall back on, so it fails the start instead.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;

use carat_store::env::API_KEYS_SECRET_ARN;

use crate::auth::KeyStore;
use crate::clock::Clock;

/// The error of a failed load, as the source reports it (logged, never sent to clients).
pub type LoadError = Box<dyn std::error::Error + Send + Sync>;

/// Seconds between reloads unless configured: a revoked key works at most this long.
pub const DEFAULT_REFRESH_SECS: i64 = 60;
/// The longest refresh interval accepted: the promise is "revoked within a minute".
pub const MAX_REFRESH_SECS: i64 = 60;
/// The variable that sets the refresh interval (whole seconds, 1–60).
pub const REFRESH_SECS_VAR: &str = "CARAT_API_KEYS_REFRESH_SECS";

/// Where a key store is loaded from: the Secrets Manager secret in the Lambda
/// (`src/main.rs`), the keys file in carat-local ([`FileKeySource`]), a test's map.
#[async_trait]
pub trait KeySource: Send + Sync {
    /// Names the source for logs (a path, a variable): never a key or a hash.
    fn describe(&self) -> String;

    /// Loads the whole store.
    ///
    /// # Errors
    /// Whatever kept the source from answering with a valid store.
    async fn load(&self) -> Result<KeyStore, LoadError>;
}

/// A keys file (JSON if its name ends in `.json`, TOML otherwise), read again on every
/// refresh: edit it and the change applies within `refresh_secs`.
#[derive(Debug, Clone)]
pub struct FileKeySource {
    pub path: std::path::PathBuf,
}

#[async_trait]
impl KeySource for FileKeySource {
    fn describe(&self) -> String {
        format!("keys file {}", self.path.display())
    }

    async fn load(&self) -> Result<KeyStore, LoadError> {
        Ok(KeyStore::load(&self.path)?)
    }
}

/// The refreshable key store of a process.
pub struct Keys {
    current: RwLock<Arc<KeyStore>>,
    source: Option<Arc<dyn KeySource>>,
    clock: Arc<dyn Clock>,
    refresh_ms: i64,
    /// When the next reload is due, epoch ms.
    due_ms: AtomicI64,
    /// Held while reloading, so that one request reloads and the others go on.
    reloading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("keys", &self.snapshot().len())
            .field("source", &self.source.as_ref().map(|s| s.describe()))
            .field("refresh_ms", &self.refresh_ms)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// A store that is never reloaded (tests, and keys given as JSON text in the
    /// environment, which cannot change while the process runs).
    #[must_use]
    pub fn fixed(store: Arc<KeyStore>) -> Self {
        Self {
            current: RwLock::new(store),
            source: None,
            clock: Arc::new(crate::clock::SystemClock),
            refresh_ms: 0,
            due_ms: AtomicI64::new(i64::MAX),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// Loads the store from `source` now and reloads it at most every `refresh_secs`
    /// (clamped to 1–[`MAX_REFRESH_SECS`]) on `clock`.
    ///
    /// # Errors
    /// The source's error if this first load fails (there is nothing to fall back on).
    pub async fn load(
        source: Arc<dyn KeySource>,
        clock: Arc<dyn Clock>,
        refresh_secs: i64,
    ) -> Result<Self, LoadError> {
        let store = source
            .load()
            .await
            .map_err(|e| format!("key store from {}: {e}", source.describe()))?;
        Ok(Self::refreshed_from(store, source, clock, refresh_secs))
    }

    /// A store already loaded from `source` (now), reloaded as [`Keys::load`] does.
    #[must_use]
    pub fn refreshed_from(
        store: KeyStore,
        source: Arc<dyn KeySource>,
        clock: Arc<dyn Clock>,
        refresh_secs: i64,
    ) -> Self {
        let refresh_ms = refresh_secs.clamp(1, MAX_REFRESH_SECS) * 1000;
        let due = clock.now_ms().saturating_add(refresh_ms);
        Self {
            current: RwLock::new(Arc::new(store)),
            source: Some(source),
            clock,
            refresh_ms,
            due_ms: AtomicI64::new(due),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// carat-local's store: the JSON text of `CARAT_API_KEYS` if set (fixed), else the
    /// file named by `CARAT_API_KEYS_FILE`, else [`crate::auth::LOCAL_KEYS_FILE`],
    /// reloaded every `CARAT_API_KEYS_REFRESH_SECS` (default 60).
    ///
    /// # Errors
    /// A bad refresh interval, or the first load's error.
    pub async fn from_env(
        env: impl Fn(&str) -> Option<String>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LoadError> {
        let refresh_secs = refresh_secs_from_env(&env)?;
        if let Some(json) = env("CARAT_API_KEYS") {
            let store = KeyStore::from_json(&json)
                .map_err(|e| format!("key store from CARAT_API_KEYS: {e}"))?;
            return Ok(Self::fixed(Arc::new(store)));
        }
        let path =
            env("CARAT_API_KEYS_FILE").unwrap_or_else(|| crate::auth::LOCAL_KEYS_FILE.to_string());
        let source = Arc::new(FileKeySource { path: path.into() });
        Self::load(source, clock, refresh_secs).await
    }

    /// The store to check a request against, reloaded first if it is due.
    pub async fn current(&self) -> Arc<KeyStore> {
        if let Some(source) = &self.source {
            if self.clock.now_ms() >= self.due_ms.load(Ordering::Acquire) {
                // Another request is reloading: use the store we have rather than wait.
                if let Ok(_guard) = self.reloading.try_lock() {
                    // Checked again under the lock: the reload may just have finished.
                    let now = self.clock.now_ms();
                    if now >= self.due_ms.load(Ordering::Acquire) {
                        self.reload(source.as_ref(), now).await;
                    }
                }
            }
        }
        self.snapshot()
    }

    /// The store as it is, without reloading.
    #[must_use]
    pub fn snapshot(&self) -> Arc<KeyStore> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    async fn reload(&self, source: &dyn KeySource, now: i64) {
        match source.load().await {
            Ok(store) => {
                let keys = store.len();
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(store);
                tracing::debug!(source = %source.describe(), keys, "key store reloaded");
            }
            Err(e) => tracing::warn!(
                source = %source.describe(),
                error = %e,
                "key store reload failed; keeping the last good store"
            ),
        }
        // A failed reload waits a full interval too: retrying on every request would
        // hammer a source that is already failing.
        self.due_ms
            .store(now.saturating_add(self.refresh_ms), Ordering::Release);
    }
}

/// The refresh interval from [`REFRESH_SECS_VAR`]: [`DEFAULT_REFRESH_SECS`] if unset.
///
/// # Errors
/// A message if it is set to anything but whole seconds from 1 to [`MAX_REFRESH_SECS`].
pub fn refresh_secs_from_env(env: impl Fn(&str) -> Option<String>) -> Result<i64, String> {
    let Some(text) = env(REFRESH_SECS_VAR) else {
        return Ok(DEFAULT_REFRESH_SECS);
    };
    match text.trim().parse::<i64>() {
        Ok(secs) if (1..=MAX_REFRESH_SECS).contains(&secs) => Ok(secs),
        _ => Err(format!(
            "{REFRESH_SECS_VAR} is `{text}`: it must be whole seconds from 1 to {MAX_REFRESH_SECS}"
        )),
    }
}

/// The key store in Secrets Manager, fetched whole on every reload.
pub struct SecretKeys {
    pub sdk: aws_config::SdkConfig,
    pub secret_id: String,
}

#[async_trait]
impl KeySource for SecretKeys {
    fn describe(&self) -> String {
        format!("the secret named by {API_KEYS_SECRET_ARN}")
    }

    async fn load(&self) -> Result<KeyStore, LoadError> {
        let json = carat_store::secrets::fetch_secret_string(
            &self.sdk,
            API_KEYS_SECRET_ARN,
            &self.secret_id,
        )
        .await?;
        Ok(KeyStore::from_json(json.expose())?)
    }
}

/// The key store of a Lambda (the ingest API, the reader, the probe), from its
/// environment: the Secrets Manager secret named by `CARAT_API_KEYS_SECRET_ARN` (as
/// deployed; reloaded at most every `CARAT_API_KEYS_REFRESH_SECS`), else the fixed JSON
/// text of `CARAT_API_KEYS` (local use).
///
/// # Errors
/// Neither is set, the secret is empty or cannot be read, or the JSON is invalid.
pub async fn from_lambda_env(
    env: impl Fn(&str) -> Option<String>,
    sdk: &aws_config::SdkConfig,
) -> Result<Keys, Box<dyn std::error::Error + Send + Sync>> {
    let refresh_secs = refresh_secs_from_env(&env)?;
    Ok(
        match env(API_KEYS_SECRET_ARN).map(|id| id.trim().to_string()) {
            Some(secret_id) if !secret_id.is_empty() => {
                let source = Arc::new(SecretKeys {
                    sdk: sdk.clone(),
                    secret_id,
                });
                Keys::load(source, Arc::new(crate::SystemClock), refresh_secs).await?
            }
            Some(_) => return Err(format!("{API_KEYS_SECRET_ARN} is set but empty").into()),
            None => match env("CARAT_API_KEYS") {
                Some(json) => Keys::fixed(Arc::new(
                    KeyStore::from_json(&json)
                        .map_err(|e| format!("key store from CARAT_API_KEYS: {e}"))?,
                )),
                None => {
                    return Err(format!(
                        "neither {API_KEYS_SECRET_ARN} nor CARAT_API_KEYS is set: one gives the \
                     API key store (docs/api.md)"
                    )
                    .into())
                }
            },
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_interval_from_env() {
        assert_eq!(refresh_secs_from_env(|_| None), Ok(60));
        assert_eq!(
            refresh_secs_from_env(|n| (n == REFRESH_SECS_VAR).then(|| " 15 ".into())),
            Ok(15)
        );
        for bad in ["0", "61", "-1", "1.5", "soon"] {
            assert!(
                refresh_secs_from_env(|n| (n == REFRESH_SECS_VAR).then(|| bad.into())).is_err(),
                "{bad}"
            );
        }
    }
}
