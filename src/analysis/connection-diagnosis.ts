import type { HandshakeRequestEvent, HandshakeResponseEvent, HttpErrorEvent, HttpRequestEvent, HttpResponseEvent } from '../capture/events.js';
import { attributeClose, type CloseEvidence } from './close-attribution.js';
import type { ConnectionSummary } from './connection-tracker.js';
import type { Finding } from './finding.js';
import { handshakeFindings, type HandshakeFacts } from './handshake-rules.js';
import type { Heartbeat } from './heartbeat.js';
import type { HopTimeout } from './hop-timeout.js';
import { timeoutVerdict } from './timeout-verdict.js';

/** What wstap knows about the path (from a profile or --timeout flags); the same for every connection of a session. */
export interface DiagnosisContext {
  timeouts: readonly HopTimeout[];
  /** Request headers the app needs (profile `app.requires-headers`). */
  requiredHeaders: readonly string[];
  /** The app's heartbeat as the profile describes it. */
  heartbeat: Heartbeat | null;
}

/** Nothing known about the path: only what the connection itself shows is judged. */
export const EMPTY_DIAGNOSIS_CONTEXT: DiagnosisContext = Object.freeze({ timeouts: [], requiredHeaders: [], heartbeat: null });

/** A handshake as recorded: upgraded (ws.handshake.*) or one that arrived as plain HTTP. */
export interface RecordedHandshake {
  request: HandshakeRequestEvent | HttpRequestEvent;
  response: HandshakeResponseEvent | HttpResponseEvent | null;
  error: HttpErrorEvent | null;
}

/** The facts the verdicts rest on; the tracker and the HAR fold both have them. */
export interface ConnectionFacts {
  openedAt: number;
  evidence: readonly CloseEvidence[];
  closed: boolean;
  handshake: RecordedHandshake | null;
}

function handshakeFacts(facts: ConnectionFacts, context: DiagnosisContext): HandshakeFacts | null {
  const h = facts.handshake;
  if (!h) return null;
  const reason = h.response ? ('reason' in h.response ? h.response.reason : h.response.statusMessage) : '';
  return {
    request: h.request,
    response: h.response ? { statusCode: h.response.statusCode, reason, rawHeaders: h.response.rawHeaders } : null,
    upstreamError: h.error && h.error.stage === 'connect' ? h.error : null,
    closedBy: attributeClose(facts.evidence).closedBy,
    closed: facts.closed,
    requiredHeaders: context.requiredHeaders,
  };
}

/** Everything wstap concludes about one connection: handshake rules, then (once closed) the timeout verdict. */
export function diagnoseConnection(facts: ConnectionFacts, context: DiagnosisContext): Finding[] {
  const handshake = handshakeFacts(facts, context);
  const out = handshake ? handshakeFindings(handshake) : [];
  if (facts.closed) {
    const verdict = timeoutVerdict(context.timeouts, attributeClose(facts.evidence), facts.openedAt);
    if (verdict) out.push(verdict);
  }
  return out;
}

/** The tracker's view of a connection as diagnosis facts. */
export function factsOf(s: ConnectionSummary): ConnectionFacts {
  const handshake: RecordedHandshake | null = s.handshakeRequest
    ? { request: s.handshakeRequest, response: s.handshakeResponse, error: s.upstreamError }
    : s.handshakeLike
      ? { request: s.handshakeLike.request, response: s.handshakeLike.response, error: s.upstreamError }
      : null;
  return { openedAt: s.open.t, evidence: s.evidence, closed: s.state === 'closed', handshake };
}
