//! What the AWS adapters share: deciding whether an SDK error is worth retrying.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::StoreError;

/// Error codes that mean "slow down" or "try again" across DynamoDB, Kinesis and S3.
const RETRYABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "InternalServerError",
    "InternalFailure",
    "InternalFailureException",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
    "KMSThrottlingException",
    "TransactionInProgressException",
];

/// Whether an error code (or a 5xx status) means the call may succeed if retried.
#[must_use]
pub(crate) fn retryable_code(code: Option<&str>, status: Option<u16>) -> bool {
    code.is_some_and(|c| RETRYABLE_CODES.contains(&c))
        || status.is_some_and(|s| s >= 500 || s == 429)
}

/// Maps an SDK error: timeouts, dispatch and response failures, throttling and 5xx are
/// retryable; a bad request, a missing resource or a request that could not be built is not.
pub(crate) fn classify<E>(
    service: &'static str,
    op: &'static str,
    err: SdkError<E, HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = DisplayErrorContext(&err).to_string();
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(ctx) => {
            retryable_code(ctx.err().code(), Some(ctx.raw().status().as_u16()))
        }
        _ => false,
    };
    let e = if retryable {
        StoreError::retryable(service, op, detail)
    } else {
        StoreError::fatal(service, op, detail)
    };
    e.with_source(err)
}

#[cfg(test)]
mod tests {
    use super::retryable_code;

    #[test]
    fn throttling_and_5xx_are_retryable() {
        assert!(retryable_code(
            Some("ProvisionedThroughputExceededException"),
            Some(400)
        ));
        assert!(retryable_code(Some("ThrottlingException"), None));
        assert!(retryable_code(Some("RequestLimitExceeded"), Some(400)));
        assert!(retryable_code(None, Some(503)));
        assert!(retryable_code(Some("Whatever"), Some(500)));
        assert!(!retryable_code(
            Some("ResourceNotFoundException"),
            Some(400)
        ));
        assert!(!retryable_code(Some("ValidationException"), Some(400)));
        assert!(!retryable_code(None, None));
    }
}
