// Past 400 lines: one fold over every event kind a HAR entry needs (HTTP, WebSocket, gaps, stand-ins); the entry builders live in har-entries.ts and har-incomplete.ts.
import { noAnswerReason } from '../analysis/close-attribution.js';
import type { RecordedHandshake } from '../analysis/connection-diagnosis.js';
import { findingsAt } from '../analysis/connection-findings.js';
import { attributionOf, ConnectionTracker, type ConnectionSummary } from '../analysis/connection-tracker.js';
import { DiagnosisChoice, type DiagnosisRecord } from '../analysis/diagnosis-record.js';
import type { Finding } from '../analysis/finding.js';
import { standInOpen } from '../analysis/missing-part.js';
import type { PingRoundTrip } from '../analysis/ping-pairing.js';
import { redactHandshake } from '../analysis/redaction.js';
import type {
  CaptureEvent,
  ConnOpenEvent,
  FrameEvent,
  HandshakeBodyEvent,
  HandshakeErrorEvent,
  HandshakeInterimEvent,
  HandshakeRequestEvent,
  HandshakeResponseEvent,
  HttpErrorEvent,
  HttpRejectedEvent,
  HttpRequestEvent,
  HttpResponseEvent,
  MessageEvent,
  ObserverFaultEvent,
  ProtocolErrorEvent,
  FrameCutEvent,
} from '../capture/events.js';
import {
  emptyWstap,
  epochSeconds,
  handshakeBodyContent,
  harInterimResponse,
  harRequest,
  harResponse,
  harTimings,
  isoTime,
  pausedSinceSeconds,
  serverIp,
} from './har-entries.js';
import type { HarCaptureGap, HarCutFrame, HarEntry, HarFrame, HarSessionFacts, HarWebSocketClose, HarWebSocketMessage, HarWstap, PayloadMode } from './har-types.js';
import { incompleteNote, standInHandshake } from './har-incomplete.js';
import { PayloadIds } from './payload-ids.js';

export interface HarFoldOptions {
  payloads: PayloadMode;
  redact: boolean;
  /**
   * Judge `_wstap.diagnosis` with this (profile, --timeout) instead of the
   * context the capture recorded in session.start.
   */
  diagnosis?: DiagnosisRecord | null;
  /** Said when `diagnosis` overrides the capture's own context. */
  onJudging?: (message: string) => void;
}

/**
 * Where the fold puts what it builds. A WebSocket entry's two unbounded
 * arrays are not in the entry: their items arrive through `message()` and
 * `frame()` first (messages in time order), so a writer can stream them.
 */
export interface HarFoldSink {
  message(conn: number, message: HarWebSocketMessage): void;
  frame(conn: number, frame: HarFrame): void;
  /** A finished entry; for WebSocket entries `_webSocketMessages` and `_wstap.frames` are empty placeholders. */
  entry(entry: HarEntry, websocketConn: number | null): void;
}

export interface HarFoldStats {
  entries: number;
  messages: number;
  /** Messages whose data is not whole in the export (cut preview, payloads none, or not inflated). */
  partialMessages: number;
}

interface WebSocketRecord {
  open: ConnOpenEvent;
  request: HandshakeRequestEvent;
  response: HandshakeResponseEvent | null;
  /** Interim (1xx) responses before `response`, at most MAX_INTERIM_RESPONSES. */
  interim: HandshakeInterimEvent[];
  /** The start of the body sent with a response that did not upgrade. */
  body: HandshakeBodyEvent | null;
  /** The app's answer was not an HTTP head. */
  headError: HandshakeErrorEvent | null;
  error: HttpErrorEvent | null;
  firstCloseFrame: FrameEvent | null;
  /** Every round trip (the tracker keeps only recent ones), from the tracker's pairing. */
  pings: Array<{ from: 'client' | 'upstream'; rttMs: number }>;
  /** The tracker's newest round trip when the last pong was seen: a new one there is this pong's. */
  lastRoundTrip: PingRoundTrip | undefined;
  protocolErrors: ProtocolErrorEvent[];
  /** Recent messages held back to emit in time order (inflating can record them late). */
  reorder: HarWebSocketMessage[];
  lastT: number;
  /** With `missing.beginning` (in the tracker's summary), `open`, `request` and `response` are stand-ins. */
  standIn: boolean;
  /** Frames seen: a stand-in record that saw none was no WebSocket that can be told (an HTTP connection, say) and makes no entry. */
  frames: number;
  /** With --payloads none: ping and pong data -> `payloadId`. */
  payloadIds: PayloadIds;
}

