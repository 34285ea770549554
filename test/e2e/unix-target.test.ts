import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { attributeClose } from '../../src/analysis/close-attribution.js';
import type { CaptureEvent } from '../../src/capture/events.js';
import { closedEvent, connectClient, evidenceOf, httpGet, ofConn, ofKind } from '../support/ws-peers.js';
import { startWstap, type WstapProcess } from '../support/wstap-process.js';

/**
 * --target unix:/path/app.sock: an app listening on a unix socket (as behind
 * nginx's `proxy_pass http://unix:/path:`), reached by plain HTTP, WebSocket
 * upgrades and --tcp, with its close evidence recorded as for TCP targets.
 */

let dir: string;
let socketPath: string;
let server: http.Server;
const hosts: string[] = [];
const serverSide: WebSocket[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-unix-target-'));
  socketPath = path.join(dir, 'app.sock');
  server = http.createServer((req, res) => {
    hosts.push(req.headers.host ?? '');
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`unix app: ${req.method} ${req.url}`);
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => {
    serverSide.push(ws);
    ws.on('error', () => undefined);
    ws.on('message', (data, isBinary) => {
      if (data.toString() === 'close please') ws.close(1001, 'app leaving');
      else ws.send(data, { binary: isBinary });
    });
    hosts.push(req.headers.host ?? '');
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  fs.rmSync(dir, { recursive: true, force: true });
});

async function echo(ws: WebSocket, text: string): Promise<string> {
  const reply = new Promise<string>((resolve) => ws.once('message', (d: Buffer) => resolve(d.toString())));
  ws.send(text);
  return reply;
}

function connOf(events: CaptureEvent[], url: string): number {
  const conn = ofKind(events, 'ws.handshake.request').find((e) => e.url === url)?.conn;
  if (conn === undefined) throw new Error(`no handshake for ${url}`);
  return conn;
}

/** The capture once it holds the conn.close of the connection to `url` (the file is flushed every 250 ms). */
async function closedCapture(wstap: WstapProcess, url: string): Promise<CaptureEvent[]> {
  for (let i = 0; i < 100; i++) {
    const events = await wstap.events();
    const conn = ofKind(events, 'ws.handshake.request').find((e) => e.url === url)?.conn;
    if (conn !== undefined && ofConn(events, conn, 'conn.close').length > 0) return events;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no conn.close for the connection to ${url} in the capture`);
}

describe('--target unix:PATH', () => {
  it('plain GET: answered by the app, Host header unchanged, recorded', async () => {
    const wstap = await startWstap(['--target', `unix:${socketPath}`]);
    expect(wstap.logs.some((l) => l.target === `unix:${socketPath}`)).toBe(true);
    hosts.length = 0;
    const answer = await httpGet({ host: '127.0.0.1', port: wstap.port, path: '/api/health?x=1', agent: false });
    expect(answer).toMatchObject({ status: 200, body: 'unix app: GET /api/health?x=1' });
    expect(hosts).toEqual([`127.0.0.1:${wstap.port}`]);
    expect(await wstap.stop()).toBe(0);
    const events = await wstap.events();
    expect(ofKind(events, 'http.request')).toEqual([expect.objectContaining({ method: 'GET', url: '/api/health?x=1' })]);
    expect(ofKind(events, 'http.response')).toEqual([expect.objectContaining({ statusCode: 200 })]);
  });

  it('WebSocket: echo, the close frames of each side, and a client RST (there is no RST on a unix socket: it is closed)', async () => {
    const wstap = await startWstap(['--target', `unix:${socketPath}`]);
    const base = `ws://127.0.0.1:${wstap.port}`;

    const byClient = await connectClient(`${base}/ws?close=client`);
    expect(await echo(byClient, 'over a unix socket')).toBe('over a unix socket');
    byClient.close(1000, 'done');
    expect(await closedEvent(byClient)).toEqual({ code: 1000, reason: 'done' });

    const byApp = await connectClient(`${base}/ws?close=app`);
    const appClosed = closedEvent(byApp);
    byApp.send('close please');
    expect(await appClosed).toEqual({ code: 1001, reason: 'app leaving' });

    const resetting = await connectClient(`${base}/ws?close=rst`);
    expect(await echo(resetting, 'then reset')).toBe('then reset');
    const appSide = serverSide[serverSide.length - 1];
    const appSawClose = new Promise<number>((resolve) => appSide?.once('close', (code: number) => resolve(code)));
    resetting.on('error', () => undefined);
    (resetting as unknown as { _socket: net.Socket })._socket.resetAndDestroy();
    expect(await appSawClose).toBe(1006);

    // wstap is still up and relaying.
    const after = await connectClient(`${base}/ws?close=after`);
    expect(await echo(after, 'still here')).toBe('still here');
    after.close();
    await closedEvent(after);

    let events = await closedCapture(wstap, '/ws?close=after');
    const clientClose = evidenceOf(events, connOf(events, '/ws?close=client'));
    expect(clientClose[0]).toMatchObject({ side: 'client', kind: 'close-frame', code: 1000 });
    expect(attributeClose(clientClose).closedBy).toBe('client');
    const appClose = evidenceOf(events, connOf(events, '/ws?close=app'));
    expect(appClose[0]).toMatchObject({ side: 'upstream', kind: 'close-frame', code: 1001 });
    expect(attributeClose(appClose).closedBy).toBe('upstream');
    const rst = evidenceOf(events, connOf(events, '/ws?close=rst'));
    expect(rst.map((e) => `${e.side} ${e.kind}`)).toEqual(['client rst']);
    expect(await wstap.stop()).toBe(0);
    events = await wstap.events();
    expect(ofKind(events, 'conn.close')).toHaveLength(4);
    expect(wstap.stderr()).not.toMatch(/ERR_INVALID_HANDLE_TYPE/);
  });

  it('--tcp: bytes relayed both ways, FINs recorded', async () => {
    const wstap = await startWstap(['--tcp', '--target', `unix:${socketPath}`]);
    const ws = await connectClient(`ws://127.0.0.1:${wstap.port}/ws?mode=tcp`);
    expect(await echo(ws, 'raw bytes to a unix socket')).toBe('raw bytes to a unix socket');
    ws.close(1000);
    await closedEvent(ws);
    await wstap.waitForLog((l) => /closed by/.test(l.msg));
    expect(await wstap.stop()).toBe(0);
    const events = await wstap.events();
    const conn = ofKind(events, 'conn.open')[0]?.conn ?? -1;
    expect(evidenceOf(events, conn).map((e) => `${e.side} ${e.kind}`).sort()).toEqual(['client fin', 'upstream fin']);
    expect(ofConn(events, conn, 'conn.close')[0]?.bytes.fromClient).toBeGreaterThan(0);
  });

  it('a socket nobody listens on: 502 naming the error', async () => {
    const missing = path.join(dir, 'nobody.sock');
    const wstap = await startWstap(['--target', `unix:${missing}`]);
    const answer = await httpGet({ host: '127.0.0.1', port: wstap.port, path: '/', agent: false });
    expect(answer.status).toBe(502);
    expect(answer.body).toContain(`wstap: upstream unix:${missing} failed: ENOENT`);
    expect(await wstap.stop()).toBe(0);
    expect(ofKind(await wstap.events(), 'http.error')).toEqual([expect.objectContaining({ stage: 'connect', code: 'ENOENT', answeredStatus: 502 })]);
  });
});
