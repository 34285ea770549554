import { constants, createInflateRaw } from 'node:zlib';
import type { InflateRaw } from 'node:zlib';

/** What one compressed message inflated to. */
export interface InflatedMessage {
  /** Total inflated bytes. */
  size: number;
  /** The first previewLimit inflated bytes. */
  preview: Buffer;
  previewTruncated: boolean;
}

export interface MessageInflaterOptions {
  /** The negotiated *_max_window_bits for this direction, 8..15. */
  windowBits: number;
  /** The negotiated *_no_context_takeover for this direction. */
  noContextTakeover: boolean;
  /** Default 256. */
  previewLimit?: number;
  /** Compressed bytes allowed to wait for zlib; default 8 MiB. */
  maxBacklogBytes?: number;
}

export type InflatedCallback = (error: Error | null, message: InflatedMessage | null) => void;

/**
 * RFC 7692 section 7.2.2: "Append 4 octets of 0x00 0x00 0xff 0xff to the tail
 * end of the payload of the message" before decompressing.
 */
const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff]);
const DEFAULT_PREVIEW_LIMIT = 256;
const DEFAULT_MAX_BACKLOG_BYTES = 8 * 1024 * 1024;

interface PendingMessage {
  index: number;
  /** Compressed slices waiting for the zlib stream (only while not active). */
  queued: Buffer[];
  ended: boolean;
  callback: InflatedCallback | null;
  /** Known before inflating: the message cannot be decoded. */
  failure: Error | null;
  /** Its bytes go to the zlib stream (it is the oldest pending message). */
  active: boolean;
  /** The trailer and flush were written. */
  flushing: boolean;
  size: number;
  preview: Buffer[];
  previewBytes: number;
}

/**
 * Inflates the permessage-deflate messages of one direction of a connection
 * (RFC 7692), modelled on the decompress path of ws's permessage-deflate.js.
 *
 * Messages are inflated one after another on a single zlib stream: only the
 * oldest unfinished message is written to zlib, later ones wait in `queued`.
 * That keeps every inflated byte attributable to its message and makes
 * reset() safe, as zlib is idle once a message's flush has completed.
 */
export class MessageInflater {
  private readonly windowBits: number;
  private readonly noContextTakeover: boolean;
  private readonly previewLimit: number;
  private readonly maxBacklogBytes: number;
  private stream: InflateRaw | null = null;
  /** Messages not yet reported, oldest first; the last one may still be open. */
  private readonly pending: PendingMessage[] = [];
  private open: PendingMessage | null = null;
  private nextIndex = 0;
  private queuedBytes = 0;
  private desyncReason: string | null = null;
  private closed = false;
  /** finish() was called: no new input; close once the ended messages are reported. */
  private finishing = false;
  private onReleased: (() => void) | null = null;

  constructor(options: MessageInflaterOptions) {
    const { windowBits } = options;
    if (!Number.isInteger(windowBits) || windowBits < 8 || windowBits > 15) {
      throw new RangeError(`windowBits must be an integer from 8 to 15, got ${windowBits}`);
    }
    // A peer that negotiated 8 compresses with a 512-byte window anyway: zlib
    // rejects windowBits 8 for raw deflate and Node.js (like zlib 1.2.8 before
    // it) silently turns it into 9. Inflating with a 256-byte window could then
    // fail on distances over 256, while a 512-byte window also decodes true
    // 256-byte-window streams, so 9 is the safe choice.
    this.windowBits = Math.max(9, windowBits);
    this.noContextTakeover = options.noContextTakeover;
    this.previewLimit = Math.max(0, options.previewLimit ?? DEFAULT_PREVIEW_LIMIT);
    this.maxBacklogBytes = options.maxBacklogBytes ?? DEFAULT_MAX_BACKLOG_BYTES;
  }

  /** True once desync() was called or an inflate error broke a shared context. */
  get outOfSync(): boolean {
    return this.desyncReason !== null;
  }

