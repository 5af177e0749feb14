//! [`Carat`]: one `carat local` process of a scenario's own — its own port, config file,
//! API keys, Kinesis stream, tables, archive bucket, checkpoints and log — started, killed
//! and restarted from outside.

use std::fs;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use sha2::Digest as _;

use crate::aws::{Clients, Resources};
use crate::http::{Http, Reply};
use crate::services::{self, aws_endpoint, AWS_ENV};
use crate::{redis_nodes, repo_root, unique};

/// How a scenario's carat is configured. Every config key can be set with
/// [`Options::set`] (dotted, as in the TOML: `"window.raw_secs"`); the defaults are
/// compressed time for tests: 60 s windows with 1 s grace, a flusher every second, the
/// pollers' batching window at 100 ms.
#[derive(Debug, Clone)]
pub struct Options {
    /// Names the scenario: resource names, tenants and the log start with it.
    pub scenario: String,
    /// Shards of the system's Kinesis stream.
    pub shards: u32,
    /// The config file's content (merged over [`Options::new`]'s defaults).
    pub config: toml::Table,
    /// Where carat sends its AWS calls (default: the stand-in). A fault-injecting proxy
    /// in front of the stand-in goes here.
    pub aws_endpoint: Option<String>,
    /// More environment for the process.
    pub env: Vec<(String, String)>,
}

impl Options {
    #[must_use]
    pub fn new(scenario: &str) -> Self {
        let o = Self {
            scenario: scenario.to_lowercase(),
            shards: 2,
            config: toml::Table::new(),
            aws_endpoint: None,
            env: Vec::new(),
        };
        o.set("window.raw_secs", 60)
            .set("window.grace_secs", 1)
            .set("ingest.max_lateness_secs", 600)
            .set("flusher.interval_secs", 1)
            .set("poller.max_batching_window_ms", 100)
            .set("poller.idle_poll_ms", 100)
            .set("probe.interval_secs", 3600)
    }

    /// Sets one config key (`"section.key"`, or deeper).
    #[must_use]
    pub fn set(mut self, dotted: &str, value: impl Into<toml::Value>) -> Self {
        set_in(&mut self.config, dotted, value.into());
        self
    }

    #[must_use]
    pub fn shards(mut self, n: u32) -> Self {
        self.shards = n;
        self
    }

    #[must_use]
    pub fn aws_endpoint(mut self, url: &str) -> Self {
        self.aws_endpoint = Some(url.to_string());
        self
    }

    #[must_use]
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }
}

/// An API key the system knows.
#[derive(Debug, Clone)]
pub struct Key {
    pub key: String,
    pub tenant: String,
}

/// One running (or stopped) `carat local` of a scenario.
pub struct Carat {
    /// The unique run name (`<scenario>-<pid>-<n>`).
    pub name: String,
    pub resources: Resources,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub port: u16,
    /// write + read on [`Carat::tenant`].
    pub key: Key,
    /// read only, same tenant.
    pub read_key: Key,
    /// write + read on another tenant.
    pub other: Key,
    /// The run's directory: config, checkpoints, failed records, log.
    pub dir: PathBuf,
    pub http: Http,
    config_path: PathBuf,
    log_path: PathBuf,
    keys_json: String,
    opts: Options,
    child: Option<Child>,
    /// Starts so far (1 after [`Carat::start`]).
    pub starts: u32,
}

/// The `carat` binary the scenarios run: `CARAT_BIN`, else `<target>/debug/carat` next
/// to this test binary (`cargo test --workspace` builds it; alone:
/// `cargo build -p carat-local`).
#[must_use]
pub fn carat_bin() -> PathBuf {
    if let Ok(p) = std::env::var("CARAT_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    // <target>/debug/deps/<test> → <target>/debug/carat
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("carat"))
        .unwrap();
    assert!(
        bin.exists(),
        "{} not found: build it first (cargo build -p carat-local), or set CARAT_BIN",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn random_key(tag: &str) -> String {
    use rand::Rng as _;
    let n: u64 = rand::rng().random();
    format!("sys-{tag}-{n:016x}")
}

fn key_entry(name: &str, k: &Key, scopes: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "sha256": hex::encode(sha2::Sha256::digest(k.key.as_bytes())),
        "tenant": k.tenant,
        "scopes": scopes,
    })
}

impl Carat {
    /// Creates the system's resources, writes its config and starts `carat local`; returns
    /// once `/health` answers 200 (panics with the log's end if it does not within 60 s).
    pub async fn start(opts: Options) -> Self {
        Self::start_with(opts, None).await
    }

