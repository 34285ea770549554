import type { Side } from '../capture/events.js';
import type { Finding } from './finding.js';
import type { Heartbeat } from '../profiles/heartbeat.js';
import type { HopTimeout } from '../profiles/hop-timeout.js';
import { formatDuration } from './countdown.js';
import type { PingCadence, PingPairing } from './ping-pairing.js';
import { DEFAULT_TOLERANCE, seconds2, timeoutLabel } from './timeout-verdict.js';

/** What the heartbeat checks look at for one connection. Times are the capture's (ms). */
export interface HeartbeatFacts {
  pings: PingPairing;
  /** The 101 (the connection became a WebSocket), or null when it never did. */
  upgradedAt: number | null;
  /** The first close evidence, or now for a connection still open. */
  endAt: number;
  closed: boolean;
  /** The timeout the close matched (timeout.match), if any. */
  closedByTimeout: HopTimeout | null;
}

/**
 * How long a ping may wait before it counts as unanswered, when no profile
 * says: RFC 6455 5.5.2 wants a pong "as soon as is practical", and the
 * common servers wait for their next ping tick (ws examples 30 s, Socket.IO
 * 20 s); 10 s flags a missing answer without calling a slow one missing.
 */
export const DEFAULT_PONG_WAIT_MS = 10_000;

const other = (side: Side): Side => (side === 'client' ? 'upstream' : 'client');

function describe(h: Heartbeat): string {
  return `${h.from} ${h.kind === 'ws-ping' ? 'pings' : 'app heartbeat messages'} every ${formatDuration(h.interval)}`;
}

/** Timeouts a heartbeat re-arms: every idle timer (the ping one way, the answer the other); a lifetime never. */
function idleTimeouts(timeouts: readonly HopTimeout[]): HopTimeout[] {
  return timeouts.filter((t) => t.measures !== 'lifetime').sort((a, b) => a.seconds - b.seconds);
}

function meanGapMs(c: PingCadence): number | null {
  if (c.sent < 2 || c.firstAt === null || c.lastAt === null) return null;
  return (c.lastAt - c.firstAt) / (c.sent - 1);
}

function cadenceLine(side: Side, c: PingCadence, upgradedAt: number): string {
  const span = c.firstAt !== null && c.lastAt !== null ? ` from +${seconds2(c.firstAt - upgradedAt)} to +${seconds2(c.lastAt - upgradedAt)}` : '';
  const mean = meanGapMs(c);
  const gaps = mean !== null ? `; mean gap ${seconds2(mean)}, longest ${seconds2(c.maxGapMs)}` : '';
  return `${side} sent ${c.sent} ping(s)${span} after the upgrade${gaps}`;
}

/** Round trips are milliseconds on a healthy path and seconds on a sick one. */
function rttText(ms: number): string {
  return ms < 1000 ? `${ms.toFixed(1)} ms` : seconds2(ms);
}

function tooSlowFix(t: HopTimeout): string {
  return `send the heartbeat more often than every ${formatDuration(t.seconds)}, or raise ${t.hop}${t.setting ? ` ${t.setting}` : "'s timeout"} above the heartbeat interval`;
}

/**
 * A profile's heartbeat against its own hops, before any traffic: a heartbeat
 * no more frequent than an idle timeout cannot keep a quiet connection open.
 */
export function heartbeatSetupFindings(heartbeat: Heartbeat | null, timeouts: readonly HopTimeout[]): Finding[] {
  if (!heartbeat) return [];
  const beaten = idleTimeouts(timeouts).filter((t) => heartbeat.interval >= t.seconds);
  const [t, ...also] = beaten;
  if (!t) return [];
  return [
    {
      id: 'heartbeat.slower-than-timeout',
      severity: 'warning',
      message: `the heartbeat (${describe(heartbeat)}) is not more frequent than ${timeoutLabel(t)}: a connection with nothing else to send is cut before the next heartbeat, or races it`,
      evidence: [`profile heartbeat: ${describe(heartbeat)}`, `${timeoutLabel(t)} measures ${t.measures}`, ...also.map((a) => `also: ${timeoutLabel(a)} (${a.measures})`)],
      fix: tooSlowFix(t),
    },
  ];
}

function pongWait(side: Side, heartbeat: Heartbeat | null): { ms: number; why: string } {
  if (heartbeat && heartbeat.from === side && heartbeat.kind === 'ws-ping') {
    if (heartbeat.timeout !== undefined) return { ms: heartbeat.timeout * 1000, why: `the profile's heartbeat timeout, ${formatDuration(heartbeat.timeout)}` };
    return { ms: heartbeat.interval * 1000, why: `the profile's heartbeat interval, ${formatDuration(heartbeat.interval)}` };
  }
  return { ms: DEFAULT_PONG_WAIT_MS, why: `${formatDuration(DEFAULT_PONG_WAIT_MS / 1000)}, wstap's default (no profile heartbeat from the ${side})` };
}

