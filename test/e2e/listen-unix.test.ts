import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNginx, type Nginx } from '../support/nginx.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { captureOfClosed, captureWhen, startWstap, type WstapProcess } from '../support/wstap-process.js';
import { closedEvent, connectClient, connOfUrl, evidenceOf, httpGet, ofConn, ofKind } from '../support/ws-peers.js';

/**
 * wstap on a unix socket (--listen unix:PATH), as nginx reaches it with
 * `proxy_pass http://unix:PATH:`, and the rules for the socket file: mode
 * 0660, removed at exit, a stale one replaced, a live one or a regular file
 * never touched.
 */
let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-unix-'));
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Answers once something accepts on the socket file. */
function connects(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ path: socketPath });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('unix socket listener behind nginx (proxy_pass http://unix:PATH:)', () => {
  let app: UpstreamApp;
  let wstap: WstapProcess;
  let nginx: Nginx;
  let socketPath: string;

  beforeAll(async () => {
    socketPath = path.join(dir, 'wstap.sock');
    app = await startUpstreamApp();
    wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`], { listen: `unix:${socketPath}` });
    nginx = await startNginx({ proxyPass: `http://unix:${socketPath}:` });
  });

  afterAll(async () => {
    await nginx?.stop();
    await wstap?.stop();
    await app?.close();
  });

  it('says where it listens as unix:PATH, with no loopback warning, and the socket file is mode 0660', () => {
    expect(wstap.listen).toBe(`unix:${socketPath}`);
    expect(wstap.logs.some((l) => /not loopback/.test(l.msg))).toBe(false);
    const stat = fs.lstatSync(socketPath);
    expect(stat.isSocket()).toBe(true);
    expect((stat.mode & 0o777).toString(8)).toBe('660');
  });

  it('relays a WebSocket echo round trip; the connection has no peer address', async () => {
    const client = await connectClient(`ws://127.0.0.1:${nginx.port}/ws?test=unix-echo`);
    const { ws: server } = await app.nextConnection();
    server.on('message', (data, isBinary) => server.send(data, { binary: isBinary }));
    const echoed = new Promise<string>((resolve) => client.once('message', (d: Buffer) => resolve(d.toString())));
    client.send('through a unix socket');
    expect(await echoed).toBe('through a unix socket');
    client.close(1000, 'done');
    await closedEvent(client);

    const { conn, events: all } = await captureOfClosed(wstap, (events) => connOfUrl(events, 'test=unix-echo'));
    expect(ofConn(all, conn, 'conn.open')[0]).toMatchObject({ mode: 'http', remoteAddress: '', remotePort: 0, localPort: 0 });
    expect(ofConn(all, conn, 'ws.handshake.response')[0]?.statusCode).toBe(101);
    expect(ofConn(all, conn, 'ws.message').map((m) => `${m.side}:${Buffer.from(m.preview, 'base64').toString()}`)).toEqual([
      'client:through a unix socket',
      'upstream:through a unix socket',
    ]);
    expect(evidenceOf(all, conn)[0]).toMatchObject({ side: 'client', kind: 'close-frame', code: 1000 });
  });

  it('relays a plain GET', async () => {
    const answer = await httpGet(`http://127.0.0.1:${nginx.port}/plain?test=unix-get`);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ method: 'GET', url: '/plain?test=unix-get' });
    const all = await captureWhen(wstap, (events) => ofConn(events, connOfUrl(events, 'test=unix-get') ?? -1, 'http.response').length > 0);
    expect(ofConn(all, connOfUrl(all, 'test=unix-get') ?? -1, 'http.response')[0]).toMatchObject({ statusCode: 200, complete: true });
  });

  it('removes the socket file when it stops', async () => {
    await nginx.stop();
    expect(await wstap.stop()).toBe(0);
    expect(fs.existsSync(socketPath)).toBe(false);
  });
});

