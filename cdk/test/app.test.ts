import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildCaratApp } from '../lib/app';
import { parseConfig } from '../lib/config';
import { findings, testApp } from './helpers';

const shipped = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', 'config', 'carat.json'), 'utf8'));

describe('the app (bin/carat.ts)', () => {
  test('deploys the three stacks of the chosen environment from the shipped configuration, cdk-nag clean', () => {
    const stacks = buildCaratApp(testApp(), parseConfig(shipped), 'production');
    expect(stacks.map((s) => s.stackName)).toEqual(['carat-production-storage', 'carat-production-services', 'carat-production-monitoring']);
    for (const s of stacks) expect(findings(s)).toEqual([]);
  });

  test('adds the pipeline stack when the configuration has a pipeline section', () => {
    const config = parseConfig({
      ...shipped,
      pipeline: {
        account: '111111111111', region: 'us-east-1', repository: 'example/carat',
        connectionArn: 'arn:aws:codeconnections:us-east-1:111111111111:connection/abc',
      },
    });
    const stacks = buildCaratApp(testApp(), config, 'dev');
    expect(stacks.map((s) => s.stackName)).toEqual(['carat-dev-storage', 'carat-dev-services', 'carat-dev-monitoring', 'carat-pipeline']);
  });

  test('an unknown environment fails the synth with the names that exist', () => {
    expect(() => buildCaratApp(testApp(), parseConfig(shipped), 'qa')).toThrow(/environment "qa" is not in the configuration \(have: dev, staging, production\)/);
  });
});
