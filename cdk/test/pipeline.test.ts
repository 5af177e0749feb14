import { Aspects } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { parseConfig } from '../lib/config';
import { PipelineStack } from '../lib/stacks/pipeline-stack';
import { findings, testApp } from './helpers';

const config = parseConfig({
  environments: {
    staging: { account: '222222222222', region: 'us-east-1' },
    production: { account: '222222222222', region: 'us-east-1', kinesis: { shards: 2 } },
  },
  pipeline: {
    account: '111111111111',
    region: 'us-east-1',
    connectionArn: 'arn:aws:codeconnections:us-east-1:111111111111:connection/00000000-0000-0000-0000-000000000000',
    repository: 'example/carat',
  },
});
const app = testApp();
const stack = new PipelineStack(app, 'carat-pipeline', { config, pipeline: config.pipeline! });
Aspects.of(app).add(new AwsSolutionsChecks());
const template = Template.fromStack(stack);
const pipeline = Object.values(template.findResources('AWS::CodePipeline::Pipeline'))[0].Properties;
const stageNames: string[] = pipeline.Stages.map((s: any) => s.Name);
const actions = (stage: string): any[] => pipeline.Stages.find((s: any) => s.Name === stage).Actions;
const buildSpecs = (): string[] => Object.values(template.findResources('AWS::CodeBuild::Project'))
  .map((p: any) => String(p.Properties.Source.BuildSpec));

describe('Pipeline stack', () => {
  test('source → build → self-update → assets → staging → production', () => {
    expect(stageNames[0]).toBe('Source');
    expect(stageNames[1]).toBe('Build');
    expect(stageNames).toContain('UpdatePipeline');
    expect(stageNames.indexOf('staging')).toBeLessThan(stageNames.indexOf('production'));
    expect(stageNames.at(-1)).toBe('production');
  });

  test('source is the repository connection from the configuration', () => {
    expect(actions('Source')[0]).toMatchObject({
      ActionTypeId: { Category: 'Source', Provider: 'CodeStarSourceConnection' },
      Configuration: {
        ConnectionArn: config.pipeline!.connectionArn,
        FullRepositoryId: 'example/carat',
        BranchName: 'main',
      },
    });
  });

  test('build installs the toolchain, runs make test, then the full synth with bundling', () => {
    const build = buildSpecs().find((b) => b.includes('make test'));
    expect(build).toBeDefined();
    expect(build).toContain('bash scripts/install-deps.sh');
    expect(build!.indexOf('make test')).toBeLessThan(build!.indexOf('bash cdk/scripts/synth.sh'));
    expect(build).toContain('cdk/cdk.out');
  });

  test('staging ends with the probe step: it invokes the staging probe function, and may invoke only that', () => {
    const names = actions('staging').map((a: any) => a.Name);
    expect(names).toContain('Probe');
    expect(names).not.toContain('Smoke');
    const probe = actions('staging').find((a: any) => a.Name === 'Probe');
    const deploys = actions('staging').filter((a: any) => a.ActionTypeId.Provider === 'CloudFormation');
    expect(Math.max(...deploys.map((a: any) => a.RunOrder))).toBeLessThan(probe.RunOrder);
    const projects = Object.values(template.findResources('AWS::CodeBuild::Project'))
      .filter((p: any) => String(p.Properties.Source.BuildSpec).includes('bash cdk/scripts/probe-check.sh'));
    expect(projects).toHaveLength(1);
    const arn = { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':lambda:us-east-1:222222222222:function:carat-staging-probe']] };
    expect((projects[0] as any).Properties.Environment.EnvironmentVariables).toContainEqual(
      { Name: 'CARAT_PROBE_FUNCTION', Type: 'PLAINTEXT', Value: arn });
    const invokes = Object.values(template.findResources('AWS::IAM::Policy'))
      .flatMap((p: any) => p.Properties.PolicyDocument.Statement)
      .filter((st: any) => [st.Action].flat().includes('lambda:InvokeFunction'));
    expect(invokes).toEqual([expect.objectContaining({ Action: 'lambda:InvokeFunction', Effect: 'Allow', Resource: arn })]);
    // No step reads a secret any more: the probe's key stays inside the probe.
    const reads = Object.values(template.findResources('AWS::IAM::Policy'))
      .flatMap((p: any) => p.Properties.PolicyDocument.Statement)
      .filter((st: any) => [st.Action].flat().includes('secretsmanager:GetSecretValue'));
    expect(reads).toEqual([]);
  });

  test('the staging probe is named for the pipeline and may be invoked from the pipeline account', () => {
    const services = Template.fromStack(stack.staging.stacks.services);
    services.hasResourceProperties('AWS::Lambda::Function', { FunctionName: 'carat-staging-probe' });
    services.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction', Principal: '111111111111',
      FunctionName: { 'Fn::GetAtt': [Match.stringLikeRegexp('^EndToEndProbeFunction'), 'Arn'] },
    });
  });

  test('production waits for a manual approval', () => {
    const prod = actions('production');
    const approval = prod.find((a: any) => a.ActionTypeId.Category === 'Approval');
    expect(approval).toMatchObject({ Name: 'PromoteToProduction', ActionTypeId: { Provider: 'Manual' } });
    const deploys = prod.filter((a: any) => a.ActionTypeId.Provider === 'CloudFormation');
    expect(deploys.length).toBeGreaterThan(0);
    for (const d of deploys) expect(d.RunOrder).toBeGreaterThan(approval.RunOrder);
  });

  test('each stage deploys storage, services and monitoring of its environment', () => {
    for (const stage of ['staging', 'production']) {
      const stacks = new Set(actions(stage)
        .filter((a: any) => a.ActionTypeId.Provider === 'CloudFormation')
        .map((a: any) => a.Configuration.StackName));
      expect([...stacks].sort()).toEqual([`${stage}-carat-monitoring`, `${stage}-carat-services`, `${stage}-carat-storage`]);
    }
  });

  test('cdk-nag AwsSolutions: no unsuppressed findings in the pipeline and in every stage stack', () => {
    expect(findings(stack)).toEqual([]);
    for (const stage of [stack.staging, stack.production]) {
      for (const s of [stage.stacks.storage, stage.stacks.services, stage.stacks.monitoring]) expect(findings(s)).toEqual([]);
    }
  });

  test('snapshot', () => {
    expect(template.toJSON()).toMatchSnapshot();
  });
});
