import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { freePort } from '../support/ports.js';
import { metricsUrl, promtoolAvailable, scrapeText } from '../support/metrics-scrape.js';
import { parseExposition, valueOf, type Exposition } from '../support/prom-text.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { closedEvent, connectClient } from '../support/ws-peers.js';
import { captureWhen, startWstap, type WstapProcess } from '../support/wstap-process.js';

/**
 * Issue 20 item 2: the shipped examples work as they are. The rules file
 * passes `promtool check rules`; a real Prometheus (Debian's `prometheus`
 * package, installed by .ci/run) scrapes a real wstap, evaluates every
 * rule without error and answers every dashboard query; and every metric
 * name the examples use is one wstap really exposes. Where Prometheus is
 * not installed, the names and the YAML are still checked.
 */

const EXAMPLES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples');
const RULES = path.join(EXAMPLES, 'prometheus-rules.yml');

interface Dashboard {
  panels: Array<{ type: string; title: string; targets?: Array<{ expr: string }> }>;
  templating: { list: Array<{ name: string; query: { query: string } }> };
}

const dashboard = JSON.parse(fs.readFileSync(path.join(EXAMPLES, 'grafana-dashboard.json'), 'utf8')) as Dashboard;
const rules = YAML.parse(fs.readFileSync(RULES, 'utf8')) as { groups: Array<{ rules: Array<{ expr: string; alert?: string; record?: string }> }> };

/** Grafana's variables, as a dashboard user would have them: every instance, a one-minute rate window. */
function grafanaExpr(expr: string): string {
  return expr.replaceAll('$__rate_interval', '1m').replaceAll('$instance', '.*');
}

const dashboardExprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => grafanaExpr(t.expr)));
const ruleExprs = rules.groups.flatMap((g) => g.rules.map((r) => r.expr));

