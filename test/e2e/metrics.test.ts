import fs from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attributeClose } from '../../src/analysis/close-attribution.js';
import { EMPTY_DIAGNOSIS_CONTEXT } from '../../src/analysis/connection-diagnosis.js';
import { findingsAt } from '../../src/analysis/connection-findings.js';
import { ConnectionTracker } from '../../src/analysis/connection-tracker.js';
import type { CaptureEvent } from '../../src/capture/events.js';
import { parsePathGroup } from '../../src/metrics/metric-labels.js';
import { MetricsView } from '../../src/metrics/metrics-view.js';
import { metricsUrl, promtoolAvailable, promtoolCheckMetrics, scrapeText } from '../support/metrics-scrape.js';
import { parseExposition, sumOf, valueOf, wstapSeries, type Exposition } from '../support/prom-text.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { closedEvent, connectClient, evidenceOf, httpGet, ofKind, rawWebSocket } from '../support/ws-peers.js';
import { captureWhen, runWstapSync, startWstap, type WstapProcess } from '../support/wstap-process.js';

/**
 * Issue 20: what /metrics says after traffic of every close kind is what
 * the capture holds. Each connection is made to close one way; the scrape
 * is compared with counts taken from the capture's events directly, and
 * with the same view fed the capture afterwards (every wstap_ series equal).
 */

const closes = (events: CaptureEvent[]): number => ofKind(events, 'conn.close').length;

/** What a series set looks like without the series only a live process has (capture totals, info). */
function comparable(e: Exposition): string[] {
  return wstapSeries(e)
    .filter((s) => !s.name.startsWith('wstap_capture_') && s.name !== 'wstap_info')
    .map((s) => `${s.name}${JSON.stringify(Object.entries(s.labels).sort())} ${s.value}`)
    .sort();
}

/** The capture fed to a fresh view, as the proxy's session feeds it live. */
async function replayed(events: readonly CaptureEvent[]): Promise<Exposition> {
  const view = new MetricsView({ processMetrics: false, pathGroups: [parsePathGroup('^/ws/=ws')] });
  const tracker = new ConnectionTracker();
  for (const event of events) {
    const summary = tracker.apply(event);
    view.apply(event, summary, findingsAt(event, summary, EMPTY_DIAGNOSIS_CONTEXT));
  }
  return parseExposition(await view.registry.metrics());
}

/** Kind of each connection, straight from its events: tcp mode, a handshake, or plain HTTP. */
function kindsOf(events: CaptureEvent[]): Map<number, string> {
  const kinds = new Map<number, string>();
  for (const e of ofKind(events, 'conn.open')) kinds.set(e.conn, e.mode === 'tcp' ? 'tcp' : 'http');
  for (const e of ofKind(events, 'ws.handshake.request')) kinds.set(e.conn, 'websocket');
  return kinds;
}

