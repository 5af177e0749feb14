//! `carat bench`: a load generator against a running carat. It posts Mackerel-agent-shaped
//! requests (one per host and minute, holding that minute's value of each of the host's
//! metrics) to `POST /api/v0/tsdb` over `--concurrency` connections as fast as they are
//! acknowledged, and reports acknowledged points per second and the request latency. With
//! `--verify` it then reads every acknowledged point back (`GET /api/v1/points`, raw) and
//! reports how long after the last acknowledgement everything was readable, and how many
//! points are missing or wrong (both must be 0).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use carat_core::Config;
use futures::StreamExt as _;
use serde_json::{json, Value};

use super::{http::Api, progress, query, time, CliError, Conn};

const EXAMPLES: &str = "\
Examples:
  carat bench --hosts 100 --metrics 100 --minutes 10 --concurrency 32
  carat bench --hosts 10 --metrics 10 --minutes 5 --verify --json
  carat bench --url https://carat.example.com --key \"$CARAT_KEY\" --hosts 1000 --minutes 1

Points: hosts × metrics × minutes, at the minutes ending now (within the ingest window),
under host ids `<run>-h<N>` (a fresh --run each time by default, so runs never overlap).
The key needs the write scope, and the read scope for --verify. Exit 1 if a request failed,
4 if --verify found missing or wrong points. See docs/cli.md.";

/// Options of `carat bench`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct BenchArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Hosts (one post per host and minute).
    #[arg(long, default_value_t = 100)]
    pub hosts: usize,
    /// Metrics per host (points per post).
    #[arg(long, default_value_t = 100)]
    pub metrics: usize,
    /// Minutes of data per host, ending now.
    #[arg(long, default_value_t = 10)]
    pub minutes: usize,
    /// Requests in flight at once (connections).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Read every acknowledged point back and report missing ones and the delay.
    #[arg(long)]
    pub verify: bool,
    /// How long --verify waits for every point to be readable.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub verify_timeout: u64,
    /// The host id prefix (default: `bench` and a random suffix).
    #[arg(long)]
    pub run: Option<String>,
    /// Print the summary as one JSON object (for scripts, e.g. the load scenario).
    #[arg(long)]
    pub json: bool,
}

/// What is posted: host ids, metric names, the minutes, and each point's value.
#[derive(Debug, Clone)]
pub struct Plan {
    pub run: String,
    pub hosts: usize,
    pub metrics: usize,
    /// Epoch seconds of each minute, oldest first.
    pub times: Vec<i64>,
}

impl Plan {
    #[must_use]
    pub fn host(&self, h: usize) -> String {
        format!("{}-h{h:04}", self.run)
    }

    #[must_use]
    pub fn metric(m: usize) -> String {
        format!("bench.m{m:03}")
    }

    /// A value unique to (host, metric, minute), exact in binary.
    #[must_use]
    pub fn value(&self, h: usize, m: usize, k: usize) -> f64 {
        (h * self.metrics + m) as f64 + k as f64 / 64.0
    }

    /// Posts: minute-major (every host's minute 0, then minute 1, …), as agents send.
    #[must_use]
    pub fn posts(&self) -> usize {
        self.hosts * self.times.len()
    }

    /// (host, minute) of post `p`.
    #[must_use]
    pub fn post(&self, p: usize) -> (usize, usize) {
        (p % self.hosts, p / self.hosts)
    }

    /// The body of post `p`: `[{"hostId","name","time","value"}, …]`.
    #[must_use]
    pub fn body(&self, p: usize) -> Bytes {
        let (h, k) = self.post(p);
        let host = self.host(h);
        let points: Vec<Value> = (0..self.metrics)
            .map(|m| json!({"hostId": host, "name": Self::metric(m), "time": self.times[k], "value": self.value(h, m, k)}))
            .collect();
        Bytes::from(Value::Array(points).to_string())
    }
}

/// The figures of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub points: usize,
    pub requests: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub retries: u32,
    pub seconds: f64,
    /// Request latencies, sorted (ms).
    pub latencies_ms: Vec<f64>,
    /// Posts not acknowledged (failed, or not sent after an unreachable server), in order.
    pub unacknowledged: Vec<usize>,
    pub verify: Option<Verified>,
}

