import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, type ClientOptions } from 'ws';
import type { CaptureEvent } from '../../src/capture/events.js';
import { startNginx, type Nginx } from '../support/nginx.js';
import { finalCapture, startNginxStack, type NginxStack } from '../support/nginx-stack.js';
import { startRawUpgradeServer, startUpstreamApp, type RawUpgradeServer, type UpstreamApp } from '../support/upstream-app.js';
import { findingsAfterClose, type LoggedFinding } from '../support/wstap-process.js';
import { connectClient, ofConn } from '../support/ws-peers.js';

/**
 * The handshake rules nginx-failure-modes.test.ts does not reach, each
 * produced for real: a `ws` client -> nginx -> wstap -> an upstream that
 * answers the handshake wrongly (or a profile the request does not satisfy,
 * or no upstream at all). wstap must relay the answer unchanged and log the
 * finding with its evidence and fix.
 */

/** wstap's connection number for the handshake of `url` (from its handshake log line). */
async function connOf(s: NginxStack, url: string): Promise<number> {
  const line = await s.wstap.waitForLog((l) => l.url === url && l.method === 'GET' && typeof l.conn === 'number');
  return line.conn as number;
}

/**
 * Every finding wstap logged for the handshake of `url`, once its connection
 * has closed (handshake findings come with the answer, the rest with the
 * close).
 */
async function findingsOfConn(s: NginxStack, url: string): Promise<LoggedFinding[]> {
  return findingsAfterClose(s.wstap, await connOf(s, url));
}

/** What a `ws` client saw of a 101 it then refused: the answer as it arrived, and why it failed the connection. */
interface RefusedUpgrade {
  status: number;
  reason: string;
  /** The response headers as they reached the client (after nginx), pairs in order. */
  headers: Array<[string, string]>;
  error: string;
}

function refusedUpgrade(url: string, options: ClientOptions = {}, protocols: string[] = []): Promise<RefusedUpgrade> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, options);
    let seen: Omit<RefusedUpgrade, 'error'> | null = null;
    ws.once('upgrade', (res) => {
      const raw = res.rawHeaders;
      const headers: Array<[string, string]> = [];
      for (let i = 0; i + 1 < raw.length; i += 2) headers.push([raw[i] ?? '', raw[i + 1] ?? '']);
      seen = { status: res.statusCode ?? 0, reason: res.statusMessage ?? '', headers };
    });
    ws.once('open', () => {
      ws.terminate();
      reject(new Error('the handshake unexpectedly succeeded'));
    });
    ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
    ws.once('error', (err) => {
      if (seen) resolve({ ...seen, error: err.message });
      else reject(err);
    });
  });
}

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const acceptFor = (key: string): string => crypto.createHash('sha1').update(key + GUID).digest('base64');
/** RFC 6455's own example: the accept value of the sample nonce, right for no key a client here sends. */
const WRONG_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

type FaultyUpstream = RawUpgradeServer;

/** An upstream that answers each handshake with `101 Switching Protocols` and the headers `answer` returns. */
function startFaultyUpstream(answer: (key: string, head: string) => Array<[string, string]>): Promise<FaultyUpstream> {
  return startRawUpgradeServer((socket) => {
    // Whatever follows (frames, if the client accepted) is read and dropped; its FIN is answered with ours.
    socket.resume();
    socket.once('end', () => socket.end());
  }, answer);
}

/** A head's header lines as pairs, as written (the request line dropped). */
function headerPairs(head: string): Array<[string, string]> {
  return head
    .split('\r\n')
    .slice(1)
    .filter((line) => line !== '')
    .map((line) => {
      const colon = line.indexOf(':');
      return [line.slice(0, colon), line.slice(colon + 1).trim()];
    });
}

function headerIn(pairs: Array<[string, string]>, name: string): string | undefined {
  return pairs.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1];
}

