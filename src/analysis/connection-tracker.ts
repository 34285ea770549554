/**
 * The fold: one summary per connection from every kind of event (relay,
 * close evidence, HTTP, WebSocket, nginx's log, packet captures). Past 400
 * lines because it is one switch over the event kinds and the state each
 * one updates; split by kind, every piece would reach into the same summary.
 */
import { TrafficTotals } from './traffic-totals.js';
import type {
  CaptureEvent,
  ConnOpenEvent,
  FrameCutEvent,
  HandshakeBodyEvent,
  HandshakeRequestEvent,
  HandshakeResponseEvent,
  HttpErrorEvent,
  HttpRequestEvent,
  HttpResponseEvent,
  NginxLogEvent,
  ObserverFaultEvent,
  Side,
} from '../capture/events.js';
import { gapLostEvents, UPSTREAM_CLOSED } from '../capture/events.js';
import { headerValue } from '../capture/raw-headers.js';
import { attributeClose, closeEvidenceOf, keepsEvidence, type CloseAttribution, type CloseEvidence } from './close-attribution.js';
import { isHandshakeRequest } from './handshake-rules.js';
import { judgedAttribution, missingBeginning, missingStretch, noteAfterMissing, standInOpen, type MissingPart } from './missing-part.js';
import { PingPairing, type PingRoundTrip } from './ping-pairing.js';
import { joinLine, nginxConnectionOf, type JoinableConnection, type JoinedLine } from './nginx-log-join.js';
import { newNginxLogState, noteLine, noteSource, noteUntied, type NginxLogState } from './nginx-log-state.js';

export type ConnectionState = 'handshaking' | 'open' | 'half-closed' | 'closed';

interface DirectionCounters {
  frames: number;
  messages: number;
  payloadBytes: number;
  lastFrameAt: number | null;
}

export interface ConnectionSummary {
  conn: number;
  open: ConnOpenEvent;
  state: ConnectionState;
  handshakeRequest: HandshakeRequestEvent | null;
  handshakeResponse: HandshakeResponseEvent | null;
  /** The start of the body the app sent with a response that did not upgrade. */
  handshakeBody: HandshakeBodyEvent | null;
  upstreamError: HttpErrorEvent | null;
  httpExchanges: number;
  /** The client as nginx named it (`X-Real-IP`, else the first `X-Forwarded-For` hop), when it did. */
  forwardedFor: string | null;
  /** Last status the upstream (or wstap, for a 502) answered a plain HTTP request with. */
  lastStatus: number | null;
  /**
   * When each side last sent something the events show (open, request,
   * response, frame). A live relay knows the exact last byte; this is what a
   * recording can tell.
   */
  lastActivityAt: Record<Side, number>;
  /**
   * The first plain HTTP request that carried Sec-WebSocket-Key (a handshake
   * that lost its Upgrade header on the way), and the app's answer to it.
   */
  handshakeLike: { request: HttpRequestEvent; response: HttpResponseEvent | null } | null;
  /** Path of the first plain HTTP request on this connection. */
  firstRequestUrl: string | null;
  /** The plain HTTP request in progress (keep-alive: one at a time). */
  currentRequest: { exchange: number; method: string; url: string } | null;
  /** When the last plain HTTP answer ended (its http.response), so a next request's idle time on a reused connection is known. */
  lastAnswerAt: number | null;
  /** The request the last http.response answered (pipelining: not always the newest request). */
  lastAnswered: AwaitingRequest | null;
  /** Plain HTTP requests still waiting for their answer, oldest first (pipelining), with the connection's idle time before each. */
  awaitingAnswer: AwaitingRequest[];
  /** The first request the app left unanswered when it closed the connection (http.error UPSTREAM_CLOSED); see keepalive-race.ts. */
  unanswered: UnansweredRequest | null;
  directions: Record<Side, DirectionCounters>;
  /**
   * Evidence in the order it was recorded: the first MAX_EVIDENCE_KEPT
   * pieces, and the first of each side whenever it comes (so the earliest
   * evidence, hence who closed, is always kept); see keepsEvidence.
   */
  evidence: CloseEvidence[];
  /** Evidence seen but not kept: a peer sending close frame after close frame. */
  evidenceDropped: number;
  /** Most recent round trips, newest last (bounded). */
  pings: PingRoundTrip[];
  pingPairing: PingPairing;
  protocolErrors: number;
  /** Frames the connection's end cut in two: at most one per side (each direction ends once). */
  cutFrames: FrameCutEvent[];
  /** wstap stopped observing the connection here (an internal fault); only its close was recorded after it. */
  observerFault: ObserverFaultEvent | null;
  bytes: { fromClient: number; fromUpstream: number } | null;
  /** Bytes that arrived after wstap had ended the other side (its shutdown) and were not passed on; null when none. */
  notRelayed: { fromClient: number; fromUpstream: number } | null;
  closedAt: number | null;
  /** Part of the connection is not in the events read (then `open` may be a stand-in); null when they hold all of it. */
  missing: MissingPart | null;
  /** nginx's connection number, from the request's X-Nginx-Connection header. */
  nginxConnection: number | null;
  /** nginx error-log lines tied to this connection (the first MAX_NGINX_LINES_KEPT). */
  nginxLines: JoinedLine[];
  /** The session's nginx error log, when one is read beside it (shared by every connection); null otherwise. */
  nginxLog: NginxLogState | null;
  /**
   * A packet capture of both legs: the front-leg connection that carried
   * this one (conn.front) and its first close evidence so far, so the
   * verdict can say which leg closed first.
   */
  frontLeg: FrontLeg | null;
}

