import fs from 'node:fs';
import path from 'node:path';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attributeClose } from '../../src/analysis/close-attribution.js';
import type { CaptureEvent } from '../../src/capture/events.js';
import type { HarEntry } from '../../src/har/har-types.js';
import { frame } from '../support/frame-fixtures.js';
import { finalCapture, startNginxStack, type NginxStack } from '../support/nginx-stack.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { rawClient, startRawApp, type RawApp, type RawEnd } from '../support/raw-peers.js';
import { waitUntil } from '../support/wait-until.js';
import { closedEvent, evidenceOf, ofConn, sleep } from '../support/ws-peers.js';
import { captureOfClosed, runWstapSync, startWstap, type WstapProcess } from '../support/wstap-process.js';

/**
 * With --probe-token, a request carrying X-Wstap-Probe never reaches the app
 * even when it is not its connection's first (nginx's upstream `keepalive`
 * sends it on a connection that carried ordinary requests before):
 * later-request-gate.ts holds each later head until complete. Raw sockets
 * at both ends: the app's received bytes are what it saw, byte for byte.
 */

const TOKEN = 'later-request-token';
const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';

function probeUpgrade(path: string, token = TOKEN): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
    `X-Wstap-Probe: ${token}\r\nX-Wstap-Probe-Run: later-run\r\nX-Wstap-Probe-Variant: later\r\nX-Wstap-Probe-Mode: silent\r\n\r\n`
  );
}

/** A masked ping from the client, as it may follow its upgrade request at once. */
const PING = frame({ opcode: 9, payload: Buffer.from('early'), mask: new Uint8Array([1, 2, 3, 4]) }).toString('latin1');

/** The conn id whose http.request has this URL. */
function connOf(events: CaptureEvent[], url: string): number | undefined {
  for (const e of events) if (e.kind === 'http.request' && e.url === url) return e.conn;
  return undefined;
}

