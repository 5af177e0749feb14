import * as path from 'node:path';
import { Duration } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { RustFunction } from 'cargo-lambda-cdk';
import { Construct } from 'constructs';
import type { FunctionConfig } from '../config';
import type { Binary } from '../names';

/** The workspace manifest: cargo-lambda builds every binary from the repository root. */
export const WORKSPACE_MANIFEST = path.resolve(__dirname, '..', '..', '..', 'Cargo.toml');

export interface CaratFunctionProps {
  /** The cargo binary (and package) name. */
  readonly binary: Binary;
  readonly description: string;
  /** A fixed function name, for a function something outside the stack invokes by name. */
  readonly functionName?: string;
  readonly config: FunctionConfig;
  readonly logRetentionDays: number;
  readonly environment: Record<string, string>;
  /** Functions that reach the head run in the VPC's isolated subnets with this security group. */
  readonly vpc?: { readonly vpc: ec2.IVpc; readonly securityGroup: ec2.ISecurityGroup };
}

/**
 * One carat Lambda: a cargo-lambda build of `binary` from the workspace, arm64, with its own
 * log group and active X-Ray tracing. With bundling skipped (tests: context `aws:cdk:bundling-stacks` = []) nothing is
 * built: the asset points at the workspace without running cargo.
 */
export class CaratFunction extends Construct {
  readonly function: RustFunction;
  readonly binary: Binary;
  readonly timeout: Duration;

  constructor(scope: Construct, id: string, props: CaratFunctionProps) {
    super(scope, id);
    this.binary = props.binary;
    this.timeout = Duration.seconds(props.config.timeoutSeconds);
    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetentionDays as logs.RetentionDays,
    });
    this.function = new RustFunction(this, 'Function', {
      manifestPath: WORKSPACE_MANIFEST,
      binaryName: props.binary,
      architecture: lambda.Architecture.ARM_64,
      bundling: {
        // The workspace's release profile keeps debug info (for profiling); a Lambda package
        // does not need it: it makes the binary ~4× larger and the cold start slower. Symbols
        // stay, so panics still name their functions.
        environment: { CARGO_PROFILE_RELEASE_DEBUG: '0', CARGO_PROFILE_RELEASE_STRIP: 'debuginfo' },
      },
      description: props.description,
      functionName: props.functionName,
      memorySize: props.config.memoryMb,
      timeout: this.timeout,
      environment: props.environment,
      logGroup,
      // X-Ray: Lambda traces every invocation and runs the daemon; carat_store::trace sends a
      // subsegment for each Redis, DynamoDB, Kinesis and S3 call (docs/deploy.md "Runbook:
      // which phase dominates"). CDK adds the xray:PutTraceSegments permission.
      tracing: lambda.Tracing.ACTIVE,
      vpc: props.vpc?.vpc,
      vpcSubnets: props.vpc ? { subnetType: ec2.SubnetType.PRIVATE_ISOLATED } : undefined,
      securityGroups: props.vpc ? [props.vpc.securityGroup] : undefined,
    });
  }
}