/** Events that belong to a WebSocket connection once it is open; one of them for an unknown connection starts a stand-in. */
const CONNECTION_EVENTS: ReadonlySet<CaptureEvent['kind']> = new Set([
  'ws.frame',
  'ws.message',
  'ws.frame.cut',
  'ws.protocol-error',
  'ws.inflate-error',
  'tcp.fin',
  'tcp.rst',
  'tcp.error',
  'proxy.close',
]);

/** Messages held back for time ordering; inflating delays a message by far less than this many others. */
const REORDER_WINDOW = 64;
const MAX_PINGS = 10_000;
const MAX_PROTOCOL_ERRORS = 100;
const MAX_INTERIM_RESPONSES = 100;
/** A disk that keeps failing and recovering makes one gap per retry; past this many the last one absorbs the rest. */
const MAX_CAPTURE_GAPS = 1000;

/**
 * Folds capture events into HAR entries, one event at a time, holding only
 * per-connection summaries: a capture of any size exports in bounded memory.
 * Who closed, the close evidence, what is missing, cut frames, ping pairing
 * and the findings come from the tracker's fold (the one the live proxy and
 * `view` use, forgetting closed connections past its bound): this class only
 * maps them to HAR.
 */
export class HarFold {
  readonly stats: HarFoldStats = { entries: 0, messages: 0, partialMessages: 0 };
  /** Where the capture lost events, for the log-level `_wstap`. */
  readonly captureGaps: HarCaptureGap[] = [];
  readonly #options: HarFoldOptions;
  readonly #sink: HarFoldSink;
  readonly #opens = new Map<number, ConnOpenEvent>();
  readonly #requests = new Map<string, HttpRequestEvent>();
  readonly #websockets = new Map<number, WebSocketRecord>();
  readonly #tracker = new ConnectionTracker();
  /** Findings so far of each connection not yet closed (or just closing), in the order they became known. */
  readonly #findings = new Map<number, Finding[]>();
  /**
   * The latest plain HTTP entry of each open connection: it waits for the
   * next exchange or the connection's close, so the last entry of a
   * connection carries its close (who closed, the evidence) and its findings
   * (a handshake that arrived as plain HTTP included). One per open connection.
   */
  readonly #lastHttp = new Map<number, HarEntry>();
  #target = '';
  /** The target's address when it is a plain IP (HAR's serverIPAddress), from session.start. */
  #serverIp: string | undefined;
  /** The same per instance, when several proxies' captures are read as one (a few entries: one per proxy). */
  readonly #instanceServerIps = new Map<string, string | undefined>();
  #lastT = 0;
  readonly #judging: DiagnosisChoice;

  constructor(options: HarFoldOptions, sink: HarFoldSink) {
    this.#options = options;
    this.#sink = sink;
    this.#judging = new DiagnosisChoice(options.diagnosis ?? null);
  }

  /** The log-level `_wstap`, once every event is folded; undefined when there is nothing to say. */
  sessionFacts(): HarSessionFacts | undefined {
    const context = this.#judging.inForce;
    // Several instances that ran with different contexts: each one's, by name (diagnosisContext stays the first's, for older readers).
    const perInstance = this.#judging.perInstance;
    if (this.captureGaps.length === 0 && !context && !perInstance) return undefined;
    return {
      ...(this.captureGaps.length > 0 ? { captureGaps: this.captureGaps } : {}),
      ...(context ? { diagnosisContext: context } : {}),
      ...(perInstance ? { diagnosisContexts: Object.fromEntries(perInstance) } : {}),
    };
  }

