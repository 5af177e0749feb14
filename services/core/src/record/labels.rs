//! The labels record v1: the full label sets of Prometheus series, for the catalog
//! (byte layout: docs/formats.md, "Labels record v1").
//!
//! A points record carries series *names*, and the remote_write name mapping is lossy
//! (`path="/a/b"` becomes `path._a_b`). So the ingest API sends, next to the points and
//! with the same partition key (the bucket), a labels record for each series whose
//! labels it has not sent lately; the writer records them in the catalog.
//!
//! Its first byte, [`VERSION`] = `0x81`, is not a points record version: a writer that
//! predates labels records rejects it as an unsupported version (a bad record, skipped
//! and sent to the failure destination), never reads it as points. Points record
//! versions stay below `0x80`; labels record versions are `0x80 | n`.
//!
//! ```text
//! u8 0x81 · u8 codec (0 stored, 1 raw DEFLATE with the v1 dictionary) · varint body length · payload
//! body: tenant · series count · per series: name, label count, (label name, label value)…
//! ```

#[cfg(test)]
use super::CODEC_DEFLATE;
use super::{corrupt, read_bytes, read_len, tenant_bytes, MAX_BODY_BYTES};
use crate::chunk::varint::{self, Cursor};
use crate::error::RecordError;
use crate::series::{SeriesName, Tenant, MAX_SERIES_LEN, MAX_TENANT_LEN};

/// First byte of every labels record: kind "labels" (high bit) and version 1.
pub const VERSION: u8 = 0x81;

/// The labels of one series: `labels` as the client sent them (`__name__` included),
/// sorted by (name, value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesLabels {
    pub series: SeriesName,
    pub labels: Vec<(String, String)>,
}

/// A decoded labels record: label sets of series of one tenant (and one bucket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelsRecord {
    pub tenant: Tenant,
    pub series: Vec<SeriesLabels>,
}

/// Encodes one labels record. Labels are written in the order given ([`pack`] and the
/// ingest API sort them).
#[must_use]
pub fn encode(record: &LabelsRecord) -> Vec<u8> {
    let body = encode_body(record);
    super::seal(&body, VERSION)
}

fn encode_body(record: &LabelsRecord) -> Vec<u8> {
    let mut body = Vec::new();
    let tenant = tenant_bytes(&record.tenant);
    varint::put_u64(&mut body, tenant.len() as u64);
    body.extend_from_slice(tenant);
    varint::put_u64(&mut body, record.series.len() as u64);
    for s in &record.series {
        put_entry(&mut body, s);
    }
    body
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    varint::put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_entry(out: &mut Vec<u8>, s: &SeriesLabels) {
    put_str(out, s.series.as_str());
    varint::put_u64(out, s.labels.len() as u64);
    for (name, value) in &s.labels {
        put_str(out, name);
        put_str(out, value);
    }
}

/// Body bytes one entry takes (uncompressed).
fn entry_len(s: &SeriesLabels) -> usize {
    let str_len = |s: &str| varint::len_u64(s.len() as u64) + s.len();
    str_len(s.series.as_str())
        + varint::len_u64(s.labels.len() as u64)
        + s.labels
            .iter()
            .map(|(n, v)| str_len(n) + str_len(v))
            .sum::<usize>()
}

/// Packs label sets into records of at most `max_bytes` each (by their uncompressed
/// size, so every record fits even where DEFLATE gains nothing), sorting each label
/// set by (name, value). Returns the records and the series left out because their
/// label set alone does not fit one record (the caller logs them; their points still go).
#[must_use]
pub fn pack(
    tenant: &Tenant,
    series: Vec<SeriesLabels>,
    max_bytes: usize,
) -> (Vec<Vec<u8>>, Vec<SeriesName>) {
    // version, codec, body length (≤ 4 MiB: 4 bytes), tenant, series count (≤ 5 bytes).
    let fixed = 2 + 4 + 1 + tenant_bytes(tenant).len() + 5;
    let budget = max_bytes.saturating_sub(fixed);
    let mut records = Vec::new();
    let mut skipped = Vec::new();
    let mut current = LabelsRecord {
        tenant: tenant.clone(),
        series: Vec::new(),
    };
    let mut used = 0;
    for mut s in series {
        s.labels.sort();
        let len = entry_len(&s);
        if len > budget {
            skipped.push(s.series);
            continue;
        }
        if used + len > budget {
            records.push(encode(&current));
            current.series.clear();
            used = 0;
        }
        used += len;
        current.series.push(s);
    }
    if !current.series.is_empty() {
        records.push(encode(&current));
    }
    (records, skipped)
}

/// Decodes one labels record. Never panics, whatever the bytes.
///
/// # Errors
/// A typed [`RecordError`]: [`RecordError::UnsupportedVersion`] for any first byte but
/// [`VERSION`] (a points record included), else empty, truncated or corrupt input.
pub fn decode(bytes: &[u8]) -> Result<LabelsRecord, RecordError> {
    let (body, _, _) = super::open(bytes, VERSION)?;
    decode_body(&body)
}

fn read_str<'a>(
    cur: &mut Cursor<'a>,
    max: usize,
    what: &'static str,
) -> Result<&'a str, RecordError> {
    let len = read_len(cur, max.min(cur.remaining()), what)?;
    let at = cur.pos();
    let bytes = read_bytes(cur, len, what)?;
    std::str::from_utf8(bytes).map_err(|_| corrupt(at, format!("{what} is not UTF-8")))
}

