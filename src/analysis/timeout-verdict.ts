import type { Idle } from '../capture/events.js';
import { describeEvidence, type CloseAttribution } from './close-attribution.js';
import type { Finding } from './finding.js';
import type { HopTimeout, TimeoutMeasure } from '../profiles/hop-timeout.js';
import { elapsedFor, formatDuration } from './countdown.js';
import { DEFAULT_TOLERANCE, firingWords, judgeTimeouts, MEASURE_WORDS, seconds2, seenWords, timeoutLabel, type RuledOut, type TimeoutMatch } from './timeout-candidates.js';
import { perCandidateFix, tellApartText } from './timeout-tell-apart.js';
import { judgeByNginxLog, isNginxTimeout, type NginxCloseFacts, type NginxLogJudgement } from './timeout-nginx-log.js';

export { DEFAULT_TOLERANCE, matchingTimeouts, seconds2, timeoutLabel, type TimeoutMatch } from './timeout-candidates.js';

/** "2.00 s without data either way": what a timer of this measure saw. */
export const SILENCE_WORDS: Record<TimeoutMeasure, (elapsedMs: number) => string> = {
  'both-idle': (ms) => `${seconds2(ms)} without data either way`,
  'client-idle': (ms) => `${seconds2(ms)} without client->upstream data`,
  'upstream-idle': (ms) => `${seconds2(ms)} without upstream->client data`,
  lifetime: (ms) => `${seconds2(ms)} of life`,
};

function silenceFacts(idle: Idle, ageMs: number): string {
  return `silence before it: client->upstream ${seconds2(idle.client)}, upstream->client ${seconds2(idle.upstream)}; connection age ${seconds2(ageMs)}`;
}

/** "ruled out: aws-alb idle_timeout.timeout_seconds 2s sends an RST when it fires and a FIN was seen". */
function ruledOutLine(r: RuledOut): string {
  return `ruled out: ${timeoutLabel(r.timeout)} ${r.reason}`;
}

/** One candidate of an ambiguous close: where it sits, what it counts, what it saw, how it closes. */
function candidateLine(m: TimeoutMatch): string {
  const t = m.timeout;
  const where = t.where ? `on the ${t.where} of wstap` : 'placement not known (a --timeout flag)';
  return (
    `candidate: ${timeoutLabel(t)}, ${where}, counts ${MEASURE_WORDS[t.measures]}: ${seconds2(m.elapsedMs)} at the close ` +
    `(off by ${seconds2(Math.abs(m.deltaMs))}); ${firingWords(t)}`
  );
}

/** Why the observed facts do not separate the candidates: each check, and that every candidate passed it. */
function notToldApart(fitting: readonly TimeoutMatch[], attribution: CloseAttribution, log: NginxLogJudgement | null): string {
  const first = attribution.first;
  const ts = fitting.map((m) => m.timeout);
  const placed = ts.every((t) => t.where) ? `each sits on that side` : `each sits there or its place is not known`;
  const unknown = ts.some((t) => (t.action ?? 'unknown') === 'unknown') ? '; an unknown action fits anything' : '';
  return (
    `not told apart by: side (the close came from the ${attribution.closedBy} side; ${placed}), ` +
    `action (${first ? seenWords(first) : 'the close'} fits what each sends${unknown}), ` +
    `silence (what each timer counts was within tolerance of its timeout)` +
    (log ? `, nginx's error log (see above)` : '')
  );
}

/**
 * The timeout verdict for a closed connection: which known timeout explains
 * the close (timeout.match, only when every other one is ruled out by what
 * was observed), which several fit equally (timeout.ambiguous, naming none
 * as the cause), or the numbers when none does (timeout.none). Null when
 * there is nothing to judge (no close evidence, no timeouts known, wstap
 * itself ended it, or the order of the two sides' closes is unknown).
 */
