import http from 'node:http';
import { spawnSync } from 'node:child_process';
import type { WstapProcess } from './wstap-process.js';

/** Where a wstap started with --metrics serves them (its "metrics at http://HOST:PORT/metrics" log line). */
export async function metricsUrl(wstap: WstapProcess): Promise<string> {
  const line = await wstap.waitForLog((l) => l.msg.startsWith('metrics at '));
  return line.msg.slice('metrics at '.length);
}

/** One GET: status, content type and body. */
export function scrapeText(url: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString('utf8') }));
      })
      .on('error', reject);
  });
}

/** Whether Debian's `prometheus` package (promtool, prometheus) is installed: .ci/run installs it. */
export function promtoolAvailable(): boolean {
  return spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0;
}

/** `promtool check metrics` over an exposition: its lint problems (empty when clean). */
export function promtoolCheckMetrics(text: string): { status: number | null; output: string } {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}
