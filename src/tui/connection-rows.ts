import { attributionOf, type ConnectionState, type ConnectionSummary } from '../analysis/connection-tracker.js';
import type { CloseActor, CloseEvidenceKind } from '../analysis/close-attribution.js';
import {
  directionLevel,
  nearestCountdown,
  type Countdown,
  type CountdownLevel,
  type HopTimeout,
} from '../analysis/hop-timeout.js';
import type { Idle, Side } from '../capture/events.js';
import type { LiveActivity } from '../capture/live-activity.js';
import { REDACTED, redactUrl } from '../har/redaction.js';

export type SortKey = 'age' | 'idle' | 'bytes';
export const SORT_KEYS: readonly SortKey[] = ['age', 'idle', 'bytes'];

export type RowKind = 'ws' | 'http' | 'tcp';

export interface RowQuery {
  /** The display's clock: now when live, the capture's end when replaying. */
  now: number;
  /** Case-insensitive substring of path, client address or state; '' shows all. */
  filter: string;
  sort: SortKey;
  showHttp: boolean;
  timeouts: readonly HopTimeout[];
  redact: boolean;
  /** Live relay state; absent (or null for a connection) when replaying a recording. */
  activity?: (conn: number) => LiveActivity | null;
}

export interface RowClose {
  by: CloseActor | null;
  kind: CloseEvidenceKind | null;
  code: number | null;
  /** Both-way silence just before the first close evidence. */
  idleMs: number | null;
}

/** One line of the connection table, before any layout. */
export interface ConnectionRow {
  conn: number;
  kind: RowKind;
  /** `X-Real-IP` / `X-Forwarded-For` when nginx sent one, else the socket peer. */
  client: string;
  path: string;
  state: ConnectionState;
  /** The handshake or the upstream connection failed. */
  failed: boolean;
  ageMs: number;
  /** Silence of each direction now (live), or just before the first close evidence (closed). */
  idle: Idle;
  idleLevel: Record<Side, CountdownLevel>;
  countdown: Countdown | null;
  frames: Record<Side, number>;
  bytes: Record<Side, number>;
  rttMs: number | null;
  /** HTTP: last status; WebSocket: handshake status when it was not 101. */
  status: number | null;
  close: RowClose | null;
}

export function rowKind(s: ConnectionSummary): RowKind {
  if (s.open.mode === 'tcp') return 'tcp';
  return s.handshakeRequest ? 'ws' : 'http';
}

/** A handshake that did not end in an upgrade, or an upstream that could not be reached. */
export function isFailed(s: ConnectionSummary): boolean {
  if (s.upstreamError?.stage === 'connect') return true;
  if (!s.handshakeRequest) return false;
  if (s.handshakeResponse) return !s.handshakeResponse.upgraded;
  return s.state === 'closed';
}

function pathOf(s: ConnectionSummary, redact: boolean): string {
  const url = s.handshakeRequest?.url ?? s.currentRequest?.url ?? s.firstRequestUrl;
  if (url === null || url === undefined) return s.open.mode === 'tcp' ? '(tcp)' : '';
  return redact ? redactUrl(url, REDACTED) : url;
}

function rowOf(s: ConnectionSummary, q: RowQuery): ConnectionRow {
  const live = s.state === 'closed' ? null : (q.activity?.(s.conn) ?? null);
  const end = s.closedAt ?? q.now;
  const last = (side: Side): number => Math.max(s.lastActivityAt[side], live?.lastByteAt[side] ?? -Infinity);
  const ageMs = Math.max(0, end - s.open.t);
  const closedRow = s.state === 'closed';
  const bytes = live?.bytes ?? s.bytes;
  const attribution = closedRow ? attributionOf(s) : null;
  const firstIdle = attribution?.idleBeforeCloseMs;
  // A closed row keeps the silence that preceded its first close evidence (the close frames themselves are traffic).
  const idle: Idle = firstIdle
    ? { client: firstIdle.client, upstream: firstIdle.upstream }
    : { client: Math.max(0, end - last('client')), upstream: Math.max(0, end - last('upstream')) };
  return {
    conn: s.conn,
    kind: rowKind(s),
    client: s.forwardedFor ?? s.open.remoteAddress,
    path: pathOf(s, q.redact),
    state: s.state,
    failed: isFailed(s),
    ageMs,
    idle,
    idleLevel: closedRow
      ? { client: 'ok', upstream: 'ok' }
      : { client: directionLevel(q.timeouts, 'client', idle, ageMs), upstream: directionLevel(q.timeouts, 'upstream', idle, ageMs) },
    countdown: closedRow ? null : nearestCountdown(q.timeouts, idle, ageMs),
    frames: { client: s.directions.client.frames, upstream: s.directions.upstream.frames },
    bytes: bytes
      ? { client: bytes.fromClient, upstream: bytes.fromUpstream }
      : { client: s.directions.client.payloadBytes, upstream: s.directions.upstream.payloadBytes },
    rttMs: s.pings.at(-1)?.rttMs ?? null,
    status: s.handshakeResponse
      ? s.handshakeResponse.upgraded
        ? null
        : s.handshakeResponse.statusCode
      : (s.lastStatus ?? null),
    close: attribution
      ? {
          by: attribution.closedBy,
          kind: attribution.first?.kind ?? null,
          code: attribution.first?.code ?? null,
          idleMs: firstIdle ? Math.min(firstIdle.client, firstIdle.upstream) : null,
        }
      : null,
  };
}

function matches(row: ConnectionRow, needle: string): boolean {
  if (needle === '') return true;
  return (
    row.path.toLowerCase().includes(needle) ||
    row.client.toLowerCase().includes(needle) ||
    row.state.includes(needle) ||
    String(row.conn) === needle
  );
}

const COMPARE: Record<SortKey, (a: ConnectionRow, b: ConnectionRow) => number> = {
  age: (a, b) => a.conn - b.conn,
  // Live connections closest to a both-way idle timeout first; closed ones after.
  idle: (a, b) =>
    Number(a.state === 'closed') - Number(b.state === 'closed') ||
    Math.min(b.idle.client, b.idle.upstream) - Math.min(a.idle.client, a.idle.upstream) ||
    a.conn - b.conn,
  bytes: (a, b) => b.bytes.client + b.bytes.upstream - (a.bytes.client + a.bytes.upstream) || a.conn - b.conn,
};

/** The table's rows: filtered, HTTP hidden when asked, sorted. Pure: the same summaries give the same rows. */
export function connectionRows(summaries: Iterable<ConnectionSummary>, q: RowQuery): ConnectionRow[] {
  const needle = q.filter.trim().toLowerCase();
  const rows: ConnectionRow[] = [];
  for (const s of summaries) {
    if (!q.showHttp && rowKind(s) === 'http') continue;
    const row = rowOf(s, q);
    if (matches(row, needle)) rows.push(row);
  }
  return rows.sort(COMPARE[q.sort]);
}
