import { App, Aspects, Stack } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { deployCarat } from './carat';
import { CaratConfig, environment } from './config';
import { PipelineStack } from './stacks/pipeline-stack';

/**
 * Everything `bin/carat.ts` puts into the app: the three stacks of `deployment`, the release
 * pipeline when the configuration has one, and cdk-nag AwsSolutions on all of them (an
 * unsuppressed finding is an error annotation, which fails `cdk synth` and `cdk deploy`).
 */
export function buildCaratApp(app: App, config: CaratConfig, deployment: string): Stack[] {
  const stacks = deployCarat(app, { deployment, config: environment(config, deployment) });
  const all: Stack[] = [stacks.storage, stacks.services, stacks.monitoring];
  Aspects.of(app).add(new AwsSolutionsChecks());
  if (config.pipeline !== undefined) {
    // Its stages run cdk-nag themselves (CaratStage): aspects do not cross Stage boundaries.
    all.push(new PipelineStack(app, 'carat-pipeline', { config, pipeline: config.pipeline, description: 'carat release pipeline' }));
  }
  return all;
}
