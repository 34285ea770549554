import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attributeClose } from '../../src/analysis/close-attribution.js';
import type { CaptureEvent } from '../../src/capture/events.js';
import { startNginx, type Nginx } from '../support/nginx.js';
import { makeSelfSignedCertificate, type TestCertificate } from '../support/tls-certs.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { captureOfClosed, captureWhen, startWstap, type WstapProcess } from '../support/wstap-process.js';
import { closedEvent, connectClient, connOfUrl, evidenceOf, httpGet, ofConn, ofKind } from '../support/ws-peers.js';

/**
 * wstap accepting TLS (--tls-cert, --tls-key): nginx's `proxy_pass https://`
 * verifies wstap's certificate by name (proxy_ssl_verify with the test's own
 * certificate as the trusted one), and the relay behind it is the usual one.
 */
let dir: string;
let cert: TestCertificate;
let app: UpstreamApp;
let wstap: WstapProcess;
let nginx: Nginx;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-listen-tls-'));
  cert = makeSelfSignedCertificate(dir);
  app = await startUpstreamApp();
  wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--tls-cert', cert.certPath, '--tls-key', cert.keyPath]);
  nginx = await startNginx({
    upstreamPort: wstap.port,
    upstreamScheme: 'https',
    locationExtra: `proxy_ssl_verify on; proxy_ssl_trusted_certificate ${cert.certPath}; proxy_ssl_name wstap.test; proxy_ssl_server_name on;`,
  });
});

afterAll(async () => {
  await nginx?.stop();
  await wstap?.stop();
  await app?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('TLS listener behind nginx (proxy_pass https://)', () => {
  it('says where it listens as https://', () => {
    expect(wstap.listen).toBe(`https://127.0.0.1:${wstap.port}`);
  });

  it('relays a WebSocket echo round trip, and a client close frame is the client closing', async () => {
    const client = await connectClient(`ws://127.0.0.1:${nginx.port}/ws?test=tls-echo`);
    const { ws: server } = await app.nextConnection();
    server.on('message', (data, isBinary) => server.send(data, { binary: isBinary }));
    const echoed = new Promise<string>((resolve) => client.once('message', (d: Buffer) => resolve(d.toString())));
    client.send('through nginx and TLS');
    expect(await echoed).toBe('through nginx and TLS');
    client.close(4000, 'client done');
    expect(await closedEvent(client)).toEqual({ code: 4000, reason: 'client done' });

    const { conn, events: all } = await captureOfClosed(wstap, (events) => connOfUrl(events, 'test=tls-echo'));
    expect(ofConn(all, conn, 'ws.handshake.response')[0]?.statusCode).toBe(101);
    const messages = ofConn(all, conn, 'ws.message').map((m) => `${m.side}:${Buffer.from(m.preview, 'base64').toString()}`);
    expect(messages).toEqual(['client:through nginx and TLS', 'upstream:through nginx and TLS']);
    const evidence = evidenceOf(all, conn);
    expect(evidence[0]).toMatchObject({ side: 'client', kind: 'close-frame', code: 4000 });
    expect(attributeClose(evidence).closedBy).toBe('client');
    // nginx's address: TLS does not hide the peer.
    expect(ofConn(all, conn, 'conn.open')[0]?.remoteAddress).toBe('127.0.0.1');
  });

  it('an upstream close frame is the upstream closing', async () => {
    const client = await connectClient(`ws://127.0.0.1:${nginx.port}/ws?test=tls-upstream-close`);
    const { ws: server } = await app.nextConnection();
    server.close(1001, 'going away');
    expect(await closedEvent(client)).toEqual({ code: 1001, reason: 'going away' });
    const { conn, events: all } = await captureOfClosed(wstap, (events) => connOfUrl(events, 'test=tls-upstream-close'));
    const evidence = evidenceOf(all, conn);
    expect(evidence[0]).toMatchObject({ side: 'upstream', kind: 'close-frame', code: 1001 });
    expect(attributeClose(evidence).closedBy).toBe('upstream');
  });

  it('relays a plain GET', async () => {
    const answer = await httpGet(`http://127.0.0.1:${nginx.port}/plain?test=tls-get`);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ method: 'GET', url: '/plain?test=tls-get' });
    const all = await captureWhen(wstap, (events) => ofKind(events, 'http.response').some((r) => r.conn === connOfUrl(events, 'test=tls-get')));
    const conn = connOfUrl(all, 'test=tls-get') ?? -1;
    expect(ofConn(all, conn, 'http.response')[0]).toMatchObject({ statusCode: 200, complete: true });
  });
});

