import type { CaptureEvent, ConnCloseEvent, EventSink, FinEvent, Idle, RstEvent, Side, SocketErrorEvent } from '../capture/events.js';
import type { EventClock } from '../capture/session-clock.js';
import { ReadBacklog } from './read-backlog.js';

/**
 * Sees a copy of every chunk after it was handed to the other side.
 * `previousByteAt` is when this direction carried its previous byte, so a
 * decoder can tell how long the direction was silent before this chunk.
 */
export type ChunkObserver = (side: Side, chunk: Buffer, t: number, previousByteAt: number) => void;

/** Close evidence, wstap's own actions on the connection and the close itself: still recorded after an observer fault (see ConnectionContext.record). */
const RECORDED_AFTER_FAULT: ReadonlySet<CaptureEvent['kind']> = new Set(['tcp.fin', 'tcp.rst', 'tcp.error', 'tcp.gap', 'proxy.takeover', 'proxy.close', 'conn.close']);
const MAX_STACK_CHARS = 2000;

/**
 * Test-only (set from WSTAP_TEST_FAULT by the CLI, never documented for
 * users): the observer of this connection throws on chunk number
 * `afterChunks + 1`, as a bug of ours in the decoder would.
 */
export interface ObserverFaultInjection {
  afterChunks: number;
}

/**
 * What the relay knows about one client connection while it lives: its id,
 * when each direction last carried a byte, and how many bytes each carried.
 * Events are stamped and recorded through it.
 *
 * It is also where observing is contained: nothing recorded or observed
 * through it throws into the socket handler that called it. The first fault
 * (an observer that throws, a sink that refuses an event) is recorded once as
 * `observer.fault`, and from then on the connection is only relayed and
 * counted: chunks are no longer observed and only close evidence is recorded.
 */
export class ConnectionContext {
  readonly lastByteAt: Record<Side, number>;
  readonly bytes = { fromClient: 0, fromUpstream: 0 };
  /** Of `bytes`, those that arrived after wstap had ended or destroyed the other side, so were not passed on. */
  readonly notRelayed = { fromClient: 0, fromUpstream: 0 };
  readonly openedAt: number;
  /** Sides whose reading is paused or catching up (backpressure); close evidence says so. */
  readonly backlog = new ReadBacklog((side) => (side === 'client' ? this.bytes.fromClient : this.bytes.fromUpstream));
  #closeRecorded = false;
  #observing = true;
  #injectedFault: ObserverFaultInjection | null = null;
  /** The connection was handed to a byte relay (upgrade or TCP), which then records its close. */
  relayed = false;

  constructor(
    readonly id: number,
    readonly clock: EventClock,
    readonly sink: EventSink,
  ) {
    this.openedAt = clock.now();
    // Before any byte, a direction has been silent since the connection opened.
    this.lastByteAt = { client: this.openedAt, upstream: this.openedAt };
  }

  /** False once the observer failed: the connection is only relayed and counted from then on. */
  get observing(): boolean {
    return this.#observing;
  }

  /** Test-only: see ObserverFaultInjection. */
  injectObserverFault(injection: ObserverFaultInjection): void {
    this.#injectedFault = { ...injection };
  }

  now(): number {
    return this.clock.now();
  }

  idleAt(t: number): Idle {
    return { client: round(t - this.lastByteAt.client), upstream: round(t - this.lastByteAt.upstream) };
  }

  /**
   * Hands a chunk (already forwarded) to `observer`, unless observing has
   * stopped; a throw stops observing this connection instead of reaching the
   * socket handler.
   */
  observe(observer: ChunkObserver, side: Side, chunk: Buffer, t: number, previousByteAt: number): void {
    if (!this.#observing) return;
    try {
      if (this.#injectedFault !== null && this.#injectedFault.afterChunks-- <= 0) {
        throw new Error(`test-only fault injected into the observer of connection ${this.id} (WSTAP_TEST_FAULT)`);
      }
      observer(side, chunk, t, previousByteAt);
    } catch (err) {
      this.fault('observe', err, side);
    }
  }

  /**
   * Runs a piece of observing code of this connection (`where` names it for
   * the fault event) so that a throw stops observing instead of escaping.
   * For paths that run once per exchange or connection, not per chunk.
   */
  guard(where: string, run: () => void): void {
    if (!this.#observing) return;
    try {
      run();
    } catch (err) {
      this.fault(where, err);
    }
  }

  /**
   * Records an event; never throws. After a fault only close evidence and
   * `conn.close` are recorded: they are built from the relay's own counters
   * and socket events, not from the observer whose state is now suspect, and
   * without them the connection would look open forever.
   */
  record(event: CaptureEvent): void {
    if (!this.#observing && !RECORDED_AFTER_FAULT.has(event.kind)) return;
    try {
      this.sink.record(event);
    } catch (err) {
      this.fault(`record ${event.kind}`, err);
    }
  }

  /** Observing this connection stops, with one `observer.fault` event; later calls do nothing. */
  fault(where: string, err: unknown, side?: Side): void {
    if (!this.#observing) return;
    this.#observing = false;
    const error = err instanceof Error ? err : new Error(String(err));
    try {
      this.sink.record({
        kind: 'observer.fault',
        t: this.now(),
        conn: this.id,
        ...(side ? { side } : {}),
        where,
        message: error.message,
        ...(error.stack ? { stack: error.stack.slice(0, MAX_STACK_CHARS) } : {}),
      });
    } catch {
      // The sink refuses even this: nothing more can be said about the connection, and relaying goes on.
    }
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
        : { kind: 'tcp.error', t, conn: this.id, side, code: err.code ?? 'ERR', message: String(err.message), idle: this.idleAt(t) };
    const pausedSince = this.backlog.snapshot();
    if (pausedSince) event.pausedSince = pausedSince;
    this.record(event);
  }

  /** Records `conn.close` once, whoever notices first. */
  recordClose(): void {
    if (this.#closeRecorded) return;
    this.#closeRecorded = true;
    const event: ConnCloseEvent = { kind: 'conn.close', t: this.now(), conn: this.id, bytes: { ...this.bytes } };
    if (this.notRelayed.fromClient > 0 || this.notRelayed.fromUpstream > 0) event.notRelayed = { ...this.notRelayed };
    this.record(event);
  }
}

function round(ms: number): number {
  return Math.max(0, Math.round(ms * 1000) / 1000);
}
