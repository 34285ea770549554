import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CaptureEvent } from '../../src/capture/events.js';
import { rawClient, startRawApp, type RawApp, type RawEnd } from '../support/raw-peers.js';
import { startWstap, type LoggedFinding, type WstapProcess } from '../support/wstap-process.js';
import { ofConn } from '../support/ws-peers.js';

/**
 * Plain HTTP through wstap with raw sockets on both ends: what the client
 * sends is what the app receives, byte for byte, on a connection of its own;
 * what the app answers is what the client receives. The passive parser's
 * records are checked against what was sent.
 */

const ODD_REQUEST = 'GET /odd?x=1 HTTP/1.1\r\nhOsT: example\r\nX-Dup: 1\r\nX-Dup: 2\r\nx-weird:   spaced  \r\nconnection:keep-alive\r\n\r\n';
const ODD_RESPONSE = 'HTTP/1.1 200 Fine Thanks\r\nset-COOKIE: a=1\r\nSet-Cookie: b=2\r\nX-Pad:    lots   \r\ncontent-length: 5\r\n\r\nhello';

describe('plain HTTP relayed byte for byte (raw sockets both ends)', () => {
  let app: RawApp;
  let wstap: WstapProcess;
  let events: CaptureEvent[] = [];
  const conns: number[] = [];

  beforeAll(async () => {
    app = await startRawApp();
    wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`]);
  });
  afterAll(async () => {
    await wstap?.stop();
    await app?.close();
  });

  /** A new client connection through wstap and the app's end of it. */
  async function through(): Promise<{ client: RawEnd; upstream: () => Promise<RawEnd> }> {
    const index = app.connections.length;
    const client = await rawClient(wstap.port);
    conns.push(conns.length + 1);
    return { client, upstream: () => app.connection(index) };
  }

  it('heads with odd case, duplicates and extra whitespace arrive unchanged both ways', async () => {
    const { client, upstream } = await through();
    client.write(ODD_REQUEST);
    const up = await upstream();
    expect(await up.waitFor('\r\n\r\n')).toBe(ODD_REQUEST);
    up.write(ODD_RESPONSE);
    expect(await client.waitFor('hello')).toBe(ODD_RESPONSE);
    client.socket.end();
    await up.waitForEnd();
    up.socket.end();
  });

  it('pipelined requests (chunked with extensions and trailers, HEAD) reach the app on one connection, answers in order incl. 204 and 304', async () => {
    const requests =
      'GET /1 HTTP/1.1\r\nHost: a\r\n\r\n' +
      'POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: yes\r\n\r\n' +
      'HEAD /3 HTTP/1.1\r\nHost: a\r\n\r\n' +
      'DELETE /4 HTTP/1.1\r\nHost: a\r\n\r\n' +
      'GET /5 HTTP/1.1\r\nHost: a\r\nIf-None-Match: "x"\r\n\r\n';
    const answers =
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok' +
      'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3;q=v\r\nabc\r\n0\r\nServer-Timing: db;dur=1\r\n\r\n' +
      'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n' +
      'HTTP/1.1 204 No Content\r\n\r\n' +
      'HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n';
    const { client, upstream } = await through();
    const before = app.connections.length;
    client.write(requests);
    const up = await upstream();
    expect(await up.waitFor((r) => r.length >= requests.length)).toBe(requests);
    up.write(answers);
    expect(await client.waitFor((r) => r.length >= answers.length)).toBe(answers);
    // A sixth request, later, on the same client connection: still the same app connection.
    client.write('GET /6 HTTP/1.1\r\nHost: a\r\n\r\n');
    await up.waitFor('GET /6');
    up.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    await client.waitFor((r) => r.length > answers.length);
    expect(app.connections.length).toBe(before + 1);
    client.socket.end();
    await up.waitForEnd();
    up.socket.end();
  });

  it('100-continue: the interim answer and the body pass, one exchange is recorded', async () => {
    const { client, upstream } = await through();
    client.write('PUT /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n');
    const up = await upstream();
    await up.waitFor('\r\n\r\n');
    up.write('HTTP/1.1 100 Continue\r\n\r\n');
    await client.waitFor('100 Continue\r\n\r\n');
    client.write('body');
    await up.waitFor('body');
    up.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    await client.waitFor('200 OK');
    client.socket.end();
    await up.waitForEnd();
    up.socket.end();
  });

  it('a close-delimited answer: every byte, then the app\'s FIN passed on as a FIN', async () => {
    const { client, upstream } = await through();
    client.write('GET /old HTTP/1.0\r\n\r\n');
    const up = await upstream();
    await up.waitFor('\r\n\r\n');
    up.write('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil');
    up.write(' the end');
    up.socket.end();
    expect(await client.waitForEnd()).toBe('fin');
    expect(client.received).toBe('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end');
    client.socket.end();
  });

  it('CL+TE and a double Content-Length are relayed unchanged and recorded as findings', async () => {
    const smuggle = 'POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n';
    const first = await through();
    first.client.write(smuggle);
    const up1 = await first.upstream();
    expect(await up1.waitFor((r) => r.length >= smuggle.length)).toBe(smuggle);
    up1.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    await first.client.waitFor('200 OK');
    first.client.socket.end();
    await up1.waitForEnd();
    up1.socket.end();

    const doubled = 'POST /d HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd';
    const second = await through();
    second.client.write(doubled);
    const up2 = await second.upstream();
    expect(await up2.waitFor((r) => r.length >= doubled.length)).toBe(doubled);
    up2.write('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    up2.socket.end();
    await second.client.waitForEnd();
    second.client.socket.end();
  });

  it('the capture: each exchange with its connection, index, sizes and timing; close evidence of both sides', async () => {
    await wstap.waitForLog((l) => new RegExp(`^#${conns.length} closed`).test(l.msg));
    expect(await wstap.stop()).toBe(0);
    events = await wstap.events();
    const [odd, pipelined, continued, untilClose, smuggled, doubled] = conns as [number, number, number, number, number, number];

    expect(ofConn(events, odd, 'http.request')).toEqual([
      expect.objectContaining({ exchange: 1, method: 'GET', url: '/odd?x=1', rawHeaders: [['hOsT', 'example'], ['X-Dup', '1'], ['X-Dup', '2'], ['x-weird', 'spaced'], ['connection', 'keep-alive']] }),
    ]);
    expect(ofConn(events, odd, 'http.response')).toEqual([
      expect.objectContaining({ exchange: 1, statusCode: 200, statusMessage: 'Fine Thanks', responseBodyBytes: 5, complete: true, rawHeaders: [['set-COOKIE', 'a=1'], ['Set-Cookie', 'b=2'], ['X-Pad', 'lots'], ['content-length', '5']] }),
    ]);
    const response = ofConn(events, odd, 'http.response')[0]!;
    expect(response.ttfbMs).toBeGreaterThan(0);
    expect(response.totalMs).toBeGreaterThanOrEqual(response.ttfbMs);

    expect(ofConn(events, pipelined, 'http.request').map((r) => [r.exchange, r.method, r.url])).toEqual([
      [1, 'GET', '/1'],
      [2, 'POST', '/2'],
      [3, 'HEAD', '/3'],
      [4, 'DELETE', '/4'],
      [5, 'GET', '/5'],
      [6, 'GET', '/6'],
    ]);
    expect(ofConn(events, pipelined, 'http.response').map((r) => [r.exchange, r.statusCode, r.requestBodyBytes, r.responseBodyBytes, r.complete])).toEqual([
      [1, 200, 0, 2, true],
      [2, 201, 5, 3, true],
      [3, 200, 0, 0, true],
      [4, 204, 0, 0, true],
      [5, 304, 0, 0, true],
      [6, 200, 0, 0, true],
    ]);

    expect(ofConn(events, continued, 'http.response')).toEqual([expect.objectContaining({ exchange: 1, statusCode: 200, requestBodyBytes: 4 })]);
    expect(ofConn(events, untilClose, 'http.response')).toEqual([expect.objectContaining({ statusCode: 200, responseBodyBytes: 13, complete: true })]);

    expect(ofConn(events, smuggled, 'http.anomaly')).toEqual([expect.objectContaining({ side: 'client', exchange: 1, code: 'CL_AND_TE', parsing: 'continues' })]);
    expect(ofConn(events, doubled, 'http.anomaly')).toEqual([expect.objectContaining({ side: 'client', exchange: 1, code: 'CONFLICTING_CONTENT_LENGTH', parsing: 'stopped' })]);
    const ids = wstap.logs.flatMap((l) => {
      const f = (l as unknown as { finding?: LoggedFinding }).finding;
      return f ? [[l.conn, f.id]] : [];
    });
    expect(ids).toEqual(expect.arrayContaining([[smuggled, 'http.cl-and-te'], [doubled, 'http.conflicting-content-length']]));

    // Both sides' close evidence on every connection: the client's FIN and the app's.
    for (const conn of [odd, pipelined, continued, untilClose, smuggled]) {
      expect(ofConn(events, conn, 'tcp.fin').map((f) => f.side).sort()).toEqual(['client', 'upstream']);
    }
    expect(ofConn(events, untilClose, 'tcp.fin')[0]).toMatchObject({ side: 'upstream' });
  });
});
