//! API keys: stored as SHA-256 hashes, each with one tenant and its scopes.
//!
//! The same document shape is read from a local TOML file
//! (`config/api-keys.local.toml`) and, in AWS, from the JSON text of a Secrets Manager
//! secret (see docs/api.md "Auth"):
//!
//! ```json
//! {"keys": [{"name": "dev", "sha256": "<64 hex digits>", "tenant": "default", "scopes": ["write", "read"]}]}
//! ```
//!
//! A presented key is hashed and compared with every stored hash in constant time, so
//! neither the comparison nor the position of a match leaks through timing.

use axum::http::{header, HeaderMap};
use carat_core::Tenant;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::error::AppError;

/// The local keys file, relative to the repository root (holds the documented dev keys).
pub const LOCAL_KEYS_FILE: &str = "config/api-keys.local.toml";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Write,
    Read,
}

impl Scope {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Write => "write",
            Self::Read => "read",
        }
    }
}

/// The key store document could not be read.
#[derive(Debug, Error)]
pub enum KeyStoreError {
    #[error("API key document is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    #[error("API key file is not valid TOML of the expected shape: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("API key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("API key `{name}`: {reason}")]
    Key { name: String, reason: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyDoc {
    keys: Vec<KeyEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    /// A label for logs and errors; never the key itself.
    name: String,
    /// Lowercase or uppercase hex of SHA-256 over the key's UTF-8 bytes.
    sha256: String,
    tenant: String,
    scopes: Vec<Scope>,
}

/// One known key.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub name: String,
    pub tenant: Tenant,
    pub scopes: Vec<Scope>,
    hash: [u8; 32],
}

impl ApiKey {
    #[must_use]
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// The keys the API accepts, loaded once per process.
#[derive(Debug, Clone, Default)]
pub struct KeyStore {
    keys: Vec<ApiKey>,
}

impl KeyStore {
    /// Reads the JSON document (the Secrets Manager secret's text).
    ///
    /// # Errors
    /// [`KeyStoreError`] naming what is wrong.
    pub fn from_json(text: &str) -> Result<Self, KeyStoreError> {
        Self::from_doc(serde_json::from_str(text)?)
    }

    /// Reads the TOML document (the local keys file).
    ///
    /// # Errors
    /// [`KeyStoreError`] naming what is wrong.
    pub fn from_toml(text: &str) -> Result<Self, KeyStoreError> {
        Self::from_doc(toml::from_str(text)?)
    }

    /// Reads a keys file: JSON if its name ends in `.json`, TOML otherwise.
    ///
    /// # Errors
    /// [`KeyStoreError`] if the file cannot be read or parsed.
    pub fn load(path: &std::path::Path) -> Result<Self, KeyStoreError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyStoreError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if path.extension().is_some_and(|e| e == "json") {
            Self::from_json(&text)
        } else {
            Self::from_toml(&text)
        }
    }

    /// The key store of a process: the JSON text in `CARAT_API_KEYS` if set (as in the
    /// Lambda), else the file named by `CARAT_API_KEYS_FILE`, else [`LOCAL_KEYS_FILE`]
    /// (relative to the working directory: the repository root for carat-local).
    /// `env` is `|name| std::env::var(name).ok()` in binaries; tests pass a map.
    ///
    /// # Errors
    /// [`KeyStoreError`] if the document cannot be read or parsed.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Self, KeyStoreError> {
        if let Some(json) = env("CARAT_API_KEYS") {
            return Self::from_json(&json);
        }
        let path = env("CARAT_API_KEYS_FILE").unwrap_or_else(|| LOCAL_KEYS_FILE.to_string());
        Self::load(std::path::Path::new(&path))
    }

    fn from_doc(doc: KeyDoc) -> Result<Self, KeyStoreError> {
        let mut keys = Vec::with_capacity(doc.keys.len());
        for e in doc.keys {
            let bad = |reason: String| KeyStoreError::Key {
                name: e.name.clone(),
                reason,
            };
            let bytes = hex::decode(e.sha256.trim())
                .map_err(|err| bad(format!("sha256 is not hex: {err}")))?;
            let hash: [u8; 32] = bytes
                .try_into()
                .map_err(|b: Vec<u8>| bad(format!("sha256 is {} bytes, not 32", b.len())))?;
            let tenant = Tenant::parse(&e.tenant).map_err(|err| bad(err.to_string()))?;
            keys.push(ApiKey {
                name: e.name,
                tenant,
                scopes: e.scopes,
                hash,
            });
        }
        Ok(Self { keys })
    }

    /// A store holding one key (tests, examples).
    #[must_use]
    pub fn single(name: &str, key: &str, tenant: Tenant, scopes: &[Scope]) -> Self {
        Self {
            keys: vec![ApiKey {
                name: name.to_string(),
                tenant,
                scopes: scopes.to_vec(),
                hash: hash_key(key),
            }],
        }
    }

