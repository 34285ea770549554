import type { CaptureEvent, FrameEvent, MessageEvent, Side } from '../capture/events.js';

/**
 * Recent frames per connection, for a detail view. The capture file keeps
 * everything; this keeps memory bounded however many connections there are
 * and however hard one of them floods: at most `perConnection` records per
 * connection and `total` records overall, oldest evicted first.
 */

export interface FrameRecord {
  t: number;
  side: Side;
  index: number;
  opcode: number;
  fin: boolean;
  rsv1: boolean;
  length: number;
  /** base64, as in FrameEvent. */
  preview: string;
  previewTruncated: boolean;
  closeCode?: number;
  closeReason?: string;
  /** For a compressed data frame that starts a message: the inflated message's preview/size once its ws.message arrives. */
  message?: { preview: string; previewTruncated: boolean; size: number | null };
}

/** One connection's records: a ring buffer grown by doubling up to the cap, so idle connections stay small. */
interface ConnFrames {
  buf: Array<FrameRecord | undefined>;
  head: number;
  count: number;
  /** Records ever added; the oldest kept one has sequence number `seq - count`. */
  seq: number;
  dropped: number;
  /** Set by forget(): the global FIFO's entries for it are stale from then on. */
  forgotten: boolean;
}

const INITIAL_RING = 8;

export class FrameHistory {
  readonly #perConnection: number;
  readonly #total: number;
  readonly #conns = new Map<number, ConnFrames>();
  #size = 0;
  // Global FIFO of (connection, sequence number) in arrival order, as two
  // parallel arrays to avoid an object per frame. Entries whose record was
  // already evicted per connection, or whose connection was forgotten, are
  // stale; they are skipped at the head and dropped by #compact(), which runs
  // whenever the arrays reach 2 x total slots, so they cannot grow unbounded.
  #fifoConn: Array<ConnFrames | undefined> = [];
  #fifoSeq: number[] = [];
  #fifoHead = 0;

