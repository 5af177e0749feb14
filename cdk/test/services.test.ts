import { Match, Template } from 'aws-cdk-lib/assertions';
import { TTL_REMOVAL_FILTER } from '../lib/constructs/archiver';
import { WINDOW_FLUSH_ACTIONS } from '../lib/stacks/services-stack';
import { ALL_BINARIES, findings, resources, synthCarat } from './helpers';

const synth = synthCarat();
const template = Template.fromStack(synth.services);
// Every declared function, as it will be once the archiver, reader and probe binaries land.
const full = synthCarat({ binaries: ALL_BINARIES });
const fullTemplate = Template.fromStack(full.services);

function functionsByBinary(t: Template): Record<string, Record<string, any>[]> {
  const out: Record<string, Record<string, any>[]> = {};
  for (const fn of Object.values(resources(t, 'AWS::Lambda::Function'))) {
    const binary = /^carat \w+/.exec(fn.Properties.Description)?.[0] ?? 'other';
    (out[binary] ??= []).push(fn.Properties);
  }
  return out;
}

describe('Services stack', () => {
  test('one arm64 provided.al2023 function per landed binary (backup writer = writer binary); no archiver, reader or probe yet', () => {
    const fns = Object.values(resources(template, 'AWS::Lambda::Function')).map((r) => r.Properties);
    expect(fns.map((f) => f.Description.split(':')[0]).sort()).toEqual(
      ['carat backup writer', 'carat flusher', 'carat ingest API', 'carat writer'],
    );
    for (const f of fns) {
      expect(f).toMatchObject({ Runtime: 'provided.al2023', Architectures: ['arm64'], Handler: 'bootstrap' });
    }
  });

  test('functions get the resource names and secrets they need as environment', () => {
    const fns = Object.values(resources(template, 'AWS::Lambda::Function')).map((r) => r.Properties);
    const writer = fns.find((f) => f.Description.startsWith('carat writer'))!;
    expect(Object.keys(writer.Environment.Variables).sort()).toEqual(
      ['CARAT_ARCHIVE_BUCKET', 'CARAT_REDIS_AUTH_SECRET_ARN', 'CARAT_REDIS_NODES', 'CARAT_STREAM', 'CARAT_TABLE'],
    );
    expect(JSON.stringify(writer.Environment.Variables.CARAT_REDIS_NODES)).toContain('rediss://');
    expect(JSON.stringify(writer.Environment.Variables.CARAT_REDIS_NODES)).toContain('ConfigurationEndPointAddress');
    const api = fns.find((f) => f.Description.startsWith('carat ingest API'))!;
    expect(Object.keys(api.Environment.Variables).sort()).toEqual(
      ['CARAT_API_KEYS_SECRET_ARN', 'CARAT_ARCHIVE_BUCKET', 'CARAT_STREAM', 'CARAT_TABLE'],
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
    const mappings = Object.values(resources(template, 'AWS::Lambda::EventSourceMapping')).map((r) => r.Properties);
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

  test('flusher runs on a one-minute schedule', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 minute)',
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^FlusherFunction'), 'Arn'] }, RetryPolicy: { MaximumRetryAttempts: 0 } })],
    });
    template.resourceCountIs('AWS::Events::Rule', 1);
  });

  test('HTTP API: POST routes to the ingest function, throttled stage with access logs', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', { ProtocolType: 'HTTP' });
    template.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: 'POST /{proxy+}', AuthorizationType: 'NONE' });
    template.resourceCountIs('AWS::ApiGatewayV2::Route', 1);
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

  test('least privilege: no wildcard actions, no Resource * except ListStreams, ingest may only put records', () => {
    for (const t of [template, fullTemplate]) {
      for (const policy of Object.values(resources(t, 'AWS::IAM::Policy'))) {
        for (const st of policy.Properties.PolicyDocument.Statement) {
          const actions: string[] = [st.Action].flat();
          expect(actions).not.toContain('*');
          for (const a of actions) expect(a).not.toMatch(/^[a-z0-9-]+:\*$/);
          if (st.Resource === '*') expect(actions).toEqual(['dynamodb:ListStreams']);
        }
      }
    }
    const apiPolicy = Object.entries(resources(template, 'AWS::IAM::Policy'))
      .find(([id]) => id.startsWith('ApiFunctionServiceRoleDefaultPolicy'))![1];
    const apiActions = apiPolicy.Properties.PolicyDocument.Statement.flatMap((s: any) => [s.Action].flat()).sort();
    expect(apiActions).toEqual(['kinesis:ListShards', 'kinesis:PutRecord', 'kinesis:PutRecords',
      'secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'].sort());
  });

  test('writer, backup writer and flusher: only the flush actions on the table, and the table key', () => {
    const policies = Object.entries(resources(template, 'AWS::IAM::Policy'));
    for (const role of ['WriterFunction', 'BackupWriterFunction', 'FlusherFunction']) {
      const [, policy] = policies.find(([id]) => id.startsWith(`${role}ServiceRoleDefaultPolicy`))!;
      const statements: any[] = policy.Properties.PolicyDocument.Statement;
      const onTable = statements.filter((st) => JSON.stringify(st.Resource).includes('WindowTable'));
      expect(onTable.flatMap((st) => [st.Action].flat()).sort()).toEqual([...WINDOW_FLUSH_ACTIONS].sort());
      expect([...WINDOW_FLUSH_ACTIONS].sort()).toEqual(
        ['dynamodb:ConditionCheckItem', 'dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'],
      );
      const dynamo = statements.flatMap((st) => [st.Action].flat()).filter((a: string) => a.startsWith('dynamodb:'));
      for (const forbidden of ['dynamodb:BatchWriteItem', 'dynamodb:Scan', 'dynamodb:UpdateTable', 'dynamodb:DeleteTable', 'dynamodb:UpdateItem']) {
        expect(dynamo).not.toContain(forbidden);
      }
      const onKey = statements.filter((st) => JSON.stringify(st.Resource).includes('DataKey'));
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
        BisectBatchOnFunctionError: true,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        FilterCriteria: { Filters: [{ Pattern: TTL_REMOVAL_FILTER.pattern }] },
      });
      expect(JSON.parse(TTL_REMOVAL_FILTER.pattern)).toEqual({
        eventName: ['REMOVE'],
        userIdentity: { type: ['Service'], principalId: ['dynamodb.amazonaws.com'] },
      });
    });

    test('reader: reads the table, never writes it', () => {
      const [, policy] = Object.entries(resources(fullTemplate, 'AWS::IAM::Policy'))
        .find(([id]) => id.startsWith('ReaderFunctionServiceRoleDefaultPolicy'))!;
      const dynamo = policy.Properties.PolicyDocument.Statement.flatMap((st: any) => [st.Action].flat())
        .filter((a: string) => a.startsWith('dynamodb:'));
      expect(dynamo).toEqual(expect.arrayContaining(['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:BatchGetItem']));
      for (const write of ['dynamodb:PutItem', 'dynamodb:DeleteItem', 'dynamodb:BatchWriteItem', 'dynamodb:UpdateItem']) expect(dynamo).not.toContain(write);
    });

    test('reader: GET routes and Graphite POSTs', () => {
      for (const key of ['GET /{proxy+}', 'POST /render', 'POST /metrics/find', 'POST /{proxy+}']) {
        fullTemplate.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: key });
      }
    });

    test('probe: scheduled, knows the API URL and its deployment name', () => {
      const probe = functionsByBinary(fullTemplate)['carat probe'][0];
      expect(probe.Environment.Variables.CARAT_DEPLOYMENT).toBe('test');
      expect(JSON.stringify(probe.Environment.Variables.CARAT_API_URL)).toContain('ApiEndpoint');
      expect(probe.VpcConfig).toBeUndefined();
      fullTemplate.resourceCountIs('AWS::Events::Rule', 2);
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
