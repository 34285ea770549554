import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { GAP_BACKLOG, type CaptureEvent, type CaptureGapEvent, type EventSink } from './events.js';
import { captureHeaderLine } from './capture-format.js';
import { captureLine, fastLineRoom, writeFastLine } from './capture-line.js';

/** The writes the writer makes: `fs` by default; tests stand in a disk that fills up. */
export interface CaptureIo {
  /** fs.write at the current file position: may write fewer bytes than asked. */
  write(fd: number, buffer: Buffer, offset: number, length: number, callback: (err: NodeJS.ErrnoException | null, written: number) => void): void;
  writeSync(fd: number, buffer: Buffer, offset: number, length: number): number;
}

const FS_IO: CaptureIo = {
  write: (fd, buffer, offset, length, callback) => fs.write(fd, buffer, offset, length, null, callback),
  writeSync: (fd, buffer, offset, length) => fs.writeSync(fd, buffer, offset, length, null),
};

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
  /** While the file refuses data, how often one small write checks whether it accepts data again. */
  retryIntervalMs?: number;
  /** Times written in `capture.gap` (the session's clock, so they compare with event times); retries keep their own time. */
  now?: () => number;
  /** Told when the file stops accepting data: once per outage, not per failed write. */
  onError?: (error: NodeJS.ErrnoException) => void;
  /** Told when the file accepts data again, with the gap just written to it. */
  onResume?: (gap: CaptureGapEvent) => void;
  io?: CaptureIo;
}

/** How the capture file is doing, for a display. */
export interface CaptureHealth {
  /** Events that never reached the file (disk full, size limit, a disk too slow). */
  lostEvents: number;
  /** While the file refuses data: the error code; null while writing works. */
  refusing: string | null;
}

/** Events lost since the last line that reached the file. */
interface OpenGap {
  from: number;
  lost: number;
  code: string;
}

/**
 * One write: a newline when a failed write left a torn line, the event lines,
 * then the gap line. The events held when a gap opens came before it: while
 * the file refuses data nothing is held, and a full buffer is what drops.
 */
interface Batch {
  data: Buffer;
  /** 0 or 1: the newline that ends a torn line. */
  prefixBytes: number;
  /** Where the gap line starts (data.length without one). */
  gapAt: number;
  gap: CaptureGapEvent | null;
  /** `t` of each event line, in order. */
  times: number[];
}

const NEWLINE = 0x0a;
const NEWLINE_BYTES = Buffer.from('\n');
/** Lines are encoded straight into buffers of this size (or one line's worst case, if larger). */
const CHUNK_BYTES = 1024 * 1024;

/**
 * Appends events as JSON lines. Writes are asynchronous and batched so the
 * relay never waits for the disk; `close()` writes what is left synchronously
 * so a normal exit loses nothing.
 *
 * When the file refuses data (disk full, size limit, I/O error) events are
 * dropped and counted, never held, and a small write is tried every
 * `retryIntervalMs`. The first line that gets through again is a
 * `capture.gap` saying how many events are missing since when, preceded by a
 * newline when a write cut short left a torn line, so the file stays
 * readable line by line. Events dropped because the buffer was full (a disk
 * too slow, no error) get a gap line too, after the lines that were held.
 */
export class CaptureWriter implements EventSink {
  readonly path: string;
  #fd: number;
  /** Lines waiting to be written: full chunks, then the one being filled. */
  #chunks: Buffer[] = [];
  #chunk: Buffer = Buffer.allocUnsafe(0);
  #chunkUsed = 0;
  #pendingTimes: number[] = [];
  #pendingBytes = 0;
  /** A write is out; `#inflight` settles when it is done. */
  #writing = false;
  #inflight: Promise<void> = Promise.resolve();
  #closed = false;
  /** The file refuses data: nothing but retries is written until one succeeds. */
  #failure: NodeJS.ErrnoException | null = null;
  /** performance.now() of the next retry. */
  #retryAt = 0;
  #gap: OpenGap | null = null;
  /** The file ends in the middle of a line (a write cut short). */
  #tornTail = false;
  #dropped = 0;
  #written = 0;
  readonly #timer: NodeJS.Timeout;
  readonly #highWater: number;
  readonly #maxBuffered: number;
  readonly #retryMs: number;
  readonly #now: () => number;
  readonly #io: CaptureIo;
  readonly #onError: ((error: NodeJS.ErrnoException) => void) | undefined;
  readonly #onResume: ((gap: CaptureGapEvent) => void) | undefined;