/// What `--verify` found.
#[derive(Debug, Clone, Default)]
pub struct Verified {
    pub expected: usize,
    pub missing: usize,
    pub wrong: usize,
    /// From the last acknowledgement to every point readable; `None` if never.
    pub readable_after_ms: Option<f64>,
    /// Per host, from its last acknowledged post to its points readable (sorted, ms).
    pub host_delays_ms: Vec<f64>,
    pub reads: usize,
    /// Reads answered 503 (retried in the next round), and the last such answer.
    pub unavailable: usize,
    pub last_unavailable: Option<String>,
}

/// The `q` quantile (0–1) of sorted `v`, nearest rank.
#[must_use]
pub fn quantile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// Runs the benchmark and prints its summary.
///
/// # Errors
/// Bad options (exit 2), failed requests (exit 1, after the summary), missing points
/// under --verify (exit 4, after the summary).
pub async fn run(config: &Config, args: &BenchArgs) -> Result<(), CliError> {
    let api = Arc::new(Api::new(&args.conn)?);
    let plan = Arc::new(plan(config, args)?);
    let report = bench(&api, &plan, args).await?;
    println!("{}", summary(&plan, args, api.base(), &report));
    if let Some(e) = &report.first_error {
        return Err(CliError::Server(format!(
            "{} of {} requests failed; the first: {e}",
            report.errors,
            plan.posts()
        )));
    }
    if let Some(v) = &report.verify {
        if v.missing > 0 || v.wrong > 0 {
            return Err(CliError::Verify(format!(
                "verify: {} of {} acknowledged points missing and {} wrong after {} s",
                v.missing, v.expected, v.wrong, args.verify_timeout
            )));
        }
    }
    Ok(())
}

fn plan(config: &Config, args: &BenchArgs) -> Result<Plan, CliError> {
    if args.hosts == 0 || args.metrics == 0 || args.minutes == 0 {
        return Err(CliError::Input(
            "--hosts, --metrics and --minutes must be at least 1".into(),
        ));
    }
    // The oldest minute must stay inside the ingest window while the run lasts.
    let span = i64::try_from(args.minutes)
        .unwrap_or(i64::MAX)
        .saturating_mul(60);
    if span + 600 > config.ingest.max_lateness_secs {
        return Err(CliError::Input(format!(
            "--minutes {}: the data must fit the ingest window (ingest.max_lateness_secs = {} s, less 10 minutes for the run)",
            args.minutes, config.ingest.max_lateness_secs
        )));
    }
    let per_post = args.metrics * 90;
    if per_post > config.ingest.max_body_bytes
        || args.metrics > config.ingest.max_points_per_request
    {
        return Err(CliError::Input(format!(
            "--metrics {}: one post would be over the ingest limits (ingest.max_body_bytes, ingest.max_points_per_request)",
            args.metrics
        )));
    }
    let run = match &args.run {
        Some(r) => {
            carat_core::SeriesName::parse(r, "run")
                .map_err(|e| CliError::Input(format!("--run: {e}")))?;
            r.clone()
        }
        None => format!(
            "bench{:06x}",
            (std::process::id() as u64 ^ now_nanos()) & 0xff_ffff
        ),
    };
    let end = time::now_secs() / 60 * 60;
    let times = (0..args.minutes)
        .map(|k| end - 60 * i64::try_from(args.minutes - 1 - k).unwrap_or(0))
        .collect();
    Ok(Plan {
        run,
        hosts: args.hosts,
        metrics: args.metrics,
        times,
    })
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos().into())
}

