import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { captureHeaderLine, segmentPath } from './capture-format.js';
import type { SessionStartEvent } from './events.js';

/** The writes the capture makes: `fs` by default; tests stand in a disk that fills up. */
export interface CaptureIo {
  /** fs.write at the current file position: may write fewer bytes than asked. */
  write(fd: number, buffer: Buffer, offset: number, length: number, callback: (err: NodeJS.ErrnoException | null, written: number) => void): void;
  writeSync(fd: number, buffer: Buffer, offset: number, length: number): number;
}

export const FS_IO: CaptureIo = {
  write: (fd, buffer, offset, length, callback) => fs.write(fd, buffer, offset, length, null, callback),
  writeSync: (fd, buffer, offset, length) => fs.writeSync(fd, buffer, offset, length, null),
};

export interface CaptureFileSetOptions {
  /** The name the user gave: segment 0; later segments are `segmentPath(base, n)`. */
  base: string;
  createdBy: string;
  /** The proxy's --instance name, written in every file's header; absent: none. */
  instance?: string;
  /** Overwrite existing files (and delete a rotated set's leftover segments at start) instead of refusing. */
  overwrite: boolean;
  /** Rotate before a write would take a file past this many bytes (header included); null: one file. */
  maxFileBytes: number | null;
  /** Files kept: the oldest are deleted beyond this many; null: all are kept. */
  keepFiles: number | null;
  io: CaptureIo;
  /** Told when an old segment could not be deleted (the set then holds one file more than --keep). */
  onDeleteError?: (file: string, error: NodeJS.ErrnoException) => void;
}

/** How a write to the set went: batch bytes that reached a file, and the error that stopped it. */
export type SetWriteCallback = (err: NodeJS.ErrnoException | null, written: number) => void;

const NEWLINE = 0x0a;

/**
 * The files of one capture: segment 0 at the path the user gave, then, with
 * `maxFileBytes`, `base.1`, `base.2`, ... (tcpdump -C/-W). Each file starts
 * with its own header line (same `session`, increasing `segment`), so each
 * reads on its own. A line never spans two files: the set cuts a batch only
 * after a newline, and rotates before a write would take the file past
 * `maxFileBytes`. A single line longer than that goes into a file of its
 * own (the only way a file exceeds the size): no file could hold it, and
 * cutting it would tear it.
 *
 * Rotating is asynchronous like the writes (close, unlink, open, chmod): the
 * relay never waits on it. The oldest file is deleted BEFORE the next one is
 * created, so the set never holds more than `keepFiles` files and the space
 * the deleted file frees is there for the new one on a nearly full disk.
 */
export class CaptureFileSet {
  readonly base: string;
  /** Shared by every file of this set (the header's `session`). */
  readonly session: string;
  readonly #options: CaptureFileSetOptions;
  /** The file being written; -1 between closing one and opening the next. */
  #fd: number;
  #segment = 0;
  /** Bytes in the current file, its header included. */
  #size = 0;
  /** Bytes written to every file of the set so far, headers included (for metrics). */
  #total = 0;
  /** The current file holds a line (or part of one) besides its header. */
  #hasLines = false;
  /** The current file ends in the middle of a line: the next bytes must finish it here. */
  #midLine = false;
  /** Header bytes not yet written to the current file (a write cut its header short). */
  #header: Buffer | null = null;
  /** An asynchronous write (maybe a rotation) is out. */
  #busy = false;
  /** Repeated in every later file's header (CaptureHeader.start). */
  #start: SessionStartEvent | null = null;