const UNANSWERED_FIX: Record<Side, string> = {
  upstream:
    "the client side does not answer the app's pings: browsers answer pings themselves, so look for a hop between the client and wstap that drops control frames, or a client library with automatic pongs turned off (RFC 6455 5.5.2 requires the pong)",
  client: "the app (or a hop between wstap and it) does not answer the client's pings: RFC 6455 5.5.2 requires a pong as soon as practical; check the app's WebSocket library",
};

function unanswered(side: Side, f: HeartbeatFacts, upgradedAt: number, heartbeat: Heartbeat | null): Finding | null {
  const c = f.pings.cadence[side];
  if (c.sent === 0) return null;
  const wait = pongWait(side, heartbeat);
  const waiting = f.pings.waiting(side);
  const stale = waiting.times.filter((t) => f.endAt - t >= wait.ms).length;
  const total = c.unanswered + stale;
  if (total === 0) return null;
  const evidence = [cadenceLine(side, c, upgradedAt), `${c.answered} answered${c.answered > 0 ? `, the slowest after ${rttText(c.maxRttMs)}` : ''}`];
  if (c.coalesced > 0) evidence.push(`${c.coalesced} more answered together with a later ping (RFC 6455 5.5.3 allows that; not counted)`);
  if (c.unanswered > 0) evidence.push(`${c.unanswered} given up on: more than 16 newer pings were waiting`);
  if (stale > 0 && waiting.oldestAt !== null) {
    evidence.push(`${stale} still waiting ${f.closed ? 'at the close' : 'now'}, the oldest for ${seconds2(f.endAt - waiting.oldestAt)} (a pong is expected within ${wait.why})`);
  }
  return {
    id: 'heartbeat.unanswered',
    severity: 'warning',
    message: `${total} of ${c.sent} ping(s) from the ${side} got no pong from the ${other(side)}`,
    evidence,
    fix: UNANSWERED_FIX[side],
  };
}

function strayPongs(side: Side, f: HeartbeatFacts, upgradedAt: number): Finding[] {
  const s = f.pings.strays[side];
  const first = s.firstAt !== null ? `first at +${seconds2(s.firstAt - upgradedAt)} after the upgrade` : '';
  const out: Finding[] = [];
  if (s.sameDirection > 0) {
    out.push({
      id: 'heartbeat.same-direction-pong',
      severity: 'warning',
      message: `${s.sameDirection} pong(s) from the ${side} carry the data of the ${side}'s own ping(s): they travelled the way the ping did, so the ${other(side)}, which received the ping, did not send them`,
      evidence: [`${s.sameDirection} pong(s) from the ${side} matching an outstanding ${side} ping; ${first}`],
      fix: `a pong answers the peer's ping (RFC 6455 5.5.3): something on the ${side} side (${side === 'client' ? 'the client library or a hop in front of wstap' : 'the app or a hop behind wstap'}) sends pongs for its own pings, while the ${other(side)} never answered`,
    });
  }
  if (s.mismatched > 0) {
    out.push({
      id: 'heartbeat.pong-mismatch',
      severity: 'warning',
      message: `${s.mismatched} pong(s) from the ${side} do not carry the data of the ping they answer: pingers that check it count the ping as unanswered`,
      evidence: [`${s.mismatched} pong(s) from the ${side} while ${other(side)} pings were waiting, none with the same data; ${first}`],
      fix: `RFC 6455 5.5.3: a pong must echo the ping's application data; check the ${side}'s WebSocket library`,
    });
  }
  if (s.unsolicited > 0) {
    out.push({
      id: 'heartbeat.unsolicited-pong',
      severity: 'info',
      message: `${s.unsolicited} pong(s) from the ${side} answered no ping: a one-way heartbeat, which RFC 6455 5.5.3 allows`,
      evidence: [`${s.unsolicited} pong(s) from the ${side} with no ${other(side)} ping waiting; ${first}`],
      fix: '',
    });
  }
  return out;
}

/** Observed cadence against the hops: pings further apart than an idle timeout. */
function cadenceTooSlow(side: Side, f: HeartbeatFacts, upgradedAt: number, timeouts: readonly HopTimeout[]): Finding | null {
  const c = f.pings.cadence[side];
  const mean = meanGapMs(c);
  if (mean === null) return null;
  const [t, ...also] = idleTimeouts(timeouts).filter((x) => mean >= x.seconds * 1000);
  if (!t) return null;
  return {
    id: 'heartbeat.slower-than-timeout',
    severity: 'warning',
    message: `pings from the ${side} came every ${seconds2(mean)} on average, not more often than ${timeoutLabel(t)}: with nothing else to send, the connection is cut between pings`,
    evidence: [cadenceLine(side, c, upgradedAt), `${timeoutLabel(t)} measures ${t.measures}`, ...also.map((a) => `also: ${timeoutLabel(a)} (${a.measures})`)],
    fix: tooSlowFix(t),
  };
}

