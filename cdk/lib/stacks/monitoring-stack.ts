import { Duration, Stack, StackProps } from 'aws-cdk-lib';
import * as cw from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import type { EnvironmentConfig } from '../config';
import { METRICS } from '../names';
import { ServicesStack } from './services-stack';
import { StorageStack } from './storage-stack';

export interface MonitoringStackProps extends StackProps {
  readonly deployment: string;
  readonly config: EnvironmentConfig;
  readonly storage: StorageStack;
  readonly services: ServicesStack;
}

/** What one alarm watches and when it fires; `runbook` is its entry in docs/deploy.md. */
interface AlarmSpec {
  readonly name: string;
  readonly runbook: string;
  readonly what: string;
  readonly metric: cw.IMetric;
  readonly threshold: number;
  readonly comparison: cw.ComparisonOperator;
  readonly evaluationPeriods: number;
  readonly datapointsToAlarm?: number;
  readonly missing: cw.TreatMissingData;
}

const FIVE_MINUTES = Duration.minutes(5);
const ONE_MINUTE = Duration.minutes(1);
const { GREATER_THAN_THRESHOLD: GT, GREATER_THAN_OR_EQUAL_TO_THRESHOLD: GE, LESS_THAN_THRESHOLD: LT } = cw.ComparisonOperator;

/**
 * "Define the normal state and watch it every day": one SNS topic, one alarm per signal of
 * DESIGN.md §1 with its runbook entry in docs/deploy.md, and one dashboard with all of them.
 */
export class MonitoringStack extends Stack {
  readonly topic: sns.Topic;
  readonly dashboard: cw.Dashboard;
  readonly alarms: cw.Alarm[] = [];
  private readonly deployment: string;