  constructor(options: CaptureFileSetOptions) {
    this.#options = options;
    this.base = options.base;
    this.session = crypto.randomUUID();
    if (options.maxFileBytes !== null) this.#clearLeftovers();
    // 0600: captures hold handshakes and payloads; 'wx' refuses to clobber evidence.
    this.#fd = fs.openSync(options.base, options.overwrite ? 'w' : 'wx', 0o600);
    fs.fchmodSync(this.#fd, 0o600);
    const header = this.#headerOf(0);
    fs.writeSync(this.#fd, header);
    this.#size = header.length;
    this.#total = header.length;
  }

  /** Bytes written to the set's files so far, headers included; never decreases (--keep deleting files does not count). */
  get writtenBytes(): number {
    return this.#total;
  }

  /** The segment being written (0 until the first rotation). */
  get segment(): number {
    return this.#segment;
  }

  /** Files are rotated (--rotate): a write may close the file and open the next. */
  get rotates(): boolean {
    return this.#options.maxFileBytes !== null;
  }

  /**
   * Segments of an earlier set at this name would read as part of this one
   * (and escape --keep's bound on disk): refused, or with --force deleted.
   * Checked once, at start.
   */
  #clearLeftovers(): void {
    const dir = path.dirname(this.base);
    const prefix = `${path.basename(this.base)}.`;
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      return; // The open below says what is wrong with the directory.
    }
    for (const name of names) {
      if (!name.startsWith(prefix) || !/^[1-9]\d*$/.test(name.slice(prefix.length))) continue;
      const leftover = path.join(dir, name);
      if (!this.#options.overwrite) {
        throw Object.assign(new Error(`${leftover} (a segment of an earlier rotated capture) already exists`), { code: 'EEXIST', syscall: 'open', path: leftover });
      }
      fs.rmSync(leftover, { force: true });
    }
  }

  /** The session's start, for the headers of the files after the first (the first holds it as its first event). */
  noteSessionStart(event: SessionStartEvent): void {
    this.#start ??= event;
  }

  #headerOf(segment: number): Buffer {
    const start = segment > 0 && this.#start ? { start: this.#start } : {};
    return Buffer.from(captureHeaderLine(this.#options.createdBy, { session: this.session, segment, ...start }, this.#options.instance), 'utf8');
  }

  /** Where the bytes from `from` on that go to the current file end; `from` itself means "rotate first". */
  #pieceEnd(data: Buffer, from: number): number {
    const max = this.#options.maxFileBytes;
    const room = max === null ? Infinity : max - this.#size;
    if (data.length - from <= room) return data.length;
    const lastFit = room > 0 ? data.lastIndexOf(NEWLINE, from + room - 1) : -1;
    if (lastFit >= from) return lastFit + 1;
    // Not even one line fits: a line already begun is finished here, and an empty file takes one line however long.
    if (!this.#hasLines || this.#midLine) {
      const end = data.indexOf(NEWLINE, from);
      return end < 0 ? data.length : end + 1;
    }
    return from;
  }