  /**
   * Adds a compressed slice of the current message. The slice is kept by
   * reference until zlib has consumed it, so it must not be modified.
   */
  write(compressed: Buffer): void {
    if (this.closed || this.finishing || this.desyncReason !== null) return;
    const message = this.openMessage();
    if (message.failure !== null || compressed.length === 0) return;
    const backlog = this.queuedBytes + (this.stream?.writableLength ?? 0);
    if (backlog + compressed.length > this.maxBacklogBytes) {
      this.desync(`inflater backlog over ${this.maxBacklogBytes} bytes`);
      return;
    }
    if (message.active && this.stream !== null) {
      this.stream.write(compressed);
    } else {
      message.queued.push(compressed);
      this.queuedBytes += compressed.length;
    }
  }

  /**
   * Ends the current message. The callback gets the result or an Error saying
   * which message (counted from 0) and what went wrong; callbacks run
   * asynchronously and in message order.
   */
  end(callback: InflatedCallback): void {
    const message = this.openMessage();
    this.open = null;
    message.ended = true;
    message.callback = callback;
    this.pump();
    if (message.active && this.stream !== null) this.finishActive(message, this.stream);
  }

  /**
   * Bytes of this direction were missed. With context takeover every later
   * message is undecodable, so inflating stops: the open message and all
   * later ones fail. Messages already ended before this call still complete.
   */
  desync(reason: string): void {
    if (this.desyncReason !== null) return;
    this.desyncReason = reason;
    for (const message of this.pending) {
      if (message.ended) continue;
      // Only the newest message can be open; if zlib holds part of it, that
      // part is useless now.
      if (message.active) this.releaseStream();
      this.fail(message, this.outOfSyncError(message.index));
    }
    this.pump();
  }

  /**
   * The connection is over. Messages already ended still complete (their
   * callbacks come as usual), the unfinished one is dropped since its frames
   * never all arrived, and zlib is released after the last report;
   * `onReleased` is called then (at once if already closed).
   */
  finish(onReleased?: () => void): void {
    if (this.closed) {
      onReleased?.();
      return;
    }
    if (onReleased) this.onReleased = onReleased;
    if (this.finishing) return;
    this.finishing = true;
    const open = this.open;
    if (open !== null) {
      this.open = null;
      // Only the newest message can be open; if zlib holds part of it, that part is useless.
      if (open.active) this.releaseStream();
      for (const slice of open.queued) this.queuedBytes -= slice.length;
      open.queued = [];
      const at = this.pending.indexOf(open);
      if (at >= 0) this.pending.splice(at, 1);
    }
    this.pump();
  }

  /** Releases zlib at once; messages not yet reported fail. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.releaseStream();
    for (const message of this.pending) this.fail(message, this.closedError(message.index));
    this.pump();
    const released = this.onReleased;
    this.onReleased = null;
    // After the failure callbacks above, which pump() queued on nextTick.
    if (released) process.nextTick(released);
  }

  private openMessage(): PendingMessage {
    if (this.open === null) {
      const index = this.nextIndex;
      this.nextIndex += 1;
      this.open = { index, queued: [], ended: false, callback: null, failure: null, active: false, flushing: false, size: 0, preview: [], previewBytes: 0 };
      if (this.closed || this.finishing) this.open.failure = this.closedError(index);
      else if (this.desyncReason !== null) this.open.failure = this.outOfSyncError(index);
      this.pending.push(this.open);
      this.pump();
    }
    return this.open;
  }

  private outOfSyncError(index: number): Error {
    return new Error(`message ${index}: not inflated, this direction is out of sync (${this.desyncReason ?? 'unknown'})`);
  }

  private closedError(index: number): Error {
    return new Error(`message ${index}: not inflated, the inflater was closed`);
  }

  /** Marks a message undecodable and drops its queued bytes. */
  private fail(message: PendingMessage, error: Error): void {
    message.failure ??= error;
    message.active = false;
    this.queuedBytes -= message.queued.reduce((sum, slice) => sum + slice.length, 0);
    message.queued = [];
  }

