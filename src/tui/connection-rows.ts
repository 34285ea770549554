import { attributionOf, type ConnectionState, type ConnectionSummary } from '../analysis/connection-tracker.js';
import type { CloseActor, CloseEvidenceKind } from '../analysis/close-attribution.js';
import type { HopTimeout } from '../profiles/hop-timeout.js';
import { directionLevel, nearestCountdown, type Countdown, type CountdownLevel } from '../analysis/countdown.js';
import { instanceTag } from '../analysis/instance-label.js';
import { REDACTED, redactUrl } from '../analysis/redaction.js';
import type { Idle, Side } from '../capture/events.js';
import type { LiveActivity } from '../capture/live-activity.js';

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
  /** Several instances judged each with its own context: a connection's timeouts (else `timeouts`). */
  timeoutsOf?: (s: ConnectionSummary) => readonly HopTimeout[];
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
  /** `by` is null because the order of the two sides' closes is unknown (backpressure). */
  orderUnknown?: true;
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
  /** Several proxies' captures read as one: the proxy it went through and its id there (`edge-a#3`); absent otherwise. */
  instance?: string;
}

export function rowKind(s: ConnectionSummary): RowKind {
  if (s.open.mode === 'tcp') return 'tcp';
  // Frames without a handshake: the handshake is in a part of the capture that is missing.
  return s.handshakeRequest || s.directions.client.frames + s.directions.upstream.frames > 0 ? 'ws' : 'http';
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
  if (url === null || url === undefined) return s.missing?.beginning ? '(beginning not in capture)' : s.open.mode === 'tcp' ? '(tcp)' : '';
  return redact ? redactUrl(url, REDACTED) : url;
}

/** Silence of each direction: now (live, to the byte when the relay says), or just before the first close evidence. */
function idleOf(s: ConnectionSummary, q: RowQuery, live: LiveActivity | null, firstIdle: Idle | null | undefined): Idle {
  // A closed row keeps the silence that preceded its first close evidence (the close frames themselves are traffic).
  if (firstIdle) return { client: firstIdle.client, upstream: firstIdle.upstream };
  const end = s.closedAt ?? q.now;
  const last = (side: Side): number => Math.max(s.lastActivityAt[side], live?.lastByteAt[side] ?? -Infinity);
  return { client: Math.max(0, end - last('client')), upstream: Math.max(0, end - last('upstream')) };
}

function liveOf(s: ConnectionSummary, q: RowQuery): LiveActivity | null {
  return s.state === 'closed' ? null : (q.activity?.(s.conn) ?? null);
}

function bytesOf(s: ConnectionSummary, live: LiveActivity | null): Record<Side, number> {
  const bytes = live?.bytes ?? s.bytes;
  return bytes
    ? { client: bytes.fromClient, upstream: bytes.fromUpstream }
    : { client: s.directions.client.payloadBytes, upstream: s.directions.upstream.payloadBytes };
}

/** One table row for one connection. */
export function connectionRow(s: ConnectionSummary, q: RowQuery): ConnectionRow {
  const live = liveOf(s, q);
  const ageMs = Math.max(0, (s.closedAt ?? q.now) - s.open.t);
  const closedRow = s.state === 'closed';
  const attribution = closedRow ? attributionOf(s) : null;
  const firstIdle = attribution?.idleBeforeCloseMs;
  const idle = idleOf(s, q, live, firstIdle);
  const timeouts = q.timeoutsOf?.(s) ?? q.timeouts;
  return {
    conn: s.conn,
    kind: rowKind(s),
    client: clientOf(s),
    ...(s.open.instance !== undefined ? { instance: instanceOf(s) } : {}),
    path: pathOf(s, q.redact),
    state: s.state,
    failed: isFailed(s),
    ageMs,
    idle,
    idleLevel: closedRow
      ? { client: 'ok', upstream: 'ok' }
      : { client: directionLevel(timeouts, 'client', idle, ageMs), upstream: directionLevel(timeouts, 'upstream', idle, ageMs) },
    countdown: closedRow ? null : nearestCountdown(timeouts, idle, ageMs),
    frames: { client: s.directions.client.frames, upstream: s.directions.upstream.frames },
    bytes: bytesOf(s, live),
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
          ...(attribution.orderUnknown ? { orderUnknown: true as const } : {}),
        }
      : null,
  };
}

function instanceOf(s: ConnectionSummary): string {
  return instanceTag(s.open) ?? '';
}

function clientOf(s: ConnectionSummary): string {
  return s.forwardedFor ?? (s.open.remoteAddress || '?');
}

function matches(s: ConnectionSummary, needle: string, q: RowQuery): boolean {
  return (
    pathOf(s, q.redact).toLowerCase().includes(needle) ||
    clientOf(s).toLowerCase().includes(needle) ||
    (s.open.instance !== undefined && instanceOf(s).toLowerCase().includes(needle)) ||
    s.state.includes(needle) ||
    String(s.conn) === needle
  );
}

/** The sort key of one connection (ascending), cheap to compute: no row is built. */
const SORT_KEY: Record<Exclude<SortKey, 'age'>, (s: ConnectionSummary, q: RowQuery) => number> = {
  // Live connections closest to a both-way idle timeout first; closed ones after.
  idle: (s, q) => {
    const closed = s.state === 'closed';
    const idle = idleOf(s, q, liveOf(s, q), closed ? attributionOf(s).idleBeforeCloseMs : null);
    return (closed ? 1e15 : 0) - Math.min(idle.client, idle.upstream);
  },
  bytes: (s, q) => {
    const b = bytesOf(s, liveOf(s, q));
    return -(b.client + b.upstream);
  },
};

/**
 * The table's order: filtered, HTTP hidden when asked, sorted (ties and the
 * age sort by id). Cheap enough for every redraw with thousands of
 * connections: rows are then built only for what is on screen.
 */
export function orderConnections(summaries: Iterable<ConnectionSummary>, q: RowQuery): ConnectionSummary[] {
  const needle = q.filter.trim().toLowerCase();
  const shown: ConnectionSummary[] = [];
  for (const s of summaries) {
    if (!q.showHttp && rowKind(s) === 'http') continue;
    if (needle !== '' && !matches(s, needle, q)) continue;
    shown.push(s);
  }
  // The default sort needs no keys (and the input is nearly in id order already).
  if (q.sort === 'age') return shown.sort((a, b) => a.conn - b.conn);
  const keyOf = SORT_KEY[q.sort];
  const keyed = shown.map((s) => ({ s, key: keyOf(s, q) }));
  keyed.sort((a, b) => a.key - b.key || a.s.conn - b.s.conn);
  return keyed.map((k) => k.s);
}

/** Every row, in table order (the UI builds only the visible ones; see orderConnections). */
export function connectionRows(summaries: Iterable<ConnectionSummary>, q: RowQuery): ConnectionRow[] {
  return orderConnections(summaries, q).map((s) => connectionRow(s, q));
}
