//! The oracle of acknowledged points, the client that earns acknowledgements the way a
//! careful agent would (retry a 503 after its `Retry-After`, retry a request whose fate is
//! unknown), and the checks against what carat gives back: the read API, the stored
//! DynamoDB items, and the read API once the head is gone (so only the stored windows
//! answer). Scenarios 5 (AWS faults) and 6 (crashes) share it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use hyper::Method;
use rand::rngs::StdRng;
use rand::Rng as _;

use crate::http::{Http, Reply};
use crate::proxy::INJECTED_MARKER;
use crate::{redis, redis_call, Carat};

/// Every point acknowledged with success: series ⇒ time ⇒ value bits.
#[derive(Debug, Default, Clone)]
pub struct Oracle {
    inner: Arc<Mutex<BTreeMap<String, BTreeMap<i64, u64>>>>,
}

impl Oracle {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the points of an acknowledged request.
    pub fn ack(&self, points: &[(String, i64, f64)]) {
        let mut m = self.inner.lock().unwrap();
        for (s, t, v) in points {
            m.entry(s.clone()).or_default().insert(*t, v.to_bits());
        }
    }

    #[must_use]
    pub fn snapshot(&self) -> BTreeMap<String, BTreeMap<i64, u64>> {
        self.inner.lock().unwrap().clone()
    }

    #[must_use]
    pub fn points(&self) -> usize {
        self.inner.lock().unwrap().values().map(BTreeMap::len).sum()
    }

    /// The earliest and latest acknowledged time.
    #[must_use]
    pub fn span(&self) -> Option<(i64, i64)> {
        let m = self.inner.lock().unwrap();
        let lo = m.values().filter_map(|p| p.keys().next()).min()?;
        let hi = m.values().filter_map(|p| p.keys().next_back()).max()?;
        Some((*lo, *hi))
    }
}

/// What the clients saw.
#[derive(Debug, Default)]
pub struct ClientStats {
    pub acked_requests: AtomicU64,
    pub acked_points: AtomicU64,
    /// 503 answers (each with a valid `Retry-After`, honoured).
    pub unavailable: AtomicU64,
    /// Transport failures (refused while carat was down, reset, no answer in time).
    pub transport_errors: AtomicU64,
    /// Anything else than 200 or a well-formed 503: must stay empty.
    pub bad_answers: Mutex<Vec<String>>,
}

impl ClientStats {
    #[must_use]
    pub fn line(&self) -> String {
        format!(
            "acked requests {}, acked points {}, 503 + Retry-After {}, transport errors {}, bad answers {:?}",
            self.acked_requests.load(Ordering::Relaxed),
            self.acked_points.load(Ordering::Relaxed),
            self.unavailable.load(Ordering::Relaxed),
            self.transport_errors.load(Ordering::Relaxed),
            self.bad_answers.lock().unwrap()
        )
    }
}

/// Where a client posts: cloned out of a [`Carat`], so it keeps posting while the
/// scenario kills and restarts the process.
#[derive(Debug, Clone)]
pub struct Target {
    pub http: Http,
    pub url: String,
    pub key: String,
}

impl Target {
    #[must_use]
    pub fn of(c: &Carat) -> Self {
        Self {
            http: c.http.clone(),
            url: c.url.clone(),
            key: c.key.key.clone(),
        }
    }

    /// POST JSON `body` to `path` once.
    ///
    /// # Errors
    /// Transport failures, as text.
    pub async fn post_once(&self, path: &str, body: &str) -> Result<Reply, String> {
        self.http
            .send_within(
                Method::POST,
                &format!("{}{path}", self.url),
                &[
                    ("X-Api-Key", self.key.as_str()),
                    ("Content-Type", "application/json"),
                ],
                Bytes::from(body.to_string()),
                Duration::from_secs(40),
            )
            .await
    }

