import { Duration, RemovalPolicy, SecretValue, Stack, StackProps } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import type { EnvironmentConfig } from '../config';
import { HeadCluster } from '../constructs/head-cluster';

export interface StorageStackProps extends StackProps {
  /** Name of the deployment (the configuration environment); names the head cluster. */
  readonly deployment: string;
  readonly config: EnvironmentConfig;
}

/**
 * Everything that holds data: the log (Kinesis), the window table and the series catalog
 * (DynamoDB), the archive (S3), the head (ElastiCache) and the network they live in. Stateful: termination
 * protection on, every data resource RETAINed when the stack or resource goes away.
 */
export class StorageStack extends Stack {
  /** Customer-managed key of the window table, the series catalog and the head cluster. */
  readonly dataKey: kms.Key;
  readonly stream: kinesis.Stream;
  readonly table: dynamodb.Table;
  /**
   * The series catalog (pk S, sk S): every series of a tenant with its labels, written by
   * the writer at most once per new series per day, listed by the reader with one Query.
   */
  readonly catalogTable: dynamodb.Table;
  readonly archiveBucket: s3.Bucket;
  readonly logBucket: s3.Bucket;
  readonly vpc: ec2.Vpc;
  /** Carried by the functions that reach the head; the head admits only it. */
  readonly functionSecurityGroup: ec2.SecurityGroup;
  readonly head: HeadCluster;
  /** API keys of the ingest and read APIs; the operator puts the keys in (docs/deploy.md). */
  readonly apiKeysSecret: secretsmanager.Secret;
  /**
   * The end-to-end probe's own API key, as a plain string generated at deployment; the
   * operator puts its hash in the key store under the name `probe` (docs/deploy.md).
   */
  readonly probeApiKeySecret: secretsmanager.Secret;