export function timeoutVerdict(
  timeouts: readonly HopTimeout[],
  attribution: CloseAttribution,
  openedAt: number,
  tolerance = DEFAULT_TOLERANCE,
  nginx: NginxCloseFacts | null = null,
): Finding | null {
  const first = attribution.first;
  const idle = attribution.idleBeforeCloseMs;
  // closedBy null with evidence: the order is unknown (backpressure), so no side's timer can be named.
  if (!first || !idle || timeouts.length === 0 || attribution.closedBy === 'proxy' || attribution.closedBy === null) return null;
  const ageMs = first.t - openedAt;
  const how = `${attribution.closedBy} side (${describeEvidence(first).replace(/^(client|upstream) /, '')})`;
  const judged = nginxJudgement(nginx, timeouts, first.t);
  const { fitting, ruledOut } = judgeTimeouts(timeouts, attribution, ageMs, tolerance, judged);
  // The log is worth a word when it named or ruled out a hop, or could have (an nginx timeout fits everything else).
  const log = judged && (judged.fired || ruledOut.some((r) => r.why === 'log') || fitting.some((m) => isNginxTimeout(m.timeout))) ? judged : null;
  const evidence = [`first close evidence: ${describeEvidence(first)} at +${seconds2(ageMs)}`, silenceFacts(idle, ageMs), ...(log?.evidence ?? [])];
  const advice = log?.advice ? `; ${log.advice}` : '';
  const [best, ...others] = fitting;
  if (best && others.length > 0) {
    const candidates = fitting.map((m) => m.timeout);
    return {
      id: 'timeout.ambiguous',
      severity: 'warning',
      message:
        `closed by ${how} after client->upstream ${seconds2(idle.client)}, upstream->client ${seconds2(idle.upstream)} of silence: ` +
        `${fitting.length} timeouts fit and nothing observed tells them apart: ${candidates.map(timeoutLabel).join(', ')}`,
      evidence: [...evidence, ...fitting.map(candidateLine), notToldApart(fitting, attribution, log), ...ruledOut.filter((r) => r.why !== 'silence').map(ruledOutLine)],
      fix: `find out which fired: ${log?.advice ? `${log.advice}; or ` : ''}${tellApartText(candidates)}; then ${perCandidateFix(candidates)}`,
    };
  }
  if (best) {
    const t = best.timeout;
    return {
      id: 'timeout.match',
      severity: 'warning',
      message: `closed by ${how} after ${SILENCE_WORDS[t.measures](best.elapsedMs)}: matches ${timeoutLabel(t)}`,
      evidence: [
        ...evidence,
        `${timeoutLabel(t)} measures ${t.measures}; off by ${seconds2(Math.abs(best.deltaMs))}; ${firingWords(t)}`,
        ...ruledOut.map(ruledOutLine),
      ],
      fix: `if the connection should survive ${formatDuration(t.seconds)} of quiet, raise ${t.hop}${t.setting ? ` ${t.setting}` : "'s timeout"} above the app's heartbeat interval, or make the app send a heartbeat more often than every ${formatDuration(t.seconds)}${advice}`,
      timeout: { hop: t.hop, setting: t.setting },
    };
  }
  const nearest = timeouts.map((t) => {
    const line = `${timeoutLabel(t)}: ${t.measures} was ${seconds2(elapsedFor(t.measures, idle, ageMs))}`;
    const r = ruledOut.find((x) => x.timeout === t);
    return r && r.why !== 'silence' ? `${line}, but it ${r.reason}` : line;
  });
  return {
    id: 'timeout.none',
    severity: 'info',
    message: `closed by ${how} after ${seconds2(Math.min(idle.client, idle.upstream))} without data either way: matches no known timeout`,
    evidence: [...evidence, ...nearest],
    fix: log?.advice ?? '',
  };
}

/** The one timeout a timeout.match names (judged as timeoutVerdict judges), or null. */
export function matchedTimeout(timeouts: readonly HopTimeout[], attribution: CloseAttribution, openedAt: number, nginx: NginxCloseFacts | null = null): HopTimeout | null {
  const first = attribution.first;
  if (!first) return null;
  const { fitting } = judgeTimeouts(timeouts, attribution, first.t - openedAt, DEFAULT_TOLERANCE, nginxJudgement(nginx, timeouts, first.t));
  return fitting.length === 1 ? (fitting[0] as TimeoutMatch).timeout : null;
}

/** What nginx's log says about this close, when a log is read beside the session and it bears on nginx (a timeout of nginx's is known, or its line is there). */
function nginxJudgement(nginx: NginxCloseFacts | null, timeouts: readonly HopTimeout[], closeAt: number): NginxLogJudgement | null {
  if (!nginx) return null;
  const log = judgeByNginxLog(nginx, closeAt);
  return log.fired || timeouts.some(isNginxTimeout) ? log : null;
}
