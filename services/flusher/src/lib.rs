//! carat-flusher: the scheduled run (each minute in AWS, a timer in carat-local) that
//! flushes closed windows the writer will not see again because their series went
//! quiet. The writer flushes windows of buckets it touches; this catches the rest.
//!
//! Module map: this file only. [`Flusher::run`] walks the buckets, asks the head for
//! due windows (`Head::due`), and flushes each with the writer's own
//! [`carat_writer::flush::flush_window`], so both paths write the same bytes.

use std::sync::Arc;

use carat_core::Config;
use carat_store::ports::{Head, WindowTable};
use carat_writer::flush::flush_window;
use carat_writer::{emf, Clock, WriterError};

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunReport {
    pub flushed_windows: u64,
    /// Windows whose dirty mark was cleared (closed and unchanged since their flush).
    pub settled_windows: u64,
    /// Windows whose flush failed for good (corrupt, too large: `FailedFlushes`,
    /// alarmed); they stay dirty.
    pub failed_windows: u64,
    /// Windows whose flush failed retryably (throttled, unreachable); they stay dirty and
    /// are flushed by a later run (`DeferredFlushes`).
    pub deferred_windows: u64,
    /// Whether the run stopped at `max_windows_per_run` with buckets left to visit.
    pub budget_exhausted: bool,
}

pub struct Flusher {
    cfg: Arc<Config>,
    head: Arc<dyn Head>,
    table: Arc<dyn WindowTable>,
    clock: Arc<dyn Clock>,
    emit_emf: bool,
}

