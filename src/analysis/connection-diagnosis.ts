import { attributeClose, type CloseEvidence } from './close-attribution.js';
import type { Finding } from './finding.js';
import type { HopTimeout } from './hop-timeout.js';
import { timeoutVerdict } from './timeout-verdict.js';

/** What wstap knows about the path (from a profile or --timeout flags). */
export interface DiagnosisContext {
  timeouts: readonly HopTimeout[];
}

/** The facts of a closed connection that the verdicts rest on; the tracker and the HAR fold both have them. */
export interface ClosedConnectionFacts {
  openedAt: number;
  evidence: readonly CloseEvidence[];
}

/** The findings about a connection that has closed: today the timeout verdict. */
export function diagnoseClosed(facts: ClosedConnectionFacts, context: DiagnosisContext): Finding[] {
  const verdict = timeoutVerdict(context.timeouts, attributeClose(facts.evidence), facts.openedAt);
  return verdict ? [verdict] : [];
}
