import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError, ENVIRONMENT_DEFAULTS, environment, parseConfig } from '../lib/config';

/** The problems parseConfig reports for `raw`. */
function problems(raw: unknown): string[] {
  try {
    parseConfig(raw);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return [...(e as ConfigError).problems];
  }
  return [];
}

const env = (overrides: unknown): unknown => ({ environments: { prod: overrides } });

describe('configuration', () => {
  test('an empty environment takes every default', () => {
    expect(parseConfig(env({})).environments.prod).toEqual(ENVIRONMENT_DEFAULTS);
  });

  test('the shipped config/carat.json is valid and has dev, staging and production', () => {
    const raw = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', 'config', 'carat.json'), 'utf8'));
    const config = parseConfig(raw);
    expect(Object.keys(config.environments).sort()).toEqual(['dev', 'production', 'staging']);
    expect(config.environments.production.kinesis.shards).toBe(2);
    expect(config.environments.production.redis.engine).toBe('valkey');
  });

  test('overrides merge field by field', () => {
    const c = parseConfig(env({ redis: { shards: 3 }, alarms: { email: 'ops@example.com' } })).environments.prod;
    expect(c.redis).toEqual({ ...ENVIRONMENT_DEFAULTS.redis, shards: 3 });
    expect(c.alarms.email).toBe('ops@example.com');
    expect(c.alarms.endToEndLatencyMs).toBe(ENVIRONMENT_DEFAULTS.alarms.endToEndLatencyMs);
  });

  test.each([
    [{ kinesis: { shards: 0 } }, 'environments.prod.kinesis.shards: must be an integer in 1..500, got 0'],
    [{ kinesis: { shards: 1.5 } }, 'environments.prod.kinesis.shards: must be an integer in 1..500, got 1.5'],
    [{ kinesis: { retentionHours: 24 } }, 'environments.prod.kinesis.retentionHours: must be an integer in 168..8760, got 24'],
    [{ kinesis: { shards: '2' } }, 'environments.prod.kinesis.shards: must be a number, got "2"'],
    [{ kinesis: { shard: 2 } }, 'environments.prod.kinesis.shard: unknown field'],
    [{ redis: { replicasPerShard: 0 } }, 'environments.prod.redis.replicasPerShard: must be an integer in 1..5, got 0'],
    [{ redis: { engine: 'memcached' } }, 'environments.prod.redis.engine: must be valkey or redis, got "memcached"'],
    [{ redis: { nodeType: 't4g.micro' } }, 'environments.prod.redis.nodeType: must look like cache.t4g.micro, got "t4g.micro"'],
    [{ table: { tableClass: 'IA' } }, 'environments.prod.table.tableClass: must be STANDARD or STANDARD_INFREQUENT_ACCESS, got "IA"'],
    [{ archive: { glacierInstantRetrievalAfterDays: 40 } }, 'environments.prod.archive.glacierInstantRetrievalAfterDays: must be an integer in 60..36500, got 40'],
    [{ vpc: { maxAzs: 1 } }, 'environments.prod.vpc.maxAzs: must be an integer in 2..6, got 1'],
    [{ writer: { parallelizationFactor: 11 } }, 'environments.prod.writer.parallelizationFactor: must be an integer in 1..10, got 11'],
    [{ writer: { retryAttempts: -2 } }, 'environments.prod.writer.retryAttempts: must be -1 (unlimited) or an integer in 0..10000, got -2'],
    [{ writer: { retryAttempts: 10_001 } }, 'environments.prod.writer.retryAttempts: must be -1 (unlimited) or an integer in 0..10000, got 10001'],
    [{ writer: { maxRecordAgeSeconds: 30 } }, 'environments.prod.writer.maxRecordAgeSeconds: must be -1 (unlimited) or an integer in 60..604800, got 30'],
    [{ alarms: { failedFlushes: 0 } }, 'environments.prod.alarms.failedFlushes: must be a number in 1..1000000000, got 0'],
    [{ api: { timeoutSeconds: 30 } }, 'environments.prod.api.timeoutSeconds: must be an integer in 1..29, got 30'],
    [{ api: { domainName: 'carat.example.com' } }, 'environments.prod.api: domainName and certificateArn go together'],
    [{ flusher: { timeoutSeconds: 60 } }, 'environments.prod.flusher.timeoutSeconds: must be shorter than the schedule (60 s) so runs do not overlap'],
    [{ probe: { timeoutSeconds: 60 } }, 'environments.prod.probe.timeoutSeconds: must be shorter than the schedule (60 s) so runs do not overlap'],
    [{ archiver: { compactionScheduleMinutes: 0 } }, 'environments.prod.archiver.compactionScheduleMinutes: must be an integer in 1..1440, got 0'],
    [{ backupReplay: { startingPosition: 'AT_TIMESTAMP' } }, 'environments.prod.backupReplay.startingTimestamp: AT_TIMESTAMP needs an ISO-8601 time, got undefined'],
    [{ backupReplay: { startingPosition: 'LATEST' } }, 'environments.prod.backupReplay.startingPosition: must be TRIM_HORIZON or AT_TIMESTAMP, got "LATEST"'],
    [{ logRetentionDays: 10 }, 'environments.prod.logRetentionDays: must be one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653, got 10'],
    [{ alarms: { writerConcurrencyRatio: 1.5 } }, 'environments.prod.alarms.writerConcurrencyRatio: must be a number in 0.1..1, got 1.5'],
    [{ alarms: { email: 'nobody' } }, 'environments.prod.alarms.email: not an e-mail address: "nobody"'],
    [{ account: '1234' }, 'environments.prod.account: must be 12 digits, got "1234"'],
  ])('%j is rejected with a message naming the field', (overrides, message) => {
    expect(problems(env(overrides))).toEqual([message]);
  });

  test('writer retries and record age: unlimited (-1) by default, finite values allowed', () => {
    expect(ENVIRONMENT_DEFAULTS.writer).toMatchObject({ retryAttempts: -1, maxRecordAgeSeconds: -1 });
    expect(problems(env({ writer: { retryAttempts: 0, maxRecordAgeSeconds: 60 } }))).toEqual([]);
    expect(problems(env({ writer: { retryAttempts: 10_000, maxRecordAgeSeconds: 604_800 } }))).toEqual([]);
  });

  test('every problem is reported at once', () => {
    expect(problems(env({ kinesis: { shards: 0 }, redis: { shards: 0 } }))).toHaveLength(2);
  });

  test('environment names become resource names, so they are checked', () => {
    expect(problems({ environments: { Prod_1: {} } })[0]).toMatch(/^environments\.Prod_1: the name must be lowercase/);
  });

  test('an unknown environment is a clear error', () => {
    expect(() => environment(parseConfig(env({})), 'qa')).toThrow('environment "qa" is not in the configuration (have: prod)');
  });

  test('pipeline: required fields, defaults, and stage environments that exist', () => {
    const ok = parseConfig({
      environments: { staging: {}, production: {} },
      pipeline: {
        account: '111111111111', region: 'us-east-1', repository: 'example/carat',
        connectionArn: 'arn:aws:codestar-connections:us-east-1:111111111111:connection/abc',
      },
    });
    expect(ok.pipeline).toMatchObject({ branch: 'main', stagingEnvironment: 'staging', productionEnvironment: 'production' });
    expect(problems({ environments: { staging: {} }, pipeline: { account: '111111111111' } })).toEqual([
      'pipeline.region: required (a string)',
      'pipeline.connectionArn: required (a string)',
      'pipeline.repository: required (a string)',
      'pipeline.productionEnvironment: no environment named "production" in environments',
    ]);
    expect(problems({
      environments: { staging: {}, production: {} },
      pipeline: { account: '111111111111', region: 'us-east-1', repository: 'carat', connectionArn: 'arn:aws:s3:::x', brnch: 'x' },
    })).toEqual([
      'pipeline.brnch: unknown field',
      'pipeline.connectionArn: must be a CodeConnections (codestar-connections) ARN, got "arn:aws:s3:::x"',
      'pipeline.repository: must be owner/name, got "carat"',
    ]);
  });
});
