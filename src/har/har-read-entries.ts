import type { CaptureEvent } from '../capture/events.js';
import { round3 } from './har-entries.js';
import { isObject, nonNegative, num, parseDateTime, type Json } from './har-read-values.js';

/**
 * A HAR's entries as the reader sees them before any event is made: which
 * entries are usable (a date-time and a request), when each one's request
 * left and how long it waited, and which entries are one connection
 * (`_wstap.connectionId`, else one connection per entry). Also the list of
 * what a connection's entries could not tell (`UNKNOWN`).
 */

export const UNKNOWN = {
  closeEvidence: 'close evidence',
  frames: 'frames',
  pings: 'pings',
  messages: 'messages',
  byteCounts: 'byte counts',
  laterIdle: 'idle of later close evidence',
  protocolErrorTimes: 'protocol error times',
} as const;

/** A valid entry with the fields every mapping needs. */
export interface GoodEntry {
  index: number;
  raw: Json;
  request: Json;
  response: Json;
  wstap: Json | undefined;
  start: number;
  end: number;
  websocket: boolean;
}

export interface Connection {
  id: number;
  entries: GoodEntry[];
  events: CaptureEvent[];
  unknown: string[];
}

export function addUnknown(connection: Connection, what: string): void {
  if (!connection.unknown.includes(what)) connection.unknown.push(what);
}

function isWebSocketEntry(raw: Json, response: Json): boolean {
  return raw['_resourceType'] === 'websocket' || num(response['status']) === 101 || Array.isArray(raw['_webSocketMessages']);
}

/** `log.entries` minus those without a date-time or a request object, each skipped one with a warning. */
export function goodEntriesOf(entries: unknown[], warnings: string[]): GoodEntry[] {
  const good: GoodEntry[] = [];
  entries.forEach((raw, index) => {
    const where = `log.entries[${index}]`;
    if (!isObject(raw)) {
      warnings.push(`${where}: skipped: not an object`);
      return;
    }
    const start = parseDateTime(raw['startedDateTime']);
    if (start === undefined) {
      warnings.push(`${where}: skipped: startedDateTime ${JSON.stringify(raw['startedDateTime'] ?? null)} is not a date-time`);
      return;
    }
    const request = raw['request'];
    if (!isObject(request)) {
      warnings.push(`${where}: skipped: no request object`);
      return;
    }
    const response = isObject(raw['response']) ? raw['response'] : {};
    const wstap = isObject(raw['_wstap']) ? raw['_wstap'] : undefined;
    good.push({
      index,
      raw,
      request,
      response,
      wstap,
      start,
      end: round3(start + (nonNegative(raw['time']) ?? 0)),
      websocket: isWebSocketEntry(raw, response),
    });
  });
  return good;
}

/** When the request left: after the blocked, dns and connect phases (ssl is inside connect in HAR 1.2). */
export function requestSentAt(entry: GoodEntry): number {
  const timings = isObject(entry.raw['timings']) ? entry.raw['timings'] : {};
  const pre = (nonNegative(timings['blocked']) ?? 0) + (nonNegative(timings['dns']) ?? 0) + (nonNegative(timings['connect']) ?? 0);
  return round3(entry.start + pre);
}

export function timingsOf(entry: GoodEntry): { send: number; wait: number } {
  const timings = isObject(entry.raw['timings']) ? entry.raw['timings'] : {};
  return { send: nonNegative(timings['send']) ?? 0, wait: nonNegative(timings['wait']) ?? 0 };
}

/**
 * Connection ids: `_wstap.connectionId` when usable, else the smallest free
 * id from 1 in entry order. wstap writes one entry per HTTP exchange with the
 * same connectionId for a keep-alive connection, so entries sharing an id
 * become one connection when they could have been one (one after another,
 * a WebSocket only last); otherwise (two merged HARs, a hand edit) each gets
 * its own id and a warning says so.
 */
export function assignConnections(entries: GoodEntry[], warnings: string[]): Connection[] {
  const byId = new Map<number, GoodEntry[]>();
  for (const entry of entries) {
    const id = num(entry.wstap?.['connectionId']);
    if (id === undefined || !Number.isSafeInteger(id) || id < 1) continue;
    const list = byId.get(id) ?? [];
    list.push(entry);
    byId.set(id, list);
  }
  const owned = new Map<GoodEntry, Connection>();
  const connections: Connection[] = [];
  const used = new Set<number>();
  for (const [id, list] of byId) {
    const ordered = [...list].sort((a, b) => a.start - b.start);
    if (list.length > 1 && !sequential(ordered)) {
      warnings.push(
        `log.entries[${list.map((e) => e.index).join(', ')}] share _wstap.connectionId ${id} but overlap in time; read as separate connections with new ids`,
      );
      continue;
    }
    const connection: Connection = { id, entries: ordered, events: [], unknown: [] };
    used.add(id);
    for (const entry of list) owned.set(entry, connection);
  }
  const listed = new Set<Connection>();
  let next = 1;
  for (const entry of entries) {
    const existing = owned.get(entry);
    if (existing) {
      // A connection takes the place of its first entry in the file.
      if (!listed.has(existing)) connections.push(existing);
      listed.add(existing);
      continue;
    }
    while (used.has(next)) next++;
    used.add(next);
    connections.push({ id: next, entries: [entry], events: [], unknown: [] });
  }
  return connections;
}

/** HTTP/1.1 runs one exchange at a time; 1 ms of slack because wstap floors startedDateTime to the millisecond. */
function sequential(ordered: GoodEntry[]): boolean {
  for (let i = 1; i < ordered.length; i++) {
    const previous = ordered[i - 1] as GoodEntry;
    const current = ordered[i] as GoodEntry;
    if (previous.websocket) return false;
    if (current.start < previous.end - 1) return false;
  }
  return true;
}
