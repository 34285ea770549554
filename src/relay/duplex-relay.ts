import type net from 'node:net';
import type { Side } from '../capture/events.js';
import type { ChunkObserver, ConnectionContext } from './connection-context.js';
import { tcpBeneath } from './tcp-beneath.js';

export type { ChunkObserver } from './connection-context.js';

export interface DuplexRelayOptions {
  observe: ChunkObserver;
  /**
   * Both sockets have closed; call `done` when everything the observer still
   * has to record about the connection is recorded (asynchronous inflating),
   * so `conn.close` stays the connection's last event.
   */
  settle?: (done: () => void) => void;
  /**
   * A side ended (its FIN, RST or socket error, already recorded as
   * evidence): observer code, contained like observe, so a parser can end
   * what the end ends (an answer read until close, a request left unanswered).
   */
  ended?: (side: Side, how: 'fin' | 'rst' | 'error', t: number) => void;
  /** Called once when both sockets have closed, after `conn.close` was recorded. */
  onClosed?: () => void;
  /**
   * Decides which client bytes go on now (an HTTP relay with --probe-token:
   * later-request-gate.ts). Absent, every chunk is forwarded as it comes and
   * nothing more is done per chunk.
   */
  clientGate?: ClientGate;
}

/** What sits on the client->upstream path when one does (see DuplexRelayOptions.clientGate). Never throws. */
export interface ClientGate {
  /** A client chunk arrived at `t`: the bytes to forward now, in order; the rest stays with the gate. */
  client(chunk: Buffer, t: number): readonly Buffer[];
  /** An upstream chunk was passed on to the client. */
  upstream(chunk: Buffer, t: number): void;
  /** A side's FIN, RST or error was recorded (and passed on). */
  ended(side: Side, how: 'fin' | 'rst' | 'error', t: number): void;
  /** Called after each chunk was passed on, either way: the gate may act now (it may detach the relay). */
  afterForward(): void;
  /** While true the client is not read. */
  readonly holdsClient: boolean;
  /** True once the gate lets every byte through for good (after a 101): the relay then drops it from its path. */
  readonly passesAll: boolean;
}

type Listener = Parameters<net.Socket['removeListener']>[1];

/**
 * Pipes two sockets both ways, byte for byte, and records the close evidence
 * of each side: a FIN is passed on as a FIN (`end()`, half-close kept), an RST
 * as an RST (`resetAndDestroy()` on the TCP socket, the one under TLS where
 * there is TLS, or a plain close if a FIN is still being sent that way, see
 * resetOrDestroy), any other socket error as an RST too, since
 * the connection it belonged to is gone.
 *
 * Both sockets must have been created with `allowHalfOpen: true` (a TLS
 * socket takes it from the TCP socket it wraps).
 */
export class DuplexRelay {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  #open = 2;
  readonly #ctx: ConnectionContext;
  readonly #options: DuplexRelayOptions;
  /** Every listener this relay put on either socket, for detach(). */
  readonly #listeners: Array<[net.Socket, string, Listener]> = [];
  /** The client is paused because the gate holds it (not backpressure). */
  #gateHolds = false;
  #detached = false;
  /** The gate's own listeners, taken off once it passes everything (#ungate), and the plain client listener that replaces them. */
  readonly #gateListeners: Array<[net.Socket, string, Listener]> = [];
  #plainClientData: Listener | null = null;

  constructor(ctx: ConnectionContext, client: net.Socket, upstream: net.Socket, options: DuplexRelayOptions) {
    this.#ctx = ctx;
    this.client = client;
    this.upstream = upstream;
    this.#options = options;
  }

  start(): void {
    this.#wire('client', this.client, this.upstream);
    this.#wire('upstream', this.upstream, this.client);
  }