  apply(event: CaptureEvent): void {
    this.#lastT = Math.max(this.#lastT, event.t);
    if (event.kind === 'session.start') this.#startSession(event);
    const summary = this.#tracker.apply(event);
    const found = findingsAt(event, summary, this.#judging.contextOf(summary?.open.instance), (h) => this.#shareable(h));
    if (summary && found.length > 0) {
      const list = this.#findings.get(summary.conn);
      if (list) list.push(...found);
      else this.#findings.set(summary.conn, [...found]);
    }
    switch (event.kind) {
      case 'session.start':
        return;
      case 'capture.gap': {
        const last = this.captureGaps.at(-1);
        if (last && this.captureGaps.length >= MAX_CAPTURE_GAPS) {
          last.to = epochSeconds(event.t);
          last.lostEvents += event.lostEvents;
          // Gaps of several instances folded into one belong to none of them alone.
          if (last.instance !== event.instance) delete last.instance;
        } else {
          this.captureGaps.push({
            from: epochSeconds(event.from),
            to: epochSeconds(event.t),
            lostEvents: event.lostEvents,
            code: event.code,
            ...(event.instance !== undefined ? { instance: event.instance } : {}),
          });
        }
        return;
      }
      case 'conn.open':
        this.#opens.set(event.conn, event);
        return;
      case 'http.request':
        this.#requests.set(`${event.conn}/${event.exchange}`, event);
        return;
      case 'http.response':
        this.#httpEntry(event);
        return;
      case 'http.error':
        this.#onHttpError(event);
        return;
      case 'http.rejected':
        this.#rejectedEntry(event);
        return;
      case 'ws.handshake.request': {
        const open = this.#opens.get(event.conn);
        if (!open) return;
        this.#websockets.set(event.conn, newWebSocketRecord(open, { request: event, response: null }, event.t, false));
        return;
      }
      case 'conn.close':
        this.#opens.delete(event.conn);
        this.#finishWebSocket(event.conn, event.t, event.bytes.fromUpstream);
        this.#finishHttp(event.conn);
        this.#findings.delete(event.conn);
        return;
      default:
        this.#applyToWebSocket(event);
    }
  }

  /** The capture ended: connections still open become entries, closed "aborted" unless a close frame was seen. */
  finish(): void {
    for (const conn of [...this.#websockets.keys()]) this.#finishWebSocket(conn, this.#lastT);
    for (const conn of [...this.#lastHttp.keys()]) this.#finishHttp(conn);
    this.#opens.clear();
    this.#requests.clear();
    this.#findings.clear();
  }

  #startSession(event: Extract<CaptureEvent, { kind: 'session.start' }>): void {
    this.#target = event.target;
    this.#serverIp = serverIp(event.target);
    if (event.instance !== undefined) this.#instanceServerIps.set(event.instance, this.#serverIp);
    const note = this.#judging.start(event);
    if (note) this.#options.onJudging?.(note);
  }

  #applyToWebSocket(event: CaptureEvent): void {
    if (!('conn' in event)) return;
    const record = this.#websockets.get(event.conn) ?? this.#standIn(event);
    if (!record) return;
    record.lastT = Math.max(record.lastT, event.t);
    switch (event.kind) {
      case 'ws.handshake.interim':
        if (record.interim.length < MAX_INTERIM_RESPONSES) record.interim.push(event);
        break;
      case 'ws.handshake.response':
        record.response = event;
        break;
      case 'ws.handshake.body':
        record.body ??= event;
        break;
      case 'ws.handshake.error':
        record.headError ??= event;
        break;
      case 'ws.frame':
        this.#onFrame(record, event);
        break;
      case 'ws.message':
        this.#onMessage(record, event);
        break;
      case 'ws.protocol-error':
        if (record.protocolErrors.length < MAX_PROTOCOL_ERRORS) record.protocolErrors.push(event);
        break;
      default:
        break;
    }
  }

  /** A connection whose conn.open is not in the capture (a deleted file of a rotated set): kept with what is known. */
  #standIn(event: CaptureEvent & { conn: number }): WebSocketRecord | null {
    if (!CONNECTION_EVENTS.has(event.kind) || this.#opens.has(event.conn)) return null;
    const open = standInOpen(event);
    const record = newWebSocketRecord(open, standInHandshake(event), event.t, true);
    this.#opens.set(event.conn, open);
    this.#websockets.set(event.conn, record);
    return record;
  }

  #onFrame(record: WebSocketRecord, event: FrameEvent): void {
    record.frames++;
    if (event.opcode === 8 && !record.firstCloseFrame) record.firstCloseFrame = event;
    if (event.opcode === 10) {
      // The tracker paired it (the same pairing the heartbeat checks judge): a new newest round trip is this pong's.
      const rtt = this.#tracker.get(event.conn)?.pings.at(-1);
      if (rtt && rtt !== record.lastRoundTrip && record.pings.length < MAX_PINGS) record.pings.push({ from: rtt.from, rttMs: rtt.rttMs });
      record.lastRoundTrip = rtt;
    }
    this.#sink.frame(event.conn, {
      type: event.side === 'client' ? 'send' : 'receive',
      time: epochSeconds(event.t),
      opcode: event.opcode,
      fin: event.fin,
      rsv1: event.rsv1,
      masked: event.masked,
      length: event.length,
      ...(isPingOrPong(event.opcode) && event.preview !== '' ? this.#payloadOf(record, event) : {}),
    });
  }

  /** A ping's or pong's data, or with --payloads none the id that stands for it (payload-ids.ts). */
  #payloadOf(record: WebSocketRecord, event: FrameEvent): Pick<HarFrame, 'payload' | 'payloadId'> {
    if (this.#options.payloads !== 'none') return { payload: event.preview };
    const pairing = this.#tracker.get(event.conn)?.pingPairing;
    return { payloadId: record.payloadIds.idOf(event.preview, (data) => pairing?.isWaiting(data) ?? false) };
  }

  #onMessage(record: WebSocketRecord, event: MessageEvent): void {
    const message = this.#harMessage(event);
    // Insert in time order, then let the oldest go once the window is full.
    const queue = record.reorder;
    let at = queue.length;
    while (at > 0 && (queue[at - 1] as HarWebSocketMessage).time > message.time) at--;
    queue.splice(at, 0, message);
    if (queue.length > REORDER_WINDOW) this.#sink.message(event.conn, queue.shift() as HarWebSocketMessage);
  }