    /// A second system on `other`'s Kinesis stream, with `other`'s keys (so its tenant):
    /// its own port, tables, bucket, checkpoints (none: its pollers start at
    /// TRIM_HORIZON) and log. Its writer processes every record `other`'s API put, as
    /// `other`'s own writer does — the reference run a replay is compared against.
    /// [`Carat::resources`] names its own (unused) stream, so [`Carat::finish`] leaves
    /// `other`'s alone.
    pub async fn start_on_stream_of(opts: Options, other: &Self) -> Self {
        Self::start_with(opts, Some(other)).await
    }

    async fn start_with(opts: Options, shared: Option<&Self>) -> Self {
        services::ensure();
        let name = unique(&opts.scenario);
        let resources = Resources::named(&name, opts.shards);
        resources.create().await;
        let dir = std::env::temp_dir().join("carat-system").join(&name);
        fs::create_dir_all(&dir).unwrap();

        let mut config = opts.config.clone();
        let nodes: Vec<toml::Value> = redis_nodes().into_iter().map(Into::into).collect();
        if !opts.config.contains_key("redis") {
            set_in(&mut config, "redis.nodes", toml::Value::Array(nodes));
        }
        // Every carat on one cluster flushes every dirty window it sees into its own
        // table: without a namespace of its own, a scenario's windows end up in another
        // scenario's table (and are settled there), lost to its own.
        // `CARAT_SYSTEM_SHARED_KEYSPACE=1` leaves it out, to see that happen.
        if std::env::var_os("CARAT_SYSTEM_SHARED_KEYSPACE").is_none()
            && config
                .get("redis")
                .and_then(|r| r.get("key_prefix"))
                .is_none()
        {
            set_in(&mut config, "redis.key_prefix", format!("{name}:").into());
        }
        for (k, v) in [
            (
                "resources.stream",
                shared.map_or_else(|| resources.stream.clone(), |o| o.resources.stream.clone()),
            ),
            ("resources.table", resources.table.clone()),
            ("resources.catalog_table", resources.catalog_table.clone()),
            ("resources.archive_bucket", resources.bucket.clone()),
            (
                "poller.checkpoint_dir",
                dir.join("checkpoints").display().to_string(),
            ),
            (
                "poller.failed_records_dir",
                dir.join("failed-records").display().to_string(),
            ),
        ] {
            set_in(&mut config, k, v.into());
        }
        let config_path = dir.join("carat.toml");
        fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();

        let tenant = name.replace('-', "_");
        let key = Key {
            key: random_key("rw"),
            tenant: tenant.clone(),
        };
        let read_key = Key {
            key: random_key("ro"),
            tenant: tenant.clone(),
        };
        let other = Key {
            key: random_key("other"),
            tenant: format!("{tenant}_other"),
        };
        let (key, read_key, other) = match shared {
            Some(o) => (o.key.clone(), o.read_key.clone(), o.other.clone()),
            None => (key, read_key, other),
        };
        let keys_json = serde_json::json!({"keys": [
            key_entry("rw", &key, &["write", "read"]),
            key_entry("ro", &read_key, &["read"]),
            key_entry("other", &other, &["write", "read"]),
        ]})
        .to_string();

        let port = free_port();
        let mut c = Self {
            url: format!("http://127.0.0.1:{port}"),
            port,
            log_path: dir.join("carat.log"),
            name,
            resources,
            key,
            read_key,
            other,
            dir,
            http: Http::new(),
            config_path,
            keys_json,
            opts,
            child: None,
            starts: 0,
        };
        c.spawn().await;
        c
    }