export interface FrontLeg {
  /** Null: no single front connection fits (`candidates` says how many did). */
  conn: number | null;
  matchedBy: 'address+port' | 'address+time' | null;
  candidates: number;
  client: string;
  /** The front connection's first close evidence, once seen. */
  first: CloseEvidence | null;
}

/** A plain HTTP request as the keep-alive checks need it. */
export interface AwaitingRequest {
  exchange: number;
  method: string;
  url: string;
  t: number;
  /** Since the previous answer ended, on a reused connection; null for a connection's first request. */
  idleBeforeMs: number | null;
}

export interface UnansweredRequest extends AwaitingRequest {
  /** When the app's close came (the http.error's time). */
  closedAt: number;
}
const MAX_NGINX_LINES_KEPT = 16;

const MAX_PINGS_KEPT = 32;
/** Requests kept while they wait for answers: a client pipelining without end does not grow the fold. */
const MAX_AWAITING_KEPT = 64;

function emptyCounters(): DirectionCounters {
  return { frames: 0, messages: 0, payloadBytes: 0, lastFrameAt: null };
}

/** Who closed, derived from the evidence so far (never stored); undecided when the first evidence may be in a missing part. */
export function attributionOf(summary: ConnectionSummary): CloseAttribution {
  return judgedAttribution(attributeClose(summary.evidence), summary.missing);
}

/**
 * Folds events into one summary per connection. It is the same fold for the
 * live proxy, `wstap view` and exports. Bounded: closed connections beyond
 * `maxClosed` are forgotten oldest first (the capture file keeps everything).
 */
export class ConnectionTracker {
  readonly #live = new Map<number, ConnectionSummary>();
  readonly #closed = new Map<number, ConnectionSummary>();
  readonly #maxClosed: number;
  #nginxLog: NginxLogState | null = null;
  /** Connections by nginx's connection number (X-Nginx-Connection), for the exact join. */
  readonly #byNginxConnection = new Map<number, ConnectionSummary>();
  /** Front-leg connection -> the back-leg summaries waiting for its first close evidence. */
  readonly #waitingForFront = new Map<number, Set<ConnectionSummary>>();
  /** The session's frames and messages in totals, moved in this same pass (for the Prometheus view). */
  readonly traffic = new TrafficTotals();

  constructor(options: { maxClosed?: number } = {}) {
    this.#maxClosed = options.maxClosed ?? 1000;
  }

  get(conn: number): ConnectionSummary | undefined {
    return this.#live.get(conn) ?? this.#closed.get(conn);
  }

  get live(): IterableIterator<ConnectionSummary> {
    return this.#live.values();
  }

  /** Connections open now (those whose conn.open is not in the events included). */
  get liveCount(): number {
    return this.#live.size;
  }

  get closed(): IterableIterator<ConnectionSummary> {
    return this.#closed.values();
  }

