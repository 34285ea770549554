import type { NginxLogEvent, RawHeaders } from '../capture/events.js';
import { headerValue } from '../capture/raw-headers.js';

/**
 * Which of wstap's connections an nginx error-log line is about. Exactly,
 * when the request wstap recorded carries nginx's connection number
 * (`proxy_set_header X-Nginx-Connection $connection;`, the `*N` of every
 * line about that connection); otherwise by what both sides saw: the
 * request line (or the path of `upstream:`), the client address
 * (`X-Real-IP`/`X-Forwarded-For` against `client:`) and the time (nginx
 * logs whole seconds), and only when exactly one connection fits. How the
 * join was made goes into the evidence. Pure.
 */

export const NGINX_CONNECTION_HEADER = 'x-nginx-connection';

/** What a connection offers for the join (from the tracker's summary). */
export interface JoinableConnection {
  conn: number;
  openedAt: number;
  closedAt: number | null;
  /** The value of X-Nginx-Connection on its request, when present and a number. */
  nginxConnection: number | null;
  /** The request wstap recorded (handshake or first plain request). */
  request: { method: string; url: string; httpVersion: string | null } | null;
  /** The client as nginx named it (X-Real-IP, X-Forwarded-For). */
  forwardedFor: string | null;
}

export interface JoinedLine {
  event: NginxLogEvent;
  /** "exactly: X-Nginx-Connection 12 on the request" or "by request line ..., client ... and time (whole seconds)". */
  how: string;
}

export type JoinResult = { conn: number; how: string } | { conn: null; fits: number };

/** nginx's connection number from a request head, when the location sets the header. */
export function nginxConnectionOf(headers: RawHeaders): number | null {
  const value = headerValue(headers, NGINX_CONNECTION_HEADER)?.trim();
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : null;
}

/** A line may be about a connection from a second before it opened (whole seconds) to a few after it closed (nginx logs as it finalizes). */
const AFTER_CLOSE_MS = 5000;

function inTime(line: NginxLogEvent, c: JoinableConnection): boolean {
  const from = Math.floor(c.openedAt / 1000) * 1000;
  return line.at >= from && (c.closedAt === null || line.at <= c.closedAt + AFTER_CLOSE_MS);
}

/** "/ws?x=1" out of nginx's `upstream: "http://127.0.0.1:8066/ws?x=1"` (or "http://unix:/run/w.sock:/ws"). */
export function upstreamPath(upstream: string): string | null {
  const m = /^[a-z][a-z0-9+.-]*:\/\/(?:unix:[^:]*:|[^/]*)(\/.*)$/i.exec(upstream);
  return m ? (m[1] as string) : null;
}

/** Finds the connection a line is about among those given (live and recently closed). */
export function joinLine(line: NginxLogEvent, byHeader: (nginxConnection: number) => JoinableConnection | undefined, all: Iterable<JoinableConnection>): JoinResult {
  if (line.connection !== undefined) {
    const exact = byHeader(line.connection);
    if (exact && inTime(line, exact)) return { conn: exact.conn, how: `exactly: X-Nginx-Connection ${line.connection} on the request wstap recorded` };
  }
  const request = line.fields['request'];
  const upstream = line.fields['upstream'];
  if (request === undefined && upstream === undefined) return { conn: null, fits: 0 };
  const path = upstream !== undefined ? upstreamPath(upstream) : null;
  const client = line.fields['client'];
  const fitting: Array<{ c: JoinableConnection; by: string[] }> = [];
  for (const c of all) {
    // A connection that carries nginx's number is only ever joined by it.
    if (c.nginxConnection !== null || !c.request || !inTime(line, c)) continue;
    const by: string[] = [];
    const r = c.request;
    if (request !== undefined && (request === `${r.method} ${r.url} HTTP/${r.httpVersion}` || (r.httpVersion === null && request.startsWith(`${r.method} ${r.url} `)))) {
      by.push(`request line "${request}"`);
    } else if (path !== null && path === r.url) {
      by.push(`upstream URL "${upstream}"`);
    } else {
      continue;
    }
    if (client !== undefined && c.forwardedFor !== null) {
      if (c.forwardedFor !== client) continue;
      by.push(`client ${client}`);
    }
    fitting.push({ c, by });
  }
  const [one, ...more] = fitting;
  if (!one || more.length > 0) return { conn: null, fits: fitting.length };
  return { conn: one.c.conn, how: `by ${[...one.by, 'time (whole seconds)'].join(', ')}; not exact: no X-Nginx-Connection header on the request` };
}
