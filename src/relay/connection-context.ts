import type { CaptureEvent, EventSink, FinEvent, Idle, RstEvent, Side, SocketErrorEvent } from '../capture/events.js';
import type { SessionClock } from '../capture/session-clock.js';
import { ReadBacklog } from './read-backlog.js';

/**
 * What the relay knows about one client connection while it lives: its id,
 * when each direction last carried a byte, and how many bytes each carried.
 * Events are stamped and recorded through it.
 */
export class ConnectionContext {
  readonly lastByteAt: Record<Side, number>;
  readonly bytes = { fromClient: 0, fromUpstream: 0 };
  readonly openedAt: number;
  /** Sides whose reading is paused or catching up (backpressure); close evidence says so. */
  readonly backlog = new ReadBacklog((side) => (side === 'client' ? this.bytes.fromClient : this.bytes.fromUpstream));
  #closeRecorded = false;
  /** The connection was handed to a byte relay (upgrade or TCP), which then records its close. */
  relayed = false;

  constructor(
    readonly id: number,
    readonly clock: SessionClock,
    readonly sink: EventSink,
  ) {
    this.openedAt = clock.now();
    // Before any byte, a direction has been silent since the connection opened.
    this.lastByteAt = { client: this.openedAt, upstream: this.openedAt };
  }

  now(): number {
    return this.clock.now();
  }

  idleAt(t: number): Idle {
    return { client: round(t - this.lastByteAt.client), upstream: round(t - this.lastByteAt.upstream) };
  }

  record(event: CaptureEvent): void {
    this.sink.record(event);
  }

  /** A side's FIN, with both directions' silence. */
  recordFin(side: Side): void {
    const t = this.now();
    const event: FinEvent = { kind: 'tcp.fin', t, conn: this.id, side, idle: this.idleAt(t) };
    const pausedSince = this.backlog.snapshot();
    if (pausedSince) event.pausedSince = pausedSince;
    this.record(event);
  }

  /** A side's socket error: ECONNRESET is an RST, anything else an error with its code. */
  recordSocketError(side: Side, err: NodeJS.ErrnoException): void {
    const t = this.now();
    const event: RstEvent | SocketErrorEvent =
      err.code === 'ECONNRESET'
        ? { kind: 'tcp.rst', t, conn: this.id, side, idle: this.idleAt(t) }
        : { kind: 'tcp.error', t, conn: this.id, side, code: err.code ?? 'ERR', message: err.message, idle: this.idleAt(t) };
    const pausedSince = this.backlog.snapshot();
    if (pausedSince) event.pausedSince = pausedSince;
    this.record(event);
  }

  /** Records `conn.close` once, whoever notices first. */
  recordClose(): void {
    if (this.#closeRecorded) return;
    this.#closeRecorded = true;
    this.record({ kind: 'conn.close', t: this.now(), conn: this.id, bytes: { ...this.bytes } });
  }
}

function round(ms: number): number {
  return Math.max(0, Math.round(ms * 1000) / 1000);
}
