import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
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
 * The archiver (`carat-archiver`): the DynamoDB-stream mapping filtered to TTL removals and
 * the function that writes the removed chunks to S3. Declared now, instantiated by the
 * Services stack once the binary is listed in LANDED_BINARIES.
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
    props.archiveBucket.grantPut(this.fn.function);
    this.fn.function.addEventSource(new DynamoEventSource(props.table, {
      // The stream keeps 24 h: start at its beginning so no removal is missed on (re)creation.
      startingPosition: lambda.StartingPosition.TRIM_HORIZON,
      batchSize: props.config.archiver.batchSize,
      bisectBatchOnError: true,
      reportBatchItemFailures: true,
      retryAttempts: props.config.archiver.retryAttempts,
      onFailure: new SqsDlq(props.failureQueue),
      filters: [TTL_REMOVAL_FILTER],
    }));
    NagSuppressions.addResourceSuppressions(this.fn.function, [{
      id: 'AwsSolutions-IAM5',
      reason: 'dynamodb:ListStreams (added by the DynamoDB event source) has no resource-level permissions, so it needs Resource *.',
      appliesTo: ['Resource::*'],
    }], true);
  }
}
