import { RemovalPolicy, SecretValue } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elasticache from 'aws-cdk-lib/aws-elasticache';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import type { EnvironmentConfig } from '../config';

export interface HeadClusterProps {
  readonly vpc: ec2.IVpc;
  /** The only security group admitted to the cluster: the one the VPC functions carry. */
  readonly clientSecurityGroup: ec2.ISecurityGroup;
  readonly encryptionKey: kms.IKey;
  readonly redis: EnvironmentConfig['redis'];
  /** Replication group id; node ids derive from it (`<id>-0001-001`), so alarms can name them. */
  readonly replicationGroupId: string;
}

/** Port of the engine. Kept default: see the AwsSolutions-AEC5 suppression in the Storage stack. */
export const HEAD_PORT = 6379;

/**
 * ElastiCache parameter group family of an engine version: `valkey7`, `valkey8`, `redis7`;
 * Redis OSS 6 is the one family spelled with `.x` (`redis6.x`).
 */
export function parameterGroupFamily(engine: string, engineVersion: string): string {
  const major = engineVersion.split('.')[0];
  return engine === 'redis' && major === '6' ? 'redis6.x' : `${engine}${major}`;
}

/**
 * Parameters of the head that differ from the engine's cluster-mode default group.
 * `maxmemory-policy`: the default `volatile-lru` evicts keys with an expiry first, and every
 * head key has one (EXPIREAT past the window's lateness), so a full head would silently drop
 * windows — closed, already flushed ones first. With `noeviction` a full head rejects the
 * append instead: the writer retries, the stream keeps the record, and the memory alarm
 * fires well before that (docs/deploy.md#redis-memory).
 */
export const HEAD_PARAMETERS: Readonly<Record<string, string>> = {
  'cluster-enabled': 'yes',
  'maxmemory-policy': 'noeviction',
};

/**
 * The head: an ElastiCache (Valkey or Redis OSS) replication group in cluster mode that holds
 * the points of open windows. Multi-AZ with automatic failover, TLS in transit, KMS at rest,
 * AUTH token from Secrets Manager, reachable only from `clientSecurityGroup`, and a parameter
 * group of its own (HEAD_PARAMETERS: it never evicts).
 *
 * It is a cache: whatever it loses is rebuilt by replaying Kinesis, so it keeps no snapshots.
 */
export class HeadCluster extends Construct {
  readonly replicationGroup: elasticache.CfnReplicationGroup;
  readonly parameterGroup: elasticache.CfnParameterGroup;
  readonly authSecret: secretsmanager.Secret;
  readonly securityGroup: ec2.SecurityGroup;
  readonly replicationGroupId: string;
  private readonly shards: number;
  private readonly nodesPerShard: number;

  constructor(scope: Construct, id: string, props: HeadClusterProps) {
    super(scope, id);
    this.replicationGroupId = props.replicationGroupId;
    this.shards = props.redis.shards;
    this.nodesPerShard = props.redis.replicasPerShard + 1;

    // ElastiCache AUTH tokens: 16–128 printable characters without @ " / — letters and digits only.
    this.authSecret = new secretsmanager.Secret(this, 'AuthToken', {
      description: `AUTH token of the carat head cluster ${props.replicationGroupId}`,
      generateSecretString: { excludePunctuation: true, passwordLength: 64 },
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'carat head cluster: admits only the carat functions',
      allowAllOutbound: false,
    });
    this.securityGroup.addIngressRule(props.clientSecurityGroup, ec2.Port.tcp(HEAD_PORT), 'carat functions to the head cluster');

    const subnetGroup = new elasticache.CfnSubnetGroup(this, 'Subnets', {
      description: 'carat head cluster: private isolated subnets',
      subnetIds: props.vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_ISOLATED }).subnetIds,
    });

    this.parameterGroup = new elasticache.CfnParameterGroup(this, 'Parameters', {
      cacheParameterGroupFamily: parameterGroupFamily(props.redis.engine, props.redis.engineVersion),
      description: `carat head cluster ${props.replicationGroupId}: cluster mode, noeviction`,
      properties: { ...HEAD_PARAMETERS },
    });
    // Retained with the group that uses it: ElastiCache refuses to delete a group in use.
    this.parameterGroup.applyRemovalPolicy(RemovalPolicy.RETAIN);

    this.replicationGroup = new elasticache.CfnReplicationGroup(this, 'ReplicationGroup', {
      replicationGroupId: props.replicationGroupId,
      replicationGroupDescription: 'carat head: points of open windows',
      engine: props.redis.engine,
      engineVersion: props.redis.engineVersion,
      cacheParameterGroupName: this.parameterGroup.ref,
      cacheNodeType: props.redis.nodeType,
      clusterMode: 'enabled',
      numNodeGroups: props.redis.shards,
      replicasPerNodeGroup: props.redis.replicasPerShard,
      automaticFailoverEnabled: true,
      multiAzEnabled: true,
      transitEncryptionEnabled: true,
      transitEncryptionMode: 'required',
      atRestEncryptionEnabled: true,
      kmsKeyId: props.encryptionKey.keyArn,
      authToken: SecretValue.secretsManager(this.authSecret.secretArn).unsafeUnwrap(),
      cacheSubnetGroupName: subnetGroup.ref,
      securityGroupIds: [this.securityGroup.securityGroupId],
      port: HEAD_PORT,
      // Kinesis is the log: a snapshot would only restore what a replay rebuilds.
      snapshotRetentionLimit: 0,
      autoMinorVersionUpgrade: true,
    });
    this.replicationGroup.applyRemovalPolicy(RemovalPolicy.RETAIN);
  }

  /** The cluster configuration endpoint as the functions take it (CARAT_REDIS_NODES). */
  get nodesUrl(): string {
    return `rediss://${this.replicationGroup.attrConfigurationEndPointAddress}:${this.replicationGroup.attrConfigurationEndPointPort}`;
  }

  /** Cache node ids of shard `shard` (0-based): `<group>-0001-001`, `<group>-0001-002`, … */
  nodeIds(shard: number): string[] {
    const group = String(shard + 1).padStart(4, '0');
    return Array.from({ length: this.nodesPerShard }, (_, i) =>
      `${this.replicationGroupId}-${group}-${String(i + 1).padStart(3, '0')}`);
  }

  get shardCount(): number {
    return this.shards;
  }
}
