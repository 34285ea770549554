import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { parseErrorLogLine, type LogTimeZone, type NginxErrorLine } from './error-log-line.js';
import { ErrorLogLineSplitter } from './error-log-lines.js';

/**
 * Follows nginx's error log live (proxy --nginx-error-log), across log
 * rotation, as `tail -F` does:
 * - rename + new file (logrotate `create`, then nginx -s reopen): the old
 *   file is read to its end and kept open a while (nginx writes to it until
 *   it reopens), the new one is read from its start;
 * - copytruncate: the file shrinks under the read position; read again from
 *   its start (lines written between logrotate's copy and its truncation
 *   are lost to wstap, as to any tail; and, as for tail, a file truncated
 *   and refilled past the read position between two reads, within a
 *   quarter of a second, is not seen as truncated);
 * - the file missing (not created yet, moved away): waited for.
 * Reads are asynchronous, a chunk at a time, so following a busy log never
 * blocks the relay; held text is bounded (ErrorLogLineSplitter). Never
 * throws: read errors are notes, and following goes on.
 */

export const ERROR_LOG_POLL_MS = 250;
/** At start, the end of the existing file is read to learn its level (does it log at info?), not its old lines. */
export const INITIAL_TAIL_BYTES = 64 * 1024;
/** How long a rotated-away file is still read: nginx writes to it until it reopens its logs. */
const ROTATED_GRACE_MS = 10_000;
/**
 * Bytes read (and parsed) per step: about 60 lines, a few milliseconds of
 * parsing, so a burst of megabytes delays the relay by no more than that at
 * a time (measured: a 52 MB burst read at about 100,000 lines/s with the
 * event loop's p99 delay at 5 ms; 64 KB steps gave 10 to 17 ms).
 */
const CHUNK = 16 * 1024;

export interface ErrorLogFollowerOptions {
  path: string;
  zone: LogTimeZone;
  /** Lines as they are read, in file order. */
  onLines(lines: NginxErrorLine[]): void;
  /** What the user should know: rotation, truncation, a missing file, read errors. */
  onNote(message: string): void;
  pollMs?: number;
}

/** What the end of the file held when following began. */
export interface ErrorLogBefore {
  lines: number;
  infoLines: number;
  lastInfoTime: string | null;
}

interface OpenLog {
  fh: fsp.FileHandle;
  ino: number;
  dev: number;
  position: number;
  splitter: ErrorLogLineSplitter;
  /** Set once rotated away: read until then, then closed. */
  until?: number;
}

export class ErrorLogFollower {
  readonly #options: ErrorLogFollowerOptions;
  readonly #buffer = Buffer.alloc(CHUNK);
  #current: OpenLog | null = null;
  #rotated: OpenLog[] = [];
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> = Promise.resolve();
  #queued: Promise<void> | null = null;
  #closed = false;
  readonly #said = new Set<string>();

  constructor(options: ErrorLogFollowerOptions) {
    this.#options = options;
  }

