import type { EventSink, RstEvent, Side } from '../capture/events.js';
import type { EventClock } from '../capture/session-clock.js';
import { ConnectionContext } from '../relay/connection-context.js';
import { HttpTap } from '../relay/http-tap.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, type TcpSegment } from './tcp-segment.js';
import { MAX_PENDING_BYTES, TcpStream, type PendingBudget, type StreamSink } from './tcp-stream.js';

/** Retransmissions this long before an RST are reported with it. */
const RETRANSMISSION_WINDOW_MS = 30_000;
/** Retransmission times kept per side for that report (bounded). */
const MAX_RETRANSMISSION_TIMES = 1000;

/** An HTTP/1.x request line's start: a method token, then a space (or the bytes so far could be one). */
function looksLikeHttpRequest(bytes: Buffer): boolean {
  const head = bytes.subarray(0, 24).toString('latin1');
  return /^[A-Z][A-Z-]{0,19}( |$)/.test(head);
}

/** The packet being read: every event of a connection is stamped with its packet's time. */
export class PacketClock implements EventClock {
  t = 0;
  now(): number {
    return this.t;
  }
}

export interface Endpoint {
  address: string;
  port: number;
}

export interface PacketConnectionOptions {
  id: number;
  client: Endpoint;
  server: Endpoint;
  clock: PacketClock;
  sink: EventSink;
  previewLimit: number;
  /** Bytes held ahead of holes, shared by every connection of the reading. */
  pendingBudget: PendingBudget;
  /** About this connection, for the reader (e.g. decoding stopped, why). */
  note: (message: string) => void;
  /** Called once when the connection ends (both FINs, an RST), before its decoders settle. */
  closing: () => void;
  /** Called once when the connection's `conn.close` is recorded. */
  closed: () => void;
}

/**
 * One TCP connection of a packet capture, turned into the events the live
 * relay records for the connection it relays: client = the side that
 * opened it (nginx, on the back leg), upstream = the server (the app). Both
 * directions are reassembled (TcpStream) and fed, in order, to the relay's
 * own HttpTap; FIN and RST come from the flags, at the time of their
 * packets, and reach the tap as the relay's sockets' would; holes become
 * `tcp.gap` and stop the decoding of their direction (or, inside one
 * frame's payload, are bridged).
 */
export class PacketConnection {
  readonly ctx: ConnectionContext;
  readonly client: Endpoint;
  readonly server: Endpoint;
  readonly #options: PacketConnectionOptions;
  readonly #streams: Record<Side, TcpStream>;
  readonly #sinks: Record<Side, StreamSink>;
  readonly #tap: HttpTap;
  #opened = false;
  /** An HTTP connection whose bytes go to the decoders; false for one read as TCP only. */
  #decoding = false;
  #closing = false;
  /** Whose receive window is zero, since when, and the probes its peer sent meanwhile. */
  readonly #zeroWindow: Record<Side, { since: number; probes: number } | null> = { client: null, upstream: null };
  readonly #retransmittedAt: Record<Side, number[]> = { client: [], upstream: [] };
  /** When each side's FIN packet was captured. */
  readonly #finAt: Record<Side, number | null> = { client: null, upstream: null };

  constructor(options: PacketConnectionOptions) {
    this.#options = options;
    this.client = options.client;
    this.server = options.server;
    this.ctx = new ConnectionContext(options.id, options.clock, options.sink);
    this.#streams = { client: new TcpStream(MAX_PENDING_BYTES, options.pendingBudget), upstream: new TcpStream(MAX_PENDING_BYTES, options.pendingBudget) };
    // The packets' times drive it: no wall-clock deadline for a refusal's body.
    this.#tap = new HttpTap(this.ctx, { previewLimit: options.previewLimit, handshakeBodyDeadline: false });
    this.#sinks = { client: this.#sinkFor('client'), upstream: this.#sinkFor('upstream') };
  }

  get closing(): boolean {
    return this.#closing;
  }

  sideOf(segment: TcpSegment): Side {
    return segment.src === this.client.address && segment.srcPort === this.client.port ? 'client' : 'upstream';
  }

