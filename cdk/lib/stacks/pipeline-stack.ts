import { ArnFormat, Stack, StackProps } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as pipelines from 'aws-cdk-lib/pipelines';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { CaratConfig, PipelineConfig, environment } from '../config';
import { CaratStage } from '../carat';

export interface PipelineStackProps extends StackProps {
  readonly config: CaratConfig;
  readonly pipeline: PipelineConfig;
}

/**
 * The release pipeline (CDK Pipelines, self-mutating): source from a CodeConnections
 * repository connection → build running every test (`make test`) and the full synth with
 * bundling → staging → the end-to-end probe against the staging API → manual approval →
 * production.
 */
export class PipelineStack extends Stack {
  readonly pipeline: pipelines.CodePipeline;
  readonly staging: CaratStage;
  readonly production: CaratStage;

  constructor(scope: Construct, id: string, props: PipelineStackProps) {
    super(scope, id, { ...props, env: { account: props.pipeline.account, region: props.pipeline.region } });
    const p = props.pipeline;
    const source = pipelines.CodePipelineSource.connection(p.repository, p.branch, {
      connectionArn: p.connectionArn,
      // The build needs the whole history-free tree only.
      codeBuildCloneOutput: false,
    });

    const stagingConfig = environment(props.config, p.stagingEnvironment);
    const productionConfig = environment(props.config, p.productionEnvironment);
    const crossAccount = [stagingConfig.account, productionConfig.account]
      .some((account) => account !== undefined && account !== p.account);

    this.pipeline = new pipelines.CodePipeline(this, 'Pipeline', {
      pipelineName: 'carat',
      pipelineType: codepipeline.PipelineType.V2,
      crossAccountKeys: crossAccount,
      enableKeyRotation: crossAccount,
      synth: new pipelines.CodeBuildStep('Build', {
        input: source,
        installCommands: [...p.installCommands],
        // Every test of the repository (Rust, local system, CDK), then the full synth with
        // cargo-lambda bundling; the pipeline deploys exactly these assets.
        commands: ['make test', 'bash cdk/scripts/synth.sh'],
        primaryOutputDirectory: 'cdk/cdk.out',
        buildEnvironment: {
          buildImage: codebuild.LinuxBuildImage.STANDARD_7_0,
          computeType: codebuild.ComputeType.LARGE,
        },
      }),
      codeBuildDefaults: {
        buildEnvironment: { buildImage: codebuild.LinuxBuildImage.STANDARD_7_0 },
      },
    });

    const stagingEnv = { account: stagingConfig.account ?? p.account, region: stagingConfig.region ?? p.region };
    const staging = this.staging = new CaratStage(this, 'staging', {
      deployment: p.stagingEnvironment,
      config: stagingConfig,
      env: stagingEnv,
      probeInvokerAccount: stagingEnv.account === p.account ? undefined : p.account,
    });
    const probeName = staging.stacks.services.probeFunctionName;
    if (probeName === undefined) throw new Error('PipelineStack: the staging check needs carat-probe in LANDED_BINARIES');
    const probeArn = Stack.of(this).formatArn({
      service: 'lambda',
      resource: 'function',
      resourceName: probeName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      ...stagingEnv,
    });
    // Invokes the end-to-end probe once: passes only if its point went in through the staging
    // ingest API and came back through the staging reader (cdk/scripts/probe-check.sh).
    const probe = new pipelines.CodeBuildStep('Probe', {
      input: source,
      env: { CARAT_PROBE_FUNCTION: probeArn },
      commands: ['bash cdk/scripts/probe-check.sh'],
      rolePolicyStatements: [new iam.PolicyStatement({
        actions: ['lambda:InvokeFunction'],
        resources: [probeArn],
      })],
    });
    this.pipeline.addStage(staging, { post: [probe] });

    const production = this.production = new CaratStage(this, 'production', {
      deployment: p.productionEnvironment,
      config: productionConfig,
      env: { account: productionConfig.account ?? p.account, region: productionConfig.region ?? p.region },
    });
    this.pipeline.addStage(production, {
      pre: [new pipelines.ManualApprovalStep('PromoteToProduction', {
        comment: 'Staging is deployed and its end-to-end probe passed. Promote this revision to production?',
      })],
    });

    // The pipeline's own resources come from CDK Pipelines; the findings below are about
    // defaults it chooses, each acceptable for a build pipeline.
    this.pipeline.buildPipeline();
    NagSuppressions.addResourceSuppressions(this, [
      { id: 'AwsSolutions-S1', reason: 'The artifact bucket of CDK Pipelines holds build artifacts only; CloudTrail records access to it.' },
      { id: 'AwsSolutions-IAM5', reason: 'CDK Pipelines scopes its roles to the artifact bucket (objects under it), its CodeBuild projects (report groups, log streams) and the bootstrap roles of the target accounts; the wildcards are inside those resources.' },
      { id: 'AwsSolutions-CB4', reason: 'CodeBuild artifacts are written to the pipeline artifact bucket, which is encrypted (SSE-S3, or KMS when cross-account keys are on).' },
      { id: 'AwsSolutions-KMS5', reason: 'Only present with cross-account keys, where key rotation is enabled (enableKeyRotation).' },
    ], true);
  }
}
