//! The four dependencies of carat-local, connected once at start-up (as a Lambda builds its
//! clients once per container), and a health probe for each.
//!
//! Interim: these are direct client checks. When `carat_store::connect::connect` lands,
//! [`Clients`] becomes its `Clients { head, table, log, archive }` and [`Clients::probes`]
//! calls each adapter's `health()`; nothing outside this module changes.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use aws_config::BehaviorVersion;
use carat_core::Config;
use redis::cluster::{ClusterClient, ClusterClientBuilder};

use crate::LocalError;

/// One dependency's answer: `Ok` or what went wrong, in words.
pub type ProbeResult = Result<(), String>;
/// A running health probe.
pub type Probe = Pin<Box<dyn Future<Output = ProbeResult> + Send>>;

/// A named health probe: `name` is the dependency, `target` what exactly is asked.
pub struct NamedProbe {
    pub name: &'static str,
    pub target: String,
    pub probe: Probe,
}

/// Connected clients of the Redis cluster, DynamoDB, Kinesis and S3.
#[derive(Clone)]
pub struct Clients {
    redis: Arc<ClusterClient>,
    dynamodb: aws_sdk_dynamodb::Client,
    kinesis: aws_sdk_kinesis::Client,
    s3: aws_sdk_s3::Client,
    config: Arc<Config>,
}

impl Clients {
    /// Builds every client. The AWS endpoint and credentials come from the environment
    /// (`AWS_ENDPOINT_URL` points at the stand-in locally).
    ///
    /// # Errors
    /// [`LocalError::Connect`] if the Redis node list cannot be used.
    pub async fn connect(config: Arc<Config>) -> Result<Self, LocalError> {
        let redis = ClusterClientBuilder::new(config.redis.nodes.clone())
            .connection_timeout(Duration::from_millis(config.redis.connect_timeout_ms))
            .response_timeout(Duration::from_millis(config.redis.command_timeout_ms))
            .build()
            .map_err(|e| LocalError::Connect {
                dependency: "redis",
                detail: e.to_string(),
            })?;
        let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
        // The stand-in serves S3 on one host:port, so buckets go in the path.
        let s3 = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build();
        Ok(Self {
            redis: Arc::new(redis),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            kinesis: aws_sdk_kinesis::Client::new(&sdk),
            s3: aws_sdk_s3::Client::from_conf(s3),
            config,
        })
    }

    /// One probe per dependency, in a fixed order (Redis, DynamoDB, Kinesis, S3).
    #[must_use]
    pub fn probes(&self) -> Vec<NamedProbe> {
        let res = &self.config.resources;
        let redis = Arc::clone(&self.redis);
        let dynamodb = self.dynamodb.clone();
        let kinesis = self.kinesis.clone();
        let s3 = self.s3.clone();
        let (table, stream, bucket) = (
            res.table.clone(),
            res.stream.clone(),
            res.archive_bucket.clone(),
        );
        vec![
            NamedProbe {
                name: "redis",
                target: self.config.redis.nodes.join(","),
                probe: Box::pin(async move { redis_ok(&redis).await }),
            },
            NamedProbe {
                name: "dynamodb",
                target: format!("table {}", res.table),
                probe: Box::pin(async move {
                    let out = dynamodb
                        .describe_table()
                        .table_name(&table)
                        .send()
                        .await
                        .map_err(|e| aws_detail(&e))?;
                    let status = out
                        .table()
                        .and_then(|t| t.table_status())
                        .map(|s| s.as_str().to_string());
                    match status.as_deref() {
                        Some("ACTIVE" | "UPDATING") => Ok(()),
                        other => Err(format!("table status {}", other.unwrap_or("unknown"))),
                    }
                }),
            },
            NamedProbe {
                name: "kinesis",
                target: format!("stream {}", res.stream),
                probe: Box::pin(async move {
                    let out = kinesis
                        .describe_stream_summary()
                        .stream_name(&stream)
                        .send()
                        .await
                        .map_err(|e| aws_detail(&e))?;
                    let status = out
                        .stream_description_summary()
                        .map(|s| s.stream_status().as_str().to_string());
                    match status.as_deref() {
                        Some("ACTIVE" | "UPDATING") => Ok(()),
                        other => Err(format!("stream status {}", other.unwrap_or("unknown"))),
                    }
                }),
            },
            NamedProbe {
                name: "s3",
                target: format!("bucket {}", res.archive_bucket),
                probe: Box::pin(async move {
                    s3.head_bucket()
                        .bucket(&bucket)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| aws_detail(&e))
                }),
            },
        ]
    }
}

/// The cluster answers and has every slot served (`cluster_state:ok`).
async fn redis_ok(client: &ClusterClient) -> ProbeResult {
    let mut conn = client
        .get_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    if info.lines().any(|l| l.trim() == "cluster_state:ok") {
        Ok(())
    } else {
        Err("cluster_state is not ok".to_string())
    }
}

/// The SDK's `Display` says only "service error": the debug form names the cause.
fn aws_detail<E: std::error::Error + 'static>(err: &E) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
