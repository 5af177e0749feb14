//! Where an invocation's time goes (docs/deploy.md "Runbook: which phase dominates").
//!
//! Every service call is timed in one place: DynamoDB, Kinesis and S3 calls by an SDK
//! interceptor ([`CallTimer`], added to every client in [`crate::connect`]), Redis calls by
//! [`timed`] around each command of [`crate::redis_head`]. Each timed call
//!
//! - is added to the [`Phases`] of the invocation it belongs to, when the handler runs
//!   inside [`scoped`] (a task-local: the concurrent bucket futures of one writer batch run
//!   in its task). The writer, flusher and archiver put the totals in their EMF line
//!   (`AppendMs` = Redis, `FlushMs` = DynamoDB, `PutMs` = Kinesis, `ArchiveMs` = S3);
//! - emits a `tracing` debug event (`target: "carat::call"`) with service, operation and
//!   milliseconds;
//! - inside a sampled Lambda invocation with active tracing (`_X_AMZN_TRACE_ID` with
//!   `Sampled=1`, which lambda_runtime sets per invocation, and `AWS_XRAY_DAEMON_ADDRESS`,
//!   which Lambda sets when the function's tracing is Active), is sent as an X-Ray
//!   subsegment (namespace `aws` or `remote`) to the X-Ray daemon over UDP — fire and
//!   forget: a lost datagram costs a subsegment, never the call.

use std::future::Future;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// The services carat calls, as phases of an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Redis,
    DynamoDb,
    Kinesis,
    S3,
    /// Anything else the SDK calls (Secrets Manager at cold start).
    Other,
}

impl Service {
    const ALL: [Self; 5] = [
        Self::Redis,
        Self::DynamoDb,
        Self::Kinesis,
        Self::S3,
        Self::Other,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// X-Ray's name for the service's subsegments.
    #[must_use]
    pub fn xray_name(self) -> &'static str {
        match self {
            Self::Redis => "Redis",
            Self::DynamoDb => "DynamoDB",
            Self::Kinesis => "Kinesis",
            Self::S3 => "S3",
            Self::Other => "AWS",
        }
    }

    fn from_sdk(service: &str) -> Self {
        match service {
            "dynamodb" | "DynamoDB" => Self::DynamoDb,
            "kinesis" | "Kinesis" => Self::Kinesis,
            "s3" | "S3" => Self::S3,
            _ => Self::Other,
        }
    }
}

/// Time spent in each service's calls during one invocation, summed over concurrent
/// calls (so it can exceed the invocation's duration), and the number of calls.
#[derive(Debug, Default)]
pub struct Phases {
    micros: [AtomicU64; 5],
    calls: [AtomicU64; 5],
}

impl Phases {
    fn add(&self, service: Service, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.micros[service.index()].fetch_add(us, Ordering::Relaxed);
        self.calls[service.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Whole milliseconds spent in `service`'s calls (rounded down).
    #[must_use]
    pub fn millis(&self, service: Service) -> u64 {
        self.micros[service.index()].load(Ordering::Relaxed) / 1000
    }

    /// Calls made to `service`.
    #[must_use]
    pub fn calls(&self, service: Service) -> u64 {
        self.calls[service.index()].load(Ordering::Relaxed)
    }

    /// (service, ms, calls) of every service called at least once.
    #[must_use]
    pub fn summary(&self) -> Vec<(Service, u64, u64)> {
        Service::ALL
            .iter()
            .filter(|s| self.calls(**s) > 0)
            .map(|s| (*s, self.millis(*s), self.calls(*s)))
            .collect()
    }
}

tokio::task_local! {
    static PHASES: Arc<Phases>;
}

/// Runs `f` with a fresh [`Phases`] that every call timed inside it (in the same task)
/// adds to; returns `f`'s output and the phases.
pub async fn scoped<F: Future>(f: F) -> (F::Output, Arc<Phases>) {
    let phases = Arc::new(Phases::default());
    let out = PHASES.scope(Arc::clone(&phases), f).await;
    (out, phases)
}

/// The [`Phases`] of the [`scoped`] invocation this task runs in, if any.
#[must_use]
pub fn current() -> Option<Arc<Phases>> {
    PHASES.try_with(Arc::clone).ok()
}

/// How a call ended, for the subsegment's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A client-side error (4xx).
    Error,
    /// Throttled (429, or a throttling error code).
    Throttle,
    /// A server-side failure, a timeout or a transport failure.
    Fault,
}

/// Records one finished call: the invocation's phases, a debug event, an X-Ray subsegment.
pub fn record(
    service: Service,
    operation: &str,
    started: SystemTime,
    elapsed: Duration,
    outcome: Outcome,
) {
    let _ = PHASES.try_with(|p| p.add(service, elapsed));
    tracing::debug!(
        target: "carat::call",
        service = service.xray_name(),
        operation,
        ms = elapsed.as_secs_f64() * 1000.0,
        outcome = ?outcome,
        "call"
    );
    if let Some(daemon) = daemon() {
        if let Some(header) = std::env::var("_X_AMZN_TRACE_ID")
            .ok()
            .as_deref()
            .and_then(TraceHeader::parse)
        {
            if header.sampled {
                let doc = subsegment(
                    &header,
                    &new_id(),
                    service,
                    operation,
                    started,
                    elapsed,
                    outcome,
                );
                daemon.send(&doc);
            }
        }
    }
}

/// Times `fut` as one call of `service`'s `operation` ([`record`]); the outcome is
/// [`Outcome::Fault`] for an `Err`.
pub async fn timed<T, E, F>(service: Service, operation: &str, fut: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
{
    let (started, t0) = (SystemTime::now(), Instant::now());
    let out = fut.await;
    let outcome = if out.is_ok() {
        Outcome::Ok
    } else {
        Outcome::Fault
    };
    record(service, operation, started, t0.elapsed(), outcome);
    out
}

/// The Lambda trace header's parts (`Root=1-…;Parent=…;Sampled=1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeader {
    pub root: String,
    pub parent: Option<String>,
    pub sampled: bool,
}

impl TraceHeader {
    /// `None` without a `Root`.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let (mut root, mut parent, mut sampled) = (None, None, false);
        for part in text.split(';') {
            match part.trim().split_once('=') {
                Some(("Root", v)) => root = Some(v.to_string()),
                Some(("Parent", v)) => parent = Some(v.to_string()),
                Some(("Sampled", v)) => sampled = v == "1",
                _ => {}
            }
        }
        Some(Self {
            root: root?,
            parent,
            sampled,
        })
    }
}

