import { spawn } from 'node:child_process';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

const SCRIPT = path.resolve(__dirname, '..', 'scripts', 'smoke.sh');

interface Seen { method?: string; url?: string; key?: string | string[]; body: string }

/** Runs smoke.sh against a loopback server answering `status`; returns exit code, output, request. */
async function runSmoke(status: number): Promise<{ code: number | null; out: string; seen: Seen }> {
  const seen: Seen = { body: '' };
  const server = http.createServer((req, res) => {
    seen.method = req.method;
    seen.url = req.url;
    seen.key = req.headers['x-api-key'];
    req.on('data', (c) => { seen.body += c; });
    req.on('end', () => { res.writeHead(status, { 'Content-Type': 'application/json' }); res.end(status < 300 ? '{"success":true}' : '{"error":{"message":"boom"}}'); });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  try {
    return await new Promise((resolve) => {
      const child = spawn('bash', [SCRIPT], {
        env: { PATH: process.env.PATH, CARAT_API_URL: `http://127.0.0.1:${port}/`, CARAT_API_KEY: 'k-smoke' },
      });
      let out = '';
      child.stdout.on('data', (d) => { out += d; });
      child.stderr.on('data', (d) => { out += d; });
      child.on('close', (code) => resolve({ code, out, seen }));
    });
  } finally {
    server.close();
  }
}

describe('scripts/smoke.sh', () => {
  test('posts one carat.smoke point with the API key and succeeds on 2xx', async () => {
    const before = Math.floor(Date.now() / 1000);
    const { code, out, seen } = await runSmoke(202);
    expect(code).toBe(0);
    expect(out).toContain('HTTP 202');
    expect(out).not.toContain('k-smoke');
    expect(seen).toMatchObject({ method: 'POST', url: '/api/v1/points', key: 'k-smoke' });
    const points = JSON.parse(seen.body);
    expect(points).toHaveLength(1);
    expect(points[0]).toMatchObject({ series: 'carat.smoke', value: 1 });
    expect(points[0].time).toBeGreaterThanOrEqual(before);
    expect(points[0].time).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
  });

  test('fails on anything but 2xx, showing the answer', async () => {
    const { code, out } = await runSmoke(500);
    expect(code).not.toBe(0);
    expect(out).toContain('HTTP 500');
    expect(out).toContain('boom');
  });
});
