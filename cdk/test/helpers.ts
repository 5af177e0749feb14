import { App, Aspects, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { CaratStacks, deployCarat } from '../lib/carat';
import { CaratConfig, EnvironmentConfig, parseConfig } from '../lib/config';
import { APP_CONTEXT } from '../lib/context';
import type { Binary } from '../lib/names';

export const ALL_BINARIES: readonly Binary[] = [
  'carat-api', 'carat-writer', 'carat-flusher', 'carat-archiver', 'carat-reader', 'carat-probe',
];

/** An app as bin/carat.ts makes it, with bundling skipped: nothing is built, no cargo runs. */
export function testApp(): App {
  return new App({ context: { ...APP_CONTEXT, 'aws:cdk:bundling-stacks': [] } });
}

/** The test configuration: defaults, plus whatever a test overrides. */
export function testConfig(overrides: Record<string, unknown> = {}): CaratConfig {
  return parseConfig({ environments: { test: overrides } });
}

export interface Synth extends CaratStacks {
  readonly app: App;
  readonly config: EnvironmentConfig;
}

/** The three stacks of the `test` deployment, checked by cdk-nag AwsSolutions. */
export function synthCarat(opts: { overrides?: Record<string, unknown>; binaries?: readonly Binary[] } = {}): Synth {
  const app = testApp();
  const config = testConfig(opts.overrides).environments.test;
  const stacks = deployCarat(app, { deployment: 'test', config, binaries: opts.binaries });
  Aspects.of(app).add(new AwsSolutionsChecks());
  return { app, config, ...stacks };
}

/** cdk-nag (and CDK) errors and warnings on a stack, as readable lines. */
export function findings(stack: Stack): string[] {
  // Synthesizing runs the aspects (cdk-nag) and records their annotations.
  Template.fromStack(stack);
  const a = Annotations.fromStack(stack);
  return [...a.findError('*', Match.anyValue()), ...a.findWarning('*', Match.anyValue())]
    .map((m) => `${m.id}: ${String(m.entry.data).split('\n')[0]}`);
}

/** Every resource of `type` in a template, by logical id. */
export function resources(template: Template, type: string): Record<string, { Properties: Record<string, any> }> {
  return template.findResources(type) as Record<string, { Properties: Record<string, any> }>;
}