    /// The `redis.key_prefix` the process runs with (put before every key of its head).
    #[must_use]
    pub fn key_prefix(&self) -> String {
        let text = fs::read_to_string(&self.config_path).unwrap_or_default();
        text.parse::<toml::Table>()
            .ok()
            .and_then(|t| {
                t.get("redis")?
                    .get("key_prefix")?
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_default()
    }

    /// The config file the process runs with.
    #[must_use]
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Environment of the process and of [`Carat::cli`]: the stand-in (or the scenario's
    /// endpoint), keys, port.
    fn envs(&self) -> Vec<(String, String)> {
        let mut e: Vec<(String, String)> = AWS_ENV
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        e.push((
            "AWS_ENDPOINT_URL".into(),
            self.opts.aws_endpoint.clone().unwrap_or_else(aws_endpoint),
        ));
        e.push(("CARAT_API_KEYS".into(), self.keys_json.clone()));
        e.push(("CARAT_LISTEN".into(), format!("127.0.0.1:{}", self.port)));
        e.push((
            "RUST_LOG".into(),
            std::env::var("CARAT_SYSTEM_LOG").unwrap_or_else(|_| "info".into()),
        ));
        e.extend(self.opts.env.iter().cloned());
        e
    }

    async fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap();
        self.starts += 1;
        writeln!(log, "\n=== start {} of {}", self.starts, self.name).unwrap();
        let child = Command::new(carat_bin())
            .arg("local")
            .arg("--config")
            .arg(&self.config_path)
            // carat-local resolves config/ and .run/ relative to its working directory.
            .current_dir(repo_root())
            .env_remove("CARAT_CONFIG")
            .env_remove("CARAT_CONFIG_FILE")
            .env_remove("CARAT_STREAM")
            .env_remove("CARAT_TABLE")
            .env_remove("CARAT_ARCHIVE_BUCKET")
            .env_remove("CARAT_CATALOG_TABLE")
            .env_remove("CARAT_REDIS_NODES")
            .envs(self.envs())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", carat_bin().display()));
        self.child = Some(child);
        self.wait_healthy(Duration::from_secs(60)).await;
    }

    /// Waits until `/health` answers 200; panics with the log's end if the process exits
    /// or `patience` runs out.
    pub async fn wait_healthy(&mut self, patience: Duration) {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!(
                        "{} exited ({status}) before it was healthy; its log ends:\n{}",
                        self.name,
                        self.log_tail(40)
                    );
                }
            }
            let r = self
                .http
                .send_within(
                    Method::GET,
                    &format!("{}/health", self.url),
                    &[],
                    Bytes::new(),
                    Duration::from_secs(5),
                )
                .await;
            if matches!(&r, Ok(r) if r.status.as_u16() == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not healthy within {patience:?} (last: {:?}); its log ends:\n{}",
                self.name,
                r.map(|r| (r.status, r.text())),
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The process id, while it runs.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no shutdown, no flush, no checkpoint write.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, as `make local-down` stops it; waits up to 20 s for the exit, then kills.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again with the same config, keys, port and checkpoints.
    pub async fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn().await;
    }

    /// The last `n` lines of the process's log (all its starts).
    #[must_use]
    pub fn log_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The whole log.
    #[must_use]
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The `carat` binary as a client of this system (`CARAT_URL`, `CARAT_KEY` = the
    /// write + read key), and for `carat replay` with this system's config.
    #[must_use]
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(carat_bin());
        cmd.current_dir(repo_root())
            .env_remove("CARAT_CONFIG")
            .env_remove("CARAT_CONFIG_FILE")
            .envs(self.envs())
            .env("CARAT_URL", &self.url)
            .env("CARAT_KEY", &self.key.key)
            .env("CARAT_CONFIG_FILE", &self.config_path);
        cmd
    }

    /// A request with `key` in `X-Api-Key` (no key if `None`).
    ///
    /// # Errors
    /// Transport failures and timeouts, as text.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Reply, String> {
        let mut h: Vec<(&str, &str)> = headers.to_vec();
        if let Some(k) = key {
            h.push(("X-Api-Key", k));
        }
        self.http
            .send(method, &format!("{}{path}", self.url), &h, body)
            .await
    }

    /// GET `path` with the write + read key; panics on a transport failure.
    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, Some(&self.key.key), &[], Bytes::new())
            .await
            .unwrap()
    }

    /// POST JSON to `path` with the write + read key; panics on a transport failure.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Reply {
        self.request(
            Method::POST,
            path,
            Some(&self.key.key),
            &[("Content-Type", "application/json")],
            body.to_string(),
        )
        .await
        .unwrap()
    }

    /// SDK clients of the stand-in (always the stand-in itself, never a scenario's proxy).
    pub async fn aws(&self) -> Clients {
        Clients::new().await
    }

    /// Stops the process and deletes the system's resources and directory.
    pub async fn finish(mut self) {
        self.stop();
        self.resources.delete().await;
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Carat {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!(
                "{}: killed on drop; log kept at {}",
                self.name,
                self.log_path.display()
            );
        }
    }
}

/// Sets `dotted` (`"section.key"`) in `t`, making the tables on the way.
fn set_in(t: &mut toml::Table, dotted: &str, value: toml::Value) {
    let mut parts: Vec<&str> = dotted.split('.').collect();
    let last = parts.pop().expect("a key");
    let mut t = t;
    for p in parts {
        t = t
            .entry(p)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .unwrap_or_else(|| panic!("{dotted}: {p} is not a table"));
    }
    t.insert(last.to_string(), value);
}
