//! [`S3Archive`]: the archive port over S3 (aws-sdk-s3).
//!
//! Objects are whole: `put` is one PutObject, `get` one GetObject (`None` for a key
//! that does not exist), `list` pages through ListObjectsV2, `put_if` is a conditional
//! PutObject (`If-Match` / `If-None-Match: *`), `delete` DeleteObjects in calls of 1,000.

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_sdk_s3::Client;

use crate::aws::classify;
use crate::ports::{Archive, ObjectRange, Written};
use crate::StoreError;

const SERVICE: &str = "s3";

/// What `/health` reports about the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketHealth {
    pub bucket: String,
}

/// The archive in one S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Archive {
    client: Client,
    bucket: String,
}

impl S3Archive {
    /// The bucket `bucket` through `client` (build the client with
    /// [`crate::connect::s3_client`] to get path-style addressing on the stand-in).
    #[must_use]
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    #[must_use]
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// HeadBucket, for carat-local's `/health`.
    ///
    /// # Errors
    /// Fatal if the bucket does not exist or is not ours; retryable if S3 cannot be reached.
    pub async fn health(&self) -> Result<BucketHealth, StoreError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| classify(SERVICE, "health", e))?;
        Ok(BucketHealth {
            bucket: self.bucket.clone(),
        })
    }
}

#[async_trait]
impl Archive for S3Archive {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify(SERVICE, "put", e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(classify(SERVICE, "get", e)),
        };
        let bytes = out.body.collect().await.map_err(|e| {
            StoreError::retryable(SERVICE, "get", format!("reading body of {key:?}: {e}"))
        })?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| classify(SERVICE, "list", e))?;
            keys.extend(
                out.contents
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|o| o.key),
            );
            match out.next_continuation_token {
                Some(t) if out.is_truncated.unwrap_or(false) && !t.is_empty() => token = Some(t),
                _ => return Ok(keys),
            }
        }
    }

    async fn get_range(
        &self,
        key: &str,
        start: i64,
        end: u64,
        if_match: Option<&str>,
    ) -> Result<Option<ObjectRange>, StoreError> {
        let range = if start < 0 {
            format!("bytes={start}")
        } else if end <= start.unsigned_abs() {
            // An empty range: S3 has no syntax for it; read one byte and drop it.
            format!("bytes={start}-{start}")
        } else {
            format!("bytes={start}-{}", end - 1)
        };
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(range)
            .set_if_match(if_match.map(str::to_string))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => {
                return Err(StoreError::retryable(
                    SERVICE,
                    "get_range",
                    format!("{key:?} changed since its index was read (ETag mismatch)"),
                ))
            }
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
                return Ok(Some(ObjectRange {
                    body: Vec::new(),
                    size: 0,
                    etag: String::new(),
                }))
            }
            Err(e) => return Err(classify(SERVICE, "get_range", e)),
        };
        let size = out
            .content_range()
            .and_then(|r| r.rsplit('/').next())
            .and_then(|n| n.parse::<u64>().ok())
            .or_else(|| out.content_length().and_then(|n| u64::try_from(n).ok()))
            .unwrap_or(0);
        let etag = out.e_tag().unwrap_or_default().to_string();
        let bytes = out.body.collect().await.map_err(|e| {
            StoreError::retryable(
                SERVICE,
                "get_range",
                format!("reading body of {key:?}: {e}"),
            )
        })?;
        let mut body = bytes.into_bytes().to_vec();
        if start >= 0 && end <= start.unsigned_abs() {
            body.clear();
        }
        Ok(Some(ObjectRange { body, size, etag }))
    }

    async fn put_if(
        &self,
        key: &str,
        body: Vec<u8>,
        if_match: Option<&str>,
    ) -> Result<Written, StoreError> {
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body));
        let req = match if_match {
            Some(etag) => req.if_match(etag),
            None => req.if_none_match("*"),
        };
        match req.send().await {
            Ok(_) => Ok(Written::Stored),
            // 412: the ETag differs or an object exists; 409: a concurrent conditional
            // write of the same key is in flight. Either way another writer won.
            Err(e)
                if e.raw_response()
                    .is_some_and(|r| matches!(r.status().as_u16(), 409 | 412)) =>
            {
                Ok(Written::Conflict)
            }
            // If-Match on a key that does not exist: S3 answers 404 NoSuchKey.
            Err(e)
                if if_match.is_some()
                    && e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
            {
                Ok(Written::Conflict)
            }
            Err(e) => Err(classify(SERVICE, "put_if", e)),
        }
    }

    async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        for batch in keys.chunks(1_000) {
            let objects = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::fatal(SERVICE, "delete", "bad key").with_source(e))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| StoreError::fatal(SERVICE, "delete", "bad request").with_source(e))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| classify(SERVICE, "delete", e))?;
            let errors = out.errors();
            if let Some(first) = errors.first() {
                return Err(StoreError::retryable(
                    SERVICE,
                    "delete",
                    format!(
                        "{} of {} keys not deleted (first {:?}: {})",
                        errors.len(),
                        batch.len(),
                        first.key().unwrap_or_default(),
                        first.code().unwrap_or_default()
                    ),
                ));
            }
        }
        Ok(())
    }
}
