import { describe, it, expect } from 'vitest';
import { ConnectionTracker, attributionOf } from '../../src/analysis/connection-tracker.js';
import type {
  CaptureEvent,
  FrameEvent,
  HandshakeRequestEvent,
  HandshakeResponseEvent,
  HttpErrorEvent,
  HttpResponseEvent,
  MessageEvent,
} from '../../src/capture/events.js';
import { HarFormatError, harToEvents, looksLikeHar, type HarReadResult } from '../../src/har/har-reader.js';

const T0_ISO = '2024-05-01T10:00:00.000Z';
const T0 = Date.parse(T0_ISO);
const S0 = T0 / 1000;
const BINARY = Buffer.from([0, 1, 2, 0xff, 0x80]);

function har(creator: { name: string; version: string }, entries: unknown[], version = '1.2'): string {
  return JSON.stringify({ log: { version, creator, pages: [], entries } });
}

function nv(pairs: Array<[string, string]>): Array<{ name: string; value: string }> {
  return pairs.map(([name, value]) => ({ name, value }));
}

/** A Chrome DevTools export: one WebSocket entry (no _wstap, no _webSocketClose) and one plain GET. */
function chromeHar(): string {
  return har({ name: 'WebInspector', version: '537.36' }, [
    {
      startedDateTime: T0_ISO,
      time: 12,
      request: {
        method: 'GET',
        url: 'wss://example.test/socket?room=1',
        httpVersion: 'HTTP/1.1',
        headers: nv([
          ['Upgrade', 'websocket'],
          ['Sec-WebSocket-Extensions', 'permessage-deflate; client_max_window_bits'],
        ]),
        queryString: [],
        cookies: [],
        headersSize: -1,
        bodySize: 0,
      },
      response: {
        status: 101,
        statusText: 'Switching Protocols',
        httpVersion: 'HTTP/1.1',
        headers: nv([
          ['Upgrade', 'websocket'],
          ['Sec-WebSocket-Extensions', 'permessage-deflate; client_max_window_bits=10'],
        ]),
        cookies: [],
        content: { size: 0, mimeType: 'x-unknown' },
        redirectURL: '',
        headersSize: 180,
        bodySize: 0,
      },
      cache: {},
      timings: { blocked: 1, dns: -1, connect: 2, ssl: -1, send: 0.5, wait: 8.5, receive: 0 },
      _resourceType: 'websocket',
      _webSocketMessages: [
        { type: 'send', time: S0 + 0.012345, opcode: 1, data: 'hello ✓' },
        { type: 'receive', time: S0 + 0.020001, opcode: 1, data: '{"ok":true}' },
        { type: 'receive', time: S0 + 1.5, opcode: 2, data: BINARY.toString('base64') },
        { type: 'send', time: S0 + 1.600001, opcode: 1, data: 'bye' },
      ],
    },
    {
      startedDateTime: '2024-05-01T10:00:02.000Z',
      time: 30,
      request: {
        method: 'GET',
        url: 'https://example.test/api/items?x=1#frag',
        httpVersion: 'HTTP/1.1',
        headers: nv([['Accept', 'application/json']]),
        queryString: [],
        cookies: [],
        headersSize: -1,
        bodySize: -1,
      },
      response: {
        status: 200,
        statusText: 'OK',
        httpVersion: 'HTTP/1.1',
        headers: nv([['Content-Type', 'application/json']]),
        cookies: [],
        content: { size: 512, mimeType: 'application/json' },
        redirectURL: '',
        headersSize: -1,
        bodySize: -1,
      },
      cache: {},
      timings: { blocked: -1, dns: -1, connect: -1, ssl: -1, send: 1, wait: 20, receive: 9 },
    },
  ]);
}

function wstapEntryBase(started: string, time: number): Record<string, unknown> {
  return {
    startedDateTime: started,
    time,
    cache: {},
    timings: { blocked: -1, dns: -1, connect: -1, ssl: -1, send: 0, wait: 3, receive: time - 3 },
  };
}

