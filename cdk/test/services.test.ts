import { Match, Template } from 'aws-cdk-lib/assertions';
import { TTL_REMOVAL_FILTER } from '../lib/constructs/archiver';
import { LANDED_BINARIES, READER_ROUTES } from '../lib/names';
import { ARCHIVE_OBJECT_ACTIONS, CATALOG_WRITE_ACTIONS, NAME_SET_PUT_ACTIONS, NAME_SET_READ_ACTIONS, READ_ACTIONS, WINDOW_FLUSH_ACTIONS } from '../lib/stacks/services-stack';
import { deployCarat } from '../lib/carat';
import { ALL_BINARIES, findings, resources, synthCarat, testApp, testConfig } from './helpers';

const synth = synthCarat();
const template = Template.fromStack(synth.services);
// Every declared function (since issue 9 the same as the landed ones).
const full = synthCarat({ binaries: ALL_BINARIES });
const fullTemplate = Template.fromStack(full.services);
// The write path alone, as before the read path landed.
const writeOnly = Template.fromStack(synthCarat({ binaries: ['carat-api', 'carat-writer', 'carat-flusher'] }).services);

/** The statements of the default policy of the role of the function whose logical id starts with `fnId`. */
function statements(t: Template, fnId: string): any[] {
  const found = Object.entries(resources(t, 'AWS::IAM::Policy')).find(([id]) => id.startsWith(`${fnId}ServiceRoleDefaultPolicy`));
  expect(found).toBeDefined();
  return found![1].Properties.PolicyDocument.Statement;
}

/** The actions of `sts` whose Resource mentions `resource` (a logical id prefix). */
function actionsOn(sts: any[], resource: string): string[] {
  return sts.filter((st) => JSON.stringify(st.Resource).includes(resource)).flatMap((st) => [st.Action].flat()).sort();
}

function envOf(t: Template, description: string): Record<string, unknown> {
  const fn = Object.values(resources(t, 'AWS::Lambda::Function')).map((r) => r.Properties)
    .find((f) => f.Description.startsWith(description));
  expect(fn).toBeDefined();
  return fn!.Environment.Variables;
}

function functionsByBinary(t: Template): Record<string, Record<string, any>[]> {
  const out: Record<string, Record<string, any>[]> = {};
  for (const fn of Object.values(resources(t, 'AWS::Lambda::Function'))) {
    const binary = /^carat \w+/.exec(fn.Properties.Description)?.[0] ?? 'other';
    (out[binary] ??= []).push(fn.Properties);
  }
  return out;
}

