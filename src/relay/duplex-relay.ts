import type net from 'node:net';
import type { Side } from '../capture/events.js';
import type { ConnectionContext } from './connection-context.js';

/**
 * Sees a copy of every chunk after it was handed to the other side.
 * `previousByteAt` is when this direction carried its previous byte, so a
 * decoder can tell how long the direction was silent before this chunk.
 */
export type ChunkObserver = (side: Side, chunk: Buffer, t: number, previousByteAt: number) => void;

export interface DuplexRelayOptions {
  observe: ChunkObserver;
  /**
   * Both sockets have closed; call `done` when everything the observer still
   * has to record about the connection is recorded (asynchronous inflating),
   * so `conn.close` stays the connection's last event.
   */
  settle?: (done: () => void) => void;
  /** Called once when both sockets have closed, after `conn.close` was recorded. */
  onClosed?: () => void;
}

/**
 * Pipes two sockets both ways, byte for byte, and records the close evidence
 * of each side: a FIN is passed on as a FIN (`end()`, half-close kept), an RST
 * as an RST (`resetAndDestroy()`, or a plain close if a FIN is still being sent
 * that way, see resetOrDestroy), any other socket error as an RST too, since
 * the connection it belonged to is gone.
 *
 * Both sockets must have been created with `allowHalfOpen: true`.
 */
export class DuplexRelay {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  #open = 2;
  readonly #ctx: ConnectionContext;
  readonly #options: DuplexRelayOptions;

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

  #wire(side: Side, src: net.Socket, dst: net.Socket): void {
    const ctx = this.#ctx;
    const observe = this.#options.observe;
    const counter = side === 'client' ? 'fromClient' : 'fromUpstream';

    src.on('data', (chunk: Buffer) => {
      // Forward first: nothing we record may delay or change the bytes.
      const paused = !dst.destroyed && !dst.write(chunk);
      if (paused) src.pause();
      const t = ctx.now();
      if (paused) ctx.backlog.paused(side, t);
      const previousByteAt = ctx.lastByteAt[side];
      ctx.lastByteAt[side] = t;
      ctx.bytes[counter] += chunk.length;
      observe(side, chunk, t, previousByteAt);
    });
    dst.on('drain', () => {
      src.resume();
      ctx.backlog.resumed(side);
    });

    src.on('end', () => {
      ctx.recordFin(side);
      if (!dst.destroyed) dst.end();
    });

    src.on('error', (err: NodeJS.ErrnoException) => {
      ctx.recordSocketError(side, err);
      if (!dst.destroyed) resetOrDestroy(dst);
    });

    src.on('close', () => {
      // A socket that closes while the peer still has one open for writing can
      // only do so after an error or our own destroy; either way the other side
      // cannot carry on alone.
      if (!dst.destroyed && dst.writableEnded === false && src.readableEnded === false) dst.destroy();
      this.#open--;
      if (this.#open === 0) this.#closed();
    });
  }

  #closed(): void {
    const done = (): void => {
      this.#ctx.recordClose();
      this.#options.onClosed?.();
    };
    if (this.#options.settle) this.#options.settle(done);
    else done();
  }
}

/**
 * Passes an RST on, if the socket can still send one. A socket whose FIN is
 * being sent (its side's FIN was passed on a moment before: end() called, the
 * shutdown not finished) cannot be reset: libuv refuses (EINVAL) and Node 20
 * then drops the handle without closing it, so the descriptor leaks, 'close'
 * never comes, the connection is never recorded as closed and a graceful
 * stop waits for it forever. That socket is closed instead (its FIN is on
 * its way already).
 */
export function resetOrDestroy(socket: net.Socket): void {
  if (socket.writableEnded && !socket.writableFinished && socket.writableLength === 0) socket.destroy();
  else socket.resetAndDestroy();
}
