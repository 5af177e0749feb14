import { Template } from 'aws-cdk-lib/assertions';

// Every process cargo-lambda-cdk spawns goes through child_process.spawnSync. Record the
// `cargo` calls and answer the version probe as if cargo-lambda were installed, so
// RustFunction would bundle locally if bundling were not skipped.
const cargoCalls: string[][] = [];
const cargoEnvs: Record<string, string | undefined>[] = [];
jest.mock('child_process', () => {
  const actual = jest.requireActual('child_process');
  return {
    ...actual,
    spawnSync: (cmd: string, args: string[] = [], ...rest: unknown[]) => {
      if (cmd === 'cargo' || (args.join(' ').includes('cargo '))) {
        cargoCalls.push([cmd, ...args]);
        cargoEnvs.push((rest[0] as { env?: Record<string, string> } | undefined)?.env ?? {});
        return { status: 0, stdout: Buffer.from(''), stderr: Buffer.from(''), pid: 0, output: [], signal: null };
      }
      return actual.spawnSync(cmd, args, ...rest);
    },
  };
});

// eslint-disable-next-line import/first
import { synthCarat } from './helpers';

test('with bundling skipped, synth never runs cargo build, and asset keys do not depend on the Rust sources', () => {
  const template = Template.fromStack(synthCarat().services);
  expect(cargoCalls).toContainEqual(['cargo', 'lambda', '--version']); // the probe ran through the mock
  expect(cargoCalls.filter((c) => c.join(' ').includes('build'))).toEqual([]);
  const keys = Object.values(template.findResources('AWS::Lambda::Function')).map((f) => f.Properties.Code.S3Key);
  expect(keys).toHaveLength(7);
  // The key is derived from the construct path and bundling options, not from the sources:
  // a second synth agrees.
  const again = Object.values(Template.fromStack(synthCarat().services).findResources('AWS::Lambda::Function'))
    .map((f) => f.Properties.Code.S3Key);
  expect(again).toEqual(keys);
});

test('control: with bundling on, the same mock sees the cargo lambda build (so the test above can fail)', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { App } = require('aws-cdk-lib') as typeof import('aws-cdk-lib');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { deployCarat } = require('../lib/carat') as typeof import('../lib/carat');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { testConfig } = require('./helpers') as typeof import('./helpers');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { APP_CONTEXT } = require('../lib/context') as typeof import('../lib/context');
  const before = cargoCalls.length;
  // The fake build produces nothing, so asset staging fails after the call: that is fine here.
  let error: unknown;
  try {
    deployCarat(new App({ context: APP_CONTEXT }), { deployment: 'test', config: testConfig().environments.test });
  } catch (e) {
    error = e;
  }
  expect(String(error)).toMatch(/[Bb]undling/);
  const builds = cargoCalls.slice(before).filter((c) => c.join(' ').includes('cargo lambda build'));
  expect(builds.length).toBeGreaterThan(0);
  // Lambda packages are built without the workspace profile's debug info.
  const env = cargoEnvs[cargoCalls.indexOf(builds[0])];
  expect(env).toMatchObject({ CARGO_PROFILE_RELEASE_DEBUG: '0', CARGO_PROFILE_RELEASE_STRIP: 'debuginfo' });
  expect(builds[0].join(' ')).toContain('--arm64');
  expect(builds[0].join(' ')).toContain('--bin carat-api');
});
