import type { CloseEvidence } from './close-attribution.js';
import { describeEvidence } from './close-attribution.js';
import type { UnansweredRequest } from './connection-tracker.js';
import type { Finding } from './finding.js';
import { printable } from './printable.js';
import { seconds2 } from './timeout-verdict.js';

/** How close the idle time must come to the app's keep-alive timeout (a profile's) to say they match: timers fire late, not early. */
const MATCH_EARLY_MS = 50;
const MATCH_LATE_FRACTION = 0.1;

export interface KeepaliveRaceFacts {
  /** The first request the app left unanswered when it closed (null: none). */
  unanswered: UnansweredRequest | null;
  evidence: readonly CloseEvidence[];
}

/**
 * `http.keepalive-race`: the app closed a reused keep-alive connection while
 * a request sent on it waited for an answer. The classic cause of nginx's
 * `upstream prematurely closed connection while reading response header`
 * 502s: the app's idle timeout for keep-alive connections (Node's default
 * `keepAliveTimeout` is 5 s) fires just as nginx, whose own timeout for
 * idle upstream connections is longer, sends the next request on it.
 *
 * Only a reused connection (the request is not its first) whose previous
 * answer had ended: a first request unanswered is another story (the app
 * crashed, refused), and so is a close in the middle of pipelined requests.
 * The idle time alone cannot tell an idle timeout from an app that closes
 * for another reason at that moment; the finding says so unless the app's
 * keep-alive timeout (`appKeepAliveMs`, from a profile) matches it.
 */
export function keepaliveRaceFinding(facts: KeepaliveRaceFacts, appKeepAliveMs: number | null): Finding | null {
  const request = facts.unanswered;
  if (!request || request.exchange < 2 || request.idleBeforeMs === null) return null;
  const close = facts.evidence.find((e) => e.side === 'upstream' && (e.kind === 'fin' || e.kind === 'rst' || e.kind === 'error'));
  if (!close) return null;
  const idle = request.idleBeforeMs;
  const afterRequestMs = close.t - request.t;
  const what = `${printable(request.method)} ${printable(request.url)}`;
  const evidence = [
    `request #${request.exchange} on this connection (${what}) came after it had been idle ${seconds2(idle)} since the answer to request #${request.exchange - 1}`,
    `the app's ${describeEvidence(close)} came ${afterRequestMs >= 0 ? `${seconds2(afterRequestMs)} after` : `${seconds2(-afterRequestMs)} before`} that request arrived, and no answer to it`,
    'nginx answers a request lost this way with 502 ("upstream prematurely closed connection while reading response header from upstream"), unless it may retry it on another connection (an idempotent method such as GET, with proxy_next_upstream error, the default)',
  ];
  let cause: string;
  if (appKeepAliveMs !== null) {
    const matches = idle >= appKeepAliveMs - MATCH_EARLY_MS && idle <= appKeepAliveMs * (1 + MATCH_LATE_FRACTION) + MATCH_EARLY_MS;
    evidence.push(`the app's keep-alive timeout (profile): ${seconds2(appKeepAliveMs)}; the idle time ${matches ? 'matches it' : 'does not match it'}`);
    cause = matches
      ? `the app's keep-alive timeout (${seconds2(appKeepAliveMs)}) closed it`
      : `the idle time does not match the app's keep-alive timeout (${seconds2(appKeepAliveMs)}): an idle timeout elsewhere, or the app closing for another reason (a restart, a crash, a connection limit), fits as well`;
  } else {
    cause = `the idle time fits an idle timeout of the app at about ${seconds2(idle)}; an app closing for another reason (a restart, a crash, a connection limit) at that moment looks the same (a profile's app.keepalive-timeout lets wstap tell)`;
  }
  return {
    id: 'http.keepalive-race',
    severity: 'error',
    message: `the app closed a reused keep-alive connection with request #${request.exchange} unanswered after ${seconds2(idle)} idle: ${cause}`,
    evidence,
    fix:
      "make the app's keep-alive timeout longer than nginx's `keepalive_timeout` in the `upstream` block (Node: server.keepAliveTimeout, default 5 s; nginx's default 60 s), " +
      "or set nginx's `keepalive_timeout` in the `upstream` block below the app's (e.g. 4s for Node's default)",
  };
}
