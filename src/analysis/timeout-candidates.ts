import type { Idle } from '../capture/events.js';
import type { CloseAttribution, CloseEvidence } from './close-attribution.js';
import type { HopTimeout, TimeoutAction, TimeoutMeasure } from '../profiles/hop-timeout.js';
import { elapsedFor, formatDuration } from './countdown.js';
import type { NginxLogJudgement } from './timeout-nginx-log.js';

/**
 * Which known timeouts could have closed a connection, and why each of the
 * others could not. Three observed things separate hops whose timers are all
 * near the silence: the silence each timer measures (both-idle, client-idle,
 * upstream-idle, lifetime) against the measured idle of each direction, the
 * side of wstap the close came from against where the hop sits, and what the
 * hop does when its timer fires (FIN, RST, close frame, HTTP status) against
 * the first close evidence. A fourth, when nginx's error log is read beside
 * the session: the hop's own log line, or its absence (timeout-nginx-log.ts).
 * Pure.
 */

/** Default tolerance: 5 % of the timeout or 1 s, whichever is larger (timers fire late, and not at the ms). */
export const DEFAULT_TOLERANCE = { fraction: 0.05, minimumMs: 1000 };

export interface TimeoutMatch {
  timeout: HopTimeout;
  /** What the timer would have seen at the first close evidence. */
  elapsedMs: number;
  /** elapsed - timeout: positive when it fired late. */
  deltaMs: number;
}

/** A timeout ruled out, and the observed fact that rules it out. */
export interface RuledOut extends TimeoutMatch {
  why: 'silence' | 'side' | 'action' | 'log';
  /** "measures client-idle: 0.50 s at the close, not 60s" (without the timeout's name). */
  reason: string;
}

export interface TimeoutCandidates {
  /** Timeouts every observed fact fits, nearest first. */
  fitting: TimeoutMatch[];
  /** The others, in the order given. */
  ruledOut: RuledOut[];
}

/** Seconds with two decimals: "60.02 s" (timers are compared at this precision). */
export function seconds2(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/** "nginx proxy_read_timeout 60s": how findings name a timeout. */
export function timeoutLabel(t: HopTimeout): string {
  return `${t.hop}${t.setting ? ` ${t.setting}` : ''} ${formatDuration(t.seconds)}`;
}

/** Which silence a timer of this measure counts, in words. */
export const MEASURE_WORDS: Record<TimeoutMeasure, string> = {
  'both-idle': 'silence both ways (a byte either way re-arms it)',
  'client-idle': 'silence from the client side',
  'upstream-idle': 'silence from the upstream side',
  lifetime: 'the connection age, busy or not',
};

/** "sends a FIN when it fires", or that the profile does not know what it sends. */
export function firingWords(t: HopTimeout): string {
  return (t.action ?? 'unknown') === 'unknown' ? 'what it sends when it fires is not known (action: unknown)' : `sends ${actionWords(t.action, t.code)} when it fires`;
}

/** What the ends see when a hop's timer fires, in words: "a FIN", "a close frame 1001". */
export function actionWords(action: TimeoutAction | undefined, code?: number): string {
  switch (action) {
    case 'fin':
      return 'a FIN';
    case 'rst':
      return 'an RST';
    case 'close-frame':
      return `a close frame${code !== undefined ? ` ${code}` : ''}`;
    case 'http-status':
      return `an HTTP ${code ?? 'error'} answer`;
    default:
      return 'something not known';
  }
}

/**
 * Whether a hop acting this way could have produced this first close
 * evidence. An unknown action fits anything; a socket error other than a
 * reset says nothing about how the far end closed. A hop that answers with an
 * HTTP status sends a response, not a close, so it cannot be the first close
 * evidence of a connection.
 */
function actionFits(t: HopTimeout, e: CloseEvidence): boolean {
  const action = t.action ?? 'unknown';
  if (action === 'unknown' || e.kind === 'timeout') return true;
  if (e.kind === 'error') return e.error !== 'ECONNRESET' || action === 'rst';
  switch (action) {
    case 'fin':
      return e.kind === 'fin';
    case 'rst':
      return e.kind === 'rst';
    case 'close-frame':
      return e.kind === 'close-frame' && (t.code === undefined || e.code === undefined || t.code === e.code);
    case 'http-status':
      return false;
  }
}

/** How the first close evidence looked, for "... and a FIN was seen". */
export function seenWords(e: CloseEvidence): string {
  switch (e.kind) {
    case 'fin':
      return 'a FIN';
    case 'rst':
      return 'an RST';
    case 'close-frame':
      return `a close frame${e.code !== undefined ? ` ${e.code}` : ' without a code'}`;
    case 'error':
      return `a socket error ${e.error ?? ''}`.trimEnd();
    case 'timeout':
      return 'a timeout';
  }
}

/**
 * Sorts every timeout into those the observed close fits and those it rules
 * out (silence first, then side, then action, then nginx's log: the first
 * fact that fails is the reason given).
 */
export function judgeTimeouts(
  timeouts: readonly HopTimeout[],
  attribution: CloseAttribution,
  ageAtCloseMs: number,
  tolerance = DEFAULT_TOLERANCE,
  log: NginxLogJudgement | null = null,
): TimeoutCandidates {
  const first = attribution.first;
  const idle: Idle | null = attribution.idleBeforeCloseMs;
  const closedBy = attribution.closedBy;
  if (!first || !idle) return { fitting: [], ruledOut: [] };
  const fitting: TimeoutMatch[] = [];
  const ruledOut: RuledOut[] = [];
  for (const t of timeouts) {
    const elapsedMs = elapsedFor(t.measures, idle, ageAtCloseMs);
    const deltaMs = elapsedMs - t.seconds * 1000;
    const m = { timeout: t, elapsedMs, deltaMs };
    if (Math.abs(deltaMs) > Math.max(tolerance.fraction * t.seconds * 1000, tolerance.minimumMs)) {
      ruledOut.push({ ...m, why: 'silence', reason: `measures ${t.measures}: ${seconds2(elapsedMs)} at the close, not ${formatDuration(t.seconds)}` });
    } else if (!sideFits(t, closedBy)) {
      const where = t.where ?? 'either side';
      ruledOut.push({ ...m, why: 'side', reason: `is on the ${where} of wstap and the close came from the ${closedBy ?? 'unknown'} side` });
    } else if (!actionFits(t, first)) {
      ruledOut.push({ ...m, why: 'action', reason: `${firingWords(t)} and ${seenWords(first)} was seen` });
    } else {
      const byLog = log?.rulesOut(t) ?? null;
      if (byLog !== null) ruledOut.push({ ...m, why: 'log', reason: byLog });
      else fitting.push(m);
    }
  }
  fitting.sort((a, b) => Math.abs(a.deltaMs) - Math.abs(b.deltaMs));
  return { fitting, ruledOut };
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

/** Every timeout the observed close fits (silence within tolerance, side, action), nearest first. */
export function matchingTimeouts(
  timeouts: readonly HopTimeout[],
  attribution: CloseAttribution,
  ageAtCloseMs: number,
  tolerance = DEFAULT_TOLERANCE,
  log: NginxLogJudgement | null = null,
): TimeoutMatch[] {
  return judgeTimeouts(timeouts, attribution, ageAtCloseMs, tolerance, log).fitting;
}
