use super::*;
use proptest::prelude::*;

fn name(s: &str) -> SeriesName {
    SeriesName::parse(s, "name").expect("test names are valid")
}

fn same(a: &Record, b: &Record) -> bool {
    a.tenant == b.tenant
        && a.stamp_ms == b.stamp_ms
        && a.series.len() == b.series.len()
        && a.series.iter().zip(&b.series).all(|(x, y)| {
            x.series == y.series
                && x.points.len() == y.points.len()
                && x.points.iter().zip(&y.points).all(|(p, q)| p.same_bits(q))
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One Mackerel host posting 100 metrics, one point each, at the same time.
fn mackerel_post() -> Record {
    let metrics = [
        "cpu.user.percentage",
        "cpu.system.percentage",
        "cpu.iowait.percentage",
        "cpu.idle.percentage",
        "loadavg1",
        "loadavg5",
        "loadavg15",
        "memory.used",
        "memory.cached",
        "memory.buffers",
        "memory.free",
    ];
    let series = (0..100)
        .map(|i| {
            let metric = metrics[i % metrics.len()];
            SeriesPoints {
                series: name(&format!("host.3hXYZabc12.{metric}.{i}")),
                points: vec![Point::new(1_700_000_040, (i * 1234 % 9999) as f64 / 100.0)],
            }
        })
        .collect();
    Record {
        tenant: Tenant::default_tenant(),
        stamp_ms: 1_700_000_041_234,
        series,
    }
}

#[test]
fn record_bytes_are_frozen() {
    let record = golden_record();
    let bytes = encode_v1(&record);
    assert!(same(&decode(&bytes).expect("decodes"), &record));
    let body = encode_body(&record, Names::V1);
    insta::assert_snapshot!(format!("record: {}\nbody:   {}", hex(&bytes), hex(&body)));
}

/// The example of docs/formats.md ("Kinesis record v1" and "v2").
fn golden_record() -> Record {
    Record {
        tenant: Tenant::default_tenant(),
        stamp_ms: 1_700_000_041_234,
        series: vec![
            SeriesPoints {
                series: name("host.h1.cpu.user"),
                points: vec![
                    Point::new(1_700_000_040, 12.34),
                    Point::new(1_700_000_100, -0.0),
                ],
            },
            SeriesPoints {
                series: name("host.h1.memory.used"),
                points: vec![Point::new(1_700_000_040, 225_260.0)],
            },
        ],
    }
}

#[test]
fn record_v2_bytes_are_frozen() {
    let record = golden_record();
    let inline = encode(&record);
    let set = NameSet::of(record.series.iter().map(|s| &s.series));
    let by_set = encode_with_set(&record, &set);
    assert!(same(&decode(&inline).expect("decodes"), &record));
    let parts = decode_parts(&by_set).expect("decodes");
    assert_eq!(parts.name_set(), Some(set.id()));
    let names = NameSet::open(&set.sealed(), set.id()).expect("opens");
    assert!(same(&parts.with_names(&names).expect("resolves"), &record));
    insta::assert_snapshot!(format!(
        "inline record: {}\ninline body:   {}\nset record:    {}\nset body:      {}\nname set id:   {}\nname set body: {}\nname set item: {}",
        hex(&inline),
        hex(&encode_body(&record, Names::Inline)),
        hex(&by_set),
        hex(&encode_body(&record, Names::Set(set.id()))),
        set.id(),
        hex(set.body()),
        hex(&set.sealed()),
    ));
}

#[test]
fn both_versions_decode_to_the_same_record() {
    let r = mackerel_post();
    let set = NameSet::of(r.series.iter().map(|s| &s.series));
    assert!(set.worth_referencing());
    let names = NameSet::open(&set.sealed(), set.id()).expect("opens");
    let v1 = decode(&encode_v1(&r)).expect("v1");
    let v2 = decode(&encode(&r)).expect("v2 inline");
    let v2s = decode_parts(&encode_with_set(&r, &set))
        .expect("v2 by set")
        .with_names(&names)
        .expect("resolves");
    assert!(same(&v1, &r) && same(&v2, &r) && same(&v2s, &r));
    // Without its set, a record by set is an error that names the set.
    assert_eq!(
        decode(&encode_with_set(&r, &set)),
        Err(RecordError::NeedsNameSet(set.id()))
    );
    // The set of 100 names is 16 bytes in the record.
    let inline = encode(&r).len();
    let by_set = encode_with_set(&r, &set).len();
    assert!(by_set + 300 < inline, "{by_set} vs {inline}");
}

#[test]
fn name_sets_are_checked_against_their_id() {
    let r = mackerel_post();
    let set = NameSet::of(r.series.iter().map(|s| &s.series));
    let mut other = r.clone();
    other.series.truncate(50);
    let other_set = NameSet::of(other.series.iter().map(|s| &s.series));
    assert_ne!(set.id(), other_set.id());
    // Bytes of another set under this id.
    assert!(matches!(
        NameSet::open(&other_set.sealed(), set.id()),
        Err(RecordError::Corrupt { .. })
    ));
    // A set with fewer names than the record has series.
    let names = NameSet::open(&other_set.sealed(), other_set.id()).expect("opens");
    let parts = decode_parts(&encode_with_set(&r, &set)).expect("decodes");
    assert!(matches!(
        parts.with_names(&names),
        Err(RecordError::Corrupt { .. })
    ));
    // Same names, same id, whoever computes it.
    assert_eq!(
        NameSet::of(r.series.iter().map(|s| &s.series)).id(),
        set.id()
    );
    // An unknown names kind.
    let mut body = encode_body(&r, Names::Inline);
    let kind_at = 1 + 6 + 1 + 1; // tenant, stamp, base, series count (100: 1 byte)
    assert_eq!(body[kind_at], 0);
    body[kind_at] = 7;
    let mut rec = vec![VERSION, CODEC_STORED];
    varint::put_u64(&mut rec, body.len() as u64);
    rec.extend_from_slice(&body);
    assert!(matches!(decode(&rec), Err(RecordError::Corrupt { .. })));
}

#[test]
fn bad_records_give_typed_errors() {
    assert_eq!(decode(&[]), Err(RecordError::Empty));
    assert_eq!(decode(&[9]), Err(RecordError::UnsupportedVersion(9)));
    assert!(matches!(decode(&[1]), Err(RecordError::Truncated { .. })));
    assert!(matches!(
        decode(&[1, 7, 0]),
        Err(RecordError::Corrupt { .. })
    ));
    // A body length over the limit is refused before anything is inflated.
    let mut huge = vec![1, 1];
    varint::put_u64(&mut huge, u64::MAX);
    assert!(matches!(decode(&huge), Err(RecordError::Corrupt { .. })));
    // A DEFLATE stream that inflates past its declared length.
    let bomb = deflate_with_dictionary(&vec![0u8; 1 << 20]);
    let mut rec = vec![1, 1, 10];
    rec.extend_from_slice(&bomb);
    assert!(matches!(decode(&rec), Err(RecordError::Corrupt { .. })));
    // An invalid series name inside a valid layout.
    let mut r = mackerel_post();
    r.series.truncate(1);
    let mut body = encode_body(&r, Names::V1);
    let at = body
        .iter()
        .position(|&b| b == b'.')
        .expect("name has a dot");
    body[at] = b'/';
    let mut rec = vec![1, 0];
    varint::put_u64(&mut rec, body.len() as u64);
    rec.extend_from_slice(&body);
    assert!(matches!(decode(&rec), Err(RecordError::Corrupt { .. })));
}

#[test]
fn pack_splits_in_order_and_respects_the_limit() {
    let big = SeriesPoints {
        series: name("service.web.requests"),
        points: (0..5000)
            .map(|i| Point::new(1_700_000_000 + i, f64::from(i as i32) * 1.5))
            .collect(),
    };
    let small = SeriesPoints {
        series: name("service.web.errors"),
        points: vec![Point::new(1_700_000_000, 3.0)],
    };
    let tenant = Tenant::default_tenant();
    let input = vec![small.clone(), big.clone(), small.clone()];
    for max in [64, 1024, 10_000, 1_000_000] {
        let records = pack(&tenant, 42, input.clone(), max).expect("points fit");
        let mut flat: Vec<(SeriesName, Point)> = Vec::new();
        for r in &records {
            assert!(r.len() <= max, "{} > {max}", r.len());
            let d = decode(r).expect("packed records decode");
            assert_eq!((d.tenant.clone(), d.stamp_ms), (tenant.clone(), 42));
            flat.extend(
                d.series
                    .iter()
                    .flat_map(|s| s.points.iter().map(|p| (s.series.clone(), *p))),
            );
        }
        let expected: Vec<(SeriesName, Point)> = input
            .iter()
            .flat_map(|s| s.points.iter().map(|p| (s.series.clone(), *p)))
            .collect();
        assert_eq!(flat, expected, "max {max}");
        if max == 1_000_000 {
            assert_eq!(records.len(), 1);
        }
    }
    assert!(matches!(
        pack(&tenant, 42, input, 20),
        Err(RecordError::TooLarge { limit: 20, .. })
    ));
    assert_eq!(pack(&tenant, 42, Vec::new(), 100), Ok(Vec::new()));
}

#[test]
fn compression_does_not_depend_on_earlier_records() {
    let r = mackerel_post();
    let first = encode(&r);
    let mut other = mackerel_post();
    other.series.truncate(7);
    other.stamp_ms += 1;
    let _ = encode(&other);
    assert_eq!(encode(&r), first);
    let fresh = std::thread::spawn(move || encode(&r))
        .join()
        .expect("encoding on a fresh thread");
    assert_eq!(fresh, first);
}

#[test]
fn mackerel_post_is_compact() {
    let r = mackerel_post();
    let bytes = encode(&r);
    assert!(same(&decode(&bytes).expect("decodes"), &r));
    // A size guard (deterministic), not a benchmark: the bench reports the number.
    assert!(bytes.len() < 100 * 16, "{} bytes", bytes.len());
}

fn arb_name() -> impl Strategy<Value = SeriesName> {
    prop_oneof![
        "[A-Za-z0-9._-]{1,40}",
        "host\\.[a-z0-9]{3}\\.[a-z.]{1,20}",
        "[a-z]{255}",
    ]
    .prop_map(|s| name(&s))
}

fn arb_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        (-1_000_000i64..1_000_000, 0i32..5).prop_map(|(m, e)| m as f64 / 10f64.powi(e)),
    ]
}

fn arb_record() -> impl Strategy<Value = Record> {
    let series = proptest::collection::vec(
        (
            arb_name(),
            proptest::collection::vec((any::<i64>(), arb_value()), 0..20),
        ),
        0..20,
    );
    ("[a-z0-9]{1,64}", any::<i64>(), series).prop_map(|(t, stamp_ms, series)| Record {
        tenant: Tenant::parse(&t).expect("valid tenant"),
        stamp_ms,
        series: series
            .into_iter()
            .map(|(series, pts)| SeriesPoints {
                series,
                points: pts.into_iter().map(|(t, v)| Point::new(t, v)).collect(),
            })
            .collect(),
    })
}

proptest! {
    #[test]
    fn records_round_trip_bit_exact(r in arb_record()) {
        let bytes = encode(&r);
        let back = decode(&bytes).expect("a record we encoded decodes");
        prop_assert!(same(&back, &r), "{:?} != {:?}", back, r);
        let back = decode(&encode_v1(&r)).expect("a v1 record we encoded decodes");
        prop_assert!(same(&back, &r), "v1: {:?} != {:?}", back, r);
        let set = NameSet::of(r.series.iter().map(|s| &s.series));
        let names = NameSet::open(&set.sealed(), set.id()).expect("a set we sealed opens");
        let back = decode_parts(&encode_with_set(&r, &set))
            .expect("a record by set decodes")
            .with_names(&names)
            .expect("and resolves");
        prop_assert!(same(&back, &r), "by set: {:?} != {:?}", back, r);
    }

    #[test]
    fn pack_round_trips_and_fits(r in arb_record(), max in 400usize..4000) {
        let records = pack(&r.tenant, r.stamp_ms, r.series.clone(), max).expect("fits");
        let mut points = Vec::new();
        let mut names = Vec::new();
        for bytes in &records {
            prop_assert!(bytes.len() <= max);
            let d = decode(bytes).expect("decodes");
            for s in d.series {
                points.extend(s.points.iter().map(|p| (p.time, p.value.to_bits())));
                names.push(s.series);
            }
        }
        let want: Vec<(i64, u64)> = r.series.iter().flat_map(|s| s.points.iter().map(|p| (p.time, p.value.to_bits()))).collect();
        prop_assert_eq!(points, want);
        // Every input series appears, in order (split ones repeated consecutively).
        names.dedup();
        let mut want_names: Vec<SeriesName> = r.series.iter().map(|s| s.series.clone()).collect();
        want_names.dedup();
        prop_assert_eq!(names, want_names);
    }

    #[test]
    fn mutated_records_never_panic(
        r in arb_record(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let set = NameSet::of(r.series.iter().map(|s| &s.series));
        let stored = |version: u8, names: Names| {
            // The stored form too, so mutations reach the body parser directly.
            let body = encode_body(&r, names);
            let mut b = vec![version, CODEC_STORED];
            varint::put_u64(&mut b, body.len() as u64);
            b.extend_from_slice(&body);
            b
        };
        for bytes in [
            encode(&r),
            encode_with_set(&r, &set),
            stored(VERSION_1, Names::V1),
            stored(VERSION, Names::Inline),
            stored(VERSION, Names::Set(set.id())),
            set.sealed(),
        ] {
            let mut mutated = bytes.clone();
            for (i, x) in &flips {
                let i = i.index(mutated.len());
                mutated[i] ^= x;
            }
            let _ = decode(&mutated);
            let _ = decode(&bytes[..cut.index(bytes.len() + 1)]);
            let _ = NameSet::open(&mutated, set.id());
        }
    }
}

proptest! {
    // Cheap cases: many of them.
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode(&bytes);
        for version in [VERSION_1, VERSION] {
            for codec in [0u8, 1] {
                let mut b = vec![version, codec];
                varint::put_u64(&mut b, bytes.len() as u64);
                b.extend_from_slice(&bytes);
                let _ = decode(&b);
                if let Ok(p) = decode_parts(&b) {
                    let _ = p.with_names(&[]);
                }
            }
        }
    }
}
