import fs from 'node:fs';
import type { CaptureEvent, EventSink } from './events.js';
import { captureHeaderLine } from './capture-format.js';

export interface CaptureWriterOptions {
  path: string;
  createdBy: string;
  /** Overwrite an existing file instead of refusing. */
  overwrite?: boolean;
  /** How often buffered lines go to disk; the issue asks for at least once a second. */
  flushIntervalMs?: number;
  /** Buffered bytes that trigger an early write. */
  highWaterBytes?: number;
  /** Buffered bytes past which events are dropped (counted) rather than held: a stalled disk must not grow memory. */
  maxBufferedBytes?: number;
  /** Told once when the file stops accepting data. */
  onError?: (error: NodeJS.ErrnoException) => void;
}

/**
 * Appends events as JSON lines. Writes are asynchronous and batched so the
 * relay never waits for the disk; `close()` writes what is left synchronously
 * so a normal exit loses nothing.
 */
export class CaptureWriter implements EventSink {
  readonly path: string;
  #fd: number;
  #pending: string[] = [];
  #pendingBytes = 0;
  #inflight: Promise<void> | null = null;
  #closed = false;
  #failed: NodeJS.ErrnoException | null = null;
  #dropped = 0;
  #written = 0;
  readonly #timer: NodeJS.Timeout;
  readonly #highWater: number;
  readonly #maxBuffered: number;
  readonly #onError: ((error: NodeJS.ErrnoException) => void) | undefined;

  constructor(options: CaptureWriterOptions) {
    this.path = options.path;
    // 0600: captures hold handshakes and payloads; 'wx' refuses to clobber evidence.
    this.#fd = fs.openSync(options.path, options.overwrite ? 'w' : 'wx', 0o600);
    fs.fchmodSync(this.#fd, 0o600);
    fs.writeSync(this.#fd, captureHeaderLine(options.createdBy));
    this.#highWater = options.highWaterBytes ?? 256 * 1024;
    this.#maxBuffered = options.maxBufferedBytes ?? 64 * 1024 * 1024;
    this.#onError = options.onError;
    this.#timer = setInterval(() => this.#flushAsync(), options.flushIntervalMs ?? 250);
    this.#timer.unref();
  }

  /** Events that could not be written (disk full, stalled disk). */
  get droppedEvents(): number {
    return this.#dropped;
  }

  get writtenEvents(): number {
    return this.#written;
  }

  record(event: CaptureEvent): void {
    if (this.#closed || this.#failed) {
      this.#dropped++;
      return;
    }
    if (this.#pendingBytes > this.#maxBuffered) {
      this.#dropped++;
      return;
    }
    const line = JSON.stringify(event) + '\n';
    this.#pending.push(line);
    this.#pendingBytes += line.length;
    if (this.#pendingBytes >= this.#highWater) this.#flushAsync();
  }

  #take(): { data: string; count: number } | null {
    if (this.#pending.length === 0) return null;
    const data = this.#pending.join('');
    const count = this.#pending.length;
    this.#pending = [];
    this.#pendingBytes = 0;
    return { data, count };
  }

  #flushAsync(): void {
    if (this.#inflight || this.#failed || this.#fd < 0) return;
    const batch = this.#take();
    if (!batch) return;
    this.#inflight = new Promise<void>((resolve) => {
      fs.write(this.#fd, batch.data, null, 'utf8', (err) => {
        this.#inflight = null;
        resolve();
        if (err) {
          this.#fail(err, batch.count);
          return;
        }
        this.#written += batch.count;
        if (this.#pendingBytes >= this.#highWater) this.#flushAsync();
      });
    });
  }

  #fail(err: NodeJS.ErrnoException, lostEvents: number): void {
    this.#dropped += lostEvents + this.#pending.length;
    this.#pending = [];
    this.#pendingBytes = 0;
    if (!this.#failed) {
      this.#failed = err;
      this.#onError?.(err);
    }
  }

  /**
   * Writes everything buffered, synchronously. Only for a dying process: if an
   * asynchronous write is still in flight its lines may land after these
   * (each line stays whole; events carry their own time).
   */
  flushSync(): void {
    if (this.#fd < 0 || this.#failed) return;
    const batch = this.#take();
    if (!batch) return;
    try {
      fs.writeSync(this.#fd, batch.data);
      this.#written += batch.count;
    } catch (err) {
      this.#fail(err as NodeJS.ErrnoException, batch.count);
    }
  }

  /** Waits for the write in flight, writes the rest, syncs and closes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    while (this.#inflight) await this.#inflight;
    this.flushSync();
    const fd = this.#fd;
    this.#fd = -1;
    try {
      fs.fsyncSync(fd);
    } catch {
      // fsync can fail on some filesystems (pipes, /dev/stdout); the data was written.
    }
    fs.closeSync(fd);
  }
}