/// Posts every post of `plan`, then (with --verify) reads them back.
///
/// # Errors
/// None of its own: request failures are counted in the report.
pub async fn bench(api: &Arc<Api>, plan: &Arc<Plan>, args: &BenchArgs) -> Result<Report, CliError> {
    let total_points = (plan.posts() * plan.metrics) as u64;
    let bar = progress::bar(total_points, "bench", "points");
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Vec<AtomicBool>> =
        Arc::new((0..plan.posts()).map(|_| AtomicBool::new(false)).collect());
    let last_ack: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; plan.hosts]));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let (api, plan, next, stop, acked, last_ack, bar) = (
            Arc::clone(api),
            Arc::clone(plan),
            Arc::clone(&next),
            Arc::clone(&stop),
            Arc::clone(&acked),
            Arc::clone(&last_ack),
            bar.clone(),
        );
        workers.spawn(async move {
            let mut w = Report::default();
            loop {
                let p = next.fetch_add(1, Ordering::Relaxed);
                if p >= plan.posts() || stop.load(Ordering::Relaxed) {
                    break;
                }
                let body = plan.body(p);
                let t0 = Instant::now();
                match api.post("/api/v0/tsdb", body).await {
                    Ok(posted) => {
                        let done = Instant::now();
                        w.latencies_ms.push(ms(done - t0));
                        w.points += plan.metrics;
                        w.requests += 1;
                        w.retries += posted.retries;
                        acked[p].store(true, Ordering::Relaxed);
                        let (h, _) = plan.post(p);
                        if let Ok(mut l) = last_ack.lock() {
                            l[h] = Some(l[h].map_or(done, |t| t.max(done)));
                        }
                        bar.inc(plan.metrics as u64);
                    }
                    Err(e) => {
                        if matches!(e, CliError::Unreachable(_)) {
                            stop.store(true, Ordering::Relaxed);
                        }
                        w.errors += 1;
                        w.first_error.get_or_insert(e.to_string());
                    }
                }
            }
            w
        });
    }
    let mut report = Report::default();
    while let Some(done) = workers.join_next().await {
        let w = done.map_err(|e| CliError::Local(format!("bench worker: {e}")))?;
        report.points += w.points;
        report.requests += w.requests;
        report.errors += w.errors;
        report.retries += w.retries;
        report.latencies_ms.extend(w.latencies_ms);
        if report.first_error.is_none() {
            report.first_error = w.first_error;
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.errors += plan.posts().saturating_sub(report.requests + report.errors);
    report.latencies_ms.sort_by(f64::total_cmp);
    bar.finish_and_clear();
    report.unacknowledged = (0..plan.posts())
        .filter(|&p| !acked[p].load(Ordering::Relaxed))
        .collect();
    if args.verify {
        let acked: Vec<bool> = acked.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        let last_ack = last_ack.lock().map(|l| l.clone()).unwrap_or_default();
        report.verify = Some(verify(api, plan, &acked, &last_ack, args).await?);
    }
    Ok(report)
}

/// One read of `--verify`: a host's metrics `metrics` over the whole run.
struct Unit {
    host: usize,
    metrics: std::ops::Range<usize>,
    /// Points found with the right value at the last read, and wrong ones.
    found: usize,
    wrong: usize,
    expected: usize,
    done: bool,
}

async fn verify(
    api: &Api,
    plan: &Plan,
    acked: &[bool],
    last_ack: &[Option<Instant>],
    args: &BenchArgs,
) -> Result<Verified, CliError> {
    // A read returns at most 100,000 points (reader.max_points_per_answer) of at most
    // 1,000 series; alternatives keep the pattern under 1,024 bytes.
    let chunk = (100_000 / plan.times.len()).clamp(1, 150);
    let is_acked = |h: usize, k: usize| acked[k * plan.hosts + h];
    let mut units = Vec::new();
    for h in 0..plan.hosts {
        let minutes = (0..plan.times.len()).filter(|&k| is_acked(h, k)).count();
        let mut m = 0;
        while m < plan.metrics {
            let end = (m + chunk).min(plan.metrics);
            units.push(Unit {
                host: h,
                metrics: m..end,
                found: 0,
                wrong: 0,
                expected: minutes * (end - m),
                done: minutes == 0,
            });
            m = end;
        }
    }
    let expected: usize = units.iter().map(|u| u.expected).sum();
    let bar = progress::bar(expected as u64, "verify", "points");
    let started = Instant::now();
    let last = last_ack.iter().flatten().max().copied().unwrap_or(started);
    let deadline = started + Duration::from_secs(args.verify_timeout);
    let mut host_done: Vec<Option<Instant>> = vec![None; plan.hosts];
    let (from, to) = (
        plan.times[0].to_string(),
        plan.times[plan.times.len() - 1].to_string(),
    );
    let mut reads = 0;
    let (mut unavailable, mut last_unavailable) = (0, None);
    loop {
        let pending: Vec<usize> = (0..units.len()).filter(|&i| !units[i].done).collect();
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        let answers: Vec<(usize, Result<Value, CliError>)> =
            futures::stream::iter(pending.into_iter().map(|i| {
                let pattern = pattern(plan, &units[i]);
                let (from, to) = (&from, &to);
                async move {
                    let r = api
                        .get(
                            "/api/v1/points",
                            &[
                                ("series", &pattern),
                                ("from", from),
                                ("to", to),
                                ("resolution", "raw"),
                            ],
                        )
                        .await;
                    (i, r)
                }
            }))
            .buffer_unordered(args.concurrency.max(1))
            .collect()
            .await;
        let now = Instant::now();
        for (i, answer) in answers {
            reads += 1;
            let series = match answer {
                Ok(a) => query::parse_answer(&a)
                    .ok_or_else(|| CliError::Server("verify: unexpected answer shape".into()))?,
                Err(e @ CliError::Unreachable(_)) => return Err(e),
                Err(CliError::Server(m)) if m.contains("HTTP 503") => {
                    unavailable += 1;
                    last_unavailable = Some(m);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let u = &mut units[i];
            let (found, wrong) = compare(plan, u, &series, &is_acked);
            bar.inc((found.saturating_sub(u.found)) as u64);
            u.found = found;
            u.wrong = wrong;
            u.done = found == u.expected && wrong == 0;
        }
        for (h, done) in host_done.iter_mut().enumerate() {
            if done.is_none() && units.iter().filter(|u| u.host == h).all(|u| u.done) {
                *done = Some(now);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bar.finish_and_clear();
    let found: usize = units.iter().map(|u| u.found).sum();
    let wrong: usize = units.iter().map(|u| u.wrong).sum();
    let all_done = units.iter().all(|u| u.done);
    let readable_after_ms = all_done.then(|| {
        let at = host_done.iter().flatten().max().copied().unwrap_or(last);
        ms(at.saturating_duration_since(last))
    });
    let mut host_delays_ms: Vec<f64> = host_done
        .iter()
        .zip(last_ack)
        .filter_map(|(d, a)| Some(ms(d.as_ref()?.saturating_duration_since(*a.as_ref()?))))
        .collect();
    host_delays_ms.sort_by(f64::total_cmp);
    Ok(Verified {
        expected,
        missing: expected - found.min(expected),
        wrong,
        readable_after_ms,
        host_delays_ms,
        reads,
        unavailable,
        last_unavailable,
    })
}

/// The read pattern of `u`: the host's metrics in the unit.
fn pattern(plan: &Plan, u: &Unit) -> String {
    let host = plan.host(u.host);
    if u.metrics.len() == plan.metrics {
        return format!("host.{host}.bench.*");
    }
    let names: Vec<String> = u.metrics.clone().map(|m| format!("m{m:03}")).collect();
    format!("host.{host}.bench.{{{}}}", names.join(","))
}

/// (points with the value posted, points with another value) of `u` in `series`.
fn compare(
    plan: &Plan,
    u: &Unit,
    series: &[query::Series],
    is_acked: &dyn Fn(usize, usize) -> bool,
) -> (usize, usize) {
    let host = plan.host(u.host);
    let (mut found, mut wrong) = (0, 0);
    for s in series {
        let Some(m) = s
            .name
            .strip_prefix(&format!("host.{host}.bench.m"))
            .and_then(|m| m.parse::<usize>().ok())
            .filter(|m| u.metrics.contains(m))
        else {
            continue;
        };
        for &(t, v) in &s.points {
            let Some(k) = plan.times.iter().position(|&x| x == t) else {
                continue;
            };
            if !is_acked(u.host, k) {
                continue;
            }
            if v.map(f64::to_bits) == Some(plan.value(u.host, m, k).to_bits()) {
                found += 1;
            } else {
                wrong += 1;
            }
        }
    }
    (found, wrong)
}

/// The summary: text lines, or one JSON object with `--json`.
#[must_use]
pub fn summary(plan: &Plan, args: &BenchArgs, url: &str, r: &Report) -> String {
    let q = |v: &[f64], x: f64| quantile(v, x).map(|v| (v * 1000.0).round() / 1000.0);
    let pps = if r.seconds > 0.0 {
        r.points as f64 / r.seconds
    } else {
        0.0
    };
    let verify = r.verify.as_ref().map(|v| {
        json!({
            "expected": v.expected,
            "missing": v.missing,
            "wrong": v.wrong,
            "readable_after_ms": v.readable_after_ms.map(|x| x.round()),
            "host_delay_ms": {"p50": q(&v.host_delays_ms, 0.5), "p99": q(&v.host_delays_ms, 0.99), "max": q(&v.host_delays_ms, 1.0)},
            "reads": v.reads,
            "unavailable": v.unavailable,
            "last_unavailable": v.last_unavailable,
        })
    });
    let j = json!({
        "run": plan.run,
        "url": url,
        "hosts": plan.hosts,
        "metrics": plan.metrics,
        "minutes": plan.times.len(),
        "concurrency": args.concurrency,
        "points": r.points,
        "requests": r.requests,
        "errors": r.errors,
        "retries": r.retries,
        "seconds": (r.seconds * 1000.0).round() / 1000.0,
        "points_per_sec": pps.round(),
        "latency_ms": {"p50": q(&r.latencies_ms, 0.5), "p99": q(&r.latencies_ms, 0.99), "max": q(&r.latencies_ms, 1.0)},
        "times": plan.times,
        "unacknowledged": r.unacknowledged.iter().map(|&p| { let (h, k) = plan.post(p); json!([h, k]) }).collect::<Vec<_>>(),
        "verify": verify,
    });
    if args.json {
        return j.to_string();
    }
    let f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
    let mut s = format!(
        "bench {run}: {points} points acknowledged in {requests} requests ({errors} failed, {retries} retried) in {secs:.2} s\n\
         throughput: {pps:.0} points/s over {c} connections\n\
         request latency: p50 {p50} ms, p99 {p99} ms, max {max} ms",
        run = plan.run,
        points = r.points,
        requests = r.requests,
        errors = r.errors,
        retries = r.retries,
        secs = r.seconds,
        c = args.concurrency,
        p50 = f(quantile(&r.latencies_ms, 0.5)),
        p99 = f(quantile(&r.latencies_ms, 0.99)),
        max = f(r.latencies_ms.last().copied()),
    );
    if let Some(v) = &r.verify {
        s.push_str(&format!(
            "\nverify: {} of {} points missing, {} wrong; all readable {} after the last acknowledgement (per host p50 {} ms, p99 {} ms; {} reads)",
            v.missing,
            v.expected,
            v.wrong,
            v.readable_after_ms.map_or_else(|| "never (within --verify-timeout)".to_string(), |x| format!("{x:.0} ms")),
            f(quantile(&v.host_delays_ms, 0.5)),
            f(quantile(&v.host_delays_ms, 0.99)),
            v.reads
        ));
        if let Some(m) = &v.last_unavailable {
            s.push_str(&format!(
                "\nverify: {} reads answered 503, the last: {m}",
                v.unavailable
            ));
        }
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&v, 1.0), Some(100.0));
        assert_eq!(quantile(&[7.0], 0.99), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn the_plan_is_mackerel_shaped_and_minute_major() {
        let plan = Plan {
            run: "b1".into(),
            hosts: 3,
            metrics: 2,
            times: vec![60, 120],
        };
        assert_eq!(plan.posts(), 6);
        assert_eq!(plan.post(4), (1, 1));
        let body: Value = serde_json::from_slice(&plan.body(4)).unwrap();
        assert_eq!(
            body,
            json!([
                {"hostId": "b1-h0001", "name": "bench.m000", "time": 120, "value": 2.015625},
                {"hostId": "b1-h0001", "name": "bench.m001", "time": 120, "value": 3.015625},
            ])
        );
        let u = Unit {
            host: 1,
            metrics: 0..1,
            found: 0,
            wrong: 0,
            expected: 2,
            done: false,
        };
        assert_eq!(pattern(&plan, &u), "host.b1-h0001.bench.{m000}");
        let series = vec![query::Series {
            name: "host.b1-h0001.bench.m000".into(),
            points: vec![(60, Some(2.0)), (120, Some(9.0)), (180, Some(1.0))],
        }];
        assert_eq!(compare(&plan, &u, &series, &|_, _| true), (1, 1));
        assert_eq!(compare(&plan, &u, &series, &|_, k| k == 0), (1, 0));
    }
}
