import { GAP_PACKETS_DROPPED, type CaptureEvent } from '../capture/events.js';
import type { CapturedPacket, InterfaceStatistics } from './packet-file.js';
import { LegJoin } from './leg-join.js';
import { PacketClock, PacketConnection, type Endpoint } from './packet-connection.js';
import { TCP_ACK, TCP_SYN, linkTypeSupported, tcpSegmentOf, type SegmentResult, type TcpSegment } from './tcp-segment.js';

/** The live proxy's default --preview-bytes. */
export const DEFAULT_PREVIEW_LIMIT = 256;
/** Bytes all connections together may hold ahead of holes in their streams (out of order, not yet known lost). */
export const MAX_PENDING_BYTES_TOTAL = 64 * 1024 * 1024;
/** Closed connections remembered, so their last packets (final ACK, a late RST) do not open a new one. */
const MAX_RECENTLY_CLOSED = 10_000;

export interface PacketCaptureOptions {
  /** What the capture is, for session.start (`target`). */
  label: string;
  /** Server ports (--port): only connections with an endpoint on one of them; empty: every TCP connection. */
  serverPorts: readonly number[];
  previewLimit?: number;
  /** What the reader should know: server guesses, decoding stopped, drops, skipped packets. */
  note: (message: string) => void;
}

type SkipReason = Extract<SegmentResult, { kind: 'skip' }>['reason'];

/**
 * Packets in, CaptureEvents out: a `session.start` at the first packet, the
 * events of each TCP connection (PacketConnection), dropped-packet counts
 * as `capture.gap`, `session.end` at the last packet. Pure apart from the
 * decoders' zlib (inflating is asynchronous): `end()` resolves once every
 * event is out.
 */
export class PacketCaptureConverter {
  readonly #options: PacketCaptureOptions;
  readonly #emit: (event: CaptureEvent) => void;
  readonly #clock = new PacketClock();
  readonly #ports: ReadonlySet<number>;
  readonly #connections = new Map<string, PacketConnection>();
  readonly #recentlyClosed = new Map<string, number>();
  readonly #skipped = new Map<SkipReason, number>();
  readonly #unsupportedLinkTypes = new Set<number>();
  readonly #legs = new LegJoin();
  readonly #pendingBudget = { bytes: 0, max: MAX_PENDING_BYTES_TOTAL };
  #nextId = 1;
  #started = false;
  #lastT = 0;
  #segments = 0;
  #snapCut = 0;
  /** Packets whose decoding threw (a bug of ours): skipped, counted. */
  #faults = 0;
  /** Connections whose conn.close waits for their decoders (inflating). */
  #settling = 0;
  #settled: (() => void) | null = null;

  constructor(options: PacketCaptureOptions, emit: (event: CaptureEvent) => void) {
    this.#options = options;
    this.#emit = emit;
    this.#ports = new Set(options.serverPorts);
  }

  /**
   * One packet. A fault of ours while decoding it costs that packet, said
   * once with its number, never the rest of the file.
   */
  packet(packet: CapturedPacket): void {
    try {
      this.#packet(packet);
    } catch (err) {
      if (this.#faults++ === 0) this.#options.note(`packet ${packet.number}: internal fault while decoding it (${(err as Error).message}); it was skipped (later faults are only counted)`);
    }
  }

  #packet(packet: CapturedPacket): void {
    // A capture's clock can step back (several interfaces, NTP): events keep the packet's own time.
    this.#clock.t = packet.t;
    this.#lastT = Math.max(this.#lastT, packet.t);
    this.#start(packet.t);
    if (!linkTypeSupported(packet.linkType)) {
      this.#unsupportedLinkTypes.add(packet.linkType);
      return;
    }
    const result = tcpSegmentOf(packet.linkType, packet.data, packet.originalLength);
    if (result.kind === 'skip') {
      this.#skipped.set(result.reason, (this.#skipped.get(result.reason) ?? 0) + 1);
      return;
    }
    this.#segments++;
    const segment = result.segment;
    if (segment.payload.length < segment.payloadLength) this.#snapCut++;
    const connection = this.#connectionOf(segment);
    connection?.segment(segment, packet.number);
  }

  statistics(stats: InterfaceStatistics): void {
    if (stats.dropped === null || stats.dropped === 0) return;
    this.#start(stats.t);
    this.#emit({ kind: 'capture.gap', t: stats.t, from: stats.t, lostEvents: stats.dropped, code: GAP_PACKETS_DROPPED });
    this.#options.note(`interface ${stats.interfaceId}: ${stats.dropped} packets were dropped by the capture (kernel or libpcap), not in the file${stats.received === null ? '' : ` (of ${stats.received} received)`}; connections open then may lack bytes or close evidence`);
  }

