//! Prometheus remote_write (protocol 1.0): a snappy-compressed (block format) protobuf
//! `prometheus.WriteRequest`.
//!
//! The messages are written by hand with `prost::Message` (only the fields carat reads;
//! prost skips the rest: exemplars, metadata). Label sets map to series names by
//! [`series_name`]; millisecond timestamps become seconds by flooring, and several
//! samples of one series in one second collapse to the last one sent (the request-wide
//! "same series and time: the later replaces the earlier" rule).

use carat_core::config::IngestConfig;
use carat_core::{point, Point, SeriesName, ValidationError};

use crate::error::AppError;

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Native histograms, kept as raw bytes only to notice and refuse them.
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub histograms: Vec<Vec<u8>>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Epoch milliseconds.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// Prometheus's staleness marker: a NaN with this exact bit pattern, sent when a series
/// disappears. It is a signal, not a sample, so it is dropped rather than rejected.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Decompresses and decodes a remote_write body. The decompressed size is bounded by
/// `max_bytes` too, so a small body cannot inflate into a huge allocation.
///
/// # Errors
/// 413 if the decompressed body is over `max_bytes`, 400 for corrupt snappy or protobuf.
pub fn decode(body: &[u8], max_bytes: usize) -> Result<WriteRequest, AppError> {
    use prost::Message as _;
    let len = snap::raw::decompress_len(body)
        .map_err(|e| AppError::body(format!("body is not snappy (block format): {e}")))?;
    if len > max_bytes {
        return Err(AppError::BodyTooLarge { limit: max_bytes });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| AppError::body(format!("body is not snappy (block format): {e}")))?;
    WriteRequest::decode(raw.as_slice()).map_err(|e| {
        AppError::body(format!(
            "body is not a protobuf prometheus.WriteRequest: {e}"
        ))
    })
}

/// The series name of a label set: the `__name__` value, then every other label with a
/// non-empty value, sorted by label name, as `.<name>.<value>`; every character outside
/// `[A-Za-z0-9._-]` becomes `_`. `up{job="node",instance="10.0.0.1:9100"}` ⇒
/// `up.instance.10.0.0.1_9100.job.node`.
///
/// # Errors
/// A reason if `__name__` is missing or empty, or the name is over 255 bytes.
pub fn series_name(labels: &[Label]) -> Result<SeriesName, String> {
    let metric = labels
        .iter()
        .find(|l| l.name == "__name__")
        .map(|l| l.value.as_str())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| "the label set has no (or an empty) __name__ label".to_string())?;
    let mut rest: Vec<&Label> = labels
        .iter()
        .filter(|l| l.name != "__name__" && !l.value.is_empty())
        .collect();
    // Label names are unique in a valid set; the value breaks ties so even an invalid
    // set maps to one name whatever its order.
    rest.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.value.cmp(&b.value)));
    let mut name = String::with_capacity(metric.len() + rest.len() * 16);
    push_sanitized(&mut name, metric);
    for l in rest {
        name.push('.');
        push_sanitized(&mut name, &l.name);
        name.push('.');
        push_sanitized(&mut name, &l.value);
    }
    SeriesName::parse(&name, "labels").map_err(|e| match e {
        ValidationError::Name { reason, .. } | ValidationError::Field { reason, .. } => {
            format!("series name `{name}` mapped from the labels {reason}")
        }
    })
}

fn push_sanitized(out: &mut String, s: &str) {
    out.extend(s.chars().map(|c| {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            c
        } else {
            '_'
        }
    }));
}

/// Maps and validates every sample of a request against `now` (epoch seconds).
/// `index` in errors is the time series' position in the request, `field` names the
/// sample (`samples[3].value`) or `labels`.
///
/// # Errors
/// [`AppError::BadInput`] for the first bad series or sample,
/// [`AppError::TooManyPoints`] over `cfg.max_points_per_request`.
pub fn resolve(
    req: WriteRequest,
    now: i64,
    cfg: &IngestConfig,
) -> Result<Vec<(SeriesName, Point)>, AppError> {
    let total: usize = req.timeseries.iter().map(|t| t.samples.len()).sum();
    if total > cfg.max_points_per_request {
        return Err(AppError::TooManyPoints {
            limit: cfg.max_points_per_request,
        });
    }
    let mut out = Vec::with_capacity(total);
    for (i, ts) in req.timeseries.into_iter().enumerate() {
        if !ts.histograms.is_empty() {
            return Err(AppError::at(
                i,
                "histograms",
                format!(
                    "timeseries {i}: native histograms are not supported; send classic histograms"
                ),
            ));
        }
        let name = series_name(&ts.labels)
            .map_err(|m| AppError::at(i, "labels", format!("timeseries {i}: {m}")))?;
        for (j, s) in ts.samples.iter().enumerate() {
            if s.value.to_bits() == STALE_NAN_BITS {
                continue;
            }
            let p = Point::new(s.timestamp.div_euclid(1000), s.value);
            point::validate(i, p, now, cfg).map_err(|e| {
                let field = format!("samples[{j}].{}", e.field());
                let reason = match e {
                    ValidationError::Field { reason, .. }
                    | ValidationError::Name { reason, .. } => reason,
                };
                AppError::at(
                    i,
                    field.clone(),
                    format!("timeseries {i} ({name}): {field}: {reason}"),
                )
            })?;
            out.push((name.clone(), p));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
        pairs
            .iter()
            .map(|(n, v)| Label {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect()
    }

    #[test]
    fn label_mapping_is_sorted_and_sanitized() {
        let n = series_name(&labels(&[
            ("job", "node"),
            ("__name__", "up"),
            ("instance", "10.0.0.1:9100"),
            ("empty", ""),
        ]))
        .expect("valid");
        assert_eq!(n.as_str(), "up.instance.10.0.0.1_9100.job.node");
        let n = series_name(&labels(&[
            ("__name__", "http_requests_total"),
            ("path", "/api/v1/ä b"),
        ]))
        .expect("valid");
        assert_eq!(n.as_str(), "http_requests_total.path._api_v1___b");
        assert!(series_name(&labels(&[("job", "x")])).is_err());
        assert!(series_name(&labels(&[("__name__", &"a".repeat(300))])).is_err());
    }

    #[test]
    fn stale_markers_are_dropped_and_ms_floor_to_seconds() {
        let cfg = IngestConfig::default();
        let now = 1_700_000_000;
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: labels(&[("__name__", "x")]),
                samples: vec![
                    Sample {
                        value: 1.0,
                        timestamp: now * 1000 + 999,
                    },
                    Sample {
                        value: f64::from_bits(STALE_NAN_BITS),
                        timestamp: now * 1000,
                    },
                ],
                histograms: vec![],
            }],
        };
        let pts = resolve(req, now, &cfg).expect("valid");
        assert_eq!(pts.len(), 1);
        assert_eq!(pts[0].1, Point::new(now, 1.0));
    }
}