  constructor(options: { perConnection?: number; total?: number } = {}) {
    this.#perConnection = options.perConnection ?? 200;
    this.#total = options.total ?? 50_000;
    for (const [name, value] of [['perConnection', this.#perConnection], ['total', this.#total]] as const) {
      if (!Number.isInteger(value) || value < 1) throw new RangeError(`FrameHistory ${name} must be a positive integer, got ${value}`);
    }
  }

  /** ws.frame -> record; compressed ws.message -> attach `message` to its first frame's record if still kept; other kinds ignored. */
  apply(event: CaptureEvent): void {
    if (event.kind === 'ws.frame') this.#addFrame(event);
    else if (event.kind === 'ws.message' && event.compressed) this.#attachMessage(event);
  }

  /** Oldest first; [] when unknown. */
  framesOf(conn: number): readonly FrameRecord[] {
    const c = this.#conns.get(conn);
    if (!c) return [];
    const out: FrameRecord[] = [];
    for (let i = 0; i < c.count; i++) {
      const r = c.buf[(c.head + i) % c.buf.length];
      if (r) out.push(r);
    }
    return out;
  }

  /** Frames seen on this connection that are no longer kept (per-connection cap or the global budget). */
  droppedOf(conn: number): number {
    return this.#conns.get(conn)?.dropped ?? 0;
  }

  /** Drops a connection's records (e.g. the UI cleared closed connections). */
  forget(conn: number): void {
    const c = this.#conns.get(conn);
    if (!c) return;
    c.forgotten = true;
    this.#size -= c.count;
    this.#conns.delete(conn);
  }

  /** Records currently held. */
  get size(): number {
    return this.#size;
  }

  /** Slots the global FIFO occupies, stale and already-popped ones included (a memory measure; stays <= 2 x total). */
  get queued(): number {
    return this.#fifoSeq.length;
  }

  #addFrame(event: FrameEvent): void {
    let c = this.#conns.get(event.conn);
    if (!c) {
      c = { buf: [], head: 0, count: 0, seq: 0, dropped: 0, forgotten: false };
      this.#conns.set(event.conn, c);
    }
    const record: FrameRecord = {
      t: event.t,
      side: event.side,
      index: event.index,
      opcode: event.opcode,
      fin: event.fin,
      rsv1: event.rsv1,
      length: event.length,
      preview: event.preview,
      previewTruncated: event.previewTruncated,
    };
    if (event.closeCode !== undefined) record.closeCode = event.closeCode;
    if (event.closeReason !== undefined) record.closeReason = event.closeReason;

    if (c.count === this.#perConnection) {
      // Full: overwrite the oldest. Its FIFO entry becomes stale.
      c.buf[c.head] = record;
      c.head = (c.head + 1) % c.buf.length;
      c.dropped++;
    } else {
      if (c.count === c.buf.length) this.#grow(c);
      c.buf[(c.head + c.count) % c.buf.length] = record;
      c.count++;
      this.#size++;
    }
    this.#fifoConn.push(c);
    this.#fifoSeq.push(c.seq);
    c.seq++;

    if (this.#size > this.#total) this.#evictOldest();
    if (this.#fifoSeq.length > 2 * this.#total) this.#compact();
  }

  /** Doubles the ring (up to the cap), laying it out oldest first. */
  #grow(c: ConnFrames): void {
    const capacity = Math.min(this.#perConnection, Math.max(INITIAL_RING, c.buf.length * 2));
    const next: Array<FrameRecord | undefined> = new Array<FrameRecord | undefined>(capacity);
    for (let i = 0; i < c.count; i++) next[i] = c.buf[(c.head + i) % c.buf.length];
    c.buf = next;
    c.head = 0;
  }

  #isLive(c: ConnFrames, seq: number): boolean {
    return !c.forgotten && seq >= c.seq - c.count;
  }

  /** Evicts the globally oldest kept record: the first live FIFO entry is always its connection's oldest record. */
  #evictOldest(): void {
    while (this.#fifoHead < this.#fifoSeq.length) {
      const i = this.#fifoHead++;
      const c = this.#fifoConn[i];
      const seq = this.#fifoSeq[i];
      this.#fifoConn[i] = undefined; // let forgotten connections be collected
      if (c === undefined || seq === undefined || !this.#isLive(c, seq)) continue;
      c.buf[c.head] = undefined;
      c.head = (c.head + 1) % c.buf.length;
      c.count--;
      c.dropped++;
      this.#size--;
      if (c.count === 0) {
        // Nothing left to show: give the ring's memory back.
        c.buf = [];
        c.head = 0;
      }
      return;
    }
  }

  /** Keeps only live entries; afterwards the FIFO holds exactly `size` (<= total) entries. */
  #compact(): void {
    const conns: Array<ConnFrames | undefined> = [];
    const seqs: number[] = [];
    for (let i = this.#fifoHead; i < this.#fifoSeq.length; i++) {
      const c = this.#fifoConn[i];
      const seq = this.#fifoSeq[i];
      if (c === undefined || seq === undefined || !this.#isLive(c, seq)) continue;
      conns.push(c);
      seqs.push(seq);
    }
    this.#fifoConn = conns;
    this.#fifoSeq = seqs;
    this.#fifoHead = 0;
  }

  #attachMessage(event: MessageEvent): void {
    const c = this.#conns.get(event.conn);
    if (!c) return;
    // Newest first: the message usually arrives right after its frames, but
    // inflation is asynchronous, so later frames may already be recorded.
    for (let i = c.count - 1; i >= 0; i--) {
      const r = c.buf[(c.head + i) % c.buf.length];
      if (!r || r.side !== event.side) continue;
      if (r.index === event.firstFrame) {
        r.message = { preview: event.preview, previewTruncated: event.previewTruncated, size: event.size };
        return;
      }
      // Indexes only go down from here: the first frame is no longer kept.
      if (r.index < event.firstFrame) return;
    }
  }
}
