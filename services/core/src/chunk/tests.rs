use super::*;
use proptest::prelude::*;

fn round_trip(points: &[Point]) -> Vec<u8> {
    let bytes = encode(points);
    let back = decode(&bytes).expect("a chunk we encoded decodes");
    assert_eq!(back.len(), points.len());
    for (i, (a, b)) in points.iter().zip(&back).enumerate() {
        assert!(a.same_bits(b), "point {i}: {a:?} came back as {b:?}");
    }
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn special_values_round_trip_bit_exact() {
    let specials = [
        0.0,
        -0.0,
        f64::MIN_POSITIVE,
        f64::from_bits(1),                      // smallest subnormal
        -f64::from_bits(0x000f_ffff_ffff_ffff), // largest negative subnormal
        f64::NAN,
        f64::from_bits(0x7ff8_0000_dead_beef), // quiet NaN with payload
        f64::from_bits(0xfff0_0000_0000_0001), // negative signalling NaN
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        f64::MIN,
        12.34,
        225_260.0,
        94.797_999_999_999_99,
        1e300,
        -1e-300,
    ];
    let points: Vec<Point> = specials
        .iter()
        .enumerate()
        .map(|(i, &v)| Point::new(i as i64 * 60, v))
        .collect();
    round_trip(&points);
    for &v in &specials {
        round_trip(&[Point::new(0, v)]);
        round_trip(&[
            Point::new(i64::MIN, v),
            Point::new(i64::MAX, v),
            Point::new(0, 1.5),
        ]);
    }
    round_trip(&[]);
}

#[test]
fn times_in_any_order_and_repeated_round_trip() {
    let times = [5, 5, 5, -3, i64::MAX, i64::MIN, 0, 0, 60, 120, 180, 180, 1];
    let points: Vec<Point> = times.iter().map(|&t| Point::new(t, 1.0)).collect();
    round_trip(&points);
}

#[test]
fn regular_decimal_series_are_small() {
    // A day of 1-minute points of a 2-decimal gauge and a counter.
    let gauge: Vec<Point> = (0..1440)
        .map(|i| Point::new(86_400 + i * 60, f64::from((i * 37 % 500) as i32) / 100.0))
        .collect();
    let bytes = round_trip(&gauge);
    assert!(bytes.len() < 1440 * 2, "{} bytes", bytes.len());
    let counter: Vec<Point> = (0..1440)
        .map(|i| Point::new(86_400 + i * 60, 225_260.0 + (i * 3) as f64))
        .collect();
    let bytes = round_trip(&counter);
    assert!(bytes.len() < 200, "{} bytes", bytes.len());
}

#[test]
fn chunk_bytes_are_frozen() {
    // A small input that touches every part of the format: a gap in the times, a
    // decimal column with binary noise, and an XOR column.
    let decimal = [
        Point::new(1_700_000_000, 12.34),
        Point::new(1_700_000_060, 12.5),
        Point::new(1_700_000_120, 94.797_999_999_999_99),
        Point::new(1_700_000_240, 225_260.0),
        Point::new(1_700_000_300, -0.0),
    ];
    let xor = [
        Point::new(0, std::f64::consts::PI),
        Point::new(7, std::f64::consts::E),
        Point::new(7, f64::NAN),
        Point::new(3, std::f64::consts::PI),
    ];
    let (a, b) = (round_trip(&decimal), round_trip(&xor));
    insta::assert_snapshot!(format!(
        "decimal: {}\nxor:     {}\nempty:   {}",
        hex(&a),
        hex(&b),
        hex(&encode(&[]))
    ));
}

#[test]
fn bad_headers_give_typed_errors() {
    assert_eq!(decode(&[]), Err(ChunkError::Empty));
    assert_eq!(decode(&[3]), Err(ChunkError::UnsupportedVersion(3)));
    assert!(matches!(decode(&[2]), Err(ChunkError::Truncated { .. })));
    assert!(matches!(decode(&[1]), Err(ChunkError::Truncated { .. })));
    // A huge count is refused before anything is allocated.
    let mut huge = vec![1];
    varint::put_u64(&mut huge, u64::MAX);
    assert!(matches!(decode(&huge), Err(ChunkError::Corrupt { .. })));
    let mut over = vec![1];
    varint::put_u64(&mut over, MAX_POINTS as u64 + 1);
    assert!(matches!(decode(&over), Err(ChunkError::Corrupt { .. })));
    // Trailing garbage after a valid chunk.
    let mut trailing = encode(&[Point::new(1, 2.0)]);
    trailing.push(0);
    assert!(matches!(decode(&trailing), Err(ChunkError::Corrupt { .. })));
}

/// Seconds since the epoch of `YYYY-MM-DD HH:MM:SS`, read as UTC.
fn parse_utc(s: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().expect("fixture timestamp");
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

const FIXTURES: [(&str, &str); 3] = [
    (
        "ec2_cpu_utilization_825cc2",
        include_str!("../../../../tests/fixtures/nab/ec2_cpu_utilization_825cc2.csv"),
    ),
    (
        "ec2_disk_write_bytes_1ef3de",
        include_str!("../../../../tests/fixtures/nab/ec2_disk_write_bytes_1ef3de.csv"),
    ),
    (
        "grok_asg_anomaly",
        include_str!("../../../../tests/fixtures/nab/grok_asg_anomaly.csv"),
    ),
];

#[test]
fn real_data_round_trips_losslessly_per_day() {
    assert_eq!(parse_utc("1970-01-02 00:00:01"), 86_401);
    assert_eq!(parse_utc("2014-04-10 00:04:00"), 1_397_088_240);
    let (mut points_total, mut bytes_total) = (0usize, 0usize);
    for (name, csv) in FIXTURES {
        let points: Vec<Point> = csv
            .lines()
            .skip(1)
            .map(|line| {
                let (t, v) = line.split_once(',').expect("fixture line has a comma");
                Point::new(parse_utc(t), v.parse().expect("fixture value"))
            })
            .collect();
        assert!(points.len() > 500, "{name}");
        let mut day_start = 0;
        while day_start < points.len() {
            let day = points[day_start].time.div_euclid(86_400);
            let len = points[day_start..]
                .iter()
                .take_while(|p| p.time.div_euclid(86_400) == day)
                .count();
            let bytes = round_trip(&points[day_start..day_start + len]);
            points_total += len;
            bytes_total += bytes.len();
            day_start += len;
        }
    }
    let per_point = bytes_total as f64 / points_total as f64;
    // A regression guard on size (deterministic), not a benchmark.
    assert!(per_point < 2.0, "{per_point:.3} bytes/point");
}

fn decimal_value(places: u32) -> impl Strategy<Value = f64> {
    (-10_000_000i64..10_000_000).prop_map(move |m| m as f64 / 10f64.powi(places as i32))
}

fn realistic_points() -> impl Strategy<Value = Vec<Point>> {
    let values = prop_oneof![
        (1u32..=4).prop_flat_map(|p| proptest::collection::vec(decimal_value(p), 0..400)),
        (0u64..1 << 40, proptest::collection::vec(0u64..5000, 0..400)).prop_map(|(start, incs)| {
            incs.iter()
                .scan(start, |c, &i| {
                    *c += i;
                    Some(*c as f64)
                })
                .collect()
        }),
        // decimals with binary noise: a few ULPs off
        proptest::collection::vec((decimal_value(3), -3i64..=3), 0..400).prop_map(|v| v
            .iter()
            .map(|&(d, u)| f64::from_bits(d.to_bits().wrapping_add(u as u64)))
            .collect()),
    ];
    (
        values,
        0i64..2_000_000_000,
        proptest::collection::vec(-3i64..=3, 400),
    )
        .prop_map(|(values, start, jitter): (Vec<f64>, i64, Vec<i64>)| {
            values
                .iter()
                .zip(&jitter)
                .enumerate()
                .map(|(i, (&v, &j))| Point::new(start + i as i64 * 60 + j, v))
                .collect()
        })
}

proptest! {
    #[test]
    fn any_points_round_trip_bit_exact(
        raw in proptest::collection::vec((any::<i64>(), any::<u64>().prop_map(f64::from_bits)), 0..300)
    ) {
        let points: Vec<Point> = raw.into_iter().map(|(t, v)| Point::new(t, v)).collect();
        round_trip(&points);
    }

    #[test]
    fn realistic_points_round_trip_bit_exact(points in realistic_points()) {
        round_trip(&points);
    }

    #[test]
    fn mutated_chunks_never_panic(
        points in realistic_points(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = encode(&points);
        let mut mutated = bytes.clone();
        for (i, x) in &flips {
            let i = i.index(mutated.len());
            mutated[i] ^= x;
        }
        let _ = decode(&mutated);
        let _ = decode(&bytes[..cut.index(bytes.len() + 1)]);
    }
}

proptest! {
    // Cheap cases: many of them.
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode(&bytes);
        let mut v1 = vec![VERSION];
        v1.extend_from_slice(&bytes);
        let _ = decode(&v1);
        let mut v2 = vec![VERSION_STAMPED];
        v2.extend_from_slice(&bytes);
        let _ = decode_stamped(&v2);
    }
}

fn stamped_round_trip(points: &[Point], stamps: &[i64]) -> Vec<u8> {
    let bytes = encode_stamped(points, stamps);
    let (back, back_stamps) = decode_stamped(&bytes).expect("a stamped chunk we encoded decodes");
    assert_eq!(back_stamps.as_deref(), Some(stamps));
    assert_eq!(back.len(), points.len());
    for (i, (a, b)) in points.iter().zip(&back).enumerate() {
        assert!(a.same_bits(b), "point {i}: {a:?} came back as {b:?}");
    }
    assert_eq!(
        decode(&bytes).expect("plain decode of v2").len(),
        points.len()
    );
    bytes
}

#[test]
fn stamped_chunk_bytes_are_frozen() {
    // A batch (one stamp), a stream (steady lag with one jitter) and the empty chunk.
    let points: Vec<Point> = (0..5)
        .map(|i| Point::new(1_700_000_000 + i * 60, 12.5 + i as f64))
        .collect();
    let batch = [1_700_000_400; 5];
    let stream = [
        1_700_000_061,
        1_700_000_121,
        1_700_000_182,
        1_700_000_241,
        1_700_000_301,
    ];
    let (a, b) = (
        stamped_round_trip(&points, &batch),
        stamped_round_trip(&points, &stream),
    );
    insta::assert_snapshot!(format!(
        "batch:  {}\nstream: {}\nempty:  {}",
        hex(&a),
        hex(&b),
        hex(&encode_stamped(&[], &[]))
    ));
}

#[test]
fn stamps_of_regular_writes_cost_almost_nothing() {
    // A day of 1-minute points posted each minute by an agent with a lag of 30–32 s,
    // and the same day written by one request: the stamp column is a few bytes.
    let points: Vec<Point> = (0..1440)
        .map(|i| Point::new(86_400 + i * 60, (i % 17) as f64))
        .collect();
    let plain = encode(&points).len();
    let lag: Vec<i64> = (0..1440i64)
        .map(|i| 86_400 + i * 60 + 30 + (i * 7 % 3))
        .collect();
    let one: Vec<i64> = vec![86_400 * 2 + 5; 1440];
    let with_lag = encode_stamped(&points, &lag).len() - plain;
    let with_one = encode_stamped(&points, &one).len() - plain;
    assert!(with_one <= 8, "batch stamps cost {with_one} B");
    eprintln!("stamp column: batch {with_one} B, stream {with_lag} B for 1440 points");
    assert!(
        with_lag < 1440 / 2,
        "streamed stamps cost {with_lag} B for 1440 points"
    );
}

proptest! {
    #[test]
    fn any_stamped_points_round_trip_bit_exact(
        raw in proptest::collection::vec((any::<i64>(), any::<u64>().prop_map(f64::from_bits), any::<i64>()), 0..300)
    ) {
        let points: Vec<Point> = raw.iter().map(|&(t, v, _)| Point::new(t, v)).collect();
        let stamps: Vec<i64> = raw.iter().map(|&(_, _, s)| s).collect();
        stamped_round_trip(&points, &stamps);
    }

    #[test]
    fn realistic_stamped_points_round_trip(points in realistic_points(), lag in 0i64..100_000, jitter in 0i64..5) {
        let stamps: Vec<i64> = points.iter().enumerate().map(|(i, p)| p.time + lag + (i as i64 % (jitter + 1))).collect();
        stamped_round_trip(&points, &stamps);
    }

    #[test]
    fn mutated_stamped_chunks_never_panic(
        points in realistic_points(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let stamps: Vec<i64> = points.iter().map(|p| p.time + 61).collect();
        let bytes = encode_stamped(&points, &stamps);
        let mut mutated = bytes.clone();
        for (i, x) in &flips {
            let i = i.index(mutated.len());
            mutated[i] ^= x;
        }
        let _ = decode_stamped(&mutated);
        let _ = decode_stamped(&bytes[..cut.index(bytes.len() + 1)]);
    }
}
