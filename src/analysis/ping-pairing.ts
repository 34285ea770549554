import type { Side } from '../capture/events.js';

export interface PingRoundTrip {
  /** The side that sent the ping. */
  from: Side;
  rttMs: number;
  pingAt: number;
  pongAt: number;
}

/** What one side's pings looked like: the cadence and the answers (for the heartbeat checks). */
export interface PingCadence {
  sent: number;
  answered: number;
  /**
   * Overtaken: the pong answered a later ping first. RFC 6455 5.5.3 lets an
   * endpoint answer only the most recent ping, so these are not unanswered.
   */
  coalesced: number;
  /** Given up on: pushed out of the waiting list by MAX_OUTSTANDING newer pings (a late pong for one counts as a stray). */
  unanswered: number;
  firstAt: number | null;
  lastAt: number | null;
  /** Longest gap between two consecutive pings, ms. */
  maxGapMs: number;
  /** Slowest answer, ms (0 before the first). */
  maxRttMs: number;
}

/** Pongs that answer nothing the other side sent, by the side that sent them. */
export interface StrayPongs {
  /** The (non-empty) payload of a ping this same side sent: the pong travelled the ping's way, so the receiver of the ping did not send it. */
  sameDirection: number;
  /** A ping of the other side was outstanding, but not with this payload (RFC 6455 5.5.3 wants the ping's data back). */
  mismatched: number;
  /** No ping of the other side was waiting: a one-way heartbeat, which RFC 6455 5.5.3 allows. */
  unsolicited: number;
  /** Time of the first stray pong. */
  firstAt: number | null;
}

interface OutstandingPing {
  payload: string;
  t: number;
}

/** Pings kept waiting per side; older ones are counted as unanswered. */
const MAX_OUTSTANDING = 16;

const otherSide = (side: Side): Side => (side === 'client' ? 'upstream' : 'client');

function emptyCadence(): PingCadence {
  return { sent: 0, answered: 0, coalesced: 0, unanswered: 0, firstAt: null, lastAt: null, maxGapMs: 0, maxRttMs: 0 };
}

function emptyStrays(): StrayPongs {
  return { sameDirection: 0, mismatched: 0, unsolicited: 0, firstAt: null };
}

/**
 * Pairs pings with the pongs that answer them and keeps each side's cadence.
 * RFC 6455 5.5.3: "A Pong frame sent in response to a Ping frame must have
 * identical Application data", and the pong travels the other way. O(1)
 * memory per connection: at most MAX_OUTSTANDING waiting pings per side.
 */
export class PingPairing {
  readonly #outstanding: Record<Side, OutstandingPing[]> = { client: [], upstream: [] };
  /** Pings by the side that sent them. */
  readonly cadence: Record<Side, PingCadence> = { client: emptyCadence(), upstream: emptyCadence() };
  /** Pongs that answered nothing, by the side that sent them. */
  readonly strays: Record<Side, StrayPongs> = { client: emptyStrays(), upstream: emptyStrays() };

  ping(from: Side, payload: string, t: number): void {
    const c = this.cadence[from];
    if (c.lastAt !== null) c.maxGapMs = Math.max(c.maxGapMs, t - c.lastAt);
    c.firstAt ??= t;
    c.lastAt = t;
    c.sent++;
    const list = this.#outstanding[from];
    if (list.length >= MAX_OUTSTANDING) {
      list.shift();
      c.unanswered++;
    }
    list.push({ payload, t });
  }

  /** A pong sent by `from` answers a ping sent by the other side. */
  pong(from: Side, payload: string, t: number): PingRoundTrip | null {
    const pinger = otherSide(from);
    const list = this.#outstanding[pinger];
    const index = list.findIndex((p) => p.payload === payload);
    if (index < 0) {
      const stray = this.strays[from];
      stray.firstAt ??= t;
      // An empty payload (the default of ws, gorilla and browsers' peers) matches any empty ping: not evidence of direction.
      if (payload !== '' && this.#outstanding[from].some((p) => p.payload === payload)) stray.sameDirection++;
      else if (list.length > 0) stray.mismatched++;
      else stray.unsolicited++;
      return null;
    }
    const ping = list[index] as OutstandingPing;
    const c = this.cadence[pinger];
    // Earlier pings with no answer will not get one (answers come in order): answered together with this one.
    c.coalesced += index;
    c.answered++;
    list.splice(0, index + 1);
    const rttMs = Math.round((t - ping.t) * 1000) / 1000;
    c.maxRttMs = Math.max(c.maxRttMs, rttMs);
    return { from: pinger, rttMs, pingAt: ping.t, pongAt: t };
  }

  /** Pings of one side still waiting for a pong, and when the oldest was sent. */
  waiting(side: Side): { count: number; oldestAt: number | null; times: readonly number[] } {
    const list = this.#outstanding[side];
    return { count: list.length, oldestAt: list[0]?.t ?? null, times: list.map((p) => p.t) };
  }

  /** Whether a ping of either side with this payload is waiting for its pong. */
  isWaiting(payload: string): boolean {
    return this.#outstanding.client.some((p) => p.payload === payload) || this.#outstanding.upstream.some((p) => p.payload === payload);
  }

  /** Pings given up on (not the coalesced), both sides. */
  get unanswered(): number {
    return this.cadence.client.unanswered + this.cadence.upstream.unanswered;
  }

  /** Pongs that answered nothing (same-direction, mismatched or unsolicited), both sides. */
  get unsolicitedPongs(): number {
    const sum = (s: StrayPongs): number => s.sameDirection + s.mismatched + s.unsolicited;
    return sum(this.strays.client) + sum(this.strays.upstream);
  }

  /** Pings still waiting for a pong. */
  get pending(): number {
    return this.#outstanding.client.length + this.#outstanding.upstream.length;
  }
}
