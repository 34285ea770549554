import { formatDuration } from '../analysis/countdown.js';
import { printable } from '../analysis/printable.js';
import { DEFAULT_TOLERANCE, firingWords, timeoutLabel } from '../analysis/timeout-candidates.js';
import { tellApartText } from '../analysis/timeout-tell-apart.js';
import type { HopTimeout, TimeoutMeasure } from '../profiles/hop-timeout.js';
import type { ProxyEndEvent } from '../relay/probe-protocol.js';
import { VARIANTS, type ClientEnd, type VariantName, type VariantOutcome } from './probe-variants.js';

/**
 * What a probe run says about the path: its effective idle timeout (when the
 * silent variant was cut), which kinds of traffic keep a connection open,
 * and which of the profile's hops can have cut it. Pure: outcomes in,
 * verdict out.
 *
 * A hop is named only when everything seen fits it: its timeout against how
 * long the silent connection lived, what its timer counts against which
 * traffic variants survived, its action (FIN, RST, close frame, HTTP status)
 * against how the probe's end saw the cut, and any other evidence about it
 * (the seam for nginx's error log: `HopEvidence`). Two that fit equally are
 * both named; one is never promoted over the other.
 */

/**
 * Evidence about one hop from another source, e.g. nginx's error log: its
 * timeout line at the cut (fired) or its absence in a log known to be
 * complete at that level (did not fire). `text` is quoted in the verdict.
 */
export interface HopEvidence {
  hop: string;
  fired: boolean;
  text: string;
}

export interface ProbeVerdictInput {
  outcomes: readonly VariantOutcome[];
  /** How long an open connection was held: --max, or less when the run was stopped (`stopped`). */
  maxSeconds: number;
  /** Ctrl-C ended the run before --max: what was open is open "until stopped". */
  stopped?: boolean;
  intervalSeconds: number;
  /** With --token the connections ended at wstap: hops between wstap and the app were not on the path. */
  withToken: boolean;
  /** The profile's timeouts (none: no hop is named). */
  hops: readonly HopTimeout[];
  evidence?: readonly HopEvidence[];
}

export type TrafficFate = 'keeps-open' | 'cut-like-silent' | 'cut-later' | 'cut-sooner' | 'cut' | 'not-tested';

export interface TrafficResult {
  variant: VariantName;
  fate: TrafficFate;
  text: string;
}

export interface RuledOutHop {
  timeout: HopTimeout;
  reason: string;
}

export interface ProbeVerdict {
  /** The silent variant's life, to 0.1 s; null when it was not cut before --max or never opened. */
  idleTimeoutSeconds: number | null;
  traffic: TrafficResult[];
  /** Hops that fit what was seen, and the others with the fact that rules each out (empty without a cut). */
  hops: { fitting: HopTimeout[]; ruledOut: RuledOutHop[] };
  /** The verdict, one sentence a line. */
  lines: string[];
}

/** The time a variant was cut, in seconds, or null (held to --max, or never opened). */
export function cutAfter(o: VariantOutcome): number | null {
  return o.opened && o.clientEnd.kind !== 'open' ? o.livedSeconds : null;
}

function toleranceSeconds(seconds: number): number {
  return Math.max(DEFAULT_TOLERANCE.fraction * seconds, DEFAULT_TOLERANCE.minimumMs / 1000);
}

function s1(seconds: number): string {
  return `${seconds.toFixed(1)} s`;
}

/** How the probe saw an end: "a FIN", "a close frame 1001", "HTTP 403". */
export function endWords(end: ClientEnd): string {
  switch (end.kind) {
    case 'fin':
      return 'a FIN';
    case 'rst':
      return 'an RST';
    case 'close-frame':
      return `a close frame${end.code !== undefined ? ` ${end.code}` : ' without a code'}`;
    case 'http':
      return `HTTP ${end.code ?? '?'} at the handshake`;
    case 'error':
      return `an error (${printable(end.error ?? 'unknown', 120)})`;
    case 'open':
      return 'still open';
  }
}

export function buildProbeVerdict(input: ProbeVerdictInput): ProbeVerdict {
  const silent = input.outcomes.find((o) => o.name === 'silent');
  if (!silent || !silent.opened) {
    const why = silent ? endWords(silent.clientEnd) : 'no silent variant';
    return { idleTimeoutSeconds: null, traffic: [], hops: { fitting: [], ruledOut: [] }, lines: [`Could not measure: the silent connection did not open (${why}).`] };
  }
  const cut = cutAfter(silent);
  const traffic = input.outcomes.filter((o) => o.name !== 'silent').map((o) => trafficResult(o, cut, input));
  const lines: string[] = [];
  if (cut === null) {
    lines.push(
      input.stopped
        ? `No idle timeout in the ${s1(silent.livedSeconds)} the probe ran (stopped before --max): the silent connection was still open.`
        : `No idle timeout up to --max (${formatDuration(input.maxSeconds)}): the silent connection was still open.`,
    );
    return { idleTimeoutSeconds: null, traffic, hops: { fitting: [], ruledOut: [] }, lines: [...lines, ...traffic.map((t) => t.text)] };
  }
  const idle = Math.round(cut * 10) / 10;
  lines.push(`The path's effective idle timeout is ${s1(cut)}: the silent connection was cut with ${endWords(silent.clientEnd)} after ${s1(cut)}.`);
  const atWstap = proxyEndLine(silent);
  if (atWstap !== null) lines.push(atWstap);
  lines.push(...traffic.map((t) => t.text), heartbeatLine(traffic, cut, input));
  const hops = judgeHops(silent, cut, input);
  lines.push(...hopLines(hops, silent, cut, input));
  return { idleTimeoutSeconds: idle, traffic, hops, lines };
}

