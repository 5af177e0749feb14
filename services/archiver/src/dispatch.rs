//! One function, two event sources: the DynamoDB stream's event source mapping (a JSON
//! object with `Records`) and an EventBridge schedule (`"source": "aws.events"`,
//! `"detail-type": "Scheduled Event"`), which runs [`crate::compact::run`].
//!
//! The schedule's event may carry `"detail": {"now": <epoch seconds>}` to compact as if
//! at that time (operators, tests); otherwise the clock's time is used.

use aws_lambda_events::event::dynamodb::Event;
use serde_json::{json, Value};

use crate::compact;
use crate::error::ArchiverError;
use crate::handler::Archiver;

/// What an event is.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// A stream batch.
    Stream(Box<Event>),
    /// A scheduled compaction run, at `now` if given.
    Compact { now: Option<i64> },
}

/// Tells the two event shapes apart.
///
/// # Errors
/// A message naming what is wrong with the event.
pub fn classify(event: Value) -> Result<Invocation, String> {
    if event.get("Records").is_some() {
        return serde_json::from_value::<Event>(event)
            .map(|e| Invocation::Stream(Box::new(e)))
            .map_err(|e| format!("not a DynamoDB stream event: {e}"));
    }
    let scheduled = event.get("source").and_then(Value::as_str) == Some("aws.events")
        || event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event");
    if scheduled {
        let now = event
            .get("detail")
            .and_then(|d| d.get("now"))
            .and_then(Value::as_i64);
        return Ok(Invocation::Compact { now });
    }
    Err(
        "neither a DynamoDB stream event (Records) nor a scheduled event (source aws.events)"
            .into(),
    )
}

impl Archiver {
    /// Handles either event shape; the answer is the stream's `batchItemFailures`
    /// response, or the compaction run's counts.
    ///
    /// # Errors
    /// An event of neither shape ([`ArchiverError::BadRequest`]); as [`Archiver::handle`]
    /// and [`compact::run`].
    pub async fn handle_json(&self, event: Value) -> Result<Value, ArchiverError> {
        match classify(event).map_err(ArchiverError::BadRequest)? {
            Invocation::Stream(e) => {
                let response = self.handle(&e).await?;
                Ok(serde_json::to_value(response).unwrap_or(Value::Null))
            }
            Invocation::Compact { now } => {
                let now = now.unwrap_or_else(|| self.clock().now_secs());
                let r = compact::run(self.archive().as_ref(), self.config(), now).await?;
                println!(
                    "{}",
                    carat_writer::emf::line(
                        "archiver",
                        self.clock().now_ms(),
                        &[
                            ("CompactedDays", r.compacted_days),
                            ("CompactedMonths", r.compacted_months),
                            ("CompactionFailures", r.failures),
                            ("CompactionDeferred", r.deferred),
                        ],
                    )
                );
                Ok(json!({
                    "compactedDays": r.compacted_days,
                    "compactedMonths": r.compacted_months,
                    "stagedMerged": r.staged_merged,
                    "failures": r.failures,
                    "deferred": r.deferred,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_shapes() {
        let sched = json!({
            "version": "0", "id": "x", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "1", "time": "2026-12-01T00:00:00Z",
            "region": "us-east-1", "resources": [], "detail": {}
        });
        assert_eq!(classify(sched).unwrap(), Invocation::Compact { now: None });
        let at = json!({"source": "aws.events", "detail": {"now": 5}});
        assert_eq!(classify(at).unwrap(), Invocation::Compact { now: Some(5) });
        assert!(matches!(
            classify(json!({"Records": []})).unwrap(),
            Invocation::Stream(_)
        ));
        assert!(classify(json!({"hello": 1})).is_err());
    }
}
