import type { HandshakeBodyEvent, HandshakeRequestEvent, HandshakeResponseEvent, HttpErrorEvent, HttpRequestEvent, HttpResponseEvent } from '../capture/events.js';
import { attributeClose, type CloseAttribution, type CloseEvidence } from './close-attribution.js';
import type { ConnectionSummary, UnansweredRequest } from './connection-tracker.js';
import type { Finding } from './finding.js';
import { handshakeFindings, responseBodyFacts, type HandshakeFacts } from './handshake-rules.js';
import type { Heartbeat } from '../profiles/heartbeat.js';
import type { HopTimeout } from '../profiles/hop-timeout.js';
import { keepaliveRaceFinding } from './keepalive-race.js';
import { heartbeatFindings } from './heartbeat-rules.js';
import type { PingPairing } from './ping-pairing.js';
import { judgedAttribution, type MissingPart } from './missing-part.js';
import { DEFAULT_TOLERANCE, matchedTimeout, timeoutVerdict } from './timeout-verdict.js';
import type { NginxCloseFacts } from './timeout-nginx-log.js';
import { nginxLineFinding } from './nginx-log-findings.js';

/** What wstap knows about the path (from a profile or --timeout flags); the same for every connection of a session. */
export interface DiagnosisContext {
  timeouts: readonly HopTimeout[];
  /** Request headers the app needs (profile `app.requires-headers`). */
  requiredHeaders: readonly string[];
  /** The app's heartbeat as the profile describes it. */
  heartbeat: Heartbeat | null;
  /** The app's idle timeout for keep-alive connections (profile `app.keepalive-timeout`), in ms; absent when unknown. */
  appKeepAliveMs?: number;
}

/** Nothing known about the path: only what the connection itself shows is judged. */
export const EMPTY_DIAGNOSIS_CONTEXT: DiagnosisContext = Object.freeze({ timeouts: [], requiredHeaders: [], heartbeat: null });

/** A handshake as recorded: upgraded (ws.handshake.*) or one that arrived as plain HTTP. */
export interface RecordedHandshake {
  request: HandshakeRequestEvent | HttpRequestEvent;
  response: HandshakeResponseEvent | HttpResponseEvent | null;
  error: HttpErrorEvent | null;
  /** The start of the body sent with a response that did not upgrade (absent in captures older than the event). */
  responseBody?: HandshakeBodyEvent | null;
}

/** The facts the verdicts rest on; the tracker and the HAR fold both have them. */
export interface ConnectionFacts {
  openedAt: number;
  /** Part of the connection is not in the capture: no timeout verdict then (its age or first close evidence is unknown). */
  missing?: MissingPart | null;
  evidence: readonly CloseEvidence[];
  closed: boolean;
  handshake: RecordedHandshake | null;
  /** Pings and pongs so far (null: none kept, e.g. a plain HTTP exchange). */
  pings: PingPairing | null;
  /** When the app's 101 arrived; null when the connection never became a WebSocket. */
  upgradedAt: number | null;
  /** Where the heartbeat checks stop looking: the close, or now for a connection still open. */
  endAt: number;
  /** The first plain HTTP request the app left unanswered when it closed (keepalive-race.ts); absent: none. */
  unanswered?: UnansweredRequest | null;
  /** nginx's error log read beside the session (--nginx-error-log) and its lines tied to this connection; absent without one. */
  nginx?: NginxCloseFacts | null;
}

function handshakeFacts(facts: ConnectionFacts, context: DiagnosisContext, attribution: CloseAttribution): HandshakeFacts | null {
  const h = facts.handshake;
  if (!h) return null;
  const reason = h.response ? ('reason' in h.response ? h.response.reason : h.response.statusMessage) : '';
  return {
    request: h.request,
    response: h.response
      ? { statusCode: h.response.statusCode, reason, rawHeaders: h.response.rawHeaders, ...(h.responseBody ? { body: responseBodyFacts(h.responseBody) } : {}) }
      : null,
    upstreamError: h.error && h.error.stage === 'connect' ? h.error : null,
    closedBy: attribution.closedBy,
    closed: facts.closed,
    requiredHeaders: context.requiredHeaders,
  };
}

/**
 * Everything wstap concludes about one connection: handshake rules, then
 * (once closed) the timeout verdict, then the heartbeat checks.
 */
export function diagnoseConnection(facts: ConnectionFacts, context: DiagnosisContext): Finding[] {
  const attribution = judgedAttribution(attributeClose(facts.evidence), facts.missing ?? null);
  const handshake = handshakeFacts(facts, context, attribution);
  const out = handshake ? handshakeFindings(handshake) : [];
  let closedByTimeout: HopTimeout | null = null;
  // Without its beginning the connection's age is unknown; with the first close evidence possibly missing, so is who closed.
  const timeable = !facts.missing?.beginning && attribution.undecided === undefined;
  if (facts.closed && timeable) {
    const verdict = timeoutVerdict(context.timeouts, attribution, facts.openedAt, DEFAULT_TOLERANCE, facts.nginx ?? null);
    if (verdict) out.push(verdict);
    // Only a match names the timeout that closed it: an ambiguous verdict names none, so no heartbeat finding may blame one.
    if (verdict?.id === 'timeout.match') closedByTimeout = matchedTimeout(context.timeouts, attribution, facts.openedAt, facts.nginx ?? null);
  }
  // nginx's own lines about this connection (said when each was read; the UI's detail lists them with the rest).
  for (const l of facts.nginx?.lines ?? []) {
    const f = nginxLineFinding(l.event, l);
    if (f) out.push(f);
  }
  if (facts.closed) {
    const race = keepaliveRaceFinding({ unanswered: facts.unanswered ?? null, evidence: facts.evidence }, context.appKeepAliveMs ?? null);
    if (race) out.push(race);
  }
  if (facts.pings) {
    out.push(
      ...heartbeatFindings(
        { pings: facts.pings, upgradedAt: facts.upgradedAt, endAt: facts.endAt, closed: facts.closed, closedByTimeout },
        context,
      ),
    );
  }
  return out;
}

/** The tracker's view of a connection as diagnosis facts; `now` ends the look at a connection still open. */
export function factsOf(s: ConnectionSummary, now?: number): ConnectionFacts {
  const handshake: RecordedHandshake | null = s.handshakeRequest
    ? { request: s.handshakeRequest, response: s.handshakeResponse, error: s.upstreamError, responseBody: s.handshakeBody }
    : s.handshakeLike
      ? { request: s.handshakeLike.request, response: s.handshakeLike.response, error: s.upstreamError }
      : null;
  // The earliest evidence, as the verdict and the HAR fold take it (evidence can be recorded out of time order).
  const endAt = attributeClose(s.evidence).first?.t ?? s.closedAt ?? now ?? Math.max(s.lastActivityAt.client, s.lastActivityAt.upstream);
  return {
    openedAt: s.open.t,
    missing: s.missing,
    evidence: s.evidence,
    closed: s.state === 'closed',
    handshake,
    pings: s.handshakeResponse?.upgraded ? s.pingPairing : null,
    upgradedAt: s.handshakeResponse?.upgraded ? s.handshakeResponse.t : null,
    endAt,
    unanswered: s.unanswered,
    nginx: s.nginxLog ? { state: s.nginxLog, lines: s.nginxLines } : null,
  };
}
