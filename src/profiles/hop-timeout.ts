/**
 * A hop's timeout as profiles and `--timeout` flags describe it: which hop,
 * which setting, how long, what silence it measures, where the hop sits and
 * what it does when it fires (see /work/shared/timeouts.md). The profile
 * model (profile.ts) and every analysis that judges a close against hops use
 * these types; the countdowns live in analysis/countdown.ts.
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
