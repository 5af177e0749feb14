import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const SCRIPT = path.resolve(__dirname, '..', 'scripts', 'probe-check.sh');
const EMF = '{"_aws":{"Timestamp":1764072000000,"CloudWatchMetrics":[{"Namespace":"Carat","Dimensions":[["Deployment"]],"Metrics":[{"Name":"EndToEndLatency","Unit":"Milliseconds"}]}]},"Deployment":"staging","EndToEndLatency":412}';

interface Fake { payload: string; log: string; functionError?: string; exit?: number }

/**
 * Runs probe-check.sh with a fake `aws` first on PATH: it records its arguments, writes
 * `payload` to the outfile (its last argument) and prints the invoke metadata.
 */
async function runCheck(fake: Fake, fn = 'arn:aws:lambda:eu-west-1:222222222222:function:carat-staging-probe'):
Promise<{ code: number | null; out: string; args: string[] }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'probe-check-'));
  const meta = JSON.stringify({
    StatusCode: 200,
    ExecutedVersion: '$LATEST',
    LogResult: Buffer.from(`START\n${fake.log}\nEND\n`).toString('base64'),
    ...(fake.functionError === undefined ? {} : { FunctionError: fake.functionError }),
  });
  fs.writeFileSync(path.join(dir, 'payload'), fake.payload);
  fs.writeFileSync(path.join(dir, 'meta'), meta);
  fs.writeFileSync(path.join(dir, 'aws'), [
    '#!/usr/bin/env bash',
    `printf '%s\\n' "$@" > '${dir}/args'`,
    `cp '${dir}/payload' "\${@: -1}"`,
    `cat '${dir}/meta'`,
    `exit ${fake.exit ?? 0}`,
  ].join('\n'), { mode: 0o755 });
  try {
    return await new Promise((resolve) => {
      const child = spawn('bash', [SCRIPT], { env: { PATH: `${dir}:${process.env.PATH}`, CARAT_PROBE_FUNCTION: fn } });
      let out = '';
      child.stdout.on('data', (d) => { out += d; });
      child.stderr.on('data', (d) => { out += d; });
      child.on('close', (code) => {
        const argsFile = path.join(dir, 'args');
        const args = fs.existsSync(argsFile) ? fs.readFileSync(argsFile, 'utf8').trim().split('\n') : [];
        resolve({ code, out, args });
      });
    });
  } finally {
    setTimeout(() => fs.rmSync(dir, { recursive: true, force: true }), 1000);
  }
}

describe('scripts/probe-check.sh', () => {
  test('passes when the probe read its point back and logged the EMF line; invokes in the function\'s region', async () => {
    const { code, out, args } = await runCheck({ payload: '{"latency_ms":412,"error":null,"at_ms":1764072000000}', log: EMF });
    expect(out).toContain('read back through the staging API in 412 ms');
    expect(code).toBe(0);
    expect(args.slice(0, 6)).toEqual([
      'lambda', 'invoke', '--region', 'eu-west-1', '--function-name', 'arn:aws:lambda:eu-west-1:222222222222:function:carat-staging-probe',
    ]);
    expect(args).toContain('--log-type');
  });

  test('a plain function name is invoked in the default region', async () => {
    const { code, args } = await runCheck({ payload: '{"latency_ms":5,"error":null,"at_ms":1}', log: EMF }, 'carat-staging-probe');
    expect(code).toBe(0);
    expect(args).not.toContain('--region');
  });

  test('fails with the probe\'s own reason when the point was not read back', async () => {
    const { code, out } = await runCheck({
      payload: '{"latency_ms":null,"error":"the point carat.probe at 1764072000 was not readable after 40 reads","at_ms":1}',
      log: '{"level":"WARN","fields":{"message":"probe failed"}}',
    });
    expect(code).not.toBe(0);
    expect(out).toContain('did not read its point back: the point carat.probe at 1764072000 was not readable');
    expect(out).toContain('probe failed'); // the log tail is shown
  });

  test('fails when the run reported a latency but printed no EMF line', async () => {
    const { code, out } = await runCheck({ payload: '{"latency_ms":412,"error":null,"at_ms":1}', log: 'nothing here' });
    expect(code).not.toBe(0);
    expect(out).toContain('no EndToEndLatency EMF line');
  });

  test('fails on a function error (the probe could not start) and on a failed invoke', async () => {
    const crashed = await runCheck({ payload: '{"errorType":"Runtime.ExitError","errorMessage":"CARAT_PROBE_API_KEY_SECRET_ARN"}', log: '', functionError: 'Unhandled' });
    expect(crashed.code).not.toBe(0);
    expect(crashed.out).toContain('the probe function failed (Unhandled)');
    const denied = await runCheck({ payload: '', log: '', exit: 254 });
    expect(denied.code).not.toBe(0);
    expect(denied.out).toContain('aws lambda invoke of');
  });
});
