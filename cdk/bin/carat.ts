#!/usr/bin/env node
/**
 * The carat CDK app.
 *
 *   npx cdk deploy --all                     deploys the `dev` environment (three stacks)
 *   npx cdk deploy --all -c env=staging      another environment of the configuration
 *   npx cdk deploy carat-pipeline            the release pipeline (needs a `pipeline` section)
 *   -c config=path/to/file.json              another configuration file (default config/carat.json)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { buildCaratApp } from '../lib/app';
import { parseConfig } from '../lib/config';
import { APP_CONTEXT } from '../lib/context';

const app = new App({ context: APP_CONTEXT });
const configPath = path.resolve(__dirname, '..', app.node.tryGetContext('config') ?? 'config/carat.json');
const config = parseConfig(JSON.parse(fs.readFileSync(configPath, 'utf8')));
buildCaratApp(app, config, app.node.tryGetContext('env') ?? 'dev');
