import type { HopTimeout } from '../profiles/hop-timeout.js';
import { formatDuration } from './countdown.js';
import { timeoutLabel } from './timeout-candidates.js';

/**
 * How to find out which of several hops' timers closed a connection when
 * nothing wstap saw tells them apart: the trace the hop leaves when its timer
 * fires, where one is known (matched on the hop's name), then a test that
 * works for any hop. Pure text.
 */

/** Log lines hops are known to write when their tunnel timer fires. Only sourced ones: see profiles/nginx.yaml. */
const FIRING_TRACES: ReadonlyArray<{ hop: RegExp; trace: string }> = [
  {
    hop: /nginx/i,
    trace:
      'nginx writes "upstream timed out (110: Connection timed out) while proxying upgraded connection" to its error log, at info level only (error_log ... info); wstap --nginx-error-log FILE reads it and names the hop',
  },
];

/** What the hop leaves behind when this timer fires, or where to look when that is not known. */
export function firingTrace(t: HopTimeout): string {
  const known = FIRING_TRACES.find((k) => k.hop.test(t.hop));
  return known ? known.trace : `${t.hop}'s own logs (access or error log) for a close of this connection at that moment`;
}

/** "find out which: ...": the log lines, then a change of one setting, then a probe. */
export function tellApartText(candidates: readonly HopTimeout[]): string {
  const traces = candidates.map((t) => `${t.hop}: ${firingTrace(t)}`).join('; ');
  const [one] = candidates;
  const change = one
    ? `or raise one of them for a while (e.g. ${timeoutLabel(one)} to ${formatDuration(one.seconds * 2)}): if the next quiet connection still closes after ${formatDuration(one.seconds)}, it was not ${one.hop}`
    : '';
  const probe = 'or probe: open a WebSocket through only part of the path (straight to the inner hop) and keep it quiet past the timeout';
  return [traces, change, probe].filter((s) => s !== '').join('; ');
}

/** What to change, per candidate, once it is known which fired. */
export function perCandidateFix(candidates: readonly HopTimeout[]): string {
  const each = candidates.map((t) => `if it was ${t.hop}, raise ${t.hop}${t.setting ? ` ${t.setting}` : "'s timeout"} above the app's heartbeat interval`);
  const idle = candidates.filter((t) => t.measures !== 'lifetime');
  const shortest = idle.length > 0 ? Math.min(...idle.map((t) => t.seconds)) : null;
  const heartbeat = shortest !== null ? `; either way, a heartbeat more often than every ${formatDuration(shortest)} keeps a quiet connection open through all of them` : '';
  return `${each.join('; ')}${heartbeat}`;
}