    /// This store with the keys of `other` added (tests, examples).
    #[must_use]
    pub fn with(mut self, other: Self) -> Self {
        self.keys.extend(other.keys);
        self
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The stored key matching `presented`, comparing against every stored hash.
    #[must_use]
    pub fn find(&self, presented: &str) -> Option<&ApiKey> {
        let hash = hash_key(presented);
        let mut found = None;
        for k in &self.keys {
            // No early exit: every stored hash is compared.
            if bool::from(k.hash.ct_eq(&hash)) {
                found = Some(k);
            }
        }
        found
    }

    /// The key of a request (`X-Api-Key`, else `Authorization: Bearer`), checked for `scope`.
    ///
    /// # Errors
    /// [`AppError::Unauthorized`] (401) without a known key, [`AppError::Forbidden`]
    /// (403) if the key lacks `scope`.
    pub fn authorize(&self, headers: &HeaderMap, scope: Scope) -> Result<&ApiKey, AppError> {
        let basic;
        let presented = match presented_key(headers) {
            Some(k) => k,
            None => {
                basic = basic_key(headers).ok_or(AppError::Unauthorized(
                    "missing API key: send it in X-Api-Key, Authorization: Bearer, or as the Basic auth password",
                ))?;
                basic.as_str()
            }
        };
        let key = self
            .find(presented)
            .ok_or(AppError::Unauthorized("unknown API key"))?;
        if !key.has(scope) {
            return Err(AppError::Forbidden {
                key: key.name.clone(),
                scope: scope.as_str(),
            });
        }
        Ok(key)
    }
}

/// SHA-256 of a key, as stored.
#[must_use]
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-api-key") {
        return v.to_str().ok().map(str::trim).filter(|k| !k.is_empty());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, key) = auth.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(key.trim()).filter(|k| !k.is_empty())
    } else {
        None
    }
}

/// The key in an `Authorization: Basic` header: the password (any user name), or the
/// user name when the password is empty. Grafana's data sources and Prometheus'
/// `basic_auth` send keys this way.
fn basic_key(headers: &HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, encoded) = auth.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':').unwrap_or((&text, ""));
    let key = if password.is_empty() { user } else { password };
    Some(key.trim().to_string()).filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV_KEY: &str = "carat-dev-key";

    fn doc() -> String {
        format!(
            r#"{{"keys":[{{"name":"w","sha256":"{}","tenant":"default","scopes":["write","read"]}},
                {{"name":"r","sha256":"{}","tenant":"acme","scopes":["read"]}}]}}"#,
            hex::encode(hash_key(DEV_KEY)),
            hex::encode(hash_key("reader")),
        )
    }

    #[test]
    fn json_and_lookup() {
        let ks = KeyStore::from_json(&doc()).expect("valid doc");
        assert_eq!(ks.len(), 2);
        assert_eq!(ks.find(DEV_KEY).map(|k| k.name.as_str()), Some("w"));
        assert_eq!(ks.find("reader").map(|k| k.tenant.as_str()), Some("acme"));
        assert!(ks.find("nope").is_none());
    }

    #[test]
    fn headers_and_scopes() {
        let ks = KeyStore::from_json(&doc()).expect("valid doc");
        let mut h = HeaderMap::new();
        assert!(matches!(
            ks.authorize(&h, Scope::Write),
            Err(AppError::Unauthorized(_))
        ));
        h.insert(
            header::AUTHORIZATION,
            "bearer carat-dev-key".parse().expect("header"),
        );
        assert_eq!(ks.authorize(&h, Scope::Write).expect("ok").name, "w");
        // Basic: the password is the key, any user; an empty password: the user is.
        for (creds, name) in [
            ("grafana:carat-dev-key", "w"),
            ("carat-dev-key:", "w"),
            ("x:reader", "r"),
        ] {
            use base64::Engine as _;
            let v = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(creds)
            );
            h.insert(header::AUTHORIZATION, v.parse().expect("header"));
            assert_eq!(
                ks.authorize(&h, Scope::Read).expect("basic").name,
                name,
                "{creds}"
            );
        }
        h.insert(
            header::AUTHORIZATION,
            "Basic !!notbase64".parse().expect("header"),
        );
        assert!(matches!(
            ks.authorize(&h, Scope::Read),
            Err(AppError::Unauthorized(_))
        ));
        h.insert(
            header::AUTHORIZATION,
            "bearer carat-dev-key".parse().expect("header"),
        );
        h.insert("x-api-key", "reader".parse().expect("header"));
        assert!(matches!(
            ks.authorize(&h, Scope::Write),
            Err(AppError::Forbidden { scope: "write", .. })
        ));
        h.insert("x-api-key", "wrong".parse().expect("header"));
        assert!(matches!(
            ks.authorize(&h, Scope::Write),
            Err(AppError::Unauthorized(_))
        ));
    }

    #[test]
    fn bad_documents_name_the_key() {
        let e = KeyStore::from_json(
            r#"{"keys":[{"name":"x","sha256":"abc","tenant":"default","scopes":["write"]}]}"#,
        )
        .expect_err("must be rejected");
        assert!(e.to_string().contains("`x`"), "{e}");
        assert!(KeyStore::from_json(
            r#"{"keys":[{"name":"x","sha256":"00","tenant":"default","scopes":["admin"]}]}"#
        )
        .is_err());
    }

    #[test]
    fn from_env_prefers_json_then_file() {
        let json = doc();
        let ks = KeyStore::from_env(|n| (n == "CARAT_API_KEYS").then(|| json.clone()))
            .expect("json from the environment");
        assert_eq!(ks.len(), 2);
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(LOCAL_KEYS_FILE)
            .display()
            .to_string();
        let ks = KeyStore::from_env(|n| (n == "CARAT_API_KEYS_FILE").then(|| file.clone()))
            .expect("the file named by the environment");
        assert!(ks.find(DEV_KEY).is_some());
        let e = KeyStore::from_env(|n| {
            (n == "CARAT_API_KEYS_FILE").then(|| "/nonexistent/keys.toml".to_string())
        })
        .expect_err("a missing file fails");
        assert!(e.to_string().contains("/nonexistent/keys.toml"), "{e}");
    }

    #[test]
    fn local_keys_file_parses_and_holds_the_dev_key() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../config/api-keys.local.toml");
        let ks = KeyStore::load(&path).expect("config/api-keys.local.toml parses");
        let key = ks
            .find(DEV_KEY)
            .expect("the documented dev key is in the file");
        assert!(key.has(Scope::Write) && key.has(Scope::Read));
        assert_eq!(key.tenant.as_str(), "default");
    }
}