    /// GET `path` with the key until it answers other than 503 (honouring
    /// `Retry-After`) or `patience` runs out; a transport failure is retried too.
    pub async fn get_patiently(&self, path: &str, patience: Duration) -> Reply {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let r = self
                .http
                .send(
                    Method::GET,
                    &format!("{}{path}", self.url),
                    &[("X-Api-Key", self.key.as_str())],
                    Bytes::new(),
                )
                .await;
            let wait = match &r {
                Ok(r) if r.status.as_u16() == 503 => {
                    check_unavailable(r).unwrap_or_else(|e| panic!("GET {path}: {e}"))
                }
                Ok(_) => return r.unwrap(),
                Err(_) => Duration::from_millis(300),
            };
            assert!(
                tokio::time::Instant::now() < deadline,
                "GET {path}: still unavailable after {patience:?}: {r:?}"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

/// The `Retry-After` of a 503, if the answer is what docs/api.md promises: a JSON error
/// without any dependency text, and a `Retry-After` of whole seconds ≥ 1.
///
/// # Errors
/// What is wrong with the answer.
pub fn check_unavailable(r: &Reply) -> Result<Duration, String> {
    let text = r.text();
    for leak in [
        INJECTED_MARKER,
        "Exception",
        "arn:aws",
        "amazonaws",
        "InternalFailure",
        "ServiceUnavailable",
        "SlowDown",
        "Throughput",
    ] {
        if text.contains(leak) {
            return Err(format!("503 body carries AWS text ({leak}): {text}"));
        }
    }
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("503 body is not JSON ({e}): {text}"))?;
    if !json["error"]["message"].is_string() {
        return Err(format!("503 body has no error.message: {text}"));
    }
    let secs: u64 = r
        .header("retry-after")
        .ok_or_else(|| format!("503 without Retry-After: {text}"))?
        .trim()
        .parse()
        .map_err(|e| format!("503 Retry-After is not whole seconds ({e})"))?;
    if secs == 0 {
        return Err("503 Retry-After: 0".into());
    }
    Ok(Duration::from_secs(secs))
}

/// Posts `points` to the native route until carat acknowledges them (then records them in
/// `oracle`): a 503 is retried after its `Retry-After`, a transport failure (the outcome
/// is unknown: carat may have stored part of it) after 200 ms. Any other answer is
/// recorded in `stats.bad_answers` and the points are not acknowledged.
pub async fn post_until_acked(
    t: &Target,
    points: &[(String, i64, f64)],
    oracle: &Oracle,
    stats: &ClientStats,
    patience: Duration,
) -> bool {
    let body = serde_json::Value::Array(
        points
            .iter()
            .map(|(s, time, v)| serde_json::json!({"series": s, "time": time, "value": v}))
            .collect(),
    )
    .to_string();
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let wait = match t.post_once("/api/v1/points", &body).await {
            Ok(r) if r.status.as_u16() == 200 => {
                oracle.ack(points);
                stats.acked_requests.fetch_add(1, Ordering::Relaxed);
                stats
                    .acked_points
                    .fetch_add(points.len() as u64, Ordering::Relaxed);
                return true;
            }
            Ok(r) if r.status.as_u16() == 503 => match check_unavailable(&r) {
                Ok(d) => {
                    stats.unavailable.fetch_add(1, Ordering::Relaxed);
                    d
                }
                Err(e) => {
                    stats.bad_answers.lock().unwrap().push(e);
                    return false;
                }
            },
            Ok(r) => {
                stats.bad_answers.lock().unwrap().push(format!(
                    "{}: {}",
                    r.status,
                    r.text().chars().take(300).collect::<String>()
                ));
                return false;
            }
            Err(_) => {
                stats.transport_errors.fetch_add(1, Ordering::Relaxed);
                Duration::from_millis(200)
            }
        };
        if tokio::time::Instant::now() + wait > deadline {
            stats
                .bad_answers
                .lock()
                .unwrap()
                .push(format!("not acknowledged within {patience:?}"));
            return false;
        }
        tokio::time::sleep(wait).await;
    }
}

/// A value with varied bits: decimals in disguise, integers, negative zero, and any
/// finite f64 (the codecs' hard cases).
pub fn value(rng: &mut StdRng) -> f64 {
    match rng.random_range(0..5) {
        0 => f64::from(rng.random_range(0..100_000_i32)) / 100.0,
        1 => f64::from(rng.random_range(-1_000_i32..1_000)),
        2 => -0.0,
        _ => loop {
            let v = f64::from_bits(rng.random());
            if v.is_finite() {
                break v;
            }
        },
    }
}

/// Reads every series of `oracle` raw over its span through the read API (503s retried),
/// and compares with the oracle bit for bit. Returns the differences (empty: equal) and
/// the number of points read.
pub async fn compare_reads(t: &Target, oracle: &Oracle) -> (Vec<String>, usize) {
    let want = oracle.snapshot();
    let Some((lo, hi)) = oracle.span() else {
        return (Vec::new(), 0);
    };
    let mut diffs = Vec::new();
    let mut read = 0;
    for (series, points) in &want {
        let path = format!(
            "/api/v1/points?series={series}&from={}&to={}&resolution=raw",
            lo - 60,
            hi + 60
        );
        let r = t.get_patiently(&path, Duration::from_secs(60)).await;
        if r.status.as_u16() != 200 {
            diffs.push(format!(
                "{series}: read answered {}: {}",
                r.status,
                r.text()
            ));
            continue;
        }
        let got = parse_points(&r.json()["series"][0]["points"]);
        read += got.len();
        let mut times = std::collections::BTreeSet::new();
        for (time, bits) in &got {
            if !times.insert(*time) {
                diffs.push(format!("{series}@{time}: duplicated in the answer"));
            }
            match points.get(time) {
                None => diffs.push(format!("{series}@{time}: read a point never acknowledged")),
                Some(w) if w != bits => diffs.push(format!(
                    "{series}@{time}: read {} want {}",
                    f64::from_bits(*bits),
                    f64::from_bits(*w)
                )),
                Some(_) => {}
            }
        }
        for time in points.keys() {
            if !times.contains(time) {
                diffs.push(format!(
                    "{series}@{time}: acknowledged, not read back (lost)"
                ));
            }
        }
    }
    (diffs, read)
}

/// `[[t, v], …]` as (time, value bits).
fn parse_points(v: &serde_json::Value) -> Vec<(i64, u64)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let t = p[0].as_i64().expect("integer time");
                    let v = p[1].as_f64().expect("a finite value on a JSON route");
                    (t, v.to_bits())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Per stored window of the tenant (`<tenant>#<series>#raw`, sk = window start): the
/// point count `n` of its item. Read from the stand-in directly.
///
/// # Errors
/// The scan's error.
pub async fn stored_counts(
    c: &Carat,
    tenant: &str,
) -> Result<BTreeMap<(String, i64), u64>, String> {
    let items = c.aws().await.items(&c.resources.table).await?;
    let prefix = format!("{tenant}#");
    let mut out = BTreeMap::new();
    for i in items {
        let (Some(AttributeValue::S(pk)), Some(AttributeValue::N(sk)), Some(AttributeValue::N(n))) =
            (i.get("pk"), i.get("sk"), i.get("n"))
        else {
            continue;
        };
        let Some(series) = pk
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix("#raw"))
        else {
            continue;
        };
        // Multi-part windows carry sk = start + part: counted once, at their start.
        let sk: i64 = sk.parse().map_err(|e| format!("sk {sk}: {e}"))?;
        let n: u64 = n.parse().map_err(|e| format!("n {n}: {e}"))?;
        out.entry((series.to_string(), sk)).or_insert(n);
    }
    Ok(out)
}