  /** Opens the file at its end (reading the last INITIAL_TAIL_BYTES for its level), then polls. */
  async start(): Promise<ErrorLogBefore> {
    const before: ErrorLogBefore = { lines: 0, infoLines: 0, lastInfoTime: null };
    try {
      const opened = await this.#open(true);
      if (opened) {
        await this.#readToEnd(opened, (lines) => {
          for (const line of lines) {
            before.lines++;
            if (line.level === 'info') {
              before.infoLines++;
              before.lastInfoTime = line.time;
            }
          }
        });
      } else {
        this.#noteOnce('missing', `nginx error log ${this.#options.path} does not exist yet; waiting for it`);
      }
    } catch (err) {
      this.#noteReadError(err);
    }
    this.#timer = setInterval(() => void this.catchUp(), this.#options.pollMs ?? ERROR_LOG_POLL_MS);
    this.#timer.unref();
    return before;
  }

  /** Reads whatever has been written by now (a close waits for this, so nginx's line about it is in before its verdict). */
  catchUp(): Promise<void> {
    // One read in flight and at most one queued behind it: a queued read covers every caller that asks meanwhile.
    this.#queued ??= this.#running.then(async () => {
      this.#queued = null;
      await this.#tick();
    });
    this.#running = this.#queued;
    return this.#queued;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#running.catch(() => undefined);
    for (const log of [...this.#rotated, ...(this.#current ? [this.#current] : [])]) await log.fh.close().catch(() => undefined);
    this.#rotated = [];
    this.#current = null;
  }

  async #tick(): Promise<void> {
    if (this.#closed) return;
    try {
      for (const old of this.#rotated) await this.#readQuietly(old);
      const now = Date.now();
      for (const old of this.#rotated.filter((o) => (o.until ?? 0) < now)) {
        this.#rotated.splice(this.#rotated.indexOf(old), 1);
        await old.fh.close().catch(() => undefined);
      }
      const stat = await fsp.stat(this.#options.path).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return null;
        throw err;
      });
      const current = this.#current;
      if (current && (!stat || stat.ino !== current.ino || stat.dev !== current.dev)) {
        // Renamed (or deleted): nginx writes to it until it reopens its logs.
        await this.#readQuietly(current);
        current.until = now + ROTATED_GRACE_MS;
        this.#rotated.push(current);
        this.#current = null;
        this.#options.onNote(`nginx error log ${this.#options.path} was rotated (renamed away)${stat ? '; following the new file' : '; waiting for the new file'}`);
      } else if (current && stat && stat.size < current.position) {
        current.position = 0;
        current.splitter.takePartial();
        this.#options.onNote(
          `nginx error log ${this.#options.path} was truncated (copytruncate): reading it again from its start; lines written between the copy and the truncation are lost to wstap`,
        );
      }
      if (!this.#current && stat) await this.#open(false);
      if (this.#current) await this.#readToEnd(this.#current, (lines) => this.#emit(lines));
      this.#said.delete('error');
    } catch (err) {
      this.#noteReadError(err);
    }
  }

  #noteReadError(err: unknown): void {
    this.#noteOnce('error', `cannot read nginx error log ${this.#options.path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); trying again`);
  }

  /** A file being left behind: what can still be read of it; its errors do not keep the current file from being read. */
  async #readQuietly(log: OpenLog): Promise<void> {
    try {
      await this.#readToEnd(log, (lines) => this.#emit(lines));
    } catch {
      log.until = 0;
    }
  }

  async #open(atEnd: boolean): Promise<OpenLog | null> {
    let fh: fsp.FileHandle;
    try {
      // O_NONBLOCK: a FIFO put where the log was must not block the open (no effect on a regular file).
      fh = await fsp.open(this.#options.path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    const stat = await fh.stat();
    if (!stat.isFile()) {
      await fh.close();
      throw Object.assign(new Error('not a regular file'), { code: 'not a regular file' });
    }
    const position = atEnd ? Math.max(0, stat.size - INITIAL_TAIL_BYTES) : 0;
    const log: OpenLog = { fh, ino: stat.ino, dev: stat.dev, position, splitter: new ErrorLogLineSplitter() };
    // Started inside a line: its start is not read, so its end is not a line.
    if (position > 0) log.splitter.push('\u0000');
    this.#current = log;
    this.#said.delete('missing');
    return log;
  }

  /**
   * Every whole line from the read position to the end of the file now,
   * handed over a chunk at a time (a burst of megabytes is never held whole),
   * each chunk read asynchronously, so the relay runs between them.
   */
  async #readToEnd(log: OpenLog, sink: (lines: NginxErrorLine[]) => void): Promise<void> {
    for (;;) {
      const { bytesRead } = await log.fh.read(this.#buffer, 0, CHUNK, log.position);
      if (bytesRead === 0) return;
      log.position += bytesRead;
      const lines: NginxErrorLine[] = [];
      for (const text of log.splitter.push(this.#buffer.subarray(0, bytesRead))) {
        const line = parseErrorLogLine(text, this.#options.zone);
        if (line) lines.push(line);
      }
      sink(lines);
    }
  }

  #emit(lines: NginxErrorLine[]): void {
    if (lines.length > 0 && !this.#closed) this.#options.onLines(lines);
  }

  #noteOnce(key: string, message: string): void {
    if (this.#said.has(key)) return;
    this.#said.add(key);
    this.#options.onNote(message);
  }
}