/** wstap's own export: a WebSocket with every frame and close evidence, keep-alive HTTP, and a 502 wstap answered. */
function wstapHar(): string {
  const ws = {
    ...wstapEntryBase(T0_ISO, 2010),
    request: {
      method: 'GET',
      url: 'ws://app.test/live',
      httpVersion: 'HTTP/1.1',
      headers: nv([['Upgrade', 'websocket']]),
      queryString: [],
      cookies: [],
      headersSize: 220,
      bodySize: 0,
    },
    response: {
      status: 101,
      statusText: 'Switching Protocols',
      httpVersion: 'HTTP/1.1',
      headers: nv([['Upgrade', 'websocket']]),
      cookies: [],
      content: { size: 0, mimeType: 'x-unknown' },
      redirectURL: '',
      headersSize: 129,
      bodySize: 0,
    },
    connection: '7',
    _resourceType: 'websocket',
    _webSocketMessages: [
      { type: 'send', time: S0 + 0.01, opcode: 1, data: 'hello' },
      // Preview cut: 3 of 7 bytes.
      { type: 'receive', time: S0 + 0.02, opcode: 1, data: 'abc', _size: 7 },
    ],
    _webSocketClose: { code: 1000, reason: '', timestamp: S0 + 2 },
    _wstap: {
      connectionId: 7,
      closedBy: 'client',
      closeEvents: [
        { side: 'client', kind: 'close-frame', time: S0 + 2, code: 1000, reason: '' },
        { side: 'upstream', kind: 'close-frame', time: S0 + 2.005, code: 1000, reason: 'ok' },
        { side: 'upstream', kind: 'fin', time: S0 + 2.006 },
        { side: 'client', kind: 'fin', time: S0 + 2.007 },
      ],
      frames: [
        { type: 'send', time: S0 + 0.01, opcode: 1, fin: true, rsv1: false, masked: true, length: 5 },
        { type: 'receive', time: S0 + 0.02, opcode: 1, fin: false, rsv1: false, masked: false, length: 3 },
        { type: 'receive', time: S0 + 0.021, opcode: 0, fin: true, rsv1: false, masked: false, length: 4 },
        { type: 'receive', time: S0 + 1, opcode: 9, fin: true, rsv1: false, masked: false, length: 0 },
        { type: 'send', time: S0 + 1.002, opcode: 10, fin: true, rsv1: false, masked: true, length: 0 },
        { type: 'send', time: S0 + 2, opcode: 8, fin: true, rsv1: false, masked: true, length: 2 },
        { type: 'receive', time: S0 + 2.005, opcode: 8, fin: true, rsv1: false, masked: false, length: 4 },
      ],
      idleBeforeCloseMs: { client: 998, upstream: 1000 },
      pings: [{ from: 'upstream', rttMs: 2 }],
      diagnosis: [],
      answeredBy: 'upstream',
      redacted: true,
    },
  };
  const httpEntry = (started: string, time: number, path: string): Record<string, unknown> => ({
    ...wstapEntryBase(started, time),
    request: { method: 'GET', url: `http://app.test${path}`, httpVersion: 'HTTP/1.1', headers: [], queryString: [], cookies: [], headersSize: 40, bodySize: 0 },
    response: {
      status: 200,
      statusText: 'OK',
      httpVersion: 'HTTP/1.1',
      headers: nv([['Content-Length', '12']]),
      cookies: [],
      content: { size: 12, mimeType: 'text/plain' },
      redirectURL: '',
      headersSize: 60,
      bodySize: 12,
    },
    connection: '3',
    _wstap: { connectionId: 3, closedBy: null, closeEvents: [], frames: [], idleBeforeCloseMs: null, pings: [], diagnosis: [], answeredBy: 'upstream', redacted: true },
  });
  const failed = {
    ...wstapEntryBase('2024-05-01T10:00:05.000Z', 4),
    request: { method: 'GET', url: 'http://app.test/down', httpVersion: 'HTTP/1.1', headers: [], queryString: [], cookies: [], headersSize: 40, bodySize: 0 },
    response: {
      status: 502,
      statusText: 'Bad Gateway',
      httpVersion: 'HTTP/1.1',
      headers: [],
      cookies: [],
      content: { size: 0, mimeType: 'x-unknown' },
      redirectURL: '',
      headersSize: 0,
      bodySize: 0,
      _error: 'ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:9',
    },
    connection: '4',
    _wstap: { connectionId: 4, closedBy: null, closeEvents: [], frames: [], idleBeforeCloseMs: null, pings: [], diagnosis: [], answeredBy: 'wstap', redacted: true },
  };
  // Keep-alive: two exchanges on connection 3, the second starting after the first ended.
  return har({ name: 'wstap', version: '0.1.0' }, [
    httpEntry('2024-05-01T10:00:03.000Z', 5, '/a'),
    httpEntry('2024-05-01T10:00:03.010Z', 5, '/b'),
    ws,
    failed,
  ]);
}

function track(events: CaptureEvent[]): ConnectionTracker {
  const tracker = new ConnectionTracker();
  for (const event of events) tracker.apply(event);
  return tracker;
}

function ofConn(result: HarReadResult, conn: number): CaptureEvent[] {
  return result.events.filter((e) => 'conn' in e && e.conn === conn);
}

function expectWellOrdered(result: HarReadResult): void {
  const { events } = result;
  expect(events[0]?.kind).toBe('session.start');
  expect(events[events.length - 1]?.kind).toBe('session.end');
  for (let i = 1; i < events.length; i++) expect((events[i] as CaptureEvent).t).toBeGreaterThanOrEqual((events[i - 1] as CaptureEvent).t);
  for (const conn of result.unknown.keys()) {
    const own = ofConn(result, conn);
    expect(own[0]?.kind).toBe('conn.open');
    expect(own[own.length - 1]?.kind).toBe('conn.close');
    expect(own.filter((e) => e.kind === 'conn.open' || e.kind === 'conn.close')).toHaveLength(2);
  }
}