describe('proxy --metrics', () => {
  let app: UpstreamApp;
  let wstap: WstapProcess;
  let url: string;

  beforeAll(async () => {
    app = await startUpstreamApp();
    wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--metrics', '127.0.0.1:0', '--metrics-path-group', '^/ws/=ws', '--instance', 'edge-a']);
    url = await metricsUrl(wstap);
  });

  afterAll(async () => {
    await wstap?.stop();
    await app?.close();
  });

  it('after every close kind, /metrics counts what the capture holds', async () => {
    // Close frame from the client first (the app side of each WebSocket is taken in order).
    const aNext = app.nextConnection();
    const a = await connectClient(`ws://127.0.0.1:${wstap.port}/ws/client-closes`);
    a.send('hello');
    await aNext;
    a.close(1000, 'done');
    await closedEvent(a);
    // Close frame from the upstream first (a code of the app's own).
    const bNext = app.nextConnection();
    const b = await connectClient(`ws://127.0.0.1:${wstap.port}/ws/upstream-closes`);
    (await bNext).ws.close(4001, 'bye');
    await closedEvent(b);
    // FIN from the client, no close frame.
    const cNext = app.nextConnection();
    const c = await rawWebSocket(wstap.port, '/ws/client-fin');
    const cApp = await cNext;
    c.end();
    await new Promise<void>((resolve) => cApp.ws.once('close', () => resolve()));
    c.destroy();
    // RST from the client.
    const dNext = app.nextConnection();
    const d = await rawWebSocket(wstap.port, '/ws/client-rst');
    const dApp = await dNext;
    d.resetAndDestroy();
    await new Promise<void>((resolve) => dApp.ws.once('close', () => resolve()));
    // Plain HTTP, the connection closed after the answer.
    expect((await httpGet({ host: '127.0.0.1', port: wstap.port, path: '/api/plain', agent: false, headers: { connection: 'close' } })).status).toBe(200);
    // Left open until wstap stops (proxy close).
    const open = await connectClient(`ws://127.0.0.1:${wstap.port}/ws/left-open`);
    open.on('error', () => undefined);
    const atScrape = await captureWhen(wstap, (events) => closes(events) >= 5 && ofKind(events, 'ws.handshake.response').length >= 5);

    // Quiet now: scrape until the capture file holds every event the view has counted.
    let text = { status: 0, type: '', body: '' };
    const live = await waitUntilScraped(url, (e, got) => {
      text = got;
      return valueOf(e, 'wstap_capture_written_bytes_total') === fs.statSync(wstap.capturePath).size;
    });
    expect(text.status).toBe(200);
    expect(text.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const events = await wstap.events();
    expect(closes(events)).toBe(closes(atScrape));

    // Counted straight from the capture's events.
    const kinds = kindsOf(events);
    for (const kind of ['http', 'websocket', 'tcp']) {
      expect(valueOf(live, 'wstap_connections_opened_total', { kind }), kind).toBe([...kinds.values()].filter((k) => k === kind).length);
    }
    expect(valueOf(live, 'wstap_connections_open', { kind: 'websocket' })).toBe(1);
    const byCloser = new Map<string, number>();
    for (const close of ofKind(events, 'conn.close')) {
      const a = attributeClose(evidenceOf(events, close.conn));
      const first = a.first;
      const evidence = !first ? 'none' : first.side === 'proxy' ? 'proxy' : first.kind === 'close-frame' ? 'close_frame' : first.kind;
      const key = `${kinds.get(close.conn)} ${a.closedBy ?? 'unknown'} ${evidence}`;
      byCloser.set(key, (byCloser.get(key) ?? 0) + 1);
    }
    expect(Object.fromEntries(byCloser)).toEqual({
      'websocket client close_frame': 1,
      'websocket upstream close_frame': 1,
      'websocket client fin': 1,
      'websocket client rst': 1,
      // Plain HTTP with Connection: close: the app ends the connection after its answer (a FIN), seen on the byte relay.
      'http upstream fin': 1,
    });
    for (const [key, n] of byCloser) {
      const [kind, closedBy, evidence] = key.split(' ') as [string, string, string];
      expect(sumOf(live, 'wstap_connections_closed_total', { kind, closed_by: closedBy, evidence }), key).toBe(n);
    }
    expect(sumOf(live, 'wstap_connections_closed_total', { path_group: 'ws' })).toBe(4);
    for (const side of ['client', 'upstream'] as const) {
      const frames = ofKind(events, 'ws.frame').filter((f) => f.side === side);
      expect(sumOf(live, 'wstap_frames_total', { from: side })).toBe(frames.length);
      expect(sumOf(live, 'wstap_frame_payload_bytes_total', { from: side })).toBe(frames.reduce((n, f) => n + f.length, 0));
      expect(sumOf(live, 'wstap_relayed_bytes_total', { from: side })).toBe(ofKind(events, 'conn.close').reduce((n, c) => n + (side === 'client' ? c.bytes.fromClient : c.bytes.fromUpstream), 0));
      for (const f of frames.filter((x) => x.opcode === 8)) expect(valueOf(live, 'wstap_close_frames_total', { from: side, code: String(f.closeCode) })).toBeGreaterThan(0);
    }
    expect(valueOf(live, 'wstap_close_frames_total', { from: 'upstream', code: '4001' })).toBe(1);
    expect(valueOf(live, 'wstap_handshakes_total', { status_class: '1xx', path_group: 'ws' })).toBe(ofKind(events, 'ws.handshake.response').length);
    expect(valueOf(live, 'wstap_http_responses_total', { status_class: '2xx', path_group: 'other' })).toBe(1);
    expect(valueOf(live, 'wstap_capture_written_events_total')).toBe(events.length);
    expect(sumOf(live, 'wstap_info', { mode: 'http', wstap_instance: 'edge-a' })).toBe(1);
    // prom-client's process metrics are in by default (--metrics-no-process leaves them out: see the --tcp test).
    for (const name of ['process_cpu_seconds_total', 'nodejs_gc_duration_seconds', 'nodejs_active_handles_total']) expect(live.types.has(name), name).toBe(true);
    // The same view fed the capture afterwards says exactly the same.
    expect(comparable(await replayed(events))).toEqual(comparable(live));

    // Prometheus' own linter: our series are clean (prom-client's nodejs_active_*_total gauges are its own naming).
    if (promtoolAvailable()) {
      const lint = promtoolCheckMetrics(text.body);
      const problems = lint.output.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('nodejs_'));
      expect(problems).toEqual([]);
    }

    // Stopping: the connection left open is closed by wstap, and the capture (read as the view reads it) counts it as such.
    expect(await wstap.stop()).toBe(0);
    const all = await wstap.events();
    const after = await replayed(all);
    expect(sumOf(after, 'wstap_connections_closed_total', { kind: 'websocket', closed_by: 'proxy', evidence: 'proxy' })).toBe(1);
    expect(sumOf(after, 'wstap_connections_closed_total')).toBe(6);
    expect(valueOf(after, 'wstap_connections_open', { kind: 'websocket' })).toBe(0);
  });

  it('counts an upstream that cannot be reached (--tcp) as closed by the upstream with an error', async () => {
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const deadPort = (dead.address() as net.AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const tcp = await startWstap(['--tcp', '--target', `127.0.0.1:${deadPort}`, '--metrics', '0', '--metrics-no-process']);
    try {
      const tcpUrl = await metricsUrl(tcp);
      expect(tcpUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      await new Promise<void>((resolve) => {
        const socket = net.connect({ host: '127.0.0.1', port: tcp.port });
        socket.on('error', () => resolve());
        socket.on('close', () => resolve());
      });
      await captureWhen(tcp, (events) => closes(events) === 1);
      const e = await waitUntilScraped(tcpUrl, (x) => sumOf(x, 'wstap_connections_closed_total') === 1);
      expect(valueOf(e, 'wstap_connections_closed_total', { kind: 'tcp', closed_by: 'upstream', evidence: 'error', hop: '', setting: '', path_group: 'other' })).toBe(1);
      expect(valueOf(e, 'wstap_connections_opened_total', { kind: 'tcp' })).toBe(1);
      expect(valueOf(e, 'wstap_info', { version: valueOfInfo(e, 'version'), mode: 'tcp', wstap_instance: valueOfInfo(e, 'wstap_instance') })).toBe(1);
      expect(valueOfInfo(e, 'wstap_instance')).toMatch(/\/127\.0\.0\.1:0$/);
      // --metrics-no-process: wstap's own series only, none of prom-client's process and Node.js ones.
      expect([...e.types.keys()].filter((name) => !name.startsWith('wstap_'))).toEqual([]);
      expect((await scrapeText(tcpUrl.replace('/metrics', '/'))).status).toBe(404);
    } finally {
      expect(await tcp.stop()).toBe(0);
    }
  });

  it('refuses bad --metrics and --instance values and a metrics port in use before relaying anything', async () => {
    expect(runWstapSync(['proxy', '--target', 'http://127.0.0.1:1', '--metrics', 'unix:/tmp/x.sock']).stderr).toMatch(/Prometheus scrapes TCP/);
    expect(runWstapSync(['proxy', '--target', 'http://127.0.0.1:1', '--metrics', 'nine']).stderr).toMatch(/--metrics "nine" is not \[HOST:\]PORT/);
    expect(runWstapSync(['proxy', '--target', 'http://127.0.0.1:1', '--metrics-path-group', '^/a=a']).stderr).toMatch(/needs --metrics/);
    expect(runWstapSync(['proxy', '--target', 'http://127.0.0.1:1', '--metrics-no-process']).stderr).toMatch(/--metrics-no-process needs --metrics/);
    const badName = runWstapSync(['proxy', '--target', 'http://127.0.0.1:1', '--instance', 'edge\u001b[2J']);
    expect(badName.status).toBe(2);
    expect(badName.stderr).toContain('--instance "edge\\u001b[2J" must be 1 to 200 characters, none of them control characters');
    const bad = runWstapSync(['proxy', '--target', 'http://127.0.0.1:1', '--metrics', '0', '--metrics-path-group', '(=a']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--metrics-path-group "\(=a": REGEX/);
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    try {
      const port = (taken.address() as net.AddressInfo).port;
      const busy = await startWstap(['--target', 'http://127.0.0.1:1', '--metrics', String(port)], { mayFail: true });
      expect(await busy.exited).toBe(2);
      expect(busy.stderr()).toContain(`cannot listen on 127.0.0.1:${port} for --metrics: the port is in use`);
    } finally {
      await new Promise<void>((r) => taken.close(() => r()));
    }
  });

  it('warns about a metrics address other than loopback, as --listen does', async () => {
    const wide = await startWstap(['--target', 'http://127.0.0.1:1', '--metrics', '0.0.0.0:0']);
    try {
      await wide.waitForLog((l) => /--metrics: listening on 0\.0\.0\.0, not loopback: anyone who can reach this address can read wstap's metrics/.test(l.msg));
    } finally {
      expect(await wide.stop()).toBe(0);
    }
  });
});

function valueOfInfo(e: Exposition, label: string): string {
  return e.samples.find((s) => s.name === 'wstap_info')?.labels[label] ?? '';
}

/** Scrapes until `done` holds (counting what was just recorded can take a moment), every 100 ms. */
async function waitUntilScraped(url: string, done: (e: Exposition, text: { status: number; type: string; body: string }) => boolean): Promise<Exposition> {
  for (let i = 0; ; i++) {
    const text = await scrapeText(url);
    const e = parseExposition(text.body);
    if (done(e, text)) return e;
    if (i > 100) throw new Error('the scrape never showed the expected counts');
    await new Promise((r) => setTimeout(r, 100));
  }
}
