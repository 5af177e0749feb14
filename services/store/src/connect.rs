//! Building every adapter once from [`carat_core::Config`]: what carat-local, the
//! Lambdas' `main`s and the adapter tests call.
//!
//! AWS settings come from the environment, as the SDK reads them: credentials, region
//! (us-east-1 if none is set) and `AWS_ENDPOINT_URL`, which points every client at the
//! local stand-in. Nothing is hard-coded here; the local scripts export dummy credentials.

use std::sync::Arc;
use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use carat_core::config::RetryConfig;
use carat_core::Config;

use crate::catalog::DynamoCatalog;
use crate::dynamo::{DynamoTable, TableHealth};
use crate::kinesis::{KinesisLog, StreamHealth};
use crate::redis_head::{RedisHead, RedisHealth};
use crate::s3::{BucketHealth, S3Archive};
use crate::secrets::Secret;
use crate::trace::CallTimer;
use crate::StoreError;

/// Region used when the environment names none (local runs, tests).
pub const DEFAULT_REGION: &str = "us-east-1";

/// Every adapter, built once per process (per Lambda container) and shared.
#[derive(Debug, Clone)]
pub struct Clients {
    pub head: Arc<RedisHead>,
    pub table: Arc<DynamoTable>,
    pub log: Arc<KinesisLog>,
    pub archive: Arc<S3Archive>,
    pub catalog: Arc<DynamoCatalog>,
}

/// The state of every dependency, for `/health`. Each part is its own result so one
/// failing service does not hide the others.
#[derive(Debug)]
pub struct HealthReport {
    pub head: Result<RedisHealth, StoreError>,
    pub table: Result<TableHealth, StoreError>,
    pub log: Result<StreamHealth, StoreError>,
    pub archive: Result<BucketHealth, StoreError>,
    pub catalog: Result<TableHealth, StoreError>,
}

impl HealthReport {
    /// Whether every dependency answered.
    #[must_use]
    pub fn all_ok(&self) -> bool {
        self.head.is_ok()
            && self.table.is_ok()
            && self.log.is_ok()
            && self.archive.is_ok()
            && self.catalog.is_ok()
    }
}

/// Connecting to an AWS endpoint: the SDK's own default (3.1 s), kept explicit because
/// setting the other timeouts replaces the default configuration.
const AWS_CONNECT_TIMEOUT: Duration = Duration::from_millis(3_100);

/// The SDK configuration from the environment, region defaulting to [`DEFAULT_REGION`].
/// One SDK operation (with the SDK's own retries) may take at most `retry.deadline_ms`:
/// without it a hung connection would hold a Lambda until its own timeout, as a hung
/// Redis call would.
pub async fn aws_config(retry: &RetryConfig) -> SdkConfig {
    let region = RegionProviderChain::default_provider().or_else(Region::new(DEFAULT_REGION));
    let deadline = Duration::from_millis(retry.deadline_ms.max(1));
    aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(AWS_CONNECT_TIMEOUT)
                .operation_timeout(deadline)
                .build(),
        )
        .load()
        .await
}

/// An S3 client; path-style addressing when an endpoint override is set (the local
/// stand-in serves buckets by path, not by virtual host). Its calls are timed
/// ([`crate::trace::CallTimer`]).
#[must_use]
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .interceptor(CallTimer)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// A DynamoDB client whose calls are timed ([`crate::trace::CallTimer`]).
#[must_use]
pub fn dynamodb_client(sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(sdk)
        .interceptor(CallTimer)
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// A Kinesis client whose calls are timed ([`crate::trace::CallTimer`]).
#[must_use]
pub fn kinesis_client(sdk: &SdkConfig) -> aws_sdk_kinesis::Client {
    let conf = aws_sdk_kinesis::config::Builder::from(sdk)
        .interceptor(CallTimer)
        .build();
    aws_sdk_kinesis::Client::from_conf(conf)
}

/// The three AWS adapters from an SDK configuration (no network calls).
#[must_use]
pub fn aws_adapters(sdk: &SdkConfig, cfg: &Config) -> (DynamoTable, KinesisLog, S3Archive) {
    (
        DynamoTable::new(
            dynamodb_client(sdk),
            &cfg.resources.table,
            cfg.limits.clone(),
            cfg.retry.clone(),
        ),
        KinesisLog::new(
            kinesis_client(sdk),
            &cfg.resources.stream,
            cfg.limits.clone(),
            cfg.retry.clone(),
        ),
        S3Archive::new(s3_client(sdk), &cfg.resources.archive_bucket),
    )
}

/// The catalog adapter from an SDK configuration (no network calls).
#[must_use]
pub fn catalog_adapter(sdk: &SdkConfig, cfg: &Config) -> DynamoCatalog {
    DynamoCatalog::new(
        dynamodb_client(sdk),
        &cfg.resources.catalog_table,
        cfg.retry.clone(),
    )
}

/// Connects to the Redis cluster and builds every adapter.
///
/// # Errors
/// A [`StoreError`] from connecting to Redis (the AWS clients connect lazily).
pub async fn connect(cfg: &Config) -> Result<Clients, StoreError> {
    let sdk = aws_config(&cfg.retry).await;
    connect_with(&sdk, cfg, None).await
}

/// [`connect()`] with an SDK configuration already loaded and the Redis AUTH password, if
/// any (the Lambdas: [`crate::secrets::redis_password`]).
///
/// # Errors
/// A [`StoreError`] from connecting to Redis (the AWS clients connect lazily).
pub async fn connect_with(
    sdk: &SdkConfig,
    cfg: &Config,
    redis_password: Option<&Secret>,
) -> Result<Clients, StoreError> {
    let head = RedisHead::connect_with_password(&cfg.redis, redis_password).await?;
    let (table, log, archive) = aws_adapters(sdk, cfg);
    Ok(Clients {
        head: Arc::new(head),
        table: Arc::new(table),
        log: Arc::new(log),
        archive: Arc::new(archive),
        catalog: Arc::new(catalog_adapter(sdk, cfg)),
    })
}

impl Clients {
    /// Asks every dependency at once (PING every Redis master, DescribeTable,
    /// DescribeStreamSummary, HeadBucket, DescribeTable of the catalog).
    pub async fn health(&self) -> HealthReport {
        let (head, table, log, archive, catalog) = tokio::join!(
            self.head.health(),
            self.table.health(),
            self.log.health(),
            self.archive.health(),
            self.catalog.health()
        );
        HealthReport {
            head,
            table,
            log,
            archive,
            catalog,
        }
    }
}
