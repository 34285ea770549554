import { ConnectionTracker, type ConnectionSummary } from '../../src/analysis/connection-tracker.js';
import type {
  CaptureEvent,
  ConnCloseEvent,
  ConnOpenEvent,
  FinEvent,
  HandshakeRequestEvent,
  HandshakeResponseEvent,
  HttpErrorEvent,
  HttpRequestEvent,
  Idle,
  MessageEvent,
  ProxyCloseEvent,
  RawHeaders,
  RstEvent,
  Side,
} from '../../src/capture/events.js';
import { connectionRows, type ConnectionRow, type RowQuery } from '../../src/tui/connection-rows.js';
import { displayWidth } from '../../src/tui/terminal-text.js';
import { frameEvent, httpResponseEvent } from './event-fixtures.js';

/** Hand-built events for the terminal UI's view models. */

export const T0 = 1_700_000_000_000;

export { frameEvent, httpResponseEvent };

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

export function finEvent(conn: number, t: number, side: Side, idle: Idle = { client: 0, upstream: 0 }): FinEvent {
  return { kind: 'tcp.fin', t, conn, side, idle };
}

export function rstEvent(conn: number, t: number, side: Side, idle: Idle = { client: 0, upstream: 0 }): RstEvent {
  return { kind: 'tcp.rst', t, conn, side, idle };
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
export function wsOpened(conn: number, options: { t?: number; url?: string; headers?: RawHeaders; remoteAddress?: string } = {}): CaptureEvent[] {
  const t = options.t ?? T0;
  return [
    openEvent(conn, { t, ...(options.remoteAddress ? { remoteAddress: options.remoteAddress } : {}) }),
    handshakeRequestEvent(conn, t + 1, {
      ...(options.url ? { url: options.url } : {}),
      ...(options.headers ? { rawHeaders: options.headers } : {}),
    }),
    handshakeResponseEvent(conn, t + 3),
  ];
}

/** Folds events through a real tracker. */
export function fold(events: readonly CaptureEvent[], tracker = new ConnectionTracker()): ConnectionTracker {
  for (const e of events) tracker.apply(e);
  return tracker;
}

/** Every summary the tracker holds, closed first, as the TUI passes them. */
export function summariesOf(tracker: ConnectionTracker): ConnectionSummary[] {
  return [...tracker.closed, ...tracker.live];
}

export function query(now: number, overrides: Partial<RowQuery> = {}): RowQuery {
  return { now, filter: '', sort: 'age', showHttp: true, timeouts: [], redact: true, ...overrides };
}

export function rowsOf(events: readonly CaptureEvent[], q: RowQuery): ConnectionRow[] {
  return connectionRows(summariesOf(fold(events)), q);
}

/** The one row of `conn` (throws when it is not shown). */
export function rowOf(events: readonly CaptureEvent[], conn: number, q: RowQuery): ConnectionRow {
  const row = rowsOf(events, q).find((r) => r.conn === conn);
  if (!row) throw new Error(`no row for #${conn}`);
  return row;
}

/**
 * What blessed would show for a tagged line: style tags removed, `{open}` and
 * `{close}` turned back into braces (one pass, so a literal "{red-fg}" that
 * was escaped stays literal).
 */
export function untag(tagged: string): string {
  return tagged.replace(/\{(\/?)([a-z-]+)\}/g, (_m, slash: string, name: string) => {
    if (slash === '' && name === 'open') return '{';
    if (slash === '' && name === 'close') return '}';
    return '';
  });
}

/** Terminal columns of a tagged line once blessed has interpreted its tags. */
export function visibleWidth(tagged: string): number {
  return displayWidth(untag(tagged));
}

/** C0/C1 controls, DEL, line/paragraph separators, bidi embeddings/overrides/isolates. */
export const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
