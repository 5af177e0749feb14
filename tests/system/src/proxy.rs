//! [`FaultProxy`]: a fault-injecting HTTP proxy on loopback between a scenario's carat and
//! the AWS stand-in (issue 11, scenarios 5 and 6).
//!
//! moto never throttles, never fails and never hangs (DESIGN.md §4), so the faults AWS
//! gives carat in production are made here, from outside the process: carat is started
//! with `Options::aws_endpoint(proxy.url())` and every AWS call it makes goes through the
//! proxy. Per AWS operation the proxy either forwards the request to the stand-in, or:
//!
//! | [`Fault`] | what carat sees |
//! |---|---|
//! | `Throttle` | DynamoDB `ProvisionedThroughputExceededException` / `ThrottlingException` (400), Kinesis `ProvisionedThroughputExceededException` (400), S3 `SlowDown` (503); not forwarded |
//! | `ServerError` | `InternalServerError` / `InternalFailure` / `InternalError` (500) or `ServiceUnavailable` (503); not forwarded |
//! | `Timeout` | no answer: the request is held for [`FaultProxy::set_timeout_hold`] (longer than carat's SDK operation timeout) and the connection dropped; not forwarded |
//! | `Reset` | the connection closed at once, no answer; not forwarded |
//! | `LostAnswer` | the request **is** forwarded (the write lands), then the connection is closed before the answer: a success the caller never hears of, so it sends the write again |
//!
//! The operation is named from the request: `X-Amz-Target` for the JSON APIs
//! (`DynamoDB_20120810.PutItem` ⇒ `dynamodb:PutItem`, `Kinesis_20131202.PutRecords` ⇒
//! `kinesis:PutRecords`, `DynamoDBStreams_20120810.GetRecords` ⇒ `streams:GetRecords`), the
//! `/service/<svc>/operation/<op>` path of the RPCv2 CBOR protocol, and method + path for
//! S3 (`s3:PutObject`, `s3:GetObject`, `s3:ListObjects`, `s3:HeadBucket`, …).
//!
//! [`FaultProxy::hold`] parks matching requests until [`FaultProxy::release`]: a flush in
//! flight, frozen. A released request is forwarded even if the caller is gone (killed):
//! like a request already on the wire, it lands at AWS late.
//!
//! The proxy counts every outcome per operation ([`FaultProxy::counts`],
//! [`FaultProxy::report`]). Fault draws come from a seeded RNG ([`FaultProxy::start`]).
//! Every injected error message holds [`INJECTED_MARKER`], so a scenario can check that no
//! AWS text reaches carat's HTTP answers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::services::aws_endpoint;

/// In every injected error's message (with an account id and an ARN, as AWS's own texts
/// carry): carat's answers must never show it.
pub const INJECTED_MARKER: &str =
    "injected-by-carat-fault-proxy arn:aws:kinesis:us-east-1:000000000000:stream/secret-stream";

/// What the proxy can do to one request instead of forwarding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    Throttle,
    ServerError,
    Timeout,
    Reset,
    LostAnswer,
}

impl Fault {
    pub const ALL: [Self; 5] = [
        Self::Throttle,
        Self::ServerError,
        Self::Timeout,
        Self::Reset,
        Self::LostAnswer,
    ];

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Throttle => "throttle",
            Self::ServerError => "5xx",
            Self::Timeout => "timeout",
            Self::Reset => "reset",
            Self::LostAnswer => "lost-answer",
        }
    }
}

/// Probability of each fault per matching request (their sum at most 1; the rest is
/// forwarded).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates(pub Vec<(Fault, f64)>);

impl Rates {
    /// No fault: every request forwarded.
    #[must_use]
    pub fn none() -> Self {
        Self(Vec::new())
    }

    /// `fault` for every request.
    #[must_use]
    pub fn always(fault: Fault) -> Self {
        Self(vec![(fault, 1.0)])
    }

    /// Adds `fault` at probability `p`.
    #[must_use]
    pub fn with(mut self, fault: Fault, p: f64) -> Self {
        self.0.push((fault, p));
        self
    }

    fn draw(&self, rng: &mut StdRng) -> Option<Fault> {
        let x: f64 = rng.random();
        let mut acc = 0.0;
        for &(f, p) in &self.0 {
            acc += p;
            if x < acc {
                return Some(f);
            }
        }
        None
    }
}