  constructor(scope: Construct, id: string, props: MonitoringStackProps) {
    super(scope, id, props);
    this.deployment = props.deployment;
    const a = props.config.alarms;
    const { stream, table, catalogTable, head } = props.storage;
    const services = props.services;

    const topicKey = new kms.Key(this, 'TopicKey', {
      description: 'carat: encrypts the alarm topic',
      enableKeyRotation: true,
    });
    // CloudWatch publishes alarm notifications to the encrypted topic.
    topicKey.grant(new iam.ServicePrincipal('cloudwatch.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey*');
    this.topic = new sns.Topic(this, 'AlarmTopic', {
      displayName: `carat ${props.deployment} alarms`,
      masterKey: topicKey,
      enforceSSL: true,
    });
    if (a.email !== undefined) this.topic.addSubscription(new subscriptions.EmailSubscription(a.email));

    // Kinesis: a drop of incoming bytes means PutRecords failing; iterator age means the
    // readers fall behind; throughput exceeded means the shards are too few.
    const kinesisIteratorAge = stream.metricGetRecordsIteratorAgeMilliseconds({ statistic: 'Maximum', period: FIVE_MINUTES });
    const incomingBytes = stream.metricIncomingBytes({ statistic: 'Sum', period: FIVE_MINUTES });
    const outgoingBytes = stream.metricGetRecordsBytes({ statistic: 'Sum', period: FIVE_MINUTES });
    const writeExceeded = stream.metricWriteProvisionedThroughputExceeded({ statistic: 'Sum', period: FIVE_MINUTES });
    const readExceeded = stream.metricReadProvisionedThroughputExceeded({ statistic: 'Sum', period: FIVE_MINUTES });
    this.alarm({
      name: 'kinesis-iterator-age', runbook: 'kinesis-iterator-age', metric: kinesisIteratorAge,
      what: 'The oldest unread record of the point stream is old: the writer falls behind.',
      threshold: a.kinesisIteratorAgeMs, comparison: GT, evaluationPeriods: 2, missing: cw.TreatMissingData.NOT_BREACHING,
    });
    this.alarm({
      name: 'kinesis-incoming-bytes', runbook: 'kinesis-incoming-bytes', metric: incomingBytes,
      what: 'Bytes put on the point stream dropped below normal: ingest (PutRecords) is failing or clients stopped sending.',
      threshold: a.kinesisIncomingBytesMin, comparison: LT, evaluationPeriods: 3, missing: cw.TreatMissingData.BREACHING,
    });
    this.alarm({
      name: 'kinesis-write-throughput', runbook: 'kinesis-throughput-exceeded', metric: writeExceeded,
      what: 'PutRecords were throttled: the stream needs more shards.',
      threshold: a.kinesisThroughputExceeded, comparison: GT, evaluationPeriods: 1, missing: cw.TreatMissingData.NOT_BREACHING,
    });
    this.alarm({
      name: 'kinesis-read-throughput', runbook: 'kinesis-throughput-exceeded', metric: readExceeded,
      what: 'GetRecords were throttled: too many readers of the stream (a replay running beside the writer?).',
      threshold: a.kinesisThroughputExceeded, comparison: GT, evaluationPeriods: 1, missing: cw.TreatMissingData.NOT_BREACHING,
    });

    // Lambda: errors, throttles, duration against the timeout, iterator age of stream
    // consumers, and the writer's average concurrency against the shards it can use.
    const lambdaWidgets: cw.IWidget[] = [];
    for (const { role, fn: cf, streamConsumer } of services.functions) {
      const fn = cf.function;
      const errors = fn.metricErrors({ statistic: 'Sum', period: FIVE_MINUTES });
      const throttles = fn.metricThrottles({ statistic: 'Sum', period: FIVE_MINUTES });
      const duration = fn.metricDuration({ statistic: 'Maximum', period: FIVE_MINUTES });
      this.alarm({
        name: `${role}-errors`, runbook: 'lambda-errors', metric: errors,
        what: `The ${role} function failed invocations.`,
        threshold: a.lambdaErrors, comparison: GE, evaluationPeriods: 1, missing: cw.TreatMissingData.NOT_BREACHING,
      });
      this.alarm({
        name: `${role}-throttles`, runbook: 'lambda-throttles', metric: throttles,
        what: `The ${role} function was throttled (account or reserved concurrency exhausted).`,
        threshold: a.lambdaThrottles, comparison: GE, evaluationPeriods: 1, missing: cw.TreatMissingData.NOT_BREACHING,
      });
      const timeoutMs = cf.timeout.toMilliseconds();
      // The probe reads until just before its timeout when its point is not readable: that
      // is the end-to-end alarm's signal, not a slow function, so its duration is only graphed.
      if (role !== 'probe') {
        this.alarm({
          name: `${role}-duration`, runbook: 'lambda-duration', metric: duration,
          what: `The ${role} function ran longer than ${Math.round(a.durationTimeoutRatio * 100)} % of its ${timeoutMs / 1000} s timeout.`,
          threshold: Math.round(timeoutMs * a.durationTimeoutRatio), comparison: GT, evaluationPeriods: 2,
          missing: cw.TreatMissingData.NOT_BREACHING,
        });
      }
      const widgets: cw.IMetric[] = [errors, throttles];
      if (streamConsumer) {
        const iteratorAge = fn.metric('IteratorAge', { statistic: 'Maximum', period: FIVE_MINUTES });
        // The backup writer's iterator age is days while it replays: that is its job, not a
        // lag, so it is only graphed (it shows when a replay has caught up).
        if (role !== 'backup-writer') {
          this.alarm({
            name: `${role}-iterator-age`, runbook: 'lambda-iterator-age', metric: iteratorAge,
            what: `The ${role} function's mapping reads records that are old: it falls behind its stream.`,
            threshold: a.lambdaIteratorAgeMs, comparison: GT, evaluationPeriods: 2, missing: cw.TreatMissingData.NOT_BREACHING,
          });
        }
        widgets.push(iteratorAge);
      }
      lambdaWidgets.push(new cw.GraphWidget({
        title: `${role}: invocations, errors, throttles`, width: 8,
        left: [fn.metricInvocations({ statistic: 'Sum', period: FIVE_MINUTES }), ...widgets],
      }));
      lambdaWidgets.push(new cw.GraphWidget({
        title: `${role}: duration (ms), timeout ${timeoutMs} ms`, width: 8,
        left: [fn.metricDuration({ statistic: 'Average', period: FIVE_MINUTES }), duration],
        leftAnnotations: [{ value: timeoutMs, label: 'timeout' }],
      }));
    }

    // Average concurrency = invocations per minute × average duration (ms) / 60 000. Each
    // shard runs at most `parallelizationFactor` batches at once, so that is the ceiling;
    // above 70 % of it the writer has no room for a burst and the stream needs shards.
    const writer = services.writer.function;
    const capacity = props.config.kinesis.shards * props.config.writer.parallelizationFactor;
    const concurrency = new cw.MathExpression({
      expression: `inv * dur / 60000 / ${capacity}`,
      usingMetrics: {
        inv: writer.metricInvocations({ statistic: 'Sum', period: ONE_MINUTE }),
        dur: writer.metricDuration({ statistic: 'Average', period: ONE_MINUTE }),
      },
      period: ONE_MINUTE,
      label: `writer concurrency ÷ (${props.config.kinesis.shards} shards × ${props.config.writer.parallelizationFactor})`,
    });
    this.alarm({
      name: 'writer-concurrency', runbook: 'writer-concurrency', metric: concurrency,
      what: 'The writer\'s average concurrency uses more than its share of the shards: add shards before it lags.',
      threshold: a.writerConcurrencyRatio, comparison: GT, evaluationPeriods: 5, missing: cw.TreatMissingData.NOT_BREACHING,
    });

    // DynamoDB: throttles (on-demand still throttles past a partition's or the table's
    // limits) and system errors, of the window table and the series catalog; consumed
    // capacity on the dashboard.
    const throttles = new cw.MathExpression({
      expression: 'r + w + cr + cw',
      usingMetrics: {
        r: table.metric('ReadThrottleEvents', { statistic: 'Sum', period: FIVE_MINUTES }),
        w: table.metric('WriteThrottleEvents', { statistic: 'Sum', period: FIVE_MINUTES }),
        cr: catalogTable.metric('ReadThrottleEvents', { statistic: 'Sum', period: FIVE_MINUTES }),
        cw: catalogTable.metric('WriteThrottleEvents', { statistic: 'Sum', period: FIVE_MINUTES }),
      },
      period: FIVE_MINUTES,
      label: 'read + write throttle events (windows + catalog)',
    });
    const systemErrors = table.metricSystemErrorsForOperations({
      // What carat calls: flushes (GetItem, Query, PutItem, DeleteItem, TransactWriteItems),
      // the reader (Query, BatchGetItem) and the archiver's stream (GetRecords).
      operations: [
        dynamodb.Operation.GET_ITEM, dynamodb.Operation.QUERY, dynamodb.Operation.PUT_ITEM,
        dynamodb.Operation.DELETE_ITEM, dynamodb.Operation.TRANSACT_WRITE_ITEMS,
        dynamodb.Operation.BATCH_GET_ITEM, dynamodb.Operation.GET_RECORDS,
      ],
      period: FIVE_MINUTES,
    });
    // A second alarm for the catalog: an alarm's metric math takes at most 10 metrics.
    const catalogSystemErrors = catalogTable.metricSystemErrorsForOperations({
      // The writer's catalog writes and the reader's listings.
      operations: [
        dynamodb.Operation.UPDATE_ITEM, dynamodb.Operation.BATCH_WRITE_ITEM, dynamodb.Operation.PUT_ITEM,
        dynamodb.Operation.QUERY, dynamodb.Operation.GET_ITEM, dynamodb.Operation.BATCH_GET_ITEM,
      ],
      period: FIVE_MINUTES,
    });
    this.alarm({
      name: 'dynamodb-catalog-system-errors', runbook: 'dynamodb-system-errors', metric: catalogSystemErrors,
      what: 'DynamoDB returned internal server errors for the series catalog.',
      threshold: a.dynamoSystemErrors, comparison: GE, evaluationPeriods: 1, missing: cw.TreatMissingData.NOT_BREACHING,
    });
    this.alarm({
      name: 'dynamodb-throttles', runbook: 'dynamodb-throttles', metric: throttles,
      what: 'Requests to the window table or the series catalog were throttled.',
      threshold: a.dynamoThrottles, comparison: GE, evaluationPeriods: 1, missing: cw.TreatMissingData.NOT_BREACHING,
    });
    this.alarm({
      name: 'dynamodb-system-errors', runbook: 'dynamodb-system-errors', metric: systemErrors,
      what: 'DynamoDB returned internal server errors for the window table.',
      threshold: a.dynamoSystemErrors, comparison: GE, evaluationPeriods: 1, missing: cw.TreatMissingData.NOT_BREACHING,
    });

    // Redis (the head), per shard: engine CPU (the engine runs on one core), memory (the head
    // runs noeviction, so a full node rejects appends: alarm well before), evictions (none
    // should ever happen under noeviction: one means the parameter group is not in effect),
    // replication lag (what a failover would have to rebuild).
    const redisWidgets: cw.IWidget[] = [];
    for (let shard = 0; shard < head.shardCount; shard++) {
      const nodes = head.nodeIds(shard);
      const s = String(shard + 1).padStart(4, '0');
      // Ids must be unique within a graph: prefix them with the metric's short name.
      const across = (fn: 'MAX' | 'SUM', key: string, metricName: string, statistic: string, label: string): cw.MathExpression => {
        const usingMetrics: Record<string, cw.IMetric> = {};
        nodes.forEach((node, i) => {
          usingMetrics[`${key}${i}`] = new cw.Metric({
            namespace: 'AWS/ElastiCache', metricName, dimensionsMap: { CacheClusterId: node }, statistic, period: FIVE_MINUTES,
          });
        });
        return new cw.MathExpression({
          expression: `${fn}([${nodes.map((_, i) => `${key}${i}`).join(',')}])`,
          usingMetrics, period: FIVE_MINUTES, label: `shard ${s}: ${label}`,
        });
      };
      const cpu = across('MAX', 'cpu', 'EngineCPUUtilization', 'Maximum', 'engine CPU % (max over nodes)');
      const memory = across('MAX', 'mem', 'DatabaseMemoryUsagePercentage', 'Maximum', 'memory % (max over nodes)');
      const evictions = across('SUM', 'evict', 'Evictions', 'Sum', 'evictions');
      const lag = across('MAX', 'lag', 'ReplicationLag', 'Maximum', 'replication lag s (max over replicas)');
      const commands = across('SUM', 'get', 'GetTypeCmds', 'Sum', 'read commands');
      const writes = across('SUM', 'set', 'SetTypeCmds', 'Sum', 'write commands');
      this.alarm({
        name: `redis-${s}-engine-cpu`, runbook: 'redis-engine-cpu', metric: cpu,
        what: `Engine CPU of a node of head shard ${s} is high (the engine uses one core).`,
        threshold: a.redisEngineCpuPercent, comparison: GT, evaluationPeriods: 3, missing: cw.TreatMissingData.NOT_BREACHING,
      });
      this.alarm({
        name: `redis-${s}-memory`, runbook: 'redis-memory', metric: memory,
        what: `Memory of a node of head shard ${s} is above ${a.redisMemoryPercent} %: when it is full, appends fail (noeviction) and the writer stalls.`,
        threshold: a.redisMemoryPercent, comparison: GT, evaluationPeriods: 2, missing: cw.TreatMissingData.NOT_BREACHING,
      });
      this.alarm({
        name: `redis-${s}-evictions`, runbook: 'redis-evictions', metric: evictions,
        what: `Head shard ${s} evicted keys, which noeviction should prevent: check its parameter group, then replay.`,
        threshold: a.redisEvictions, comparison: GE, evaluationPeriods: 1, missing: cw.TreatMissingData.NOT_BREACHING,
      });
      this.alarm({
        name: `redis-${s}-replication-lag`, runbook: 'redis-replication-lag', metric: lag,
        what: `A replica of head shard ${s} lags its primary: a failover now would lose the lag.`,
        threshold: a.redisReplicationLagSeconds, comparison: GT, evaluationPeriods: 3, missing: cw.TreatMissingData.NOT_BREACHING,
      });
      redisWidgets.push(
        new cw.GraphWidget({ title: `head shard ${s}: CPU and memory %`, width: 8, left: [cpu, memory], leftYAxis: { min: 0, max: 100 } }),
        new cw.GraphWidget({ title: `head shard ${s}: commands, evictions`, width: 8, left: [commands, writes], right: [evictions] }),
        new cw.GraphWidget({ title: `head shard ${s}: replication lag (s)`, width: 8, left: [lag] }),
      );
    }

    // Throughput: points the writer processed per minute (EMF metrics of the writer and the
    // flusher, docs/probe-metric.md). The backup writer runs the same binary, so a replay's
    // points count here too.
    const emf = (fn: string, metricName: string, period: Duration = ONE_MINUTE): cw.Metric => new cw.Metric({
      namespace: METRICS.namespace,
      metricName,
      dimensionsMap: { [METRICS.processedPoints.dimension]: fn },
      statistic: 'Sum',
      period,
    });
    const processedPoints = emf(METRICS.processedPoints.writer, METRICS.processedPoints.name);
    this.alarm({
      name: 'processed-points', runbook: 'processed-points', metric: processedPoints,
      what: `The writer processed fewer than ${a.processedPointsPerMinuteMin} points per minute for ${a.processedPointsMinutes} minutes.`,
      threshold: a.processedPointsPerMinuteMin, comparison: LT, evaluationPeriods: a.processedPointsMinutes,
      missing: cw.TreatMissingData.BREACHING,
    });

    // Failed flushes: a window that failed non-retryably is set aside so the rest of its
    // bucket goes on; it is not stored until someone acts, so the first one alarms. The
    // backup writer reports as the writer (same binary).
    const failedFlushes = {
      writer: emf(METRICS.failedFlushes.writer, METRICS.failedFlushes.name, FIVE_MINUTES),
      flusher: emf(METRICS.failedFlushes.flusher, METRICS.failedFlushes.name, FIVE_MINUTES),
    };
    for (const [role, metric] of Object.entries(failedFlushes)) {
      this.alarm({
        name: `${role}-failed-flushes`, runbook: 'failed-flushes', metric,
        what: `The ${role} could not flush a window (non-retryable error): that window is not stored until it is fixed and replayed.`,
        threshold: a.failedFlushes, comparison: GE, evaluationPeriods: 1, missing: cw.TreatMissingData.NOT_BREACHING,
      });
    }

    // End to end: the probe's post → readable latency. No data means no probe ran or none
    // succeeded, so missing data breaches (and it does until the probe is deployed).
    const endToEnd = new cw.Metric({
      namespace: METRICS.namespace,
      metricName: METRICS.endToEndLatency.name,
      dimensionsMap: { [METRICS.endToEndLatency.dimension]: props.deployment },
      unit: cw.Unit.MILLISECONDS,
      statistic: 'Maximum',
      period: ONE_MINUTE,
    });
    this.alarm({
      name: 'end-to-end-latency', runbook: 'end-to-end-latency', metric: endToEnd,
      what: 'Points take too long from POST to readable, or the probe reports nothing.',
      threshold: a.endToEndLatencyMs, comparison: GT, evaluationPeriods: 5, datapointsToAlarm: 3,
      missing: cw.TreatMissingData.BREACHING,
    });

    // Batches that kept failing after bisecting and retries: their records need a replay.
    const failures = services.failureQueue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period: FIVE_MINUTES });
    this.alarm({
      name: 'mapping-failures', runbook: 'mapping-failures', metric: failures,
      what: 'A stream batch exhausted its retries and was sent to the failure queue: its records were not written.',
      threshold: 1, comparison: GE, evaluationPeriods: 1, missing: cw.TreatMissingData.NOT_BREACHING,
    });