  /** The session's nginx error log as read so far; null when none is read beside it. */
  get nginxLog(): NginxLogState | null {
    return this.#nginxLog;
  }

  /** Applies one event; returns the summary it touched, if any (an nginx line: the connection it is tied to). */
  apply(event: CaptureEvent): ConnectionSummary | null {
    if (event.kind === 'nginx.log.source' || event.kind === 'nginx.log') return this.#applyNginx(event);
    if (event.kind === 'conn.open') {
      const summary = newSummary(event, null, this.#nginxLog);
      this.#live.set(event.conn, summary);
      return summary;
    }
    if (event.kind === 'capture.gap') {
      // Several instances read as one: a gap is one instance's, and only its connections may lack events.
      if (gapLostEvents(event)) for (const s of this.#live.values()) if (event.instance === s.open.instance) s.missing = missingStretch(s.missing, s.evidence.length, event.t);
      return null;
    }
    if (!('conn' in event)) return null;
    let summary = this.#live.get(event.conn);
    if (!summary) {
      if (this.#closed.has(event.conn)) return null;
      // Its conn.open is not in what was read (a deleted segment, a gap): keep it with what is known.
      summary = newSummary(standInOpen(event), missingBeginning(event.t), this.#nginxLog);
      summary.state = 'open';
      this.#live.set(event.conn, summary);
    }
    this.#applyTo(summary, event);
    this.#noteFrontEvidence(event);
    return summary;
  }

  /** The first close evidence of a front-leg connection, for the back-leg ones it carried. */
  #noteFrontEvidence(event: CaptureEvent): void {
    if (this.#waitingForFront.size === 0 || !('conn' in event)) return;
    const backs = this.#waitingForFront.get(event.conn);
    if (!backs) return;
    const evidence = closeEvidenceOf(event);
    if (evidence) {
      for (const back of backs) if (back.frontLeg && !back.frontLeg.first) back.frontLeg.first = evidence;
      this.#waitingForFront.delete(event.conn);
    } else if (event.kind === 'conn.close') this.#waitingForFront.delete(event.conn);
  }

  #linkFront(s: ConnectionSummary, event: Extract<CaptureEvent, { kind: 'conn.front' }>): void {
    const front = event.front === null ? undefined : this.get(event.front);
    const first = front ? attributionOf(front).first : null;
    s.frontLeg = { conn: event.front, matchedBy: event.matchedBy, candidates: event.candidates, client: event.client, first };
    if (event.front !== null && !first && front?.state !== 'closed') {
      const backs = this.#waitingForFront.get(event.front) ?? new Set<ConnectionSummary>();
      backs.add(s);
      this.#waitingForFront.set(event.front, backs);
    }
  }

  /** Forgets every closed connection (the UI's "clear"); returns their ids. */
  clearClosed(): number[] {
    const ids = [...this.#closed.keys()];
    for (const s of this.#closed.values()) this.#forgetNginxConnection(s);
    this.#closed.clear();
    return ids;
  }

  #applyNginx(event: NginxLogEvent | Extract<CaptureEvent, { kind: 'nginx.log.source' }>): ConnectionSummary | null {
    if (!this.#nginxLog) {
      const state = newNginxLogState();
      this.#nginxLog = state;
      for (const s of this.#live.values()) s.nginxLog = state;
      for (const s of this.#closed.values()) s.nginxLog = state;
    }
    const state = this.#nginxLog;
    if (event.kind === 'nginx.log.source') {
      noteSource(state, event);
      return null;
    }
    noteLine(state, event);
    const joined = joinLine(event, (n) => {
      const s = this.#byNginxConnection.get(n);
      return s ? joinableOf(s) : undefined;
    }, joinable(this.#live.values(), this.#closed.values()));
    if (joined.conn === null) {
      noteUntied(state, event, joined.fits);
      return null;
    }
    const s = this.get(joined.conn);
    if (!s) return null;
    if (s.nginxLines.length < MAX_NGINX_LINES_KEPT) s.nginxLines.push({ event, how: joined.how });
    return s;
  }

  #noteNginxConnection(s: ConnectionSummary, headers: HandshakeRequestEvent['rawHeaders']): void {
    if (s.nginxConnection !== null) return;
    s.nginxConnection = nginxConnectionOf(headers);
    if (s.nginxConnection !== null) this.#byNginxConnection.set(s.nginxConnection, s);
  }

  #forgetNginxConnection(s: ConnectionSummary): void {
    if (s.nginxConnection !== null && this.#byNginxConnection.get(s.nginxConnection) === s) this.#byNginxConnection.delete(s.nginxConnection);
  }

  #applyTo(s: ConnectionSummary, event: CaptureEvent): void {
    const evidence = closeEvidenceOf(event);
    if (s.missing) noteAfterMissing(s.missing, event, evidence);
    if (evidence) {
      if (keepsEvidence(s.evidence, evidence)) s.evidence.push(evidence);
      else s.evidenceDropped++;
      if (s.state === 'open' && (evidence.kind === 'fin' || evidence.kind === 'close-frame')) s.state = 'half-closed';
    }
    switch (event.kind) {
      case 'http.request':
        s.lastActivityAt.client = event.t;
        s.forwardedFor ??= forwardedClient(event.rawHeaders);
        this.#noteNginxConnection(s, event.rawHeaders);
        if (!s.handshakeLike && isHandshakeRequest(event.rawHeaders)) s.handshakeLike = { request: event, response: null };
        s.httpExchanges++;
        s.firstRequestUrl ??= event.url;
        s.currentRequest = { exchange: event.exchange, method: event.method, url: event.url };
        if (s.awaitingAnswer.length < MAX_AWAITING_KEPT) {
          const idleBeforeMs = event.exchange > 1 && s.lastAnswerAt !== null && s.awaitingAnswer.length === 0 ? Math.max(0, event.t - s.lastAnswerAt) : null;
          s.awaitingAnswer.push({ exchange: event.exchange, method: event.method, url: event.url, t: event.t, idleBeforeMs });
        }
        s.state = 'open';
        break;
      case 'http.response':
        s.lastActivityAt.upstream = event.t;
        s.lastStatus = event.statusCode;
        s.lastAnswerAt = event.t;
        s.lastAnswered = s.awaitingAnswer.find((r) => r.exchange === event.exchange) ?? null;
        s.awaitingAnswer = s.awaitingAnswer.filter((r) => r.exchange !== event.exchange);
        if (s.handshakeLike && s.handshakeLike.request.exchange === event.exchange) s.handshakeLike.response = event;
        break;
      case 'ws.handshake.request':
        s.lastActivityAt.client = event.t;
        s.forwardedFor ??= forwardedClient(event.rawHeaders);
        this.#noteNginxConnection(s, event.rawHeaders);
        s.handshakeRequest = event;
        break;
      case 'ws.handshake.interim':
        s.lastActivityAt.upstream = event.t;
        break;
      case 'ws.handshake.response':
        s.lastActivityAt.upstream = event.t;
        s.handshakeResponse = event;
        s.state = 'open';
        break;
      case 'ws.handshake.body':
        // Not activity: it may be recorded when the connection ends, after the body's last byte.
        s.handshakeBody ??= event;
        break;
      case 'http.error': {
        const waiting = s.awaitingAnswer.find((r) => r.exchange === event.exchange);
        s.awaitingAnswer = s.awaitingAnswer.filter((r) => r.exchange !== event.exchange);
        if (event.code === UPSTREAM_CLOSED) {
          if (waiting && !s.unanswered) s.unanswered = { ...waiting, closedAt: event.t };
          // The app's close is evidence of its own (tcp.fin / tcp.rst); it is not a failure to reach it.
          break;
        }
        s.upstreamError = event;
        if (event.answeredStatus !== null) s.lastStatus = event.answeredStatus;
        break;
      }
      case 'ws.frame': {
        this.traffic.frame(event);
        const d = s.directions[event.side];
        d.frames++;
        d.payloadBytes += event.length;
        d.lastFrameAt = event.t;
        s.lastActivityAt[event.side] = event.t;
        if (event.opcode === 9) s.pingPairing.ping(event.side, event.dataId ?? event.preview, event.t);
        else if (event.opcode === 10) {
          const rtt = s.pingPairing.pong(event.side, event.dataId ?? event.preview, event.t);
          if (rtt) {
            s.pings.push(rtt);
            if (s.pings.length > MAX_PINGS_KEPT) s.pings.shift();
          }
        }
        break;
      }
      case 'ws.message':
        this.traffic.message(event);
        s.directions[event.side].messages++;
        break;
      case 'ws.protocol-error':
        s.protocolErrors++;
        break;
      case 'ws.frame.cut':
        if (!s.cutFrames.some((cut) => cut.side === event.side)) s.cutFrames.push(event);
        break;
      case 'observer.fault':
        s.observerFault ??= event;
        break;
      case 'conn.front':
        this.#linkFront(s, event);
        break;
      case 'tcp.gap': {
        // A packet capture's hole: a close frame may be in it, as in a capture.gap. Found late
        // (once acknowledged), it may be older than evidence already recorded: that evidence
        // is then not known to be first.
        // Inside one frame's payload: no close frame can be in it.
        if (event.decoding === 'resumed') break;
        if (event.cause === 'capture-began') {
          s.missing ??= missingBeginning(event.t);
          break;
        }
        const before = s.evidence.filter((e) => e.t <= event.from).length;
        s.missing = missingStretch(s.missing, before, event.t);
        if (before < s.evidence.length && s.missing.closeJudgeable === null) s.missing.closeJudgeable = false;
        break;
      }
      case 'conn.close':
        if (s.frontLeg?.conn != null) this.#waitingForFront.get(s.frontLeg.conn)?.delete(s);
        s.state = 'closed';
        s.closedAt = event.t;
        s.bytes = event.bytes;
        s.notRelayed = event.notRelayed ?? null;
        this.#live.delete(s.conn);
        this.#closed.set(s.conn, s);
        if (this.#closed.size > this.#maxClosed) {
          const oldest = this.#closed.values().next().value;
          if (oldest !== undefined) {
            this.#forgetNginxConnection(oldest);
            this.#closed.delete(oldest.conn);
          }
        }
        break;
      default:
        break;
    }
  }
}

/** nginx's `proxy_set_header X-Real-IP $remote_addr` or the first hop of `X-Forwarded-For`. */
function forwardedClient(headers: HandshakeRequestEvent['rawHeaders']): string | null {
  const realIp = headerValue(headers, 'x-real-ip')?.trim();
  if (realIp) return realIp;
  const first = headerValue(headers, 'x-forwarded-for')?.split(',')[0]?.trim();
  return first ? first : null;
}

/** A summary as the join sees it. */
function joinableOf(s: ConnectionSummary): JoinableConnection {
  const request = s.handshakeRequest ?? s.handshakeLike?.request ?? null;
  return {
    conn: s.conn,
    openedAt: s.open.t,
    closedAt: s.closedAt,
    nginxConnection: s.nginxConnection,
    request: request
      ? { method: request.method, url: request.url, httpVersion: request.httpVersion }
      : s.currentRequest
        ? { method: s.currentRequest.method, url: s.currentRequest.url, httpVersion: null }
        : null,
    forwardedFor: s.forwardedFor,
  };
}

function* joinable(...groups: Array<Iterable<ConnectionSummary>>): Iterable<JoinableConnection> {
  for (const group of groups) for (const s of group) yield joinableOf(s);
}

function newSummary(open: ConnOpenEvent, missing: MissingPart | null, nginxLog: NginxLogState | null): ConnectionSummary {
  return {
    conn: open.conn,
    open,
    state: open.mode === 'tcp' ? 'open' : 'handshaking',
    handshakeRequest: null,
    handshakeResponse: null,
    handshakeBody: null,
    upstreamError: null,
    httpExchanges: 0,
    forwardedFor: null,
    handshakeLike: null,
    lastStatus: null,
    lastActivityAt: { client: open.t, upstream: open.t },
    firstRequestUrl: null,
    currentRequest: null,
    lastAnswerAt: null,
    lastAnswered: null,
    awaitingAnswer: [],
    unanswered: null,
    directions: { client: emptyCounters(), upstream: emptyCounters() },
    evidence: [],
    evidenceDropped: 0,
    pings: [],
    pingPairing: new PingPairing(),
    protocolErrors: 0,
    cutFrames: [],
    observerFault: null,
    bytes: null,
    notRelayed: null,
    closedAt: null,
    missing,
    nginxConnection: null,
    nginxLines: [],
    nginxLog,
    frontLeg: null,
  };
}

