import { Match, Template } from 'aws-cdk-lib/assertions';
import { parameterGroupFamily } from '../lib/constructs/head-cluster';
import { findings, resources, synthCarat } from './helpers';

const synth = synthCarat();
const template = Template.fromStack(synth.storage);

describe('Storage stack', () => {
  test('is termination protected', () => {
    expect(synth.storage.terminationProtection).toBe(true);
  });

  test('Kinesis stream: KMS encryption, 7-day retention, shard count from config', () => {
    template.hasResource('AWS::Kinesis::Stream', {
      Properties: {
        ShardCount: 1,
        RetentionPeriodHours: 168,
        StreamEncryption: { EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' },
        StreamModeDetails: { StreamMode: 'PROVISIONED' },
      },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  test('shard count and retention follow the configuration', () => {
    const s = synthCarat({ overrides: { kinesis: { shards: 4, retentionHours: 336 } } });
    Template.fromStack(s.storage).hasResourceProperties('AWS::Kinesis::Stream', { ShardCount: 4, RetentionPeriodHours: 336 });
  });

  test('DynamoDB table: on-demand, pk S / sk N, TTL, NEW_AND_OLD_IMAGES stream, PITR, KMS, retained', () => {
    template.hasResource('AWS::DynamoDB::Table', {
      Properties: {
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }, { AttributeName: 'sk', KeyType: 'RANGE' }],
        AttributeDefinitions: Match.arrayWith([
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'N' },
        ]),
        TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
        StreamSpecification: { StreamViewType: 'NEW_AND_OLD_IMAGES' },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: Match.anyValue() },
        TableClass: 'STANDARD',
        DeletionProtectionEnabled: true,
      },
      DeletionPolicy: 'Retain',
    });
  });

  test('series catalog: on-demand, pk S / sk S, no TTL, no stream, PITR, the data key, retained', () => {
    const tables = Object.entries(resources(template, 'AWS::DynamoDB::Table'));
    expect(tables.map(([id]) => id.replace(/[0-9A-F]{8}$/, '')).sort()).toEqual(['CatalogTable', 'WindowTable']);
    const [, catalog] = tables.find(([id]) => id.startsWith('CatalogTable'))!;
    const [, windows] = tables.find(([id]) => id.startsWith('WindowTable'))!;
    expect(catalog).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    expect(catalog.Properties).toEqual({
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }, { AttributeName: 'sk', KeyType: 'RANGE' }],
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }, { AttributeName: 'sk', AttributeType: 'S' }],
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: { 'Fn::GetAtt': [expect.stringMatching(/^DataKey/), 'Arn'] } },
      TableClass: 'STANDARD',
      DeletionProtectionEnabled: true,
    });
    // The same key as the window table's.
    expect(catalog.Properties.SSESpecification.KMSMasterKeyId).toEqual(windows.Properties.SSESpecification.KMSMasterKeyId);
  });

  test('the table class is selectable, for both tables', () => {
    const s = synthCarat({ overrides: { table: { tableClass: 'STANDARD_INFREQUENT_ACCESS' } } });
    const classes = Object.values(resources(Template.fromStack(s.storage), 'AWS::DynamoDB::Table')).map((t) => t.Properties.TableClass);
    expect(classes).toEqual(['STANDARD_INFREQUENT_ACCESS', 'STANDARD_INFREQUENT_ACCESS']);
  });

  test('data key rotates and is retained', () => {
    template.hasResource('AWS::KMS::Key', { Properties: { EnableKeyRotation: true }, DeletionPolicy: 'Retain' });
  });

  test('archive bucket: encrypted, public access blocked, TLS only, lifecycle to cheaper classes, retained', () => {
    const archive = template.findResources('AWS::S3::Bucket', {
      Properties: { LoggingConfiguration: Match.anyValue() },
    });
    const [id] = Object.keys(archive);
    expect(id).toMatch(/^ArchiveBucket/);
    template.hasResource('AWS::S3::Bucket', {
      Properties: {
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true,
        },
        LifecycleConfiguration: {
          Rules: Match.arrayWith([Match.objectLike({
            Status: 'Enabled',
            Transitions: [
              { StorageClass: 'STANDARD_IA', TransitionInDays: 30 },
              { StorageClass: 'GLACIER_IR', TransitionInDays: 90 },
            ],
          })]),
        },
        LoggingConfiguration: Match.anyValue(),
      },
      DeletionPolicy: 'Retain',
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: id },
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({
          Effect: 'Deny',
          Action: 's3:*',
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        })]),
      },
    });
  });

  test('VPC: private isolated subnets only, no NAT gateway, flow logs, endpoints instead of NAT', () => {
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.resourceCountIs('AWS::EC2::InternetGateway', 0);
    template.resourceCountIs('AWS::EC2::FlowLog', 1);
    const endpoints = Object.values(template.findResources('AWS::EC2::VPCEndpoint'))
      .map((r) => `${r.Properties.VpcEndpointType} ${JSON.stringify(r.Properties.ServiceName).match(/\.(dynamodb|s3|secretsmanager)\b/)?.[1]}`);
    expect(endpoints.sort()).toEqual(['Gateway dynamodb', 'Gateway s3', 'Interface secretsmanager']);
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Interface', PrivateDnsEnabled: true });
    for (const subnet of Object.values(template.findResources('AWS::EC2::Subnet'))) {
      expect(subnet.Properties.MapPublicIpOnLaunch).toBe(false);
    }
  });

  test('head cluster: cluster mode, Multi-AZ, failover, TLS, KMS at rest, AUTH from Secrets Manager', () => {
    template.hasResource('AWS::ElastiCache::ReplicationGroup', {
      Properties: {
        ReplicationGroupId: 'carat-test',
        Engine: 'valkey',
        EngineVersion: '8.0',
        CacheParameterGroupName: { Ref: Match.stringLikeRegexp('^HeadParameters') },
        CacheNodeType: 'cache.t4g.micro',
        ClusterMode: 'enabled',
        NumNodeGroups: 1,
        ReplicasPerNodeGroup: 1,
        AutomaticFailoverEnabled: true,
        MultiAZEnabled: true,
        TransitEncryptionEnabled: true,
        TransitEncryptionMode: 'required',
        AtRestEncryptionEnabled: true,
        KmsKeyId: Match.anyValue(),
        AuthToken: Match.objectLike({ 'Fn::Join': Match.arrayWith([Match.arrayWith(['{{resolve:secretsmanager:'])]) }),
      },
      DeletionPolicy: 'Retain',
    });
  });

  test('head parameter group: cluster mode, noeviction (the default volatile-lru evicts flushed windows), retained, attached by ref', () => {
    template.resourceCountIs('AWS::ElastiCache::ParameterGroup', 1);
    const [[id, group]] = Object.entries(template.findResources('AWS::ElastiCache::ParameterGroup'));
    expect(group).toMatchObject({
      Properties: {
        CacheParameterGroupFamily: 'valkey8',
        Properties: { 'cluster-enabled': 'yes', 'maxmemory-policy': 'noeviction' },
      },
      DeletionPolicy: 'Retain',
    });
    template.hasResourceProperties('AWS::ElastiCache::ReplicationGroup', { CacheParameterGroupName: { Ref: id } });
  });

  test('Redis OSS is selectable, with the parameter group family of its version', () => {
    const s = synthCarat({ overrides: { redis: { engine: 'redis', engineVersion: '7.1', shards: 3, replicasPerShard: 2 } } });
    const t = Template.fromStack(s.storage);
    t.hasResourceProperties('AWS::ElastiCache::ReplicationGroup', {
      Engine: 'redis', CacheParameterGroupName: { Ref: Match.stringLikeRegexp('^HeadParameters') }, NumNodeGroups: 3, ReplicasPerNodeGroup: 2,
    });
    t.hasResourceProperties('AWS::ElastiCache::ParameterGroup', {
      CacheParameterGroupFamily: 'redis7', Properties: Match.objectLike({ 'maxmemory-policy': 'noeviction' }),
    });
  });

  test.each([
    ['valkey', '7.2', 'valkey7'], ['valkey', '8.0', 'valkey8'], ['redis', '6.2', 'redis6.x'], ['redis', '7.1', 'redis7'],
  ])('parameter group family of %s %s is %s', (engine, engineVersion, family) => {
    expect(parameterGroupFamily(engine, engineVersion)).toBe(family);
  });

  test('the head admits only the functions\' security group, on its port', () => {
    const ingress = template.findResources('AWS::EC2::SecurityGroupIngress');
    const toHead = Object.values(ingress).filter((r) => r.Properties.FromPort === 6379);
    expect(toHead).toHaveLength(1);
    expect(toHead[0].Properties).toMatchObject({
      IpProtocol: 'tcp', ToPort: 6379,
      SourceSecurityGroupId: { 'Fn::GetAtt': [expect.stringMatching(/^FunctionSecurityGroup/), 'GroupId'] },
    });
    // No CIDR ingress to anything in the stack.
    for (const sg of Object.values(template.findResources('AWS::EC2::SecurityGroup'))) {
      for (const rule of sg.Properties.SecurityGroupIngress ?? []) {
        expect(rule.CidrIp).toBeUndefined();
      }
    }
  });

  test('the API key store starts empty (no key is valid) and is retained', () => {
    template.hasResource('AWS::SecretsManager::Secret', {
      Properties: { SecretString: '{"keys": []}', Description: Match.stringLikeRegexp('API key store') },
      DeletionPolicy: 'Retain',
    });
  });

  test('the probe key is generated (letters and digits), separate from the key store, and retained', () => {
    template.hasResource('AWS::SecretsManager::Secret', {
      Properties: {
        Description: Match.stringLikeRegexp('probe API key'),
        GenerateSecretString: { PasswordLength: 48, ExcludePunctuation: true, IncludeSpace: false },
      },
      DeletionPolicy: 'Retain',
    });
    template.resourceCountIs('AWS::SecretsManager::Secret', 3); // key store, probe key, head AUTH token
  });

  test('cdk-nag AwsSolutions: no unsuppressed findings', () => {
    expect(findings(synth.storage)).toEqual([]);
  });

  test('snapshot', () => {
    expect(template.toJSON()).toMatchSnapshot();
  });
});
