import * as fs from 'node:fs';
import * as path from 'node:path';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { ALL_BINARIES, findings, resources, synthCarat } from './helpers';

const synth = synthCarat();
const template = Template.fromStack(synth.monitoring);
const alarms = Object.values(resources(template, 'AWS::CloudWatch::Alarm')).map((r) => r.Properties);
const byName = (name: string): Record<string, any> => {
  const alarm = alarms.find((a) => a.AlarmName === `carat-test-${name}`);
  if (alarm === undefined) throw new Error(`no alarm carat-test-${name}; have ${alarms.map((a) => a.AlarmName).join(', ')}`);
  return alarm;
};

/** GitHub-style anchors of the headings of docs/deploy.md. */
function runbookAnchors(): Set<string> {
  const doc = fs.readFileSync(path.resolve(__dirname, '..', '..', 'docs', 'deploy.md'), 'utf8');
  return new Set(doc.split('\n').filter((l) => /^#{1,6} /.test(l)).map((l) =>
    l.replace(/^#+ /, '').trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-')));
}

describe('Monitoring stack', () => {
  test('one encrypted, TLS-only SNS topic receives every alarm and its recovery', () => {
    template.resourceCountIs('AWS::SNS::Topic', 1);
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
    for (const a of alarms) {
      expect(a.AlarmActions).toEqual([{ Ref: expect.stringMatching(/^AlarmTopic/) }]);
      expect(a.OKActions).toHaveLength(1);
    }
  });

  test('an alarm for every signal of DESIGN.md §1', () => {
    const names = alarms.map((a) => a.AlarmName.replace('carat-test-', '')).sort();
    expect(names).toEqual([
      'api-duration', 'api-errors', 'api-throttles',
      'archiver-duration', 'archiver-errors', 'archiver-iterator-age', 'archiver-throttles',
      'backup-writer-duration', 'backup-writer-errors', 'backup-writer-throttles',
      'dynamodb-catalog-system-errors', 'dynamodb-system-errors', 'dynamodb-throttles',
      'end-to-end-latency',
      'flusher-duration', 'flusher-errors', 'flusher-failed-flushes', 'flusher-throttles',
      'kinesis-incoming-bytes', 'kinesis-iterator-age', 'kinesis-read-throughput', 'kinesis-write-throughput',
      'mapping-failures',
      // No probe-duration: a probe whose point never shows reads until its timeout, which
      // is what end-to-end-latency reports.
      'probe-errors', 'probe-throttles',
      'processed-points',
      'reader-duration', 'reader-errors', 'reader-throttles',
      'redis-0001-engine-cpu', 'redis-0001-evictions', 'redis-0001-memory', 'redis-0001-replication-lag',
      'writer-concurrency', 'writer-duration', 'writer-errors', 'writer-failed-flushes', 'writer-iterator-age', 'writer-throttles',
    ]);
  });

  test('every alarm names its runbook entry, and docs/deploy.md has it', () => {
    const anchors = runbookAnchors();
    for (const a of alarms) {
      const m = /Runbook: docs\/deploy\.md#([a-z0-9-]+)$/.exec(a.AlarmDescription);
      expect(m).not.toBeNull();
      expect(anchors).toContain(m![1]);
    }
  });

  test('Kinesis: iterator age, incoming bytes drop (missing = breaching), throughput exceeded', () => {
    expect(byName('kinesis-iterator-age')).toMatchObject({
      MetricName: 'GetRecords.IteratorAgeMilliseconds', Namespace: 'AWS/Kinesis', Statistic: 'Maximum',
      Threshold: 60000, ComparisonOperator: 'GreaterThanThreshold',
    });
    expect(byName('kinesis-incoming-bytes')).toMatchObject({
      MetricName: 'IncomingBytes', Statistic: 'Sum', Threshold: 1, ComparisonOperator: 'LessThanThreshold', TreatMissingData: 'breaching',
    });
    expect(byName('kinesis-write-throughput')).toMatchObject({ MetricName: 'WriteProvisionedThroughputExceeded', Threshold: 0 });
    expect(byName('kinesis-read-throughput')).toMatchObject({ MetricName: 'ReadProvisionedThroughputExceeded', Threshold: 0 });
  });

  test('Lambda: errors, throttles, duration against 80 % of the timeout, iterator age', () => {
    expect(byName('writer-errors')).toMatchObject({ Namespace: 'AWS/Lambda', MetricName: 'Errors', Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold' });
    expect(byName('writer-throttles')).toMatchObject({ MetricName: 'Throttles', Threshold: 1 });
    expect(byName('writer-duration')).toMatchObject({ MetricName: 'Duration', Statistic: 'Maximum', Threshold: 48_000 });
    expect(byName('api-duration')).toMatchObject({ Threshold: 23_200 });
    expect(byName('flusher-duration')).toMatchObject({ Threshold: 44_000 });
    expect(byName('writer-iterator-age')).toMatchObject({ MetricName: 'IteratorAge', Statistic: 'Maximum', Threshold: 60_000 });
  });

  test('writer concurrency = invocations × average duration / 60 000 ÷ shards, alarm above 0.7', () => {
    const a = byName('writer-concurrency');
    expect(a).toMatchObject({ Threshold: 0.7, ComparisonOperator: 'GreaterThanThreshold', EvaluationPeriods: 5 });
    const expr = a.Metrics.find((m: any) => m.Expression !== undefined);
    expect(expr.Expression).toBe('inv * dur / 60000 / 1');
    const inv = a.Metrics.find((m: any) => m.Id === 'inv').MetricStat;
    const dur = a.Metrics.find((m: any) => m.Id === 'dur').MetricStat;
    expect(inv).toMatchObject({ Metric: { MetricName: 'Invocations', Namespace: 'AWS/Lambda' }, Period: 60, Stat: 'Sum' });
    expect(dur).toMatchObject({ Metric: { MetricName: 'Duration', Namespace: 'AWS/Lambda' }, Period: 60, Stat: 'Average' });
  });

  test('the concurrency divisor is shards × parallelization factor', () => {
    const s = synthCarat({ overrides: { kinesis: { shards: 4 }, writer: { parallelizationFactor: 2 } } });
    const a = Object.values(resources(Template.fromStack(s.monitoring), 'AWS::CloudWatch::Alarm'))
      .map((r) => r.Properties).find((p) => p.AlarmName === 'carat-test-writer-concurrency')!;
    expect(a.Metrics.find((m: any) => m.Expression !== undefined).Expression).toBe('inv * dur / 60000 / 8');
  });

  test('DynamoDB: read + write throttles of both tables, system errors of each (≤ 10 metrics per alarm)', () => {
    const t = byName('dynamodb-throttles');
    expect(t.Metrics.find((m: any) => m.Expression).Expression).toBe('r + w + cr + cw');
    expect(t.Metrics.map((m: any) => m.MetricStat?.Metric.MetricName).filter(Boolean).sort())
      .toEqual(['ReadThrottleEvents', 'ReadThrottleEvents', 'WriteThrottleEvents', 'WriteThrottleEvents']);
    const tables = t.Metrics.filter((m: any) => m.MetricStat).map((m: any) => JSON.stringify(m.MetricStat.Metric.Dimensions));
    expect(tables.filter((d: string) => d.includes('CatalogTable'))).toHaveLength(2);
    expect(tables.filter((d: string) => d.includes('WindowTable'))).toHaveLength(2);
    const e = byName('dynamodb-system-errors');
    expect(e.Metrics.filter((m: any) => m.MetricStat?.Metric.MetricName === 'SystemErrors').length).toBeGreaterThan(3);
    const c = byName('dynamodb-catalog-system-errors');
    const catalogOps = c.Metrics.filter((m: any) => m.MetricStat?.Metric.MetricName === 'SystemErrors');
    expect(catalogOps.map((m: any) => m.MetricStat.Metric.Dimensions.find((d: any) => d.Name === 'Operation').Value).sort())
      .toEqual(['BatchGetItem', 'BatchWriteItem', 'GetItem', 'PutItem', 'Query', 'UpdateItem']);
    expect(JSON.stringify(catalogOps)).toContain('CatalogTable');
    for (const a of alarms) expect((a.Metrics ?? []).length).toBeLessThanOrEqual(10);
  });

  test('Redis: engine CPU, memory, evictions, replication lag over every node of each shard', () => {
    const cpu = byName('redis-0001-engine-cpu');
    expect(cpu).toMatchObject({ Threshold: 80, ComparisonOperator: 'GreaterThanThreshold' });
    expect(cpu.Metrics.find((m: any) => m.Expression).Expression).toBe('MAX([cpu0,cpu1])');
    expect(cpu.Metrics.filter((m: any) => m.MetricStat).map((m: any) => m.MetricStat.Metric.Dimensions[0].Value))
      .toEqual(['carat-test-0001-001', 'carat-test-0001-002']);
    expect(byName('redis-0001-memory')).toMatchObject({ Threshold: 70 });
    expect(byName('redis-0001-evictions').Metrics.find((m: any) => m.Expression).Expression).toBe('SUM([evict0,evict1])');
    expect(byName('redis-0001-replication-lag')).toMatchObject({ Threshold: 10 });
  });

  test('one set of Redis alarms per shard', () => {
    const s = synthCarat({ overrides: { redis: { shards: 3, replicasPerShard: 2 } } });
    const names = Object.values(resources(Template.fromStack(s.monitoring), 'AWS::CloudWatch::Alarm'))
      .map((r) => r.Properties.AlarmName as string).filter((n) => n.includes('redis-')).sort();
    expect(names).toHaveLength(12);
    expect(names).toContain('carat-test-redis-0003-engine-cpu');
  });

  test('processed points per minute below normal: the writer\'s EMF metric, missing = breaching', () => {
    expect(byName('processed-points')).toMatchObject({
      Namespace: 'Carat', MetricName: 'ProcessedPoints', Statistic: 'Sum', Period: 60,
      Dimensions: [{ Name: 'Function', Value: 'writer' }],
      Threshold: 1, ComparisonOperator: 'LessThanThreshold', EvaluationPeriods: 15, TreatMissingData: 'breaching',
    });
  });

  test('failed flushes of the writer and the flusher: FailedFlushes ≥ 1 in 5 minutes, missing = not breaching', () => {
    for (const role of ['writer', 'flusher']) {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: `carat-test-${role}-failed-flushes`,
        Namespace: 'Carat', MetricName: 'FailedFlushes', Statistic: 'Sum', Period: 300,
        Dimensions: [{ Name: 'Function', Value: role }],
        Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold', EvaluationPeriods: 1,
        TreatMissingData: 'notBreaching',
        AlarmDescription: Match.stringLikeRegexp('Runbook: docs/deploy\\.md#failed-flushes$'),
      });
    }
    const s = synthCarat({ overrides: { alarms: { failedFlushes: 5 } } });
    Template.fromStack(s.monitoring).hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmName: 'carat-test-flusher-failed-flushes', Threshold: 5 });
    const doc = fs.readFileSync(path.resolve(__dirname, '..', '..', 'docs', 'probe-metric.md'), 'utf8');
    expect(doc).toContain('`FailedFlushes`');
  });

  test('head memory: max over the nodes of each shard above 70 % (noeviction: a full node rejects appends)', () => {
    const m = byName('redis-0001-memory');
    expect(m).toMatchObject({ Threshold: 70, ComparisonOperator: 'GreaterThanThreshold' });
    expect(m.Metrics.find((x: any) => x.Expression).Expression).toBe('MAX([mem0,mem1])');
    expect(m.Metrics.filter((x: any) => x.MetricStat).map((x: any) => x.MetricStat.Metric.MetricName))
      .toEqual(['DatabaseMemoryUsagePercentage', 'DatabaseMemoryUsagePercentage']);
    const s = synthCarat({ overrides: { alarms: { redisMemoryPercent: 60 } } });
    Template.fromStack(s.monitoring).hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmName: 'carat-test-redis-0001-memory', Threshold: 60 });
  });

  test('the dashboard no longer graphs DroppedSealedPoints (sealed windows accept points now)', () => {
    expect(JSON.stringify(template.toJSON())).not.toContain('DroppedSealedPoints');
  });

  test('end-to-end latency too high or missing: the probe metric of docs/probe-metric.md', () => {
    expect(byName('end-to-end-latency')).toMatchObject({
      Namespace: 'Carat', MetricName: 'EndToEndLatency', Unit: 'Milliseconds', Statistic: 'Maximum', Period: 60,
      Dimensions: [{ Name: 'Deployment', Value: 'test' }],
      Threshold: 30_000, ComparisonOperator: 'GreaterThanThreshold', EvaluationPeriods: 5, DatapointsToAlarm: 3,
      TreatMissingData: 'breaching',
    });
    const doc = fs.readFileSync(path.resolve(__dirname, '..', '..', 'docs', 'probe-metric.md'), 'utf8');
    for (const fixed of ['`Carat`', '`EndToEndLatency`', '`Milliseconds`', '`Deployment`']) expect(doc).toContain(fixed);
  });

  test('thresholds follow the configuration', () => {
    const s = synthCarat({ overrides: { alarms: { endToEndLatencyMs: 5000, redisEngineCpuPercent: 65, processedPointsPerMinuteMin: 1000 } } });
    const t = Template.fromStack(s.monitoring);
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmName: 'carat-test-end-to-end-latency', Threshold: 5000 });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmName: 'carat-test-redis-0001-engine-cpu', Threshold: 65 });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmName: 'carat-test-processed-points', Threshold: 1000 });
  });

  test('the dashboard graphs each function\'s phase timings (the EMF names of services/writer/src/emf.rs)', () => {
    const body = JSON.stringify(template.toJSON());
    for (const fn of ['writer', 'flusher', 'archiver']) expect(body).toContain(`${fn}: ms per invocation by phase`);
    const emf = fs.readFileSync(path.resolve(__dirname, '..', '..', 'services', 'writer', 'src', 'emf.rs'), 'utf8');
    for (const name of ['AppendMs', 'FlushMs', 'PutMs', 'ArchiveMs']) {
      expect(emf).toContain(`("${name}"`);
      expect(body).toContain(name);
    }
    const handler = fs.readFileSync(path.resolve(__dirname, '..', '..', 'services', 'writer', 'src', 'handler.rs'), 'utf8');
    for (const name of ['DecodeMs', 'TotalMs']) expect(handler).toContain(`("${name}"`);
  });

  test('the dashboard graphs the writer\'s NameSetFailures (the EMF name of services/writer/src/handler.rs)', () => {
    const body = JSON.stringify(template.toJSON());
    expect(body).toContain('NameSetFailures');
    expect(body).toContain('batches stopped: name set not fetched');
    const handler = fs.readFileSync(path.resolve(__dirname, '..', '..', 'services', 'writer', 'src', 'handler.rs'), 'utf8');
    expect(handler).toContain('("NameSetFailures"');
  });

  test('one dashboard', () => {
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    template.hasResourceProperties('AWS::CloudWatch::Dashboard', { DashboardName: 'carat-test' });
  });

  test('functions that land later get their alarms', () => {
    const s = synthCarat({ binaries: ALL_BINARIES });
    const names = Object.values(resources(Template.fromStack(s.monitoring), 'AWS::CloudWatch::Alarm')).map((r) => r.Properties.AlarmName);
    for (const n of ['archiver-errors', 'archiver-iterator-age', 'reader-duration', 'probe-errors']) expect(names).toContain(`carat-test-${n}`);
    expect(findings(s.monitoring)).toEqual([]);
  });

  test('cdk-nag AwsSolutions: no unsuppressed findings', () => {
    expect(findings(synth.monitoring)).toEqual([]);
  });

  test('snapshot', () => {
    expect(template.toJSON()).toMatchSnapshot();
  });
});
