import type {
  ConnCloseEvent,
  ConnOpenEvent,
  FinEvent,
  FrameEvent,
  HandshakeBodyEvent,
  HandshakeRequestEvent,
  HandshakeResponseEvent,
  HttpErrorEvent,
  HttpRequestEvent,
  HttpResponseEvent,
  Idle,
  MessageEvent,
  PausedSince,
  ProxyCloseEvent,
  RstEvent,
  Side,
} from '../../src/capture/events.js';

/** A `ws.frame` event with plain defaults: a final, unmasked-unless-client, empty frame. */
export function frameEvent(fields: { conn: number; t: number; side: Side; opcode: number } & Partial<FrameEvent>): FrameEvent {
  return {
    kind: 'ws.frame',
    index: 0,
    offset: 0,
    fin: true,
    rsv1: false,
    rsv2: false,
    rsv3: false,
    masked: fields.side === 'client',
    length: 0,
    preview: '',
    previewTruncated: false,
    ...fields,
  };
}

/** An `http.response` event: 200 OK, 12 body bytes. */
export function httpResponseEvent(fields: { conn: number; t: number; exchange: number } & Partial<HttpResponseEvent>): HttpResponseEvent {
  return {
    kind: 'http.response',
    statusCode: 200,
    statusMessage: 'OK',
    httpVersion: '1.1',
    rawHeaders: [],
    requestBodyBytes: 0,
    responseBodyBytes: 12,
    ttfbMs: 3,
    totalMs: 4,
    complete: true,
    ...fields,
  };
}

/** Anchor time of the hand-built events. */
export const T0 = 1_700_000_000_000;

export function openEvent(conn: number, fields: Partial<ConnOpenEvent> = {}): ConnOpenEvent {
  return { kind: 'conn.open', t: T0, conn, mode: 'http', remoteAddress: '192.0.2.7', remotePort: 40000 + conn, localPort: 8066, ...fields };
}

export function handshakeRequestEvent(conn: number, t: number, fields: Partial<HandshakeRequestEvent> = {}): HandshakeRequestEvent {
  return {
    kind: 'ws.handshake.request',
    t,
    conn,
    method: 'GET',
    url: '/api/v4/websocket',
    httpVersion: '1.1',
    rawHeaders: [
      ['Host', 'chat.example'],
      ['Upgrade', 'websocket'],
      ['Connection', 'Upgrade'],
    ],
    headLength: 200,
    ...fields,
  };
}

export function handshakeResponseEvent(conn: number, t: number, fields: Partial<HandshakeResponseEvent> = {}): HandshakeResponseEvent {
  return {
    kind: 'ws.handshake.response',
    t,
    conn,
    statusCode: 101,
    reason: 'Switching Protocols',
    httpVersion: '1.1',
    rawHeaders: [
      ['Upgrade', 'websocket'],
      ['Connection', 'Upgrade'],
    ],
    headLength: 129,
    upgraded: true,
    deflate: null,
    waitMs: 2.5,
    ...fields,
  };
}

/** A `ws.handshake.body` event: the whole body `text` (UTF-8) as its preview unless told otherwise. */
export function handshakeBodyEvent(conn: number, t: number, text = '', fields: Partial<HandshakeBodyEvent> = {}): HandshakeBodyEvent {
  return {
    kind: 'ws.handshake.body',
    t,
    conn,
    preview: Buffer.from(text, 'utf8').toString('base64'),
    previewTruncated: false,
    bytes: Buffer.byteLength(text, 'utf8'),
    ...fields,
  };
}

export function httpRequestEvent(conn: number, t: number, fields: Partial<HttpRequestEvent> = {}): HttpRequestEvent {
  return { kind: 'http.request', t, conn, exchange: 1, method: 'GET', url: '/api/v4/users/me', httpVersion: '1.1', rawHeaders: [['Host', 'chat.example']], ...fields };
}

export function httpErrorEvent(conn: number, t: number, fields: Partial<HttpErrorEvent> = {}): HttpErrorEvent {
  return { kind: 'http.error', t, conn, exchange: 1, stage: 'connect', code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:8065', answeredStatus: 502, ...fields };
}

export function messageEvent(conn: number, t: number, side: Side, fields: Partial<MessageEvent> = {}): MessageEvent {
  return {
    kind: 'ws.message',
    t,
    conn,
    side,
    opcode: 1,
    tEnd: t,
    firstFrame: 0,
    frames: 1,
    wireLength: 0,
    compressed: false,
    size: 0,
    preview: '',
    previewTruncated: false,
    ...fields,
  };
}

/** A `tcp.fin`; `pausedSince`: the sides whose reading was behind when it was read (backpressure). */
export function finEvent(conn: number, t: number, side: Side, idle: Idle = { client: 0, upstream: 0 }, pausedSince?: PausedSince): FinEvent {
  return { kind: 'tcp.fin', t, conn, side, idle, ...(pausedSince ? { pausedSince } : {}) };
}

export function rstEvent(conn: number, t: number, side: Side, idle: Idle = { client: 0, upstream: 0 }, pausedSince?: PausedSince): RstEvent {
  return { kind: 'tcp.rst', t, conn, side, idle, ...(pausedSince ? { pausedSince } : {}) };
}

export function proxyCloseEvent(conn: number, t: number, idle: Idle = { client: 0, upstream: 0 }, reason = 'shutdown'): ProxyCloseEvent {
  return { kind: 'proxy.close', t, conn, reason, idle };
}

export function closeEvent(conn: number, t: number, bytes = { fromClient: 321, fromUpstream: 654 }): ConnCloseEvent {
  return { kind: 'conn.close', t, conn, bytes };
}

/** base64 of a UTF-8 string or raw bytes, as previews are stored. */
export function b64(data: string | readonly number[]): string {
  return (typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data)).toString('base64');
}

/** open + handshake request + 101 response: an upgraded WebSocket at T0 + offset. */
