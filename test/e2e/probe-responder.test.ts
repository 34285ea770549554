import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProbeRunReport } from '../../src/relay/probe-protocol.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { waitUntil } from '../support/wait-until.js';
import { closedEvent, connectClient, httpGet, ofConn, ofKind } from '../support/ws-peers.js';
import { captureWhen, startWstap, type WstapProcess } from '../support/wstap-process.js';

/**
 * `wstap proxy --probe-token TOKEN` answers requests carrying the token
 * itself (probe-responder.ts), whatever the path, and never forwards them;
 * a wrong token is refused; a request without the header is relayed.
 */

const TOKEN = 'responder-token-1';

function probeHeaders(run: string, variant: string, mode: string, interval = '0.1'): Record<string, string> {
  return { 'X-Wstap-Probe': TOKEN, 'X-Wstap-Probe-Run': run, 'X-Wstap-Probe-Variant': variant, 'X-Wstap-Probe-Mode': mode, 'X-Wstap-Probe-Interval': interval };
}

async function report(wstap: WstapProcess, run: string): Promise<ProbeRunReport> {
  const answer = await httpGet(`http://127.0.0.1:${wstap.port}/any/path`, { headers: { 'X-Wstap-Probe': TOKEN, 'X-Wstap-Probe-Report': run } });
  expect(answer.status).toBe(200);
  return JSON.parse(answer.body) as ProbeRunReport;
}

/** The run's report once `done` holds for it (wstap's end may see the close a moment after the client). */
async function reportWhen(wstap: WstapProcess, run: string, done: (r: ProbeRunReport) => boolean): Promise<ProbeRunReport> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await report(wstap, run);
    if (done(r)) return r;
    if (Date.now() > deadline) throw new Error(`the report of ${run} never reached the expected state: ${JSON.stringify(r)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('wstap proxy --probe-token', () => {
  let app: UpstreamApp;
  let wstap: WstapProcess;
  beforeAll(async () => {
    app = await startUpstreamApp();
    wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--probe-token', TOKEN]);
  });
  afterAll(async () => {
    await wstap?.stop();
    await app?.close();
  });

  it('answers a probe upgrade itself, sends messages on request, and reports the client FIN it saw', async () => {
    const ws = await connectClient(`ws://127.0.0.1:${wstap.port}/deep/path?x=1`, { headers: probeHeaders('run-a', 'server-messages', 'server-messages') });
    const messages: string[] = [];
    ws.on('message', (data: Buffer) => messages.push(data.toString()));
    await waitUntil('two messages from wstap', () => messages.length >= 2);
    expect(messages.slice(0, 2)).toEqual(['wstap probe message 1', 'wstap probe message 2']);
    const closed = closedEvent(ws);
    // A FIN without a close frame, as a hop's idle timeout sends it.
    (ws as unknown as { _socket: import('node:net').Socket })._socket.end();
    await closed;
    const seen = await reportWhen(wstap, 'run-a', (r) => (r.connections[0]?.ends.length ?? 0) > 0);
    expect(seen.connections).toHaveLength(1);
    expect(seen.connections[0]).toMatchObject({ variant: 'server-messages', mode: 'server-messages', ends: [{ kind: 'fin', side: 'client' }] });
    expect(app.upgrades).toEqual([]);
    expect(app.requests).toEqual([]);
  });

  it('answers pings with pongs and a close frame with a close frame, recorded in the capture as any connection', async () => {
    const ws = await connectClient(`ws://127.0.0.1:${wstap.port}/silent`, { headers: probeHeaders('run-b', 'client-pings', 'silent') });
    const pong = new Promise<string>((resolve) => ws.once('pong', (data: Buffer) => resolve(data.toString())));
    ws.ping('hello');
    expect(await pong).toBe('hello');
    const closed = closedEvent(ws);
    ws.close(4000, 'bye');
    expect(await closed).toEqual({ code: 4000, reason: '' });
    const r = await reportWhen(wstap, 'run-b', (got) => got.connections.length > 0 && got.connections[0]?.closedAt !== null);
    expect(r.connections[0]?.ends[0]).toMatchObject({ kind: 'close-frame', side: 'client', code: 4000, reason: 'bye' });
    const conn = r.connections[0]?.conn as number;
    const events = await captureWhen(wstap, (evs) => ofConn(evs, conn, 'conn.close').length > 0);
    const frames = ofConn(events, conn, 'ws.frame').map((f) => `${f.side}:${f.opcode}`);
    expect(frames).toEqual(['client:9', 'upstream:10', 'client:8', 'upstream:8']);
    expect(ofConn(events, conn, 'ws.handshake.request')[0]?.url).toBe('/silent');
    expect(ofConn(events, conn, 'tcp.fin').map((e) => e.side)).toContain('client');
  });

  it('refuses a wrong token (403) and bad probe headers (400) without forwarding; a request without the header is relayed', async () => {
    const statusOf = (headers: Record<string, string>, path: string): Promise<number> =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${wstap.port}${path}`, { headers });
        ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.once('open', () => reject(new Error(`${path} was upgraded`)));
        ws.once('error', () => undefined);
      });
    expect(await statusOf({ 'X-Wstap-Probe': 'not-the-token' }, '/wrong')).toBe(403);
    expect(await statusOf({ ...probeHeaders('run-c', 'x', 'loud') }, '/bad-mode')).toBe(400);
    expect((await httpGet(`http://127.0.0.1:${wstap.port}/plain`, { headers: { 'X-Wstap-Probe': 'nope', 'X-Wstap-Probe-Report': 'run-a' } })).status).toBe(403);
    expect(app.upgrades).toEqual([]);
    expect(app.requests).toEqual([]);
    const events = await captureWhen(wstap, (evs) => ofKind(evs, 'http.rejected').filter((e) => e.url === '/wrong' || e.url === '/bad-mode').length === 2);
    expect(ofKind(events, 'http.rejected').find((e) => e.url === '/bad-mode')?.reason).toContain('X-Wstap-Probe-Mode "loud" is not one of silent, server-messages, server-pings');

    const plain = await connectClient(`ws://127.0.0.1:${wstap.port}/no-header`);
    await waitUntil('the app to see the relayed upgrade', () => app.upgrades.includes('/no-header'));
    plain.close();
  });
});
