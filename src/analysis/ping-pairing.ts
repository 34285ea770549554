import type { Side } from '../capture/events.js';

export interface PingRoundTrip {
  /** The side that sent the ping. */
  from: Side;
  rttMs: number;
  pingAt: number;
  pongAt: number;
}

interface OutstandingPing {
  payload: string;
  t: number;
}

/** Pings kept waiting per side; older ones are counted as unanswered. */
const MAX_OUTSTANDING = 16;

/**
 * Pairs pings with the pongs that answer them. RFC 6455 5.5.3: "A Pong frame
 * sent in response to a Ping frame must have identical Application data", and
 * the pong travels the other way. A pong that matches nothing is unsolicited
 * (allowed as a unidirectional heartbeat).
 */
export class PingPairing {
  readonly #outstanding: Record<Side, OutstandingPing[]> = { client: [], upstream: [] };
  unanswered = 0;
  unsolicitedPongs = 0;

  ping(from: Side, payload: string, t: number): void {
    const list = this.#outstanding[from];
    if (list.length >= MAX_OUTSTANDING) {
      list.shift();
      this.unanswered++;
    }
    list.push({ payload, t });
  }

  /** A pong sent by `from` answers a ping sent by the other side. */
  pong(from: Side, payload: string, t: number): PingRoundTrip | null {
    const pinger: Side = from === 'client' ? 'upstream' : 'client';
    const list = this.#outstanding[pinger];
    const index = list.findIndex((p) => p.payload === payload);
    if (index < 0) {
      this.unsolicitedPongs++;
      return null;
    }
    const ping = list[index] as OutstandingPing;
    // Earlier pings with no answer will not get one (answers come in order).
    this.unanswered += index;
    list.splice(0, index + 1);
    return { from: pinger, rttMs: Math.round((t - ping.t) * 1000) / 1000, pingAt: ping.t, pongAt: t };
  }

  /** Pings still waiting for a pong. */
  get pending(): number {
    return this.#outstanding.client.length + this.#outstanding.upstream.length;
  }
}
