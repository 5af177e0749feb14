/**
 * cdk-nag suppressions shared by several stacks. Each one says why the finding does not
 * apply, and is narrowed with `appliesTo` to the exact policy or wildcard it excuses.
 */
import { Stack } from 'aws-cdk-lib';
import { NagPackSuppression, NagSuppressions } from 'cdk-nag';
import { IConstruct } from 'constructs';

/** AWS managed policies Lambda attaches to a function's role. */
export const LAMBDA_MANAGED_POLICIES: NagPackSuppression = {
  id: 'AwsSolutions-IAM4',
  reason: 'AWS managed Lambda execution policies grant only CloudWatch Logs writes (and ENI management for functions in the VPC); writing them by hand would copy them.',
  appliesTo: [
    'Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole',
    'Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole',
  ],
};

/** Wildcards that CDK grant methods put into policies, each still scoped to one resource. */
export const GRANT_WILDCARDS: NagPackSuppression = {
  id: 'AwsSolutions-IAM5',
  reason: 'Written by CDK grant methods: action wildcards (kms:GenerateDataKey*, kms:ReEncrypt*, s3:GetObject*, s3:List*, s3:Abort*, …) and object or index ARNs under one named bucket or table; no wildcard names another resource.',
  appliesTo: [
    'Action::kms:GenerateDataKey*',
    'Action::kms:ReEncrypt*',
    'Action::s3:GetObject*',
    'Action::s3:GetBucket*',
    'Action::s3:List*',
    'Action::s3:Abort*',
    'Action::s3:DeleteObject*',
    { regex: '/^Resource::.*\\/index\\/\\*$/g' },
    { regex: '/^Resource::.*\\/\\*$/g' },
  ],
};

/**
 * Active tracing: CDK grants xray:PutTraceSegments and xray:PutTelemetryRecords on `*`.
 * X-Ray has no resource-level permissions for them (the service authorization reference
 * lists no resource types), so `*` is the only form.
 */
export const XRAY_WILDCARD: NagPackSuppression = {
  id: 'AwsSolutions-IAM5',
  reason: 'Active X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level permissions, so CDK grants them on *.',
  appliesTo: ['Resource::*'],
};

/** Applies the suppressions that every carat function role needs. */
export function suppressFunctionRole(role: IConstruct): void {
  NagSuppressions.addResourceSuppressions(role, [LAMBDA_MANAGED_POLICIES, GRANT_WILDCARDS, XRAY_WILDCARD], true);
}

/** Stack-wide suppression for a construct path that CDK creates itself (e.g. a provider). */
export function suppressPath(stack: Stack, path: string, suppressions: NagPackSuppression[]): void {
  NagSuppressions.addResourceSuppressionsByPath(stack, path, suppressions, true);
}
