//! The codecs carat's chunk format is compared with, behind one small interface.

use carat_core::{chunk, Point};
use pco::standalone::{simple_compress, simple_decompress};
use pco::ChunkConfig;
use tsz::stream::{BufferedReader, BufferedWriter};
use tsz::{DataPoint, Decode, Encode, StdDecoder, StdEncoder};

/// A chunk codec under test: encodes the points of one chunk into byte blocks (the
/// size counted is the sum of the blocks; framing between blocks is not charged).
pub trait Codec {
    fn name(&self) -> &'static str;
    fn encode(&self, points: &[Point]) -> Vec<Vec<u8>>;
    /// # Errors
    /// A description of why the blocks do not decode.
    fn decode(&self, blocks: &[Vec<u8>]) -> Result<Vec<Point>, String>;
}

/// carat's chunk format v1.
pub struct Carat;

impl Codec for Carat {
    fn name(&self) -> &'static str {
        "carat"
    }
    fn encode(&self, points: &[Point]) -> Vec<Vec<u8>> {
        vec![chunk::encode(points)]
    }
    fn decode(&self, blocks: &[Vec<u8>]) -> Result<Vec<Point>, String> {
        let [b] = blocks else {
            return Err("one block expected".into());
        };
        chunk::decode(b).map_err(|e| e.to_string())
    }
}

/// Gorilla (Pelkonen et al., VLDB 2015) as implemented by the `tsz` crate: a 64-bit
/// header time, the first delta in 14 bits, delta-of-delta buckets of 7/9/12/32 bits,
/// XOR values with the leading/trailing-zero window, a 36-bit end marker. The header
/// time is the chunk's first time (tsz's 14-bit first delta cannot span a day).
pub struct Gorilla;

impl Codec for Gorilla {
    fn name(&self) -> &'static str {
        "Gorilla (tsz)"
    }
    fn encode(&self, points: &[Point]) -> Vec<Vec<u8>> {
        let start = points.first().map_or(0, |p| p.time as u64);
        let mut e = StdEncoder::new(start, BufferedWriter::new());
        for p in points {
            e.encode(DataPoint::new(p.time as u64, p.value));
        }
        vec![e.close().into_vec()]
    }
    fn decode(&self, blocks: &[Vec<u8>]) -> Result<Vec<Point>, String> {
        let [b] = blocks else {
            return Err("one block expected".into());
        };
        let mut d = StdDecoder::new(BufferedReader::new(b.clone().into_boxed_slice()));
        let mut out = Vec::new();
        loop {
            match d.next() {
                Ok(dp) => out.push(Point::new(dp.get_time() as i64, dp.get_value())),
                Err(tsz::decode::Error::EndOfStream) => return Ok(out),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

/// pco 0.4 (the `pco` crate), standalone format with its default configuration
/// (compression level 8, automatic delta and mode detection: float-mult, int-mult…),
/// times (i64) and values (f64) as two columns.
pub struct Pco;

impl Codec for Pco {
    fn name(&self) -> &'static str {
        "pco"
    }
    fn encode(&self, points: &[Point]) -> Vec<Vec<u8>> {
        let times: Vec<i64> = points.iter().map(|p| p.time).collect();
        let values: Vec<f64> = points.iter().map(|p| p.value).collect();
        let cfg = ChunkConfig::default();
        vec![
            simple_compress(&times, &cfg).expect("pco compresses any i64 column"),
            simple_compress(&values, &cfg).expect("pco compresses any f64 column"),
        ]
    }
    fn decode(&self, blocks: &[Vec<u8>]) -> Result<Vec<Point>, String> {
        let [t, v] = blocks else {
            return Err("two blocks expected".into());
        };
        let times = simple_decompress::<i64>(t).map_err(|e| e.to_string())?;
        let values = simple_decompress::<f64>(v).map_err(|e| e.to_string())?;
        if times.len() != values.len() {
            return Err("columns differ in length".into());
        }
        Ok(times
            .into_iter()
            .zip(values)
            .map(|(t, v)| Point::new(t, v))
            .collect())
    }
}
