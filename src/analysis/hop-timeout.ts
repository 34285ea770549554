import type { Idle, Side } from '../capture/events.js';

/**
 * Hop timeouts: the idle/lifetime timers of the proxies and load balancers on
 * a WebSocket path (see /work/shared/timeouts.md), and how close a connection
 * is to each of them. Pure: the caller supplies the idle times and the age.
 */

/** What silence a hop's timer measures. Idle.client = ms since the last byte FROM the client side; Idle.upstream likewise. */
export type TimeoutMeasure = 'both-idle' | 'client-idle' | 'upstream-idle' | 'lifetime';

export const TIMEOUT_MEASURES: readonly TimeoutMeasure[] = ['both-idle', 'client-idle', 'upstream-idle', 'lifetime'];

/** Where a hop sits relative to wstap: between the users and wstap, or between wstap and the app. */
export type HopPlacement = 'client-side' | 'upstream-side';
export const HOP_PLACEMENTS: readonly HopPlacement[] = ['client-side', 'upstream-side'];

/** What a hop does when its timer fires, as the connection's ends see it. */
export type TimeoutAction = 'fin' | 'rst' | 'close-frame' | 'http-status' | 'unknown';
export const TIMEOUT_ACTIONS: readonly TimeoutAction[] = ['fin', 'rst', 'close-frame', 'http-status', 'unknown'];

export interface HopTimeout {
  hop: string;
  setting: string;
  seconds: number;
  measures: TimeoutMeasure;
  /** Known from a profile; a --timeout flag does not say. */
  where?: HopPlacement;
  action?: TimeoutAction;
  /** Close code (close-frame) or HTTP status (http-status) the hop sends. */
  code?: number;
}

export class TimeoutSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TimeoutSpecError';
  }
}

const SPEC_EXAMPLE = '--timeout nginx.proxy_read_timeout=60';
const DURATION_FORMS = 'e.g. 60, 60s, 1m30s, 250ms, 1h, 1.5s';

const NUM = '(\\d+(?:\\.\\d+)?)';
// Units in descending order, each at most once. `m(?!s)` keeps "250ms" from
// being read as 250 minutes followed by a stray "s".
const DURATION_RE = new RegExp(`^(?:${NUM}h)?(?:${NUM}m(?!s))?(?:${NUM}s)?(?:${NUM}ms)?$`);
const BARE_SECONDS_RE = new RegExp(`^${NUM}$`);

/**
 * Durations as profiles and flags write them: "60" (seconds), "60s", "1m30s",
 * "250ms", "1h", "1.5s", "2m"; units h, m, s, ms in descending order, each at
 * most once. Returns seconds (may be fractional). Zero is rejected: a hop
 * timer of 0 is either "disabled" or a typo, never something to count down.
 */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  let seconds: number | null = null;
  const bare = BARE_SECONDS_RE.exec(trimmed);
  if (bare) {
    seconds = Number(bare[1]);
  } else if (trimmed !== '') {
    const m = DURATION_RE.exec(trimmed);
    if (m && (m[1] ?? m[2] ?? m[3] ?? m[4]) !== undefined) {
      const part = (s: string | undefined): number => (s === undefined ? 0 : Number(s));
      seconds = part(m[1]) * 3600 + part(m[2]) * 60 + part(m[3]) + part(m[4]) / 1000;
    }
  }
  if (seconds === null || !Number.isFinite(seconds)) {
    throw new TimeoutSpecError(`invalid duration "${text}" (${DURATION_FORMS}; units h, m, s, ms in that order)`);
  }
  if (seconds <= 0) throw new TimeoutSpecError(`duration "${text}" must be greater than zero`);
  return seconds;
}

/**
 * `--timeout` flag values: NAME=DURATION[:MEASURE]. NAME is "hop.setting"
 * (hop = text before the first dot; no dot: setting ''). MEASURE defaults to
 * 'both-idle': most proxies' tunnel timers are both-way idle.
 */
export function parseTimeoutSpec(spec: string): HopTimeout {
  const fail = (what: string): never => {
    throw new TimeoutSpecError(`--timeout "${spec}": ${what}; expected NAME=DURATION[:MEASURE], e.g. ${SPEC_EXAMPLE}`);
  };
  const eq = spec.indexOf('=');
  if (eq < 0) return fail('missing "="');
  const name = spec.slice(0, eq).trim();
  const rest = spec.slice(eq + 1).trim();
  if (name === '') return fail('missing the hop name before "="');
  if (/[\s=:]/.test(name)) return fail(`the name "${name}" contains whitespace, "=" or ":"`);
  const dot = name.indexOf('.');
  const hop = dot < 0 ? name : name.slice(0, dot);
  const setting = dot < 0 ? '' : name.slice(dot + 1);
  if (hop === '') return fail(`the name "${name}" has no hop before the dot`);
  if (dot >= 0 && setting === '') return fail(`the name "${name}" has no setting after the dot`);

  // Durations never contain ":", so the first one separates the measure.
  const colon = rest.indexOf(':');
  const durationText = colon < 0 ? rest : rest.slice(0, colon);
  const measureText = colon < 0 ? null : rest.slice(colon + 1).trim();
  if (durationText.trim() === '') return fail('missing the duration after "="');
  let seconds: number;
  try {
    seconds = parseDuration(durationText);
  } catch (err) {
    return fail((err as Error).message);
  }
  let measures: TimeoutMeasure = 'both-idle';
  if (measureText !== null) {
    if (!(TIMEOUT_MEASURES as readonly string[]).includes(measureText)) {
      return fail(`unknown measure "${measureText}" (one of ${TIMEOUT_MEASURES.join(', ')})`);
    }
    measures = measureText as TimeoutMeasure;
  }
  return { hop, setting, seconds, measures };
}

