//! The AWS stand-in from outside: a system's own resources (made by the project's init
//! script, as `make local-up` makes the shared ones), what they store, and their removal.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::services::aws_endpoint;

/// The resources of one system: each scenario's carat writes only its own.
#[derive(Debug, Clone)]
pub struct Resources {
    pub stream: String,
    pub table: String,
    pub catalog_table: String,
    pub bucket: String,
    pub shards: u32,
}

impl Resources {
    /// Names made from `name` (lowercase, unique per run).
    #[must_use]
    pub fn named(name: &str, shards: u32) -> Self {
        Self {
            stream: format!("{name}-points"),
            table: format!("{name}-windows"),
            catalog_table: format!("{name}-catalog"),
            bucket: format!("{name}-archive"),
            shards,
        }
    }

    /// Creates them in the stand-in as `localstack/init/ready.d/10-carat-resources.sh`
    /// creates the shared ones (same key schemas, billing mode, stream view, TTL attribute),
    /// through the SDK: the script's nine `aws` CLI calls cost 10–100 s per scenario on a
    /// busy machine, the SDK's a second. Panics naming the call that failed.
    pub async fn create(&self) {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
            StreamSpecification, StreamViewType, TimeToLiveSpecification,
        };
        let c = Clients::new().await;
        c.kinesis
            .create_stream()
            .stream_name(&self.stream)
            .shard_count(i32::try_from(self.shards).unwrap())
            .send()
            .await
            .unwrap_or_else(|e| panic!("create stream {}: {e:?}", self.stream));
        let attr = |n: &str, t: ScalarAttributeType| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(t)
                .build()
                .unwrap()
        };
        let key = |n: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(n)
                .key_type(t)
                .build()
                .unwrap()
        };
        c.dynamo
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(attr("pk", ScalarAttributeType::S))
            .attribute_definitions(attr("sk", ScalarAttributeType::N))
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .billing_mode(BillingMode::PayPerRequest)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("create table {}: {e:?}", self.table));
        c.dynamo
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("ttl")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("enable ttl on {}: {e:?}", self.table));
        c.dynamo
            .create_table()
            .table_name(&self.catalog_table)
            .attribute_definitions(attr("pk", ScalarAttributeType::S))
            .attribute_definitions(attr("sk", ScalarAttributeType::S))
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create table {}: {e:?}", self.catalog_table));
        c.s3.create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create bucket {}: {e:?}", self.bucket));
        // The stream must be ACTIVE before carat lists its shards.
        for _ in 0..200 {
            let s = c
                .kinesis
                .describe_stream_summary()
                .stream_name(&self.stream)
                .send()
                .await
                .unwrap_or_else(|e| panic!("describe stream {}: {e:?}", self.stream));
            if s.stream_description_summary.map(|d| d.stream_status)
                == Some(aws_sdk_kinesis::types::StreamStatus::Active)
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("stream {} not ACTIVE within 10 s", self.stream);
    }

    /// Deletes them (best effort: a scenario's leftovers must not fail the next one).
    pub async fn delete(&self) {
        let c = Clients::new().await;
        let _ = c
            .kinesis
            .delete_stream()
            .stream_name(&self.stream)
            .enforce_consumer_deletion(true)
            .send()
            .await;
        for t in [&self.table, &self.catalog_table] {
            let _ = c.dynamo.delete_table().table_name(t).send().await;
        }
        if let Ok(objects) = c.objects(&self.bucket).await {
            for key in objects.keys() {
                let _ =
                    c.s3.delete_object()
                        .bucket(&self.bucket)
                        .key(key)
                        .send()
                        .await;
            }
        }
        let _ = c.s3.delete_bucket().bucket(&self.bucket).send().await;
    }
}

/// SDK clients of the stand-in.
#[derive(Clone)]
pub struct Clients {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub kinesis: aws_sdk_kinesis::Client,
    pub s3: aws_sdk_s3::Client,
}

/// One DynamoDB item, attributes sorted by name (a comparable, printable image).
pub type Item = BTreeMap<String, AttributeValue>;

impl Clients {
    pub async fn new() -> Self {
        let creds = aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "test");
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(aws_endpoint())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .load()
            .await;
        let s3 = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build();
        Self {
            dynamo: aws_sdk_dynamodb::Client::new(&sdk),
            kinesis: aws_sdk_kinesis::Client::new(&sdk),
            s3: aws_sdk_s3::Client::from_conf(s3),
        }
    }

    /// Every item of `table`, ordered by (pk, sk) as text.
    ///
    /// # Errors
    /// The SDK's error, as text.
    pub async fn items(&self, table: &str) -> Result<Vec<Item>, String> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .dynamo
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| format!("scan {table}: {e:?}"))?;
            out.extend(
                page.items
                    .unwrap_or_default()
                    .into_iter()
                    .map(|i| i.into_iter().collect::<Item>()),
            );
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        out.sort_by_key(|i| (key_text(i.get("pk")), key_text(i.get("sk"))));
        Ok(out)
    }

    /// Every object of `bucket`: key → bytes.
    ///
    /// # Errors
    /// The SDK's error, as text.
    pub async fn objects(&self, bucket: &str) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let mut out = BTreeMap::new();
        let mut token = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| format!("list {bucket}: {e:?}"))?;
            for o in page.contents.unwrap_or_default() {
                let Some(key) = o.key else { continue };
                let body = self
                    .s3
                    .get_object()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| format!("get {bucket}/{key}: {e:?}"))?
                    .body
                    .collect()
                    .await
                    .map_err(|e| format!("read {bucket}/{key}: {e:?}"))?
                    .into_bytes()
                    .to_vec();
                out.insert(key, body);
            }
            token = page.next_continuation_token;
            if token.is_none() {
                break;
            }
        }
        Ok(out)
    }
}

impl Clients {
    /// Every record of `stream`, all shards, from the trim horizon: what the system put on
    /// its log (a scenario compares counts before and after to see that nothing was put).
    ///
    /// # Errors
    /// The SDK's error, as text.
    pub async fn stream_records(&self, stream: &str) -> Result<Vec<Vec<u8>>, String> {
        use aws_sdk_kinesis::types::ShardIteratorType;
        let shards = self
            .kinesis
            .list_shards()
            .stream_name(stream)
            .send()
            .await
            .map_err(|e| format!("list shards of {stream}: {e:?}"))?
            .shards
            .unwrap_or_default();
        let mut out = Vec::new();
        for shard in shards {
            let mut it = self
                .kinesis
                .get_shard_iterator()
                .stream_name(stream)
                .shard_id(shard.shard_id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .map_err(|e| format!("shard iterator of {stream}: {e:?}"))?
                .shard_iterator;
            while let Some(i) = it {
                let page = self
                    .kinesis
                    .get_records()
                    .shard_iterator(i)
                    .limit(10_000)
                    .send()
                    .await
                    .map_err(|e| format!("records of {stream}: {e:?}"))?;
                if page.records.is_empty() {
                    break;
                }
                out.extend(page.records.into_iter().map(|r| r.data.into_inner()));
                it = page.next_shard_iterator;
            }
        }
        Ok(out)
    }
}

fn key_text(v: Option<&AttributeValue>) -> String {
    match v {
        Some(AttributeValue::S(s)) => s.clone(),
        // Numbers sort as numbers: zero-padded (sort keys are window starts, ≥ 0).
        Some(AttributeValue::N(n)) => format!("{n:0>24}"),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}
