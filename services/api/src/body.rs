//! Reading the JSON bodies of the Mackerel and native routes, all-or-nothing.
//!
//! The body is read in one pass by a serde visitor that remembers which point (index)
//! and which field it is in, so every error — syntax, wrong type, a number out of range
//! like `1e999`, a missing field — names the index and field at fault. Only once the
//! whole body parsed are names built and points validated ([`resolve`]), again naming
//! the first index and field at fault.

use std::cell::Cell;
use std::fmt;

use carat_core::config::IngestConfig;
use carat_core::{point, Point, SeriesName};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::AppError;

/// Which JSON body a route reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `POST /api/v0/tsdb`: `[{"hostId", "name", "time", "value"}]`.
    MackerelHost,
    /// `POST /api/v0/services/{service}/tsdb`: `[{"name", "time", "value"}]`.
    MackerelService,
    /// `POST /api/v1/points`: `[{"series", "time", "value"}]`.
    Native,
}

impl Shape {
    fn fields(self) -> &'static [&'static str] {
        match self {
            Self::MackerelHost => &["hostId", "name", "time", "value"],
            Self::MackerelService => &["name", "time", "value"],
            Self::Native => &["series", "time", "value"],
        }
    }
}

/// One point as posted, before its name and limits are checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Posted {
    /// `hostId` (Mackerel host), `name` (Mackerel service) or `series` (native).
    pub first: String,
    /// `name` of a Mackerel host point; empty otherwise.
    pub name: String,
    pub time: i64,
    pub value: f64,
}

/// Where the parser is, for error messages.
#[derive(Default)]
struct Position {
    index: Cell<Option<usize>>,
    field: Cell<Option<&'static str>>,
    too_many: Cell<bool>,
}

/// Parses a whole JSON body of `shape`, holding at most `max_points` points.
///
/// # Errors
/// [`AppError::BadInput`] naming the index and field where parsing failed, or
/// [`AppError::TooManyPoints`].
pub fn parse(shape: Shape, body: &[u8], max_points: usize) -> Result<Vec<Posted>, AppError> {
    let pos = Position::default();
    let mut de = serde_json::Deserializer::from_slice(body);
    let result = PointsSeed {
        shape,
        pos: &pos,
        max_points,
    }
    .deserialize(&mut de)
    .and_then(|points| de.end().map(|()| points));
    result.map_err(|e| {
        if pos.too_many.get() {
            return AppError::TooManyPoints { limit: max_points };
        }
        let (index, field) = (pos.index.get(), pos.field.get());
        let message = match (index, field) {
            (Some(i), Some(f)) => format!("point {i}: field `{f}`: {e}"),
            (Some(i), None) => format!("point {i}: {e}"),
            _ => format!("body is not a JSON array of points: {e}"),
        };
        AppError::BadInput {
            message,
            index,
            field: field.map(str::to_string),
        }
    })
}

/// Builds the series names of parsed points and validates every point against `now`
/// (epoch seconds). `service` is the path parameter of the Mackerel service route.
///
/// # Errors
/// [`AppError::BadInput`] naming the first index and field at fault.
pub fn resolve(
    shape: Shape,
    service: Option<&str>,
    posted: Vec<Posted>,
    now: i64,
    cfg: &IngestConfig,
) -> Result<Vec<(SeriesName, Point)>, AppError> {
    let service = service.unwrap_or_default();
    if shape == Shape::MackerelService {
        // The path parameter is checked once, before any point, so the error names it
        // rather than point 0.
        SeriesName::parse(service, "service")?;
    }
    let mut out = Vec::with_capacity(posted.len());
    for (i, p) in posted.into_iter().enumerate() {
        let name = match shape {
            Shape::MackerelHost => SeriesName::mackerel_host(&p.first, &p.name),
            Shape::MackerelService => SeriesName::mackerel_service(service, &p.first),
            Shape::Native => SeriesName::parse(&p.first, "series"),
        }
        .map_err(|e| e.at(i))?;
        let pt = Point::new(p.time, p.value);
        point::validate(i, pt, now, cfg)?;
        out.push((name, pt));
    }
    Ok(out)
}

struct PointsSeed<'a> {
    shape: Shape,
    pos: &'a Position,
    max_points: usize,
}