  /** The file ended: open connections are decoded to their last byte (not closed), then session.end. */
  async end(): Promise<void> {
    this.#start(this.#lastT);
    this.#clock.t = this.#lastT;
    const open = [...this.#connections.values()].filter((c) => !c.closing);
    await Promise.all(open.map((c) => new Promise<void>((resolve) => c.captureEnded(resolve))));
    if (this.#settling > 0) await new Promise<void>((resolve) => (this.#settled = resolve));
    this.#summarise(open.length);
    this.#emit({ kind: 'session.end', t: this.#lastT, reason: 'end of the packet capture', droppedEvents: 0 });
  }

  /** A connection's event: out, and what the front-leg join needs from it. */
  #record(event: CaptureEvent): void {
    this.#emit(event);
    const join = this.#legs.note(event);
    if (join) this.#emit(join);
  }

  #start(t: number): void {
    if (this.#started) return;
    this.#started = true;
    this.#emit({ kind: 'session.start', t, version: '', mode: 'http', listen: '', target: this.#options.label, pid: 0, previewLimit: this.#options.previewLimit ?? DEFAULT_PREVIEW_LIMIT });
  }

  #summarise(openAtEnd: number): void {
    const note = this.#options.note;
    for (const linkType of this.#unsupportedLinkTypes) note(`link type ${linkType} is not supported (Ethernet, Linux cooked v1/v2, BSD loopback and raw IP are); its packets were skipped`);
    const skipped = [...this.#skipped].map(([reason, count]) => `${count} ${reason}`).join(', ');
    note(`${this.#segments} TCP segments read, ${this.#nextId - 1} connections (${openAtEnd} still open at the capture's end)${skipped ? `; packets skipped: ${skipped}` : ''}`);
    if (this.#faults > 1) note(`${this.#faults} packets skipped after an internal fault in decoding them`);
    if (this.#snapCut > 0) note(`${this.#snapCut} segments were cut by the capture's snap length: their missing bytes are tcp.gap events and stop decoding (capture with -s 0)`);
  }

  #connectionOf(segment: TcpSegment): PacketConnection | null {
    const a = `${segment.src}|${segment.srcPort}`;
    const b = `${segment.dst}|${segment.dstPort}`;
    const key = a < b ? `${a}|${b}` : `${b}|${a}`;
    const synOnly = (segment.flags & (TCP_SYN | TCP_ACK)) === TCP_SYN;
    const existing = this.#connections.get(key);
    // A new SYN on a closed pair is a new connection (the port reused).
    if (existing && !(synOnly && existing.closing)) return existing;
    if (!synOnly && this.#recentlyClosed.has(key)) return null;
    if (this.#ports.size > 0 && !this.#ports.has(segment.srcPort) && !this.#ports.has(segment.dstPort)) return null;
    const { client, server } = this.#roles(segment);
    this.#recentlyClosed.delete(key);
    const id = this.#nextId++;
    const connection = new PacketConnection({
      id,
      client,
      server,
      clock: this.#clock,
      sink: { record: (event) => this.#record(event) },
      previewLimit: this.#options.previewLimit ?? DEFAULT_PREVIEW_LIMIT,
      pendingBudget: this.#pendingBudget,
      note: this.#options.note,
      closing: () => this.#settling++,
      closed: () => this.#closed(key, connection),
    });
    this.#connections.set(key, connection);
    return connection;
  }

  /** Client and server: from the SYN or SYN-ACK; else the --port; else the lower port, said so. */
  #roles(segment: TcpSegment): { client: Endpoint; server: Endpoint } {
    const src = { address: segment.src, port: segment.srcPort };
    const dst = { address: segment.dst, port: segment.dstPort };
    if (segment.flags & TCP_SYN) return segment.flags & TCP_ACK ? { client: dst, server: src } : { client: src, server: dst };
    if (this.#ports.has(segment.dstPort)) return { client: src, server: dst };
    if (this.#ports.has(segment.srcPort)) return { client: dst, server: src };
    const [client, server] = segment.srcPort < segment.dstPort ? [dst, src] : [src, dst];
    this.#options.note(
      `#${this.#nextId}: ${segment.src}:${segment.srcPort} <-> ${segment.dst}:${segment.dstPort} was open before the capture began (no SYN): taking port ${server.port} (the lower) as the server's; name the server port with --port to be sure`,
    );
    return { client, server };
  }

  #closed(key: string, connection: PacketConnection): void {
    if (this.#connections.get(key) === connection) this.#connections.delete(key);
    this.#recentlyClosed.set(key, this.#clock.t);
    if (this.#recentlyClosed.size > MAX_RECENTLY_CLOSED) {
      const oldest = this.#recentlyClosed.keys().next().value;
      if (oldest !== undefined) this.#recentlyClosed.delete(oldest);
    }
    this.#settling--;
    if (this.#settling === 0) this.#settled?.();
  }
}
