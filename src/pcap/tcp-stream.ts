/**
 * One direction of a captured TCP connection put back in order: segments in
 * any order, repeated (retransmissions) or overlapping, become the byte
 * stream the receiver read, once each, in order. A hole becomes a gap, never
 * silently joined bytes: it is declared only when certain, i.e. when the
 * receiver acknowledged bytes the capture does not hold (and they did not
 * turn up within ACK_GRACE_MS: a capture may hold a data packet a little
 * after the ACK of it, packets taken on different CPUs or interfaces), when
 * the out-of-order buffer would pass its bound, or at the end (flush). Pure;
 * the only memory it keeps is segments ahead of a hole (bounded).
 */

export interface StreamSink {
  /** The next bytes of the stream, as the packet `packet` at `t` carried them. */
  data(bytes: Buffer, t: number, packet: number): void;
  /** `bytes` bytes at stream offset `offset` are not in the capture (null: unknown, before the capture began). */
  gap(cause: 'not-captured' | 'snaplen' | 'capture-began', offset: number, bytes: number | null, t: number, packet: number, from: number | null): void;
  /** The sender's FIN, in stream order (after every byte before it), with the FIN packet's time. */
  fin(t: number, packet: number): void;
}

interface Pending {
  seq: number;
  /** Copied: the packet's buffer is the reader's chunk. */
  bytes: Buffer;
  /** On the wire (more than bytes.length when the snap length cut the segment). */
  wireLength: number;
  t: number;
  packet: number;
}

/** How long (packet time) acknowledged bytes may be missing before they are a hole for certain. */
export const ACK_GRACE_MS = 200;

/** Default bound of bytes held ahead of a hole, per direction. */
export const MAX_PENDING_BYTES = 4 * 1024 * 1024;

/** Bytes held ahead of holes by all the streams of one reading, and their bound (many connections with holes at once). */
export interface PendingBudget {
  bytes: number;
  readonly max: number;
}

/** a - b in sequence space (wraps at 2^32). */
function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

export class TcpStream {
  /** The next sequence number the receiver reads; null before the first segment or SYN. */
  #next: number | null = null;
  /** Stream offset of `#next` (bytes delivered plus bytes declared missing). */
  #offset = 0;
  readonly #pending: Pending[] = [];
  #pendingBytes = 0;
  readonly #maxPending: number;
  #fin: { seq: number; t: number; packet: number } | null = null;
  /** The highest acknowledgement of this direction seen past `#next`, and when. */
  #acked: { ack: number; t: number; packet: number } | null = null;
  /** When the last byte delivered was captured; null before any. */
  #lastDataAt: number | null = null;
  #finDelivered = false;
  /** Data segments that carried only bytes already received. */
  retransmissions = 0;
  /** Segments that arrived ahead of a hole. */
  outOfOrder = 0;

  readonly #budget: PendingBudget | null;

  constructor(maxPendingBytes = MAX_PENDING_BYTES, budget: PendingBudget | null = null) {
    this.#maxPending = maxPendingBytes;
    this.#budget = budget;
  }

  get started(): boolean {
    return this.#next !== null;
  }

  get finished(): boolean {
    return this.#finDelivered;
  }

  /** Stream bytes so far (delivered and declared missing). */
  get offset(): number {
    return this.#offset;
  }