impl<'de> DeserializeSeed<'de> for PointsSeed<'_> {
    type Value = Vec<Posted>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for PointsSeed<'_> {
    type Value = Vec<Posted>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of points")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // The hint is the client's; cap it so a lying hint cannot reserve memory.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        loop {
            self.pos.index.set(Some(out.len()));
            self.pos.field.set(None);
            let seed = PointSeed {
                shape: self.shape,
                pos: self.pos,
            };
            let Some(p) = seq.next_element_seed(seed)? else {
                break;
            };
            if out.len() == self.max_points {
                self.pos.too_many.set(true);
                return Err(de::Error::custom("too many points"));
            }
            out.push(p);
        }
        self.pos.index.set(None);
        Ok(out)
    }
}

struct PointSeed<'a> {
    shape: Shape,
    pos: &'a Position,
}

impl<'de> DeserializeSeed<'de> for PointSeed<'_> {
    type Value = Posted;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

/// The keys of a point object. Keys of other shapes, and unknown keys, are ignored.
enum Key {
    HostId,
    Name,
    Series,
    Time,
    Value,
    Other,
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "hostId" => Key::HostId,
                    "name" => Key::Name,
                    "series" => Key::Series,
                    "time" => Key::Time,
                    "value" => Key::Value,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

impl<'de> Visitor<'de> for PointSeed<'_> {
    type Value = Posted;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a point object with fields {:?}", self.shape.fields())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Posted, A::Error> {
        let (mut first, mut name, mut time, mut value) = (None, None, None, None);
        let (first_field, name_field) = match self.shape {
            Shape::MackerelHost => ("hostId", Some("name")),
            Shape::MackerelService => ("name", None),
            Shape::Native => ("series", None),
        };
        while let Some(key) = map.next_key::<Key>()? {
            let field = match (self.shape, key) {
                (Shape::MackerelHost, Key::HostId)
                | (Shape::MackerelService, Key::Name)
                | (Shape::Native, Key::Series) => first_field,
                (Shape::MackerelHost, Key::Name) => "name",
                (_, Key::Time) => "time",
                (_, Key::Value) => "value",
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            self.pos.field.set(Some(field));
            match field {
                "time" => set_once(&mut time, map.next_value::<i64>()?, field)?,
                "value" => set_once(&mut value, map.next_value::<f64>()?, field)?,
                "name" if name_field.is_some() => {
                    set_once(&mut name, map.next_value::<String>()?, field)?;
                }
                _ => set_once(&mut first, map.next_value::<String>()?, field)?,
            }
            self.pos.field.set(None);
        }
        let missing = |field: &'static str| {
            self.pos.field.set(Some(field));
            de::Error::missing_field(field)
        };
        let first = first.ok_or_else(|| missing(first_field))?;
        let name = match name_field {
            Some(f) => name.ok_or_else(|| missing(f))?,
            None => String::new(),
        };
        let time = time.ok_or_else(|| missing("time"))?;
        let value = value.ok_or_else(|| missing("value"))?;
        Ok(Posted {
            first,
            name,
            time,
            value,
        })
    }
}

