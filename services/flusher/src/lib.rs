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
    /// Windows whose flush failed; they stay dirty and are retried next run.
    pub failed_windows: u64,
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
                    Err(e) => {
                        tracing::error!(error = %e, window = %w.key, start = w.start, "flush failed; window stays dirty");
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
            budget_exhausted = report.budget_exhausted,
            "flusher run"
        );
        if self.emit_emf {
            println!(
                "{}",
                emf::line(
                    "flusher",
                    now_ms,
                    &[
                        ("FlushedWindows", report.flushed_windows),
                        ("FailedFlushes", report.failed_windows),
                    ],
                )
            );
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
}
