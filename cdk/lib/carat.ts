/**
 * carat's CDK app, in one place:
 *
 * - `app.ts`          what bin/carat.ts builds: one deployment's stacks, the pipeline, cdk-nag
 * - `context.ts`      CDK context (feature flags) shared by the app and the tests
 * - `config.ts`       typed per-environment configuration, validated at synth
 * - `names.ts`        environment variables and metrics shared with the Rust code; the binaries that exist
 * - `stacks/`         Storage (stateful) → Services (functions, mappings, API) → Monitoring (alarms,
 *                     dashboard); Pipeline (CDK Pipelines: build + tests → staging → probe → approval → production)
 * - `constructs/`     CaratFunction (cargo-lambda build of one binary), HeadCluster (ElastiCache),
 *                     Archiver (TTL-removal mapping), EndToEndProbe (scheduled probe)
 * - `nag.ts`          cdk-nag suppressions shared by the stacks, each with its reason
 *
 * `deployCarat` builds the three stacks of one deployment into any scope: the app (for
 * `cdk deploy --all`) or a pipeline Stage.
 */
import { Aspects, Stage, StageProps } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { Construct } from 'constructs';
import type { EnvironmentConfig } from './config';
import type { Binary } from './names';
import { MonitoringStack } from './stacks/monitoring-stack';
import { ServicesStack } from './stacks/services-stack';
import { StorageStack } from './stacks/storage-stack';

export interface CaratStacks {
  readonly storage: StorageStack;
  readonly services: ServicesStack;
  readonly monitoring: MonitoringStack;
}

export interface DeployCaratProps {
  /** Name of the deployment: the environment's key in the configuration. */
  readonly deployment: string;
  readonly config: EnvironmentConfig;
  /** Stack name prefix; default `carat-<deployment>`. */
  readonly prefix?: string;
  readonly binaries?: readonly Binary[];
  /** Another account allowed to invoke the probe (the pipeline's staging check). */
  readonly probeInvokerAccount?: string;
}

/** The Storage, Services and Monitoring stacks of one deployment. */
export function deployCarat(scope: Construct, props: DeployCaratProps): CaratStacks {
  const { deployment, config } = props;
  const prefix = props.prefix ?? `carat-${deployment}`;
  const env = config.account === undefined && config.region === undefined
    ? undefined
    : { account: config.account, region: config.region };
  const common = { env, deployment, config };
  const storage = new StorageStack(scope, `${prefix}-storage`, {
    ...common, description: `carat ${deployment}: stream, table, archive, head cluster, network (stateful)`,
  });
  const services = new ServicesStack(scope, `${prefix}-services`, {
    ...common, storage, binaries: props.binaries, probeInvokerAccount: props.probeInvokerAccount, description: `carat ${deployment}: functions, mappings, schedules, HTTP API`,
  });
  const monitoring = new MonitoringStack(scope, `${prefix}-monitoring`, {
    ...common, storage, services, description: `carat ${deployment}: alarms, dashboard, alarm topic`,
  });
  return { storage, services, monitoring };
}

export interface CaratStageProps extends StageProps {
  readonly deployment: string;
  readonly config: EnvironmentConfig;
  readonly probeInvokerAccount?: string;
}

/**
 * One deployment as a pipeline stage. It runs cdk-nag on its own stacks: aspects of the app do
 * not cross Stage boundaries, and CDK Pipelines synthesizes a stage as soon as it is added.
 */
export class CaratStage extends Stage {
  readonly stacks: CaratStacks;

  constructor(scope: Construct, id: string, props: CaratStageProps) {
    super(scope, id, props);
    this.stacks = deployCarat(this, {
      deployment: props.deployment, config: props.config, prefix: 'carat', probeInvokerAccount: props.probeInvokerAccount,
    });
    Aspects.of(this).add(new AwsSolutionsChecks());
  }
}