fn set_once<T, E: de::Error>(slot: &mut Option<T>, v: T, field: &'static str) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(field));
    }
    *slot = Some(v);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(shape: Shape, body: &str) -> (Option<usize>, Option<String>, String) {
        match parse(shape, body.as_bytes(), 10) {
            Err(AppError::BadInput {
                index,
                field,
                message,
            }) => (index, field, message),
            other => panic!("expected a bad-input error, got {other:?}"),
        }
    }

    #[test]
    fn parses_each_shape() {
        let p = parse(
            Shape::MackerelHost,
            br#"[{"hostId":"h1","name":"cpu","time":10,"value":1.5,"extra":[1]}]"#,
            10,
        )
        .expect("valid");
        assert_eq!(p[0].first, "h1");
        assert_eq!(p[0].name, "cpu");
        assert_eq!((p[0].time, p[0].value), (10, 1.5));
        let p = parse(
            Shape::Native,
            br#"[{"series":"a.b","time":1,"value":2}]"#,
            10,
        )
        .expect("valid");
        assert_eq!((p[0].first.as_str(), p[0].value), ("a.b", 2.0));
        assert!(parse(Shape::MackerelService, b"[]", 10)
            .expect("valid")
            .is_empty());
    }

    #[test]
    fn errors_name_index_and_field() {
        let ok = r#"{"hostId":"h","name":"n","time":1,"value":1}"#;
        let (i, f, m) = err(
            Shape::MackerelHost,
            &format!(r#"[{ok},{{"hostId":"h","name":"n","time":1,"value":"NaN"}}]"#),
        );
        assert_eq!((i, f.as_deref()), (Some(1), Some("value")), "{m}");
        let (i, f, m) = err(
            Shape::MackerelHost,
            &format!(r#"[{ok},{ok},{{"hostId":"h","name":"n","time":1,"value":1e999}}]"#),
        );
        assert_eq!((i, f.as_deref()), (Some(2), Some("value")), "{m}");
        let (i, f, _) = err(
            Shape::MackerelHost,
            r#"[{"hostId":"h","name":"n","value":1}]"#,
        );
        assert_eq!((i, f.as_deref()), (Some(0), Some("time")));
        let (i, f, _) = err(Shape::Native, r#"[{"series":7,"time":1,"value":1}]"#);
        assert_eq!((i, f.as_deref()), (Some(0), Some("series")));
        let (i, f, _) = err(Shape::Native, r#"[{"series":"a","time":1.5,"value":1}]"#);
        assert_eq!((i, f.as_deref()), (Some(0), Some("time")));
        let (i, f, _) = err(Shape::Native, r#"{"series":"a"}"#);
        assert_eq!((i, f), (None, None));
        let (i, f, _) = err(Shape::Native, r#"[{"series":"a","time":1,"value":1}"#);
        assert_eq!((i, f), (Some(1), None));
        let (i, f, _) = err(Shape::Native, r#"[3]"#);
        assert_eq!((i, f), (Some(0), None));
        let (_, f, m) = err(
            Shape::Native,
            r#"[{"series":"a","time":1,"time":2,"value":1}]"#,
        );
        assert_eq!(f.as_deref(), Some("time"), "{m}");
    }

    #[test]
    fn values_parse_bit_exact() {
        for v in [
            "94.79799999999999",
            "0.1",
            "2.5125628140703515",
            "1e-320",
            "-0.0",
            "1.7976931348623157e308",
        ] {
            let body = format!(r#"[{{"series":"a","time":1,"value":{v}}}]"#);
            let p = parse(Shape::Native, body.as_bytes(), 10).expect("valid");
            let want: f64 = v.parse().expect("a float literal");
            assert_eq!(p[0].value.to_bits(), want.to_bits(), "{v}");
        }
    }

    #[test]
    fn too_many_points() {
        let one = r#"{"series":"a","time":1,"value":1}"#;
        let body = format!("[{one},{one},{one}]");
        assert!(parse(Shape::Native, body.as_bytes(), 3).is_ok());
        assert!(matches!(
            parse(Shape::Native, body.as_bytes(), 2),
            Err(AppError::TooManyPoints { limit: 2 })
        ));
    }

    #[test]
    fn resolve_names_and_validates() {
        let cfg = IngestConfig::default();
        let now = 1_700_000_000;
        let posted = |first: &str, name: &str, time| Posted {
            first: first.into(),
            name: name.into(),
            time,
            value: 1.0,
        };
        let pts = resolve(
            Shape::MackerelHost,
            None,
            vec![posted("h", "cpu.user", now)],
            now,
            &cfg,
        )
        .expect("valid");
        assert_eq!(pts[0].0.as_str(), "host.h.cpu.user");
        let e = resolve(
            Shape::MackerelHost,
            None,
            vec![posted("h", "cpu", now), posted("h", "bad name", now)],
            now,
            &cfg,
        )
        .expect_err("must be rejected");
        assert!(
            matches!(e, AppError::BadInput { index: Some(1), ref field, .. } if field.as_deref() == Some("name")),
            "{e:?}"
        );
        let e = resolve(Shape::MackerelService, Some("we b"), vec![], now, &cfg)
            .expect_err("must be rejected");
        assert!(
            matches!(e, AppError::BadInput { index: None, ref field, .. } if field.as_deref() == Some("service")),
            "{e:?}"
        );
        let e = resolve(
            Shape::Native,
            None,
            vec![posted("a", "", now + 601)],
            now,
            &cfg,
        )
        .expect_err("must be rejected");
        assert!(
            matches!(e, AppError::BadInput { index: Some(0), ref field, .. } if field.as_deref() == Some("time")),
            "{e:?}"
        );
    }
}
