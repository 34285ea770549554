import { performance } from 'node:perf_hooks';

/** What stamps events: the live session's clock, or a packet capture's packet times. */
export interface EventClock {
  /** Epoch milliseconds with microsecond resolution. */
  now(): number;
}

/**
 * Wall-clock timestamps from one anchor plus monotonic deltas: `Date.now()`
 * alone can step (NTP) and has millisecond resolution, which would make
 * durations between frames wrong or negative.
 */
export class SessionClock implements EventClock {
  readonly #anchorEpochMs: number;
  readonly #anchorMonotonic: number;

  constructor() {
    this.#anchorMonotonic = performance.now();
    this.#anchorEpochMs = Date.now();
  }

  /** Epoch milliseconds with microsecond resolution. */
  now(): number {
    return Math.round((this.#anchorEpochMs + (performance.now() - this.#anchorMonotonic)) * 1000) / 1000;
  }
}
