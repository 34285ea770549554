import type { Idle, Side } from '../capture/events.js';
import type { HopTimeout, TimeoutMeasure } from '../profiles/hop-timeout.js';

/**
 * How close a connection is to each hop's timeout. Pure: the caller supplies
 * the idle times and the age.
 */

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
