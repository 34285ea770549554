import type { NginxLogLine } from '../capture/events.js';

/**
 * One line of nginx's error log, parsed. Pure; never throws: a line that is
 * not in nginx's format is `null`, the caller counts it.
 *
 * The format, from nginx's source (src/core/ngx_log.c ngx_log_error_core,
 * src/http/ngx_http_request.c ngx_http_log_error and
 * ngx_http_log_error_handler):
 *
 *   2026/12/02 06:44:31 [info] 4711#4711: *12 upstream timed out (110: Connection timed out)
 *     while proxying upgraded connection, client: 127.0.0.1, server: , request: "GET /ws HTTP/1.1",
 *     upstream: "http://127.0.0.1:8066/ws", host: "127.0.0.1:8080"
 *
 * - the time is nginx's cached local time (ngx_times.c, "%4d/%02d/%02d
 *   %02d:%02d:%02d" of ngx_localtime), whole seconds, no zone written: the
 *   reader says which zone (LogTimeZone);
 * - `[level]` one of debug, info, notice, warn, error, crit, alert, emerg;
 * - `pid#tid: `;
 * - `*N ` nginx's connection number (the `$connection` variable), when the
 *   line is about a connection;
 * - the message, then ` (errno: text)` when a system call failed;
 * - ` while ACTION` (what nginx was doing: "proxying upgraded connection",
 *   "reading response header from upstream", ...);
 * - the `, key: value` tails: client, server, request, subrequest,
 *   upstream, host, referrer (http), and others from stream and mail; quoted
 *   values keep their quotes in the log and lose them here.
 * nginx cuts a line at NGX_MAX_ERROR_STR (2048 bytes): a cut tail is kept
 * as far as it goes.
 */

export type NginxLogLevel = 'debug' | 'info' | 'notice' | 'warn' | 'error' | 'crit' | 'alert' | 'emerg';
export const NGINX_LOG_LEVELS: readonly NginxLogLevel[] = ['debug', 'info', 'notice', 'warn', 'error', 'crit', 'alert', 'emerg'];

/**
 * How nginx's zone-less local time becomes an instant: `local` is the zone
 * of the process reading it (its TZ variable; the same host as nginx, or
 * TZ=nginx's zone), `offset` a fixed offset east of UTC in minutes.
 */
export type LogTimeZone = { kind: 'local' } | { kind: 'offset'; minutes: number };
export const LOCAL_TIME: LogTimeZone = { kind: 'local' };

/** A parsed line: the capture's NginxLogLine, its level narrowed to nginx's levels. */
export interface NginxErrorLine extends NginxLogLine {
  level: NginxLogLevel;
}

const HEAD_RE = /^(\d{4})\/(\d{2})\/(\d{2}) (\d{2}):(\d{2}):(\d{2}) \[([a-z]+)\] (\d+)#(\d+): (?:\*(\d+) )?/;

/**
 * The tails nginx's log handlers append (http: ngx_http_request.c; stream:
 * ngx_stream_handler.c and ngx_stream_proxy_module.c; mail). Only these
 * names start a tail, so a ", " inside a message is not taken for one.
 */
const TAIL_KEYS = [
  'client',
  'server',
  'request',
  'subrequest',
  'upstream',
  'host',
  'referrer',
  'login',
  'bytes from/to client',
  'bytes from/to upstream',
];
const TAIL_START_RE = new RegExp(`, (${TAIL_KEYS.map((k) => k.replace('/', '\\/')).join('|')}): `, 'g');
const ERRNO_RE = /\s\((\d+): ([^)]*)\)$/;

/** Parses one line (without its newline); null when it is not an nginx error-log line. */
export function parseErrorLogLine(text: string, zone: LogTimeZone = LOCAL_TIME): NginxErrorLine | null {
  const head = HEAD_RE.exec(text);
  if (!head) return null;
  const level = head[7] as NginxLogLevel;
  if (!NGINX_LOG_LEVELS.includes(level)) return null;
  const [year, month, day, hour, minute, second] = head.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const at = instantOf(zone, year, month, day, hour, minute, second);
  if (!Number.isFinite(at)) return null;
  const rest = text.slice(head[0].length);
  const { body, fields } = splitTails(rest);
  let message = body;
  let action: string | undefined;
  const whileAt = body.lastIndexOf(' while ');
  if (whileAt >= 0) {
    message = body.slice(0, whileAt);
    action = body.slice(whileAt + ' while '.length);
  }
  let errno: NginxErrorLine['errno'];
  const e = ERRNO_RE.exec(message);
  if (e) {
    errno = { code: Number(e[1]), text: e[2] as string };
    message = message.slice(0, e.index);
  }
  return {
    time: text.slice(0, 19),
    at,
    level,
    pid: Number(head[8]),
    tid: Number(head[9]),
    ...(head[10] !== undefined ? { connection: Number(head[10]) } : {}),
    message,
    ...(errno ? { errno } : {}),
    ...(action !== undefined ? { action } : {}),
    fields,
  };
}

/**
 * The tails start at the first `, client: ` (every handler writes client
 * first) or, failing that, the first known key; each value runs to the next
 * known key. A quoted value (request, upstream, host) may itself contain
 * ", key: ": its closing quote must be followed by the next tail or the end.
 */
function splitTails(rest: string): { body: string; fields: Record<string, string> } {
  const starts = [...rest.matchAll(TAIL_START_RE)];
  const first = starts.find((m) => m[1] === 'client') ?? starts[0];
  if (!first || first.index === undefined) return { body: rest, fields: {} };
  const fields: Record<string, string> = {};
  let at = first.index;
  while (at < rest.length) {
    TAIL_START_RE.lastIndex = at;
    const m = TAIL_START_RE.exec(rest);
    if (!m || m.index !== at) break;
    const key = m[1] as string;
    const valueStart = at + m[0].length;
    const end = valueEnd(rest, valueStart);
    fields[key] = unquote(rest.slice(valueStart, end));
    at = end;
  }
  return { body: rest.slice(0, first.index), fields };
}

/** Where a value starting at `from` ends: at the next tail (after the closing quote when quoted) or the line's end. */
function valueEnd(rest: string, from: number): number {
  const quoted = rest[from] === '"';
  TAIL_START_RE.lastIndex = from + (quoted ? 1 : 0);
  for (let m = TAIL_START_RE.exec(rest); m; m = TAIL_START_RE.exec(rest)) {
    if (!quoted || rest[m.index - 1] === '"') return m.index;
  }
  return rest.length;
}

function unquote(value: string): string {
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) return value.slice(1, -1);
  // Cut at nginx's line limit: the opening quote without its closing one.
  return value.startsWith('"') ? value.slice(1) : value;
}

function instantOf(zone: LogTimeZone, y: number, mo: number, d: number, h: number, mi: number, s: number): number {
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return NaN;
  if (zone.kind === 'local') return new Date(y, mo - 1, d, h, mi, s).getTime();
  return Date.UTC(y, mo - 1, d, h, mi, s) - zone.minutes * 60_000;
}

/** "UTC+01:00" for an offset; "local time (Europe/Paris)" for the reader's zone. */
export function describeZone(zone: LogTimeZone): string {
  if (zone.kind === 'local') return `local time (${Intl.DateTimeFormat().resolvedOptions().timeZone})`;
  const sign = zone.minutes < 0 ? '-' : '+';
  const abs = Math.abs(zone.minutes);
  return `UTC${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}