  #harMessage(event: MessageEvent): HarWebSocketMessage {
    this.stats.messages++;
    const size = event.size ?? event.wireLength;
    const base = { type: event.side === 'client' ? ('send' as const) : ('receive' as const), time: epochSeconds(event.t), opcode: event.opcode };
    const whole = event.size !== null && !event.previewTruncated;
    if (this.#options.payloads === 'none' || event.size === null) {
      this.stats.partialMessages++;
      return { ...base, data: '', _size: size };
    }
    const bytes = Buffer.from(event.preview, 'base64');
    const data = event.opcode === 1 ? bytes.toString('utf8') : bytes.toString('base64');
    if (whole) return { ...base, data };
    this.stats.partialMessages++;
    return { ...base, data, _size: size };
  }

  /** `fromUpstream`: every byte the app sent (from conn.close), so a refusal's whole body size is known even when its preview was cut. */
  #finishWebSocket(conn: number, endT: number, fromUpstream: number | null = null): void {
    const record = this.#websockets.get(conn);
    if (!record) return;
    this.#websockets.delete(conn);
    const summary = this.#tracker.get(conn);
    const standIn = record.standIn;
    if (standIn && record.frames === 0) return;
    for (const message of record.reorder) this.#sink.message(conn, message);
    record.reorder = [];
    const { request, response, error, body } = record;
    const redact = this.#options.redact;
    const waitMs = response ? response.t - request.t : endT - request.t;
    const { time, timings } = harTimings(waitMs, response ? endT - response.t : 0);
    const close = closeFacts(summary);
    const missing = summary?.missing ?? null;
    const closeFrame = record.firstCloseFrame;
    const webSocketClose: HarWebSocketClose = closeFrame
      ? { code: closeFrame.closeCode ?? null, reason: closeFrame.closeReason ?? '', timestamp: epochSeconds(closeFrame.t) }
      : 'aborted';
    const answeredByWstap = !response && error?.answeredStatus != null;
    const entry: HarEntry = {
      startedDateTime: isoTime(request.t),
      time,
      request: harRequest(
        { method: request.method, url: request.url, httpVersion: request.httpVersion, rawHeaders: request.rawHeaders, headersSize: request.headLength, bodySize: 0, websocket: true },
        redact,
        this.#fallbackHost(),
      ),
      response: response
        ? harResponse(
            {
              status: response.statusCode,
              statusText: response.reason,
              httpVersion: response.httpVersion,
              rawHeaders: response.rawHeaders,
              headersSize: response.headLength,
              // After a 101 the bytes are frames, not a body; after a refusal all of them are the body.
              bodySize: response.upgraded ? 0 : fromUpstream !== null ? Math.max(0, fromUpstream - response.headLength) : (body?.bytes ?? 0),
              ...(body ? { content: handshakeBodyContent(body, response.rawHeaders, this.#options.payloads) } : {}),
            },
            redact,
          )
        : harResponse(
            {
              status: error?.answeredStatus ?? 0,
              statusText: error?.answeredStatus === 502 ? 'Bad Gateway' : '',
              httpVersion: '1.1',
              rawHeaders: [],
              bodySize: 0,
              error: error ? `${error.code}: ${error.message}` : noAnswerReason(close.wstap.closedBy),
            },
            redact,
          ),
      cache: {},
      timings,
      connection: String(conn),
      _resourceType: 'websocket',
      _webSocketMessages: [],
      _webSocketClose: webSocketClose,
      _wstap: {
        ...this.#baseWstap(conn, standIn ? null : record.open),
        ...close.wstap,
        pings: record.pings,
        diagnosis: this.#findings.get(conn) ?? [],
        ...(record.protocolErrors.length > 0
          ? { protocolErrors: record.protocolErrors.map((p) => ({ side: p.side, code: p.code, message: p.message, offset: p.offset })) }
          : {}),
        ...(summary && summary.cutFrames.length > 0 ? { cutFrames: summary.cutFrames.map(harCutFrame) } : {}),
        ...(summary?.observerFault ? { observerFault: harObserverFault(summary.observerFault) } : {}),
        ...(record.headError ? { handshakeError: harHandshakeError(record.headError) } : {}),
        ...(body ? { handshakeBody: { time: epochSeconds(body.t), bytes: body.bytes, truncated: body.previewTruncated } } : {}),
        ...(record.interim.length > 0 ? { interimResponses: record.interim.map((e) => harInterimResponse(e, redact)) } : {}),
        answeredBy: answeredByWstap ? 'wstap' : 'upstream',
        ...(missing ? { incomplete: incompleteNote(missing, close.undecided) } : {}),
        ...(close.openAtEnd ? { openAtEnd: true as const } : {}),
      },
    };
    this.#emit(entry, conn);
  }

  /** A plain HTTP entry of `conn`: the one held before it (not the connection's last) goes out as it is. */
  #holdHttp(conn: number, entry: HarEntry): void {
    const before = this.#lastHttp.get(conn);
    if (before) this.#emit(before);
    this.#lastHttp.set(conn, entry);
  }

  /** The connection's last plain HTTP entry, now with the connection's close and every finding. */
  #finishHttp(conn: number): void {
    const entry = this.#lastHttp.get(conn);
    if (!entry?._wstap) return;
    this.#lastHttp.delete(conn);
    const close = closeFacts(this.#tracker.get(conn));
    entry._wstap = { ...entry._wstap, ...close.wstap, diagnosis: this.#findings.get(conn) ?? [], ...(close.openAtEnd ? { openAtEnd: true as const } : {}) };
    this.#emit(entry);
  }

  #httpEntry(event: HttpResponseEvent): void {
    const request = this.#takeRequest(event.conn, event.exchange);
    if (!request) return;
    const redact = this.#options.redact;
    const { time, timings } = harTimings(event.ttfbMs, event.totalMs - event.ttfbMs);
    const entry: HarEntry = {
      startedDateTime: isoTime(request.t),
      time,
      request: harRequest({ ...request, bodySize: event.requestBodyBytes, websocket: false }, redact, this.#fallbackHost()),
      response: harResponse(
        {
          status: event.statusCode,
          statusText: event.statusMessage,
          httpVersion: event.httpVersion,
          rawHeaders: event.rawHeaders,
          bodySize: event.responseBodyBytes,
          ...(event.complete ? {} : { error: 'the client went away before the response was complete' }),
        },
        redact,
      ),
      cache: {},
      timings,
      connection: String(event.conn),
      _wstap: {
        ...this.#baseWstap(event.conn),
        answeredBy: 'upstream',
      },
    };
    this.#holdHttp(event.conn, entry);
  }

  /** Findings quote headers: in a redacted export they quote the redacted ones. */
  #shareable(h: RecordedHandshake): RecordedHandshake {
    return this.#options.redact ? redactHandshake(h) : h;
  }

  #onHttpError(event: HttpErrorEvent): void {
    const record = this.#websockets.get(event.conn);
    if (record) {
      record.error = event;
      return;
    }
    const request = this.#takeRequest(event.conn, event.exchange);
    if (!request) return;
    const redact = this.#options.redact;
    const { time, timings } = harTimings(event.t - request.t, 0);
    this.#holdHttp(event.conn, {
      startedDateTime: isoTime(request.t),
      time,
      request: harRequest({ ...request, bodySize: 0, websocket: false }, redact, this.#fallbackHost()),
      response: harResponse(
        {
          status: event.answeredStatus ?? 0,
          statusText: event.answeredStatus === 502 ? 'Bad Gateway' : '',
          httpVersion: '1.1',
          rawHeaders: [],
          bodySize: 0,
          error: `${event.code}: ${event.message}`,
        },
        redact,
      ),
      cache: {},
      timings,
      connection: String(event.conn),
      _wstap: { ...this.#baseWstap(event.conn), answeredBy: event.answeredStatus !== null ? 'wstap' : 'upstream' },
    });
  }

  #rejectedEntry(event: HttpRejectedEvent): void {
    const redact = this.#options.redact;
    const { time, timings } = harTimings(0, 0);
    this.#holdHttp(event.conn, {
      startedDateTime: isoTime(event.t),
      time,
      request: harRequest(
        { method: event.method, url: event.url, httpVersion: '1.1', rawHeaders: [], bodySize: 0, websocket: false },
        redact,
        this.#fallbackHost(),
      ),
      response: harResponse({ status: event.statusCode, statusText: event.reason, httpVersion: '1.1', rawHeaders: [], bodySize: 0 }, redact),
      cache: {},
      timings,
      connection: String(event.conn),
      _wstap: { ...this.#baseWstap(event.conn), answeredBy: 'wstap' },
    });
  }

  /** An entry's `_wstap` before its facts: the connection, redaction, and when it opened (`open`; by default its conn.open, if the capture has it). */
  #baseWstap(conn: number, open: ConnOpenEvent | null | undefined = this.#opens.get(conn)): HarWstap {
    return { ...emptyWstap(conn, this.#options.redact), ...(open ? { connectionOpenedAt: epochSeconds(open.t) } : {}) };
  }

  #takeRequest(conn: number, exchange: number): HttpRequestEvent | undefined {
    const key = `${conn}/${exchange}`;
    const request = this.#requests.get(key);
    this.#requests.delete(key);
    return request;
  }

  #emit(entry: HarEntry, websocketConn: number | null = null): void {
    // Several proxies' captures read as one: the entry says which one, and its target is that proxy's.
    const open = entry._wstap ? this.#tracker.get(entry._wstap.connectionId)?.open : undefined;
    const instance = open?.instance;
    if (instance !== undefined && entry._wstap) {
      entry._wstap.instance = instance;
      if (open?.instanceConn !== undefined) entry._wstap.instanceConnectionId = open.instanceConn;
    }
    const serverIp = instance !== undefined && this.#instanceServerIps.has(instance) ? this.#instanceServerIps.get(instance) : this.#serverIp;
    if (serverIp) entry.serverIPAddress = serverIp;
    this.stats.entries++;
    this.#sink.entry(entry, websocketConn);
  }

  #fallbackHost(): string {
    try {
      return new URL(this.#target).host || 'unknown';
    } catch {
      return 'unknown';
    }
  }
}