/** wstap --tcp under TLS, a raw TCP app behind it, and a TLS client whose raw socket the test keeps (to reset it). */
describe('TLS listener in --tcp mode: close evidence', () => {
  let tcpApp: net.Server;
  let accepted: Array<(s: net.Socket) => void> = [];
  const appSockets = new Set<net.Socket>();
  let tcpWstap: WstapProcess;

  beforeAll(async () => {
    tcpApp = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => undefined);
      appSockets.add(s);
      accepted.shift()?.(s);
    });
    await new Promise<void>((r) => tcpApp.listen(0, '127.0.0.1', r));
    const port = (tcpApp.address() as net.AddressInfo).port;
    tcpWstap = await startWstap(['--tcp', '--target', `127.0.0.1:${port}`, '--tls-cert', cert.certPath, '--tls-key', cert.keyPath]);
  });

  afterAll(async () => {
    await tcpWstap?.stop();
    for (const s of appSockets) s.destroy();
    await new Promise<void>((r) => tcpApp.close(() => r()));
  });

  async function connect(): Promise<{ client: tls.TLSSocket; raw: net.Socket; upstream: net.Socket }> {
    const upstream = new Promise<net.Socket>((resolve) => accepted.push(resolve));
    const raw = net.connect({ host: '127.0.0.1', port: tcpWstap.port, allowHalfOpen: true });
    const client = tls.connect({ socket: raw, ca: fs.readFileSync(cert.certPath), servername: 'wstap.test', allowHalfOpen: true } as tls.ConnectionOptions);
    client.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      client.once('secureConnect', resolve);
      client.once('error', reject);
    });
    return { client, raw, upstream: await upstream };
  }

  /** wstap's id of the connection from this client port. */
  const connFrom = (clientPort: number) => (all: CaptureEvent[]): number | undefined => ofKind(all, 'conn.open').find((o) => o.remotePort === clientPort)?.conn;

  it('says where it listens as tls:', () => {
    expect(tcpWstap.listen).toBe(`tls:127.0.0.1:${tcpWstap.port}`);
  });

  it('a client FIN is recorded and passed on as a FIN; the other direction stays open', async () => {
    const { client, raw, upstream } = await connect();
    const clientPort = raw.localPort ?? -1;
    let got = '';
    upstream.on('data', (d: Buffer) => (got += d.toString()));
    const upstreamEnded = new Promise<void>((r) => upstream.once('end', r));
    client.end('last words');
    await upstreamEnded;
    expect(got).toBe('last words');
    const late = new Promise<string>((resolve) => client.once('data', (d: Buffer) => resolve(d.toString())));
    upstream.end('answer after the client FIN');
    expect(await late).toBe('answer after the client FIN');
    const { conn, events: all } = await captureOfClosed(tcpWstap, connFrom(clientPort));
    expect(evidenceOf(all, conn).map((e) => `${e.side}:${e.kind}`)).toEqual(['client:fin', 'upstream:fin']);
  });

  it("a client's RST (under its TLS) is recorded as an RST and passed on as one", async () => {
    const { client, raw, upstream } = await connect();
    const clientPort = raw.localPort ?? -1;
    client.write('hello');
    await new Promise((r) => upstream.once('data', r));
    const upstreamError = new Promise<string | undefined>((resolve) => upstream.once('error', (e: NodeJS.ErrnoException) => resolve(e.code)));
    raw.resetAndDestroy();
    expect(await upstreamError).toBe('ECONNRESET');
    const { conn, events: all } = await captureOfClosed(tcpWstap, connFrom(clientPort));
    expect(evidenceOf(all, conn)[0]).toMatchObject({ side: 'client', kind: 'rst' });
  });

  it("the upstream's RST reaches the TLS client as an RST (through the raw socket under its TLS)", async () => {
    const { client, raw, upstream } = await connect();
    const clientPort = raw.localPort ?? -1;
    client.write('hello');
    await new Promise((r) => upstream.once('data', r));
    const clientError = new Promise<string | undefined>((resolve) => client.once('error', (e: NodeJS.ErrnoException) => resolve(e.code)));
    upstream.resetAndDestroy();
    expect(await clientError).toBe('ECONNRESET');
    const { conn, events: all } = await captureOfClosed(tcpWstap, connFrom(clientPort));
    expect(evidenceOf(all, conn)[0]).toMatchObject({ side: 'upstream', kind: 'rst' });
    // wstap is still there for the next client.
    const next = await connect();
    next.client.destroy();
    next.upstream.destroy();
  });

  it('a client that does not speak TLS is recorded with the handshake error, and the app never sees it', async () => {
    let appSaw = false;
    accepted.push(() => (appSaw = true));
    const plain = net.connect({ host: '127.0.0.1', port: tcpWstap.port });
    plain.on('error', () => undefined);
    await new Promise((r) => plain.once('connect', r));
    const clientPort = plain.localPort ?? -1;
    plain.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((r) => plain.once('close', r));
    const { conn, events: all } = await captureOfClosed(tcpWstap, connFrom(clientPort));
    expect(ofConn(all, conn, 'tcp.error')[0]).toMatchObject({ side: 'client', code: 'ERR_SSL_HTTP_REQUEST' });
    expect(appSaw).toBe(false);
    accepted = [];
  });

  it('a client that sends its FIN before the handshake is done is recorded as closing with a FIN, and let go', async () => {
    const quitter = net.connect({ host: '127.0.0.1', port: tcpWstap.port, allowHalfOpen: true });
    quitter.on('error', () => undefined);
    await new Promise((r) => quitter.once('connect', r));
    const clientPort = quitter.localPort ?? -1;
    quitter.end();
    // Half-open is not kept for a connection that never got as far as TLS: wstap closes its side.
    await new Promise((r) => quitter.once('close', r));
    const { conn, events: all } = await captureOfClosed(tcpWstap, connFrom(clientPort));
    expect(evidenceOf(all, conn).map((e) => `${e.side}:${e.kind}`)).toEqual(['client:fin']);
  });
});

