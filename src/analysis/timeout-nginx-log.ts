import type { NginxLogEvent } from '../capture/events.js';
import { errorLogText } from '../nginx/error-log-lines.js';
import type { HopTimeout } from '../profiles/hop-timeout.js';
import type { JoinedLine } from './nginx-log-join.js';
import { LINE_SHOWN } from './nginx-log-findings.js';
import { printable } from './printable.js';
import { isUpgradedTimeout, type NginxLogState } from './nginx-log-state.js';

/**
 * nginx's error log as evidence for a timeout verdict: the one thing that
 * separates nginx's proxy_read_timeout from a hop in front of nginx with the
 * same timer, which wstap (one leg, nginx to the app) sees alike. When
 * nginx's timer fires it writes, at `info`, "upstream timed out (110:
 * Connection timed out) while proxying upgraded connection" for that
 * connection (src/http/ngx_http_upstream.c, ngx_http_upstream_process_upgraded);
 * when the hop in front closes, nginx writes nothing (the client's FIN ends
 * the request without a log line). So:
 * - the line tied to this connection: nginx closed it; any other hop is
 *   ruled out;
 * - no such line, the log at info (it has info lines), and no timeout line
 *   left untied near the close: nginx did not fire; nginx is ruled out;
 * - a log without info lines: its silence proves nothing; say how to turn
 *   info on. A timeout line near the close that could not be tied to one
 *   connection: nothing is ruled out either; say how to tie lines exactly.
 * Pure. The verdict's caller makes sure the log was read past the close.
 */

export interface NginxCloseFacts {
  state: NginxLogState;
  /** Lines tied to this connection. */
  lines: readonly JoinedLine[];
}

export interface NginxLogJudgement {
  /** The timeout line tied to this connection when nginx's own timer closed it. */
  fired: JoinedLine | null;
  /** Why the log rules this timeout out, or null when it does not. */
  rulesOut(t: HopTimeout): string | null;
  /** What the log showed, for the verdict's evidence. */
  evidence: string[];
  /** How to make the log tell next time, when it could not; null when it could. */
  advice: string | null;
}

/** A timeout of nginx itself: a hop named nginx (ingress-nginx too), or one of nginx's proxy timers by its directive. */
export function isNginxTimeout(t: HopTimeout): boolean {
  return /nginx/i.test(t.hop) || /^proxy_(read|send)_timeout$/.test(t.setting);
}

/** A timeout line near the close (nginx logs whole seconds: within 2 s of the close's second). */
const NEAR_MS = 2000;

function quote(e: NginxLogEvent): string {
  return `"${printable(errorLogText(e), LINE_SHOWN)}"`;
}

function logName(state: NginxLogState): string {
  return state.files.length > 0 ? printable(state.files.join(', ')) : 'the nginx error log';
}

export function judgeByNginxLog(facts: NginxCloseFacts, closeAt: number): NginxLogJudgement {
  const { state } = facts;
  const fired = facts.lines.find((l) => isUpgradedTimeout(l.event)) ?? null;
  if (fired) {
    return {
      fired,
      rulesOut: (t) => (isNginxTimeout(t) ? null : `is not nginx, and nginx's error log says nginx's own timer closed this connection`),
      evidence: [`nginx's error log: ${quote(fired.event)} (tied to this connection ${fired.how}): nginx's timer fired and nginx closed it`],
      advice: null,
    };
  }
  const closeSecond = Math.floor(closeAt / 1000) * 1000;
  const untied = state.untiedTimeouts.find((u) => Math.abs(u.event.at - closeSecond) <= NEAR_MS);
  if (untied) {
    return {
      fired: null,
      rulesOut: () => null,
      evidence: [
        `nginx's error log has a timeout line at ${untied.event.time} that could not be tied to one connection (${untied.fits === 0 ? 'none fit' : `${untied.fits} fit`}): ${quote(untied.event)}; so its absence here proves nothing`,
      ],
      advice: "add `proxy_set_header X-Nginx-Connection $connection;` to nginx's location so each log line names its connection exactly",
    };
  }
  if (state.infoLines === 0) {
    return {
      fired: null,
      rulesOut: () => null,
      evidence: [
        `${logName(state)} holds no info-level lines (${state.lines} line(s) read): nginx writes the timeout of an upgraded connection only at info, so its silence cannot tell whether nginx fired`,
      ],
      advice: `log nginx's errors at info (\`error_log ${printable(state.files[0] ?? '/var/log/nginx/error.log')} info;\`) so its timeout line, or its absence, tells whether nginx fired`,
    };
  }
  const level = `${state.infoLines} info line(s) read, the last at ${state.lastInfoTime ?? '?'}`;
  return {
    fired: null,
    rulesOut: (t) =>
      isNginxTimeout(t) ? `wrote no timeout line for this connection, and nginx's error log is at info (${level}), where that line would be: nginx's timer did not fire` : null,
    evidence: [`${logName(state)} logs at info (${level}) and has no timeout line for this connection: nginx did not close it by its timer`],
    advice: null,
  };
}