describe('--probe-token: a probe request later on a keep-alive connection', () => {
  let app: RawApp;
  let wstap: WstapProcess;
  beforeAll(async () => {
    app = await startRawApp();
    wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--probe-token', TOKEN]);
  });
  afterAll(async () => {
    await wstap?.stop();
    await app?.close();
  });

  /** A client connection whose first request /NAME the app answered; the app's end of it. */
  async function warmed(name: string): Promise<{ client: RawEnd; up: RawEnd; first: string }> {
    const index = app.connections.length;
    const client = await rawClient(wstap.port);
    const first = `GET /${name} HTTP/1.1\r\nHost: app\r\n\r\n`;
    client.write(first);
    const up = await app.connection(index);
    await up.waitFor(first);
    up.write(OK);
    await client.waitFor(OK);
    return { client, up, first };
  }

  it('a probe upgrade after a relayed GET: wstap answers 101 itself, the app saw only the GET and got a FIN from wstap', async () => {
    const { client, up, first } = await warmed('warm-a');
    // The probe's first frame in the same write as its head: wstap's end answers it.
    client.write(probeUpgrade('/probe-a') + PING);
    await client.waitFor('HTTP/1.1 101 Switching Protocols');
    const pong = frame({ opcode: 10, payload: Buffer.from('early') }).toString('latin1');
    await client.waitFor(pong);
    expect(client.received.startsWith(OK)).toBe(true);
    expect(await up.waitForEnd()).toBe('fin');
    expect(up.received).toBe(first);
    client.socket.end();
    await client.waitForEnd();

    const { conn, events } = await captureOfClosed(wstap, (evs) => connOf(evs, '/warm-a'));
    expect(ofConn(events, conn, 'http.request').map((e) => [e.exchange, e.url])).toEqual([[1, '/warm-a']]);
    expect(ofConn(events, conn, 'http.response').map((e) => [e.exchange, e.statusCode, e.complete])).toEqual([[1, 200, true]]);
    const takeover = ofConn(events, conn, 'proxy.takeover');
    expect(takeover.map((e) => e.exchange)).toEqual([2]);
    expect(takeover[0]?.reason).toContain('request 2 carries X-Wstap-Probe');
    expect(ofConn(events, conn, 'proxy.close')).toEqual([]);
    expect(ofConn(events, conn, 'ws.handshake.request').map((e) => e.url)).toEqual(['/probe-a']);
    expect(ofConn(events, conn, 'ws.handshake.response').map((e) => e.statusCode)).toEqual([101]);
    expect(ofConn(events, conn, 'ws.frame').map((f) => `${f.side}:${f.opcode}`)).toEqual(['client:9', 'upstream:10']);
    // The app's FIN answering wstap's is not the connection's evidence: its upstream side is wstap's own end by then.
    expect(ofConn(events, conn, 'tcp.fin').map((e) => e.side)).toEqual(['client']);
    // Order: the GET's exchange, wstap's close of the app's connection, then the probe.
    const kinds = events.filter((e) => 'conn' in e && e.conn === conn).map((e) => e.kind);
    expect(kinds.indexOf('http.response')).toBeLessThan(kinds.indexOf('proxy.takeover'));
    expect(kinds.indexOf('proxy.takeover')).toBeLessThan(kinds.indexOf('ws.handshake.request'));
    expect(kinds.at(-1)).toBe('conn.close');
    const close = ofConn(events, conn, 'conn.close')[0];
    const sentByClient = first.length + probeUpgrade('/probe-a').length + PING.length;
    expect(close?.bytes.fromClient).toBe(sentByClient);
    expect(close?.bytes.fromUpstream).toBe(client.received.length);
    // Who closed is judged from the probe's own end, as on a connection whose first request was the probe.
    expect(attributeClose(evidenceOf(events, conn)).closedBy).toBe('client');

    // The HAR: the GET as an ordinary entry, the probe as a WebSocket entry closed by the client.
    const har = path.join(path.dirname(wstap.capturePath), 'later.har');
    expect(runWstapSync(['export', wstap.capturePath, '-o', har]).status).toBe(0);
    const entries = (JSON.parse(fs.readFileSync(har, 'utf8')) as { log: { entries: HarEntry[] } }).log.entries.filter((e) => e._wstap?.connectionId === conn);
    expect(entries.map((e) => [e.request.url.replace(/^[a-z]+:\/\/app/, ''), e.response.status, e._resourceType ?? 'http'])).toEqual(
      expect.arrayContaining([
        ['/warm-a', 200, 'http'],
        ['/probe-a', 101, 'websocket'],
      ]),
    );
    expect(entries.find((e) => e._resourceType === 'websocket')?._wstap?.closedBy).toBe('client');
  });

  it('a wrong token later on the connection gets 403 and never reaches the app; a later report request gets its JSON as exchange 2', async () => {
    const wrong = await warmed('warm-b');
    wrong.client.write(probeUpgrade('/probe-b', 'not-the-token'));
    await wrong.client.waitFor('HTTP/1.1 403 Forbidden');
    expect(await wrong.up.waitForEnd()).toBe('fin');
    expect(wrong.up.received).toBe(wrong.first);
    await wrong.client.waitForEnd();
    wrong.client.socket.end();
    const { conn, events } = await captureOfClosed(wstap, (evs) => connOf(evs, '/warm-b'));
    expect(ofConn(events, conn, 'http.rejected').map((e) => [e.url, e.statusCode])).toEqual([['/probe-b', 403]]);

    const report = await warmed('warm-c');
    report.client.write(`GET /report HTTP/1.1\r\nHost: app\r\nX-Wstap-Probe: ${TOKEN}\r\nX-Wstap-Probe-Report: later-run\r\n\r\n`);
    await report.client.waitForEnd();
    report.client.socket.end();
    expect(report.client.received.slice(OK.length)).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*Connection: close\r\n\r\n\{"run":"later-run"/);
    expect(await report.up.waitForEnd()).toBe('fin');
    expect(report.up.received).toBe(report.first);
    const closed = await captureOfClosed(wstap, (evs) => connOf(evs, '/warm-c'));
    expect(ofConn(closed.events, closed.conn, 'http.request').map((e) => [e.exchange, e.url])).toEqual([
      [1, '/warm-c'],
      [2, '/report'],
    ]);
    expect(ofConn(closed.events, closed.conn, 'http.response').map((e) => [e.exchange, e.statusCode])).toEqual([
      [1, 200],
      [2, 200],
    ]);
  });

  it('pipelined behind a slow answer: the GET reaches the app, its whole answer reaches the client first, then wstap answers the probe', async () => {
    const index = app.connections.length;
    const client = await rawClient(wstap.port);
    const get = 'GET /slow HTTP/1.1\r\nHost: app\r\n\r\n';
    client.write(get + probeUpgrade('/probe-pipelined'));
    const up = await app.connection(index);
    await up.waitFor(get);
    const answer = 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n';
    up.write(answer);
    await client.waitFor(answer);
    await sleep(200);
    up.write('01234');
    await client.waitFor('01234');
    await sleep(200);
    // Nothing of wstap's own answer before the app's is complete.
    expect(client.received).toBe(`${answer}01234`);
    up.write('56789');
    await client.waitFor('HTTP/1.1 101 Switching Protocols');
    expect(client.received.startsWith(`${answer}0123456789HTTP/1.1 101 Switching Protocols\r\n`)).toBe(true);
    expect(await up.waitForEnd()).toBe('fin');
    expect(up.received).toBe(get);
    client.socket.end();
    const { conn, events } = await captureOfClosed(wstap, (evs) => connOf(evs, '/slow'));
    expect(ofConn(events, conn, 'http.response').map((e) => [e.exchange, e.responseBodyBytes, e.complete])).toEqual([[1, 10, true]]);
    expect(ofConn(events, conn, 'ws.handshake.response').map((e) => e.statusCode)).toEqual([101]);
  });

  it('an ordinary upgrade later on the connection: its early frame is not held, and after the 101 frames flow byte for byte both ways', async () => {
    const { client, up, first } = await warmed('warm-ws');
    const upgrade = 'GET /ws HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
    const early = frame({ opcode: 1, payload: Buffer.from('early text'), mask: new Uint8Array([9, 8, 7, 6]) }).toString('latin1');
    client.write(upgrade + early);
    await up.waitFor(early);
    up.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n');
    await client.waitFor('101 Switching Protocols');
    // A frame that looks like a request head with the probe header: after a 101 it is payload, passed on as it is.
    const later = frame({ opcode: 1, payload: Buffer.from(probeUpgrade('/not-a-request')), mask: new Uint8Array([1, 1, 1, 1]) }).toString('latin1');
    for (let i = 0; i < later.length; i += 7) client.write(later.slice(i, i + 7));
    expect(await up.waitFor((r) => r.length >= first.length + upgrade.length + early.length + later.length)).toBe(first + upgrade + early + later);
    const answer = frame({ opcode: 1, payload: Buffer.from('from the app') }).toString('latin1');
    up.write(answer);
    await client.waitFor(answer);
    client.socket.end();
    await up.waitForEnd();
    up.socket.end();
    const { conn, events } = await captureOfClosed(wstap, (evs) => connOf(evs, '/warm-ws'));
    expect(ofConn(events, conn, 'ws.frame').map((f) => `${f.side}:${f.length}`)).toEqual([`client:10`, `client:${probeUpgrade('/not-a-request').length}`, 'upstream:12']);
    expect(ofConn(events, conn, 'proxy.takeover')).toEqual([]);
  });

  it('a report request pipelined behind a GET, the client half-closing at once: answered after the GET, nothing of it reaches the app', async () => {
    const index = app.connections.length;
    const client = await rawClient(wstap.port);
    const get = 'GET /before-fin HTTP/1.1\r\nHost: app\r\n\r\n';
    client.socket.end(Buffer.from(`${get}GET /report-fin HTTP/1.1\r\nHost: app\r\nX-Wstap-Probe: ${TOKEN}\r\nX-Wstap-Probe-Report: later-run\r\n\r\n`, 'latin1'));
    const up = await app.connection(index);
    await up.waitFor(get);
    await sleep(100);
    up.write(OK);
    expect(await client.waitForEnd()).toBe('fin');
    expect(client.received).toMatch(/^HTTP\/1\.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP\/1\.1 200 OK\r\n[^]*\r\n\r\n\{"run":"later-run"/);
    expect(await up.waitForEnd()).toBe('fin');
    expect(up.received).toBe(get);
    const { conn, events } = await captureOfClosed(wstap, (evs) => connOf(evs, '/before-fin'));
    expect(ofConn(events, conn, 'http.response').map((e) => [e.exchange, e.statusCode])).toEqual([
      [1, 200],
      [2, 200],
    ]);
    expect(ofConn(events, conn, 'proxy.takeover').map((e) => e.exchange)).toEqual([2]);
  });
});

describe('later request heads written byte by byte reach the app byte for byte, token or not', () => {
  const second =
    'POST /second?x=1 HTTP/1.1\r\nhOsT: app\r\nX-Dup: 1\r\nX-Dup: 2\r\nx-weird:   spaced  \r\nContent-Length: 5\r\n\r\nhello' +
    'PUT /third HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\n\r\n';

  for (const token of [false, true]) {
    it(token ? 'with --probe-token (no probe header): held until complete, then identical' : 'without --probe-token', async () => {
      const app = await startRawApp();
      const wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`, ...(token ? ['--probe-token', TOKEN] : [])]);
      try {
        const client = await rawClient(wstap.port);
        client.socket.setNoDelay(true);
        const first = 'GET /first HTTP/1.1\r\nHost: app\r\n\r\n';
        client.write(first);
        const up = await app.connection(0);
        await up.waitFor(first);
        up.write(OK);
        await client.waitFor(OK);
        const headEnd = second.indexOf('\r\n\r\n') + 4;
        for (let i = 0; i < second.length; i++) {
          client.write(second[i] as string);
          if (i === headEnd - 2 && token) {
            // One byte short of the head's end: with the token nothing of it has gone on.
            await sleep(100);
            expect(up.received).toBe(first);
          }
          await sleep(1);
        }
        expect(await up.waitFor((r) => r.length >= first.length + second.length)).toBe(first + second);

        // A later head over 64 KiB: relayed unchanged (wstap answers 431 only to a first request).
        const big = `GET /big HTTP/1.1\r\nHost: app\r\nX-Big: ${'b'.repeat(70 * 1024)}\r\n\r\n`;
        client.write(big);
        expect(await up.waitFor((r) => r.length >= first.length + second.length + big.length)).toBe(first + second + big);
        expect(client.received).toBe(OK);
        client.socket.end();
        await up.waitForEnd();
        up.socket.end();
        await waitUntil('wstap to see the close', () => wstap.logs.some((l) => /^#1 closed /.test(l.msg)));
      } finally {
        await wstap.stop();
        await app.close();
      }
    });
  }
});

describe('through a real nginx with upstream keepalive: the probe rides a connection that carried ordinary requests', () => {
  let app: UpstreamApp;
  let stack: NginxStack;
  beforeAll(async () => {
    app = await startUpstreamApp();
    stack = await startNginxStack(
      app.port,
      {
        upstreamExtra: 'keepalive 4;',
        websocketHeaders: false,
        // Keep-alive to wstap needs no `Connection: close`; an upgrade still needs its Upgrade and Connection headers.
        locationExtra: 'proxy_set_header Upgrade $http_upgrade;\n      proxy_set_header Connection $http_connection;',
      },
      ['--probe-token', TOKEN],
    );
  });
  afterAll(async () => {
    await stack?.stop();
    await app?.close();
  });

  it('the app never sees the probe, which gets its 101 from wstap on the reused connection', async () => {
    for (const path of ['/warm-1', '/warm-2']) {
      const client = await rawClient(stack.nginx.port);
      client.write(`GET ${path} HTTP/1.1\r\nHost: app\r\n\r\n`);
      await client.waitFor(`"url":"${path}"`);
      client.socket.destroy();
    }
    expect(app.requests.map((r) => r.url)).toEqual(['/warm-1', '/warm-2']);

    const ws = new WebSocket(`ws://127.0.0.1:${stack.nginx.port}/probe-nginx`, {
      headers: { 'X-Wstap-Probe': TOKEN, 'X-Wstap-Probe-Run': 'nginx-run', 'X-Wstap-Probe-Variant': 'v', 'X-Wstap-Probe-Mode': 'silent' },
    });
    const probeConn = await new Promise<number>((resolve, reject) => {
      ws.once('upgrade', (res) => resolve(Number(res.headers['x-wstap-probe-conn'])));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`the probe got ${res.statusCode}`)));
      ws.once('error', reject);
    });
    await new Promise<void>((resolve) => (ws.readyState === WebSocket.OPEN ? resolve() : ws.once('open', () => resolve())));
    const pong = new Promise<string>((resolve) => ws.once('pong', (data: Buffer) => resolve(data.toString())));
    ws.ping('through nginx');
    expect(await pong).toBe('through nginx');
    const closed = closedEvent(ws);
    ws.close(1000);
    await closed;

    expect(app.upgrades).toEqual([]);
    expect(app.requests.map((r) => r.url)).toEqual(['/warm-1', '/warm-2']);
    const events = await finalCapture(stack);
    // The same wstap connection carried the warm-up requests, then the probe: nginx reused it.
    expect(ofConn(events, probeConn, 'http.request').map((e) => [e.exchange, e.url])).toEqual([
      [1, '/warm-1'],
      [2, '/warm-2'],
    ]);
    expect(ofConn(events, probeConn, 'ws.handshake.request').map((e) => e.url)).toEqual(['/probe-nginx']);
    expect(ofConn(events, probeConn, 'proxy.takeover').map((e) => e.exchange)).toEqual([3]);
    expect(attributeClose(evidenceOf(events, probeConn)).closedBy).toBe('client');
    expect(ofConn(events, probeConn, 'ws.frame').map((f) => `${f.side}:${f.opcode}`)).toEqual(['client:9', 'upstream:10', 'client:8', 'upstream:8']);
  });
});
