import { Duration } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import type { EnvironmentConfig } from '../config';
import { CaratFunction } from './carat-function';

export interface ArchiverProps {
  readonly table: dynamodb.ITable;
  readonly archiveBucket: s3.IBucket;
  readonly failureQueue: sqs.IQueue;
  readonly config: EnvironmentConfig;
  readonly environment: Record<string, string>;
  /** S3 actions on the archive's objects (put, get, delete); ListBucket is added on the bucket. */
  readonly objectActions: readonly string[];
}

/**
 * Only TTL removals reach the archiver: REMOVE records made by the DynamoDB service itself
 * (userIdentity type Service, principal dynamodb.amazonaws.com). A user's DeleteItem has no
 * userIdentity and is filtered out before the function is invoked (and billed).
 */
export const TTL_REMOVAL_FILTER = lambda.FilterCriteria.filter({
  eventName: lambda.FilterRule.isEqual('REMOVE'),
  userIdentity: {
    type: lambda.FilterRule.isEqual('Service'),
    principalId: lambda.FilterRule.isEqual('dynamodb.amazonaws.com'),
  },
});

/**
 * The archiver (`carat-archiver`): one function with two triggers, told apart by the event's
 * shape —
 * - the DynamoDB-stream mapping, filtered to TTL removals: a DynamoDB stream event
 *   (`{"Records":[{"eventName":"REMOVE","userIdentity":{…},"dynamodb":{"OldImage":…}}]}`),
 *   whose removed chunks are packed into batch objects; partial failures reported as
 *   `batchItemFailures`;
 * - an EventBridge schedule every `archiver.compactionScheduleMinutes`: the standard
 *   "Scheduled Event" (`{"version":"0","id":…,"detail-type":"Scheduled Event",
 *   "source":"aws.events","account":…,"time":…,"region":…,"resources":[<rule ARN>],
 *   "detail":{}}`), which compacts a tenant-day's batch objects into one sorted object and
 *   deletes the batches it replaced.
 */
export class Archiver extends Construct {
  readonly fn: CaratFunction;

  constructor(scope: Construct, id: string, props: ArchiverProps) {
    super(scope, id);
    this.fn = new CaratFunction(this, 'Archiver', {
      binary: 'carat-archiver',
      description: 'carat archiver: TTL-expired window chunks from the DynamoDB stream to S3',
      config: props.config.archiver,
      logRetentionDays: props.config.logRetentionDays,
      environment: props.environment,
    });
    // Narrow grants rather than grantReadWrite/grantDelete (which add s3:GetObject*, List*,
    // DeleteObject* wildcards and the version actions of an unversioned bucket).
    this.fn.function.addToRolePolicy(new iam.PolicyStatement({
      actions: [...props.objectActions],
      resources: [props.archiveBucket.arnForObjects('*')],
    }));
    this.fn.function.addToRolePolicy(new iam.PolicyStatement({
      actions: ['s3:ListBucket'],
      resources: [props.archiveBucket.bucketArn],
    }));
    this.fn.function.addEventSource(new DynamoEventSource(props.table, {
      // The stream keeps 24 h: start at its beginning so no removal is missed on (re)creation.
      startingPosition: lambda.StartingPosition.TRIM_HORIZON,
      batchSize: props.config.archiver.batchSize,
      maxBatchingWindow: Duration.seconds(props.config.archiver.maxBatchingWindowSeconds),
      bisectBatchOnError: true,
      reportBatchItemFailures: true,
      retryAttempts: props.config.archiver.retryAttempts,
      onFailure: new SqsDlq(props.failureQueue),
      filters: [TTL_REMOVAL_FILTER],
    }));
    new events.Rule(this, 'CompactionSchedule', {
      description: 'carat archive compaction',
      schedule: events.Schedule.rate(Duration.minutes(props.config.archiver.compactionScheduleMinutes)),
      // A failed run is not retried: the next run compacts whatever is still uncompacted
      // (compaction is idempotent: it reads the batches, writes the result, then deletes).
      targets: [new targets.LambdaFunction(this.fn.function, { retryAttempts: 0 })],
    });
    NagSuppressions.addResourceSuppressions(this.fn.function, [{
      id: 'AwsSolutions-IAM5',
      reason: 'dynamodb:ListStreams (added by the DynamoDB event source) has no resource-level permissions, so it needs Resource *.',
      appliesTo: ['Resource::*'],
    }], true);
  }
}