/// The oracle's count per (series, window start) for windows of `window_secs`.
#[must_use]
pub fn expected_counts(oracle: &Oracle, window_secs: i64) -> BTreeMap<(String, i64), u64> {
    let mut out = BTreeMap::new();
    for (s, points) in oracle.snapshot() {
        for t in points.keys() {
            *out.entry((s.clone(), t.div_euclid(window_secs) * window_secs))
                .or_insert(0) += 1;
        }
    }
    out
}

/// Waits until every window of the oracle is stored in DynamoDB with exactly the
/// oracle's point count (flushed whole, nothing extra); panics with the differences after
/// `patience`.
pub async fn wait_stored(c: &Carat, oracle: &Oracle, window_secs: i64, patience: Duration) {
    let want = expected_counts(oracle, window_secs);
    let tenant = c.key.tenant.clone();
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let got = stored_counts(c, &tenant).await.unwrap_or_default();
        if got == want {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let mut diffs = Vec::new();
            for (k, w) in &want {
                match got.get(k) {
                    Some(g) if g == w => {}
                    g => diffs.push(format!("{}@{}: stored {g:?}, want {w}", k.0, k.1)),
                }
            }
            for k in got.keys().filter(|k| !want.contains_key(*k)) {
                diffs.push(format!("{}@{}: stored, not acknowledged", k.0, k.1));
            }
            panic!(
                "stored windows incomplete after {patience:?} ({} of {} windows differ):\n{}",
                diffs.len(),
                want.len(),
                diffs
                    .iter()
                    .take(30)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Deletes every head key of `tenant` (`{b<bucket>}:h:<tenant>:…`) from the Redis
/// cluster, so that reads can only be answered from the stored windows. Returns how many
/// were deleted. Only call it once every window is stored ([`wait_stored`]).
/// Reads every acknowledged point back through the read API twice — with the head, then
/// with the tenant's head keys deleted (only the stored windows answer) — and fails on any
/// difference from the oracle. Returns (points read with the head, head keys dropped,
/// points read from the stored windows).
pub async fn check_reads_with_and_without_head(
    t: &Target,
    oracle: &Oracle,
    tenant: &str,
) -> (usize, usize, usize) {
    let (diffs, with_head) = compare_reads(t, oracle).await;
    assert!(
        diffs.is_empty(),
        "read API (head + table) differs from the acknowledged points ({}):\n{}",
        diffs.len(),
        diffs[..diffs.len().min(30)].join("\n")
    );
    let dropped = drop_head(tenant).await;
    let (diffs, stored_only) = compare_reads(t, oracle).await;
    assert!(
        diffs.is_empty(),
        "read API (stored windows only) differs from the acknowledged points ({}):\n{}",
        diffs.len(),
        diffs[..diffs.len().min(30)].join("\n")
    );
    (with_head, dropped, stored_only)
}

pub async fn drop_head(tenant: &str) -> usize {
    let pattern = format!("*:h:{tenant}:*");
    let mut keys = std::collections::BTreeSet::new();
    for node in crate::redis_nodes() {
        let Ok(client) = ::redis::Client::open(node.as_str()) else {
            continue;
        };
        let Ok(Ok(mut conn)) = tokio::time::timeout(
            Duration::from_secs(3),
            client.get_multiplexed_async_connection(),
        )
        .await
        else {
            continue;
        };
        let mut cursor: u64 = 0;
        loop {
            let r: Result<(u64, Vec<String>), _> = tokio::time::timeout(
                Duration::from_secs(5),
                ::redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn),
            )
            .await
            .unwrap_or_else(|_| {
                Err(::redis::RedisError::from((
                    ::redis::ErrorKind::IoError,
                    "timeout",
                )))
            });
            let Ok((next, batch)) = r else { break };
            keys.extend(batch);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
    }
    let mut conn = redis().await;
    let mut n = 0;
    for k in &keys {
        let d: i64 = redis_call(&mut conn, ::redis::cmd("DEL").arg(k))
            .await
            .unwrap_or(0);
        n += usize::try_from(d).unwrap_or(0);
    }
    n
}