describe('Services stack', () => {
  test('one arm64 provided.al2023 function per landed binary (backup writer = writer binary); every binary has landed', () => {
    expect([...LANDED_BINARIES].sort()).toEqual([...ALL_BINARIES].sort());
    const fns = Object.values(resources(template, 'AWS::Lambda::Function')).map((r) => r.Properties);
    expect(fns.map((f) => f.Description.split(':')[0]).sort()).toEqual(
      ['carat archiver', 'carat backup writer', 'carat flusher', 'carat ingest API', 'carat probe', 'carat reader', 'carat writer'],
    );
    for (const f of fns) {
      expect(f).toMatchObject({ Runtime: 'provided.al2023', Architectures: ['arm64'], Handler: 'bootstrap' });
    }
  });

  test('every function has active X-Ray tracing, and its role may send segments', () => {
    const fns = Object.entries(resources(fullTemplate, 'AWS::Lambda::Function'));
    expect(fns.length).toBeGreaterThanOrEqual(6);
    for (const [id, fn] of fns) {
      expect([id, fn.Properties.TracingConfig]).toEqual([id, { Mode: 'Active' }]);
    }
    for (const fnId of ['WriterFunction', 'FlusherFunction']) {
      const found = Object.entries(resources(fullTemplate, 'AWS::IAM::Policy')).find(([pid]) => pid.startsWith(fnId));
      const actions = JSON.stringify(found![1].Properties.PolicyDocument.Statement);
      expect(actions).toContain('xray:PutTraceSegments');
    }
    // The nag suppression of `Resource::*` (lib/nag.ts XRAY_WILDCARD) may excuse X-Ray only.
    for (const [pid, policy] of Object.entries(resources(fullTemplate, 'AWS::IAM::Policy'))) {
      for (const st of policy.Properties.PolicyDocument.Statement) {
        if (st.Resource !== '*') continue;
        const actions = [st.Action].flat().sort();
        // dynamodb:ListStreams is the other `*` (archiver.ts, its own suppression).
        if (actions[0] !== 'dynamodb:ListStreams') expect([pid, actions]).toEqual([pid, ['xray:PutTelemetryRecords', 'xray:PutTraceSegments']]);
      }
    }
  });

  test('functions get the resource names and secrets they need as environment', () => {
    const fns = Object.values(resources(template, 'AWS::Lambda::Function')).map((r) => r.Properties);
    const writer = fns.find((f) => f.Description.startsWith('carat writer'))!;
    const writerVars = ['CARAT_ARCHIVE_BUCKET', 'CARAT_CATALOG_TABLE', 'CARAT_REDIS_AUTH_SECRET_ARN', 'CARAT_REDIS_NODES', 'CARAT_STREAM', 'CARAT_TABLE'];
    expect(Object.keys(writer.Environment.Variables).sort()).toEqual(writerVars);
    expect(Object.keys(envOf(template, 'carat backup writer')).sort()).toEqual(writerVars);
    expect(Object.keys(envOf(template, 'carat flusher')).sort()).toEqual(writerVars);
    expect(JSON.stringify(writer.Environment.Variables.CARAT_CATALOG_TABLE)).toContain('CatalogTable');
    expect(Object.keys(envOf(template, 'carat reader')).sort()).toEqual([
      'CARAT_API_KEYS_SECRET_ARN', 'CARAT_ARCHIVE_BUCKET', 'CARAT_CATALOG_TABLE', 'CARAT_REDIS_AUTH_SECRET_ARN', 'CARAT_REDIS_NODES',
      'CARAT_STREAM', 'CARAT_TABLE',
    ]);
    expect(Object.keys(envOf(template, 'carat archiver')).sort()).toEqual(['CARAT_ARCHIVE_BUCKET', 'CARAT_STREAM', 'CARAT_TABLE']);
    // The probe has its own key, not the key store (which holds hashes only).
    expect(Object.keys(envOf(template, 'carat probe')).sort()).toEqual([
      'CARAT_API_URL', 'CARAT_ARCHIVE_BUCKET', 'CARAT_DEPLOYMENT', 'CARAT_PROBE_API_KEY_SECRET_ARN', 'CARAT_STREAM', 'CARAT_TABLE',
    ]);
    expect(JSON.stringify(writer.Environment.Variables.CARAT_REDIS_NODES)).toContain('rediss://');
    expect(JSON.stringify(writer.Environment.Variables.CARAT_REDIS_NODES)).toContain('ConfigurationEndPointAddress');
    const api = fns.find((f) => f.Description.startsWith('carat ingest API'))!;
    expect(Object.keys(api.Environment.Variables).sort()).toEqual(
      ['CARAT_API_KEYS_SECRET_ARN', 'CARAT_ARCHIVE_BUCKET', 'CARAT_CATALOG_TABLE', 'CARAT_STREAM', 'CARAT_TABLE'],
    );
    expect(api.VpcConfig).toBeUndefined();
    expect(writer.VpcConfig.SubnetIds).toBeDefined();
  });

  test('CARAT_CONFIG carries the configured TOML', () => {
    const s = synthCarat({ overrides: { serviceConfigToml: '[window]\nraw_secs = 3600\n' } });
    Template.fromStack(s.services).allResourcesProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ CARAT_CONFIG: '[window]\nraw_secs = 3600\n' }) },
    });
  });

  test('writer Kinesis mapping: batching, parallelization, bisect, batch item failures, unlimited retries and age, on-failure queue', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: { Ref: Match.stringLikeRegexp('^WriterFunction') },
      StartingPosition: 'TRIM_HORIZON',
      BatchSize: 100,
      MaximumBatchingWindowInSeconds: 1,
      ParallelizationFactor: 1,
      BisectBatchOnFunctionError: true,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      // Never give up on acknowledged points: retry until the record leaves the stream.
      MaximumRetryAttempts: -1,
      MaximumRecordAgeInSeconds: -1,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [Match.stringLikeRegexp('^MappingFailures'), 'Arn'] } } },
    });
  });

  test('backup writer: a second, disabled mapping on the same stream, starting where configured', () => {
    const mappings = Object.values(resources(template, 'AWS::Lambda::EventSourceMapping')).map((r) => r.Properties)
      .filter((m) => JSON.stringify(m.EventSourceArn).includes('PointStream'));
    expect(mappings).toHaveLength(2);
    expect(mappings[0].EventSourceArn).toEqual(mappings[1].EventSourceArn);
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: { Ref: Match.stringLikeRegexp('^BackupWriterFunction') },
      Enabled: false,
      StartingPosition: 'TRIM_HORIZON',
      BisectBatchOnFunctionError: true,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      MaximumRetryAttempts: -1,
      MaximumRecordAgeInSeconds: -1,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [Match.stringLikeRegexp('^MappingFailures'), 'Arn'] } } },
    });
    const atTime = synthCarat({
      overrides: { backupReplay: { enabled: true, startingPosition: 'AT_TIMESTAMP', startingTimestamp: '2026-11-20T00:00:00Z' } },
    });
    Template.fromStack(atTime.services).hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: { Ref: Match.stringLikeRegexp('^BackupWriterFunction') },
      Enabled: true,
      StartingPosition: 'AT_TIMESTAMP',
      StartingPositionTimestamp: Date.parse('2026-11-20T00:00:00Z') / 1000,
    });
  });

  test('mapping settings follow the configuration', () => {
    const s = synthCarat({
      overrides: { writer: { batchSize: 500, maxBatchingWindowSeconds: 5, parallelizationFactor: 4, retryAttempts: 10, maxRecordAgeSeconds: 3600 } },
    });
    for (const fn of ['^WriterFunction', '^BackupWriterFunction']) {
      Template.fromStack(s.services).hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        FunctionName: { Ref: Match.stringLikeRegexp(fn) },
        BatchSize: 500, MaximumBatchingWindowInSeconds: 5, ParallelizationFactor: 4, MaximumRetryAttempts: 10, MaximumRecordAgeInSeconds: 3600,
      });
    }
  });

  test('failure queue: encrypted, TLS only', () => {
    template.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true, MessageRetentionPeriod: 1_209_600 });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
  });

  test('schedules: flusher and probe every minute, archive compaction hourly, none retried, the plain Scheduled Event', () => {
    const rules = Object.values(resources(template, 'AWS::Events::Rule')).map((r) => r.Properties);
    const byTarget = Object.fromEntries(rules.map((r) => {
      expect(r.Targets).toHaveLength(1);
      return [r.Targets[0].Arn['Fn::GetAtt'][0].replace(/[0-9A-F]{8}$/, ''), r];
    }));
    expect(Object.keys(byTarget).sort()).toEqual(['ArchiveArchiverFunction', 'EndToEndProbeFunction', 'FlusherFunction']);
    expect(byTarget.FlusherFunction.ScheduleExpression).toBe('rate(1 minute)');
    expect(byTarget.EndToEndProbeFunction.ScheduleExpression).toBe('rate(1 minute)');
    expect(byTarget.ArchiveArchiverFunction.ScheduleExpression).toBe('rate(1 hour)');
    for (const r of rules) {
      expect(r.State).toBe('ENABLED');
      expect(r.Targets[0].RetryPolicy).toEqual({ MaximumRetryAttempts: 0 });
      // No Input: the function receives EventBridge's standard "Scheduled Event" JSON, which
      // is how the archiver tells a compaction run from a stream batch.
      expect(r.Targets[0].Input).toBeUndefined();
      expect(r.Targets[0].InputTransformer).toBeUndefined();
    }
    const s = synthCarat({ overrides: { archiver: { compactionScheduleMinutes: 15 }, probe: { scheduleMinutes: 5 } } });
    const t = Template.fromStack(s.services);
    t.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(15 minutes)', Description: 'carat archive compaction' });
    t.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(5 minutes)', Description: 'carat end-to-end probe' });
  });

  test('HTTP API: ingest under POST /{proxy+}, the read APIs (GET and their POST forms) to the reader', () => {
    const routes = Object.values(resources(template, 'AWS::ApiGatewayV2::Route')).map((r) => r.Properties);
    expect(routes.map((r) => r.RouteKey).sort()).toEqual([
      'GET /',
      'GET /api/v0/hosts/{hostId}/metric-names',
      'GET /api/v0/hosts/{hostId}/metrics',
      'GET /api/v0/services/{service}/metric-names',
      'GET /api/v0/services/{service}/metrics',
      'GET /api/v0/tsdb/latest',
      'GET /api/v1/label/{name}/values',
      'GET /api/v1/labels',
      'GET /api/v1/metadata',
      'GET /api/v1/names',
      'GET /api/v1/points',
      'GET /api/v1/query',
      'GET /api/v1/query_exemplars',
      'GET /api/v1/query_range',
      'GET /api/v1/series',
      'GET /api/v1/status/buildinfo',
      'GET /metrics/expand',
      'GET /metrics/find',
      'GET /page/{asset}',
      'GET /render',
      'GET /version',
      'POST /api/v1/labels',
      'POST /api/v1/query',
      'POST /api/v1/query_exemplars',
      'POST /api/v1/query_range',
      'POST /api/v1/read',
      'POST /api/v1/series',
      'POST /metrics/expand',
      'POST /metrics/find',
      'POST /render',
      'POST /{proxy+}',
    ]);
    const ingest = 'POST /{proxy+}';
    expect([...READER_ROUTES].sort()).toEqual(routes.map((r) => r.RouteKey).filter((k) => k !== ingest).sort());
    // Each route's integration invokes the right function.
    const integrations = resources(template, 'AWS::ApiGatewayV2::Integration');
    const target = (route: any): string => {
      const integrationId = route.Target['Fn::Join'][1][1].Ref;
      return JSON.stringify(integrations[integrationId].Properties.IntegrationUri);
    };
    for (const r of routes) {
      expect(r.AuthorizationType).toBe('NONE');
      expect(target(r)).toContain(r.RouteKey === ingest ? 'ApiFunction' : 'ReaderFunction');
    }
    // Before the read path: the ingest route alone.
    expect(Object.values(resources(writeOnly, 'AWS::ApiGatewayV2::Route')).map((r) => r.Properties.RouteKey)).toEqual(['POST /{proxy+}']);
  });

  test('HTTP API: throttled stage with access logs', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', { ProtocolType: 'HTTP' });
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200 },
      AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.anyValue() },
    });
    template.hasOutput('ApiUrl', {});
  });

  test('custom API domain when configured', () => {
    const s = synthCarat({
      overrides: { api: { domainName: 'carat.example.com', certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/abc' } },
    });
    const t = Template.fromStack(s.services);
    t.hasResourceProperties('AWS::ApiGatewayV2::DomainName', { DomainName: 'carat.example.com' });
    t.hasOutput('ApiUrl', { Value: 'https://carat.example.com' });
  });

  test('least privilege: no wildcard actions, no Resource * except ListStreams and X-Ray, ingest may only put records', () => {
    for (const t of [template, fullTemplate]) {
      for (const policy of Object.values(resources(t, 'AWS::IAM::Policy'))) {
        for (const st of policy.Properties.PolicyDocument.Statement) {
          const actions: string[] = [st.Action].flat();
          expect(actions).not.toContain('*');
          for (const a of actions) expect(a).not.toMatch(/^[a-z0-9-]+:\*$/);
          // X-Ray's two actions take no resource (lib/nag.ts XRAY_WILDCARD).
          if (st.Resource === '*') expect([['dynamodb:ListStreams'], ['xray:PutTelemetryRecords', 'xray:PutTraceSegments']]).toContainEqual([...actions].sort());
        }
      }
    }
    const apiPolicy = Object.entries(resources(template, 'AWS::IAM::Policy'))
      .find(([id]) => id.startsWith('ApiFunctionServiceRoleDefaultPolicy'))![1];
    const apiActions = apiPolicy.Properties.PolicyDocument.Statement.flatMap((s: any) => [s.Action].flat()).sort();
    expect(apiActions).toEqual(['dynamodb:PutItem', 'kinesis:ListShards', 'kinesis:PutRecord', 'kinesis:PutRecords',
      'secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments'].sort());
  });

  test('writer, backup writer and flusher: only the flush actions on the table, and the table key', () => {
    for (const role of ['WriterFunction', 'BackupWriterFunction', 'FlusherFunction']) {
      const sts = statements(template, role);
      expect(actionsOn(sts, 'WindowTable')).toEqual([...WINDOW_FLUSH_ACTIONS].sort());
      expect([...WINDOW_FLUSH_ACTIONS].sort()).toEqual(
        ['dynamodb:ConditionCheckItem', 'dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'],
      );
      const onWindows = actionsOn(sts, 'WindowTable');
      for (const forbidden of ['dynamodb:BatchWriteItem', 'dynamodb:Scan', 'dynamodb:UpdateTable', 'dynamodb:DeleteTable', 'dynamodb:UpdateItem']) {
        expect(onWindows).not.toContain(forbidden);
      }
      const onKey = sts.filter((st) => JSON.stringify(st.Resource).includes('DataKey'));
      expect(onKey.flatMap((st) => [st.Action].flat()).sort()).toEqual(['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey*']);
    }
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyName: Match.stringLikeRegexp('^WriterFunctionServiceRoleDefaultPolicy'),
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({
        Effect: 'Allow',
        Action: ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:DeleteItem', 'dynamodb:ConditionCheckItem'],
        Resource: { 'Fn::ImportValue': Match.stringLikeRegexp('WindowTable.*Arn') },
      })]) },
    });
  });

  test('series catalog: writer and backup writer record series (update, batch write, put), nothing else touches it but the reader', () => {
    expect([...CATALOG_WRITE_ACTIONS].sort()).toEqual(['dynamodb:BatchWriteItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem']);
    for (const role of ['WriterFunction', 'BackupWriterFunction']) {
      expect(actionsOn(statements(template, role), 'CatalogTable'))
        .toEqual([...CATALOG_WRITE_ACTIONS, ...NAME_SET_READ_ACTIONS].sort());
    }
    for (const role of ['FlusherFunction', 'ArchiveArchiverFunction', 'EndToEndProbeFunction']) {
      expect(actionsOn(statements(template, role), 'CatalogTable')).toEqual([]);
    }
  });

  test('name sets: the API may only put items under <tenant>##names, and is deployed after the writers', () => {
    const sts = statements(template, 'ApiFunction');
    expect(actionsOn(sts, 'CatalogTable')).toEqual([...NAME_SET_PUT_ACTIONS]);
    const onCatalog = sts.filter((st) => JSON.stringify(st.Resource).includes('CatalogTable'));
    expect(onCatalog).toHaveLength(1);
    expect(onCatalog[0].Condition).toEqual({ 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['*##names'] } });
    const [, apiFn] = Object.entries(resources(template, 'AWS::Lambda::Function'))
      .find(([id]) => id.startsWith('ApiFunction'))!;
    const dependsOn: string[] = [(apiFn as { DependsOn?: string | string[] }).DependsOn ?? []].flat();
    expect(dependsOn.some((d) => d.startsWith('WriterFunction'))).toBe(true);
    expect(dependsOn.some((d) => d.startsWith('BackupWriterFunction'))).toBe(true);
    expect(Object.keys(apiFn.Properties.Environment.Variables)).toContain('CARAT_CATALOG_TABLE');
  });

  describe('once every binary has landed', () => {
    test('each of archiver, reader and probe is one more function', () => {
      const byBinary = functionsByBinary(fullTemplate);
      expect(Object.keys(byBinary).sort()).toEqual(
        ['carat archiver', 'carat backup', 'carat flusher', 'carat ingest', 'carat probe', 'carat reader', 'carat writer'],
      );
    });

    test('archiver: DynamoDB-stream mapping filtered to TTL removals only', () => {
      fullTemplate.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        FunctionName: { Ref: Match.stringLikeRegexp('^ArchiveArchiverFunction') },
        EventSourceArn: Match.anyValue(),
        StartingPosition: 'TRIM_HORIZON',
        // Large batches: one staged S3 object per tenant-day of a batch (docs/BENCHMARKS.md, "Archive").
        BatchSize: 1000,
        MaximumBatchingWindowInSeconds: 60,
        BisectBatchOnFunctionError: true,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        FilterCriteria: { Filters: [{ Pattern: TTL_REMOVAL_FILTER.pattern }] },
      });
      expect(JSON.parse(TTL_REMOVAL_FILTER.pattern)).toEqual({
        eventName: ['REMOVE'],
        userIdentity: { type: ['Service'], principalId: ['dynamodb.amazonaws.com'] },
      });
      // The mapping reads the window table's stream, not the catalog's (which has none).
      const mapping = Object.values(resources(fullTemplate, 'AWS::Lambda::EventSourceMapping')).map((r) => r.Properties)
        .find((m) => JSON.stringify(m.FunctionName).includes('ArchiveArchiverFunction'))!;
      expect(JSON.stringify(mapping.EventSourceArn)).toContain('WindowTable');
      expect(JSON.stringify(mapping.EventSourceArn)).toContain('StreamArn');
    });

    test('archiver: puts, gets and deletes archive objects, lists the bucket, nothing else on S3; reads only the stream', () => {
      expect([...ARCHIVE_OBJECT_ACTIONS].sort()).toEqual(['s3:DeleteObject', 's3:GetObject', 's3:PutObject']);
      const sts = statements(fullTemplate, 'ArchiveArchiverFunction');
      const s3Statements = sts.filter((st) => [st.Action].flat().some((a: string) => a.startsWith('s3:')));
      expect(s3Statements).toHaveLength(2);
      const objects = s3Statements.find((st) => JSON.stringify(st.Resource).includes('/*'))!;
      expect([objects.Action].flat().sort()).toEqual([...ARCHIVE_OBJECT_ACTIONS].sort());
      expect(JSON.stringify(objects.Resource)).toContain('ArchiveBucket');
      const bucket = s3Statements.find((st) => !JSON.stringify(st.Resource).includes('/*'))!;
      expect(bucket.Action).toBe('s3:ListBucket');
      expect(JSON.stringify(bucket.Resource)).toContain('ArchiveBucket');
      const dynamo = sts.flatMap((st) => [st.Action].flat()).filter((a: string) => a.startsWith('dynamodb:')).sort();
      expect(dynamo).toEqual(['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator', 'dynamodb:ListStreams']);
    });

    test('reader: Query, GetItem, BatchGetItem on both tables, Decrypt with their key, GetObject and ListBucket on the archive; nothing else', () => {
      expect([...READ_ACTIONS].sort()).toEqual(['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:Query']);
      const sts = statements(fullTemplate, 'ReaderFunction');
      const dynamo = sts.filter((st) => [st.Action].flat().some((a: string) => a.startsWith('dynamodb:')));
      expect(dynamo).toHaveLength(1);
      expect([dynamo[0].Action].flat().sort()).toEqual([...READ_ACTIONS].sort());
      expect(dynamo[0].Resource).toHaveLength(2);
      expect(JSON.stringify(dynamo[0].Resource[0])).toContain('WindowTable');
      expect(JSON.stringify(dynamo[0].Resource[1])).toContain('CatalogTable');
      expect(actionsOn(sts, 'DataKey')).toEqual(['kms:Decrypt', 'kms:DescribeKey']);
      const s3 = sts.filter((st) => [st.Action].flat().some((a: string) => a.startsWith('s3:')));
      expect(s3.map((st) => [[st.Action].flat().join(','), JSON.stringify(st.Resource).includes('/*')]).sort()).toEqual([
        ['s3:GetObject', true], ['s3:ListBucket', false],
      ]);
      for (const st of s3) expect(JSON.stringify(st.Resource)).toContain('ArchiveBucket');
      // The reader's other grants: the head's AUTH token and the key store.
      const secrets = sts.filter((st) => [st.Action].flat().some((a: string) => a.startsWith('secretsmanager:')));
      expect(secrets.map((st) => JSON.stringify(st.Resource)).sort().join(' ')).toMatch(/ApiKeys.*AuthToken|AuthToken.*ApiKeys/);
      expect(sts.flatMap((st) => [st.Action].flat()).filter((a: string) => !/^(dynamodb|kms|s3|secretsmanager):/.test(a)).sort()).toEqual(['xray:PutTelemetryRecords', 'xray:PutTraceSegments']);
    });

    test('probe: a fixed name, outside the VPC, knows the API URL, its deployment and its own key; reads only that key', () => {
      const probe = functionsByBinary(fullTemplate)['carat probe'][0];
      expect(probe.FunctionName).toBe('carat-test-probe');
      expect(probe.Environment.Variables.CARAT_DEPLOYMENT).toBe('test');
      expect(JSON.stringify(probe.Environment.Variables.CARAT_API_URL)).toContain('ApiEndpoint');
      expect(JSON.stringify(probe.Environment.Variables.CARAT_PROBE_API_KEY_SECRET_ARN)).toContain('ProbeApiKey');
      expect(probe.VpcConfig).toBeUndefined();
      const sts = statements(fullTemplate, 'EndToEndProbeFunction');
      expect(sts.map((st) => [st.Action].flat()).flat().sort()).toEqual(['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments']);
      expect(JSON.stringify(sts)).toContain('ProbeApiKey');
      expect(JSON.stringify(sts)).not.toContain('ApiKeys');
      fullTemplate.hasOutput('ProbeFunctionName', { Value: { Ref: Match.stringLikeRegexp('^EndToEndProbeFunction') } });
      // No account principal may invoke it unless the pipeline's account is another one.
      const accountPrincipals = (t: Template): any[] => Object.values(resources(t, 'AWS::Lambda::Permission'))
        .map((r) => r.Properties).filter((p) => /^\d{12}$/.test(String(p.Principal)));
      expect(accountPrincipals(fullTemplate)).toEqual([]);
      const app = testApp();
      const config = testConfig().environments.test;
      const stacks = deployCarat(app, { deployment: 'test', config, probeInvokerAccount: '111111111111' });
      expect(accountPrincipals(Template.fromStack(stacks.services))).toEqual([{
        Action: 'lambda:InvokeFunction',
        FunctionName: { 'Fn::GetAtt': [expect.stringMatching(/^EndToEndProbeFunction/), 'Arn'] },
        Principal: '111111111111',
      }]);
    });

    test('cdk-nag AwsSolutions: no unsuppressed findings', () => {
      expect(findings(full.services)).toEqual([]);
    });
  });

  test('cdk-nag AwsSolutions: no unsuppressed findings', () => {
    expect(findings(synth.services)).toEqual([]);
  });

  test('snapshot', () => {
    expect(template.toJSON()).toMatchSnapshot();
  });
});
