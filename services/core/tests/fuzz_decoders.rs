//! Fuzz run (issue 11, scenario 7) of the decoders of stored and logged bytes: Kinesis
//! records (points and labels, [`record::decode_any`]), chunks ([`chunk::decode_stamped`])
//! and head byte strings ([`head::entries`]). The unit tests next to each decoder
//! already show that arbitrary and mutated bytes never panic and that encodings round
//! trip; this file adds what they do not check:
//!
//! - **allocation**: the hostile-bytes tests run again in a child process capped at 1 GiB of
//!   address space, so no decode allocates what a lying header claims (2^32 or 2^62
//!   items); headers crafted to claim the most each format allows are refused;
//! - the head format: arbitrary bytes, round trips, and merges that never panic;
//! - mutated valid encodings of every record kind through the one entry point the
//!   writer uses (`decode_any`).
//!
//! Bounded: a few hundred to a few thousand cases per property, about a second in all.
#![allow(clippy::unwrap_used)]

use carat_core::head::{self, Entry, ENTRY_BYTES};
use carat_core::record::labels::{self, LabelsRecord, SeriesLabels};
use carat_core::record::{self, Record, SeriesPoints};
use carat_core::{chunk, Point, SeriesName, Tenant};
use proptest::prelude::*;

/// The address space the capped re-run of this file's tests may use, bytes: far under
/// what an allocation sized by a lying header (2^32 or 2^63 items) takes, far over what
/// the decoders need (a record body of at most 4 MiB, a chunk of at most 2^21 points).
const CAP_BYTES: u64 = 1 << 30;

