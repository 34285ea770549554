import type { PausedSince, Side } from '../capture/events.js';

/**
 * Which side's reading is behind, and since when. The relay stops reading a
 * side while the other side does not take its bytes (backpressure); what
 * that side sends meanwhile, a FIN or an RST included, waits in the kernel
 * and is read only later. So a close read from a side that was behind may
 * have been sent before evidence the other side gave in the meantime: the
 * order of the two cannot be known. Close evidence carries `pausedSince`
 * (see PausedSince) so the verdict can say so.
 *
 * A side is behind from the pause until its reading has caught up: after the
 * resume, a whole turn of the event loop passes in which that side, read
 * again, delivers nothing (the kernel had nothing more of it). A resume alone
 * is not enough: the backlog is read after it, possibly across further
 * pauses, and the close comes at its end.
 *
 * Cost: nothing per chunk; per resume, one setImmediate per event-loop turn
 * until the side has caught up or is paused again (byte counters tell
 * whether it delivered anything).
 */
export class ReadBacklog {
  readonly #since: Record<Side, number | null> = { client: null, upstream: null };
  readonly #paused: Record<Side, boolean> = { client: false, upstream: false };
  readonly #checking: Record<Side, boolean> = { client: false, upstream: false };
  readonly #bytesRead: (side: Side) => number;

  /** `bytesRead(side)`: bytes read from that side so far (grows with every chunk). */
  constructor(bytesRead: (side: Side) => number) {
    this.#bytesRead = bytesRead;
  }

  /** The relay stopped reading `side` at `t`. */
  paused(side: Side, t: number): void {
    this.#paused[side] = true;
    this.#since[side] ??= t;
  }

  /** The relay reads `side` again; it stays behind until it has caught up. */
  resumed(side: Side): void {
    if (!this.#paused[side]) return;
    this.#paused[side] = false;
    if (this.#checking[side]) return;
    this.#checking[side] = true;
    // The first check only takes the baseline: the backlog is read in the next poll phase at the earliest.
    let baseline = -1;
    const check = (): void => {
      if (this.#paused[side] || this.#since[side] === null) {
        this.#checking[side] = false;
        return;
      }
      const now = this.#bytesRead(side);
      if (now === baseline) {
        this.#since[side] = null;
        this.#checking[side] = false;
        return;
      }
      baseline = now;
      setImmediate(check);
    };
    setImmediate(check);
  }

  /** The sides behind right now and since when; undefined when neither is. */
  snapshot(): PausedSince | undefined {
    const client = this.#since.client;
    const upstream = this.#since.upstream;
    if (client === null && upstream === null) return undefined;
    const out: PausedSince = {};
    if (client !== null) out.client = client;
    if (upstream !== null) out.upstream = upstream;
    return out;
  }
}
