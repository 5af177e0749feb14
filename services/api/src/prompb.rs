//! The Prometheus remote storage messages (`prompb/types.proto`, `prompb/remote.proto`)
//! that carat speaks, written by hand with `prost::Message`: remote_write's
//! `WriteRequest` (ingest, [`crate::remote_write`]) and remote_read's `ReadRequest` /
//! `ReadResponse` (the reader's `remote_read`). Only the fields carat reads or writes
//! are declared; prost skips the others (exemplars, metadata) when decoding.
//!
//! Both protocols send their bodies snappy-compressed in the *block* format
//! (`snappy.Encode` in Go, `snap::raw` here), not the framing format: [`decode`] and
//! [`encode`].

use prost::Message;

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

/// `prometheus.ReadRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadRequest {
    #[prost(message, repeated, tag = "1")]
    pub queries: Vec<Query>,
    /// [`ResponseType`]s the client accepts, in its order of preference; empty means
    /// [`ResponseType::Samples`] (what Prometheus before 2.55 sends).
    #[prost(enumeration = "ResponseType", repeated, tag = "2")]
    pub accepted_response_types: Vec<i32>,
}

/// `prometheus.ReadRequest.ResponseType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ResponseType {
    /// One `ReadResponse`, snappy block format (`application/x-protobuf`).
    Samples = 0,
    /// Framed `ChunkedReadResponse`s of XOR chunks (`application/x-streamed-protobuf`).
    StreamedXorChunks = 1,
}

/// `prometheus.Query`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Query {
    #[prost(int64, tag = "1")]
    pub start_timestamp_ms: i64,
    #[prost(int64, tag = "2")]
    pub end_timestamp_ms: i64,
    #[prost(message, repeated, tag = "3")]
    pub matchers: Vec<LabelMatcher>,
    #[prost(message, optional, tag = "4")]
    pub hints: Option<ReadHints>,
}

/// `prometheus.LabelMatcher`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelMatcher {
    #[prost(enumeration = "MatchType", tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub value: String,
}

/// `prometheus.LabelMatcher.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MatchType {
    /// `=`
    Eq = 0,
    /// `!=`
    Neq = 1,
    /// `=~`
    Re = 2,
    /// `!~`
    Nre = 3,
}

/// `prometheus.ReadHints`: what the PromQL engine will do with the samples. Decoded so
/// a request carrying them parses; carat answers raw samples whatever they say.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadHints {
    #[prost(int64, tag = "1")]
    pub step_ms: i64,
    #[prost(string, tag = "2")]
    pub func: String,
    #[prost(int64, tag = "3")]
    pub start_ms: i64,
    #[prost(int64, tag = "4")]
    pub end_ms: i64,
    #[prost(string, repeated, tag = "5")]
    pub grouping: Vec<String>,
    #[prost(bool, tag = "6")]
    pub by: bool,
    #[prost(int64, tag = "7")]
    pub range_ms: i64,
}

/// `prometheus.ReadResponse`: one [`QueryResult`] per query of the request, in order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadResponse {
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<QueryResult>,
}

/// `prometheus.QueryResult`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct QueryResult {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// Why a snappy + protobuf body does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body would decompress to more than the limit (checked before decompressing,
    /// from the length snappy's block header states).
    #[error("the body decompresses to {len} bytes, over the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("body is not snappy (block format): {0}")]
    Snappy(String),
    #[error("body is not a protobuf {message}: {detail}")]
    Protobuf {
        message: &'static str,
        detail: String,
    },
}

/// Decompresses (snappy block format) and decodes a `message` body. The decompressed
/// size is bounded by `max_bytes` before any allocation, so a small body cannot inflate
/// into a huge one.
///
/// # Errors
/// [`DecodeError`]: over `max_bytes`, corrupt snappy, or not a protobuf `M`.
pub fn decode<M: Message + Default>(
    body: &[u8],
    max_bytes: usize,
    message: &'static str,
) -> Result<M, DecodeError> {
    let len = snap::raw::decompress_len(body).map_err(|e| DecodeError::Snappy(e.to_string()))?;
    if len > max_bytes {
        return Err(DecodeError::TooLarge {
            len,
            limit: max_bytes,
        });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| DecodeError::Snappy(e.to_string()))?;
    M::decode(raw.as_slice()).map_err(|e| DecodeError::Protobuf {
        message,
        detail: e.to_string(),
    })
}

/// Encodes and compresses (snappy block format) a message.
#[must_use]
pub fn encode<M: Message>(message: &M) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&message.encode_to_vec())
        // Compression fails only for inputs over snappy's 4 GiB block limit; a message
        // that large cannot be built within the request limits.
        .expect("a protobuf message within the request limits compresses")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn read_requests_round_trip_and_bad_bodies_are_named() {
        let req = ReadRequest {
            queries: vec![Query {
                start_timestamp_ms: -1,
                end_timestamp_ms: 1_700_000_000_000,
                matchers: vec![LabelMatcher {
                    r#type: MatchType::Nre as i32,
                    name: "job".into(),
                    value: "a|b".into(),
                }],
                hints: Some(ReadHints {
                    func: "rate".into(),
                    ..ReadHints::default()
                }),
            }],
            accepted_response_types: vec![ResponseType::StreamedXorChunks as i32],
        };
        let body = encode(&req);
        assert_eq!(decode::<ReadRequest>(&body, 1 << 20, "x"), Ok(req));
        assert!(matches!(
            decode::<ReadRequest>(&body, 4, "x"),
            Err(DecodeError::TooLarge { limit: 4, .. })
        ));
        assert!(matches!(
            decode::<ReadRequest>(b"\xff\xff\xff", 1 << 20, "x"),
            Err(DecodeError::Snappy(_))
        ));
        let junk = snap::raw::Encoder::new().compress_vec(&[0xff; 8]).unwrap();
        let e = decode::<ReadRequest>(&junk, 1 << 20, "prometheus.ReadRequest").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("body is not a protobuf prometheus.ReadRequest"),
            "{e}"
        );
    }
}
