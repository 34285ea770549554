import type { Idle } from '../capture/events.js';
import type { Finding } from './finding.js';
import type { HopTimeout } from '../profiles/hop-timeout.js';
import { countdownOf, formatDuration } from './countdown.js';
import { seconds2, SILENCE_WORDS, timeoutLabel } from './timeout-verdict.js';

/** Where a connection's silence is compared, once a second, to the known timeouts. */
export interface OpenConnectionState {
  conn: number;
  idle: Idle;
  ageMs: number;
}

/**
 * Flags an open connection heading for a known timeout: once per connection
 * and timeout, when its timer passes 80 % (the UI's yellow). Once only, so a
 * heartbeat that keeps arriving at 90 % of the timeout (the Mattermost 60 s
 * race) says so once per connection rather than every cycle. Pure: the caller
 * supplies idle times and calls `forget` when a connection closes.
 */
export class TimeoutWatch {
  readonly #timeouts: readonly HopTimeout[];
  readonly #warned = new Map<number, Set<HopTimeout>>();

  constructor(timeouts: readonly HopTimeout[]) {
    this.#timeouts = timeouts;
  }

  get active(): boolean {
    return this.#timeouts.length > 0;
  }

  /** Findings for timeouts this connection has just come near (or passed). */
  check(state: OpenConnectionState): readonly Finding[] {
    let out: Finding[] | null = null;
    for (const timeout of this.#timeouts) {
      const c = countdownOf(timeout, state.idle, state.ageMs);
      if (c.level === 'ok') continue;
      let warned = this.#warned.get(state.conn);
      if (warned?.has(timeout)) continue;
      if (!warned) this.#warned.set(state.conn, (warned = new Set()));
      warned.add(timeout);
      const unless = timeout.measures === 'lifetime' ? 'whatever is sent' : 'unless data flows';
      const when = c.remainingMs >= 0 ? `fires in ${seconds2(c.remainingMs)} ${unless}` : `should have fired ${seconds2(-c.remainingMs)} ago`;
      (out ??= []).push({
        id: 'timeout.approaching',
        severity: 'warning',
        message: `heading for ${timeoutLabel(timeout)}: ${SILENCE_WORDS[timeout.measures](c.elapsedMs)}; it ${when}`,
        evidence: [
          `silence so far: client->upstream ${seconds2(state.idle.client)}, upstream->client ${seconds2(state.idle.upstream)}; connection age ${seconds2(state.ageMs)}`,
          `${timeoutLabel(timeout)} measures ${timeout.measures}`,
        ],
        fix:
          timeout.measures === 'lifetime'
            ? `the connection will be ended at ${formatDuration(timeout.seconds)} of age whatever it sends; clients must reconnect`
            : `traffic (an app heartbeat) more often than every ${formatDuration(timeout.seconds)} keeps it open`,
      });
    }
    return out ?? NONE;
  }

  forget(conn: number): void {
    this.#warned.delete(conn);
  }
}

const NONE: readonly Finding[] = [];
