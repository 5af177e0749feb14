//! DynamoDB stream records: which ones are TTL removals, and their `OldImage` read back
//! as a [`WindowItem`] (the attributes of `carat_store::dynamo`: `pk` S, `sk` N, `v` N,
//! `c` B, `n` N, `ttl` N, `p` N, `h` B). Also the reverse, a TTL-removal record built
//! from an item, for carat-local's stream poller, fixtures and benchmarks.

use std::collections::HashMap;

use aws_lambda_events::event::dynamodb::{EventRecord, StreamRecord, UserIdentity};
use carat_core::{SeriesKey, SeriesName, Tenant};
use carat_store::ports::WindowItem;
use carat_writer::flush::RAW;
use serde_dynamo::AttributeValue;

/// `userIdentity.type` of a removal DynamoDB made itself.
pub const TTL_IDENTITY_TYPE: &str = "Service";
/// `userIdentity.principalId` of a removal by DynamoDB's TTL process.
pub const TTL_PRINCIPAL: &str = "dynamodb.amazonaws.com";

/// Whether the record is a removal by DynamoDB's TTL process (the ESM filters on the
/// same fields; this is the check behind it). User deletions — the writer dropping
/// stale parts, an operator — are not archived.
#[must_use]
pub fn is_ttl_removal(record: &EventRecord) -> bool {
    record.event_name == "REMOVE"
        && record
            .user_identity
            .as_ref()
            .is_some_and(|u| u.type_ == TTL_IDENTITY_TYPE && u.principal_id == TTL_PRINCIPAL)
}

/// Why an image is not a window item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadImage(pub String);

/// The window item an `OldImage` holds.
///
/// # Errors
/// [`BadImage`] naming the attribute that is missing or of the wrong type.
pub fn item_from_image(image: &HashMap<String, AttributeValue>) -> Result<WindowItem, BadImage> {
    let pk = match image.get("pk") {
        Some(AttributeValue::S(s)) => s.clone(),
        None => {
            return Err(BadImage(
                "no OldImage (stream view type without old images?)".into(),
            ))
        }
        Some(_) => return Err(BadImage("pk is not a string".into())),
    };
    let bad = |name: &str| {
        BadImage(format!(
            "pk={pk:?}: attribute {name} is missing or of the wrong type"
        ))
    };
    let num = |name: &str| match image.get(name) {
        Some(AttributeValue::N(n)) => Ok(n.as_str()),
        _ => Err(bad(name)),
    };
    let bytes = |name: &str| match image.get(name) {
        Some(AttributeValue::B(b)) => Ok(b.clone()),
        _ => Err(bad(name)),
    };
    let sk: i64 = num("sk")?.parse().map_err(|_| bad("sk"))?;
    let version: u8 = num("v")?.parse().map_err(|_| bad("v"))?;
    let body = bytes("c")?;
    let count: u32 = num("n")?.parse().map_err(|_| bad("n"))?;
    let expires_at: i64 = num("ttl")?.parse().map_err(|_| bad("ttl"))?;
    // Items from before windows could be split have neither `p` nor `h`.
    let parts: u32 = match image.get("p") {
        None => 1,
        Some(_) => num("p")?.parse().map_err(|_| bad("p"))?,
    };
    let hash = match image.get("h") {
        None => Vec::new(),
        Some(_) => bytes("h")?,
    };
    Ok(WindowItem {
        pk,
        sk,
        version,
        body,
        count,
        expires_at,
        parts,
        hash,
    })
}

/// The image of `item`, as DynamoDB puts it in a stream record.
#[must_use]
pub fn image_of(item: &WindowItem) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_string(), AttributeValue::S(item.pk.clone())),
        ("sk".to_string(), AttributeValue::N(item.sk.to_string())),
        ("v".to_string(), AttributeValue::N(item.version.to_string())),
        ("c".to_string(), AttributeValue::B(item.body.clone())),
        ("n".to_string(), AttributeValue::N(item.count.to_string())),
        (
            "ttl".to_string(),
            AttributeValue::N(item.expires_at.to_string()),
        ),
        ("p".to_string(), AttributeValue::N(item.parts.to_string())),
        ("h".to_string(), AttributeValue::B(item.hash.clone())),
    ])
}

