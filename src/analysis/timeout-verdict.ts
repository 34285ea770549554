import type { Idle } from '../capture/events.js';
import { describeEvidence, type CloseAttribution } from './close-attribution.js';
import type { Finding } from './finding.js';
import { elapsedFor, formatDuration, type HopTimeout, type TimeoutMeasure } from './hop-timeout.js';

/** Default tolerance: 5 % of the timeout or 1 s, whichever is larger (timers fire late, and not at the ms). */
export const DEFAULT_TOLERANCE = { fraction: 0.05, minimumMs: 1000 };

export interface TimeoutMatch {
  timeout: HopTimeout;
  /** What the timer would have seen at the first close evidence. */
  elapsedMs: number;
  /** elapsed - timeout: positive when it fired late. */
  deltaMs: number;
}

/** Seconds with two decimals: "60.02 s" (timers are compared at this precision). */
export function seconds2(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/** "2.00 s without data either way": what a timer of this measure saw. */
export const SILENCE_WORDS: Record<TimeoutMeasure, (elapsedMs: number) => string> = {
  'both-idle': (ms) => `${seconds2(ms)} without data either way`,
  'client-idle': (ms) => `${seconds2(ms)} without client->upstream data`,
  'upstream-idle': (ms) => `${seconds2(ms)} without upstream->client data`,
  lifetime: (ms) => `${seconds2(ms)} of life`,
};

/** "nginx proxy_read_timeout 60s": how findings name a timeout. */
export function timeoutLabel(t: HopTimeout): string {
  return `${t.hop}${t.setting ? ` ${t.setting}` : ''} ${formatDuration(t.seconds)}`;
}

/**
 * A hop's timer can only explain a close that came from its side of wstap:
 * a hop in front of wstap closes the client side, one behind it the
 * upstream side. A --timeout flag does not say where its hop is.
 */
function sideFits(t: HopTimeout, closedBy: CloseAttribution['closedBy']): boolean {
  if (!t.where) return closedBy === 'client' || closedBy === 'upstream';
  return (t.where === 'client-side' && closedBy === 'client') || (t.where === 'upstream-side' && closedBy === 'upstream');
}

/** Every timeout within tolerance of what its timer saw at the first close evidence, nearest first. */
export function matchingTimeouts(
  timeouts: readonly HopTimeout[],
  attribution: CloseAttribution,
  ageAtCloseMs: number,
  tolerance = DEFAULT_TOLERANCE,
): TimeoutMatch[] {
  const idle = attribution.idleBeforeCloseMs;
  if (!attribution.first || !idle) return [];
  const matches: TimeoutMatch[] = [];
  for (const t of timeouts) {
    if (!sideFits(t, attribution.closedBy)) continue;
    const elapsedMs = elapsedFor(t.measures, idle, ageAtCloseMs);
    const deltaMs = elapsedMs - t.seconds * 1000;
    if (Math.abs(deltaMs) <= Math.max(tolerance.fraction * t.seconds * 1000, tolerance.minimumMs)) matches.push({ timeout: t, elapsedMs, deltaMs });
  }
  return matches.sort((a, b) => Math.abs(a.deltaMs) - Math.abs(b.deltaMs));
}

function silenceFacts(idle: Idle, ageMs: number): string {
  return `silence before it: client->upstream ${seconds2(idle.client)}, upstream->client ${seconds2(idle.upstream)}; connection age ${seconds2(ageMs)}`;
}

/**
 * The timeout verdict for a closed connection: which known timeout explains
 * the close, or the numbers when none does. Null when there is nothing to
 * judge (no close evidence, no timeouts known, wstap itself ended it, or
 * the order of the two sides' closes is unknown).
 */
export function timeoutVerdict(
  timeouts: readonly HopTimeout[],
  attribution: CloseAttribution,
  openedAt: number,
  tolerance = DEFAULT_TOLERANCE,
): Finding | null {
  const first = attribution.first;
  const idle = attribution.idleBeforeCloseMs;
  // closedBy null with evidence: the order is unknown (backpressure), so no side's timer can be named.
  if (!first || !idle || timeouts.length === 0 || attribution.closedBy === 'proxy' || attribution.closedBy === null) return null;
  const ageMs = first.t - openedAt;
  const how = `${attribution.closedBy} side (${describeEvidence(first).replace(/^(client|upstream) /, '')})`;
  const evidence = [`first close evidence: ${describeEvidence(first)} at +${seconds2(ageMs)}`, silenceFacts(idle, ageMs)];
  const [best, ...others] = matchingTimeouts(timeouts, attribution, ageMs, tolerance);
  if (best) {
    const t = best.timeout;
    const also = others.length > 0 ? ` (also within tolerance: ${others.map((m) => timeoutLabel(m.timeout)).join(', ')})` : '';
    return {
      id: 'timeout.match',
      severity: 'warning',
      message: `closed by ${how} after ${SILENCE_WORDS[t.measures](best.elapsedMs)}: matches ${timeoutLabel(t)}${also}`,
      evidence: [...evidence, `${timeoutLabel(t)} measures ${t.measures}; off by ${seconds2(Math.abs(best.deltaMs))}`],
      fix: `if the connection should survive ${formatDuration(t.seconds)} of quiet, raise ${t.hop}${t.setting ? ` ${t.setting}` : "'s timeout"} above the app's heartbeat interval, or make the app send a heartbeat more often than every ${formatDuration(t.seconds)}`,
    };
  }
  const nearest = timeouts
    .map((t) => ({ t, elapsed: elapsedFor(t.measures, idle, ageMs) }))
    .map(({ t, elapsed }) => `${timeoutLabel(t)}: ${t.measures} was ${seconds2(elapsed)}${sideFits(t, attribution.closedBy) ? '' : `, and ${t.hop} is on the ${t.where} of wstap`}`);
  return {
    id: 'timeout.none',
    severity: 'info',
    message: `closed by ${how} after ${seconds2(Math.min(idle.client, idle.upstream))} without data either way: matches no known timeout`,
    evidence: [...evidence, ...nearest],
    fix: '',
  };
}