  /**
   * Reports failed messages at the front (on the next tick, so end() never
   * calls back synchronously) and starts inflating the oldest healthy one.
   */
  private pump(): void {
    for (;;) {
      const front = this.pending[0];
      if (front === undefined) {
        if (this.finishing) this.close();
        else if (this.desyncReason !== null) this.releaseStream();
        return;
      }
      if (front.active) return;
      if (this.closed) front.failure ??= this.closedError(front.index);
      if (front.failure !== null) {
        if (front.callback === null) return; // wait for end()
        this.pending.shift();
        process.nextTick(front.callback, front.failure, null);
        continue;
      }
      this.activate(front);
      return;
    }
  }

  private activate(message: PendingMessage): void {
    const stream = this.stream?.readableEnded === false ? this.stream : this.createStream();
    message.active = true;
    for (const slice of message.queued) {
      this.queuedBytes -= slice.length;
      stream.write(slice);
    }
    message.queued = [];
    if (message.ended) this.finishActive(message, stream);
  }

  private createStream(): InflateRaw {
    this.releaseStream();
    const stream = createInflateRaw({ windowBits: this.windowBits });
    stream.on('data', (chunk: Buffer) => this.onInflated(stream, chunk));
    // zlib emits 'error' and then never calls the pending flush callback, so
    // the failure is reported from here (as ws's inflateOnError does).
    stream.on('error', (error: Error) => this.onZlibError(stream, error));
    this.stream = stream;
    return stream;
  }

  private releaseStream(): void {
    // The listeners stay attached, so a late 'error' is still handled; they
    // ignore a stream that is no longer current.
    this.stream?.close();
    this.stream = null;
  }

  private finishActive(message: PendingMessage, stream: InflateRaw): void {
    if (message.flushing) return;
    message.flushing = true;
    stream.write(TRAILER);
    stream.flush(constants.Z_SYNC_FLUSH, () => {
      if (stream !== this.stream || this.pending[0] !== message || !message.active) return;
      this.pending.shift();
      // A final deflate block (BFINAL) ends the zlib stream; the next
      // message then starts a new one (activate() checks readableEnded).
      if (this.noContextTakeover && !stream.readableEnded) stream.reset();
      const preview = Buffer.concat(message.preview, message.previewBytes);
      // Start the next message first, so a throwing callback cannot stall
      // the queue; failures pump() reports go through nextTick, after this.
      this.pump();
      message.callback?.(null, { size: message.size, preview, previewTruncated: message.size > preview.length });
    });
  }

  private onInflated(stream: InflateRaw, chunk: Buffer): void {
    const message = this.pending[0];
    if (stream !== this.stream || message === undefined || !message.active) return;
    message.size += chunk.length;
    const room = this.previewLimit - message.previewBytes;
    if (room > 0) {
      // Copy: a zlib output chunk can be far larger than the preview.
      const kept = Buffer.from(chunk.subarray(0, room));
      message.preview.push(kept);
      message.previewBytes += kept.length;
    }
  }

  private onZlibError(stream: InflateRaw, error: Error): void {
    if (stream !== this.stream) return;
    this.stream = null;
    const message = this.pending[0];
    if (message === undefined || !message.active) return;
    const code = (error as NodeJS.ErrnoException).code;
    this.fail(message, new Error(`message ${message.index}: inflate failed: ${error.message}${code === undefined ? '' : ` (${code})`}`));
    if (!this.noContextTakeover && this.desyncReason === null) {
      // The shared LZ77 window is lost: no later message can be decoded, not
      // even those already ended (unlike an external desync()).
      this.desyncReason = `message ${message.index} could not be inflated: ${error.message}`;
      for (const later of this.pending) this.fail(later, this.outOfSyncError(later.index));
    }
    this.pump();
  }
}
