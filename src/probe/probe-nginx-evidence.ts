import { isUpgradedTimeout } from '../analysis/nginx-log-state.js';
import { isNginxTimeout } from '../analysis/timeout-nginx-log.js';
import { printable } from '../analysis/printable.js';
import type { NginxLogEvent } from '../capture/events.js';
import { errorLogText } from '../nginx/error-log-lines.js';
import type { HopTimeout } from '../profiles/hop-timeout.js';
import type { HopEvidence } from './probe-verdict.js';
import type { VariantOutcome } from './probe-variants.js';

/**
 * nginx's error log as evidence about the probe's silent connection: nginx
 * writes "upstream timed out (110: ...) while proxying upgraded connection"
 * (at `info`) when its own timer cuts an upgraded connection. A line for the
 * probe's request line within NEAR_MS of the cut says nginx fired; a log that
 * has `info` lines around the cut and no such line says nginx did not (the
 * cut came from a hop in front of it). A log without `info` lines says
 * nothing either way: no evidence then, and the verdict stays as the
 * timings and actions leave it. Pure: the caller reads the log.
 */

/** nginx logs whole seconds and writes its line a moment before the probe sees the cut. */
const NEAR_MS = 2000;
/** `info` lines this close to the cut show the log was at info level then. */
const INFO_WINDOW_MS = 10 * 60_000;

export interface ProbeLogFacts {
  evidence: HopEvidence[];
  /** What the log could not tell, for the report; null when it told. */
  note: string | null;
}

/** `lines`: the log's lines (any order); `requestLine`: "GET /path?query" as the probe sent it. */
export function probeNginxEvidence(lines: readonly NginxLogEvent[], silent: VariantOutcome | undefined, requestLine: string, hops: readonly HopTimeout[]): ProbeLogFacts {
  const nginxHops = [...new Set(hops.filter(isNginxTimeout).map((t) => t.hop))];
  if (nginxHops.length === 0) return { evidence: [], note: null };
  if (!silent?.opened || silent.clientEnd.kind === 'open') return { evidence: [], note: null };
  const cutAt = silent.openedAt + silent.livedSeconds * 1000;
  const near = (e: NginxLogEvent): boolean => e.at >= cutAt - NEAR_MS - 1000 && e.at <= cutAt + NEAR_MS;
  const fired = lines.find((e) => isUpgradedTimeout(e) && near(e) && requestOf(e).startsWith(`${requestLine} `));
  if (fired) {
    const text = `nginx's error log: "${printable(errorLogText(fired), 500)}"`;
    return { evidence: nginxHops.map((hop) => ({ hop, fired: true, text })), note: null };
  }
  const info = lines.filter((e) => e.level === 'info' && Math.abs(e.at - cutAt) <= INFO_WINDOW_MS).length;
  if (info === 0) {
    return { evidence: [], note: "nginx's error log has no info lines around the cut, so it cannot tell whether nginx's timer fired (nginx writes that line only at `error_log FILE info;`)" };
  }
  const text = `nginx's error log has ${info} info line(s) around the cut and no timeout line for "${printable(requestLine, 200)}": nginx's timer did not fire`;
  return { evidence: nginxHops.map((hop) => ({ hop, fired: false, text })), note: null };
}

/** The `request:` tail of a line ("GET /ws HTTP/1.1"), or ''. */
function requestOf(e: NginxLogEvent): string {
  return e.fields['request'] ?? '';
}
