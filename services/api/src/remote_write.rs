//! Prometheus remote_write (protocol 1.0): a snappy-compressed (block format) protobuf
//! `prometheus.WriteRequest`.
//!
//! The messages are [`crate::prompb`]'s (re-exported here). Label sets map to series names by
//! [`series_name`]; millisecond timestamps become seconds by flooring, and several
//! samples of one series in one second collapse to the last one sent (the request-wide
//! "same series and time: the later replaces the earlier" rule). Every value is kept
//! bit-exact (NaN, ±Inf, staleness markers); samples that cannot be stored are dropped
//! and counted ([`Dropped`]) rather than failing the batch.

use carat_core::config::IngestConfig;
use carat_core::record::labels::SeriesLabels;
use carat_core::{Point, SeriesName, ValidationError};

use crate::error::AppError;
use crate::prompb::DecodeError;
pub use crate::prompb::{Label, Sample, TimeSeries, WriteRequest};

/// Prometheus's staleness marker: a NaN with this exact bit pattern, sent when a series
/// disappears. Kept bit-exact like any value: a reader treats a point holding these bits
/// as "series stale at this time" (docs/api.md).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Decompresses and decodes a remote_write body. The decompressed size is bounded by
/// `max_bytes` too, so a small body cannot inflate into a huge allocation.
///
/// # Errors
/// 413 if the decompressed body is over `max_bytes`, 400 for corrupt snappy or protobuf.
pub fn decode(body: &[u8], max_bytes: usize) -> Result<WriteRequest, AppError> {
    crate::prompb::decode(body, max_bytes, "prometheus.WriteRequest").map_err(|e| match e {
        DecodeError::TooLarge { .. } => AppError::BodyTooLarge { limit: max_bytes },
        other => AppError::body(other.to_string()),
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

/// Why samples of a request were dropped instead of stored, counted per reason.
///
/// remote_write is not all-or-nothing like the JSON routes: Prometheus drops a batch
/// answered 4xx for good, so one sample carat cannot store (too old after an outage, a
/// label set too long for a series name) would lose every good sample sent with it.
/// Such samples are dropped one by one and counted; the request fails (400) only when
/// it held samples and none of them is storable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Older than `ingest.max_lateness_secs`.
    pub too_old: usize,
    /// Further in the future than `ingest.max_skew_secs`.
    pub too_new: usize,
    /// Samples of time series whose label set maps to no valid series name.
    pub bad_labels: usize,
    /// Native histogram samples (not supported).
    pub histograms: usize,
    /// The first drop, as the error it would have been: (index, field, message).
    pub first: Option<(usize, String, String)>,
}

impl Dropped {
    #[must_use]
    pub fn total(&self) -> usize {
        self.too_old + self.too_new + self.bad_labels + self.histograms
    }

    fn note(&mut self, index: usize, field: impl Into<String>, message: impl FnOnce() -> String) {
        if self.first.is_none() {
            self.first = Some((index, field.into(), message()));
        }
    }
}

/// The storable samples of a request and what was dropped.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub points: Vec<(SeriesName, Point)>,
    /// The full label set (as sent, `__name__` included) of every series with a stored
    /// sample, once per series name (the last set sent under it), for the catalog.
    pub labels: Vec<SeriesLabels>,
    pub dropped: Dropped,
}

/// Why a time (epoch seconds) is out of the accepted range around `now`, if it is.
/// Saturating: any i64 time and clock compare without overflow.
fn out_of_range(time: i64, now: i64, cfg: &IngestConfig) -> Option<(bool, String)> {
    let oldest = now.saturating_sub(cfg.max_lateness_secs);
    let newest = now.saturating_add(cfg.max_skew_secs);
    if time < oldest {
        Some((
            true,
            format!(
                "{time} is older than max_lateness ({} s before now {now})",
                cfg.max_lateness_secs
            ),
        ))
    } else if time > newest {
        Some((
            false,
            format!(
                "{time} is further in the future than max_skew ({} s after now {now})",
                cfg.max_skew_secs
            ),
        ))
    } else {
        None
    }
}

/// Maps every sample of a request to a point, checked against `now` (epoch seconds).
///
/// Values are kept whatever they hold, bit-exact: NaN (the quantiles of a summary that
/// observed nothing), ±Inf, and staleness markers ([`STALE_NAN_BITS`]), which stay
/// markers ("series stale at this time") for readers. Time series without samples
/// (metadata-only requests, exemplar-only series) are skipped before their labels are
/// read. Samples out of the time range, of unmappable label sets, and native
/// histograms are dropped and counted in [`Dropped`].
///
/// # Errors
/// [`AppError::TooManyPoints`] over `cfg.max_points_per_request`;
/// [`AppError::BadInput`] naming the first drop (time series `index` and `field`, e.g.
/// `labels`, `samples[3].time`, `histograms`) when the request held samples and none is
/// storable.
pub fn resolve(req: WriteRequest, now: i64, cfg: &IngestConfig) -> Result<Resolved, AppError> {
    let total: usize = req.timeseries.iter().map(|t| t.samples.len()).sum();
    if total > cfg.max_points_per_request {
        return Err(AppError::TooManyPoints {
            limit: cfg.max_points_per_request,
        });
    }
    let mut out = Resolved {
        points: Vec::with_capacity(total),
        labels: Vec::new(),
        dropped: Dropped::default(),
    };
    let mut labels: std::collections::BTreeMap<SeriesName, Vec<(String, String)>> =
        std::collections::BTreeMap::new();
    let dropped = &mut out.dropped;
    for (i, ts) in req.timeseries.into_iter().enumerate() {
        if !ts.histograms.is_empty() {
            dropped.histograms += ts.histograms.len();
            dropped.note(i, "histograms", || {
                format!(
                    "timeseries {i}: native histograms are not supported; send classic histograms"
                )
            });
        }
        if ts.samples.is_empty() {
            continue;
        }
        let name = match series_name(&ts.labels) {
            Ok(name) => name,
            Err(m) => {
                dropped.bad_labels += ts.samples.len();
                dropped.note(i, "labels", || format!("timeseries {i}: {m}"));
                continue;
            }
        };
        let before = out.points.len();
        for (j, s) in ts.samples.iter().enumerate() {
            // Flooring ms to s cannot overflow: div_euclid by 1000 is total on i64.
            let time = s.timestamp.div_euclid(1000);
            if let Some((too_old, reason)) = out_of_range(time, now, cfg) {
                if too_old {
                    dropped.too_old += 1;
                } else {
                    dropped.too_new += 1;
                }
                let field = format!("samples[{j}].time");
                dropped.note(i, field.clone(), || {
                    format!("timeseries {i} ({name}): {field}: {reason}")
                });
                continue;
            }
            out.points.push((name.clone(), Point::new(time, s.value)));
        }
        if out.points.len() > before {
            labels.insert(
                name,
                ts.labels.into_iter().map(|l| (l.name, l.value)).collect(),
            );
        }
    }
    out.labels = labels
        .into_iter()
        .map(|(series, labels)| SeriesLabels { series, labels })
        .collect();
    if out.points.is_empty() && out.dropped.total() > 0 {
        let d = &out.dropped;
        let (index, field, first) = d.first.clone().unwrap_or_default();
        return Err(AppError::BadInput {
            message: format!(
                "no sample of the request is storable ({} too old, {} too far in the future, \
                 {} of unmappable label sets, {} native histogram samples); the first: {first}",
                d.too_old, d.too_new, d.bad_labels, d.histograms
            ),
            index: Some(index),
            field: Some(field),
        });
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

    fn series(name: &str, samples: Vec<Sample>) -> TimeSeries {
        TimeSeries {
            labels: labels(&[("__name__", name)]),
            samples,
            histograms: vec![],
        }
    }

    fn at(ms: i64, value: f64) -> Sample {
        Sample {
            value,
            timestamp: ms,
        }
    }

    #[test]
    fn values_are_kept_bit_exact_and_ms_floor_to_seconds() {
        let cfg = IngestConfig::default();
        let now = 1_700_000_000;
        let stale = f64::from_bits(STALE_NAN_BITS);
        let req = WriteRequest {
            timeseries: vec![series(
                "x",
                vec![
                    at(now * 1000 - 1, 1.0),
                    at(now * 1000, stale),
                    at(now * 1000 + 1000, f64::NAN),
                    at(now * 1000 + 2999, f64::NEG_INFINITY),
                ],
            )],
        };
        let r = resolve(req, now, &cfg).expect("valid");
        assert_eq!(r.dropped, Dropped::default());
        let got: Vec<(i64, u64)> = r
            .points
            .iter()
            .map(|(_, p)| (p.time, p.value.to_bits()))
            .collect();
        assert_eq!(
            got,
            vec![
                (now - 1, 1.0f64.to_bits()),
                (now, STALE_NAN_BITS),
                (now + 1, f64::NAN.to_bits()),
                (now + 2, f64::NEG_INFINITY.to_bits()),
            ]
        );
    }

    #[test]
    fn unstorable_samples_are_dropped_and_counted() {
        let cfg = IngestConfig::default();
        let now = 1_700_000_000;
        let req = WriteRequest {
            timeseries: vec![
                series(
                    "x",
                    vec![
                        at(i64::MIN, 1.0),
                        at((now - cfg.max_lateness_secs - 1) * 1000, 2.0),
                        at(now * 1000, 3.0),
                        at(i64::MAX, 4.0),
                    ],
                ),
                TimeSeries {
                    labels: labels(&[("job", "no-name")]),
                    samples: vec![at(now * 1000, 5.0)],
                    histograms: vec![],
                },
                TimeSeries {
                    labels: labels(&[("__name__", "h")]),
                    samples: vec![],
                    histograms: vec![vec![1], vec![2]],
                },
            ],
        };
        let r = resolve(req, now, &cfg).expect("one sample is storable");
        assert_eq!(r.points.len(), 1);
        assert_eq!(r.points[0].1, Point::new(now, 3.0));
        let d = r.dropped;
        assert_eq!(
            (d.too_old, d.too_new, d.bad_labels, d.histograms, d.total()),
            (2, 1, 1, 2, 6)
        );
        let (index, field, _) = d.first.expect("a first drop");
        assert_eq!((index, field.as_str()), (0, "samples[0].time"));
    }

    #[test]
    fn nothing_storable_is_an_error_nothing_sent_is_not() {
        let cfg = IngestConfig::default();
        let now = 1_700_000_000;
        let req = WriteRequest {
            timeseries: vec![
                // No samples: skipped before its (invalid) labels are read.
                TimeSeries {
                    labels: labels(&[("job", "x")]),
                    samples: vec![],
                    histograms: vec![],
                },
                series("x", vec![at(0, 1.0)]),
            ],
        };
        let e = resolve(req, now, &cfg).expect_err("nothing storable");
        assert!(
            matches!(e, AppError::BadInput { index: Some(1), ref field, .. } if field.as_deref() == Some("samples[0].time")),
            "{e:?}"
        );
        assert!(e.to_string().contains("1 too old"), "{e}");
        let r = resolve(WriteRequest::default(), now, &cfg).expect("an empty request is fine");
        assert!(r.points.is_empty());
        assert_eq!(r.dropped.total(), 0);
    }
}