/** Metric names a PromQL expression reads (ours and the process metrics). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b((?:wstap|process|nodejs)_[a-z0-9_]+)\b/g)].map((m) => m[1] as string);
}

async function promQuery(base: string, query: string): Promise<{ status: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> }; error?: string }> {
  const got = await scrapeText(`${base}/api/v1/query?query=${encodeURIComponent(query)}`);
  return JSON.parse(got.body) as never;
}

describe('examples/prometheus-rules.yml and examples/grafana-dashboard.json', () => {
  let app: UpstreamApp;
  let wstap: WstapProcess;
  let exposition: Exposition;
  let metricsAt: string;

  beforeAll(async () => {
    app = await startUpstreamApp();
    wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--metrics', '0', '--instance', 'edge-b']);
    metricsAt = await metricsUrl(wstap);
    // Some traffic, so histograms and labelled series exist: a WebSocket closed by the client, with a ping.
    const next = app.nextConnection();
    const ws = await connectClient(`ws://127.0.0.1:${wstap.port}/ws/example`);
    const server = await next;
    ws.ping('p');
    await new Promise<void>((resolve) => ws.once('pong', () => resolve()));
    server.ws.send('hello');
    ws.close(1000);
    await closedEvent(ws);
    await captureWhen(wstap, (events) => events.some((e) => e.kind === 'conn.close'));
    exposition = await waitUntilAsync('a scrape that shows the close', async () => {
      const e = parseExposition((await scrapeText(metricsAt)).body);
      return valueOf(e, 'wstap_connections_opened_total', { kind: 'websocket' }) === 1 && e.samples.some((s) => s.name === 'wstap_connections_closed_total') ? e : null;
    }, () => wstap.stderr());
  });

  afterAll(async () => {
    await wstap?.stop();
    await app?.close();
  });

  it('use only metric names wstap exposes', () => {
    // A family is exposed once its TYPE is, with or without samples yet (a finding that never happened); a histogram as _bucket, _sum, _count.
    const exposed = new Set(exposition.samples.map((s) => s.name));
    for (const [name, type] of exposition.types) {
      exposed.add(name);
      if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) exposed.add(`${name}${suffix}`);
    }
    const used = new Set([...dashboardExprs, ...ruleExprs].flatMap(metricNames));
    expect(used.size).toBeGreaterThan(15);
    expect([...used].filter((name) => !exposed.has(name))).toEqual([]);
    expect(dashboard.templating.list[0]?.query.query).toBe('label_values(wstap_info, instance)');
    expect(exposed.has('wstap_info')).toBe(true);
  });

  it('pass promtool check rules, and a real Prometheus scraping wstap evaluates every rule and answers every dashboard query', async () => {
    if (!promtoolAvailable()) {
      // No Prometheus here (.ci/run installs it): the names were checked above; the YAML is at least well-formed with an expr per rule.
      expect(ruleExprs.every((e) => typeof e === 'string' && e.length > 0)).toBe(true);
      return;
    }
    const check = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
    expect(check.status, `${check.stdout}${check.stderr}`).toBe(0);
    expect(check.stdout).toMatch(/SUCCESS: \d+ rules found/);

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-prometheus-'));
    const target = metricsAt.replace(/^http:\/\//, '').replace(/\/metrics$/, '');
    fs.writeFileSync(
      path.join(dir, 'prometheus.yml'),
      YAML.stringify({
        global: { scrape_interval: '1s', evaluation_interval: '1s' },
        rule_files: [RULES],
        scrape_configs: [{ job_name: 'wstap', static_configs: [{ targets: [target] }] }],
      }),
    );
    const port = await freePort();
    const prometheus: ChildProcess = spawn(
      'prometheus',
      [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    prometheus.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    const base = `http://127.0.0.1:${port}`;
    try {
      // Scraped: Prometheus holds the same count wstap serves.
      const opened = await waitUntilAsync('Prometheus to scrape wstap', async () => {
        const r = await promQuery(base, 'sum(wstap_connections_opened_total{kind="websocket", job="wstap"})').catch(() => null);
        return r?.status === 'success' && r.data.result.length === 1 ? Number(r.data.result[0]?.value[1]) : null;
      }, () => log);
      expect(opened).toBe(valueOf(exposition, 'wstap_connections_opened_total', { kind: 'websocket' }));
      const info = await promQuery(base, 'wstap_info');
      expect(info.data.result[0]?.metric).toMatchObject({ wstap_instance: 'edge-b', mode: 'http', job: 'wstap', instance: target });
      // Every dashboard query is valid PromQL over what is scraped.
      for (const expr of dashboardExprs) {
        const r = await promQuery(base, expr);
        expect(r.status, `${expr}: ${r.error ?? ''}`).toBe('success');
      }
      const closes = await promQuery(base, 'sum by (closed_by, evidence) (wstap_connections_closed_total)');
      expect(closes.data.result.map((x) => [x.metric['closed_by'], x.metric['evidence'], x.value[1]])).toEqual([['client', 'close_frame', '1']]);
      // Every rule evaluated without error.
      const evaluated = await waitUntilAsync('every rule evaluated', async () => {
        const got = JSON.parse((await scrapeText(`${base}/api/v1/rules`)).body) as { data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string }> }> } };
        const all = got.data.groups.flatMap((g) => g.rules);
        return all.length === ruleExprs.length && all.every((r) => r.health !== 'unknown') ? all : null;
      }, () => log);
      expect(evaluated.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.lastError ?? r.health}`)).toEqual([]);
    } finally {
      prometheus.kill('SIGTERM');
      await new Promise<void>((resolve) => (prometheus.exitCode !== null ? resolve() : prometheus.once('exit', () => resolve())));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

/** Polls an async probe until it returns something other than null (generous: Prometheus starts in a few seconds on a busy machine). */
async function waitUntilAsync<T>(what: string, probe: () => Promise<T | null>, context: () => string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe().catch(() => null);
    if (found !== null) return found;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms\n${context()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