/// Which requests a rule or a hold applies to: operations (exact, or `service:*`), and
/// optionally only bodies that contain a string (a table name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub ops: Vec<String>,
    pub body_contains: Option<String>,
}

impl Matcher {
    /// Requests of these operations (`dynamodb:PutItem`, `kinesis:*`, `s3:*`, `*`).
    #[must_use]
    pub fn ops(ops: &[&str]) -> Self {
        Self {
            ops: ops.iter().map(|s| (*s).to_string()).collect(),
            body_contains: None,
        }
    }

    /// Only requests whose body contains `s` (e.g. `"TableName":"<table>"`).
    #[must_use]
    pub fn body_contains(mut self, s: &str) -> Self {
        self.body_contains = Some(s.to_string());
        self
    }

    fn matches(&self, op: &str, body: &[u8]) -> bool {
        let op_ok = self.ops.iter().any(|m| {
            m == "*"
                || m == op
                || m.strip_suffix(":*")
                    .is_some_and(|svc| op.split(':').next() == Some(svc))
        });
        op_ok
            && self
                .body_contains
                .as_ref()
                .is_none_or(|s| body.windows(s.len().max(1)).any(|w| w == s.as_bytes()))
    }
}

/// How often a count key is one of these outcomes: `forwarded`, `held`, or a fault name.
pub type Counts = BTreeMap<String, BTreeMap<&'static str, u64>>;

struct HeldRequest {
    op: String,
    go: oneshot::Sender<()>,
}

struct Shared {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    rules: Mutex<Vec<(Matcher, Rates)>>,
    holds: Mutex<Vec<Matcher>>,
    held: Mutex<Vec<HeldRequest>>,
    counts: Mutex<Counts>,
    rng: Mutex<StdRng>,
    timeout_hold: Mutex<Duration>,
}

impl Shared {
    /// With `CARAT_PROXY_TRACE=<file>`: one line per outcome (time, operation, outcome,
    /// the body's start), for reading a failed scenario's history.
    fn trace(&self, op: &str, what: &str, body: &[u8]) {
        if let Ok(path) = std::env::var("CARAT_PROXY_TRACE") {
            use std::io::Write as _;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let text = String::from_utf8_lossy(&body[..body.len().min(400)]).replace('\n', " ");
                let _ = writeln!(f, "{} {op} {what} {text}", crate::now_ms());
            }
        }
    }

    fn count(&self, op: &str, what: &'static str) {
        *self
            .counts
            .lock()
            .unwrap()
            .entry(op.to_string())
            .or_default()
            .entry(what)
            .or_default() += 1;
    }
}

/// The proxy, serving until dropped.
pub struct FaultProxy {
    url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// Why a request got no answer: hyper closes the connection when the service fails.
#[derive(Debug)]
struct Dropped(&'static str);

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connection dropped by the fault proxy ({})", self.0)
    }
}

impl std::error::Error for Dropped {}

