// Past 400 lines on purpose: what reached the file (held and torn lines, gaps, retries, the disk guard's pause) is one state machine; see the class comment.
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { GAP_BACKLOG, GAP_MIN_FREE, type CaptureEvent, type CaptureGapEvent, type EventSink } from './events.js';
import { captureLine, fastLineRoom, writeFastLine } from './capture-line.js';
import { CaptureFileSet, FS_IO, type CaptureIo } from './capture-rotation.js';
import { DiskGuard, resumeAbove, type FreeSpaceSource } from './disk-guard.js';

export type { CaptureIo } from './capture-rotation.js';

export interface CaptureWriterOptions {
  path: string;
  createdBy: string;
  /** The proxy's --instance name, in every file's header. */
  instance?: string;
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
  /** Told when the file accepts data again (or the disk guard lets it write again), with the gap just written to it. */
  onResume?: (gap: CaptureGapEvent) => void;
  io?: CaptureIo;
  /** --rotate: a new file (segment) before a write would take one past this many bytes; absent: one file. */
  maxFileBytes?: number;
  /** --keep: the oldest files are deleted beyond this many; absent: all kept. */
  keepFiles?: number;
  /** Told when an old file could not be deleted: the set is one file over --keep, the capture goes on. */
  onDeleteError?: (file: string, error: NodeJS.ErrnoException) => void;
  /** --min-free: stop writing while the capture's filesystem has less free space; absent: no guard. */
  diskGuard?: { minFreeBytes?: number; source?: FreeSpaceSource; intervalMs?: number };
  /** Told once when the guard pauses the capture (also right after start when the disk is already low). */
  onPause?: (state: CapturePause) => void;
}

/** The disk guard holds the capture back: free space read last, the limit, and what it takes to resume. */
export interface CapturePause {
  /** The directory whose filesystem is watched. */
  dir: string;
  freeBytes: number;
  minFreeBytes: number;
  resumeAboveBytes: number;
}

/** How the capture file is doing, for a display. */
export interface CaptureHealth {
  /** Events that never reached the file (disk full, size limit, a disk too slow). */
  lostEvents: number;
  /** While the file refuses data: the error code; null while writing works. */
  refusing: string | null;
  /** While the disk guard (--min-free) holds writing back; null otherwise. */
  paused: CapturePause | null;
}