describe('harToEvents: a Chrome DevTools HAR', () => {
  const result = harToEvents(chromeHar(), 'chrome.har');

  it('reads it as a foreign HAR with two connections, in order', () => {
    expect(result.source).toBe('other');
    expect(result.creator).toBe('WebInspector 537.36');
    expect(result.warnings).toEqual([]);
    expect([...result.unknown.keys()]).toEqual([1, 2]);
    expectWellOrdered(result);
    const start = result.events[0];
    expect(start).toMatchObject({ kind: 'session.start', t: T0, version: '537.36', mode: 'http', listen: '', target: 'https://example.test', pid: 0 });
    expect(result.events[result.events.length - 1]).toMatchObject({ kind: 'session.end', reason: 'har', t: Date.parse('2024-05-01T10:00:02.030Z') });
  });

  it('maps the WebSocket handshake', () => {
    const request = result.events.find((e): e is HandshakeRequestEvent => e.kind === 'ws.handshake.request');
    expect(request).toMatchObject({ conn: 1, method: 'GET', url: '/socket?room=1', httpVersion: '1.1', headLength: 0, t: T0 + 3 });
    expect(request?.rawHeaders[0]).toEqual(['Upgrade', 'websocket']);
    const response = result.events.find((e): e is HandshakeResponseEvent => e.kind === 'ws.handshake.response');
    expect(response).toMatchObject({ conn: 1, statusCode: 101, reason: 'Switching Protocols', upgraded: true, headLength: 180, waitMs: 8.5, t: T0 + 12 });
    expect(response?.deflate).toEqual({ serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 10 });
  });

  it('has messages whose previews decode back to the data, with microsecond times', () => {
    const messages = result.events.filter((e): e is MessageEvent => e.kind === 'ws.message');
    expect(messages.map((m) => [m.side, m.opcode, m.firstFrame])).toEqual([
      ['client', 1, 0],
      ['upstream', 1, 0],
      ['upstream', 2, 1],
      ['client', 1, 1],
    ]);
    const [hello, ok, binary] = messages as [MessageEvent, MessageEvent, MessageEvent];
    expect(Buffer.from(hello.preview, 'base64').toString('utf8')).toBe('hello ✓');
    expect(hello.size).toBe(Buffer.byteLength('hello ✓'));
    expect(hello.wireLength).toBe(hello.size);
    expect(hello.t).toBeCloseTo(T0 + 12.345, 6);
    expect(hello.tEnd).toBe(hello.t);
    expect(ok.t).toBeCloseTo(T0 + 20.001, 6);
    expect(Buffer.from(binary.preview, 'base64').equals(BINARY)).toBe(true);
    expect(binary.size).toBe(BINARY.length);
    expect(messages.every((m) => !m.previewTruncated && !m.compressed && m.frames === 1)).toBe(true);
  });

  it('shows no close evidence and says so', () => {
    const tracker = track(result.events);
    const ws = tracker.get(1);
    expect(ws?.state).toBe('closed');
    expect(ws?.evidence).toEqual([]);
    expect(ws && attributionOf(ws).closedBy).toBeNull();
    expect(ws?.directions.client.messages).toBe(2);
    expect(ws?.directions.upstream.messages).toBe(2);
    expect(ws?.directions.client.frames).toBe(0);
    expect(result.unknown.get(1)).toEqual(expect.arrayContaining(['close evidence', 'frames', 'pings', 'byte counts']));
    expect(result.events.some((e) => ['tcp.fin', 'tcp.rst', 'tcp.error', 'proxy.close', 'ws.frame'].includes(e.kind))).toBe(false);
    // The entry's `time` covers only the handshake: the connection lasted until its last message.
    const close = ofConn(result, 1).find((e) => e.kind === 'conn.close');
    expect(close?.t).toBeCloseTo(T0 + 1600.001, 6);
    expect(close).toMatchObject({ bytes: { fromClient: 0, fromUpstream: 0 } });
  });

  it('maps the plain GET to an exchange', () => {
    const tracker = track(result.events);
    expect(tracker.get(2)?.httpExchanges).toBe(1);
    expect(tracker.get(2)?.firstRequestUrl).toBe('/api/items?x=1');
    const response = result.events.find((e): e is HttpResponseEvent => e.kind === 'http.response');
    expect(response).toMatchObject({
      conn: 2,
      exchange: 1,
      statusCode: 200,
      statusMessage: 'OK',
      httpVersion: '1.1',
      requestBodyBytes: 0,
      responseBodyBytes: 512,
      ttfbMs: 21,
      totalMs: 30,
      complete: true,
      t: Date.parse('2024-05-01T10:00:02.030Z'),
    });
    expect(result.unknown.get(2)).toEqual(['byte counts']);
  });
});

