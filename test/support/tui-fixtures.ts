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
import { T0, frameEvent, httpResponseEvent, openEvent, handshakeRequestEvent, handshakeResponseEvent, httpRequestEvent, httpErrorEvent, messageEvent, finEvent, rstEvent, proxyCloseEvent, closeEvent, b64 } from './event-fixtures.js';

/** Hand-built events for the terminal UI's view models. */


export { T0, frameEvent, httpResponseEvent, openEvent, handshakeRequestEvent, handshakeResponseEvent, httpRequestEvent, httpErrorEvent, messageEvent, finEvent, rstEvent, proxyCloseEvent, closeEvent, b64 };

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
