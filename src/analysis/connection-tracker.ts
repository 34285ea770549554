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
  ObserverFaultEvent,
  Side,
} from '../capture/events.js';
import { gapLostEvents } from '../capture/events.js';
import { headerValue } from '../capture/raw-headers.js';
import { attributeClose, closeEvidenceOf, keepsEvidence, type CloseAttribution, type CloseEvidence } from './close-attribution.js';
import { isHandshakeRequest } from './handshake-rules.js';
import { judgedAttribution, missingBeginning, missingStretch, noteAfterMissing, standInOpen, type MissingPart } from './missing-part.js';
import { PingPairing, type PingRoundTrip } from './ping-pairing.js';

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

const MAX_PINGS_KEPT = 32;

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
  /** Front-leg connection -> the back-leg summaries waiting for its first close evidence. */
  readonly #waitingForFront = new Map<number, Set<ConnectionSummary>>();

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

  /** Applies one event; returns the summary it touched, if any. */
  apply(event: CaptureEvent): ConnectionSummary | null {
    if (event.kind === 'conn.open') {
      const summary = newSummary(event, null);
      this.#live.set(event.conn, summary);
      return summary;
    }
    if (event.kind === 'capture.gap') {
      if (gapLostEvents(event)) for (const s of this.#live.values()) s.missing = missingStretch(s.missing, s.evidence.length, event.t);
      return null;
    }
    if (!('conn' in event)) return null;
    let summary = this.#live.get(event.conn);
    if (!summary) {
      if (this.#closed.has(event.conn)) return null;
      // Its conn.open is not in what was read (a deleted segment, a gap): keep it with what is known.
      summary = newSummary(standInOpen(event), missingBeginning(event.t));
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
    this.#closed.clear();
    return ids;
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
        if (!s.handshakeLike && isHandshakeRequest(event.rawHeaders)) s.handshakeLike = { request: event, response: null };
        s.httpExchanges++;
        s.firstRequestUrl ??= event.url;
        s.currentRequest = { exchange: event.exchange, method: event.method, url: event.url };
        s.state = 'open';
        break;
      case 'http.response':
        s.lastActivityAt.upstream = event.t;
        s.lastStatus = event.statusCode;
        if (s.handshakeLike && s.handshakeLike.request.exchange === event.exchange) s.handshakeLike.response = event;
        break;
      case 'ws.handshake.request':
        s.lastActivityAt.client = event.t;
        s.forwardedFor ??= forwardedClient(event.rawHeaders);
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
      case 'http.error':
        s.upstreamError = event;
        if (event.answeredStatus !== null) s.lastStatus = event.answeredStatus;
        break;
      case 'ws.frame': {
        const d = s.directions[event.side];
        d.frames++;
        d.payloadBytes += event.length;
        d.lastFrameAt = event.t;
        s.lastActivityAt[event.side] = event.t;
        if (event.opcode === 9) s.pingPairing.ping(event.side, event.preview, event.t);
        else if (event.opcode === 10) {
          const rtt = s.pingPairing.pong(event.side, event.preview, event.t);
          if (rtt) {
            s.pings.push(rtt);
            if (s.pings.length > MAX_PINGS_KEPT) s.pings.shift();
          }
        }
        break;
      }
      case 'ws.message':
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
          const oldest = this.#closed.keys().next().value;
          if (oldest !== undefined) this.#closed.delete(oldest);
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

function newSummary(open: ConnOpenEvent, missing: MissingPart | null): ConnectionSummary {
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
    frontLeg: null,
  };
}