/// The X-Ray document of one subsegment, as the daemon takes it (header line + JSON).
#[must_use]
pub fn subsegment(
    header: &TraceHeader,
    id: &str,
    service: Service,
    operation: &str,
    started: SystemTime,
    elapsed: Duration,
    outcome: Outcome,
) -> String {
    let start = started
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let mut doc = serde_json::json!({
        "name": service.xray_name(),
        "id": id,
        "trace_id": header.root,
        "start_time": start,
        "end_time": start + elapsed.as_secs_f64(),
        "type": "subsegment",
        "namespace": if service == Service::Redis { "remote" } else { "aws" },
        "aws": { "operation": operation },
    });
    if let Some(parent) = &header.parent {
        doc["parent_id"] = parent.clone().into();
    }
    match outcome {
        Outcome::Ok => {}
        Outcome::Error => doc["error"] = true.into(),
        Outcome::Throttle => {
            doc["error"] = true.into();
            doc["throttle"] = true.into();
        }
        Outcome::Fault => doc["fault"] = true.into(),
    }
    format!("{{\"format\": \"json\", \"version\": 1}}\n{doc}")
}

fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The X-Ray daemon's UDP endpoint, if `AWS_XRAY_DAEMON_ADDRESS` names one.
struct Daemon {
    socket: UdpSocket,
    addr: String,
}

impl Daemon {
    fn send(&self, doc: &str) {
        if let Err(e) = self.socket.send_to(doc.as_bytes(), &self.addr) {
            tracing::debug!(error = %e, "X-Ray subsegment not sent");
        }
    }
}

fn daemon() -> Option<&'static Daemon> {
    static DAEMON: OnceLock<Option<Daemon>> = OnceLock::new();
    DAEMON
        .get_or_init(|| {
            let addr = daemon_udp_address(&std::env::var("AWS_XRAY_DAEMON_ADDRESS").ok()?)?;
            let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
            socket.set_nonblocking(true).ok()?;
            Some(Daemon { socket, addr })
        })
        .as_ref()
}

/// The UDP address of `AWS_XRAY_DAEMON_ADDRESS` (`host:port`, or `udp:host:port tcp:host:port`).
#[must_use]
pub fn daemon_udp_address(value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    for part in value.split_whitespace() {
        if let Some(a) = part.strip_prefix("udp:") {
            return Some(a.to_string());
        }
    }
    if value.contains(' ') || value.starts_with("tcp:") {
        return None;
    }
    Some(value.to_string())
}

/// When a call started, kept in the SDK's config bag between the interceptor's hooks.
#[derive(Debug, Clone)]
struct CallStart(SystemTime, Instant);

impl Storable for CallStart {
    type Storer = StoreReplace<Self>;
}

/// The SDK interceptor that times every DynamoDB, Kinesis and S3 operation (with the
/// SDK's own retries inside it) and [`record`]s it.
#[derive(Debug, Default, Clone, Copy)]
pub struct CallTimer;

