import { readDiagnosisRecord, type DiagnosisRecord } from '../analysis/diagnosis-record.js';
import type { CaptureEvent, CaptureGapEvent, SessionEndEvent, SessionStartEvent } from '../capture/events.js';
import { addUnknown, assignConnections, goodEntriesOf, UNKNOWN, type Connection, type GoodEntry } from './har-read-entries.js';
import { httpEvents } from './har-read-http.js';
import { orderEvents } from './har-read-order.js';
import { isObject, nonNegative, num, originOf, secondsToMs, str, type Json } from './har-read-values.js';
import { webSocketEvents } from './har-read-websocket.js';

/**
 * Reads a HAR (wstap's own, or one exported by a browser) back into the
 * CaptureEvents a capture file holds, so `wstap view` and the analysis folds
 * work on it unchanged. What the file says is kept; what it does not say
 * stays missing and is listed in `unknown`: no close evidence is invented.
 * This module is the entry point and the orchestration (the document's
 * shape, the session's start, end and capture gaps, each connection's open
 * and close around its entries' events); the entries and their connections,
 * HTTP and WebSocket entries, typed field readers and the final order live
 * in the har-read-*.ts modules beside it.
 */

export { UNKNOWN };

export class HarFormatError extends Error {
  readonly code = 'WSTAP_BAD_HAR';
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: not a HAR file: ${message}`);
    this.name = 'HarFormatError';
  }
}

export interface HarReadResult {
  /** In time order; session.start first, session.end last. */
  events: CaptureEvent[];
  /** `wstap` when log.creator.name is "wstap". */
  source: 'wstap' | 'other';
  /** "name version". */
  creator: string;
  /** What the file could not tell, per connection id, e.g. ['close evidence', 'frames'] for a Chrome HAR. */
  unknown: Map<number, string[]>;
  /** Entries (or parts of entries) skipped and why, plus other oddities of the file. */
  warnings: string[];
}

/** Parses HAR text (already read). `path` only for messages. */
export function harToEvents(text: string, path: string): HarReadResult {
  let root: unknown;
  try {
    root = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (err) {
    throw new HarFormatError(path, `not JSON (${(err as Error).message})`);
  }
  if (!isObject(root)) throw new HarFormatError(path, 'the top level is not a JSON object');
  const log = root['log'];
  if (!isObject(log)) throw new HarFormatError(path, 'no "log" object at the top level');
  const entries = log['entries'];
  if (!Array.isArray(entries)) throw new HarFormatError(path, '"log.entries" is not an array');

  const warnings: string[] = [];
  const version = str(log['version']);
  if (version !== '1.1' && version !== '1.2') {
    warnings.push(`log.version is ${JSON.stringify(log['version'] ?? null)}, not 1.1 or 1.2; reading it as 1.2`);
  }
  const creatorObj = isObject(log['creator']) ? log['creator'] : {};
  const creatorName = str(creatorObj['name']) ?? '';
  const creatorVersion = str(creatorObj['version']) ?? '';
  const source = creatorName === 'wstap' ? 'wstap' : 'other';

  const good = goodEntriesOf(entries, warnings);
  const connections = assignConnections(good, warnings);
  for (const connection of connections) buildConnection(connection, warnings);

  const gaps = captureGapsOf(log, warnings);
  const events = orderEvents(connections, gaps);
  const first = events[0]?.t ?? 0;
  const last = events.reduce((max, e) => Math.max(max, e.t), first);
  const start: SessionStartEvent = {
    kind: 'session.start',
    t: first,
    version: creatorVersion,
    mode: 'http',
    listen: '',
    target: commonOrigin(good),
    pid: 0,
    previewLimit: 0,
    ...diagnosisOf(log, warnings),
  };
  // Several instances that ran with different contexts: one start per instance, as the merged captures had.
  const starts = instanceStartsOf(log, start, warnings);
  const end: SessionEndEvent = { kind: 'session.end', t: last, reason: 'har', droppedEvents: gaps.reduce((sum, g) => sum + g.lostEvents, 0) };

  const unknown = new Map<number, string[]>();
  for (const connection of connections) unknown.set(connection.id, connection.unknown);

  return {
    events: [...starts, ...events, end],
    source,
    creator: `${creatorName} ${creatorVersion}`.trim(),
    unknown,
    warnings,
  };
}

/** wstap's `log._wstap.diagnosisContext`: what its findings were judged with, so view judges the same way. */
function diagnosisOf(log: Json, warnings: string[]): { diagnosis?: DiagnosisRecord } {
  const wstap = log['_wstap'];
  const record = readDiagnosisRecord(isObject(wstap) ? wstap['diagnosisContext'] : undefined);
  if (record instanceof Error) {
    warnings.push(`log._wstap.diagnosisContext: ignored: ${record.message}`);
    return {};
  }
  return record ? { diagnosis: record } : {};
}

/**
 * wstap's `log._wstap.diagnosisContexts` (several instances exported as one,
 * judged each with its own context): one session.start per instance, naming
 * it and its context, so the fold judges each connection (its conn.open
 * names its instance) as the export did. Without it: the one start.
 */
function instanceStartsOf(log: Json, start: SessionStartEvent, warnings: string[]): SessionStartEvent[] {
  const wstap = log['_wstap'];
  const contexts = isObject(wstap) ? wstap['diagnosisContexts'] : undefined;
  if (contexts === undefined) return [start];
  if (!isObject(contexts)) {
    warnings.push('log._wstap.diagnosisContexts: ignored: not an object of instance names');
    return [start];
  }
  if (Object.keys(contexts).length === 0) return [start];
  const shared: SessionStartEvent = { ...start };
  delete shared.diagnosis;
  return Object.entries(contexts).map(([instance, raw]) => {
    const record = readDiagnosisRecord(raw);
    if (record instanceof Error) warnings.push(`log._wstap.diagnosisContexts[${JSON.stringify(instance)}]: ignored: ${record.message}`);
    return { ...shared, instance, ...(record instanceof Error || record === null ? {} : { diagnosis: record }) };
  });
}

/** wstap's `log._wstap.captureGaps`: where its capture lost events. */
function captureGapsOf(log: Json, warnings: string[]): CaptureGapEvent[] {
  const wstap = log['_wstap'];
  if (!isObject(wstap) || !Array.isArray(wstap['captureGaps'])) return [];
  const gaps: CaptureGapEvent[] = [];
  wstap['captureGaps'].forEach((raw: unknown, index) => {
    const from = isObject(raw) ? num(raw['from']) : undefined;
    const to = isObject(raw) ? num(raw['to']) : undefined;
    const lostEvents = isObject(raw) ? nonNegative(raw['lostEvents']) : undefined;
    if (from === undefined || to === undefined || lostEvents === undefined) {
      warnings.push(`log._wstap.captureGaps[${index}]: skipped: needs numbers from, to and lostEvents`);
      return;
    }
    const code = (isObject(raw) ? str(raw['code']) : undefined) ?? 'UNKNOWN';
    const instance = isObject(raw) ? str(raw['instance']) : undefined;
    gaps.push({ kind: 'capture.gap', t: secondsToMs(to), from: secondsToMs(from), lostEvents, code, ...(instance !== undefined ? { instance } : {}) });
  });
  return gaps;
}

function commonOrigin(entries: GoodEntry[]): string {
  let origin: string | undefined;
  for (const entry of entries) {
    const o = originOf(str(entry.request['url']) ?? '');
    if (o === undefined || (origin !== undefined && o !== origin)) return '';
    origin = o;
  }
  return origin ?? '';
}

function buildConnection(connection: Connection, warnings: string[]): void {
  const { id: conn, entries } = connection;
  // wstap's `_wstap.connectionOpenedAt`: accepted before its first request arrived; ages count from there.
  const openT = Math.min(...entries.map((e) => Math.min(e.start, openedAtOf(e))));
  const endT = Math.max(...entries.map((e) => e.end));
  const inner: CaptureEvent[] = [];
  let exchange = 0;
  // wstap's `_wstap.incomplete.beginningMissing`: the capture did not have the connection's beginning, and its
  // entry's handshake is a stand-in. Read back without it, the fold sees what the capture held: the same verdicts.
  const beginningMissing = entries.some((e) => isObject(e.wstap?.['incomplete']) && e.wstap['incomplete']['beginningMissing'] === true);
  for (const entry of entries) {
    if (entry.websocket && beginningMissing) inner.push(...webSocketEvents(entry, conn, connection, warnings).filter((e) => e.kind !== 'ws.handshake.request' && e.kind !== 'ws.handshake.response'));
    else if (entry.websocket) inner.push(...webSocketEvents(entry, conn, connection, warnings));
    else inner.push(...httpEvents(entry, conn, ++exchange, connection, warnings));
  }
  // A browser's WebSocket entry may time only the handshake: the connection lasted at least until its last event.
  const lastInner = inner.reduce((max, e) => Math.max(max, e.t), endT);
  const firstInner = inner.reduce((min, e) => Math.min(min, e.t), openT);
  // wstap's `_wstap.openAtEnd`: the capture ended with the connection open; read back, it is still open (no close, no close verdict).
  const openAtEnd = entries.some((e) => e.wstap?.['openAtEnd'] === true);
  const from = instanceOf(entries);
  // Without its beginning, the connection's first event names its instance (the fold's stand-in open takes it from there).
  if (beginningMissing && from) labelFirst(inner, from);
  connection.events = [
    ...(beginningMissing ? [] : [{ kind: 'conn.open' as const, t: firstInner, conn, mode: 'http' as const, remoteAddress: '', remotePort: 0, localPort: 0, ...from }]),
    ...inner,
    ...(openAtEnd ? [] : [{ kind: 'conn.close' as const, t: lastInner, conn, bytes: { fromClient: 0, fromUpstream: 0 } }]),
  ];
  addUnknown(connection, UNKNOWN.byteCounts);
}

/** wstap's `_wstap.instance` and `instanceConnectionId` (several proxies' captures exported as one): where the connection came from. */
function instanceOf(entries: GoodEntry[]): { instance: string; instanceConn?: number } | null {
  for (const entry of entries) {
    const instance = str(entry.wstap?.['instance']);
    if (instance === undefined || instance === '') continue;
    const id = num(entry.wstap?.['instanceConnectionId']);
    return { instance, ...(id !== undefined && Number.isSafeInteger(id) && id >= 1 ? { instanceConn: id } : {}) };
  }
  return null;
}

/** The earliest of a connection's events (the first one of them in the final order) carries its instance. */
function labelFirst(events: CaptureEvent[], from: { instance: string; instanceConn?: number }): void {
  let first = -1;
  events.forEach((e, i) => {
    if (first < 0 || e.t < (events[first] as CaptureEvent).t) first = i;
  });
  if (first >= 0) events[first] = { ...(events[first] as CaptureEvent), ...from } as CaptureEvent;
}

/** When wstap says the entry's connection was accepted; Infinity when it does not say. */
function openedAtOf(entry: GoodEntry): number {
  const seconds = num(entry.wstap?.['connectionOpenedAt']);
  return seconds === undefined ? Infinity : secondsToMs(seconds);
}

/**
 * Cheap sniff for a HAR: a JSON object whose first key is "log", or whose
 * leading scalar keys are followed by "log" (some tools write a comment first).
 */
export function looksLikeHar(firstBytes: string): boolean {
  const text = firstBytes.charCodeAt(0) === 0xfeff ? firstBytes.slice(1) : firstBytes;
  const scalar = String.raw`(?:"(?:[^"\\]|\\.)*"|-?[\d.eE+-]+|true|false|null)`;
  const pattern = new RegExp(String.raw`^\s*\{\s*(?:"(?:[^"\\]|\\.)*"\s*:\s*${scalar}\s*,\s*)*"log"\s*:\s*\{`);
  return pattern.test(text);
}