impl FaultProxy {
    /// Listens on 127.0.0.1:0 and forwards to the stand-in ([`aws_endpoint`]); fault
    /// draws from `seed`. No rule yet: everything is forwarded.
    pub async fn start(seed: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let shared = Arc::new(Shared {
            upstream: aws_endpoint().trim_end_matches('/').to_string(),
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(20))
                .build(connector),
            rules: Mutex::new(Vec::new()),
            holds: Mutex::new(Vec::new()),
            held: Mutex::new(Vec::new()),
            counts: Mutex::new(Counts::new()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            timeout_hold: Mutex::new(Duration::from_secs(12)),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let s = s.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(s.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url: format!("http://{addr}"),
            shared,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`: what carat gets as its AWS endpoint.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Adds a fault rule; the first rule that matches a request decides for it.
    pub fn add_rule(&self, m: Matcher, rates: Rates) {
        self.shared.rules.lock().unwrap().push((m, rates));
    }

    /// Removes every fault rule: everything is forwarded again (holds stay).
    pub fn clear_rules(&self) {
        self.shared.rules.lock().unwrap().clear();
    }

    /// How long a `Timeout` sits on a request before dropping it: make it
    /// longer than carat's SDK operation timeout (`retry.deadline_ms`).
    pub fn set_timeout_hold(&self, d: Duration) {
        *self.shared.timeout_hold.lock().unwrap() = d;
    }

    /// Parks every request `m` matches (before any fault rule) until released.
    pub fn hold(&self, m: Matcher) {
        self.shared.holds.lock().unwrap().push(m);
    }

    /// Stops parking new requests (those parked stay parked until released).
    pub fn stop_holding(&self) {
        self.shared.holds.lock().unwrap().clear();
    }

    /// Requests parked now, oldest first, by operation.
    #[must_use]
    pub fn held(&self) -> Vec<String> {
        self.shared
            .held
            .lock()
            .unwrap()
            .iter()
            .map(|h| h.op.clone())
            .collect()
    }

    /// Releases the `n` oldest parked requests (they are forwarded, caller alive or not);
    /// returns how many were released.
    pub fn release(&self, n: usize) -> usize {
        let released: Vec<HeldRequest> = {
            let mut held = self.shared.held.lock().unwrap();
            let n = n.min(held.len());
            held.drain(..n).collect()
        };
        let k = released.len();
        for h in released {
            let _ = h.go.send(());
        }
        k
    }

    /// Releases every parked request.
    pub fn release_all(&self) -> usize {
        self.release(usize::MAX)
    }

    /// Outcomes so far: operation ⇒ (`forwarded` | `held` | fault name) ⇒ count.
    #[must_use]
    pub fn counts(&self) -> Counts {
        self.shared.counts.lock().unwrap().clone()
    }

    /// Faults injected so far (all kinds, all operations; holds not counted).
    #[must_use]
    pub fn injected(&self) -> u64 {
        self.counts()
            .values()
            .flat_map(|m| m.iter())
            .filter(|(k, _)| !matches!(**k, "forwarded" | "held"))
            .map(|(_, v)| v)
            .sum()
    }

    /// Faults of one kind injected on one operation so far.
    #[must_use]
    pub fn injected_of(&self, op: &str, fault: Fault) -> u64 {
        self.counts()
            .get(op)
            .and_then(|m| m.get(fault.name()))
            .copied()
            .unwrap_or(0)
    }

    /// One line per operation: `op: forwarded N, throttle N, …`.
    #[must_use]
    pub fn report(&self) -> String {
        self.counts()
            .iter()
            .map(|(op, m)| {
                let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
                format!("  {op}: {}", parts.join(", "))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.release_all();
    }
}

/// The operation a request calls (module docs).
fn operation(method: &Method, path: &str, target: Option<&str>) -> String {
    fn service(prefix: &str) -> String {
        let p = prefix.split('_').next().unwrap_or(prefix);
        match p {
            "DynamoDB" => "dynamodb".into(),
            "DynamoDBStreams" => "streams".into(),
            "Kinesis" => "kinesis".into(),
            other => other.to_lowercase(),
        }
    }
    if let Some((prefix, op)) = target.and_then(|t| t.split_once('.')) {
        return format!("{}:{op}", service(prefix));
    }
    if let Some(rest) = path.strip_prefix("/service/") {
        if let Some((svc, op)) = rest.split_once("/operation/") {
            return format!("{}:{op}", service(svc));
        }
    }
    let path = path.split('?').next().unwrap_or("");
    let object = path
        .trim_start_matches('/')
        .split_once('/')
        .is_some_and(|(_, key)| !key.is_empty());
    let name = match (method.as_str(), object) {
        ("PUT", true) => "PutObject",
        ("GET", true) => "GetObject",
        ("HEAD", true) => "HeadObject",
        ("DELETE", true) => "DeleteObject",
        ("GET", false) => "ListObjects",
        ("HEAD", false) => "HeadBucket",
        ("PUT", false) => "CreateBucket",
        ("DELETE", false) => "DeleteBucket",
        ("POST", _) => "Post",
        _ => "Other",
    };
    format!("s3:{name}")
}

fn json_error(
    status: u16,
    content_type: &'static str,
    typ: &str,
    message: &str,
) -> Response<Full<Bytes>> {
    let body =
        serde_json::json!({"__type": typ, "message": format!("{message} ({INJECTED_MARKER})")});
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).expect("a valid status");
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(content_type));
    h.insert(
        "x-amzn-requestid",
        HeaderValue::from_static("00000000-0000-0000-0000-fa017fa017fa"),
    );
    if let Ok(v) = HeaderValue::from_str(typ.rsplit('#').next().unwrap_or(typ)) {
        h.insert("x-amzn-errortype", v);
    }
    r
}

fn xml_error(status: u16, code: &str, message: &str, head: bool) -> Response<Full<Bytes>> {
    let body = if head {
        Bytes::new()
    } else {
        Bytes::from(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message} ({INJECTED_MARKER})</Message><RequestId>FA017FA017FA017F</RequestId></Error>"
        ))
    };
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = StatusCode::from_u16(status).expect("a valid status");
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/xml"));
    r.headers_mut().insert(
        "x-amz-request-id",
        HeaderValue::from_static("FA017FA017FA017F"),
    );
    r
}

/// The service's own answer for an injected throttle or 5xx.
fn fault_response(op: &str, fault: Fault, head: bool, coin: bool) -> Response<Full<Bytes>> {
    let svc = op.split(':').next().unwrap_or("");
    match (svc, fault) {
        ("dynamodb" | "streams", Fault::Throttle) if coin => json_error(
            400,
            "application/x-amz-json-1.0",
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded",
        ),
        ("dynamodb" | "streams", Fault::Throttle) => json_error(
            400,
            "application/x-amz-json-1.0",
            "com.amazonaws.dynamodb.v20120810#ThrottlingException",
            "Rate of requests exceeds the allowed throughput",
        ),
        ("dynamodb" | "streams", _) if coin => json_error(
            500,
            "application/x-amz-json-1.0",
            "com.amazonaws.dynamodb.v20120810#InternalServerError",
            "Internal server error",
        ),
        ("dynamodb" | "streams", _) => json_error(
            503,
            "application/x-amz-json-1.0",
            "com.amazon.coral.availability#ServiceUnavailableException",
            "Service unavailable",
        ),
        ("kinesis", Fault::Throttle) => json_error(
            400,
            "application/x-amz-json-1.1",
            "ProvisionedThroughputExceededException",
            "Rate exceeded for shard shardId-000000000000",
        ),
        ("kinesis", _) if coin => json_error(
            500,
            "application/x-amz-json-1.1",
            "InternalFailure",
            "Internal service failure",
        ),
        ("kinesis", _) => json_error(
            503,
            "application/x-amz-json-1.1",
            "ServiceUnavailable",
            "Service unavailable",
        ),
        (_, Fault::Throttle) => {
            xml_error(503, "SlowDown", "Please reduce your request rate.", head)
        }
        _ if coin => xml_error(
            500,
            "InternalError",
            "We encountered an internal error. Please try again.",
            head,
        ),
        _ => xml_error(503, "ServiceUnavailable", "Service unavailable", head),
    }
}

const HOP_BY_HOP: [&str; 5] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "proxy-connection",
    "upgrade",
];

async fn forward(
    shared: Arc<Shared>,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, String> {
    let pq = parts
        .uri
        .path_and_query()
        .map_or("/", hyper::http::uri::PathAndQuery::as_str);
    let mut req = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{}{pq}", shared.upstream));
    for (k, v) in &parts.headers {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            req = req.header(k, v);
        }
    }
    let req = req
        .body(Full::new(body))
        .map_err(|e| format!("building the upstream request: {e}"))?;
    let res = shared
        .client
        .request(req)
        .await
        .map_err(|e| format!("upstream: {e:?}"))?;
    let (rparts, rbody) = res.into_parts();
    let bytes = rbody
        .collect()
        .await
        .map_err(|e| format!("upstream body: {e}"))?
        .to_bytes();
    let mut out = Response::new(Full::new(bytes));
    *out.status_mut() = rparts.status;
    for (k, v) in &rparts.headers {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            out.headers_mut().append(HeaderName::from(k), v.clone());
        }
    }
    Ok(out)
}

/// Forwards in a task of its own, so the request reaches the stand-in even if the
/// caller's connection is gone by then.
async fn forward_detached(
    shared: &Arc<Shared>,
    op: &str,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, Dropped> {
    shared.count(op, "forwarded");
    let s = shared.clone();
    let traced = body.clone();
    match tokio::spawn(forward(s, parts, body)).await {
        Ok(Ok(r)) => {
            shared.trace(op, &format!("forwarded:{}", r.status().as_u16()), &traced);
            Ok(r)
        }
        Ok(Err(e)) => {
            let mut r = Response::new(Full::new(Bytes::from(format!(
                "fault proxy: upstream failed: {e}"
            ))));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            Ok(r)
        }
        Err(_) => Err(Dropped("forwarding task failed")),
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|_| Dropped("reading the request body"))?
        .to_bytes();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    let op = operation(&parts.method, parts.uri.path(), target);

    let hold = shared
        .holds
        .lock()
        .unwrap()
        .iter()
        .any(|m| m.matches(&op, &body));
    if hold {
        shared.count(&op, "held");
        let (tx, rx) = oneshot::channel();
        shared.held.lock().unwrap().push(HeldRequest {
            op: op.clone(),
            go: tx,
        });
        // A released request is forwarded in a task of its own: if its caller was
        // killed meanwhile, the write still lands, late, as one on the wire would.
        let s = shared.clone();
        let o = op.clone();
        let landed = tokio::spawn(async move {
            if rx.await.is_err() {
                return Err(Dropped("proxy stopped"));
            }
            forward_detached(&s, &o, parts, body).await
        });
        return landed.await.map_err(|_| Dropped("held task failed"))?;
    }

    let (fault, coin) = {
        let rules = shared.rules.lock().unwrap();
        let rates = rules
            .iter()
            .find(|(m, _)| m.matches(&op, &body))
            .map(|(_, r)| r.clone());
        let mut rng = shared.rng.lock().unwrap();
        let fault = rates.and_then(|r| r.draw(&mut rng));
        (fault, rng.random::<bool>())
    };
    let Some(fault) = fault else {
        return forward_detached(&shared, &op, parts, body).await;
    };
    shared.count(&op, fault.name());
    shared.trace(&op, fault.name(), &body);
    let hold_for = *shared.timeout_hold.lock().unwrap();
    match fault {
        Fault::Throttle | Fault::ServerError => Ok(fault_response(
            &op,
            fault,
            parts.method == Method::HEAD,
            coin,
        )),
        Fault::Timeout => {
            tokio::time::sleep(hold_for).await;
            Err(Dropped("timeout"))
        }
        Fault::Reset => Err(Dropped("reset")),
        Fault::LostAnswer => {
            let landed = forward(shared.clone(), parts, body).await;
            shared.trace(
                &op,
                &format!(
                    "lost-answer-upstream:{:?}",
                    landed.map(|r| r.status().as_u16())
                ),
                b"",
            );
            Err(Dropped("lost answer"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_operations() {
        let post = Method::POST;
        assert_eq!(
            operation(&post, "/", Some("DynamoDB_20120810.PutItem")),
            "dynamodb:PutItem"
        );
        assert_eq!(
            operation(&post, "/", Some("Kinesis_20131202.PutRecords")),
            "kinesis:PutRecords"
        );
        assert_eq!(
            operation(
                &post,
                "/service/Kinesis_20131202/operation/GetRecords",
                None
            ),
            "kinesis:GetRecords"
        );
        assert_eq!(operation(&Method::PUT, "/b/k/x", None), "s3:PutObject");
        assert_eq!(
            operation(&Method::GET, "/b?list-type=2", None),
            "s3:ListObjects"
        );
        assert_eq!(operation(&Method::HEAD, "/b", None), "s3:HeadBucket");
    }

    #[test]
    fn matchers_take_services_and_bodies() {
        let m = Matcher::ops(&["dynamodb:*"]).body_contains("tbl");
        assert!(m.matches("dynamodb:PutItem", b"{\"TableName\":\"tbl\"}"));
        assert!(!m.matches("dynamodb:PutItem", b"{\"TableName\":\"other\"}"));
        assert!(!m.matches("kinesis:PutRecords", b"tbl"));
        assert!(Matcher::ops(&["*"]).matches("s3:GetObject", b""));
    }

    #[test]
    fn rates_draw_in_proportion() {
        let mut rng = StdRng::seed_from_u64(1);
        let r = Rates::none().with(Fault::Throttle, 0.25);
        let n = (0..10_000).filter(|_| r.draw(&mut rng).is_some()).count();
        assert!((2_200..2_800).contains(&n), "{n}");
    }
}