describe('an app whose 101 has a wrong or no Sec-WebSocket-Accept', () => {
  let upstream: FaultyUpstream;
  let s: NginxStack;
  beforeAll(async () => {
    upstream = await startFaultyUpstream((_key, head) => [
      ['Upgrade', 'websocket'],
      ['Connection', 'Upgrade'],
      ...(head.includes('accept=missing') ? [] : ([['Sec-WebSocket-Accept', WRONG_ACCEPT]] as Array<[string, string]>)),
      ['X-App-Marker', 'faulty accept'],
    ]);
    s = await startNginxStack(upstream.port);
  });
  afterAll(async () => {
    await s?.stop();
    await upstream?.close();
  });

  it('no Sec-WebSocket-Accept: the client fails the connection and wstap says the header is missing', async () => {
    const url = '/ws?accept=missing';
    const seen = await refusedUpgrade(`ws://127.0.0.1:${s.nginx.port}${url}`);
    expect(seen.status).toBe(101);
    expect(seen.error).toBe('Invalid Sec-WebSocket-Accept header');
    expect(headerIn(seen.headers, 'Sec-WebSocket-Accept')).toBeUndefined();

    const key = headerIn(headerPairs(upstream.heads.at(-1) ?? ''), 'Sec-WebSocket-Key') ?? '';
    expect(key).toMatch(/^[A-Za-z0-9+/]{22}==$/);
    const findings = await findingsOfConn(s, url);
    expect(findings).toEqual([
      {
        id: 'handshake.bad-accept',
        severity: 'error',
        message: 'the 101 answer has no Sec-WebSocket-Accept: browsers fail the connection',
        evidence: [`Sec-WebSocket-Key: ${key}`, 'Sec-WebSocket-Accept: (absent)', `expected Sec-WebSocket-Accept: ${acceptFor(key)}`],
        fix: 'something between wstap and the app rewrites the handshake, or the app computes the accept value wrongly (RFC 6455 4.2.2)',
      },
    ]);
  });

  it('a wrong Sec-WebSocket-Accept: the client fails the connection, wstap names the expected value, and the answer went through unchanged', async () => {
    const url = '/ws?accept=wrong';
    const seen = await refusedUpgrade(`ws://127.0.0.1:${s.nginx.port}${url}`);
    expect(seen.error).toBe('Invalid Sec-WebSocket-Accept header');
    // The client got the app's answer: its status and every header it sent, values unchanged
    // (nginx adds Server and Date, and writes its own hop-by-hop "Connection: upgrade" on a 101).
    expect(seen.status).toBe(101);
    expect(seen.reason).toBe('Switching Protocols');
    const sent = upstream.answers.at(-1) ?? [];
    for (const [name, value] of sent) {
      if (name === 'Connection') expect(headerIn(seen.headers, name)?.toLowerCase()).toBe('upgrade');
      else expect(headerIn(seen.headers, name), name).toBe(value);
    }
    expect(headerIn(seen.headers, 'Sec-WebSocket-Accept')).toBe(WRONG_ACCEPT);

    const head = upstream.heads.at(-1) ?? '';
    expect(head.startsWith(`GET ${url} HTTP/1.1\r\n`)).toBe(true);
    const key = headerIn(headerPairs(head), 'Sec-WebSocket-Key') ?? '';
    expect(acceptFor(key)).not.toBe(WRONG_ACCEPT);
    const findings = await findingsOfConn(s, url);
    expect(findings).toEqual([
      {
        id: 'handshake.bad-accept',
        severity: 'error',
        message: "the 101 answer's Sec-WebSocket-Accept does not match the request's key: browsers fail the connection",
        evidence: [`Sec-WebSocket-Key: ${key}`, `Sec-WebSocket-Accept: ${WRONG_ACCEPT}`, `expected Sec-WebSocket-Accept: ${acceptFor(key)}`],
        fix: 'something between wstap and the app rewrites the handshake, or the app computes the accept value wrongly (RFC 6455 4.2.2)',
      },
    ]);
    const conn = await connOf(s, url);
    const line = s.wstap.logs.find((l) => l.conn === conn && (l as unknown as { finding?: LoggedFinding }).finding !== undefined);
    expect(line?.msg).toBe(
      `#${conn} the 101 answer's Sec-WebSocket-Accept does not match the request's key: browsers fail the connection; fix: something between wstap and the app rewrites the handshake, or the app computes the accept value wrongly (RFC 6455 4.2.2)`,
    );

    // The capture: the request as the app received it, the answer as the app sent it, byte for byte.
    const all = await finalCapture(s);
    const request = ofConn(all, conn, 'ws.handshake.request')[0];
    expect(request).toMatchObject({ method: 'GET', url, httpVersion: '1.1', headLength: Buffer.byteLength(head, 'latin1') });
    expect(request?.rawHeaders).toEqual(headerPairs(head));
    const response = ofConn(all, conn, 'ws.handshake.response')[0];
    expect(response).toMatchObject({ statusCode: 101, reason: 'Switching Protocols', httpVersion: '1.1', upgraded: true, deflate: null });
    expect(response?.rawHeaders).toEqual(sent);
    expect(ofConn(all, conn, 'ws.frame')).toHaveLength(0);
    expect(ofConn(all, conn, 'ws.protocol-error')).toHaveLength(0);
    expect(ofConn(all, conn, 'conn.close')).toHaveLength(1);
  });
});