impl Intercept for CallTimer {
    fn name(&self) -> &'static str {
        "carat::CallTimer"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state()
            .store_put(CallStart(SystemTime::now(), Instant::now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(CallStart(started, t0)) = cfg.load::<CallStart>().cloned() else {
            return Ok(());
        };
        let (service, operation) = cfg
            .load::<Metadata>()
            .map_or((Service::Other, "unknown".to_string()), |m| {
                (Service::from_sdk(m.service()), m.name().to_string())
            });
        let status = context.response().map(|r| r.status().as_u16());
        let outcome = match (context.output_or_error(), status) {
            (Some(Ok(_)), _) => Outcome::Ok,
            (_, Some(429)) => Outcome::Throttle,
            (Some(Err(e)), Some(s)) if (400..500).contains(&s) => {
                let text = format!("{e:?}");
                if text.contains("Throttl") || text.contains("ProvisionedThroughputExceeded") {
                    Outcome::Throttle
                } else {
                    Outcome::Error
                }
            }
            _ => Outcome::Fault,
        };
        record(service, &operation, started, t0.elapsed(), outcome);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_header_parts() {
        let h = TraceHeader::parse(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )
        .unwrap();
        assert_eq!(h.root, "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(h.parent.as_deref(), Some("53995c3f42cd8ad8"));
        assert!(h.sampled);
        assert!(!TraceHeader::parse("Root=1-a-b;Sampled=0").unwrap().sampled);
        assert_eq!(TraceHeader::parse("Parent=x;Sampled=1"), None);
    }

    #[test]
    fn daemon_address_forms() {
        assert_eq!(
            daemon_udp_address("169.254.79.129:2000").as_deref(),
            Some("169.254.79.129:2000")
        );
        assert_eq!(
            daemon_udp_address("tcp:127.0.0.1:2000 udp:127.0.0.2:2001").as_deref(),
            Some("127.0.0.2:2001")
        );
        assert_eq!(daemon_udp_address(""), None);
        assert_eq!(daemon_udp_address("tcp:127.0.0.1:2000"), None);
    }

    #[test]
    fn subsegment_document() {
        let h = TraceHeader::parse(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )
        .unwrap();
        let started = UNIX_EPOCH + Duration::from_millis(1_764_000_000_250);
        let doc = subsegment(
            &h,
            "0123456789abcdef",
            Service::DynamoDb,
            "BatchWriteItem",
            started,
            Duration::from_millis(12),
            Outcome::Throttle,
        );
        let (head, body) = doc.split_once('\n').unwrap();
        assert_eq!(head, r#"{"format": "json", "version": 1}"#);
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["name"], "DynamoDB");
        assert_eq!(v["type"], "subsegment");
        assert_eq!(v["trace_id"], "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(v["parent_id"], "53995c3f42cd8ad8");
        assert_eq!(v["namespace"], "aws");
        assert_eq!(v["aws"]["operation"], "BatchWriteItem");
        assert_eq!(v["throttle"], true);
        assert!(
            (v["end_time"].as_f64().unwrap() - v["start_time"].as_f64().unwrap() - 0.012).abs()
                < 1e-6
        );
        let redis = subsegment(
            &h,
            "1",
            Service::Redis,
            "append",
            started,
            Duration::ZERO,
            Outcome::Fault,
        );
        let v: serde_json::Value = serde_json::from_str(redis.split_once('\n').unwrap().1).unwrap();
        assert_eq!(v["namespace"], "remote");
        assert_eq!(v["fault"], true);
    }

    #[tokio::test]
    async fn calls_inside_a_scope_add_to_its_phases_only() {
        let ((), phases) = scoped(async {
            let _: Result<(), ()> = timed(Service::Redis, "append", async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(())
            })
            .await;
            let _: Result<(), ()> = timed(Service::Redis, "read", async { Err(()) }).await;
            record(
                Service::Kinesis,
                "PutRecords",
                SystemTime::now(),
                Duration::from_millis(7),
                Outcome::Ok,
            );
        })
        .await;
        assert_eq!(phases.calls(Service::Redis), 2);
        assert!(phases.millis(Service::Redis) >= 5);
        assert_eq!(phases.millis(Service::Kinesis), 7);
        assert_eq!(phases.calls(Service::DynamoDb), 0);
        assert_eq!(
            phases.summary().iter().map(|s| s.0).collect::<Vec<_>>(),
            vec![Service::Redis, Service::Kinesis]
        );
        // Outside any scope a call is recorded nowhere (and does not panic).
        record(
            Service::S3,
            "PutObject",
            SystemTime::now(),
            Duration::from_millis(1),
            Outcome::Ok,
        );
    }
}