    this.dashboard = new cw.Dashboard(this, 'Dashboard', {
      dashboardName: `carat-${props.deployment}`,
      defaultInterval: Duration.hours(24),
    });
    this.dashboard.addWidgets(new cw.AlarmStatusWidget({ title: 'alarms', alarms: this.alarms, width: 24, height: 6 }));
    this.dashboard.addWidgets(
      new cw.GraphWidget({ title: 'throughput: points processed per minute', width: 8,
        left: [processedPoints.with({ label: 'processed points' })],
        right: [
          emf(METRICS.processedPoints.writer, 'BadRecords').with({ label: 'bad records' }),
          emf(METRICS.processedPoints.writer, 'FlushedWindows').with({ label: 'windows flushed by the writer' }),
          emf(METRICS.processedPoints.flusher, 'FlushedWindows').with({ label: 'windows flushed by the flusher' }),
          emf(METRICS.failedFlushes.writer, METRICS.failedFlushes.name).with({ label: 'failed flushes (writer)' }),
          emf(METRICS.failedFlushes.flusher, METRICS.failedFlushes.name).with({ label: 'failed flushes (flusher)' }),
          // Batches stopped at a record whose name set (record v2) could not be fetched:
          // they are re-sent, so a rising line is a catalog table that does not answer.
          emf(METRICS.processedPoints.writer, 'NameSetFailures').with({ label: 'batches stopped: name set not fetched' }),
        ] }),
      new cw.GraphWidget({ title: 'end-to-end latency (ms)', width: 8, left: [endToEnd],
        leftAnnotations: [{ value: a.endToEndLatencyMs, label: 'alarm' }] }),
      new cw.GraphWidget({ title: 'writer concurrency ÷ shard capacity', width: 8, left: [concurrency],
        leftAnnotations: [{ value: a.writerConcurrencyRatio, label: 'alarm' }] }),
    );
    this.dashboard.addWidgets(
      new cw.GraphWidget({ title: 'kinesis: bytes in / out', width: 8, left: [incomingBytes, outgoingBytes] }),
      new cw.GraphWidget({ title: 'kinesis: iterator age (ms)', width: 8, left: [kinesisIteratorAge] }),
      new cw.GraphWidget({ title: 'kinesis: throughput exceeded', width: 8, left: [writeExceeded, readExceeded] }),
    );
    this.dashboard.addWidgets(...lambdaWidgets);
    this.dashboard.addWidgets(
      new cw.GraphWidget({ title: 'dynamodb: consumed capacity', width: 8, left: [
        table.metricConsumedWriteCapacityUnits({ statistic: 'Sum', period: FIVE_MINUTES, label: 'windows: write units' }),
        table.metricConsumedReadCapacityUnits({ statistic: 'Sum', period: FIVE_MINUTES, label: 'windows: read units' }),
        catalogTable.metricConsumedWriteCapacityUnits({ statistic: 'Sum', period: FIVE_MINUTES, label: 'catalog: write units' }),
        catalogTable.metricConsumedReadCapacityUnits({ statistic: 'Sum', period: FIVE_MINUTES, label: 'catalog: read units' }),
      ] }),
      new cw.GraphWidget({ title: 'dynamodb: throttles, system errors', width: 8, left: [throttles, systemErrors] }),
      new cw.GraphWidget({ title: 'failure queue: messages', width: 8, left: [failures] }),
    );
    this.dashboard.addWidgets(...redisWidgets);
    // Which phase dominates (docs/deploy.md "Runbook: which phase dominates"): average
    // milliseconds per invocation in each phase, per function.
    this.dashboard.addWidgets(...METRICS.phases.functions.map((fn) => new cw.GraphWidget({
      title: `${fn}: ms per invocation by phase`, width: 8, stacked: false,
      left: METRICS.phases.names.map((name) => emf(fn, name, FIVE_MINUTES).with({ statistic: 'Average', label: name })),
    })));
  }

  private alarm(spec: AlarmSpec): cw.Alarm {
    const alarm = new cw.Alarm(this, `Alarm-${spec.name}`, {
      alarmName: `carat-${this.deployment}-${spec.name}`,
      alarmDescription: `${spec.what} Runbook: docs/deploy.md#${spec.runbook}`,
      metric: spec.metric,
      threshold: spec.threshold,
      comparisonOperator: spec.comparison,
      evaluationPeriods: spec.evaluationPeriods,
      datapointsToAlarm: spec.datapointsToAlarm,
      treatMissingData: spec.missing,
    });
    alarm.addAlarmAction(new cwActions.SnsAction(this.topic));
    alarm.addOkAction(new cwActions.SnsAction(this.topic));
    this.alarms.push(alarm);
    return alarm;
  }
}
