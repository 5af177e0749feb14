//! The Lambda's side of a run: the time budget from the invocation's deadline, and the
//! report — the EMF line on stdout when the point was read back, a warning log (and no
//! metric, which the alarm counts as breaching) when not.
//!
//! The handler returns the [`ProbeResult`] as the invocation's payload either way, so
//! `aws lambda invoke` (the pipeline's staging check) sees what happened; a failed run is
//! not a function error, because the end-to-end alarm already reports it and the probe's
//! `lambda-errors` alarm should mean the probe itself is broken (it cannot start).

use std::io::Write;
use std::time::Duration;

use tracing::{info, warn};

use crate::emf;
use crate::probe::{Probe, ProbeResult};

/// Time kept back from the invocation's deadline for the report and the runtime's reply.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// The run's budget: until `DEADLINE_MARGIN` before the invocation's `deadline_ms`
/// (epoch ms), seen at `now_ms`.
#[must_use]
pub fn budget(deadline_ms: u64, now_ms: i64) -> Duration {
    let now = u64::try_from(now_ms).unwrap_or(0);
    Duration::from_millis(deadline_ms.saturating_sub(now)).saturating_sub(DEADLINE_MARGIN)
}

/// Writes the outcome of `result`: the EMF line (and a newline) to `out` on success, a
/// warning log otherwise.
///
/// # Errors
/// Writing to `out` failed.
pub fn report(result: &ProbeResult, deployment: &str, out: &mut impl Write) -> std::io::Result<()> {
    match (result.latency_ms, &result.error) {
        (Some(latency_ms), _) => {
            writeln!(out, "{}", emf::line(deployment, result.at_ms, latency_ms))?;
            info!(latency_ms, "probe point read back");
        }
        (None, error) => warn!(
            error = error.as_deref().unwrap_or("unknown"),
            "probe failed; no EndToEndLatency emitted (the alarm treats the gap as breaching)"
        ),
    }
    Ok(())
}

/// One invocation: run within the budget, report on stdout, return the result.
pub async fn handle(probe: &Probe, deployment: &str, deadline_ms: u64, now_ms: i64) -> ProbeResult {
    let result = probe.run(budget(deadline_ms, now_ms)).await;
    if let Err(e) = report(&result, deployment, &mut std::io::stdout().lock()) {
        warn!(error = %e, "cannot write the EMF line to stdout");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_keeps_the_margin() {
        assert_eq!(budget(60_000, 10_000), Duration::from_secs(48));
        assert_eq!(budget(1_000, 0), Duration::ZERO);
        assert_eq!(budget(0, 5_000), Duration::ZERO);
    }

    #[test]
    fn report_prints_emf_only_on_success() {
        let ok = ProbeResult {
            latency_ms: Some(412),
            error: None,
            at_ms: 1_764_072_000_000,
        };
        let mut out = Vec::new();
        report(&ok, "staging", &mut out).expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            format!("{}\n", emf::line("staging", 1_764_072_000_000, 412))
        );
        let failed = ProbeResult {
            latency_ms: None,
            error: Some("not readable".to_string()),
            at_ms: 1,
        };
        let mut out = Vec::new();
        report(&failed, "staging", &mut out).expect("write");
        assert!(out.is_empty());
    }
}