describe('unix socket listener in --tcp mode', () => {
  it("relays bytes, and the upstream's RST closes the client (a unix socket has no RST) with wstap carrying on", async () => {
    const appSockets: net.Socket[] = [];
    const tcpApp = net.createServer({ allowHalfOpen: true }, (s) => {
      appSockets.push(s);
      s.on('error', () => undefined);
      s.on('data', (d: Buffer) => (d.toString() === 'reset me' ? s.resetAndDestroy() : s.write(d)));
    });
    await new Promise<void>((r) => tcpApp.listen(0, '127.0.0.1', r));
    const socketPath = path.join(dir, 'tcp-mode.sock');
    const w = await startWstap(['--tcp', '--target', `127.0.0.1:${(tcpApp.address() as net.AddressInfo).port}`], { listen: `unix:${socketPath}` });
    try {
      expect(w.listen).toBe(`unix:${socketPath}`);
      const client = net.connect({ path: socketPath });
      client.on('error', () => undefined);
      const echoed = new Promise<string>((resolve) => client.once('data', (d: Buffer) => resolve(d.toString())));
      client.write('ping over unix');
      expect(await echoed).toBe('ping over unix');
      const closed = new Promise<void>((r) => client.once('close', () => r()));
      client.write('reset me');
      await closed;
      const all = await captureWhen(w, (events) => ofKind(events, 'conn.close').length === 1);
      const conn = ofKind(all, 'conn.open')[0]?.conn ?? -1;
      expect(ofKind(all, 'conn.open')[0]).toMatchObject({ mode: 'tcp', remoteAddress: '', remotePort: 0 });
      expect(evidenceOf(all, conn)[0]).toMatchObject({ side: 'upstream', kind: 'rst' });
      // Still serving.
      expect(await connects(socketPath)).toBe(true);
    } finally {
      expect(await w.stop()).toBe(0);
      for (const s of appSockets) s.destroy();
      await new Promise<void>((r) => tcpApp.close(() => r()));
    }
    expect(fs.existsSync(socketPath)).toBe(false);
  });
});

describe('the socket file rules', () => {
  const target = ['--target', 'http://127.0.0.1:1'];

  it('refuses a path another process still listens on, and leaves that socket alone', async () => {
    const socketPath = path.join(dir, 'shared.sock');
    const first = await startWstap(target, { listen: `unix:${socketPath}` });
    try {
      const second = await startWstap(target, { listen: `unix:${socketPath}`, mayFail: true });
      expect(await second.stop()).toBe(2);
      expect(second.stderr()).toContain(`cannot listen on unix:${socketPath}: another process is listening on ${socketPath}`);
      expect(fs.lstatSync(socketPath).isSocket()).toBe(true);
      expect(await connects(socketPath)).toBe(true);
    } finally {
      expect(await first.stop()).toBe(0);
    }
    expect(fs.existsSync(socketPath)).toBe(false);
  });

  it('replaces a stale socket (its wstap was killed) and serves on it', async () => {
    const socketPath = path.join(dir, 'stale.sock');
    const crashed = await startWstap(target, { listen: `unix:${socketPath}` });
    expect(await crashed.stop('SIGKILL')).toBe(null);
    expect(fs.lstatSync(socketPath).isSocket()).toBe(true);
    expect(await connects(socketPath)).toBe(false);
    const next = await startWstap(target, { listen: `unix:${socketPath}` });
    try {
      expect(next.listen).toBe(`unix:${socketPath}`);
      expect(await connects(socketPath)).toBe(true);
    } finally {
      expect(await next.stop()).toBe(0);
    }
  });

  it('refuses a path that is a regular file and leaves the file as it was', async () => {
    const filePath = path.join(dir, 'not-a-socket');
    fs.writeFileSync(filePath, 'keep me');
    const w = await startWstap(target, { listen: `unix:${filePath}`, mayFail: true });
    expect(await w.stop()).toBe(2);
    expect(w.stderr()).toContain(`${filePath} exists and is not a socket`);
    expect(fs.readFileSync(filePath, 'utf8')).toBe('keep me');
  });

  it('says why it cannot listen in a directory that does not exist, and exits 2', async () => {
    const socketPath = path.join(dir, 'no-such-dir', 'wstap.sock');
    const w = await startWstap(target, { listen: `unix:${socketPath}`, mayFail: true });
    expect(await w.stop()).toBe(2);
    expect(w.stderr()).toContain(`cannot listen on unix:${socketPath}: the directory ${path.dirname(socketPath)} does not exist`);
  });
});
