#!/usr/bin/env bash
# Creates carat's AWS resources in the local stand-in; running it again changes nothing.
#   - Kinesis stream   carat-points   2 shards (points of one bucket stay on one shard, in order)
#   - DynamoDB table   carat-windows  pk (S) hash, sk (N) range, on-demand, TTL on `ttl`,
#                                     stream NEW_AND_OLD_IMAGES (the archiver reads TTL removals)
#   - S3 bucket        carat-archive
#   - DynamoDB table   carat-catalog  pk (S) hash, sk (S) range, on-demand: the series catalog
#                                     (pk <tenant>#<group>, sk series; groups under <tenant>##groups)
# The same file serves both stand-ins:
#   - inside LocalStack (mounted into /etc/localstack/init/ready.d/), where `awslocal` exists;
#   - against moto (scripts/aws-standin.sh runs it), with the `aws` CLI and AWS_ENDPOINT_URL.
# Names can be overridden with CARAT_STREAM, CARAT_TABLE, CARAT_ARCHIVE_BUCKET,
# CARAT_CATALOG_TABLE, CARAT_SHARDS.
set -euo pipefail

STREAM=${CARAT_STREAM:-carat-points}
TABLE=${CARAT_TABLE:-carat-windows}
BUCKET=${CARAT_ARCHIVE_BUCKET:-carat-archive}
CATALOG=${CARAT_CATALOG_TABLE:-carat-catalog}
SHARDS=${CARAT_SHARDS:-2}
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-${AWS_REGION:-us-east-1}}

if command -v awslocal >/dev/null 2>&1; then
  aws_() { awslocal "$@"; }
else
  : "${AWS_ENDPOINT_URL:?set AWS_ENDPOINT_URL (e.g. http://127.0.0.1:4566) or run inside LocalStack}"
  aws_() { aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }
fi
q() { aws_ "$@" >/dev/null 2>&1; }

# Kinesis
if q kinesis describe-stream-summary --stream-name "$STREAM"; then
  echo "kinesis stream $STREAM: exists"
else
  aws_ kinesis create-stream --stream-name "$STREAM" --shard-count "$SHARDS"
  aws_ kinesis wait stream-exists --stream-name "$STREAM"
  echo "kinesis stream $STREAM: created ($SHARDS shards)"
fi

# DynamoDB
if q dynamodb describe-table --table-name "$TABLE"; then
  echo "dynamodb table $TABLE: exists"
else
  aws_ dynamodb create-table --table-name "$TABLE" \
    --attribute-definitions AttributeName=pk,AttributeType=S AttributeName=sk,AttributeType=N \
    --key-schema AttributeName=pk,KeyType=HASH AttributeName=sk,KeyType=RANGE \
    --billing-mode PAY_PER_REQUEST \
    --stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES >/dev/null
  aws_ dynamodb wait table-exists --table-name "$TABLE"
  echo "dynamodb table $TABLE: created"
fi
# Enabling TTL twice is an error on AWS: look first.
if aws_ dynamodb describe-time-to-live --table-name "$TABLE" --output text \
  --query 'TimeToLiveDescription.TimeToLiveStatus' | grep -qE 'ENABLED|ENABLING'; then
  echo "dynamodb table $TABLE: ttl on attribute ttl"
else
  aws_ dynamodb update-time-to-live --table-name "$TABLE" \
    --time-to-live-specification Enabled=true,AttributeName=ttl >/dev/null
  echo "dynamodb table $TABLE: ttl enabled on attribute ttl"
fi

# DynamoDB series catalog
if q dynamodb describe-table --table-name "$CATALOG"; then
  echo "dynamodb table $CATALOG: exists"
else
  aws_ dynamodb create-table --table-name "$CATALOG" \
    --attribute-definitions AttributeName=pk,AttributeType=S AttributeName=sk,AttributeType=S \
    --key-schema AttributeName=pk,KeyType=HASH AttributeName=sk,KeyType=RANGE \
    --billing-mode PAY_PER_REQUEST >/dev/null
  aws_ dynamodb wait table-exists --table-name "$CATALOG"
  echo "dynamodb table $CATALOG: created"
fi

# S3 (us-east-1 takes no LocationConstraint)
if q s3api head-bucket --bucket "$BUCKET"; then
  echo "s3 bucket $BUCKET: exists"
else
  aws_ s3api create-bucket --bucket "$BUCKET" >/dev/null
  echo "s3 bucket $BUCKET: created"
fi