/** What wstap's end saw of the silent connection's cut (with --token), in one sentence. */
function proxyEndLine(silent: VariantOutcome): string | null {
  if (!silent.proxy) return null;
  const first = silent.proxy.ends[0];
  if (!first) {
    return "wstap's end still had the silent connection open when asked: the cut did not reach wstap (a hop in front holds its side open), or it had not yet.";
  }
  const at = `${s1((first.t - silent.openedAt) / 1000)} after the probe's 101 (wstap's clock, assumed the probe's: same host)`;
  if (first.side === 'proxy') return `wstap's own end closed the silent connection first (${proxyEndWords(first)}), ${at}.`;
  return `wstap's end saw ${proxyEndWords(first)} from the client side ${at}: the cut came from the path in front of wstap.`;
}

function proxyEndWords(end: ProxyEndEvent): string {
  return endWords({ kind: end.kind, ...(end.code !== undefined ? { code: end.code } : {}), ...(end.error !== undefined ? { error: end.error } : {}) });
}

function trafficResult(o: VariantOutcome, silentCut: number | null, input: ProbeVerdictInput): TrafficResult {
  const words = `${o.name} (${VARIANTS.find((v) => v.name === o.name)?.traffic ?? o.name} every ${formatDuration(input.intervalSeconds)})`;
  if (!o.opened) return { variant: o.name, fate: 'not-tested', text: `${words}: not tested, its handshake failed (${endWords(o.clientEnd)}).` };
  const cut = cutAfter(o);
  if (cut === null) return { variant: o.name, fate: 'keeps-open', text: `${words}: kept the connection open until ${input.stopped ? 'the probe was stopped' : '--max'} (${s1(o.livedSeconds)}).` };
  const how = endWords(o.clientEnd);
  if (silentCut === null) return { variant: o.name, fate: 'cut', text: `${words}: cut with ${how} after ${s1(cut)}, though the silent one was not.` };
  const tolerance = toleranceSeconds(silentCut);
  if (Math.abs(cut - silentCut) <= tolerance) {
    return { variant: o.name, fate: 'cut-like-silent', text: `${words}: cut with ${how} after ${s1(cut)}, as the silent one: this traffic does not keep the connection open.` };
  }
  if (cut > silentCut) {
    return {
      variant: o.name,
      fate: 'cut-later',
      text: `${words}: cut with ${how} after ${s1(cut)}, later than the silent one: it re-arms the first timer, but something else cut it (a lifetime limit, or a timer that does not count this traffic).`,
    };
  }
  return { variant: o.name, fate: 'cut-sooner', text: `${words}: cut with ${how} after ${s1(cut)}, sooner than the silent one (${s1(silentCut)}).` };
}

function heartbeatLine(traffic: readonly TrafficResult[], cut: number, input: ProbeVerdictInput): string {
  if (input.intervalSeconds >= cut) {
    return `The interval (${formatDuration(input.intervalSeconds)}) is not shorter than the timeout (${s1(cut)}): the traffic variants say nothing; run again with --interval below ${s1(cut)}.`;
  }
  const keeping = traffic.filter((t) => t.fate === 'keeps-open').map((t) => VARIANTS.find((v) => v.name === t.variant)?.traffic ?? t.variant);
  const tested = traffic.filter((t) => t.fate !== 'not-tested');
  if (tested.length === 0) return 'No traffic variant could be tested.';
  if (keeping.length === 0) {
    return `None of the tested kinds of traffic kept the connection open: an app heartbeat cannot help here, something cuts connections after about ${s1(cut)} whatever they carry.`;
  }
  return `An app heartbeat keeps connections open on this path if it is ${keeping.join(', or ')}, sent more often than every ${s1(cut)} (tested every ${formatDuration(input.intervalSeconds)}).`;
}

/** Whether a timer that counts `measure` would cut this variant at its timeout although the variant carries traffic. */
function cutsDespiteTraffic(measure: TimeoutMeasure, name: VariantName, withToken: boolean): boolean {
  switch (measure) {
    case 'lifetime':
      return true;
    case 'both-idle':
      return false;
    case 'client-idle':
      // Nothing from the client side: server messages (server pings are answered by the client's pongs).
      return name === 'server-messages';
    case 'upstream-idle':
      // Nothing from the server side: the client's messages, when wstap's end is known to stay silent (an app might answer).
      return name === 'client-messages' && withToken;
  }
}