  /** One segment of this connection, at its packet's time (the clock is already set to it). */
  segment(segment: TcpSegment, packet: number): void {
    if (this.#closing) return;
    const side = this.sideOf(segment);
    const other: Side = side === 'client' ? 'upstream' : 'client';
    const t = this.#options.clock.t;
    const flags = segment.flags;
    if (flags & TCP_RST) return this.#reset(side, t);
    if (flags & TCP_SYN) {
      this.#streams[side].syn(segment.seq);
      // A SYN-ACK tells where the client's stream starts even when its SYN is not in the capture.
      if (flags & TCP_ACK) this.#streams[other].startAt(segment.ack);
      return;
    }
    this.#watchWindow(side, other, segment, t);
    const stream = this.#streams[side];
    const before = stream.retransmissions;
    stream.segment(segment.seq, segment.payload, segment.payloadLength, (flags & TCP_FIN) !== 0, t, packet, this.#sinks[side]);
    if (stream.retransmissions > before) this.#noteRetransmission(side, t);
    if (flags & TCP_ACK) this.#streams[other].acknowledged(segment.ack, t, packet, this.#sinks[other]);
    this.#streams[side].tick(t, this.#sinks[side]);
    if (this.#streams.client.finished && this.#streams.upstream.finished) this.#close(this.#bothFinsAt());
  }

  /** The connection ended with the second FIN (found in stream order, maybe after a hole was declared). */
  #bothFinsAt(): number {
    return Math.max(this.#finAt.client ?? 0, this.#finAt.upstream ?? 0);
  }

  /**
   * The capture ended with the connection open: what is held is decoded and
   * `done` called once recorded; no close is invented.
   */
  captureEnded(done: () => void): void {
    if (this.#closing) return done();
    for (const side of ['client', 'upstream'] as const) this.#streams[side].flush(this.#sinks[side]);
    const t = this.#options.clock.t;
    // Both FINs were in the capture, one behind a hole: the connection did end.
    if (this.#streams.client.finished && this.#streams.upstream.finished) return this.#close(this.#bothFinsAt(), done);
    this.#open('tcp');
    this.#recordZeroWindows(null);
    let called = false;
    const once = (): void => {
      if (called) return;
      called = true;
      done();
    };
    if (this.ctx.observing) this.ctx.guard('settle', () => this.#at(t, () => this.#tap.close(once, false)));
    if (!this.ctx.observing) once();
  }

  /**
   * Records conn.open (at the connection's first packet) once its first
   * bytes tell what it is: an HTTP request from the client makes it `http`
   * and decoded; anything else (TLS on a front leg, a server that speaks
   * first, a connection whose beginning is missing, none at all) `tcp`, as
   * `wstap proxy --tcp` records: open, FIN/RST, bytes, close.
   */
  #open(mode: 'http' | 'tcp', first?: Buffer): void {
    if (this.#opened) return;
    this.#opened = true;
    this.#decoding = mode === 'http';
    const ctx = this.ctx;
    ctx.record({ kind: 'conn.open', t: ctx.openedAt, conn: ctx.id, mode, remoteAddress: this.client.address, remotePort: this.client.port, localPort: this.server.port });
    if (mode === 'tcp' && first) {
      const what = first[0] === 0x16 ? 'a TLS handshake (the front leg?)' : 'not an HTTP request';
      this.#options.note(`#${ctx.id}: the first bytes are ${what}: read as TCP only (open, FIN, RST, bytes, close)`);
    }
  }

  #sinkFor(side: Side): StreamSink {
    const ctx = this.ctx;
    const clock = this.#options.clock;
    const counter = side === 'client' ? 'fromClient' : 'fromUpstream';
    return {
      data: (bytes, t) => {
        this.#open(side === 'client' && looksLikeHttpRequest(bytes) ? 'http' : 'tcp', bytes);
        const previousByteAt = ctx.lastByteAt[side];
        ctx.lastByteAt[side] = t;
        ctx.bytes[counter] += bytes.length;
        if (this.#decoding) this.#at(t, () => ctx.observe(this.#observe, side, bytes, t, previousByteAt));
      },
      gap: (cause, offset, bytes, t, packet, from) => {
        this.#open('tcp');
        if (bytes !== null) ctx.bytes[counter] += bytes;
        this.#at(t, () => {
          const bridge = bytes !== null && this.#decoding && ctx.observing ? this.#tap.bridgeable(side, bytes) : null;
          ctx.record({ kind: 'tcp.gap', t, conn: ctx.id, side, cause, offset, bytes, packet, from: from ?? ctx.openedAt, decoding: bridge ? 'resumed' : 'stopped' });
          if (bridge) ctx.guard('gap', () => bridge(t));
          else this.#tap.stop(side);
        });
      },
      fin: (t) =>
        this.#at(t, () => {
          this.#open('tcp');
          this.#finAt[side] = t;
          ctx.recordFin(side);
          if (this.#decoding) ctx.guard('ended', () => this.#tap.ended(side, 'fin', t));
        }),
    };
  }

  readonly #observe = (side: Side, chunk: Buffer, t: number, previousByteAt: number): void => this.#tap.observe(side, chunk, t, previousByteAt);

  /** Runs `record` with the clock at `t` (a FIN or bytes released from the out-of-order buffer keep their own packet's time). */
  #at(t: number, record: () => void): void {
    const clock = this.#options.clock;
    const now = clock.t;
    clock.t = t;
    try {
      record();
    } finally {
      clock.t = now;
    }
  }

  #watchWindow(side: Side, other: Side, segment: TcpSegment, t: number): void {
    const zero = this.#zeroWindow[side];
    if (segment.window === 0 && !zero) this.#zeroWindow[side] = { since: t, probes: 0 };
    else if (segment.window > 0 && zero) {
      this.#zeroWindow[side] = null;
      this.ctx.record({ kind: 'tcp.zero-window', t, conn: this.ctx.id, side, since: zero.since, reopened: true, probes: zero.probes });
    }
    // The peer of a side with a closed window sends probes (or retransmissions) while it waits.
    const peerClosed = this.#zeroWindow[other];
    if (peerClosed && segment.payloadLength > 0) peerClosed.probes++;
  }

  #recordZeroWindows(t: number | null): void {
    for (const side of ['client', 'upstream'] as const) {
      const zero = this.#zeroWindow[side];
      if (!zero) continue;
      this.#zeroWindow[side] = null;
      this.ctx.record({ kind: 'tcp.zero-window', t: t ?? this.#options.clock.t, conn: this.ctx.id, side, since: zero.since, reopened: false, probes: zero.probes });
    }
  }

  #noteRetransmission(side: Side, t: number): void {
    const times = this.#retransmittedAt[side];
    times.push(t);
    if (times.length > MAX_RETRANSMISSION_TIMES) times.shift();
  }

  #reset(side: Side, t: number): void {
    for (const s of ['client', 'upstream'] as const) this.#streams[s].flush(this.#sinks[s]);
    this.#open('tcp');
    this.#recordZeroWindows(t);
    const ctx = this.ctx;
    const event: RstEvent = { kind: 'tcp.rst', t, conn: ctx.id, side, idle: ctx.idleAt(t) };
    const recent = (s: Side): number => this.#retransmittedAt[s].filter((at) => t - at <= RETRANSMISSION_WINDOW_MS).length;
    const retransmissions = { client: recent('client'), upstream: recent('upstream') };
    if (retransmissions.client + retransmissions.upstream > 0) event.retransmissionsBefore = retransmissions;
    ctx.record(event);
    if (this.#decoding) ctx.guard('ended', () => this.#at(t, () => this.#tap.ended(side, 'rst', t)));
    this.#close(t);
  }

  /** Both FINs, or an RST: what the decoders still hold is recorded, then `conn.close`. */
  #close(t: number, after?: () => void): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#options.closing();
    this.#recordZeroWindows(t);
    const ctx = this.ctx;
    let finished = false;
    const done = (): void => {
      if (finished) return;
      finished = true;
      this.#at(t, () => ctx.recordClose());
      this.#options.closed();
      after?.();
    };
    if (ctx.observing) ctx.guard('settle', () => this.#at(t, () => this.#tap.close(done)));
    if (!ctx.observing) done();
  }
}