/// Runs the hostile-bytes tests of this file again in a child process whose address
/// space is capped (`prlimit --as`): an allocation past the cap aborts the child, so an
/// unbounded allocation anywhere in the decoders fails this test. (The workspace
/// forbids `unsafe`, so a counting global allocator is not an option.)
#[test]
fn every_decode_here_fits_under_a_memory_cap() {
    if std::env::var_os("CARAT_FUZZ_CAPPED").is_some() {
        return; // this is the child
    }
    let exe = std::env::current_exe().unwrap();
    let out = match std::process::Command::new("prlimit")
        .arg(format!("--as={CAP_BYTES}"))
        .arg("--")
        .arg(&exe)
        .args([
            "--test-threads=1",
            "--skip",
            "every_decode_here_fits_under_a_memory_cap",
        ])
        .env("CARAT_FUZZ_CAPPED", "1")
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("SKIPPED: prlimit (util-linux) is not available: {e}");
            return;
        }
    };
    assert!(
        out.status.success(),
        "the capped run failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("every decode of this file ran under a {CAP_BYTES}-byte address space");
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn name(i: usize) -> SeriesName {
    SeriesName::parse(&format!("host.h{}.cpu.user", i % 7), "s").unwrap()
}

fn points(n: usize) -> Vec<Point> {
    (0..n)
        .map(|i| {
            Point::new(
                1_700_000_000 + 60 * i as i64,
                f64::from(u32::try_from(i % 100).unwrap()) * 0.25,
            )
        })
        .collect()
}

fn a_record(n: usize) -> Record {
    let series = points(n)
        .chunks(7)
        .enumerate()
        .map(|(i, c)| SeriesPoints {
            series: name(i),
            points: c.to_vec(),
        })
        .collect();
    Record {
        tenant: Tenant::parse("t1").unwrap(),
        stamp_ms: 1_700_000_000_123,
        series,
    }
}

fn a_labels_record(n: usize) -> LabelsRecord {
    LabelsRecord {
        tenant: Tenant::parse("t1").unwrap(),
        series: (0..n)
            .map(|i| SeriesLabels {
                series: name(i),
                labels: vec![
                    ("__name__".into(), "up".into()),
                    ("instance".into(), format!("10.0.0.{i}:9100")),
                ],
            })
            .collect(),
    }
}

/// Headers that claim the most each format allows (or more) in a few bytes: refused,
/// without allocating what they claim (the capped re-run aborts if they do).
#[test]
fn headers_claiming_the_most_are_refused() {
    // Up to MAX_POINTS a claim may be true: a constant time column (LINE) and constant
    // values take a few bytes for any count, so 21 bytes can hold 2^21 points (~48 MB
    // decoded, stamps included). That is the format's amplification, bounded by
    // MAX_POINTS; chunks are carat's own stored bytes, never a client's.
    for (version, n) in [
        (chunk::VERSION, chunk::MAX_POINTS as u64),
        (chunk::VERSION_STAMPED, chunk::MAX_POINTS as u64),
        (chunk::VERSION, chunk::MAX_POINTS as u64 + 1),
        (chunk::VERSION, u64::MAX >> 1),
        (chunk::VERSION_STAMPED, u64::from(u32::MAX)),
    ] {
        let mut b = vec![version];
        varint(&mut b, n);
        b.extend_from_slice(&[0u8; 16]);
        let r = chunk::decode_stamped(&b);
        eprintln!(
            "chunk v{version} claiming {n} points in {} bytes: {:?}",
            b.len(),
            r.as_ref()
                .map(|(p, _)| p.len())
                .map_err(ToString::to_string)
        );
        if let Ok((p, _)) = r {
            assert!(n <= chunk::MAX_POINTS as u64 && p.len() as u64 == n);
        }
        if n > chunk::MAX_POINTS as u64 {
            assert!(
                chunk::decode_stamped(&b).is_err(),
                "a claim over MAX_POINTS is refused"
            );
        }
    }
    for codec in [0u8, 1] {
        for claim in [record::MAX_BODY_BYTES as u64, u64::MAX >> 1] {
            let mut b = vec![record::VERSION, codec];
            varint(&mut b, claim);
            b.extend_from_slice(&[0x55; 64]);
            let r = record::decode_any(&b);
            eprintln!(
                "record codec {codec} claiming a {claim}-byte body in {} bytes: {:?}",
                b.len(),
                r.as_ref().err().map(ToString::to_string)
            );
            assert!(r.is_err());
        }
    }
    // A stored body whose series count and point counts claim 2^62.
    let mut body = Vec::new();
    varint(&mut body, 2);
    body.extend_from_slice(b"t1");
    body.extend_from_slice(&[0; 2]); // stamp, base time
    varint(&mut body, u64::MAX >> 2); // series count
    body.extend_from_slice(&[0; 32]);
    let mut b = vec![record::VERSION, 0];
    varint(&mut b, body.len() as u64);
    b.extend_from_slice(&body);
    assert!(record::decode_any(&b).is_err());
    // A labels record claiming 2^62 series.
    let mut b = vec![labels::VERSION, 0];
    varint(&mut b, u64::MAX >> 2);
    b.extend_from_slice(&[1; 32]);
    assert!(record::decode_any(&b).is_err());
    // A head string that is not whole entries.
    assert!(head::entries(&vec![7u8; (1 << 20) - 1]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes, bare and behind each format's valid header: every decoder
    /// answers; the head decoder exactly when the length is whole entries.
    #[test]
    fn arbitrary_bytes_are_answered(bytes in proptest::collection::vec(any::<u8>(), 0..600), tag in 0u8..6) {
        let mut b = match tag {
            0 => Vec::new(),
            1 => vec![record::VERSION, 0],
            2 => vec![record::VERSION, 1],
            3 => vec![labels::VERSION, 0],
            4 => vec![chunk::VERSION],
            _ => vec![chunk::VERSION_STAMPED],
        };
        b.extend_from_slice(&bytes);
        let _ = record::decode_any(&b);
        let _ = chunk::decode_stamped(&b);
        let r = head::entries(&b);
        prop_assert_eq!(r.map(|e| e.len()).ok(), (b.len() % ENTRY_BYTES == 0).then_some(b.len() / ENTRY_BYTES));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Valid points records, labels records and chunks (plain and stamped) with bytes
    /// changed, cut or inserted, through the writer's entry point `decode_any` and the
    /// reader's `decode_stamped`: answered, never a panic; an untouched encoding decodes.
    #[test]
    fn mutated_encodings_are_answered(
        n in 1usize..300,
        kind in 0u8..4,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 0..8),
    ) {
        let mut b = match kind {
            0 => record::encode(&a_record(n)),
            1 => labels::encode(&a_labels_record(n % 40 + 1)),
            2 => chunk::encode(&points(n)),
            _ => {
                let pts = points(n);
                let stamps: Vec<i64> = pts.iter().map(|p| p.time * 1000 + 17).collect();
                chunk::encode_stamped(&pts, &stamps)
            }
        };
        let mut edited = false;
        for (at, byte, op) in edits {
            if b.is_empty() {
                break;
            }
            let at = at % b.len();
            match op {
                0 => b[at] = byte,
                1 => b.truncate(at),
                2 => b.insert(at, byte),
                _ => continue,
            }
            edited = true;
        }
        let any = record::decode_any(&b);
        let chunk = chunk::decode_stamped(&b);
        if !edited {
            let decoded = if kind < 2 { any.is_ok() } else { chunk.is_ok() };
            prop_assert!(decoded, "an untouched encoding of kind {} decodes", kind);
        }
    }

    /// Head entries round-trip through their 16 bytes, in order; any multiset of them
    /// merges without panicking into one point per time, none before the window; a
    /// string cut inside an entry is refused, not misread.
    #[test]
    fn head_entries_round_trip_and_merge(
        raw in proptest::collection::vec((any::<u32>(), any::<i32>(), any::<u64>()), 0..200),
        window_start in -(1i64 << 40)..(1i64 << 40),
        cut in 1usize..ENTRY_BYTES,
    ) {
        let entries: Vec<Entry> = raw
            .iter()
            .map(|&(time_offset, stamp_rel_ms, value_bits)| Entry { time_offset, stamp_rel_ms, value_bits })
            .collect();
        let mut bytes = Vec::new();
        for e in &entries {
            e.encode_into(&mut bytes);
        }
        prop_assert_eq!(bytes.len(), entries.len() * ENTRY_BYTES);
        let back = head::entries(&bytes).unwrap();
        prop_assert_eq!(&back, &entries);
        let merged = head::merge(window_start, &back);
        let mut times: Vec<i64> = merged.iter().map(|p| p.time).collect();
        let n = times.len();
        times.dedup();
        prop_assert_eq!(times.len(), n, "one point per time");
        prop_assert!(merged.iter().all(|p| p.time >= window_start));
        if !bytes.is_empty() {
            prop_assert!(head::entries(&bytes[..bytes.len() - cut]).is_err());
        }
    }
}
