//! Prometheus remote_write 1.0 and remote_read bodies, encoded and decoded by hand
//! (protobuf wire format + snappy block format), so a scenario sends exactly the bytes a
//! Prometheus sends — including values a generated encoder would leave off the wire
//! (a `double` −0.0 is written here, with its sign bit).
//!
//! Messages (prometheus/prompb): `WriteRequest{1: repeated TimeSeries}`,
//! `TimeSeries{1: repeated Label, 2: repeated Sample}`, `Label{1: name, 2: value}`,
//! `Sample{1: double value, 2: int64 timestamp_ms}`; `ReadRequest{1: repeated Query,
//! 2: packed ResponseType}`, `Query{1: start_ms, 2: end_ms, 3: repeated LabelMatcher}`,
//! `LabelMatcher{1: type (EQ 0, NEQ 1, RE 2, NRE 3), 2: name, 3: value}`;
//! `ReadResponse{1: repeated QueryResult}`, `QueryResult{1: repeated TimeSeries}`.

/// One series of a remote_write request or a remote_read answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// As sent (remote_write) or as answered (remote_read: sorted by name).
    pub labels: Vec<(String, String)>,
    /// (timestamp ms, value bits).
    pub samples: Vec<(i64, u64)>,
}

/// A matcher of a remote_read query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchType {
    Eq = 0,
    Neq = 1,
    Re = 2,
    Nre = 3,
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    tag(out, field, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn series_bytes(s: &Series) -> Vec<u8> {
    let mut ts = Vec::new();
    for (k, v) in &s.labels {
        let mut l = Vec::new();
        bytes_field(&mut l, 1, k.as_bytes());
        bytes_field(&mut l, 2, v.as_bytes());
        bytes_field(&mut ts, 1, &l);
    }
    for &(t, bits) in &s.samples {
        let mut m = Vec::new();
        tag(&mut m, 1, 1);
        m.extend_from_slice(&bits.to_le_bytes());
        tag(&mut m, 2, 0);
        varint(&mut m, t as u64);
        bytes_field(&mut ts, 2, &m);
    }
    ts
}

/// A `WriteRequest` protobuf (not compressed).
#[must_use]
pub fn write_request(series: &[Series]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in series {
        bytes_field(&mut out, 1, &series_bytes(s));
    }
    out
}

/// A `ReadRequest` of one query, accepting SAMPLES, as Prometheus 2.42 sends it.
#[must_use]
pub fn read_request(start_ms: i64, end_ms: i64, matchers: &[(MatchType, &str, &str)]) -> Vec<u8> {
    let mut q = Vec::new();
    tag(&mut q, 1, 0);
    varint(&mut q, start_ms as u64);
    tag(&mut q, 2, 0);
    varint(&mut q, end_ms as u64);
    for &(ty, name, value) in matchers {
        let mut m = Vec::new();
        if ty != MatchType::Eq {
            tag(&mut m, 1, 0);
            varint(&mut m, ty as u64);
        }
        bytes_field(&mut m, 2, name.as_bytes());
        bytes_field(&mut m, 3, value.as_bytes());
        bytes_field(&mut q, 3, &m);
    }
    let mut out = Vec::new();
    bytes_field(&mut out, 1, &q);
    // accepted_response_types: [SAMPLES] (packed).
    bytes_field(&mut out, 2, &[0]);
    out
}

/// Snappy block format, as remote_write and remote_read use.
#[must_use]
pub fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .expect("snappy compress")
}

/// Snappy block format decompression.
///
/// # Errors
/// Not snappy, as text.
pub fn unsnappy(b: &[u8]) -> Result<Vec<u8>, String> {
    snap::raw::Decoder::new()
        .decompress_vec(b)
        .map_err(|e| format!("snappy: {e}"))
}

/// One protobuf field: number and value (varint, fixed64 or bytes).
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
}

fn fields(mut b: &[u8]) -> Result<Vec<(u32, Field<'_>)>, String> {
    fn read_varint(b: &mut &[u8]) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first().ok_or("truncated varint")?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = read_varint(&mut b)?;
        let field = u32::try_from(key >> 3).map_err(|_| "field number")?;
        let f = match key & 7 {
            0 => Field::Varint(read_varint(&mut b)?),
            1 => {
                if b.len() < 8 {
                    return Err("truncated fixed64".into());
                }
                let (v, rest) = b.split_at(8);
                b = rest;
                Field::Fixed64(u64::from_le_bytes(v.try_into().unwrap()))
            }
            2 => {
                let n = usize::try_from(read_varint(&mut b)?).map_err(|_| "length")?;
                if b.len() < n {
                    return Err("truncated bytes".into());
                }
                let (v, rest) = b.split_at(n);
                b = rest;
                Field::Bytes(v)
            }
            5 => {
                if b.len() < 4 {
                    return Err("truncated fixed32".into());
                }
                b = &b[4..];
                continue;
            }
            w => return Err(format!("wire type {w}")),
        };
        out.push((field, f));
    }
    Ok(out)
}

fn text(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|e| e.to_string())
}

fn decode_series(b: &[u8]) -> Result<Series, String> {
    let mut s = Series {
        labels: Vec::new(),
        samples: Vec::new(),
    };
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(l)) => {
                let (mut k, mut v) = (String::new(), String::new());
                for (n, f) in fields(l)? {
                    match (n, f) {
                        (1, Field::Bytes(x)) => k = text(x)?,
                        (2, Field::Bytes(x)) => v = text(x)?,
                        _ => {}
                    }
                }
                s.labels.push((k, v));
            }
            (2, Field::Bytes(m)) => {
                // Absent fields are their defaults: value +0.0, timestamp 0.
                let (mut t, mut bits) = (0i64, 0u64);
                for (n, f) in fields(m)? {
                    match (n, f) {
                        (1, Field::Fixed64(x)) => bits = x,
                        (2, Field::Varint(x)) => t = x as i64,
                        _ => {}
                    }
                }
                s.samples.push((t, bits));
            }
            _ => {}
        }
    }
    Ok(s)
}

/// A `ReadResponse` (already unsnappied): per query, its series.
///
/// # Errors
/// Bytes that are not one, as text.
pub fn decode_read_response(b: &[u8]) -> Result<Vec<Vec<Series>>, String> {
    let mut out = Vec::new();
    for (n, f) in fields(b)? {
        if let (1, Field::Bytes(r)) = (n, f) {
            let mut result = Vec::new();
            for (n, f) in fields(r)? {
                if let (1, Field::Bytes(ts)) = (n, f) {
                    result.push(decode_series(ts)?);
                }
            }
            out.push(result);
        }
    }
    Ok(out)
}

/// Decodes a `WriteRequest` (the inverse of [`write_request`]; for self-checks).
///
/// # Errors
/// Bytes that are not one, as text.
pub fn decode_write_request(b: &[u8]) -> Result<Vec<Series>, String> {
    let mut out = Vec::new();
    for (n, f) in fields(b)? {
        if let (1, Field::Bytes(ts)) = (n, f) {
            out.push(decode_series(ts)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_request_decodes_to_what_was_encoded_bits_and_all() {
        let s = vec![Series {
            labels: vec![("__name__".into(), "up".into()), ("job".into(), "a".into())],
            samples: vec![
                (1_700_000_000_123, (-0.0f64).to_bits()),
                (1_700_000_001_000, 0x7ff8_0000_0000_beef),
                (-5, 1.5f64.to_bits()),
            ],
        }];
        let raw = write_request(&s);
        assert_eq!(decode_write_request(&raw).unwrap(), s);
        assert_eq!(unsnappy(&snappy(&raw)).unwrap(), raw);
    }
}
