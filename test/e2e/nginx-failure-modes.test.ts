import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { attributeClose } from '../../src/analysis/close-attribution.js';
import type { CaptureEvent } from '../../src/capture/events.js';
import { finalCapture, startNginxStack, type NginxStack } from '../support/nginx-stack.js';
import { freePort } from '../support/ports.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { findingsAfterClose, findingsIn } from '../support/wstap-process.js';
import { connectClient, evidenceOf, ofConn, ofKind, sleep, unexpectedResponse } from '../support/ws-peers.js';

/** The failure modes an admin meets behind nginx, each with nginx configured to produce it. */

describe('nginx proxy_read_timeout 2s on an idle connection', () => {
  let app: UpstreamApp;
  let s: NginxStack;
  beforeAll(async () => {
    app = await startUpstreamApp();
    // wstap is told about the hop's timeout, as a profile would.
    s = await startNginxStack(app.port, { proxyReadTimeout: '2s' }, ['--timeout', 'nginx.proxy_read_timeout=2s']);
  });
  afterAll(async () => {
    await s?.stop();
    await app?.close();
  });

  it('is recorded as closed by the client side (nginx FIN) after about 2 s of silence', async () => {
    const client = await connectClient(`ws://127.0.0.1:${s.nginx.port}/ws?test=idle`);
    await app.nextConnection();
    const openedAt = Date.now();
    const code = await new Promise<number>((resolve) => client.once('close', (c: number) => resolve(c)));
    const lifetime = Date.now() - openedAt;
    // nginx closes without a close frame: the browser's 1006.
    expect(code).toBe(1006);
    expect(lifetime).toBeGreaterThan(1500);

    const all = await finalCapture(s);
    const conn = ofKind(all, 'ws.handshake.request')[0]?.conn ?? -1;
    const evidence = evidenceOf(all, conn);
    const attribution = attributeClose(evidence);
    expect(attribution.closedBy).toBe('client');
    expect(evidence[0]).toMatchObject({ side: 'client', kind: 'fin' });
    // Both directions were silent for the timeout (nginx re-arms it on a byte either way).
    expect(attribution.idleBeforeCloseMs?.upstream).toBeGreaterThan(1900);
    expect(attribution.idleBeforeCloseMs?.upstream).toBeLessThan(3500);
    expect(attribution.idleBeforeCloseMs?.client).toBeGreaterThan(1900);
    expect(s.wstap.logs.some((l) => /#\d+ closed by client \(client fin\)/.test(l.msg))).toBe(true);
    // The verdict names the hop and the setting, and the evidence it rests on
    // (nginx's timer and wstap's clock can disagree by a few ms: 1.99 s happens).
    const verdict = s.wstap.logs.find((l) => /^#\d+ closed by client side \(fin\) after [12]\.\d\d s without data either way: matches nginx proxy_read_timeout 2s/.test(l.msg));
    expect(verdict, s.wstap.logs.map((l) => l.msg).join('\n')).toBeDefined();
    const finding = (verdict as unknown as { finding: { id: string; evidence: string[]; fix: string } }).finding;
    expect(finding.id).toBe('timeout.match');
    expect(finding.evidence[0]).toMatch(/^first close evidence: client fin at \+[12]\.\d\d s$/);
    expect(finding.fix).toMatch(/raise nginx proxy_read_timeout/);
  });
});

describe('upstream down', () => {
  let s: NginxStack;
  let deadPort: number;
  beforeAll(async () => {
    deadPort = await freePort();
    s = await startNginxStack(deadPort);
  });
  afterAll(async () => s?.stop());

  it('plain HTTP: the client gets 502 naming the target and the error, and it is recorded', async () => {
    const res = await fetch(`http://127.0.0.1:${s.nginx.port}/api/v4/users/me`);
    expect(res.status).toBe(502);
    const body = await res.text();
    expect(body).toContain(`http://127.0.0.1:${deadPort}`);
    expect(body).toContain('ECONNREFUSED');
  });

  it('the handshake gets 502 through nginx; wstap names the refused connect, and a plain request gets no handshake finding', async () => {
    const plain = await fetch(`http://127.0.0.1:${s.nginx.port}/api/plain`);
    expect(plain.status).toBe(502);
    await plain.text();

    const url = '/ws?test=unreachable';
    const { status, body } = await unexpectedResponse(`ws://127.0.0.1:${s.nginx.port}${url}`);
    expect(status).toBe(502);
    expect(body).toBe(`wstap: upstream http://127.0.0.1:${deadPort} failed: ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:${deadPort}\n`);

    const findings = await findingsAfterClose(s.wstap, (await s.wstap.waitForLog((l) => l.url === url)).conn as number);
    expect(findings).toEqual([
      {
        id: 'handshake.upstream-unreachable',
        severity: 'error',
        message: `wstap could not reach the app for the handshake: ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:${deadPort}`,
        evidence: [`request: GET ${url} HTTP/1.1`, 'upstream error (connect): ECONNREFUSED'],
        fix: "check that the app is running and that --target (or the profile's target) points at it",
      },
    ]);
    // The plain GET failed the same way but is not a handshake: the only handshake finding is the one above.
    expect(findingsIn(s.wstap).filter((f) => f.id.startsWith('handshake.'))).toHaveLength(1);
  });

  it('WebSocket handshake: 502 through nginx, recorded as an upstream connect failure', async () => {
    const { status, body } = await unexpectedResponse(`ws://127.0.0.1:${s.nginx.port}/ws?test=down`);
    expect(status).toBe(502);
    expect(body).toContain('ECONNREFUSED');

    const all = await finalCapture(s);
    const errors = ofKind(all, 'http.error');
    expect(errors.length).toBeGreaterThanOrEqual(2);
    expect(errors.every((e) => e.code === 'ECONNREFUSED' && e.stage === 'connect' && e.answeredStatus === 502)).toBe(true);
    const handshake = ofKind(all, 'ws.handshake.request').find((e) => e.url.endsWith('test=down'));
    expect(errors.some((e) => e.conn === handshake?.conn)).toBe(true);
    expect(ofKind(all, 'conn.close').some((e) => e.conn === handshake?.conn)).toBe(true);
  });
});

/** What the refusing app sends, byte for byte. */
const REFUSAL = 'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nX-App-Reason: Origin not allowed\r\nContent-Length: 19\r\n\r\nOrigin not allowed\n';
const CHUNKED_HEAD = 'HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n';
const CHUNKS = ['7\r\nOrigin \r\n', 'c\r\nnot allowed\n\r\n', '0\r\n\r\n'];

/** A raw client straight to wstap (no nginx): everything it receives until the connection ends. */
function rawHandshake(port: number, url: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', reject);
    socket.on('end', () => {
      socket.end();
      resolve(Buffer.concat(chunks));
    });
    socket.write(`GET ${url} HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  });
}

describe('upstream refuses or drops the upgrade', () => {
  let refusing: net.Server;
  let chunkedRefusing: net.Server;
  let silent: net.Server;
  let s: NginxStack;
  let s2: NginxStack;
  let s3: NginxStack;
  beforeAll(async () => {
    // An app that answers the handshake with 400 and a body.
    refusing = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => {
        socket.end(REFUSAL);
      });
    });
    await new Promise<void>((r) => refusing.listen(0, '127.0.0.1', r));
    s = await startNginxStack((refusing.address() as net.AddressInfo).port);
    // An app that reads the head and closes without a word.
    silent = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => socket.end());
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    s2 = await startNginxStack((silent.address() as net.AddressInfo).port);
    // An app that refuses with a chunked body, a chunk at a time, and keeps its end of the connection open.
    chunkedRefusing = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.on('end', () => socket.end());
      socket.once('data', async () => {
        socket.write(CHUNKED_HEAD);
        for (const chunk of CHUNKS) {
          await sleep(30);
          if (!socket.destroyed) socket.write(chunk);
        }
      });
    });
    await new Promise<void>((r) => chunkedRefusing.listen(0, '127.0.0.1', r));
    s3 = await startNginxStack((chunkedRefusing.address() as net.AddressInfo).port);
  });
  afterAll(async () => {
    await s?.stop();
    await s2?.stop();
    await s3?.stop();
    await new Promise<void>((r) => chunkedRefusing.close(() => r()));
    await new Promise<void>((r) => refusing.close(() => r()));
    await new Promise<void>((r) => silent.close(() => r()));
  });

  it('a 400 answer is passed on unchanged and recorded with its headers', async () => {
    const { status, body } = await unexpectedResponse(`ws://127.0.0.1:${s.nginx.port}/ws?test=refused`);
    expect(status).toBe(400);
    expect(body).toBe('Origin not allowed\n');
    // Straight to wstap, the client gets exactly the app's bytes: watching the body changed nothing.
    expect((await rawHandshake(s.wstap.port, '/ws?test=refused-direct')).toString('latin1')).toBe(REFUSAL);
    const all = await finalCapture(s);
    const conn = ofKind(all, 'ws.handshake.request').find((e) => e.url.endsWith('test=refused'))?.conn ?? -1;
    const response = ofConn(all, conn, 'ws.handshake.response')[0];
    expect(response).toMatchObject({ statusCode: 400, reason: 'Bad Request', upgraded: false });
    expect(response?.rawHeaders).toContainEqual(['X-App-Reason', 'Origin not allowed']);
    expect(ofKind(all, 'ws.frame')).toHaveLength(0);
    // The body, once per connection, before the connection's close.
    for (const c of new Set(ofKind(all, 'ws.handshake.request').map((e) => e.conn))) {
      const bodies = ofConn(all, c, 'ws.handshake.body');
      expect(bodies).toHaveLength(1);
      expect(bodies[0]).toMatchObject({ bytes: 19, previewTruncated: false });
      expect(Buffer.from(bodies[0]?.preview ?? '', 'base64').toString()).toBe('Origin not allowed\n');
      const own = all.filter((e) => 'conn' in e && e.conn === c);
      expect(own.indexOf(bodies[0] as CaptureEvent)).toBeLessThan(own.findIndex((e) => e.kind === 'conn.close'));
    }
    const findings = findingsIn(s.wstap).filter((f) => f.id === 'handshake.not-upgraded');
    expect(findings).toHaveLength(2);
    const finding = findings[0];
    expect(finding?.message).toBe('the app answered 400 Bad Request instead of 101 Switching Protocols');
    expect(finding?.evidence).toContain('response: 400 Bad Request');
    expect(finding?.evidence).toContain('body (19 bytes): Origin not allowed\\n');
    expect(finding?.fix).toMatch(/refused the upgrade/);
    expect(s.wstap.logs.some((l) => l.msg === `#${conn} upstream's 400 answer body (19 bytes): Origin not allowed\\n`)).toBe(true);
  });

  it('a refusal with a chunked body: the preview is de-chunked and recorded at the last chunk', async () => {
    const { status, body } = await unexpectedResponse(`ws://127.0.0.1:${s3.nginx.port}/ws?test=chunked`);
    expect(status).toBe(403);
    expect(body).toBe('Origin not allowed\n');
    const all = await finalCapture(s3);
    const conn = ofKind(all, 'ws.handshake.request')[0]?.conn ?? -1;
    const bodies = ofConn(all, conn, 'ws.handshake.body');
    expect(bodies).toHaveLength(1);
    const wireBytes = CHUNKS.join('').length;
    expect(bodies[0]).toMatchObject({ bytes: wireBytes, previewTruncated: false });
    expect(Buffer.from(bodies[0]?.preview ?? '', 'base64').toString()).toBe('Origin not allowed\n');
    // Recorded when the last chunk came, not when the connection ended (the app kept its end open).
    const own = all.filter((e) => 'conn' in e && e.conn === conn);
    const firstEnd = own.findIndex((e) => e.kind === 'tcp.fin' || e.kind === 'tcp.rst' || e.kind === 'proxy.close');
    expect(own.indexOf(bodies[0] as CaptureEvent)).toBeLessThan(firstEnd < 0 ? Infinity : firstEnd);
    const finding = findingsIn(s3.wstap).find((f) => f.id === 'handshake.not-upgraded');
    expect(finding?.evidence).toContain(`body (${wireBytes} bytes, chunked): Origin not allowed\\n`);
  });

  it('an upstream that closes before answering: recorded as such, nginx reports "upstream prematurely closed"', async () => {
    const { status } = await unexpectedResponse(`ws://127.0.0.1:${s2.nginx.port}/ws?test=early-close`);
    expect(status).toBe(502);
    await sleep(200);
    expect(s2.nginx.errorLog()).toContain('upstream prematurely closed connection');
    const log = s2.wstap.logs.find((l) => /closed before answering the handshake/.test(l.msg));
    expect(log?.msg).toMatch(/closed by upstream \(upstream fin\)/);
    const all = await finalCapture(s2);
    const conn = ofKind(all, 'ws.handshake.request')[0]?.conn ?? -1;
    expect(ofKind(all, 'ws.handshake.response')).toHaveLength(0);
    expect(evidenceOf(all, conn)[0]).toMatchObject({ side: 'upstream', kind: 'fin' });
    const finding = findingsIn(s2.wstap).find((f) => f.id === 'handshake.no-answer');
    expect(finding?.severity).toBe('error');
    expect(finding?.message).toMatch(/closed \(or reset\) the connection before answering the handshake/);
    expect(finding?.evidence[0]).toBe('request: GET /ws?test=early-close HTTP/1.1');
  });
});

describe('nginx without the Upgrade headers', () => {
  let app: UpstreamApp;
  let s: NginxStack;
  beforeAll(async () => {
    app = await startUpstreamApp();
    s = await startNginxStack(app.port, { websocketHeaders: false });
  });
  afterAll(async () => {
    await s?.stop();
    await app?.close();
  });

  it('the handshake reaches the app as a plain GET still carrying Sec-WebSocket-Key, and is recorded so', async () => {
    const { status } = await unexpectedResponse(`ws://127.0.0.1:${s.nginx.port}/ws?test=no-upgrade`);
    expect(status).toBe(426);
    const all = await finalCapture(s);
    const request = ofKind(all, 'http.request').find((e) => e.url.endsWith('test=no-upgrade'));
    const names = (request?.rawHeaders ?? []).map(([n]) => n.toLowerCase());
    expect(names).toContain('sec-websocket-key');
    expect(names).toContain('sec-websocket-version');
    expect(names).not.toContain('upgrade');
    expect(ofKind(all, 'ws.handshake.request')).toHaveLength(0);
    const response = ofKind(all, 'http.response').find((e) => e.conn === request?.conn);
    expect(response?.statusCode).toBe(426);
    // wstap names the cause and the nginx fix, from the plain GET it saw.
    const finding = findingsIn(s.wstap).find((f) => f.id === 'handshake.missing-upgrade');
    expect(finding?.message).toMatch(/^a WebSocket handshake reached the app without "Upgrade: websocket" and "upgrade" in Connection/);
    expect(finding?.evidence).toEqual(expect.arrayContaining(['Upgrade: (absent)', expect.stringMatching(/^Sec-WebSocket-Key: \S+/)]));
    expect(finding?.fix).toContain('proxy_set_header Upgrade $http_upgrade');
    expect(findingsIn(s.wstap).find((f) => f.id === 'handshake.not-upgraded')?.message).toBe('the app answered 426 Upgrade Required instead of 101 Switching Protocols');
  });
});

describe('nginx with proxy_http_version 1.0', () => {
  let app: UpstreamApp;
  let s: NginxStack;
  beforeAll(async () => {
    app = await startUpstreamApp();
    s = await startNginxStack(app.port, { httpVersion: '1.0' });
  });
  afterAll(async () => {
    await s?.stop();
    await app?.close();
  });

  it('the handshake reaches the app as HTTP/1.0: wstap says so and names proxy_http_version 1.1', async () => {
    await unexpectedResponse(`ws://127.0.0.1:${s.nginx.port}/ws?test=http10`).catch(() => undefined);
    await s.wstap.waitForLog((l) => /HTTP\/1\.0/.test(l.msg) && /handshake/.test(l.msg));
    const finding = findingsIn(s.wstap).find((f) => f.id === 'handshake.http10');
    expect(finding?.message).toBe('the handshake reached the app as HTTP/1.0, which has no Upgrade mechanism');
    expect(finding?.evidence[0]).toMatch(/^request: GET \/ws\?test=http10 HTTP\/1\.0$/);
    expect(finding?.fix).toContain('proxy_http_version 1.1');
  });
});
