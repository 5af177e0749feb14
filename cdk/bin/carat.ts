#!/usr/bin/env node
/**
 * The carat CDK app.
 *
 *   npx cdk deploy --all                     deploys the `dev` environment (three stacks)
 *   npx cdk deploy --all -c env=staging      another environment of the configuration
 *   npx cdk deploy carat-pipeline            the release pipeline (needs a `pipeline` section)
 *   -c config=path/to/file.json              another configuration file (default config/carat.json)
 *
 * cdk-nag AwsSolutions checks every stack at synth; an unsuppressed finding is an error.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, Aspects } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { deployCarat } from '../lib/carat';
import { environment, parseConfig } from '../lib/config';
import { APP_CONTEXT } from '../lib/context';
import { PipelineStack } from '../lib/stacks/pipeline-stack';

const app = new App({ context: APP_CONTEXT });
const configPath = path.resolve(__dirname, '..', app.node.tryGetContext('config') ?? 'config/carat.json');
const config = parseConfig(JSON.parse(fs.readFileSync(configPath, 'utf8')));
const deployment: string = app.node.tryGetContext('env') ?? 'dev';

deployCarat(app, { deployment, config: environment(config, deployment) });
Aspects.of(app).add(new AwsSolutionsChecks());
if (config.pipeline !== undefined) {
  // Its stages run cdk-nag themselves (CaratStage): aspects do not cross Stage boundaries.
  new PipelineStack(app, 'carat-pipeline', { config, pipeline: config.pipeline, description: 'carat release pipeline' });
}