/// A TTL removal of `item` (`userIdentity` Service / dynamodb.amazonaws.com), with the
/// stream sequence number `sequence`: what AWS sends the archiver, and what carat-local's
/// TTL sweeper makes of the stand-in's REMOVE records (which carry no userIdentity).
#[must_use]
pub fn ttl_removal_record(item: &WindowItem, sequence: &str) -> EventRecord {
    let mut record = EventRecord {
        aws_region: "us-east-1".to_string(),
        change: empty_stream_record(),
        event_id: format!("ttl-{sequence}"),
        event_name: "REMOVE".to_string(),
        event_source: Some("aws:dynamodb".to_string()),
        event_version: Some("1.1".to_string()),
        event_source_arn: None,
        user_identity: Some(UserIdentity {
            type_: TTL_IDENTITY_TYPE.to_string(),
            principal_id: TTL_PRINCIPAL.to_string(),
        }),
        record_format: None,
        table_name: None,
    };
    record.change.keys = HashMap::from([
        ("pk".to_string(), AttributeValue::S(item.pk.clone())),
        ("sk".to_string(), AttributeValue::N(item.sk.to_string())),
    ])
    .into();
    record.change.old_image = image_of(item).into();
    record.change.sequence_number = Some(sequence.to_string());
    record
}

fn empty_stream_record() -> StreamRecord {
    StreamRecord {
        approximate_creation_date_time: chrono::DateTime::default(),
        keys: serde_dynamo::Item::default(),
        new_image: serde_dynamo::Item::default(),
        old_image: serde_dynamo::Item::default(),
        sequence_number: None,
        size_bytes: 0,
        stream_view_type: Some(aws_lambda_events::event::dynamodb::StreamViewType::NewAndOldImages),
    }
}

/// The series of a raw window's `pk` (`<tenant>#<series>#raw`); `None` for anything
/// else (another resolution, a malformed key).
#[must_use]
pub fn raw_series(pk: &str) -> Option<SeriesKey> {
    let rest = pk.strip_suffix(RAW)?.strip_suffix('#')?;
    let (tenant, series) = rest.split_once('#')?;
    Some(SeriesKey::new(
        Tenant::parse(tenant).ok()?,
        SeriesName::parse(series, "pk").ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> WindowItem {
        WindowItem {
            pk: "default#host.h1.cpu#raw".to_string(),
            sk: 1_699_920_000,
            version: 2,
            body: vec![2, 1, 2, 3],
            count: 3,
            expires_at: 1_702_598_400,
            parts: 1,
            hash: vec![7; 16],
        }
    }

    #[test]
    fn images_round_trip_and_name_the_bad_attribute() {
        let i = item();
        assert_eq!(item_from_image(&image_of(&i)).unwrap(), i);
        let mut img = image_of(&i);
        img.insert("sk".to_string(), AttributeValue::S("x".to_string()));
        assert!(item_from_image(&img).unwrap_err().0.contains("sk"));
        img.remove("pk");
        assert!(item_from_image(&img).unwrap_err().0.contains("OldImage"));
        // Items from before hashes: no p, no h.
        let mut old = image_of(&i);
        old.remove("p");
        old.remove("h");
        let got = item_from_image(&old).unwrap();
        assert_eq!((got.parts, got.hash.len()), (1, 0));
    }

    #[test]
    fn only_ttl_removals_count() {
        let mut r = ttl_removal_record(&item(), "1");
        assert!(is_ttl_removal(&r));
        r.user_identity = None;
        assert!(!is_ttl_removal(&r));
        r.user_identity = Some(UserIdentity {
            type_: "Service".to_string(),
            principal_id: "someone.else".to_string(),
        });
        assert!(!is_ttl_removal(&r));
        let mut m = ttl_removal_record(&item(), "1");
        m.event_name = "MODIFY".to_string();
        assert!(!is_ttl_removal(&m));
    }

    #[test]
    fn raw_series_of_a_pk() {
        let k = raw_series("acme#host.h1.cpu#raw").unwrap();
        assert_eq!(
            (k.tenant.as_str(), k.series.as_str()),
            ("acme", "host.h1.cpu")
        );
        assert_eq!(raw_series("acme#host.h1.cpu#agg"), None);
        assert_eq!(raw_series("nohash#raw"), None);
    }
}
