import { CfnOutput, Duration, Stack, StackProps } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { KinesisEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import type { EnvironmentConfig } from '../config';
import { Archiver } from '../constructs/archiver';
import { CaratFunction } from '../constructs/carat-function';
import { EndToEndProbe } from '../constructs/end-to-end-probe';
import { Binary, ENV, LANDED_BINARIES, READER_ROUTES } from '../names';
import { suppressFunctionRole } from '../nag';
import { StorageStack } from './storage-stack';

export interface ServicesStackProps extends StackProps {
  readonly deployment: string;
  readonly config: EnvironmentConfig;
  readonly storage: StorageStack;
  /** Binaries to deploy; default LANDED_BINARIES (tests pass all to check what is declared). */
  readonly binaries?: readonly Binary[];
  /**
   * Another account allowed to invoke the probe function (the pipeline's, for the staging
   * check); the pipeline role's own policy names the function too.
   */
  readonly probeInvokerAccount?: string;
}

/**
 * What a flush does to the window table (writer, backup writer, flusher): read the stored
 * window (GetItem, consistent Query over its parts), merge, write it back conditionally
 * (PutItem with a ConditionExpression; DeleteItem of parts a window no longer needs), and
 * for a window of several parts one TransactWriteItems, which IAM authorizes as its
 * PutItem / DeleteItem / ConditionCheckItem. No BatchWriteItem (it takes no conditions),
 * no Scan, no table management.
 */
export const WINDOW_FLUSH_ACTIONS: readonly string[] = [
  'dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:DeleteItem', 'dynamodb:ConditionCheckItem',
];

/**
 * The table is encrypted with the storage stack's data key, which DynamoDB uses on the
 * caller's behalf: the set CDK's table grants give, without kms:ReEncrypt* (moving data to
 * another key is no part of reading or writing items).
 */
export const WINDOW_KEY_ACTIONS: readonly string[] = ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey*'];

/**
 * What the writer does to the series catalog: UpdateItem to record a series once a day (the
 * conditional "seen today" write), BatchWriteItem / PutItem to record new series in bulk. No
 * reads (the writer keeps what it recorded in memory), no deletes.
 */
export const CATALOG_WRITE_ACTIONS: readonly string[] = ['dynamodb:UpdateItem', 'dynamodb:BatchWriteItem', 'dynamodb:PutItem'];

/**
 * What the reader does to the window table and the catalog: Query (a window's parts, a
 * range of windows, a tenant's or host's series), GetItem and BatchGetItem (windows by key,
 * UnprocessedKeys retried). No Scan, no writes.
 */
export const READ_ACTIONS: readonly string[] = ['dynamodb:Query', 'dynamodb:GetItem', 'dynamodb:BatchGetItem'];

/** Reading items of a table encrypted with the data key needs Decrypt (and DescribeKey). */
export const READ_KEY_ACTIONS: readonly string[] = ['kms:Decrypt', 'kms:DescribeKey'];

/**
 * What the archiver does to the archive bucket: PutObject (batch objects and compacted
 * objects), GetObject (compaction reads the batches it merges), DeleteObject (compaction
 * removes the batches it replaced), ListBucket (compaction finds a tenant-day's batches;
 * it also makes a missing key a 404 instead of a 403).
 */
export const ARCHIVE_OBJECT_ACTIONS: readonly string[] = ['s3:PutObject', 's3:GetObject', 's3:DeleteObject'];

/** Lets `fn` flush windows: WINDOW_FLUSH_ACTIONS on the table, WINDOW_KEY_ACTIONS on its key. */
function grantWindowFlush(storage: StorageStack, fn: lambda.IFunction): void {
  fn.addToRolePolicy(new iam.PolicyStatement({
    actions: [...WINDOW_FLUSH_ACTIONS],
    resources: [storage.table.tableArn],
  }));
  fn.addToRolePolicy(new iam.PolicyStatement({
    actions: [...WINDOW_KEY_ACTIONS],
    resources: [storage.dataKey.keyArn],
  }));
}

/**
 * Name sets (record v2, docs/formats.md "Name set v1") live in the catalog table under
 * partition keys `<tenant>##names`: the ingest API puts them (PutItem, and only on those
 * partition keys), the writers get them (GetItem).
 */
export const NAME_SET_PUT_ACTIONS: readonly string[] = ['dynamodb:PutItem'];
export const NAME_SET_READ_ACTIONS: readonly string[] = ['dynamodb:GetItem'];

function grantNameSetPut(storage: StorageStack, fn: lambda.IFunction): void {
  fn.addToRolePolicy(new iam.PolicyStatement({
    actions: [...NAME_SET_PUT_ACTIONS],
    resources: [storage.catalogTable.tableArn],
    conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['*##names'] } },
  }));
}