  #wrote(data: Buffer, end: number, count: number): void {
    this.#size += count;
    this.#total += count;
    if (count > 0) {
      this.#hasLines = true;
      this.#midLine = data[end - 1] !== NEWLINE;
    }
  }

  /** Writes `data` (whole lines, or the rest of a torn one first) across the set, rotating as needed. */
  write(data: Buffer, done: SetWriteCallback): void {
    this.#busy = true;
    let written = 0;
    const finish = (err: NodeJS.ErrnoException | null): void => {
      this.#busy = false;
      done(err, written);
    };
    const step = (): void => {
      try {
        if (written >= data.length) return finish(null);
        if (this.#fd < 0) return this.#openNext((err) => (err ? finish(err) : step()));
        const header = this.#header;
        if (header) {
          return this.#options.io.write(this.#fd, header, 0, header.length, (err, n) => {
            if (err) return finish(err);
            if (n <= 0) return finish(this.#noProgress());
            this.#size += n;
            this.#total += n;
            this.#header = n < header.length ? header.subarray(n) : null;
            step();
          });
        }
        const end = this.#pieceEnd(data, written);
        if (end === written) return this.#rotate((err) => (err ? finish(err) : step()));
        this.#options.io.write(this.#fd, data, written, end - written, (err, n) => {
          if (err) return finish(err);
          // A short write (the disk filled mid-batch): write the rest; the next attempt says why it stops.
          if (n <= 0) return finish(this.#noProgress());
          written += n;
          this.#wrote(data, written, n);
          step();
        });
      } catch (err) {
        finish(err as NodeJS.ErrnoException);
      }
    };
    step();
  }

  /** Closes the full file, deletes the oldest beyond --keep, then opens the next. */
  #rotate(done: (err: NodeJS.ErrnoException | null) => void): void {
    const fd = this.#fd;
    this.#fd = -1;
    // A failing close loses nothing already written: the next file is opened regardless.
    fs.close(fd, () => this.#deleteOldest(this.#segment + 1, () => this.#openNext(done)));
  }

  /** Before segment `next` exists: the one that would make the set one too many goes. */
  #deleteOldest(next: number, then: () => void): void {
    const keep = this.#options.keepFiles;
    if (keep === null || next - keep < 0) return then();
    const oldest = segmentPath(this.base, next - keep);
    fs.unlink(oldest, (err) => {
      if (err && err.code !== 'ENOENT') this.#tellDeleteError(oldest, err);
      then();
    });
  }

  #tellDeleteError(file: string, err: NodeJS.ErrnoException): void {
    try {
      this.#options.onDeleteError?.(file, err);
    } catch {
      // The listener was the report; the capture goes on.
    }
  }

  #openNext(done: (err: NodeJS.ErrnoException | null) => void): void {
    const next = this.#segment + 1;
    fs.open(segmentPath(this.base, next), this.#options.overwrite ? 'w' : 'wx', 0o600, (err, fd) => {
      // Stays between files: the writer's retry opens it again.
      if (err) return done(err);
      fs.fchmod(fd, 0o600, () => {
        this.#started(next, fd);
        done(null);
      });
    });
  }

  #started(segment: number, fd: number): void {
    this.#fd = fd;
    this.#segment = segment;
    this.#size = 0;
    this.#hasLines = false;
    this.#midLine = false;
    this.#header = this.#headerOf(segment);
  }

  /**
   * The same, synchronously, for close() and a dying process. Never while
   * an asynchronous write is out on a set that `rotates`: it may rotate
   * under this one (the caller keeps its lines then).
   */
  writeSync(data: Buffer): { written: number; error: NodeJS.ErrnoException | null } {
    let written = 0;
    try {
      while (written < data.length) {
        if (this.#fd < 0) this.#openNextSync();
        const header = this.#header;
        if (header) {
          const n = this.#options.io.writeSync(this.#fd, header, 0, header.length);
          if (n <= 0) throw this.#noProgress();
          this.#size += n;
          this.#total += n;
          this.#header = n < header.length ? header.subarray(n) : null;
          continue;
        }
        const end = this.#pieceEnd(data, written);
        if (end === written) {
          this.#rotateSync();
          continue;
        }
        const n = this.#options.io.writeSync(this.#fd, data, written, end - written);
        if (n <= 0) throw this.#noProgress();
        written += n;
        this.#wrote(data, written, n);
      }
      return { written, error: null };
    } catch (err) {
      return { written, error: err as NodeJS.ErrnoException };
    }
  }

  #rotateSync(): void {
    const fd = this.#fd;
    this.#fd = -1;
    try {
      fs.closeSync(fd);
    } catch {
      // As in #rotate: the next file is opened regardless.
    }
    const keep = this.#options.keepFiles;
    const next = this.#segment + 1;
    if (keep !== null && next - keep >= 0) {
      const oldest = segmentPath(this.base, next - keep);
      try {
        fs.unlinkSync(oldest);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#tellDeleteError(oldest, err as NodeJS.ErrnoException);
      }
    }
    this.#openNextSync();
  }

  #openNextSync(): void {
    const next = this.#segment + 1;
    const fd = fs.openSync(segmentPath(this.base, next), this.#options.overwrite ? 'w' : 'wx', 0o600);
    fs.fchmodSync(fd, 0o600);
    this.#started(next, fd);
  }

  #noProgress(): NodeJS.ErrnoException {
    return Object.assign(new Error(`write to ${segmentPath(this.base, this.#segment)} wrote 0 bytes`), { code: 'EIO', syscall: 'write' });
  }

  /** Syncs and closes the current file (call once no write is out). */
  close(): void {
    const fd = this.#fd;
    this.#fd = -1;
    if (fd < 0) return;
    try {
      fs.fsyncSync(fd);
    } catch {
      // fsync can fail on some filesystems (pipes, /dev/stdout); the data was written.
    }
    fs.closeSync(fd);
  }
}