  constructor(options: CaptureWriterOptions) {
    this.path = options.path;
    // 0600: captures hold handshakes and payloads; 'wx' refuses to clobber evidence.
    this.#fd = fs.openSync(options.path, options.overwrite ? 'w' : 'wx', 0o600);
    fs.fchmodSync(this.#fd, 0o600);
    fs.writeSync(this.#fd, captureHeaderLine(options.createdBy));
    this.#highWater = options.highWaterBytes ?? 256 * 1024;
    this.#maxBuffered = options.maxBufferedBytes ?? 64 * 1024 * 1024;
    this.#retryMs = options.retryIntervalMs ?? 1000;
    this.#now = options.now ?? Date.now;
    this.#io = options.io ?? FS_IO;
    this.#onError = options.onError;
    this.#onResume = options.onResume;
    this.#timer = setInterval(() => this.#flushAsync(), options.flushIntervalMs ?? 250);
    this.#timer.unref();
  }

  /** Events that could not be written (disk full, stalled disk, recorded after close). */
  get droppedEvents(): number {
    return this.#dropped;
  }

  get writtenEvents(): number {
    return this.#written;
  }

  health(): CaptureHealth {
    return { lostEvents: this.#dropped, refusing: this.#failure ? (this.#failure.code ?? 'EIO') : null };
  }

  /** Bytes held for writing; bounded by `maxBufferedBytes` (plus one line). */
  get bufferedBytes(): number {
    return this.#pendingBytes;
  }

  record(event: CaptureEvent): void {
    if (this.#closed) {
      this.#dropped++;
      return;
    }
    // While failing, only the retry's write is out: what arrives meanwhile waits to see whether it worked.
    if (this.#failure && !this.#writing) {
      this.#lose(event.t, 1, this.#failure.code ?? 'EIO');
      return;
    }
    if (this.#pendingBytes > this.#maxBuffered) {
      this.#lose(event.t, 1, this.#failure?.code ?? GAP_BACKLOG);
      return;
    }
    const room = fastLineRoom(event);
    if (room > 0) {
      this.#makeRoom(room);
      this.#appended(writeFastLine(event, this.#chunk, this.#chunkUsed));
    } else {
      const line = captureLine(event);
      // UTF-8 needs at most 3 bytes per UTF-16 unit.
      this.#makeRoom(line.length * 3);
      this.#appended(this.#chunkUsed + this.#chunk.write(line, this.#chunkUsed, 'utf8'));
    }
    this.#pendingTimes.push(event.t);
    if (this.#pendingBytes >= this.#highWater) this.#flushAsync();
  }

  /** Makes sure the chunk being filled has `bytes` free: lines are encoded straight into it, with no strings to join and copy again later. */
  #makeRoom(bytes: number): void {
    if (this.#chunk.length - this.#chunkUsed >= bytes) return;
    if (this.#chunkUsed > 0) this.#chunks.push(this.#chunk.subarray(0, this.#chunkUsed));
    this.#chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, bytes));
    this.#chunkUsed = 0;
  }

  /** The chunk being filled now holds lines up to `end`. */
  #appended(end: number): void {
    this.#pendingBytes += end - this.#chunkUsed;
    this.#chunkUsed = end;
  }

  /** Hands over the lines held (the buffers go to a write: a new chunk is started) and forgets them. */
  #takeLines(): Buffer[] {
    const lines = this.#chunks;
    if (this.#chunkUsed > 0) {
      lines.push(this.#chunk.subarray(0, this.#chunkUsed));
      // The rest of this chunk stays free for the next lines; what was handed over is never written again.
      this.#chunk = this.#chunk.subarray(this.#chunkUsed);
      this.#chunkUsed = 0;
    }
    this.#chunks = [];
    this.#pendingTimes = [];
    this.#pendingBytes = 0;
    return lines;
  }

  #lose(t: number, count: number, code: string): void {
    this.#dropped += count;
    this.#noteGap(t, count, code);
  }

  #noteGap(from: number, lost: number, code: string): void {
    const gap = this.#gap;
    if (!gap) {
      this.#gap = { from, lost, code };
      return;
    }
    gap.from = Math.min(gap.from, from);
    gap.lost += lost;
    // A write error says more than "the disk was slow".
    if (gap.code === GAP_BACKLOG) gap.code = code;
  }

  #take(): Batch | null {
    const times = this.#pendingTimes;
    if (times.length === 0 && !this.#gap) return null;
    const gap: CaptureGapEvent | null = this.#gap
      ? { kind: 'capture.gap', t: this.#now(), from: this.#gap.from, lostEvents: this.#gap.lost, code: this.#gap.code }
      : null;
    const parts = this.#takeLines();
    const prefixBytes = this.#tornTail ? 1 : 0;
    if (prefixBytes) parts.unshift(NEWLINE_BYTES);
    let gapAt = 0;
    for (const part of parts) gapAt += part.length;
    if (gap) parts.push(Buffer.from(captureLine(gap), 'utf8'));
    this.#gap = null;
    return { data: parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts), prefixBytes, gapAt, gap, times };
  }

  #flushAsync(): void {
    if (this.#writing || this.#fd < 0) return;
    if (this.#failure) {
      const now = performance.now();
      if (now < this.#retryAt) return;
      this.#retryAt = now + this.#retryMs;
    }
    const batch = this.#take();
    if (!batch) return;
    // Set before writing: a callback that comes at once may already start the next write.
    let resolve: () => void = () => undefined;
    this.#inflight = new Promise<void>((r) => (resolve = r));
    this.#writing = true;
    const fd = this.#fd;
    let written = 0;
    let finished = false;
    const done = (err: NodeJS.ErrnoException | null): void => {
      if (finished) return;
      finished = true;
      this.#writing = false;
      this.#settle(batch, written, err);
      resolve();
      if (!this.#failure && this.#pendingBytes >= this.#highWater) this.#flushAsync();
    };
    const step = (): void => {
      try {
        this.#io.write(fd, batch.data, written, batch.data.length - written, (err, n) => {
          if (err) return done(err);
          written += n;
          if (written >= batch.data.length) return done(null);
          // A short write (the disk filled mid-batch): write the rest; the next attempt says why it stops.
          if (n > 0) return step();
          done(this.#noProgress());
        });
      } catch (err) {
        done(err as NodeJS.ErrnoException);
      }
    };
    step();
  }

  #noProgress(): NodeJS.ErrnoException {
    return Object.assign(new Error(`write to ${this.path} wrote 0 bytes`), { code: 'EIO', syscall: 'write' });
  }

  /** Accounts for a write that got `written` bytes of the batch to the file, then failed with `err` (or not). */
  #settle(batch: Batch, written: number, err: NodeJS.ErrnoException | null): void {
    const { data, prefixBytes, gapAt, gap } = batch;
    if (written > 0) this.#tornTail = data[written - 1] !== NEWLINE;
    // A line missing only its newline is whole once the next write starts with one.
    const whole = written < data.length && data[written] === NEWLINE ? written + 1 : written;
    // Each event is one line: counting them in what was written is needed only when a write stopped short of them.
    const eventsWritten = whole >= gapAt ? batch.times.length : countNewlines(data, prefixBytes, whole);
    this.#written += eventsWritten;
    if (gap) {
      if (whole >= data.length) {
        if (this.#failure) {
          this.#failure = null;
          tell(() => this.#onResume?.(gap));
        }
      } else {
        this.#noteGap(gap.from, gap.lostEvents, gap.code);
      }
    }
    if (!err) return;
    const code = err.code ?? 'EIO';
    const lostTimes = batch.times.slice(eventsWritten);
    if (lostTimes.length > 0) this.#lose(minOf(lostTimes), lostTimes.length, code);
    // What arrived while the write was out cannot go after a gap that is not written yet: it joins it.
    const waiting = this.#pendingTimes;
    if (waiting.length > 0) this.#lose(minOf(waiting), waiting.length, code);
    this.#takeLines();
    // Even with no event lost (only a newline missing) the file must get its gap line before anything else.
    this.#noteGap(this.#now(), 0, code);
    this.#retryAt = performance.now() + this.#retryMs;
    if (!this.#failure) {
      this.#failure = err;
      tell(() => this.#onError?.(err));
    }
  }

  /**
   * Writes everything buffered, synchronously; while the file refuses data,
   * one more try. For close() and a dying process: if an asynchronous write
   * is still in flight its lines may land after these (each line stays whole;
   * events carry their own time).
   */
  flushSync(): void {
    // A retry in flight decides what comes next; writing around it could put lines before their gap.
    if (this.#fd < 0 || (this.#failure && this.#writing)) return;
    const batch = this.#take();
    if (!batch) return;
    let written = 0;
    let error: NodeJS.ErrnoException | null = null;
    try {
      while (written < batch.data.length) {
        const n = this.#io.writeSync(this.#fd, batch.data, written, batch.data.length - written);
        if (n <= 0) throw this.#noProgress();
        written += n;
      }
    } catch (err) {
      error = err as NodeJS.ErrnoException;
    }
    this.#settle(batch, written, error);
  }

  /** Waits for the write in flight, writes the rest, syncs and closes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    while (this.#writing) await this.#inflight;
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

/** Runs a listener from a write callback, where a throw would end the process: the relay must outlive its reporting. */
function tell(listener: () => void): void {
  try {
    listener();
  } catch {
    // Nowhere left to report it: the listener was the report.
  }
}

function countNewlines(data: Buffer, start: number, end: number): number {
  let count = 0;
  for (let at = data.indexOf(NEWLINE, start); at >= 0 && at < end; at = data.indexOf(NEWLINE, at + 1)) count++;
  return count;
}

function minOf(values: number[]): number {
  let min = Infinity;
  for (const v of values) if (v < min) min = v;
  return min;
}