describe('harToEvents: a wstap HAR', () => {
  const result = harToEvents(wstapHar(), 'session.har');
  const tracker = track(result.events);

  it('keeps connection ids and groups keep-alive exchanges', () => {
    expect(result.source).toBe('wstap');
    expect(result.creator).toBe('wstap 0.1.0');
    expect(result.warnings).toEqual([]);
    expect([...result.unknown.keys()].sort((a, b) => a - b)).toEqual([3, 4, 7]);
    expectWellOrdered(result);
    expect(tracker.get(3)?.httpExchanges).toBe(2);
    const exchanges = ofConn(result, 3).filter((e) => e.kind === 'http.request').map((e) => e.kind === 'http.request' && [e.exchange, e.url]);
    expect(exchanges).toEqual([
      [1, '/a'],
      [2, '/b'],
    ]);
  });

  it('attributes the close to the client from the recorded evidence', () => {
    const ws = tracker.get(7);
    expect(ws?.state).toBe('closed');
    const attribution = ws && attributionOf(ws);
    expect(attribution?.closedBy).toBe('client');
    expect(attribution?.first).toMatchObject({ kind: 'close-frame', code: 1000, reason: '' });
    expect(attribution?.idleBeforeCloseMs).toEqual({ client: 998, upstream: 1000 });
    expect(ws?.evidence.map((e) => `${e.side} ${e.kind}`)).toEqual(['client close-frame', 'upstream close-frame', 'upstream fin', 'client fin']);
  });

  it('counts frames and messages per side and pairs the ping', () => {
    const ws = tracker.get(7);
    expect(ws?.directions.client.frames).toBe(3);
    expect(ws?.directions.upstream.frames).toBe(4);
    expect(ws?.directions.client.messages).toBe(1);
    expect(ws?.directions.upstream.messages).toBe(1);
    expect(ws?.pings.map((p) => [p.from, p.rttMs])).toEqual([['upstream', 2]]);
    expect(result.unknown.get(7)).not.toContain('frames');
    expect(result.unknown.get(7)).not.toContain('close evidence');
    expect(result.unknown.get(7)).toEqual(expect.arrayContaining(['byte counts', 'idle of later close evidence']));
  });

  it('puts close codes on the recorded close frames without making new ones', () => {
    const closes = result.events.filter((e): e is FrameEvent => e.kind === 'ws.frame' && e.opcode === 8);
    expect(closes).toHaveLength(2);
    expect(closes[0]).toMatchObject({ side: 'client', index: 2, closeCode: 1000, closeReason: '', idle: { client: 998, upstream: 1000 }, masked: true });
    expect(closes[1]).toMatchObject({ side: 'upstream', index: 3, closeCode: 1000, closeReason: 'ok' });
    expect(closes[1]?.idle).toBeUndefined();
    const fins = result.events.filter((e) => e.kind === 'tcp.fin');
    expect(fins.map((e) => e.kind === 'tcp.fin' && [e.side, e.idle])).toEqual([
      ['upstream', { client: 0, upstream: 0 }],
      ['client', { client: 0, upstream: 0 }],
    ]);
  });

  it('links messages to their frames and marks a cut preview', () => {
    const messages = result.events.filter((e): e is MessageEvent => e.kind === 'ws.message');
    const received = messages.find((m) => m.side === 'upstream');
    expect(received).toMatchObject({ firstFrame: 0, frames: 2, wireLength: 7, size: 7, previewTruncated: true, compressed: false });
    expect(received?.tEnd).toBeCloseTo(T0 + 21, 6);
    expect(Buffer.from(received?.preview ?? '', 'base64').toString()).toBe('abc');
    const sent = messages.find((m) => m.side === 'client');
    expect(sent).toMatchObject({ firstFrame: 0, frames: 1, wireLength: 5, size: 5, previewTruncated: false });
  });

  it('maps the 502 wstap answered to an http.error', () => {
    const error = result.events.find((e): e is HttpErrorEvent => e.kind === 'http.error');
    expect(error).toMatchObject({ conn: 4, exchange: 1, stage: 'connect', code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:9', answeredStatus: 502 });
    expect(tracker.get(4)?.upstreamError).toBe(error);
  });
});

describe('harToEvents: close evidence without frames', () => {
  function closingHar(wstap: Record<string, unknown>): string {
    return har({ name: 'wstap', version: '0.1.0' }, [
      {
        ...wstapEntryBase(T0_ISO, 100),
        request: { method: 'GET', url: 'ws://app.test/', httpVersion: 'HTTP/1.1', headers: [], headersSize: 10, bodySize: 0 },
        response: { status: 101, statusText: 'Switching Protocols', httpVersion: 'HTTP/1.1', headers: [], headersSize: 10, bodySize: 0, content: { size: 0 } },
        _resourceType: 'websocket',
        _webSocketMessages: [],
        _wstap: { connectionId: 1, frames: [], pings: [], diagnosis: [], redacted: true, ...wstap },
      },
    ]);
  }

  it('makes a close frame from a close-frame event so attribution still works', () => {
    const result = harToEvents(
      closingHar({
        closeEvents: [
          { side: 'upstream', kind: 'close-frame', time: S0 + 0.05, code: 1001, reason: 'going away' },
          { side: 'client', kind: 'rst', time: S0 + 0.06 },
        ],
        idleBeforeCloseMs: { client: 40, upstream: 45 },
      }),
      'x.har',
    );
    const frames = result.events.filter((e): e is FrameEvent => e.kind === 'ws.frame');
    expect(frames).toHaveLength(1);
    expect(frames[0]).toMatchObject({ side: 'upstream', opcode: 8, closeCode: 1001, closeReason: 'going away', length: 12, masked: false, idle: { client: 40, upstream: 45 } });
    const ws = track(result.events).get(1);
    expect(ws && attributionOf(ws).closedBy).toBe('upstream');
    expect(ws?.evidence.map((e) => e.kind)).toEqual(['close-frame', 'rst']);
    // No messages and an empty frame list: there were none, not "unknown".
    expect(result.unknown.get(1)).not.toContain('frames');
  });

  it('maps proxy, error and timeout evidence', () => {
    const result = harToEvents(
      closingHar({
        closeEvents: [
          { side: 'proxy', kind: 'fin', time: S0 + 0.01, reason: 'shutdown' },
          { side: 'upstream', kind: 'error', time: S0 + 0.02, error: 'ECONNRESET' },
          { side: 'client', kind: 'timeout', time: S0 + 0.03 },
        ],
        idleBeforeCloseMs: null,
      }),
      'x.har',
    );
    const kinds = result.events.filter((e) => 'conn' in e).map((e) => e.kind);
    expect(kinds).toEqual(['conn.open', 'ws.handshake.request', 'ws.handshake.response', 'proxy.close', 'tcp.error', 'tcp.error', 'conn.close']);
    expect(result.events.find((e) => e.kind === 'proxy.close')).toMatchObject({ reason: 'shutdown', idle: { client: 0, upstream: 0 } });
    expect(result.events.filter((e) => e.kind === 'tcp.error').map((e) => e.kind === 'tcp.error' && [e.side, e.code])).toEqual([
      ['upstream', 'ECONNRESET'],
      ['client', 'ETIMEDOUT'],
    ]);
    const ws = track(result.events).get(1);
    expect(ws && attributionOf(ws).closedBy).toBe('proxy');
  });

  it('reads the paused sides of close events (backpressure), so the order is unknown again, and warns about malformed ones', () => {
    const result = harToEvents(
      closingHar({
        closedBy: null,
        closeOrder: { reason: 'order-unknown', pausedSide: 'upstream', pausedSince: S0 + 0.01 },
        closeEvents: [
          { side: 'client', kind: 'close-frame', time: S0 + 0.05, code: 1000, pausedSince: { upstream: S0 + 0.01 } },
          { side: 'upstream', kind: 'fin', time: S0 + 0.08, pausedSince: { upstream: S0 + 0.01, client: 'soon' } },
          { side: 'client', kind: 'fin', time: S0 + 0.09, pausedSince: 7 },
        ],
        idleBeforeCloseMs: null,
      }),
      'x.har',
    );
    expect(result.warnings).toEqual([
      'log.entries[0]._wstap.closeEvents[1].pausedSince.client: ignored: not a number',
      'log.entries[0]._wstap.closeEvents[2].pausedSince: ignored: not an object',
    ]);
    const pausedAt = (S0 + 0.01) * 1000;
    expect(result.events.find((e) => e.kind === 'ws.frame')).toMatchObject({ side: 'client', closeCode: 1000, pausedSince: { upstream: pausedAt } });
    expect(result.events.filter((e) => e.kind === 'tcp.fin').map((e) => e.kind === 'tcp.fin' && e.pausedSince)).toEqual([{ upstream: pausedAt }, undefined]);
    const ws = track(result.events).get(1);
    const attribution = ws && attributionOf(ws);
    expect(attribution?.closedBy).toBeNull();
    expect(attribution?.orderUnknown).toMatchObject({ pausedSide: 'upstream', pausedSince: pausedAt });
  });
});

describe('harToEvents: ping and pong data', () => {
  const frame = (type: 'send' | 'receive', at: number, opcode: number, payload?: unknown) => ({
    type, time: S0 + at, opcode, fin: true, rsv1: false, masked: type === 'send', length: 2, ...(payload !== undefined ? { payload } : {}),
  });
  const result = harToEvents(
    har({ name: 'wstap', version: '0.1.0' }, [
      {
        ...wstapEntryBase(T0_ISO, 100),
        request: { method: 'GET', url: 'ws://app.test/', httpVersion: 'HTTP/1.1', headers: [], headersSize: 10, bodySize: 0 },
        response: { status: 101, statusText: 'Switching Protocols', httpVersion: 'HTTP/1.1', headers: [], headersSize: 10, bodySize: 0, content: { size: 0 } },
        _resourceType: 'websocket',
        _webSocketMessages: [],
        _wstap: {
          connectionId: 1,
          pings: [],
          diagnosis: [],
          redacted: true,
          closeEvents: [],
          idleBeforeCloseMs: null,
          frames: [
            frame('send', 0.01, 9, Buffer.from('me').toString('base64')),
            // The client's own data coming back from the client: not the app's answer.
            frame('send', 0.02, 10, Buffer.from('me').toString('base64')),
            // The app answers with other data, then with the ping's.
            frame('receive', 0.03, 10, Buffer.from('zz').toString('base64')),
            frame('receive', 0.04, 10, Buffer.from('me').toString('base64')),
            frame('receive', 0.05, 9, 'not base64!'),
            frame('send', 0.06, 1, 'aGk='),
          ],
        },
      },
    ]),
    'p.har',
  );

  it('reads the data of pings and pongs into the frames, so they pair as they did live', () => {
    const pairing = track(result.events).get(1)?.pingPairing;
    expect(pairing?.strays.client).toMatchObject({ sameDirection: 1, mismatched: 0, unsolicited: 0 });
    expect(pairing?.strays.upstream).toMatchObject({ sameDirection: 0, mismatched: 1, unsolicited: 0 });
    expect(pairing?.cadence.client).toMatchObject({ sent: 1, answered: 1 });
  });

  it('reads payloadId (a HAR exported with --payloads none) as the frame\'s dataId, which pairs in place of the data', () => {
    const read = harToEvents(
      har({ name: 'wstap', version: '0.1.0' }, [
        {
          ...wstapEntryBase(T0_ISO, 100),
          request: { method: 'GET', url: 'ws://app.test/', httpVersion: 'HTTP/1.1', headers: [], headersSize: 10, bodySize: 0 },
          response: { status: 101, statusText: 'Switching Protocols', httpVersion: 'HTTP/1.1', headers: [], headersSize: 10, bodySize: 0, content: { size: 0 } },
          _resourceType: 'websocket',
          _webSocketMessages: [],
          _wstap: {
            connectionId: 1, pings: [], diagnosis: [], redacted: true, closeEvents: [], idleBeforeCloseMs: null,
            frames: [frame('send', 0.01, 9, undefined), frame('send', 0.02, 10), frame('receive', 0.03, 10), frame('send', 0.04, 1)].map((f, i) => (i < 3 ? { ...f, payloadId: 4 } : { ...f, payloadId: 5 })),
          },
        },
      ]),
      'n.har',
    );
    const frames = read.events.filter((e): e is FrameEvent => e.kind === 'ws.frame');
    expect(frames.map((f) => [f.preview, f.dataId])).toEqual([['', '4'], ['', '4'], ['', '4'], ['', undefined]]);
    const pairing = track(read.events).get(1)?.pingPairing;
    expect(pairing?.strays.client.sameDirection).toBe(1);
    expect(pairing?.cadence.client.answered).toBe(1);
  });

  it('drops data that is not base64 with a warning, and reads none on frames other than pings and pongs', () => {
    expect(result.warnings).toEqual(['log.entries[0]._wstap.frames[4]: payload dropped: not base64']);
    const previews = result.events.filter((e): e is FrameEvent => e.kind === 'ws.frame').map((f) => f.preview);
    expect(previews).toEqual(['bWU=', 'bWU=', 'eno=', 'bWU=', '', '']);
  });
});

describe('harToEvents: the body of a refused handshake', () => {
  function refusedHar(extra: Record<string, unknown>, wstap?: Record<string, unknown>): HarReadResult {
    return harToEvents(
      har({ name: 'x', version: '1' }, [
        {
          ...wstapEntryBase(T0_ISO, 10),
          request: { method: 'GET', url: 'ws://app.test/', httpVersion: 'HTTP/1.1', headers: [], headersSize: 10, bodySize: 0 },
          response: { status: 403, statusText: 'Forbidden', httpVersion: 'HTTP/1.1', headers: [], headersSize: 10, bodySize: 12, ...extra },
          _resourceType: 'websocket',
          _webSocketMessages: [],
          ...(wstap ? { _wstap: { connectionId: 1, frames: [], pings: [], diagnosis: [], redacted: true, closeEvents: [], idleBeforeCloseMs: null, ...wstap } } : {}),
        },
      ]),
      'r.har',
    );
  }
  const bodyOf = (result: HarReadResult) => result.events.find((e) => e.kind === 'ws.handshake.body');

  it('another tool\'s HAR: the content text, recorded at the entry\'s end, bodySize bytes', () => {
    expect(bodyOf(refusedHar({ content: { size: 12, mimeType: 'text/plain', text: 'go away' } }))).toEqual({
      kind: 'ws.handshake.body', t: T0 + 10, conn: 1, preview: Buffer.from('go away').toString('base64'), previewTruncated: true, bytes: 12,
    });
    expect(bodyOf(refusedHar({ content: { size: 3, mimeType: 'x', text: '/wD+', encoding: 'base64' }, bodySize: 3 }))).toMatchObject({ preview: '/wD+', previewTruncated: false, bytes: 3 });
    expect(bodyOf(refusedHar({ content: { size: 12, mimeType: 'text/plain' } }))).toBeUndefined();
  });

  it('wstap\'s _wstap.handshakeBody says when and how much; a malformed one is ignored with a warning', () => {
    const result = refusedHar({ content: { size: 12, mimeType: 'text/plain', text: 'go' } }, { handshakeBody: { time: S0 + 0.005, bytes: 7, truncated: true } });
    expect(bodyOf(result)).toMatchObject({ t: T0 + 5, bytes: 7, previewTruncated: true, preview: Buffer.from('go').toString('base64') });
    const bad = refusedHar({ content: { size: 12, mimeType: 'text/plain', text: 'go' } }, { handshakeBody: { time: 'soon' } });
    expect(bad.warnings).toEqual(['log.entries[0]._wstap.handshakeBody: ignored: needs time, bytes and truncated']);
    expect(bodyOf(bad)).toMatchObject({ t: T0 + 10, bytes: 12 });
  });
});

describe('harToEvents: interim responses', () => {
  it('reads _wstap.interimResponses back as ws.handshake.interim events before the 101', () => {
    const entry = JSON.parse(wstapHar()) as { log: { entries: Array<Record<string, unknown> & { _wstap?: Record<string, unknown> }> } };
    const ws = entry.log.entries.find((e) => e['_resourceType'] === 'websocket')!;
    ws._wstap = { ...ws._wstap, interimResponses: [{ status: 103, statusText: 'Early Hints', headers: nv([['Link', '</a.css>; rel=preload']]), time: S0 + 0.001 }, { bogus: true }] };
    const result = harToEvents(JSON.stringify(entry), 'w.har');
    const kinds = result.events.filter((e) => e.kind.startsWith('ws.handshake')).map((e) => e.kind);
    expect(kinds).toEqual(['ws.handshake.request', 'ws.handshake.interim', 'ws.handshake.response']);
    expect(result.events.find((e) => e.kind === 'ws.handshake.interim')).toMatchObject({
      statusCode: 103,
      reason: 'Early Hints',
      rawHeaders: [['Link', '</a.css>; rel=preload']],
      headLength: 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n'.length,
      t: T0 + 1,
    });
  });
});

describe('harToEvents: HTTP outcomes and odd clocks', () => {
  function oneEntry(response: Record<string, unknown>, wstap?: Record<string, unknown>): HarReadResult {
    return harToEvents(
      har({ name: 'x', version: '1' }, [
        {
          startedDateTime: T0_ISO,
          time: 8,
          request: { method: 'POST', url: 'https://h.test/p', httpVersion: 'HTTP/1.1', headers: [], bodySize: 33 },
          response,
          timings: { send: 1, wait: 2, receive: 5 },
          ...(wstap ? { _wstap: wstap } : {}),
        },
      ]),
      'h.har',
    );
  }

  it('maps a browser failure (status 0) to http.error with the browser code', () => {
    const result = oneEntry({ status: 0, headers: [], _error: 'net::ERR_CONNECTION_REFUSED' });
    expect(result.events.find((e) => e.kind === 'http.error')).toMatchObject({
      stage: 'connect',
      code: 'net::ERR_CONNECTION_REFUSED',
      message: '',
      answeredStatus: null,
      t: T0 + 8,
    });
  });

  it('keeps the status of a response cut short and marks it incomplete', () => {
    const result = oneEntry({ status: 200, statusText: 'OK', headers: [], bodySize: 10, _error: 'the client went away before the response was complete' });
    expect(result.events.find((e) => e.kind === 'http.response')).toMatchObject({ statusCode: 200, complete: false, requestBodyBytes: 33, responseBodyBytes: 10 });
  });

  it('maps a request wstap refused itself to http.rejected', () => {
    const result = oneEntry({ status: 400, statusText: 'Bad Request', headers: [] }, { connectionId: 9, answeredBy: 'wstap' });
    const kinds = result.events.map((e) => e.kind);
    expect(kinds).toEqual(['session.start', 'conn.open', 'http.rejected', 'conn.close', 'session.end']);
    expect(result.events.find((e) => e.kind === 'http.rejected')).toMatchObject({ conn: 9, method: 'POST', url: '/p', statusCode: 400, reason: 'Bad Request' });
  });

  it('never puts the handshake after the first message when the file clocks disagree', () => {
    const result = harToEvents(
      har({ name: 'x', version: '1' }, [
        {
          startedDateTime: T0_ISO,
          time: 500,
          request: { method: 'GET', url: 'ws://h.test/', httpVersion: 'HTTP/1.1', headers: [] },
          response: { status: 101, headers: [] },
          timings: { send: 0, wait: 400, receive: 100 },
          _resourceType: 'websocket',
          _webSocketMessages: [{ type: 'receive', time: S0 + 0.1, opcode: 1, data: 'early' }],
        },
      ]),
      'c.har',
    );
    expectWellOrdered(result);
    expect(result.events.filter((e) => 'conn' in e).map((e) => e.kind)).toEqual([
      'conn.open',
      'ws.handshake.request',
      'ws.handshake.response',
      'ws.message',
      'conn.close',
    ]);
    expect(result.events.find((e) => e.kind === 'ws.handshake.response')?.t).toBe(T0 + 100);
  });
});

describe('harToEvents: bad input', () => {
  it.each([
    ['not JSON', 'this is not json', /not JSON/],
    ['a JSON array', '[1, 2]', /not a JSON object/],
    ['no log', '{"entries": []}', /no "log" object/],
    ['entries not an array', '{"log": {"version": "1.2", "entries": {}}}', /"log\.entries" is not an array/],
  ])('rejects %s with HarFormatError', (_name, text, pattern) => {
    let caught: unknown;
    try {
      harToEvents(text, '/tmp/bad.har');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(HarFormatError);
    const error = caught as HarFormatError;
    expect(error.code).toBe('WSTAP_BAD_HAR');
    expect(error.path).toBe('/tmp/bad.har');
    expect(error.message.startsWith('/tmp/bad.har: not a HAR file: ')).toBe(true);
    expect(error.message).toMatch(pattern);
  });

  it('skips broken entries with a warning and reads the rest', () => {
    const good = (path: string): Record<string, unknown> => ({
      startedDateTime: T0_ISO,
      time: '15',
      request: { method: 'GET', url: `http://h.test${path}`, httpVersion: 'HTTP/1.1', headers: [] },
      response: { status: '204', statusText: 'No Content', httpVersion: 'HTTP/1.1', headers: [], bodySize: 'lots', content: { size: 0 } },
      timings: { send: 'x', wait: '4' },
    });
    const result = harToEvents(
      har({ name: 'curl-ish', version: '1' }, [good('/one'), { startedDateTime: 'yesterday', request: {} }, { startedDateTime: T0_ISO }, 42, good('/two')], '1.0'),
      'mixed.har',
    );
    expect(result.warnings).toHaveLength(4);
    expect(result.warnings[0]).toMatch(/log\.version/);
    expect(result.warnings[1]).toMatch(/^log\.entries\[1\]: skipped: startedDateTime "yesterday"/);
    expect(result.warnings[2]).toMatch(/^log\.entries\[2\]: skipped: no request/);
    expect(result.warnings[3]).toMatch(/^log\.entries\[3\]: skipped: not an object/);
    expect([...result.unknown.keys()]).toEqual([1, 2]);
    const responses = result.events.filter((e): e is HttpResponseEvent => e.kind === 'http.response');
    // Numeric strings are numbers; a field that is not a number takes its default.
    expect(responses.map((r) => [r.conn, r.statusCode, r.totalMs, r.ttfbMs, r.responseBodyBytes])).toEqual([
      [1, 204, 15, 4, 0],
      [2, 204, 15, 4, 0],
    ]);
  });

  it('skips a bad message but keeps the others, and keeps control characters raw', () => {
    const result = harToEvents(
      har({ name: 'x', version: '1' }, [
        {
          startedDateTime: T0_ISO,
          time: 1,
          request: { method: 'GET', url: 'ws://h.test/s', httpVersion: 'HTTP/1.1', headers: [{ name: 'X-Evil', value: 'a\u001b[31mb' }] },
          response: { status: 101, headers: [] },
          _webSocketMessages: [
            { type: 'send', time: S0, opcode: 1, data: 'ok' },
            { type: 'sideways', time: S0, opcode: 1, data: 'lost' },
            { type: 'receive', time: S0, opcode: 9, data: '' },
          ],
        },
      ]),
      'h.har',
    );
    expect(result.warnings).toEqual([
      'log.entries[0]._webSocketMessages[1]: skipped: type "sideways" is neither "send" nor "receive"',
      'log.entries[0]._webSocketMessages[2]: skipped: opcode 9 is not 1 or 2',
    ]);
    expect(result.events.filter((e) => e.kind === 'ws.message')).toHaveLength(1);
    const request = result.events.find((e): e is HandshakeRequestEvent => e.kind === 'ws.handshake.request');
    expect(request?.rawHeaders).toEqual([['X-Evil', 'a\u001b[31mb']]);
  });

  it('renumbers entries that share a connection id but overlap in time', () => {
    const entry = (started: string): Record<string, unknown> => ({
      startedDateTime: started,
      time: 50,
      request: { method: 'GET', url: 'http://h.test/', httpVersion: 'HTTP/1.1', headers: [] },
      response: { status: 200, headers: [] },
      _wstap: { connectionId: 1 },
    });
    const result = harToEvents(har({ name: 'wstap', version: '0.1.0' }, [entry(T0_ISO), entry('2024-05-01T10:00:00.010Z')]), 'm.har');
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toMatch(/share _wstap.connectionId 1 but overlap/);
    expect([...result.unknown.keys()]).toEqual([1, 2]);
  });

  it('reads an empty HAR as an empty session', () => {
    const result = harToEvents(har({ name: 'wstap', version: '0.1.0' }, []), 'e.har');
    expect(result.events.map((e) => e.kind)).toEqual(['session.start', 'session.end']);
    expect(result.unknown.size).toBe(0);
  });
});

describe('looksLikeHar', () => {
  it.each([
    '{"log":{"version":"1.2"',
    '\uFEFF  \n{\n  "log": {\n    "version": "1.2",',
    '{"comment": "exported \\"by\\" a tool", "count": 3, "log": {',
  ])('accepts %j', (text) => {
    expect(looksLikeHar(text)).toBe(true);
  });

  it.each([
    '{"format":"wstap-capture","version":1,"createdBy":"wstap 0.1.0"}\n{"kind":"session.start"',
    'not json at all',
    '[{"log": {}}]',
    '{"logs": {',
    '{"meta": {"log": {}}}',
    '',
  ])('rejects %j', (text) => {
    expect(looksLikeHar(text)).toBe(false);
  });
});