describe('a TLS handshake that never comes', () => {
  it('is given up after --head-timeout (http mode), recorded with ERR_TLS_HANDSHAKE_TIMEOUT as the client\'s error', async () => {
    const w = await startWstap(['--target', 'http://127.0.0.1:1', '--tls-cert', cert.certPath, '--tls-key', cert.keyPath, '--head-timeout', '1']);
    try {
      const silent = net.connect({ host: '127.0.0.1', port: w.port });
      silent.on('error', () => undefined);
      await new Promise((r) => silent.once('connect', r));
      const clientPort = silent.localPort ?? -1;
      // wstap ends it, not the client.
      await new Promise((r) => silent.once('close', r));
      const { conn, events: all } = await captureOfClosed(w, (events) => ofKind(events, 'conn.open').find((o) => o.remotePort === clientPort)?.conn);
      expect(ofConn(all, conn, 'tcp.error')[0]).toMatchObject({ side: 'client', code: 'ERR_TLS_HANDSHAKE_TIMEOUT' });
    } finally {
      expect(await w.stop()).toBe(0);
    }
  });
});

describe('TLS on a unix socket', () => {
  it('serves https over the socket file and says so as https://unix:PATH', async () => {
    const socketPath = path.join(dir, 'tls.sock');
    const w = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--tls-cert', cert.certPath, '--tls-key', cert.keyPath], { listen: `unix:${socketPath}` });
    try {
      expect(w.listen).toBe(`https://unix:${socketPath}`);
      const answer = await httpGet({ protocol: 'https:', socketPath, path: '/plain?test=tls-unix', servername: 'wstap.test', ca: fs.readFileSync(cert.certPath), agent: false });
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body)).toMatchObject({ url: '/plain?test=tls-unix' });
    } finally {
      expect(await w.stop()).toBe(0);
    }
    expect(fs.existsSync(socketPath)).toBe(false);
  });
});

describe('--tls-cert and --tls-key on the command line', () => {
  it('takes both or neither, and names an unreadable or unusable file', async () => {
    const cases: Array<{ args: string[]; says: string }> = [
      { args: ['--tls-cert', 'x.pem'], says: '--tls-cert needs --tls-key too' },
      { args: ['--tls-key', 'x.pem'], says: '--tls-key needs --tls-cert too' },
      { args: ['--tls-cert', path.join(dir, 'missing.pem'), '--tls-key', 'k.pem'], says: `--tls-cert ${path.join(dir, 'missing.pem')}: cannot read it (ENOENT)` },
      { args: ['--tls-cert', cert.keyPath, '--tls-key', cert.certPath], says: `--tls-cert ${cert.keyPath} and --tls-key ${cert.certPath}: not a usable certificate and key` },
    ];
    for (const c of cases) {
      const w = await startWstap(['--target', 'http://127.0.0.1:1', ...c.args], { mayFail: true });
      expect(await w.stop()).toBe(2);
      expect(w.stderr()).toContain(c.says);
    }
  });
});