/** The profile's heartbeat did not come in time to keep this connection from the timeout that closed it. */
function profileTooSlow(f: HeartbeatFacts, upgradedAt: number, heartbeat: Heartbeat): Finding | null {
  const t = f.closedByTimeout;
  if (!t || t.measures === 'lifetime' || heartbeat.interval < t.seconds) return null;
  const c = f.pings.cadence[heartbeat.from];
  const last = c.lastAt !== null ? `last ping from the ${heartbeat.from} ${seconds2(f.endAt - c.lastAt)} before the close` : `no ping from the ${heartbeat.from} in the ${seconds2(f.endAt - upgradedAt)} after the upgrade`;
  return {
    id: 'heartbeat.slower-than-timeout',
    severity: 'warning',
    message: `the app's heartbeat (per the profile: ${describe(heartbeat)}) is not more frequent than ${timeoutLabel(t)}, which closed this connection`,
    evidence: [`profile heartbeat: ${describe(heartbeat)}`, `the close matched ${timeoutLabel(t)} (timeout.match)`, last],
    fix: tooSlowFix(t),
  };
}

/** Observed pings against what the profile says the app does. */
function againstProfile(f: HeartbeatFacts, upgradedAt: number, heartbeat: Heartbeat): Finding[] {
  if (heartbeat.kind !== 'ws-ping') return [];
  const side = heartbeat.from;
  const c = f.pings.cadence[side];
  const out: Finding[] = [];
  const intervalMs = heartbeat.interval * 1000;
  const tolerance = Math.max(DEFAULT_TOLERANCE.fraction * intervalMs, DEFAULT_TOLERANCE.minimumMs);
  const lived = f.endAt - upgradedAt;
  if (c.sent === 0 && lived > intervalMs + tolerance) {
    const others = f.pings.cadence[other(side)].sent;
    out.push({
      id: 'heartbeat.missing',
      severity: 'warning',
      message: `no ping from the ${side} in ${seconds2(lived)}; the profile says the ${describe(heartbeat)}`,
      evidence: [`upgraded, then ${f.closed ? 'closed' : 'open'} for ${seconds2(lived)}`, `pings seen: none from the ${side}${others > 0 ? `, ${others} from the ${other(side)}` : ''}`],
      fix: `check the app's heartbeat setting, or correct heartbeat.from / heartbeat.interval in the profile`,
    });
  }
  const mean = meanGapMs(c);
  if (mean !== null && c.sent >= 3 && Math.abs(mean - intervalMs) > Math.max(0.1 * intervalMs, DEFAULT_TOLERANCE.minimumMs)) {
    out.push({
      id: 'heartbeat.interval-differs',
      severity: 'info',
      message: `pings from the ${side} come every ${seconds2(mean)} on average; the profile says every ${formatDuration(heartbeat.interval)}`,
      evidence: [cadenceLine(side, c, upgradedAt)],
      fix: 'set heartbeat.interval in the profile to what the app does (the other checks use it)',
    });
  }
  if (heartbeat.timeout !== undefined && c.maxRttMs > heartbeat.timeout * 1000) {
    out.push({
      id: 'heartbeat.late-pong',
      severity: 'warning',
      message: `the slowest pong to the ${side}'s pings took ${seconds2(c.maxRttMs)}, longer than the ${formatDuration(heartbeat.timeout)} the pinger waits (per the profile)`,
      evidence: [cadenceLine(side, c, upgradedAt), `${c.answered} answered, the slowest after ${rttText(c.maxRttMs)}`],
      fix: `find what holds the pong back (a busy ${other(side)}, a hop buffering), or raise the heartbeat timeout`,
    });
  }
  return out;
}

/**
 * The heartbeat checks for one WebSocket connection: pings that got no pong,
 * pongs from the wrong side or with the wrong data, a cadence too slow for the
 * hops' idle timeouts, and what the profile says the app does.
 */
export function heartbeatFindings(f: HeartbeatFacts, context: { timeouts: readonly HopTimeout[]; heartbeat: Heartbeat | null }): Finding[] {
  const upgradedAt = f.upgradedAt;
  if (upgradedAt === null) return [];
  const out: Finding[] = [];
  const slowSides = new Set<Side>();
  for (const side of ['upstream', 'client'] as const) {
    const miss = unanswered(side, f, upgradedAt, context.heartbeat);
    if (miss) out.push(miss);
    out.push(...strayPongs(side, f, upgradedAt));
    const slow = cadenceTooSlow(side, f, upgradedAt, context.timeouts);
    if (slow) {
      out.push(slow);
      slowSides.add(side);
    }
  }
  const heartbeat = context.heartbeat;
  if (heartbeat) {
    const slow = slowSides.has(heartbeat.from) ? null : profileTooSlow(f, upgradedAt, heartbeat);
    if (slow) out.push(slow);
    out.push(...againstProfile(f, upgradedAt, heartbeat));
  }
  return out;
}