/** The elapsed ms a timeout of this measure sees. */
export function elapsedFor(measure: TimeoutMeasure, idle: Idle, ageMs: number): number {
  switch (measure) {
    // A byte either way re-arms a both-way idle timer, so the more recent side counts.
    case 'both-idle':
      return Math.min(idle.client, idle.upstream);
    case 'client-idle':
      return idle.client;
    case 'upstream-idle':
      return idle.upstream;
    case 'lifetime':
      return ageMs;
  }
}

export type CountdownLevel = 'ok' | 'warn' | 'over';

const LEVEL_RANK: Record<CountdownLevel, number> = { ok: 0, warn: 1, over: 2 };

/** ratio >= 0.8 -> 'warn', ratio > 1.0 -> 'over', else 'ok'. Exactly 1.0 is still 'warn': the timer has not fired yet. */
export function levelOf(ratio: number): CountdownLevel {
  if (ratio > 1) return 'over';
  if (ratio >= 0.8) return 'warn';
  return 'ok';
}

export interface Countdown {
  timeout: HopTimeout;
  elapsedMs: number;
  remainingMs: number;
  ratio: number;
  level: CountdownLevel;
  /**
   * "nginx 60s in 12s", "nginx 60s over by 3s": the hop, the timeout, then whole
   * seconds rounded away from the deadline (0.2 s left -> "in 1s", 0.2 s over
   * -> "over by 1s") so the label never reads 0 on the wrong side.
   */
  label: string;
}

/**
 * Compact, no spaces, zero parts left out: "12s", "1m30s", "2h", "1h5s";
 * sub-second parts as "250ms"/"1s500ms" (parseDuration reads all of these
 * back). Up to and including a minute stays in seconds, so the common 60 s
 * timer reads "60s" as it is configured, not "1m".
 */
export function formatDuration(seconds: number): string {
  const totalMs = Math.round(seconds * 1000);
  if (totalMs <= 0) return '0s';
  if (totalMs <= 60_000) {
    const s = Math.floor(totalMs / 1000);
    const ms = totalMs % 1000;
    return (s ? `${s}s` : '') + (ms ? `${ms}ms` : '');
  }
  const h = Math.floor(totalMs / 3_600_000);
  const m = Math.floor((totalMs % 3_600_000) / 60_000);
  const s = Math.floor((totalMs % 60_000) / 1000);
  const ms = totalMs % 1000;
  return (h ? `${h}h` : '') + (m ? `${m}m` : '') + (s ? `${s}s` : '') + (ms ? `${ms}ms` : '');
}

export function countdownOf(timeout: HopTimeout, idle: Idle, ageMs: number): Countdown {
  const timeoutMs = timeout.seconds * 1000;
  const elapsedMs = elapsedFor(timeout.measures, idle, ageMs);
  const remainingMs = timeoutMs - elapsedMs;
  const ratio = elapsedMs / timeoutMs;
  const level = levelOf(ratio);
  const head = `${timeout.hop} ${formatDuration(timeout.seconds)}`;
  const label =
    remainingMs >= 0
      ? `${head} in ${formatDuration(Math.ceil(remainingMs / 1000))}`
      : `${head} over by ${formatDuration(Math.ceil(-remainingMs / 1000))}`;
  return { timeout, elapsedMs, remainingMs, ratio, level, label };
}

/** The countdown with the smallest remainingMs (so an expired one wins), or null when there are no timeouts. Ties keep the first listed. */
export function nearestCountdown(timeouts: readonly HopTimeout[], idle: Idle, ageMs: number): Countdown | null {
  let best: Countdown | null = null;
  for (const timeout of timeouts) {
    const c = countdownOf(timeout, idle, ageMs);
    if (best === null || c.remainingMs < best.remainingMs) best = c;
  }
  return best;
}

/** Colour for one direction's idle cell: the highest level among the timeouts this direction's silence feeds (`${side}-idle` or 'both-idle'); 'ok' when none. */
export function directionLevel(timeouts: readonly HopTimeout[], side: Side, idle: Idle, ageMs: number): CountdownLevel {
  const own: TimeoutMeasure = side === 'client' ? 'client-idle' : 'upstream-idle';
  let level: CountdownLevel = 'ok';
  for (const timeout of timeouts) {
    if (timeout.measures !== own && timeout.measures !== 'both-idle') continue;
    const l = countdownOf(timeout, idle, ageMs).level;
    if (LEVEL_RANK[l] > LEVEL_RANK[level]) level = l;
  }
  return level;
}
