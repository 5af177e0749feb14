//! Helpers of the local-system tests (Redis cluster on 7000–7005, moto on 4566): the real
//! ingest router, Kinesis, one poller per shard feeding the writer, and the flusher, all
//! in the test's process; requests through the router; what DynamoDB stores, decoded.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use carat_api::{KeyStore, Scope};
use carat_core::head::Stamped;
use carat_core::{Config, Point, SeriesKey, SeriesName, Tenant};
use carat_local::poller::{list_shards, main_poller};
use carat_local::serve::{AppState, Shutdown};
use carat_store::ports::{StartAt, WindowRef, WindowTable};
use carat_writer::flush::{stored_window, RAW};
use tokio::sync::watch;
use tower::ServiceExt as _;

pub mod prometheus;

pub const KEY: &str = "write-path-test-key";

pub fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// A name unique to this run, for tenants and series of a shared stand-in.
pub fn run_id() -> String {
    format!("{}{}", std::process::id(), now_ms() % 1_000_000)
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// The local configuration with short windows (`raw_secs`, 1 s grace), a flusher each
/// second and checkpoints of this run's own.
pub fn test_config(run: &str, raw_secs: i64) -> Config {
    let mut cfg = carat_local::config::load(None, |n| std::env::var(n).ok()).unwrap();
    cfg.window.raw_secs = raw_secs;
    cfg.window.grace_secs = 1;
    cfg.ingest.max_lateness_secs = 120; // head keys of the test expire within minutes
    cfg.flusher.interval_secs = 1;
    cfg.poller.max_batching_window_ms = 100;
    cfg.poller.idle_poll_ms = 100;
    let tmp = std::env::temp_dir().join(format!("carat-write-path-{run}"));
    cfg.poller.checkpoint_dir = tmp.join("checkpoints").display().to_string();
    cfg.poller.failed_records_dir = tmp.join("failed-records").display().to_string();
    cfg.validate().unwrap();
    cfg
}

/// A Kinesis stream of the test's own in the stand-in (1 shard); `cfg.resources.stream`
/// names it. The pollers of every test process running a [`System`] on the shared stream
/// write every record they see, with their own window length: while a test with longer
/// windows runs beside this one, its head windows and table items of this test's series
/// start where this test's windows start, hold points of several of them, and a read
/// returns those points twice. On a stream of its own, only this test writes its series.
pub struct OwnStream {
    client: aws_sdk_kinesis::Client,
    pub name: String,
}

impl OwnStream {
    pub async fn create(cfg: &mut Config, run: &str) -> Self {
        let sdk = carat_store::connect::aws_config(&cfg.retry).await;
        let client = aws_sdk_kinesis::Client::new(&sdk);
        let name = format!("carat-test-{run}");
        client
            .create_stream()
            .stream_name(&name)
            .shard_count(1)
            .send()
            .await
            .unwrap();
        for _ in 0..200 {
            let s = client
                .describe_stream_summary()
                .stream_name(&name)
                .send()
                .await
                .unwrap();
            if s.stream_description_summary.unwrap().stream_status.as_str() == "ACTIVE" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        cfg.resources.stream.clone_from(&name);
        Self { client, name }
    }

    pub async fn delete(self) {
        let _ = self
            .client
            .delete_stream()
            .stream_name(&self.name)
            .enforce_consumer_deletion(true)
            .send()
            .await;
    }
}

/// The write path running in this process: one poller per shard (from just before the
/// test: the shared stream holds other tests' records) feeding the writer, and the
/// flusher every `flusher.interval_secs`.
pub struct System {
    pub cfg: Config,
    pub state: AppState,
    pub shards: Vec<String>,
    pub started: StartAt,
    pub shutdown: Shutdown,
    stop: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
}

impl System {
    pub async fn start(cfg: Config) -> Self {
        let clients = carat_local::clients::connect(&cfg).await.unwrap();
        let state = AppState {
            config: Arc::new(cfg.clone()),
            clients,
            probe: Arc::new(carat_local::probe::LocalProbe::off()),
        };
        let (stop, rx) = watch::channel(false);
        let shutdown = Shutdown::new(rx);
        let started = StartAt::AtTimestamp(now_ms() - 2_000);
        let writer = Arc::new(carat_local::poller::writer(&state));
        let shards = list_shards(state.clients.log.as_ref(), &shutdown)
            .await
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for shard in &shards {
            let p = main_poller(&state.config, &state, Arc::clone(&writer));
            let (shard, start, sd) = (shard.clone(), started.clone(), shutdown.clone());
            tasks.spawn(async move {
                p.run(&shard, start, sd).await.unwrap();
            });
        }
        let flusher = carat_local::schedule::run_flusher(state.clone(), shutdown.clone());
        tasks.spawn(async move { flusher.await.unwrap() });
        Self {
            cfg,
            state,
            shards,
            started,
            shutdown,
            stop,
            tasks,
        }
    }

    /// The ingest router for `tenant`, holding the key [`KEY`], on the system clock.
    pub fn api(&self, tenant: &Tenant) -> axum::Router {
        self.api_with(tenant, KEY, Arc::new(carat_api::SystemClock))
    }

    /// The ingest router for `tenant` with its own key and clock.
    pub fn api_with(
        &self,
        tenant: &Tenant,
        key: &str,
        clock: Arc<dyn carat_api::Clock>,
    ) -> axum::Router {
        let keys = KeyStore::single("it", key, tenant.clone(), &[Scope::Write]);
        let mut state = carat_api::AppState::new(
            self.state.clients.log.clone(),
            Arc::new(keys),
            Arc::clone(&self.state.config),
        )
        .with_name_sets(self.state.clients.catalog.clone());
        state.clock = clock;
        carat_api::router(state)
    }

    /// Serves `router` over HTTP on a free port of 127.0.0.1 until [`System::stop`];
    /// returns its address.
    pub async fn serve(&mut self, router: axum::Router) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = self.shutdown.clone();
        self.spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.wait())
                .await
                .unwrap();
        });
        addr
    }

    /// Runs `task` beside the pollers and the flusher until [`System::stop`].
    pub fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    pub async fn stop(mut self) {
        self.stop.send_replace(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// A GET with `key` in `X-Api-Key`; returns the status and the body as JSON (null if
/// it is not JSON).
pub async fn get_json(
    router: &axum::Router,
    uri: &str,
    key: &str,
) -> (StatusCode, serde_json::Value) {
    let req = Request::get(uri)
        .header("X-Api-Key", key)
        .body(Body::empty())
        .unwrap();
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 22)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// Polls `cond` every 250 ms until it holds, or fails naming `what`.
pub async fn wait_for<F, Fut>(what: &str, patience: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + patience;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Sends a request; returns its status and body.
pub async fn send(api: &axum::Router, req: Request<Body>) -> (StatusCode, String) {
    let res = api.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Sends a request that must be accepted (200 or 204).
pub async fn post(api: &axum::Router, req: Request<Body>) {
    let (status, body) = send(api, req).await;
    assert!(
        status == StatusCode::OK || status == StatusCode::NO_CONTENT,
        "{status}: {body}"
    );
}

pub fn json(uri: &str, body: &serde_json::Value) -> Request<Body> {
    json_with(uri, KEY, body)
}

pub fn json_with(uri: &str, key: &str, body: &serde_json::Value) -> Request<Body> {
    Request::post(uri)
        .header("X-Api-Key", key)
        .header("Content-Type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// A native JSON body: `points` of `series`.
pub fn native(series: &str, points: &[Point]) -> serde_json::Value {
    serde_json::json!(points
        .iter()
        .map(|p| serde_json::json!({"series": series, "time": p.time, "value": p.value}))
        .collect::<Vec<_>>())
}

/// A Prometheus remote_write request (protobuf + snappy) of one time series
/// `{__name__=name, job="it"}` (carat series `<name>.job.it`), keeping the value bits.
pub fn remote_write(name: &str, points: &[Point]) -> Request<Body> {
    remote_write_with(name, KEY, points)
}

pub fn remote_write_with(name: &str, key: &str, points: &[Point]) -> Request<Body> {
    use carat_api::remote_write::{Label, Sample, TimeSeries, WriteRequest};
    let req = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![
                Label {
                    name: "__name__".into(),
                    value: name.into(),
                },
                Label {
                    name: "job".into(),
                    value: "it".into(),
                },
            ],
            samples: points
                .iter()
                .map(|p| Sample {
                    value: p.value,
                    timestamp: p.time * 1000,
                })
                .collect(),
            histograms: vec![],
        }],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&prost::Message::encode_to_vec(&req))
        .unwrap();
    Request::post("/api/v1/write")
        .header("Authorization", format!("Bearer {key}"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(Body::from(body))
        .unwrap()
}

pub fn series_key(tenant: &Tenant, series: &str) -> SeriesKey {
    SeriesKey::new(tenant.clone(), SeriesName::parse(series, "series").unwrap())
}

/// The head window of `series` starting at `start`.
pub fn window_ref(cfg: &Config, tenant: &Tenant, series: &str, start: i64) -> WindowRef {
    let key = series_key(tenant, series);
    WindowRef {
        bucket: key.bucket(cfg.record.buckets),
        key,
        start,
    }
}

/// What the table stores for a window, decoded: its points and its item count (parts).
pub async fn stored(table: &dyn WindowTable, window: &WindowRef) -> (Vec<Stamped>, u32) {
    let items = table
        .read_window(&window.key.table_pk(RAW), window.start)
        .await
        .unwrap();
    let parts = items.first().map_or(0, |i| i.parts);
    let points = stored_window(window, &items)
        .unwrap()
        .map(|w| w.points)
        .unwrap_or_default();
    (points, parts)
}

/// (time, value bits) of stamped points.
pub fn bits(points: &[Stamped]) -> Vec<(i64, u64)> {
    points.iter().map(|p| (p.time, p.value_bits)).collect()
}

/// (time, value bits) of points.
pub fn point_bits(points: &[Point]) -> Vec<(i64, u64)> {
    points.iter().map(|p| (p.time, p.value.to_bits())).collect()
}

/// Waits until the stored window holds exactly `want` (time, value bits), up to
/// `within`; returns what is stored at the end and its parts.
pub async fn wait_stored(
    table: &dyn WindowTable,
    window: &WindowRef,
    want: &[(i64, u64)],
    within: Duration,
) -> (Vec<(i64, u64)>, u32) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (points, parts) = stored(table, window).await;
        let got = bits(&points);
        if got == want || tokio::time::Instant::now() > deadline {
            return (got, parts);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

impl System {
    /// The whole HTTP API of carat-local (`carat_local::serve::router`: health, ingest,
    /// read) over this system's clients with `keys`, served on 127.0.0.1:0 until
    /// [`System::stop`]; returns its base URL. The pollers and the flusher are this
    /// system's own (from just before the test), not `serve::serve`'s, which would read
    /// the shared stream from TRIM_HORIZON with fresh checkpoints.
    pub async fn serve_carat(&mut self, keys: carat_api::KeyStore) -> String {
        let router = carat_local::serve::router(
            &self.state,
            Arc::new(carat_api::Keys::fixed(Arc::new(keys))),
        );
        format!("http://{}", self.serve(router).await)
    }
}