/** Ping (9) and pong (10): their data pairs them. */
function isPingOrPong(opcode: number): boolean {
  return opcode === 9 || opcode === 10;
}

function harHandshakeError(e: HandshakeErrorEvent): NonNullable<HarWstap['handshakeError']> {
  return { time: epochSeconds(e.t), code: e.code, message: e.message, offset: e.offset };
}

function harObserverFault(fault: ObserverFaultEvent): NonNullable<HarWstap['observerFault']> {
  return { time: epochSeconds(fault.t), ...(fault.side ? { side: fault.side } : {}), where: fault.where, message: fault.message };
}

function harCutFrame(cut: FrameCutEvent): HarCutFrame {
  return {
    type: cut.side === 'client' ? 'send' : 'receive',
    time: epochSeconds(cut.started),
    endTime: epochSeconds(cut.t),
    offset: cut.offset,
    received: cut.received,
    ...(cut.opcode !== undefined ? { opcode: cut.opcode, length: cut.length ?? 0, payloadReceived: cut.payloadReceived ?? 0 } : {}),
  };
}

/** A WebSocket connection's record as its handshake request (or a stand-in for it) starts it. */
function newWebSocketRecord(open: ConnOpenEvent, handshake: Pick<WebSocketRecord, 'request' | 'response'>, t: number, standIn: boolean): WebSocketRecord {
  return {
    open,
    ...handshake,
    body: null,
    headError: null,
    error: null,
    firstCloseFrame: null,
    pings: [],
    lastRoundTrip: undefined,
    protocolErrors: [],
    interim: [],
    reorder: [],
    lastT: t,
    standIn,
    frames: 0,
    payloadIds: new PayloadIds(),
  };
}