impl Flusher {
    #[must_use]
    pub fn new(
        cfg: Arc<Config>,
        head: Arc<dyn Head>,
        table: Arc<dyn WindowTable>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            cfg,
            head,
            table,
            clock,
            emit_emf: true,
        }
    }

    /// Whether each run prints its EMF line on stdout.
    #[must_use]
    pub fn with_emf(mut self, on: bool) -> Self {
        self.emit_emf = on;
        self
    }

    /// One run: every bucket's due windows, at most `flusher.max_windows_per_run` in all.
    /// A window that fails to flush is logged and left dirty; the run goes on with the
    /// others so one bad window cannot stop all flushing.
    ///
    /// # Errors
    /// The first error of a failed window, after the whole run (so the scheduler sees the
    /// invocation fail), or an error listing due windows (the head is unreachable).
    pub async fn run(&self) -> Result<RunReport, WriterError> {
        carat_store::trace::scoped(self.run_in_scope()).await.0
    }

    /// [`Flusher::run`] inside its invocation's phase scope (`carat_store::trace`).
    async fn run_in_scope(&self) -> Result<RunReport, WriterError> {
        let started = std::time::Instant::now();
        let now_ms = self.clock.now_ms();
        let now = now_ms.div_euclid(1000);
        let mut budget = self.cfg.flusher.max_windows_per_run;
        let mut report = RunReport::default();
        let mut first_error: Option<WriterError> = None;
        for bucket in 0..self.cfg.record.buckets {
            if budget == 0 {
                report.budget_exhausted = true;
                break;
            }
            let due = self.head.due(bucket, now, budget).await?;
            for w in due {
                budget = budget.saturating_sub(1);
                match flush_window(&self.cfg, self.head.as_ref(), self.table.as_ref(), &w, now)
                    .await
                {
                    Ok(f) => {
                        report.flushed_windows += 1;
                        report.settled_windows += u64::from(f.settled);
                    }
                    Err(e) if e.is_retryable() => {
                        tracing::warn!(error = %e, window = %w.key, start = w.start, "flush failed retryably; window stays dirty for the next run");
                        report.deferred_windows += 1;
                        first_error.get_or_insert(e);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, window = %w.key, start = w.start, "flush failed, not retryable; window stays dirty");
                        report.failed_windows += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        tracing::info!(
            flushed_windows = report.flushed_windows,
            settled_windows = report.settled_windows,
            failed_windows = report.failed_windows,
            deferred_windows = report.deferred_windows,
            budget_exhausted = report.budget_exhausted,
            "flusher run"
        );
        if self.emit_emf {
            let phases = carat_store::trace::current();
            let total = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            println!(
                "{}",
                emf::line_with_millis(
                    "flusher",
                    now_ms,
                    &[
                        ("FlushedWindows", report.flushed_windows),
                        ("FailedFlushes", report.failed_windows),
                        ("DeferredFlushes", report.deferred_windows),
                    ],
                    &emf::phase_millis(phases.as_deref(), &[("TotalMs", total)]),
                )
            );
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use carat_core::head::{self, Stamped};
    use carat_core::{Point, SeriesKey, SeriesName, Tenant};
    use carat_store::fake::{FakeHead, FakeTable};
    use carat_store::ports::{HeadAppend, WindowRef};
    use carat_writer::ManualClock;

    const START: i64 = 1_699_999_200; // a 1-hour window start

    fn window(cfg: &Config, series: &str) -> WindowRef {
        let key = SeriesKey::new(
            Tenant::default_tenant(),
            SeriesName::parse(series, "name").unwrap(),
        );
        WindowRef {
            bucket: key.bucket(cfg.record.buckets),
            key,
            start: START,
        }
    }

    async fn append(head: &FakeHead, cfg: &Config, w: &WindowRef, values: &[f64]) {
        let points: Vec<Stamped> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Stamped::new(Point::new(START + i as i64, *v), START * 1000))
            .collect();
        let a = HeadAppend {
            window: w.clone(),
            block: head::encode_block(START, &points),
            flush_due: cfg.flush_due(START),
            expire_at: cfg.head_expiry(START),
        };
        head.append(w.bucket, &[a]).await.unwrap();
    }

    fn setup(
        max: usize,
    ) -> (
        Arc<Config>,
        Arc<FakeHead>,
        Arc<FakeTable>,
        Arc<ManualClock>,
        Flusher,
    ) {
        let mut cfg = Config::default();
        cfg.window.raw_secs = 3_600;
        cfg.flusher.max_windows_per_run = max;
        let cfg = Arc::new(cfg);
        let head = Arc::new(FakeHead::new());
        let table = Arc::new(FakeTable::new());
        let clock = Arc::new(ManualClock::at_ms(START * 1000));
        let f =
            Flusher::new(cfg.clone(), head.clone(), table.clone(), clock.clone()).with_emf(false);
        (cfg, head, table, clock, f)
    }

    #[tokio::test]
    async fn flushes_due_windows_only_and_settles_them() {
        let (cfg, head, table, clock, f) = setup(100);
        let (a, b) = (window(&cfg, "quiet.a"), window(&cfg, "quiet.b"));
        append(&head, &cfg, &a, &[1.0, 2.0]).await;
        append(&head, &cfg, &b, &[3.0]).await;
        assert_eq!(f.run().await.unwrap().flushed_windows, 0, "not due yet");
        clock.set_ms(cfg.flush_due(START) * 1000);
        let r = f.run().await.unwrap();
        assert_eq!((r.flushed_windows, r.settled_windows), (2, 2));
        assert_eq!(table.items().len(), 2, "one item per window");
        let raw = table
            .items()
            .into_iter()
            .find(|i| i.pk == a.key.table_pk("raw"))
            .unwrap();
        assert_eq!(
            carat_core::chunk::decode(&raw.body).unwrap(),
            vec![Point::new(START, 1.0), Point::new(START + 1, 2.0)]
        );
        assert_eq!(f.run().await.unwrap().flushed_windows, 0, "settled");
    }

    #[tokio::test]
    async fn bounded_per_run_and_failures_stay_dirty() {
        let (cfg, head, table, clock, f) = setup(1);
        let (a, b) = (window(&cfg, "quiet.a"), window(&cfg, "quiet.b"));
        append(&head, &cfg, &a, &[1.0]).await;
        append(&head, &cfg, &b, &[2.0]).await;
        clock.set_ms(cfg.flush_due(START) * 1000);
        table.faults().fail_next_op("write_window", 1);
        assert!(f.run().await.is_err(), "a failed flush fails the run");
        let r = f.run().await.unwrap();
        assert_eq!((r.flushed_windows, r.budget_exhausted), (1, true));
        let r = f.run().await.unwrap();
        assert_eq!(r.flushed_windows, 1);
        assert_eq!(f.run().await.unwrap().flushed_windows, 0);
        assert_eq!(table.items().len(), 2);
    }
}