function actionFits(t: HopTimeout, end: ClientEnd): boolean {
  const action = t.action ?? 'unknown';
  if (action === 'unknown' || end.kind === 'error') return true;
  switch (action) {
    case 'fin':
      return end.kind === 'fin';
    case 'rst':
      return end.kind === 'rst';
    case 'close-frame':
      return end.kind === 'close-frame' && (t.code === undefined || end.code === undefined || t.code === end.code);
    case 'http-status':
      // An HTTP answer refuses a handshake; it cannot end an open connection.
      return false;
  }
}

function judgeHops(silent: VariantOutcome, cut: number, input: ProbeVerdictInput): ProbeVerdict['hops'] {
  const fitting: HopTimeout[] = [];
  const ruledOut: RuledOutHop[] = [];
  const evidence = input.evidence ?? [];
  for (const t of input.hops) {
    const reason = ruleOut(t, silent, cut, input, evidence);
    if (reason === null) fitting.push(t);
    else ruledOut.push({ timeout: t, reason });
  }
  // Evidence that a hop fired separates it from others that fit as well.
  const fired = fitting.filter((t) => evidence.some((e) => e.hop === t.hop && e.fired));
  if (fired.length === 0 || fired.length === fitting.length) return { fitting, ruledOut };
  const named = fired.map((t) => t.hop).join(', ');
  for (const t of fitting) if (!fired.includes(t)) ruledOut.push({ timeout: t, reason: `fits the timing, but ${named}'s own log shows it fired` });
  return { fitting: fired, ruledOut };
}

function ruleOut(t: HopTimeout, silent: VariantOutcome, cut: number, input: ProbeVerdictInput, evidence: readonly HopEvidence[]): string | null {
  if (input.withToken && t.where === 'upstream-side') return 'sits between wstap and the app, and with --token the probe ended at wstap';
  if (Math.abs(cut - t.seconds) > toleranceSeconds(t.seconds)) return `fires after ${formatDuration(t.seconds)}, and the silent connection was cut after ${s1(cut)}`;
  for (const o of input.outcomes) {
    if (o.name === 'silent' || !o.opened || !cutsDespiteTraffic(t.measures, o.name, input.withToken)) continue;
    if (o.livedSeconds > t.seconds + toleranceSeconds(t.seconds)) {
      return `measures ${t.measures}, so it would have cut ${o.name} after ${formatDuration(t.seconds)} too, which lived ${s1(o.livedSeconds)}`;
    }
  }
  if (!actionFits(t, silent.clientEnd)) return `${firingWords(t)}, and the probe saw ${endWords(silent.clientEnd)}`;
  // The hop next to wstap hands its action to wstap directly (hops further out reach wstap through it, which may turn an RST into a FIN).
  const atWstap = silent.proxy?.ends[0];
  if (atWstap?.side === 'client' && t.hop === hopNextToWstap(input.hops)) {
    const seen: ClientEnd = { kind: atWstap.kind, ...(atWstap.code !== undefined ? { code: atWstap.code } : {}) };
    if (!actionFits(t, seen)) return `is the hop next to wstap and ${firingWords(t)}, and wstap's end saw ${proxyEndWords(atWstap)}`;
  }
  const against = evidence.find((e) => e.hop === t.hop && !e.fired);
  if (against) return `its own log says it did not fire: ${against.text}`;
  return null;
}

/** The name of the last client-side hop of the profile (hops are listed users first): the one wstap's client side talks to. */
function hopNextToWstap(hops: readonly HopTimeout[]): string | undefined {
  const front = hops.filter((t) => t.where === 'client-side');
  return front[front.length - 1]?.hop;
}

function hopLines(hops: ProbeVerdict['hops'], silent: VariantOutcome, cut: number, input: ProbeVerdictInput): string[] {
  if (input.hops.length === 0) return ['Which hop cut it: give --profile (the path\'s hops and their timeouts) to have it named.'];
  const seen = endWords(silent.clientEnd);
  const ruled = hops.ruledOut.map((r) => `Not ${timeoutLabel(r.timeout)}: it ${r.reason}.`);
  const [one, ...more] = hops.fitting;
  if (!one) return [`No hop of the profile fits: a timer the profile does not list cut it after ${s1(cut)} with ${seen}.`, ...ruled];
  const evidence = (input.evidence ?? []).filter((e) => e.fired && hops.fitting.some((t) => t.hop === e.hop)).map((e) => ` (${e.text})`);
  if (more.length === 0) return [`Cut by ${timeoutLabel(one)} (${one.where ?? 'side not known'}), which ${firingWords(one)}; the probe saw ${seen}${evidence.join('')}.`, ...ruled];
  const names = hops.fitting.map(timeoutLabel).join(' or ');
  return [`Cut by ${names}: each fits what was seen (${s1(cut)}, the traffic that survived, ${seen}); the probe cannot tell them apart. To find out which: ${tellApartText(hops.fitting)}.`, ...ruled];
}
