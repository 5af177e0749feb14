//! Where a series' points are stored, seen from the stores' own interfaces with the
//! documented layouts (docs/formats.md): the Redis head key of a window, the window item
//! in DynamoDB, the archive's S3 keys. Nothing here links carat: the key layouts are
//! recomputed from the documentation, so a change of layout fails a scenario loudly.

use crate::aws::Item;
use crate::redis_call;
use aws_sdk_dynamodb::types::AttributeValue;

/// `SeriesKey::bucket_group` (docs/formats.md, Kinesis record): Mackerel host and service
/// series group by host or service, every other series is its own group.
#[must_use]
pub fn bucket_group(series: &str) -> &str {
    for prefix in ["host.", "service."] {
        if let Some(rest) = series.strip_prefix(prefix) {
            if let Some(dot) = rest.find('.') {
                return &series[..prefix.len() + dot];
            }
        }
    }
    series
}

/// The series' hash bucket: FNV-1a 64 of `tenant`, 0x1f, the bucket group, mod `buckets`.
#[must_use]
pub fn bucket(tenant: &str, series: &str, buckets: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tenant
        .bytes()
        .chain(std::iter::once(0x1f))
        .chain(bucket_group(series).bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    u32::try_from(h % u64::from(buckets)).unwrap()
}

/// The head key of one window: `<prefix>{b<bucket>}:h:<tenant>:<series>:<window_start>`
/// (`prefix` is the system's `redis.key_prefix`: [`crate::Carat::key_prefix`]; 1,024
/// buckets, the default of `record.buckets`).
#[must_use]
pub fn head_key(prefix: &str, tenant: &str, series: &str, window_start: i64) -> String {
    format!(
        "{prefix}{{b{}}}:h:{tenant}:{series}:{window_start}",
        bucket(tenant, series, 1024)
    )
}

/// Whether a window's head holds points, false if its key is absent. Head v2 (what the
/// writer appends, docs/formats.md "Head v2") is a LIST of a 16-byte header and one
/// block per append; a v1 head is a string of 16-byte entries.
pub async fn head_holds_points(
    conn: &mut redis::cluster_async::ClusterConnection,
    prefix: &str,
    tenant: &str,
    series: &str,
    window_start: i64,
) -> bool {
    let key = head_key(prefix, tenant, series, window_start);
    let kind: String = redis_call(conn, redis::cmd("TYPE").arg(&key))
        .await
        .unwrap_or_else(|e| panic!("TYPE {key}: {e}"));
    let len = |cmd: &str| {
        let mut c = redis::cmd(cmd);
        c.arg(&key);
        c
    };
    match kind.as_str() {
        "none" => false,
        "list" => {
            let blocks: i64 = redis_call(conn, &len("LLEN"))
                .await
                .unwrap_or_else(|e| panic!("LLEN {key}: {e}"));
            blocks > 1
        }
        "string" => {
            let bytes: i64 = redis_call(conn, &len("STRLEN"))
                .await
                .unwrap_or_else(|e| panic!("STRLEN {key}: {e}"));
            bytes >= 16
        }
        other => panic!("head key {key} is a {other}, neither a list (v2) nor a string (v1)"),
    }
}

/// The window item's partition key: `<tenant>#<series>#raw`.
#[must_use]
pub fn item_pk(tenant: &str, series: &str) -> String {
    format!("{tenant}#{series}#raw")
}

/// An item's `pk` text and `sk` number.
#[must_use]
pub fn item_key(item: &Item) -> (String, i64) {
    let pk = match item.get("pk") {
        Some(AttributeValue::S(s)) => s.clone(),
        other => panic!("item without a text pk: {other:?}"),
    };
    let sk = match item.get("sk") {
        Some(AttributeValue::N(n)) => n.parse().unwrap(),
        other => panic!("item without a number sk: {other:?}"),
    };
    (pk, sk)
}

/// A number attribute of an item.
#[must_use]
pub fn item_number(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

/// A series name `<prefix><n>` of `tenant` that falls in `bucket` (1,024 buckets).
#[must_use]
pub fn series_in_bucket(tenant: &str, bucket_no: u32, prefix: &str) -> String {
    (0u64..)
        .map(|n| format!("{prefix}{n}"))
        .find(|s| bucket(tenant, s, 1024) == bucket_no)
        .unwrap()
}

/// Posts one point (at `time`) with `key` to a series of `tenant` in each of `buckets`:
/// the writer flushes a bucket's closed windows whenever a batch touches the bucket
/// (docs/write-path.md, "Flush triggers"), so this flushes the windows of a series nobody
/// posts to any more without waiting for the scheduled flusher — whose run over every
/// bucket took up to 37 s in a debug build on a loaded machine, longer than a compressed
/// test's head keys live. `tenant` is the key's: another tenant's points share the buckets
/// and leave the scenario's own series and items alone.
pub async fn nudge(c: &crate::Carat, key: &crate::system::Key, buckets: &[u32], time: i64) {
    let body: Vec<serde_json::Value> = buckets
        .iter()
        .map(|&b| {
            serde_json::json!({
                "series": series_in_bucket(&key.tenant, b, "nudge.s"),
                "time": time,
                "value": 1.0,
            })
        })
        .collect();
    let r = c
        .request(
            hyper::Method::POST,
            "/api/v1/points",
            Some(&key.key),
            &[("Content-Type", "application/json")],
            serde_json::Value::from(body).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status.as_u16(), 200, "nudge: {}", r.text());
}