/** What the capture has written so far, for metrics; every count only grows. */
export interface CaptureTotals {
  /** Bytes written to the capture's files, headers included. */
  writtenBytes: number;
  writtenEvents: number;
  /** Events that never reached the file. */
  lostEvents: number;
  /** The segment being written: rotations so far (0 without --rotate). */
  segment: number;
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
 *
 * Where the bytes go (one file, or a rotated set: --rotate/--keep) is
 * CaptureFileSet's business (capture-rotation.ts). With a disk guard
 * (--min-free, disk-guard.ts) nothing is written while free space is low:
 * events are counted into a `MIN_FREE` gap, written once space is back.
 *
 * Past 400 lines on purpose: the accounting of what reached the file (held
 * lines, torn lines, gaps, retries, the guard's pause) is one state machine;
 * split, each half would need the other's private state.
 */
export class CaptureWriter implements EventSink {
  readonly path: string;
  readonly #files: CaptureFileSet;
  /** The files are closed: nothing more is written. */
  #filesClosed = false;
  readonly #guard: DiskGuard | null;
  /** The guard holds writing back: events are counted, not written. */
  #paused = false;
  /** The next gap written ends a pause of the guard: onResume tells it. */
  #announceGap = false;
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
  readonly #onError: ((error: NodeJS.ErrnoException) => void) | undefined;
  readonly #onResume: ((gap: CaptureGapEvent) => void) | undefined;
  readonly #onPause: ((state: CapturePause) => void) | undefined;

  constructor(options: CaptureWriterOptions) {
    this.path = options.path;
    this.#files = new CaptureFileSet({
      base: options.path,
      createdBy: options.createdBy,
      ...(options.instance !== undefined ? { instance: options.instance } : {}),
      overwrite: options.overwrite === true,
      maxFileBytes: options.maxFileBytes ?? null,
      keepFiles: options.keepFiles ?? null,
      io: options.io ?? FS_IO,
      ...(options.onDeleteError ? { onDeleteError: options.onDeleteError } : {}),
    });
    this.#onPause = options.onPause;
    try {
      this.#guard = options.diskGuard
        ? new DiskGuard({ path: path.dirname(path.resolve(options.path)), ...options.diskGuard, onChange: (paused) => (paused ? this.#pause() : this.#unpause()) })
        : null;
    } catch (err) {
      this.#files.close();
      throw err;
    }
    this.#highWater = options.highWaterBytes ?? 256 * 1024;
    this.#maxBuffered = options.maxBufferedBytes ?? 64 * 1024 * 1024;
    this.#retryMs = options.retryIntervalMs ?? 1000;
    this.#now = options.now ?? Date.now;
    this.#onError = options.onError;
    this.#onResume = options.onResume;
    this.#timer = setInterval(() => this.#flushAsync(), options.flushIntervalMs ?? 250);
    this.#timer.unref();
    // Below --min-free at start: the session starts anyway (the relay is what must not stop), paused, and says so.
    if (this.#guard?.paused) this.#pause();
  }

  /** Which segment of a rotated set is being written (0 without --rotate). */
  get segment(): number {
    return this.#files.segment;
  }

  /** The random id in every header of this capture's files. */
  get session(): string {
    return this.#files.session;
  }

  /** Events that could not be written (disk full, stalled disk, recorded after close). */
  get droppedEvents(): number {
    return this.#dropped;
  }

  get writtenEvents(): number {
    return this.#written;
  }

  health(): CaptureHealth {
    return { lostEvents: this.#dropped, refusing: this.#failure ? (this.#failure.code ?? 'EIO') : null, paused: this.#paused ? this.#pauseState() : null };
  }

  totals(): CaptureTotals {
    return { writtenBytes: this.#files.writtenBytes, writtenEvents: this.#written, lostEvents: this.#dropped, segment: this.#files.segment };
  }

  #pauseState(): CapturePause {
    const guard = this.#guard;
    return guard
      ? { dir: guard.path, freeBytes: guard.freeBytes, minFreeBytes: guard.minFreeBytes, resumeAboveBytes: resumeAbove(guard.minFreeBytes) }
      : { dir: path.dirname(this.path), freeBytes: 0, minFreeBytes: 0, resumeAboveBytes: 0 };
  }

  /**
   * Free space fell below --min-free: nothing more is written, held lines
   * included; they and every event until the pause ends are counted in one
   * gap. A write already out finishes, and only then is the pause told, so
   * the file no longer grows once the warning is out.
   */
  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    const held = this.#pendingTimes;
    if (held.length > 0) this.#lose(minOf(held), held.length, GAP_MIN_FREE);
    this.#takeLines();
    // A pause with no event lost still gets its gap line: the file says it was paused.
    this.#noteGap(this.#now(), 0, GAP_MIN_FREE);
    void this.#inflight.then(() => {
      if (this.#paused) tell(() => this.#onPause?.(this.#pauseState()));
    });
  }

  /** Free space is back above the limit plus the hysteresis: the gap goes out first, and onResume tells it once written. */
  #unpause(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#announceGap = true;
    this.#flushAsync();
  }

  /** Bytes held for writing; bounded by `maxBufferedBytes` (plus one line). */
  get bufferedBytes(): number {
    return this.#pendingBytes;
  }

  record(event: CaptureEvent): void {
    // Kept for later files' headers even when this line itself is lost (paused, failing).
    if (event.kind === 'session.start') this.#files.noteSessionStart(event);
    if (this.#closed) {
      this.#dropped++;
      return;
    }
    if (this.#paused) {
      this.#lose(event.t, 1, GAP_MIN_FREE);
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
    // A write error or the guard says more than "the disk was slow".
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
    const files = this.#files;
    if (this.#writing || this.#filesClosed || this.#paused) return;
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
    files.write(batch.data, (err, written) => {
      this.#writing = false;
      this.#settle(batch, written, err);
      // After settling: a pause it brings about finds the batch accounted for.
      if (written > 0) this.#guard?.wrote(written);
      resolve();
      if (!this.#failure && this.#pendingBytes >= this.#highWater) this.#flushAsync();
    });
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
        if (this.#failure || this.#announceGap) {
          this.#failure = null;
          this.#announceGap = false;
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
    // With --rotate, any write in flight may rotate under this one (its later pieces would land after
    // these lines, its file counts would be stale, a file could pass SIZE): the lines wait for it
    // (a dying process loses at most what a flush interval holds; flush() waits instead).
    const files = this.#files;
    if (this.#filesClosed || (this.#writing && (this.#failure || files.rotates))) return;
    // While paused only the gap line can be held (close() writes it: one line, so the file says why it stops).
    const batch = this.#take();
    if (!batch) return;
    const { written, error } = files.writeSync(batch.data);
    this.#settle(batch, written, error);
  }

  /**
   * Everything recorded so far in the file(s), for a reader in the same
   * process (the UI's export): waits for the write in flight, then writes
   * the rest synchronously, so nothing runs between the two.
   */
  async flush(): Promise<void> {
    while (this.#writing) await this.#inflight;
    this.flushSync();
  }

  /** Waits for the write in flight, writes the rest, syncs and closes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#guard?.stop();
    while (this.#writing) await this.#inflight;
    this.flushSync();
    this.#filesClosed = true;
    this.#files.close();
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