fn decode_body(body: &[u8]) -> Result<LabelsRecord, RecordError> {
    let mut cur = Cursor::new(body);
    let tenant_at = cur.pos();
    let tenant = read_str(&mut cur, MAX_TENANT_LEN, "tenant")?;
    let tenant = if tenant.is_empty() {
        Tenant::default_tenant()
    } else {
        Tenant::parse(tenant).map_err(|_| corrupt(tenant_at, "tenant is not a valid tenant id"))?
    };
    // Every series costs at least 3 body bytes (name length, a name byte, label count).
    let max_series = cur.remaining() / 3;
    let n_series = read_len(&mut cur, max_series, "series count")?;
    let mut series = Vec::with_capacity(n_series);
    for _ in 0..n_series {
        let at = cur.pos();
        let name = read_str(&mut cur, MAX_SERIES_LEN, "series name")?;
        let name = SeriesName::parse(name, "name")
            .map_err(|e| corrupt(at, format!("series name {name:?}: {e}")))?;
        // Every label costs at least 2 body bytes (two lengths).
        let max_labels = cur.remaining() / 2;
        let n_labels = read_len(&mut cur, max_labels, "label count")?;
        let mut labels = Vec::with_capacity(n_labels);
        for _ in 0..n_labels {
            let k = read_str(&mut cur, MAX_BODY_BYTES, "label name")?;
            let v = read_str(&mut cur, MAX_BODY_BYTES, "label value")?;
            labels.push((k.to_string(), v.to_string()));
        }
        series.push(SeriesLabels {
            series: name,
            labels,
        });
    }
    if cur.remaining() != 0 {
        return Err(corrupt(
            cur.pos(),
            format!("{} trailing bytes after the last series", cur.remaining()),
        ));
    }
    Ok(LabelsRecord { tenant, series })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(s: &str) -> SeriesName {
        SeriesName::parse(s, "name").unwrap()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    fn example() -> LabelsRecord {
        LabelsRecord {
            tenant: Tenant::default_tenant(),
            series: vec![SeriesLabels {
                series: name("http_requests_total.job.api.le.0.5.path._a_b"),
                labels: labels(&[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("le", "0.5"),
                    ("path", "/a/b"),
                ]),
            }],
        }
    }

    #[test]
    fn labels_record_bytes_are_frozen() {
        let record = example();
        let bytes = encode(&record);
        assert_eq!(bytes[0], 0x81);
        assert_eq!(decode(&bytes).unwrap(), record);
        // The body (102 bytes), then the record: DEFLATE against the v1 dictionary.
        assert_eq!(
            hex(&encode_body(&record)),
            "0001\
             2c687474705f72657175657374735f746f74616c2e6a6f622e6170692e6c652e302e352e706174682e5f615f62\
             04\
             085f5f6e616d655f5f13687474705f72657175657374735f746f74616c\
             036a6f6203617069\
             026c6503302e35\
             0470617468042f612f62"
        );
        assert_eq!(
            hex(&bytes),
            "8101666dd33b0a804010035075a6b0f71a326be37942061654fc6ce1fd7116b4f3008f14499a76ac7bc7\
             f7e6b799ed7263592df2269badf05e0c846b0f9c3c3230fc300926c1ba3d4b30ad4c13933f"
        );
        let many = LabelsRecord {
            tenant: Tenant::parse("acme").unwrap(),
            series: (0..20)
                .map(|i| SeriesLabels {
                    series: name(&format!("up.instance.10.0.0.{i}_9100.job.node")),
                    labels: labels(&[
                        ("__name__", "up"),
                        ("instance", &format!("10.0.0.{i}:9100")),
                        ("job", "node"),
                    ]),
                })
                .collect(),
        };
        let bytes = encode(&many);
        assert_eq!(bytes[1], CODEC_DEFLATE, "repetitive label sets compress");
        assert_eq!(decode(&bytes).unwrap(), many);
        insta::assert_snapshot!(hex(&bytes));
    }

    #[test]
    fn a_points_reader_rejects_labels_records_and_back() {
        let bytes = encode(&example());
        assert_eq!(
            crate::record::decode(&bytes),
            Err(RecordError::UnsupportedVersion(0x81))
        );
        let points = crate::record::encode(&crate::record::Record {
            tenant: Tenant::default_tenant(),
            stamp_ms: 0,
            series: vec![],
        });
        assert_eq!(decode(&points), Err(RecordError::UnsupportedVersion(2)));
        assert_eq!(decode(&[]), Err(RecordError::Empty));
    }

    #[test]
    fn bad_bytes_give_typed_errors() {
        let bytes = encode(&example());
        for cut in 1..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode(&trailing).is_err());
        let mut bad_codec = bytes.clone();
        bad_codec[1] = 7;
        assert!(matches!(
            decode(&bad_codec),
            Err(RecordError::Corrupt { .. })
        ));
    }

    #[test]
    fn pack_splits_within_the_limit_and_skips_what_never_fits() {
        let t = Tenant::default_tenant();
        let series: Vec<SeriesLabels> = (0..200)
            .map(|i| SeriesLabels {
                series: name(&format!("m.i.{i}")),
                labels: labels(&[("job", "x"), ("__name__", "m"), ("i", &i.to_string())]),
            })
            .chain(std::iter::once(SeriesLabels {
                series: name("huge"),
                labels: labels(&[("__name__", "huge"), ("v", &"x".repeat(2_000))]),
            }))
            .collect();
        let (records, skipped) = pack(&t, series, 1_000);
        assert_eq!(skipped, vec![name("huge")]);
        assert!(records.len() > 1);
        let mut got = Vec::new();
        for r in &records {
            assert!(r.len() <= 1_000, "{}", r.len());
            got.extend(decode(r).unwrap().series);
        }
        assert_eq!(got.len(), 200);
        // Sorted by label name on the way in.
        assert_eq!(got[0].labels[0].0, "__name__");
        assert_eq!(got[7].series, name("m.i.7"));
    }

    fn any_labels() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec((".{0,12}", ".{0,40}"), 0..8)
    }

    proptest! {
        #[test]
        fn round_trip(
            tenant in proptest::option::of("[A-Za-z0-9._-]{1,64}"),
            series in proptest::collection::vec(("[A-Za-z0-9._-]{1,80}", any_labels()), 0..20),
        ) {
            let record = LabelsRecord {
                tenant: tenant.map_or_else(Tenant::default_tenant, |t| Tenant::parse(&t).unwrap()),
                series: series
                    .into_iter()
                    .map(|(n, labels)| SeriesLabels { series: name(&n), labels })
                    .collect(),
            };
            prop_assert_eq!(decode(&encode(&record)).unwrap(), record);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes);
            let mut labelled = vec![VERSION, 0];
            labelled.extend_from_slice(&bytes);
            let _ = decode(&labelled);
            labelled[1] = 1;
            let _ = decode(&labelled);
        }

        #[test]
        fn mutations_never_panic(i in 0usize..200, b in any::<u8>()) {
            let mut bytes = encode(&example());
            let at = i % bytes.len();
            bytes[at] = b;
            let _ = decode(&bytes);
        }
    }
}