/** A connection's close as the tracker folded it, in HAR's terms; `openAtEnd` when the capture ended before it closed. */
function closeFacts(summary: ConnectionSummary | undefined): {
  wstap: Pick<HarWstap, 'closedBy' | 'closeEvents' | 'closeOrder' | 'idleBeforeCloseMs'>;
  undecided: string | undefined;
  openAtEnd: boolean;
} {
  if (!summary) return { wstap: { closedBy: null, closeEvents: [], idleBeforeCloseMs: null }, undecided: undefined, openAtEnd: false };
  const attribution = attributionOf(summary);
  return {
    wstap: {
      closedBy: attribution.closedBy,
      closeEvents: summary.evidence.map((e) => ({
        side: e.side,
        kind: e.kind,
        time: epochSeconds(e.t),
        ...(e.code !== undefined ? { code: e.code } : {}),
        ...(e.reason !== undefined ? { reason: e.reason } : {}),
        ...(e.error !== undefined ? { error: e.error } : {}),
        ...(e.pausedSince ? { pausedSince: pausedSinceSeconds(e.pausedSince) } : {}),
      })),
      ...(attribution.orderUnknown
        ? {
            closeOrder: {
              reason: attribution.orderUnknown.reason,
              pausedSide: attribution.orderUnknown.pausedSide,
              pausedSince: epochSeconds(attribution.orderUnknown.pausedSince),
            },
          }
        : {}),
      idleBeforeCloseMs: attribution.idleBeforeCloseMs,
    },
    undecided: attribution.undecided,
    openAtEnd: summary.state !== 'closed',
  };
}