  constructor(scope: Construct, id: string, props: StorageStackProps) {
    super(scope, id, { ...props, terminationProtection: true });
    const cfg = props.config;

    this.dataKey = new kms.Key(this, 'DataKey', {
      description: 'carat: encrypts the window table, the series catalog and the head cluster',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.stream = new kinesis.Stream(this, 'PointStream', {
      streamMode: kinesis.StreamMode.PROVISIONED,
      shardCount: cfg.kinesis.shards,
      retentionPeriod: Duration.hours(cfg.kinesis.retentionHours),
      // KMS with the AWS managed key (aws/kinesis): no key fee, no KMS requests billed per
      // producer and consumer, nothing for the functions to be granted.
      encryption: kinesis.StreamEncryption.MANAGED,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.table = new dynamodb.Table(this, 'WindowTable', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.NUMBER },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'ttl',
      stream: dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: this.dataKey,
      tableClass: dynamodb.TableClass[cfg.table.tableClass],
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // As the window table (key, recovery, class, protection), without TTL or stream: catalog
    // entries are not archived, and a series stays listed as long as it has data.
    this.catalogTable = new dynamodb.Table(this, 'CatalogTable', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: this.dataKey,
      tableClass: dynamodb.TableClass[cfg.table.tableClass],
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.logBucket = new s3.Bucket(this, 'LogBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ id: 'expire-logs', expiration: Duration.days(365) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    NagSuppressions.addResourceSuppressions(this.logBucket, [
      { id: 'AwsSolutions-S1', reason: 'This is the access-log bucket itself; logging it into itself would loop.' },
    ]);

    const archiveRules: s3.LifecycleRule[] = [
      {
        id: 'archive-tiers',
        transitions: [
          { storageClass: s3.StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(cfg.archive.infrequentAccessAfterDays) },
          { storageClass: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL, transitionAfter: Duration.days(cfg.archive.glacierInstantRetrievalAfterDays) },
        ],
        expiration: cfg.archive.expireAfterDays === undefined ? undefined : Duration.days(cfg.archive.expireAfterDays),
      },
      { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
    ];
    this.archiveBucket = new s3.Bucket(this, 'ArchiveBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: false,
      lifecycleRules: archiveRules,
      serverAccessLogsBucket: this.logBucket,
      serverAccessLogsPrefix: 'archive-access/',
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // Private isolated subnets only: the functions reach AWS through VPC endpoints, so no NAT
    // gateway (~$33/month each) is needed.
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(cfg.vpc.cidr),
      maxAzs: cfg.vpc.maxAzs,
      natGateways: 0,
      subnetConfiguration: [{ name: 'private', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 22 }],
      restrictDefaultSecurityGroup: false,
      flowLogs: {
        s3: { destination: ec2.FlowLogDestination.toS3(this.logBucket, 'vpc-flow-logs/'), trafficType: ec2.FlowLogTrafficType.ALL },
      },
    });

    this.functionSecurityGroup = new ec2.SecurityGroup(this, 'FunctionSecurityGroup', {
      vpc: this.vpc,
      description: 'carat functions inside the VPC (writer, flusher, reader)',
      // Egress stays open: the subnets have no route out except the VPC endpoints and the head.
      allowAllOutbound: true,
    });

    const isolated = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
    this.vpc.addGatewayEndpoint('DynamoDbEndpoint', { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB, subnets: [isolated] });
    this.vpc.addGatewayEndpoint('S3Endpoint', { service: ec2.GatewayVpcEndpointAwsService.S3, subnets: [isolated] });
    const secretsEndpoint = this.vpc.addInterfaceEndpoint('SecretsManagerEndpoint', {
      service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
      subnets: isolated,
      privateDnsEnabled: true,
      open: false,
    });
    secretsEndpoint.connections.allowFrom(this.functionSecurityGroup, ec2.Port.tcp(443), 'carat functions to Secrets Manager');

    this.head = new HeadCluster(this, 'Head', {
      vpc: this.vpc,
      clientSecurityGroup: this.functionSecurityGroup,
      encryptionKey: this.dataKey,
      redis: cfg.redis,
      replicationGroupId: `carat-${props.deployment}`,
    });
    NagSuppressions.addResourceSuppressions(this.head, [
      {
        id: 'AwsSolutions-AEC5',
        reason: 'Default port kept: the group sits in private isolated subnets, admits only the functions\' security group, and requires TLS and AUTH; a non-default port adds no protection.',
      },
      {
        id: 'AwsSolutions-SMG4',
        reason: 'The AUTH token is rotated by the operator with ModifyReplicationGroup (AuthTokenUpdateStrategy ROTATE, then SET), as described in docs/deploy.md; automatic rotation would need a rotation function that coordinates both steps.',
      },
    ], true);

    this.apiKeysSecret = new secretsmanager.Secret(this, 'ApiKeys', {
      description: 'carat API key store (docs/api.md "Key store": SHA-256 of each key, tenant, scopes); written by the operator',
      // Starts as an empty store (no key is valid) so the functions start and answer 401; it holds
      // only hashes, and CloudFormation does not touch the value again unless this text changes.
      secretStringValue: SecretValue.unsafePlainText('{"keys": []}'),
      removalPolicy: RemovalPolicy.RETAIN,
    });
    NagSuppressions.addResourceSuppressions(this.apiKeysSecret, [
      { id: 'AwsSolutions-SMG4', reason: 'API keys are issued and revoked by the operator (docs/deploy.md); there is no credential on the other side to rotate against.' },
    ]);

    this.probeApiKeySecret = new secretsmanager.Secret(this, 'ProbeApiKey', {
      description: 'carat end-to-end probe API key (plain string); its SHA-256 goes into the ApiKeys store under the name "probe" with the write and read scopes (docs/deploy.md)',
      // Letters and digits only: the key travels in an X-Api-Key header as it is.
      generateSecretString: { passwordLength: 48, excludePunctuation: true, includeSpace: false },
      removalPolicy: RemovalPolicy.RETAIN,
    });
    NagSuppressions.addResourceSuppressions(this.probeApiKeySecret, [
      { id: 'AwsSolutions-SMG4', reason: 'Rotating the probe key means changing its hash in the ApiKeys store in the same step, which the operator does by hand (docs/deploy.md, "Rotating the probe key"); a rotation function alone would lock the probe out.' },
    ]);
  }
}
