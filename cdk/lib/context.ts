/**
 * CDK context every carat app is built with (bin/carat.ts and the tests alike), so the
 * tests synthesize exactly what `cdk synth` does.
 */
export const APP_CONTEXT: Record<string, unknown> = {
  // Cross-stack references stay CloudFormation exports: a producer stack (Storage) cannot
  // drop an output that Services or Monitoring still imports.
  '@aws-cdk/core:defaultCrossStackReferences': 'strong',
  // S3 server access logs are admitted by a bucket policy, not the deprecated LogDeliveryWrite ACL.
  '@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy': true,
};