  /** wstap ends the connection itself (shutdown): recorded as evidence from the proxy. */
  shutdown(reason: string): void {
    if (this.#open === 0) return;
    const t = this.#ctx.now();
    this.#ctx.record({ kind: 'proxy.close', t, conn: this.#ctx.id, reason, idle: this.#ctx.idleAt(t) });
    this.client.end();
    this.upstream.end();
    const force = setTimeout(() => {
      this.client.destroy();
      this.upstream.destroy();
    }, 500);
    force.unref();
  }

  /**
   * Passes client chunks through the gate (the gate is fed the client's
   * stream in order: the held bytes first, then the socket's). The client
   * must be paused; it is resumed here unless the gate holds it.
   */
  startGated(held: readonly { chunk: Buffer; t: number }[]): void {
    this.start();
    let previousByteAt = this.#ctx.openedAt;
    for (const { chunk, t } of held) {
      if (this.#detached) return;
      this.#gatedClientChunk(chunk, t, previousByteAt);
      previousByteAt = t;
    }
    if (!this.#detached && !this.#gateHolds) this.client.resume();
  }

  /**
   * Takes every listener of this relay off both sockets: from here on
   * someone else owns them (the probe responder takes the client) and this
   * relay records nothing more, not even the close. Sides left paused by
   * backpressure are no longer behind on this relay's account. Only a relay
   * with a clientGate can be detached: only its listeners are kept.
   */
  detach(): void {
    if (!this.#options.clientGate) throw new Error(`connection ${this.#ctx.id}: DuplexRelay.detach() needs a clientGate (only then are its listeners kept)`);
    this.#detached = true;
    for (const [socket, event, listener] of this.#listeners) socket.removeListener(event, listener);
    this.#listeners.length = 0;
    this.#ctx.backlog.resumed('client');
    this.#ctx.backlog.resumed('upstream');
  }

  #on(socket: net.Socket, event: string, listener: Listener): void {
    socket.on(event, listener);
    // Kept for detach() only, which only a gated relay needs: an idle connection without one carries no list (bench (d)).
    if (this.#options.clientGate) this.#listeners.push([socket, event, listener]);
  }

  /** A client chunk through the gate: what it lets go is forwarded and observed as any chunk. */
  #gatedClientChunk(chunk: Buffer, t: number, previousByteAt: number): void {
    const gate = this.#options.clientGate as ClientGate;
    const ctx = this.#ctx;
    let previous = previousByteAt;
    for (const piece of gate.client(chunk, t)) {
      let paused = false;
      if (this.upstream.writableEnded || this.upstream.destroyed) ctx.notRelayed.fromClient += piece.length;
      else if (!this.upstream.write(piece)) {
        this.client.pause();
        paused = true;
      }
      if (paused) ctx.backlog.paused('client', t);
      ctx.bytes.fromClient += piece.length;
      ctx.observe(this.#options.observe, 'client', piece, t, previous);
      previous = t;
    }
    this.#holdIfGated();
    gate.afterForward();
  }

  /**
   * The gate lets everything through from here on (a WebSocket after its
   * 101): the client's chunks take the plain path again and the gate hears
   * no more, so an upgraded connection costs with --probe-token what it
   * costs without.
   */
  #ungate(): void {
    if (this.#detached || this.#plainClientData === null) return;
    for (const [socket, event, listener] of this.#gateListeners) socket.removeListener(event, listener);
    this.#gateListeners.length = 0;
    this.#on(this.client, 'data', this.#plainClientData);
    this.#plainClientData = null;
  }

  #onGate(socket: net.Socket, listener: Listener): void {
    this.#on(socket, 'data', listener);
    this.#gateListeners.push([socket, 'data', listener]);
  }

  /** Pauses the client while the gate holds it, resumes it when the gate lets go without taking the connection. */
  #holdIfGated(): void {
    const holds = (this.#options.clientGate as ClientGate).holdsClient;
    if (holds && !this.#gateHolds) {
      this.#gateHolds = true;
      this.client.pause();
    } else if (!holds && this.#gateHolds && !this.#detached) {
      this.#gateHolds = false;
      this.client.resume();
    }
  }

  #wire(side: Side, src: net.Socket, dst: net.Socket): void {
    const ctx = this.#ctx;
    const observe = this.#options.observe;
    const counter = side === 'client' ? 'fromClient' : 'fromUpstream';
    const gate = this.#options.clientGate;

    const forward = (chunk: Buffer): void => {
      // Forward first: nothing we record may delay or change the bytes. Once
      // wstap itself has ended or destroyed the other side (shutdown) a chunk
      // cannot go on; writing it would fail (ERR_STREAM_WRITE_AFTER_END) and
      // read as that peer's socket error. It is counted as what it is.
      let paused = false;
      if (dst.writableEnded || dst.destroyed) ctx.notRelayed[counter] += chunk.length;
      else if (!dst.write(chunk)) {
        src.pause();
        paused = true;
      }
      const t = ctx.now();
      if (paused) ctx.backlog.paused(side, t);
      const previousByteAt = ctx.lastByteAt[side];
      ctx.lastByteAt[side] = t;
      ctx.bytes[counter] += chunk.length;
      // Contained: a throw stops observing this connection, never the relay.
      ctx.observe(observe, side, chunk, t, previousByteAt);
    };
    if (gate && side === 'client') {
      this.#plainClientData = forward;
      this.#onGate(src, (chunk: Buffer) => {
        const t = ctx.now();
        const previousByteAt = ctx.lastByteAt.client;
        ctx.lastByteAt.client = t;
        this.#gatedClientChunk(chunk, t, previousByteAt);
        if (gate.passesAll) this.#ungate();
      });
    } else this.#on(src, 'data', forward);
    if (gate && side === 'upstream') {
      // A listener of its own, after the one above (so the chunk is forwarded first): without a gate no work is added per chunk.
      this.#onGate(src, (chunk: Buffer) => {
        gate.upstream(chunk, ctx.lastByteAt.upstream);
        gate.afterForward();
        if (gate.passesAll) this.#ungate();
      });
    }
    this.#on(dst, 'drain', () => {
      // A client the gate holds stays unread; the gate resumes it when it lets go.
      if (side === 'client' && this.#gateHolds) return;
      src.resume();
      ctx.backlog.resumed(side);
    });

