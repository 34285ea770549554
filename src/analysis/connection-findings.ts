import type { CaptureEvent } from '../capture/events.js';
import { diagnoseConnection, factsOf, type DiagnosisContext, type RecordedHandshake } from './connection-diagnosis.js';
import type { ConnectionSummary } from './connection-tracker.js';
import type { Finding } from './finding.js';
import { httpAnomalyFinding } from './http-anomaly-rules.js';
import { nginxLineFinding } from './nginx-log-findings.js';

const FINDING_EVENTS: ReadonlySet<CaptureEvent['kind']> = new Set(['ws.handshake.response', 'ws.handshake.body', 'http.response', 'http.error', 'http.anomaly', 'conn.close']);
const NO_FINDINGS: readonly Finding[] = [];

/**
 * The findings one event makes known about its connection, each once:
 * handshake rules when the app answers (or cannot be reached), the rest
 * (timeout verdict, heartbeat, a handshake never answered, the keep-alive
 * race) when the connection closes; an HTTP framing anomaly when recorded. An answer that did not upgrade is judged when its body
 * is recorded (`ws.handshake.body`), so the finding can quote it; a capture
 * without that event gets them at the close. A connection that never closes
 * gets no close verdict.
 *
 * The one fold every reader uses: the live log and `view` (narrateFindings)
 * and the HAR's `_wstap.diagnosis` (HarFold). `share` rewrites the handshake
 * the findings quote (an export redacts it).
 *
 * An nginx error-log line that matters is a finding of its own when it is
 * read: of the connection it is tied to, or of the session (summary null)
 * when it is tied to none (nginx could not reach wstap at all, say).
 */
export function findingsAt(
  event: CaptureEvent,
  summary: ConnectionSummary | null,
  context: DiagnosisContext,
  share: (h: RecordedHandshake) => RecordedHandshake = (h) => h,
): readonly Finding[] {
  if (event.kind === 'nginx.log') {
    const finding = nginxLineFinding(event, summary?.nginxLines.find((l) => l.event === event) ?? null);
    return finding ? [finding] : NO_FINDINGS;
  }
  // Called for every event, frames included: decide on the kind before building anything.
  if (!summary || !FINDING_EVENTS.has(event.kind)) return NO_FINDINGS;
  if (event.kind === 'http.anomaly') return [httpAnomalyFinding(event)];
  const facts = factsOf(summary);
  const handshake = facts.handshake;
  const shared = { ...facts, handshake: handshake ? share(handshake) : null };
  const answerEvent =
    (event.kind === 'ws.handshake.response' && handshake?.response === event && event.upgraded) ||
    (event.kind === 'ws.handshake.body' && handshake?.responseBody === event && handshake.response?.kind === 'ws.handshake.response' && !handshake.response.upgraded) ||
    (event.kind === 'http.response' && handshake?.response === event) ||
    (event.kind === 'http.error' && event.stage === 'connect' && handshake !== null && !handshake.response);
  if (answerEvent) {
    // Only the handshake is judged now; pings and the close are judged at the close.
    return diagnoseConnection({ ...shared, closed: false }, context).filter((f) => f.id.startsWith('handshake.'));
  }
  if (event.kind === 'conn.close') {
    const answered = handshake !== null && (judgedAtAnswer(handshake) || handshake.error?.stage === 'connect');
    // nginx's lines were findings when they were read.
    return diagnoseConnection(shared, context).filter((f) => (!answered || !f.id.startsWith('handshake.')) && !f.id.startsWith('nginx.'));
  }
  return NO_FINDINGS;
}

/** The handshake findings were judged when the answer came: a 101 at its head, a refusal at its body. */
function judgedAtAnswer(h: RecordedHandshake): boolean {
  const response = h.response;
  if (!response) return false;
  if (response.kind === 'http.response' || response.upgraded) return true;
  return h.responseBody != null;
}