function grantNameSetRead(storage: StorageStack, fn: lambda.IFunction): void {
  fn.addToRolePolicy(new iam.PolicyStatement({
    actions: [...NAME_SET_READ_ACTIONS],
    resources: [storage.catalogTable.tableArn],
  }));
}

/** Lets `fn` write the series catalog: CATALOG_WRITE_ACTIONS on it (its key: as the window table's). */
function grantCatalogWrite(storage: StorageStack, fn: lambda.IFunction): void {
  fn.addToRolePolicy(new iam.PolicyStatement({
    actions: [...CATALOG_WRITE_ACTIONS],
    resources: [storage.catalogTable.tableArn],
  }));
}

/** A deployed function and what the Monitoring stack needs to know about it. */
export interface ServiceFunction {
  /** Domain name of the role, used in alarm names and construct ids: api, writer, … */
  readonly role: string;
  readonly fn: CaratFunction;
  /** Reads a stream through an event source mapping (has an IteratorAge metric). */
  readonly streamConsumer: boolean;
}

/**
 * The functions and how they are triggered: ingest API (HTTP API), writer and backup writer
 * (Kinesis mappings), flusher (schedule), archiver (DynamoDB-stream mapping and compaction
 * schedule), reader (HTTP API routes) and probe (schedule); the last three are switched on
 * by LANDED_BINARIES.
 */
export class ServicesStack extends Stack {
  readonly functions: ServiceFunction[] = [];
  readonly httpApi: apigw.HttpApi;
  /** Base URL of the API (the custom domain when configured). */
  readonly apiUrl: string;
  readonly apiUrlOutput: CfnOutput;
  /** On-failure destination of every mapping: records of batches that kept failing. */
  readonly failureQueue: sqs.Queue;
  readonly writer: CaratFunction;
  readonly backupWriter: CaratFunction;
  /** Name of the probe function (fixed: `carat-<deployment>-probe`), when it is deployed. */
  readonly probeFunctionName?: string;