    const ended = this.#options.ended;
    const gateEnded = (how: 'fin' | 'rst' | 'error'): void => {
      if (!gate) return;
      gate.ended(side, how, ctx.now());
      this.#holdIfGated();
    };
    this.#on(src, 'end', () => {
      ctx.recordFin(side);
      if (!dst.destroyed) dst.end();
      if (ended) ctx.guard('ended', () => ended(side, 'fin', ctx.now()));
      gateEnded('fin');
    });

    this.#on(src, 'error', (err: NodeJS.ErrnoException) => {
      ctx.recordSocketError(side, err);
      if (!dst.destroyed) resetOrDestroy(dst);
      if (ended) ctx.guard('ended', () => ended(side, err.code === 'ECONNRESET' ? 'rst' : 'error', ctx.now()));
      gateEnded(err.code === 'ECONNRESET' ? 'rst' : 'error');
    });

    this.#on(src, 'close', () => {
      // A socket that closes while the peer still has one open for writing can
      // only do so after an error or our own destroy; either way the other side
      // cannot carry on alone.
      if (!dst.destroyed && dst.writableEnded === false && src.readableEnded === false) dst.destroy();
      this.#open--;
      if (this.#open === 0) this.#closed();
    });
  }

  #closed(): void {
    let finished = false;
    const done = (): void => {
      if (finished) return;
      finished = true;
      this.#ctx.recordClose();
      this.#options.onClosed?.();
    };
    const settle = this.#options.settle;
    if (!settle) return done();
    // settle is observer code: contained like observe. After a fault nothing
    // it would still record is kept, so the close is not held back for it
    // (it still runs, to release what it holds, e.g. zlib streams).
    if (this.#ctx.observing) {
      this.#ctx.guard('settle', () => settle(done));
    } else {
      try {
        settle(() => undefined);
      } catch {
        // Observing had already stopped; this only released resources.
      }
    }
    if (!this.#ctx.observing) done();
  }
}

/**
 * Passes an RST on, if the socket can still send one, on the TCP socket
 * under `socket` (tcp-beneath.ts: the same socket unless TLS is layered on it).
 *
 * A socket whose FIN is being sent (its side's FIN was passed on a moment
 * before: end() called, the shutdown not finished) cannot be reset: libuv
 * refuses (EINVAL) and Node 20 then drops the handle without closing it, so
 * the descriptor leaks, 'close' never comes, the connection is never
 * recorded as closed and a graceful stop waits for it forever. That socket is
 * closed instead (its FIN is on its way already). Under TLS the shutdown is
 * the TLS socket's (close_notify, then the TCP FIN), so its state decides.
 *
 * A socket with no TCP handle (a unix socket) has no RST: resetAndDestroy()
 * throws ERR_INVALID_HANDLE_TYPE, and a plain close is the nearest thing.
 */
export function resetOrDestroy(socket: net.Socket): void {
  const tcp = tcpBeneath(socket);
  const finishing = socket.writableEnded && !socket.writableFinished && socket.writableLength === 0;
  // A closed TCP socket would answer resetAndDestroy() with an ERR_SOCKET_CLOSED error event.
  if (!finishing && !tcp.destroyed) {
    try {
      tcp.resetAndDestroy();
    } catch {
      tcp.destroy();
    }
  }
  // Under TLS, after the TCP reset: destroying the TLS socket first would close the TCP socket with a FIN.
  socket.destroy();
}
