import type {
  CaptureEvent,
  CaptureGapEvent,
  FinEvent,
  FrameEvent,
  Idle,
  MessageEvent,
  PausedSince,
  RawHeaders,
  RstEvent,
  SessionEndEvent,
  SessionStartEvent,
  Side,
  SocketErrorEvent,
} from '../capture/events.js';
import { headerValues } from '../capture/raw-headers.js';
import { negotiatedDeflate } from '../wire/websocket-extensions.js';
import { headSize } from './har-entries.js';

/**
 * Reads a HAR (wstap's own, or one exported by a browser) back into the
 * CaptureEvents a capture file holds, so `wstap view` and the analysis folds
 * work on it unchanged. What the file says is kept; what it does not say
 * stays missing and is listed in `unknown`: no close evidence is invented.
 */

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

export const UNKNOWN = {
  closeEvidence: 'close evidence',
  frames: 'frames',
  pings: 'pings',
  messages: 'messages',
  byteCounts: 'byte counts',
  laterIdle: 'idle of later close evidence',
  protocolErrorTimes: 'protocol error times',
} as const;

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A finite number from a number or a numeric string; undefined otherwise (the field then takes its default). */
function num(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'string' && value.trim() !== '') {
    const n = Number(value);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

/** HAR uses -1 for "not applicable": anything below 0 counts as absent. */
function nonNegative(value: unknown): number | undefined {
  const n = num(value);
  return n !== undefined && n >= 0 ? n : undefined;
}

function str(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

function bool(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (value === 'true') return true;
  if (value === 'false') return false;
  return undefined;
}

function round3(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** Epoch seconds (with microseconds) -> epoch ms, without float noise beyond the microsecond. */
function secondsToMs(seconds: number): number {
  return Math.round(seconds * 1e6) / 1000;
}

/**
 * ISO date-time -> epoch ms. Date.parse drops digits past the millisecond;
 * HARs may carry microseconds, which keep ordering exact, so add them back.
 */
function parseDateTime(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const ms = Date.parse(value);
  if (!Number.isFinite(ms)) return undefined;
  const fraction = /T[^.]*\.(\d{4,})/.exec(value)?.[1];
  if (fraction === undefined) return ms;
  const sub = Number(`0.${fraction.slice(3)}`);
  return Number.isFinite(sub) ? round3(ms + sub) : ms;
}

function headersOf(value: unknown): RawHeaders {
  if (!Array.isArray(value)) return [];
  const out: RawHeaders = [];
  for (const item of value) {
    if (!isObject(item)) continue;
    const name = str(item['name']);
    if (name === undefined) continue;
    out.push([name, str(item['value']) ?? '']);
  }
  return out;
}


/** "HTTP/1.1" -> "1.1"; other spellings ("h2", "http/2.0") as written minus the prefix. */
function httpVersionOf(value: unknown): string {
  const text = str(value) ?? '';
  return text.replace(/^HTTP\//i, '');
}

/** The request target as a proxy sees it: path and query of an absolute URL, kept byte for byte (no URL normalising). */
function pathAndQuery(url: string): string {
  let rest = url;
  const origin = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(rest);
  if (origin) rest = rest.slice(origin[0].length);
  const hash = rest.indexOf('#');
  if (hash >= 0) rest = rest.slice(0, hash);
  if (origin && rest === '') return '/';
  if (origin && rest.startsWith('?')) return `/${rest}`;
  return rest;
}

function originOf(url: string): string | undefined {
  const match = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)/i.exec(url);
  if (!match) return undefined;
  const scheme = (match[1] ?? '').toLowerCase();
  const mapped = scheme === 'ws' ? 'http' : scheme === 'wss' ? 'https' : scheme;
  return `${mapped}://${(match[2] ?? '').toLowerCase()}`;
}

/** wstap writes `_error` as "CODE: message"; browsers write a bare code such as "net::ERR_CONNECTION_REFUSED". */
function splitError(error: string | undefined): { code: string; message: string } {
  if (error === undefined || error === '') return { code: 'UNKNOWN', message: '' };
  const match = /^([A-Za-z0-9_.:-]+): ([\s\S]*)$/.exec(error);
  if (match) return { code: match[1] ?? 'UNKNOWN', message: match[2] ?? '' };
  if (!/\s/.test(error)) return { code: error, message: '' };
  return { code: 'UNKNOWN', message: error };
}

function sideOfType(type: unknown): Side | undefined {
  if (type === 'send') return 'client';
  if (type === 'receive') return 'upstream';
  return undefined;
}

/**
 * A `_webSocketMessages`-style item: an object whose `type` ("send"/"receive")
 * gives its side and whose `time` is a number; warns and skips otherwise.
 */
function timedItem(value: unknown, at: string, warnings: string[]): { item: Json; side: Side; time: number } | undefined {
  if (!isObject(value)) return void warnings.push(`${at}: skipped: not an object`);
  const side = sideOfType(value['type']);
  if (!side) return void warnings.push(`${at}: skipped: type ${JSON.stringify(value['type'] ?? null)} is neither "send" nor "receive"`);
  const time = num(value['time']);
  if (time === undefined) return void warnings.push(`${at}: skipped: time is not a number`);
  return { item: value, side, time };
}

function idleOf(value: unknown): Idle | undefined {
  if (!isObject(value)) return undefined;
  const client = nonNegative(value['client']);
  const upstream = nonNegative(value['upstream']);
  if (client === undefined || upstream === undefined) return undefined;
  return { client, upstream };
}

const ZERO_IDLE: Idle = { client: 0, upstream: 0 };

/** A valid entry with the fields every mapping needs. */
interface GoodEntry {
  index: number;
  raw: Json;
  request: Json;
  response: Json;
  wstap: Json | undefined;
  start: number;
  end: number;
  websocket: boolean;
}

interface Connection {
  id: number;
  entries: GoodEntry[];
  events: CaptureEvent[];
  unknown: string[];
}

function isWebSocketEntry(raw: Json, response: Json): boolean {
  return raw['_resourceType'] === 'websocket' || num(response['status']) === 101 || Array.isArray(raw['_webSocketMessages']);
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
  };
  const end: SessionEndEvent = { kind: 'session.end', t: last, reason: 'har', droppedEvents: gaps.reduce((sum, g) => sum + g.lostEvents, 0) };

  const unknown = new Map<number, string[]>();
  for (const connection of connections) unknown.set(connection.id, connection.unknown);

  return {
    events: [start, ...events, end],
    source,
    creator: `${creatorName} ${creatorVersion}`.trim(),
    unknown,
    warnings,
  };
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
    gaps.push({ kind: 'capture.gap', t: secondsToMs(to), from: secondsToMs(from), lostEvents, code });
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

/**
 * Connection ids: `_wstap.connectionId` when usable, else the smallest free
 * id from 1 in entry order. wstap writes one entry per HTTP exchange with the
 * same connectionId for a keep-alive connection, so entries sharing an id
 * become one connection when they could have been one (one after another,
 * a WebSocket only last); otherwise (two merged HARs, a hand edit) each gets
 * its own id and a warning says so.
 */
function assignConnections(entries: GoodEntry[], warnings: string[]): Connection[] {
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

function addUnknown(connection: Connection, what: string): void {
  if (!connection.unknown.includes(what)) connection.unknown.push(what);
}

function buildConnection(connection: Connection, warnings: string[]): void {
  const { id: conn, entries } = connection;
  const openT = Math.min(...entries.map((e) => e.start));
  const endT = Math.max(...entries.map((e) => e.end));
  const inner: CaptureEvent[] = [];
  let exchange = 0;
  for (const entry of entries) {
    if (entry.websocket) inner.push(...webSocketEvents(entry, conn, connection, warnings));
    else inner.push(...httpEvents(entry, conn, ++exchange));
  }
  // A browser's WebSocket entry may time only the handshake: the connection lasted at least until its last event.
  const lastInner = inner.reduce((max, e) => Math.max(max, e.t), endT);
  const firstInner = inner.reduce((min, e) => Math.min(min, e.t), openT);
  connection.events = [
    { kind: 'conn.open', t: firstInner, conn, mode: 'http', remoteAddress: '', remotePort: 0, localPort: 0 },
    ...inner,
    { kind: 'conn.close', t: lastInner, conn, bytes: { fromClient: 0, fromUpstream: 0 } },
  ];
  addUnknown(connection, UNKNOWN.byteCounts);
}

/** When the request left: after the blocked, dns and connect phases (ssl is inside connect in HAR 1.2). */
function requestSentAt(entry: GoodEntry): number {
  const timings = isObject(entry.raw['timings']) ? entry.raw['timings'] : {};
  const pre = (nonNegative(timings['blocked']) ?? 0) + (nonNegative(timings['dns']) ?? 0) + (nonNegative(timings['connect']) ?? 0);
  return round3(entry.start + pre);
}

function timingsOf(entry: GoodEntry): { send: number; wait: number } {
  const timings = isObject(entry.raw['timings']) ? entry.raw['timings'] : {};
  return { send: nonNegative(timings['send']) ?? 0, wait: nonNegative(timings['wait']) ?? 0 };
}

function httpEvents(entry: GoodEntry, conn: number, exchange: number): CaptureEvent[] {
  const { request, response, wstap } = entry;
  const method = str(request['method']) ?? '';
  const url = pathAndQuery(str(request['url']) ?? '');
  const status = num(response['status']) ?? 0;
  const statusText = str(response['statusText']) ?? '';
  const error = str(response['_error']);
  const answeredByWstap = wstap?.['answeredBy'] === 'wstap';
  const sentAt = requestSentAt(entry);
  // wstap refused the request itself: the capture has only http.rejected for it.
  if (answeredByWstap && status > 0 && status !== 502 && error === undefined) {
    return [{ kind: 'http.rejected', t: sentAt, conn, method, url, statusCode: status, reason: statusText }];
  }
  const events: CaptureEvent[] = [
    {
      kind: 'http.request',
      t: sentAt,
      conn,
      exchange,
      method,
      url,
      httpVersion: httpVersionOf(request['httpVersion']),
      rawHeaders: headersOf(request['headers']),
    },
  ];
  if (status <= 0 || (answeredByWstap && status === 502)) {
    const { code, message } = splitError(error);
    events.push({
      kind: 'http.error',
      t: entry.end,
      conn,
      exchange,
      stage: 'connect',
      code,
      message,
      answeredStatus: status > 0 ? status : null,
    });
    return events;
  }
  const { send, wait } = timingsOf(entry);
  const content = isObject(response['content']) ? response['content'] : {};
  events.push({
    kind: 'http.response',
    t: entry.end,
    conn,
    exchange,
    statusCode: status,
    statusMessage: statusText,
    httpVersion: httpVersionOf(response['httpVersion']),
    rawHeaders: headersOf(response['headers']),
    requestBodyBytes: nonNegative(request['bodySize']) ?? 0,
    responseBodyBytes: nonNegative(response['bodySize']) ?? nonNegative(content['size']) ?? 0,
    ttfbMs: round3(wait + send),
    totalMs: round3(entry.end - entry.start),
    // wstap (and browsers) keep the status of a response cut short and say why in `_error`.
    complete: error === undefined,
  });
  return events;
}

interface ParsedFrame {
  side: Side;
  t: number;
  opcode: number;
  fin: boolean;
  rsv1: boolean;
  masked: boolean;
  length: number;
}

interface ParsedMessage {
  side: Side;
  t: number;
  opcode: 1 | 2;
  bytes: Buffer;
  size: number | undefined;
}

interface ParsedCloseEvent {
  side: Side | 'proxy';
  kind: string;
  t: number;
  code: number | undefined;
  reason: string | undefined;
  error: string | undefined;
  pausedSince: PausedSince | undefined;
}

function webSocketEvents(entry: GoodEntry, conn: number, connection: Connection, warnings: string[]): CaptureEvent[] {
  const { raw, request, response, wstap } = entry;
  const where = `log.entries[${entry.index}]`;
  const events: CaptureEvent[] = [];
  const requestHeaders = headersOf(request['headers']);
  const requestAt = requestSentAt(entry);
  events.push({
    kind: 'ws.handshake.request',
    t: requestAt,
    conn,
    method: str(request['method']) ?? 'GET',
    url: pathAndQuery(str(request['url']) ?? ''),
    httpVersion: httpVersionOf(request['httpVersion']),
    rawHeaders: requestHeaders,
    headLength: nonNegative(request['headersSize']) ?? 0,
  });

  const status = num(response['status']) ?? 0;
  const error = str(response['_error']);
  const answeredByWstap = wstap?.['answeredBy'] === 'wstap';
  const handshake: CaptureEvent[] = [events[0] as CaptureEvent];
  if (status <= 0 || (answeredByWstap && status === 502)) {
    // No upstream answer: wstap records http.error for the handshake (with its own 502, or nothing sent).
    const { code, message } = splitError(error);
    const failed: CaptureEvent = { kind: 'http.error', t: entry.end, conn, exchange: 1, stage: 'connect', code, message, answeredStatus: status > 0 ? status : null };
    events.push(failed);
  } else {
    events.push(...interimResponsesOf(wstap, conn, requestAt));
    const { send, wait } = timingsOf(entry);
    const responseHeaders = headersOf(response['headers']);
    const responseEvent: CaptureEvent = {
      kind: 'ws.handshake.response',
      t: round3(requestAt + send + wait),
      conn,
      statusCode: status,
      reason: str(response['statusText']) ?? '',
      httpVersion: httpVersionOf(response['httpVersion']),
      rawHeaders: responseHeaders,
      headLength: nonNegative(response['headersSize']) ?? 0,
      upgraded: status === 101,
      deflate: negotiatedDeflate(headerValues(responseHeaders, 'sec-websocket-extensions')),
      waitMs: wait,
    };
    events.push(responseEvent);
    handshake.push(responseEvent);
  }

  const messages = parseMessages(raw['_webSocketMessages'], `${where}._webSocketMessages`, warnings);
  const frameList = wstap && Array.isArray(wstap['frames']) ? parseFrames(wstap['frames'], `${where}._wstap.frames`, warnings) : undefined;
  const closeEvents = wstap && Array.isArray(wstap['closeEvents']) ? parseCloseEvents(wstap['closeEvents'], `${where}._wstap.closeEvents`, warnings) : [];

  // An empty frame list next to messages means the frames were not written, not that there were none.
  const framesKnown = frameList !== undefined && (frameList.length > 0 || messages.length === 0);
  const frames = framesKnown ? frameList : [];
  if (!framesKnown) {
    addUnknown(connection, UNKNOWN.frames);
    addUnknown(connection, UNKNOWN.pings);
  }
  if (!wstap) addUnknown(connection, UNKNOWN.closeEvidence);
  if (framesKnown && messages.length === 0 && frames.some((f) => f.opcode === 1 || f.opcode === 2)) addUnknown(connection, UNKNOWN.messages);

  const frameEvents = frameEventsOf(frames, conn);
  const body: CaptureEvent[] = [...frameEvents];
  body.push(...closeEvidenceEvents(closeEvents, frameEvents, wstap, conn, connection));
  body.push(...messageEvents(messages, frameEvents, conn));
  body.push(...protocolErrorEvents(wstap, frameEvents, conn, connection, handshake, `${where}._wstap.protocolErrors`, warnings));
  body.push(...cutFrameEvents(wstap?.['cutFrames'], frameEvents, conn, `${where}._wstap.cutFrames`, warnings));
  body.push(...observerFaultEvents(wstap?.['observerFault'], conn, `${where}._wstap.observerFault`, warnings));

  // The handshake precedes everything on the connection even when the file's clocks disagree.
  const firstBody = body.reduce((min, e) => Math.min(min, e.t), Infinity);
  for (const e of handshake) e.t = Math.min(e.t, firstBody);
  events.push(...body);
  return events;
}

function parseMessages(value: unknown, where: string, warnings: string[]): ParsedMessage[] {
  if (!Array.isArray(value)) return [];
  const out: ParsedMessage[] = [];
  value.forEach((raw, i) => {
    const at = `${where}[${i}]`;
    const timed = timedItem(raw, at, warnings);
    if (!timed) return;
    const { item, side, time } = timed;
    const opcode = num(item['opcode']);
    if (opcode !== 1 && opcode !== 2) return void warnings.push(`${at}: skipped: opcode ${JSON.stringify(item['opcode'] ?? null)} is not 1 or 2`);
    const data = item['data'];
    if (typeof data !== 'string') return void warnings.push(`${at}: skipped: data is not a string`);
    const size = nonNegative(item['_size']);
    out.push({ side, t: secondsToMs(time), opcode, bytes: Buffer.from(data, opcode === 1 ? 'utf8' : 'base64'), size });
  });
  return out;
}

function parseFrames(value: unknown[], where: string, warnings: string[]): ParsedFrame[] {
  const out: ParsedFrame[] = [];
  value.forEach((raw, i) => {
    const at = `${where}[${i}]`;
    const timed = timedItem(raw, at, warnings);
    if (!timed) return;
    const { item, side, time } = timed;
    const opcode = num(item['opcode']);
    if (opcode === undefined || !Number.isInteger(opcode) || opcode < 0 || opcode > 15) {
      return void warnings.push(`${at}: skipped: opcode ${JSON.stringify(item['opcode'] ?? null)} is not 0..15`);
    }
    out.push({
      side,
      t: secondsToMs(time),
      opcode,
      fin: bool(item['fin']) ?? true,
      rsv1: bool(item['rsv1']) ?? false,
      masked: bool(item['masked']) ?? side === 'client',
      length: nonNegative(item['length']) ?? 0,
    });
  });
  return out;
}

function parseCloseEvents(value: unknown[], where: string, warnings: string[]): ParsedCloseEvent[] {
  const out: ParsedCloseEvent[] = [];
  value.forEach((item, i) => {
    const at = `${where}[${i}]`;
    if (!isObject(item)) return void warnings.push(`${at}: skipped: not an object`);
    const side = item['side'];
    if (side !== 'client' && side !== 'upstream' && side !== 'proxy') {
      return void warnings.push(`${at}: skipped: side ${JSON.stringify(side ?? null)} is not client, upstream or proxy`);
    }
    const kind = str(item['kind']);
    if (kind !== 'close-frame' && kind !== 'fin' && kind !== 'rst' && kind !== 'error' && kind !== 'timeout') {
      return void warnings.push(`${at}: skipped: kind ${JSON.stringify(item['kind'] ?? null)} is not a close event kind`);
    }
    const time = num(item['time']);
    if (time === undefined) return void warnings.push(`${at}: skipped: time is not a number`);
    out.push({
      side,
      kind,
      t: secondsToMs(time),
      code: num(item['code']),
      reason: str(item['reason']),
      error: str(item['error']),
      pausedSince: pausedSinceOf(item['pausedSince'], `${at}.pausedSince`, warnings),
    });
  });
  return out;
}

/** A close event's paused sides (epoch seconds in the HAR); a malformed one is dropped with a warning. */
function pausedSinceOf(value: unknown, where: string, warnings: string[]): PausedSince | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value)) return void warnings.push(`${where}: ignored: not an object`);
  const out: PausedSince = {};
  for (const side of ['client', 'upstream'] as const) {
    if (value[side] === undefined) continue;
    const seconds = num(value[side]);
    if (seconds === undefined) warnings.push(`${where}.${side}: ignored: not a number`);
    else out[side] = secondsToMs(seconds);
  }
  return out.client !== undefined || out.upstream !== undefined ? out : undefined;
}

function frameEventsOf(frames: ParsedFrame[], conn: number): FrameEvent[] {
  const index: Record<Side, number> = { client: 0, upstream: 0 };
  return frames.map((f) => ({
    kind: 'ws.frame',
    t: f.t,
    conn,
    side: f.side,
    index: index[f.side]++,
    // Unknown: the HAR has no byte offsets and no payload bytes of frames.
    offset: 0,
    opcode: f.opcode,
    fin: f.fin,
    rsv1: f.rsv1,
    rsv2: false,
    rsv3: false,
    masked: f.masked,
    length: f.length,
    preview: '',
    previewTruncated: false,
  }));
}

/**
 * Close evidence from `_wstap.closeEvents`. A close-frame event annotates the
 * matching close frame (n-th of its side) with code and reason; without such
 * a frame a close frame is made from it so attribution still sees it. Idle:
 * the HAR keeps it only for the first evidence (idleBeforeCloseMs); later
 * evidence gets no idle on frames and 0 on socket events (the field is required).
 */
function closeEvidenceEvents(
  closeEvents: ParsedCloseEvent[],
  frameEvents: FrameEvent[],
  wstap: Json | undefined,
  conn: number,
  connection: Connection,
): CaptureEvent[] {
  if (closeEvents.length === 0) return [];
  let firstAt = 0;
  closeEvents.forEach((e, i) => {
    if (e.t < (closeEvents[firstAt] as ParsedCloseEvent).t) firstAt = i;
  });
  const firstIdle = idleOf(wstap?.['idleBeforeCloseMs']);
  if (closeEvents.length > 1) addUnknown(connection, UNKNOWN.laterIdle);

  const closeFrames: Record<Side, FrameEvent[]> = {
    client: frameEvents.filter((f) => f.side === 'client' && f.opcode === 8),
    upstream: frameEvents.filter((f) => f.side === 'upstream' && f.opcode === 8),
  };
  const used: Record<Side, number> = { client: 0, upstream: 0 };
  const nextIndex: Record<Side, number> = {
    client: frameEvents.filter((f) => f.side === 'client').length,
    upstream: frameEvents.filter((f) => f.side === 'upstream').length,
  };
  const out: CaptureEvent[] = [];
  closeEvents.forEach((e, i) => {
    const idle = i === firstAt ? firstIdle : undefined;
    if (e.side === 'proxy') {
      out.push({ kind: 'proxy.close', t: e.t, conn, reason: e.reason ?? e.kind, idle: idle ?? ZERO_IDLE });
      return;
    }
    const side = e.side;
    switch (e.kind) {
      case 'close-frame': {
        const matched = closeFrames[side][used[side]++];
        const annotate = (frame: FrameEvent): void => {
          if (e.code !== undefined) frame.closeCode = e.code;
          if (e.reason !== undefined) frame.closeReason = e.reason;
          if (idle) frame.idle = idle;
          if (e.pausedSince) frame.pausedSince = e.pausedSince;
        };
        if (matched) {
          annotate(matched);
          return;
        }
        const length = e.code !== undefined ? 2 + Buffer.byteLength(e.reason ?? '', 'utf8') : 0;
        const frame: FrameEvent = {
          kind: 'ws.frame',
          t: e.t,
          conn,
          side,
          index: nextIndex[side]++,
          offset: 0,
          opcode: 8,
          fin: true,
          rsv1: false,
          rsv2: false,
          rsv3: false,
          masked: side === 'client',
          length,
          preview: '',
          previewTruncated: false,
        };
        annotate(frame);
        out.push(frame);
        return;
      }
      case 'fin':
        out.push(withPausedSince({ kind: 'tcp.fin', t: e.t, conn, side, idle: idle ?? ZERO_IDLE }, e));
        return;
      case 'rst':
        out.push(withPausedSince({ kind: 'tcp.rst', t: e.t, conn, side, idle: idle ?? ZERO_IDLE }, e));
        return;
      case 'error': {
        const code = e.error ?? 'UNKNOWN';
        out.push(withPausedSince({ kind: 'tcp.error', t: e.t, conn, side, code, message: e.error ?? '', idle: idle ?? ZERO_IDLE }, e));
        return;
      }
      default:
        // The event model has no timeout kind; a side's timeout is a socket error as Node reports it.
        out.push(
          withPausedSince(
            { kind: 'tcp.error', t: e.t, conn, side, code: 'ETIMEDOUT', message: 'timeout (a close event of kind "timeout" in the HAR)', idle: idle ?? ZERO_IDLE },
            e,
          ),
        );
        return;
    }
  });
  return out;
}

function withPausedSince<E extends FinEvent | RstEvent | SocketErrorEvent>(event: E, e: ParsedCloseEvent): E {
  if (e.pausedSince) event.pausedSince = e.pausedSince;
  return event;
}

interface DataRun {
  firstFrame: number;
  frames: number;
  wireLength: number;
  compressed: boolean;
  opcode: number;
  tEnd: number;
}

/** Each side's data messages as frame runs: a text/binary frame and its continuations up to fin. */
function dataRuns(frameEvents: FrameEvent[], side: Side): DataRun[] {
  const runs: DataRun[] = [];
  let open: DataRun | null = null;
  for (const f of frameEvents) {
    if (f.side !== side) continue;
    if (f.opcode === 1 || f.opcode === 2) {
      open = { firstFrame: f.index, frames: 1, wireLength: f.length, compressed: f.rsv1, opcode: f.opcode, tEnd: f.t };
      runs.push(open);
    } else if (f.opcode === 0 && open) {
      open.frames++;
      open.wireLength += f.length;
      open.tEnd = f.t;
    } else if (f.opcode === 0) {
      continue;
    }
    if (f.fin && f.opcode <= 2) open = null;
  }
  return runs;
}

/**
 * ws.message per HAR message. With frames, the n-th message of a side is
 * linked to that side's n-th data-frame run (frame count, wire length,
 * compression) when the counts and opcodes agree; otherwise one frame each,
 * numbered per side.
 */
function messageEvents(messages: ParsedMessage[], frameEvents: FrameEvent[], conn: number): MessageEvent[] {
  const linked: Record<Side, DataRun[] | null> = { client: null, upstream: null };
  for (const side of ['client', 'upstream'] as const) {
    const runs = dataRuns(frameEvents, side);
    const own = messages.filter((m) => m.side === side);
    if (runs.length > 0 && runs.length === own.length && own.every((m, i) => runs[i]?.opcode === m.opcode)) linked[side] = runs;
  }
  const counter: Record<Side, number> = { client: 0, upstream: 0 };
  return messages.map((m) => {
    const n = counter[m.side]++;
    const run = linked[m.side]?.[n];
    const size = m.size ?? m.bytes.length;
    return {
      kind: 'ws.message',
      t: m.t,
      conn,
      side: m.side,
      opcode: m.opcode,
      tEnd: run ? Math.max(m.t, run.tEnd) : m.t,
      firstFrame: run ? run.firstFrame : n,
      frames: run ? run.frames : 1,
      wireLength: run ? run.wireLength : size,
      compressed: run ? run.compressed : false,
      size,
      preview: m.bytes.toString('base64'),
      previewTruncated: m.size !== undefined && m.size > m.bytes.length,
    };
  });
}

/**
 * `_wstap.protocolErrors` carry no time: the decoder stopped at the offending
 * frame, so it is placed at that side's last recorded frame (or the handshake)
 * and numbered as the frame after it.
 */
function protocolErrorEvents(
  wstap: Json | undefined,
  frameEvents: FrameEvent[],
  conn: number,
  connection: Connection,
  handshake: CaptureEvent[],
  where: string,
  warnings: string[],
): CaptureEvent[] {
  const list = wstap?.['protocolErrors'];
  if (!Array.isArray(list) || list.length === 0) return [];
  addUnknown(connection, UNKNOWN.protocolErrorTimes);
  const handshakeT = handshake.reduce((max, e) => Math.max(max, e.t), 0);
  const out: CaptureEvent[] = [];
  list.forEach((item, i) => {
    if (!isObject(item)) return void warnings.push(`${where}[${i}]: skipped: not an object`);
    const side = item['side'];
    if (side !== 'client' && side !== 'upstream') return void warnings.push(`${where}[${i}]: skipped: side is not client or upstream`);
    const own = frameEvents.filter((f) => f.side === side);
    const last = own[own.length - 1];
    out.push({
      kind: 'ws.protocol-error',
      t: last ? last.t : handshakeT,
      conn,
      side,
      code: str(item['code']) ?? 'UNKNOWN',
      message: str(item['message']) ?? '',
      offset: nonNegative(item['offset']) ?? 0,
      frameIndex: own.length,
    });
  });
  return out;
}

/** `_wstap.cutFrames` back into `ws.frame.cut`, numbered after that side's last whole frame. */
function cutFrameEvents(value: unknown, frameEvents: FrameEvent[], conn: number, where: string, warnings: string[]): CaptureEvent[] {
  if (!Array.isArray(value)) return [];
  const out: CaptureEvent[] = [];
  value.forEach((raw, i) => {
    const at = `${where}[${i}]`;
    const timed = timedItem(raw, at, warnings);
    if (!timed) return;
    const { item, side, time } = timed;
    const received = nonNegative(item['received']);
    if (received === undefined) return void warnings.push(`${at}: skipped: received is not a number`);
    const started = secondsToMs(time);
    const end = num(item['endTime']);
    const opcode = nonNegative(item['opcode']);
    out.push({
      kind: 'ws.frame.cut',
      t: end !== undefined ? Math.max(started, secondsToMs(end)) : started,
      conn,
      side,
      index: frameEvents.filter((f) => f.side === side).length,
      offset: nonNegative(item['offset']) ?? 0,
      started,
      received,
      ...(opcode !== undefined ? { opcode, length: nonNegative(item['length']) ?? 0, payloadReceived: nonNegative(item['payloadReceived']) ?? 0 } : {}),
    });
  });
  return out;
}

/** `_wstap.observerFault` back into `observer.fault` (wstap's own HAR only). */
function observerFaultEvents(value: unknown, conn: number, where: string, warnings: string[]): CaptureEvent[] {
  if (value === undefined) return [];
  const time = isObject(value) ? num(value['time']) : undefined;
  if (!isObject(value) || time === undefined) {
    warnings.push(`${where}: skipped: not an object with a numeric time`);
    return [];
  }
  const side = value['side'];
  return [
    {
      kind: 'observer.fault',
      t: secondsToMs(time),
      conn,
      ...(side === 'client' || side === 'upstream' ? { side } : {}),
      where: str(value['where']) ?? 'unknown',
      message: str(value['message']) ?? '',
    },
  ];
}

/** wstap's `_wstap.interimResponses` (103 Early Hints... before the 101) back as events; items without a status and time are skipped. */
function interimResponsesOf(wstap: Record<string, unknown> | undefined, conn: number, requestAt: number): CaptureEvent[] {
  const list = wstap?.['interimResponses'];
  if (!Array.isArray(list)) return [];
  const out: CaptureEvent[] = [];
  for (const item of list) {
    if (!isObject(item)) continue;
    const statusCode = num(item['status']);
    const time = num(item['time']);
    if (statusCode === undefined || time === undefined) continue;
    const t = secondsToMs(time);
    const reason = str(item['statusText']) ?? '';
    const rawHeaders = headersOf(item['headers']);
    out.push({
      kind: 'ws.handshake.interim',
      t,
      conn,
      statusCode,
      reason,
      httpVersion: '1.1',
      rawHeaders,
      headLength: headSize(`HTTP/1.1 ${statusCode} ${reason}`, rawHeaders),
      waitMs: round3(Math.max(0, t - requestAt)),
    });
  }
  return out;
}

/** Rank breaks ties at one instant: a connection opens before, and closes after, anything else then. */
function rankOf(event: CaptureEvent): number {
  if (event.kind === 'conn.open') return 0;
  if (event.kind === 'conn.close') return 2;
  return 1;
}

/**
 * All connections' events and the session's own (capture gaps) by time,
 * stable (file order breaks ties). Each connection's conn.open already has
 * its earliest time and conn.close its latest, so they stay first and last
 * for it.
 */
function orderEvents(connections: Connection[], sessionEvents: CaptureEvent[]): CaptureEvent[] {
  const all = [...connections.flatMap((c) => c.events), ...sessionEvents];
  return all
    .map((event, seq) => ({ event, seq }))
    .sort((a, b) => a.event.t - b.event.t || rankOf(a.event) - rankOf(b.event) || a.seq - b.seq)
    .map((x) => x.event);
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