describe('an app that accepts permessage-deflate the client did not offer', () => {
  let upstream: FaultyUpstream;
  let s: NginxStack;
  beforeAll(async () => {
    upstream = await startFaultyUpstream((key) => [
      ['Upgrade', 'websocket'],
      ['Connection', 'Upgrade'],
      ['Sec-WebSocket-Accept', acceptFor(key)],
      ['Sec-WebSocket-Extensions', 'permessage-deflate'],
    ]);
    s = await startNginxStack(upstream.port);
  });
  afterAll(async () => {
    await s?.stop();
    await upstream?.close();
  });

  it('a client that offered no extension fails the connection; wstap names the extension', async () => {
    const url = '/ws?test=unoffered-extension';
    const seen = await refusedUpgrade(`ws://127.0.0.1:${s.nginx.port}${url}`, { perMessageDeflate: false });
    expect(seen.status).toBe(101);
    expect(seen.error).toBe('Server sent a Sec-WebSocket-Extensions header but no extension was requested');
    expect(headerIn(seen.headers, 'Sec-WebSocket-Extensions')).toBe('permessage-deflate');
    // nginx added nothing: the app got no offer either.
    expect(headerIn(headerPairs(upstream.heads.at(-1) ?? ''), 'Sec-WebSocket-Extensions')).toBeUndefined();

    const findings = await findingsOfConn(s, url);
    expect(findings).toEqual([
      {
        id: 'handshake.unoffered-extension',
        severity: 'error',
        message: 'the app accepted extension(s) the request did not offer: permessage-deflate',
        evidence: ['Sec-WebSocket-Extensions: (absent)', 'Sec-WebSocket-Extensions: permessage-deflate'],
        fix: 'a client must fail such a connection (RFC 6455 4.1); if nginx strips Sec-WebSocket-Extensions, stop it, else fix the app',
      },
    ]);
  });

  it('the same answer to a client that offered permessage-deflate is no finding', async () => {
    const url = '/ws?test=offered-extension';
    const client = await connectClient(`ws://127.0.0.1:${s.nginx.port}${url}`);
    expect(client.extensions).toBe('permessage-deflate');
    expect(headerIn(headerPairs(upstream.heads.at(-1) ?? ''), 'Sec-WebSocket-Extensions')).toMatch(/^permessage-deflate/);
    client.terminate();
    expect(await findingsOfConn(s, url)).toEqual([]);
  });
});