  /** The sender's SYN: the stream starts right after it. */
  syn(seq: number): void {
    if (this.#next === null) this.#next = (seq + 1) >>> 0;
  }

  /** The stream starts at `seq` with nothing missing (known from the peer's SYN-ACK acknowledgement). */
  startAt(seq: number): void {
    if (this.#next === null) this.#next = seq >>> 0;
  }

  /** A segment of this direction (payload may be empty: a pure ACK or a bare FIN). */
  segment(seq: number, payload: Buffer, wireLength: number, fin: boolean, t: number, packet: number, sink: StreamSink): void {
    if (this.#next === null) {
      // No SYN in the capture: the connection was open before it began.
      this.#next = seq >>> 0;
      sink.gap('capture-began', 0, null, t, packet, null);
    }
    if (fin && this.#fin === null) this.#fin = { seq: (seq + wireLength) >>> 0, t, packet };
    if (wireLength > 0) {
      const d = seqDiff(seq, this.#next);
      if (d + wireLength <= 0) this.retransmissions++;
      else if (d > 0) this.#hold({ seq: seq >>> 0, bytes: Buffer.from(payload), wireLength, t, packet }, sink);
      else this.#deliver(seq, payload, wireLength, t, packet, sink);
    }
    this.#drain(sink);
  }

  /**
   * The receiver acknowledged up to `ack`: bytes before it that the capture
   * lacks are a hole for certain once ACK_GRACE_MS passed without them.
   */
  acknowledged(ack: number, t: number, packet: number, sink: StreamSink): void {
    if (this.#next === null || this.#finDelivered) return;
    // One pending acknowledgement at a time: a later one matters once this one is settled.
    if (this.#acked === null && seqDiff(ack, this.#next) > 0) this.#acked = { ack: ack >>> 0, t, packet };
    this.tick(t, sink);
  }

  /** Time passed (any packet of the connection): an acknowledged hole older than the grace is declared. */
  tick(t: number, sink: StreamSink, grace = ACK_GRACE_MS): void {
    const acked = this.#acked;
    if (acked === null || this.#next === null) return;
    // A FIN takes one sequence number: an ACK of the FIN is not a missing byte.
    const end = this.#fin && seqDiff(acked.ack, this.#fin.seq) === 1 ? this.#fin.seq : acked.ack;
    if (seqDiff(end, this.#next) <= 0) {
      this.#acked = null;
      return;
    }
    if (t - acked.t < grace) return;
    this.#acked = null;
    const first = this.#pending[0];
    this.#skipTo(first && seqDiff(first.seq, end) < 0 ? first.seq : end, 'not-captured', t, acked.packet, sink);
    this.#drain(sink);
  }

  /** The end (RST, or the capture's end): what is held is delivered with its holes; the FIN if it came. */
  flush(sink: StreamSink): void {
    if (this.#acked) this.tick(this.#acked.t, sink, 0);
    while (this.#pending.length > 0) {
      const first = this.#pending[0] as Pending;
      this.#skipTo(first.seq, 'not-captured', first.t, first.packet, sink);
      this.#drain(sink);
    }
    if (this.#fin && !this.#finDelivered && this.#next !== null) {
      const missing = seqDiff(this.#fin.seq, this.#next);
      if (missing > 0) this.#skipTo(this.#fin.seq, 'not-captured', this.#fin.t, this.#fin.packet, sink);
      this.#drain(sink);
    }
  }

  #hold(segment: Pending, sink: StreamSink): void {
    this.outOfOrder++;
    let i = this.#pending.length;
    while (i > 0 && seqDiff((this.#pending[i - 1] as Pending).seq, segment.seq) > 0) i--;
    this.#pending.splice(i, 0, segment);
    this.#pendingBytes += segment.bytes.length;
    if (this.#budget) this.#budget.bytes += segment.bytes.length;
    // Bounded, per stream and for all of them: past the bound the hole is declared and what follows it is delivered.
    while ((this.#pendingBytes > this.#maxPending || (this.#budget !== null && this.#budget.bytes > this.#budget.max)) && this.#pending.length > 0) {
      const first = this.#pending[0] as Pending;
      this.#skipTo(first.seq, 'not-captured', segment.t, segment.packet, sink);
      this.#drain(sink);
    }
  }

  /** Declares the bytes from `#next` to `seq` missing. */
  #skipTo(seq: number, cause: 'not-captured' | 'snaplen', t: number, packet: number, sink: StreamSink): void {
    if (this.#next === null) return;
    const missing = seqDiff(seq, this.#next);
    if (missing <= 0) return;
    sink.gap(cause, this.#offset, missing, t, packet, this.#lastDataAt);
    this.#offset += missing;
    this.#next = seq >>> 0;
  }

  /** Delivers the part of a segment at or after `#next` (it starts at or before it). */
  #deliver(seq: number, payload: Buffer, wireLength: number, t: number, packet: number, sink: StreamSink): void {
    const next = this.#next as number;
    const skip = -seqDiff(seq, next);
    if (skip < payload.length) {
      const bytes = skip === 0 ? payload : payload.subarray(skip);
      this.#next = (next + bytes.length) >>> 0;
      this.#offset += bytes.length;
      this.#lastDataAt = t;
      sink.data(bytes, t, packet);
    }
    // The snap length cut the segment: its tail is on the wire, not in the file.
    if (wireLength > payload.length) this.#skipTo((seq + wireLength) >>> 0, 'snaplen', t, packet, sink);
  }

  #drain(sink: StreamSink): void {
    while (this.#pending.length > 0) {
      const first = this.#pending[0] as Pending;
      const d = seqDiff(first.seq, this.#next as number);
      if (d > 0) break;
      this.#pending.shift();
      this.#pendingBytes -= first.bytes.length;
      if (this.#budget) this.#budget.bytes -= first.bytes.length;
      if (d + first.wireLength <= 0) continue;
      this.#deliver(first.seq, first.bytes, first.wireLength, first.t, first.packet, sink);
    }
    if (this.#fin && !this.#finDelivered && this.#next !== null && seqDiff(this.#fin.seq, this.#next) <= 0 && this.#pending.length === 0) {
      this.#finDelivered = true;
      sink.fin(this.#fin.t, this.#fin.packet);
    }
  }
}
