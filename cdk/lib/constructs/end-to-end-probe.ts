import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import type { EnvironmentConfig } from '../config';
import { ENV } from '../names';
import { CaratFunction } from './carat-function';

export interface EndToEndProbeProps {
  /** Name of the deployment: the probe's metric dimension (docs/probe-metric.md). */
  readonly deployment: string;
  /** Fixed function name, so the pipeline can invoke it (`carat-<deployment>-probe`). */
  readonly functionName: string;
  /** Base URL of the HTTP API the probe posts to and reads from. */
  readonly apiUrl: string;
  /** The probe's own API key (plain string); its hash is in the key store as `probe`. */
  readonly probeApiKeySecret: secretsmanager.ISecret;
  /** Another account that may invoke the probe (the pipeline's staging check). */
  readonly invokerAccount?: string;
  readonly config: EnvironmentConfig;
  readonly environment: Record<string, string>;
}

/**
 * The end-to-end probe (`carat-probe`): on a schedule it posts a dummy point through the
 * public API, polls the reader until the point is visible, and emits the time taken as the
 * metric fixed in docs/probe-metric.md. It goes through the API like a client, so it runs
 * outside the VPC, and it reads only its own key (not the key store: that holds hashes).
 * Each invocation returns its result (`{"latency_ms","error","at_ms"}`) as the payload.
 */
export class EndToEndProbe extends Construct {
  readonly fn: CaratFunction;

  constructor(scope: Construct, id: string, props: EndToEndProbeProps) {
    super(scope, id);
    this.fn = new CaratFunction(this, 'Probe', {
      binary: 'carat-probe',
      description: 'carat probe: post a point, read it back, emit the end-to-end latency',
      functionName: props.functionName,
      config: props.config.probe,
      logRetentionDays: props.config.logRetentionDays,
      environment: {
        ...props.environment,
        [ENV.apiUrl]: props.apiUrl,
        [ENV.deployment]: props.deployment,
        [ENV.probeApiKeySecretArn]: props.probeApiKeySecret.secretArn,
      },
    });
    props.probeApiKeySecret.grantRead(this.fn.function);
    new events.Rule(this, 'Schedule', {
      description: 'carat end-to-end probe',
      schedule: events.Schedule.rate(Duration.minutes(props.config.probe.scheduleMinutes)),
      // A missed probe is not retried: the next one measures again, and the alarm sees the gap.
      targets: [new targets.LambdaFunction(this.fn.function, { retryAttempts: 0 })],
    });
    if (props.invokerAccount !== undefined) {
      this.fn.function.addPermission('InvokedByPipeline', {
        principal: new iam.AccountPrincipal(props.invokerAccount),
        action: 'lambda:InvokeFunction',
      });
    }
  }
}