  constructor(scope: Construct, id: string, props: ServicesStackProps) {
    super(scope, id, props);
    const cfg = props.config;
    const storage = props.storage;
    const binaries = new Set(props.binaries ?? LANDED_BINARIES);
    const has = (b: Binary): boolean => binaries.has(b);
    for (const required of ['carat-api', 'carat-writer', 'carat-flusher'] as const) {
      if (!has(required)) throw new Error(`ServicesStack: ${required} is required (the write path)`);
    }

    // Resource names go to every function (the Rust Resources config reads them together);
    // what a function may do with them is decided by its grants below.
    const names: Record<string, string> = {
      [ENV.stream]: storage.stream.streamName,
      [ENV.table]: storage.table.tableName,
      [ENV.archiveBucket]: storage.archiveBucket.bucketName,
      ...(cfg.serviceConfigToml === undefined ? {} : { [ENV.config]: cfg.serviceConfigToml }),
    };
    const head: Record<string, string> = {
      [ENV.redisNodes]: storage.head.nodesUrl,
      [ENV.redisAuthSecretArn]: storage.head.authSecret.secretArn,
    };
    const apiKeys = { [ENV.apiKeysSecretArn]: storage.apiKeysSecret.secretArn };
    // The catalog's name goes only to the functions that use it.
    const catalog = { [ENV.catalogTable]: storage.catalogTable.tableName };
    const inVpc = { vpc: storage.vpc, securityGroup: storage.functionSecurityGroup };
    const common = { logRetentionDays: cfg.logRetentionDays };

    this.failureQueue = new sqs.Queue(this, 'MappingFailures', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    NagSuppressions.addResourceSuppressions(this.failureQueue, [
      { id: 'AwsSolutions-SQS3', reason: 'This queue is itself the dead-letter store: the on-failure destination of the event source mappings.' },
    ]);

    // Ingest API.
    const api = new CaratFunction(this, 'Api', {
      ...common,
      binary: 'carat-api',
      description: 'carat ingest API: validates points and puts them on the stream',
      config: cfg.api,
      environment: { ...names, ...apiKeys, ...catalog },
    });
    storage.stream.grantWrite(api.function);
    storage.apiKeysSecret.grantRead(api.function);
    grantNameSetPut(storage, api.function);
    this.functions.push({ role: 'api', fn: api, streamConsumer: false });

    // Writer, and the backup writer: the same binary on a second mapping of the same stream,
    // disabled until a replay is needed. A function of its own so its iterator age (which is
    // days while replaying) does not trip the writer's alarm, and its concurrency is separate.
    const writerEnv = { ...names, ...head, ...catalog };
    this.writer = new CaratFunction(this, 'Writer', {
      ...common,
      binary: 'carat-writer',
      description: 'carat writer: stream records into the head, closed windows into the table',
      config: cfg.writer,
      environment: writerEnv,
      vpc: inVpc,
    });
    this.backupWriter = new CaratFunction(this, 'BackupWriter', {
      ...common,
      binary: 'carat-writer',
      description: 'carat backup writer: replays the stream (idempotent); mapping disabled unless replaying',
      config: cfg.writer,
      environment: writerEnv,
      vpc: inVpc,
    });
    // A failing batch is retried (bisected down to the failing record, which alone is
    // retried) until it succeeds or, with finite limits, goes to the failure queue as shard
    // id + sequence range, what a replay needs. The writer fails only for transient reasons,
    // so the defaults never give up: an outage of the head or the table up to the stream's
    // retention loses nothing. Both mappings alike: a replay must not give up either.
    const mapping = {
      batchSize: cfg.writer.batchSize,
      maxBatchingWindow: Duration.seconds(cfg.writer.maxBatchingWindowSeconds),
      parallelizationFactor: cfg.writer.parallelizationFactor,
      bisectBatchOnError: true,
      reportBatchItemFailures: true,
      retryAttempts: cfg.writer.retryAttempts,
      // CDK's maxRecordAge is a Duration of at least 60 s; unlimited (-1) is set below.
      maxRecordAge: cfg.writer.maxRecordAgeSeconds === -1 ? undefined : Duration.seconds(cfg.writer.maxRecordAgeSeconds),
      onFailure: new SqsDlq(this.failureQueue),
    };
    // TRIM_HORIZON: a (re)created mapping loses nothing; the writer is idempotent.
    this.writer.function.addEventSource(new KinesisEventSource(storage.stream, {
      ...mapping,
      startingPosition: lambda.StartingPosition.TRIM_HORIZON,
    }));
    const replay = cfg.backupReplay;
    this.backupWriter.function.addEventSource(new KinesisEventSource(storage.stream, {
      ...mapping,
      enabled: replay.enabled,
      startingPosition: lambda.StartingPosition[replay.startingPosition],
      startingPositionTimestamp: replay.startingTimestamp === undefined
        ? undefined
        : Math.floor(Date.parse(replay.startingTimestamp) / 1000),
    }));
    if (cfg.writer.maxRecordAgeSeconds === -1) {
      // Written out rather than left to CloudFormation's default (also -1), so the template
      // says what the mapping does.
      for (const fn of [this.writer.function, this.backupWriter.function]) {
        for (const c of fn.node.findAll()) {
          if (c instanceof lambda.CfnEventSourceMapping) c.maximumRecordAgeInSeconds = -1;
        }
      }
    }
    for (const w of [this.writer, this.backupWriter]) {
      grantWindowFlush(storage, w.function);
      grantCatalogWrite(storage, w.function);
      grantNameSetRead(storage, w.function);
      storage.head.authSecret.grantRead(w.function);
    }
    // CloudFormation updates the writers before the API, so a rolling deploy never has a
    // writer that cannot read the record format the new API writes (record v2).
    api.function.node.addDependency(this.writer.function, this.backupWriter.function);
    this.functions.push({ role: 'writer', fn: this.writer, streamConsumer: true });
    this.functions.push({ role: 'backup-writer', fn: this.backupWriter, streamConsumer: true });

    // Flusher: flushes the windows of series that went quiet.
    const flusher = new CaratFunction(this, 'Flusher', {
      ...common,
      binary: 'carat-flusher',
      description: 'carat flusher: flushes due windows of quiet series from the head to the table',
      config: cfg.flusher,
      environment: { ...names, ...head, ...catalog },
      vpc: inVpc,
    });
    grantWindowFlush(storage, flusher.function);
    storage.head.authSecret.grantRead(flusher.function);
    new events.Rule(this, 'FlusherSchedule', {
      description: 'carat flusher',
      schedule: events.Schedule.rate(Duration.minutes(cfg.flusher.scheduleMinutes)),
      // A missed run is not retried: the next run flushes whatever is due by then.
      targets: [new targets.LambdaFunction(flusher.function, { retryAttempts: 0 })],
    });
    this.functions.push({ role: 'flusher', fn: flusher, streamConsumer: false });

    // HTTP API: writes (POST) to the ingest function, reads (the GET routes of READER_ROUTES)
    // to the reader. Keys are checked by the functions (X-Api-Key or Bearer, as Mackerel agents and
    // Prometheus send them), so API Gateway has no authorizer.
    const accessLogs = new logs.LogGroup(this, 'ApiAccessLogs', { retention: cfg.logRetentionDays as logs.RetentionDays });
    this.httpApi = new apigw.HttpApi(this, 'HttpApi', {
      description: 'carat ingest and read API',
      createDefaultStage: false,
    });
    const domain = cfg.api.domainName === undefined || cfg.api.certificateArn === undefined
      ? undefined
      : new apigw.DomainName(this, 'ApiDomain', {
        domainName: cfg.api.domainName,
        certificate: acm.Certificate.fromCertificateArn(this, 'ApiCertificate', cfg.api.certificateArn),
      });
    new apigw.HttpStage(this, 'DefaultStage', {
      httpApi: this.httpApi,
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: cfg.api.throttleRatePerSecond, burstLimit: cfg.api.throttleBurst },
      accessLogSettings: { destination: new apigw.LogGroupLogDestination(accessLogs) },
      domainMapping: domain === undefined ? undefined : { domainName: domain },
    });
    this.httpApi.addRoutes({
      path: '/{proxy+}',
      methods: [apigw.HttpMethod.POST],
      integration: new HttpLambdaIntegration('Ingest', api.function),
    });
    this.apiUrl = domain === undefined ? this.httpApi.apiEndpoint : `https://${cfg.api.domainName}`;
    this.apiUrlOutput = new CfnOutput(this, 'ApiUrl', { value: this.apiUrl, description: 'Base URL of the carat API' });

    // Functions whose binaries land later: each block below is switched on by LANDED_BINARIES.
    if (has('carat-reader')) {
      const reader = new CaratFunction(this, 'Reader', {
        ...common,
        binary: 'carat-reader',
        description: 'carat reader: head, table and archive read concurrently and merged',
        config: cfg.reader,
        environment: { ...names, ...head, ...apiKeys, ...catalog },
        vpc: inVpc,
      });
      // Narrow grants, as for the writer: CDK's grantReadData / grantRead would add Scan,
      // the stream reads, DescribeTable and s3:GetObject*/List* wildcards.
      reader.function.addToRolePolicy(new iam.PolicyStatement({
        actions: [...READ_ACTIONS],
        resources: [storage.table.tableArn, storage.catalogTable.tableArn],
      }));
      reader.function.addToRolePolicy(new iam.PolicyStatement({
        actions: [...READ_KEY_ACTIONS],
        resources: [storage.dataKey.keyArn],
      }));
      reader.function.addToRolePolicy(new iam.PolicyStatement({
        actions: ['s3:GetObject'],
        resources: [storage.archiveBucket.arnForObjects('*')],
      }));
      reader.function.addToRolePolicy(new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [storage.archiveBucket.bucketArn],
      }));
      storage.head.authSecret.grantRead(reader.function);
      storage.apiKeysSecret.grantRead(reader.function);
      const read = new HttpLambdaIntegration('Read', reader.function);
      for (const route of READER_ROUTES) {
        const [method, path] = route.split(' ');
        this.httpApi.addRoutes({ path, methods: [method as apigw.HttpMethod], integration: read });
      }
      this.functions.push({ role: 'reader', fn: reader, streamConsumer: false });
    }
    if (has('carat-archiver')) {
      const archiver = new Archiver(this, 'Archive', {
        table: storage.table,
        archiveBucket: storage.archiveBucket,
        failureQueue: this.failureQueue,
        config: cfg,
        environment: names,
        objectActions: ARCHIVE_OBJECT_ACTIONS,
      });
      this.functions.push({ role: 'archiver', fn: archiver.fn, streamConsumer: true });
    }
    if (has('carat-probe')) {
      this.probeFunctionName = `carat-${props.deployment}-probe`;
      const probe = new EndToEndProbe(this, 'EndToEnd', {
        deployment: props.deployment,
        functionName: this.probeFunctionName,
        apiUrl: this.apiUrl,
        probeApiKeySecret: storage.probeApiKeySecret,
        invokerAccount: props.probeInvokerAccount,
        config: cfg,
        environment: names,
      });
      new CfnOutput(this, 'ProbeFunctionName', {
        value: probe.fn.function.functionName,
        description: 'The end-to-end probe: aws lambda invoke --function-name <this> out.json',
      });
      this.functions.push({ role: 'probe', fn: probe.fn, streamConsumer: false });
    }

    // Roles get their policies from the grants above: suppress once they are complete.
    for (const f of this.functions) suppressFunctionRole(f.fn.function);
    NagSuppressions.addResourceSuppressions(this.httpApi, [
      {
        id: 'AwsSolutions-APIG4',
        reason: 'Every route checks an API key inside the function (X-Api-Key or Authorization: Bearer, as Mackerel agents and Prometheus remote_write send them; keys and their scopes live in Secrets Manager).',
      },
    ], true);
  }
}