describe('an app that picks a subprotocol the client did not offer', () => {
  let upstream: FaultyUpstream;
  let s: NginxStack;
  beforeAll(async () => {
    upstream = await startFaultyUpstream((key) => [
      ['Upgrade', 'websocket'],
      ['Connection', 'Upgrade'],
      ['Sec-WebSocket-Accept', acceptFor(key)],
      ['Sec-WebSocket-Protocol', 'chat'],
    ]);
    s = await startNginxStack(upstream.port);
  });
  afterAll(async () => {
    await s?.stop();
    await upstream?.close();
  });

  it('offered none: the client fails the connection; wstap names the subprotocol', async () => {
    const url = '/ws?test=unoffered-subprotocol';
    const seen = await refusedUpgrade(`ws://127.0.0.1:${s.nginx.port}${url}`);
    expect(seen.status).toBe(101);
    expect(seen.error).toBe('Server sent a subprotocol but none was requested');
    expect(headerIn(seen.headers, 'Sec-WebSocket-Protocol')).toBe('chat');

    const findings = await findingsOfConn(s, url);
    expect(findings).toEqual([
      {
        id: 'handshake.unoffered-subprotocol',
        severity: 'error',
        message: 'the app chose subprotocol "chat", which the request did not offer',
        evidence: ['Sec-WebSocket-Protocol: (absent)', 'Sec-WebSocket-Protocol: chat'],
        fix: 'a client must fail such a connection (RFC 6455 4.1); check that nginx passes Sec-WebSocket-Protocol and that the app only echoes an offered one',
      },
    ]);
  });

  it('offered others: the evidence shows the offer nginx passed on', async () => {
    const url = '/ws?test=other-subprotocol';
    const seen = await refusedUpgrade(`ws://127.0.0.1:${s.nginx.port}${url}`, {}, ['superchat', 'v2.chat']);
    expect(seen.error).toBe('Server sent an invalid subprotocol');
    expect(headerIn(headerPairs(upstream.heads.at(-1) ?? ''), 'Sec-WebSocket-Protocol')).toBe('superchat,v2.chat');

    const findings = await findingsOfConn(s, url);
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({
      id: 'handshake.unoffered-subprotocol',
      severity: 'error',
      message: 'the app chose subprotocol "chat", which the request did not offer',
      evidence: ['Sec-WebSocket-Protocol: superchat,v2.chat', 'Sec-WebSocket-Protocol: chat'],
    });
  });

  it('offered "chat": the connection opens and there is no finding', async () => {
    const url = '/ws?test=offered-subprotocol';
    // connectClient offers no subprotocol: open this one with ws directly.
    const client = await new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${s.nginx.port}${url}`, ['superchat', 'chat']);
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    });
    expect(client.protocol).toBe('chat');
    client.terminate();
    expect(await findingsOfConn(s, url)).toEqual([]);
  });
});

describe('a profile requiring a header nginx does not send', () => {
  let app: UpstreamApp;
  let s: NginxStack;
  let fixed: Nginx;
  let dir: string;
  beforeAll(async () => {
    app = await startUpstreamApp();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-profile-'));
    const profile = path.join(dir, 'needs-forwarded-host.yaml');
    fs.writeFileSync(
      profile,
      [
        'name: needs-forwarded-host',
        'description: test profile; the app needs X-Forwarded-Host besides the headers nginx sets by default',
        'hops: []',
        'app:',
        '  requires-headers: [X-Forwarded-Host, X-Forwarded-For, X-Real-IP, X-Forwarded-Proto]',
        '',
      ].join('\n'),
    );
    s = await startNginxStack(app.port, {}, ['--profile', profile]);
    // A second nginx in front of the same wstap, with the fix the finding names.
    fixed = await startNginx({ upstreamPort: s.wstap.port, locationExtra: 'proxy_set_header X-Forwarded-Host $host;' });
  });
  afterAll(async () => {
    await fixed?.stop();
    await s?.stop();
    await app?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the connection works; wstap warns about X-Forwarded-Host only, not about the headers nginx sets', async () => {
    const url = '/ws?test=required-headers';
    const client = await connectClient(`ws://127.0.0.1:${s.nginx.port}${url}`);
    const { req } = await app.nextConnection();
    expect(req.headers['x-forwarded-host']).toBeUndefined();
    expect(req.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(req.headers['x-real-ip']).toBe('127.0.0.1');
    expect(req.headers['x-forwarded-proto']).toBe('http');
    client.terminate();

    const findings = await findingsOfConn(s, url);
    expect(findings).toEqual([
      {
        id: 'handshake.missing-header',
        severity: 'warning',
        message: 'the app needs X-Forwarded-Host (per the profile) and the request did not carry it',
        evidence: [`request: GET ${url} HTTP/1.1`, 'X-Forwarded-Host: (absent)'],
        fix: 'in the nginx location: proxy_set_header X-Forwarded-Host ...;',
      },
    ]);
    const conn = await connOf(s, url);
    const line = s.wstap.logs.find((l) => l.conn === conn && (l as unknown as { finding?: LoggedFinding }).finding !== undefined);
    expect(line?.msg).toBe(`#${conn} the app needs X-Forwarded-Host (per the profile) and the request did not carry it; fix: in the nginx location: proxy_set_header X-Forwarded-Host ...;`);
  });

  it('with proxy_set_header X-Forwarded-Host in nginx there is no finding', async () => {
    const url = '/ws?test=required-headers-fixed';
    const client = await connectClient(`ws://127.0.0.1:${fixed.port}${url}`);
    const { req } = await app.nextConnection();
    // nginx's $host is the Host header without its port.
    expect(req.headers['x-forwarded-host']).toBe('127.0.0.1');
    client.terminate();
    expect(await findingsOfConn(s, url)).toEqual([]);
  });
});
