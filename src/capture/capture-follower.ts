import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CAPTURE_FORMAT, headerSessionStart, segmentPath, type CaptureHeader } from './capture-format.js';
import { CaptureFormatError, checkCaptureHeader, readFileHead } from './capture-reader.js';
import { discoverCaptureSet, missingSegmentGap, missingSegmentWarning, siblingSegmentPaths, type CaptureSet, type CaptureSetWarning } from './capture-set.js';
import type { CaptureEvent, SessionStartEvent } from './events.js';

/**
 * Fallback poll when fs.watch says nothing. fs.watch (inotify) wakes the
 * follower within milliseconds of a write on a local disk; where it stays
 * silent (network file systems, containers without inotify, a watch limit
 * reached) the poll bounds the delay. 250 ms: no more than the writer's
 * own flush interval (250 ms by default, at least once a second by
 * contract), so polling at most doubles the lag, for one fstat (and, at the
 * end of a file, one readdir) four times a second.
 */
export const FOLLOW_POLL_MS = 250;
const READ_CHUNK = 64 * 1024;
/** A header line longer than this is no header we wrote (checkCaptureHeader reads as much). */
const HEADER_MAX = 4096;

export interface FollowOptions {
  /** Ends the following (the user quit); the iterator then returns. */
  signal?: AbortSignal;
  pollMs?: number;
  onWarning?: (warning: CaptureSetWarning) => void;
  /** What the user should know: waiting for the file, the set's deleted segments, a switch to the next file. */
  onNote?: (message: string) => void;
}

/** A file being followed: read with its own descriptor from `position` on; never locked, never written. */
interface TailedFile {
  path: string;
  segment: number;
  fd: number;
  position: number;
  /** The end of the last line read when no newline has come yet: held until it does. */
  partial: string;
  line: number;
}

/**
 * The events of a capture another wstap is writing, as they are written:
 * everything already in the file(s) first, then each new line once its
 * newline has arrived. Follows a rotated set from file to file (when
 * `base.<n+1>` of the same session appears, the current file is read to its
 * end first). Returns after the session's `session.end`, or when `signal`
 * aborts.
 */
export async function* followCapture(base: string, options: FollowOptions = {}): AsyncGenerator<CaptureEvent> {
  const waker = new Waker(path.dirname(base), options.pollMs ?? FOLLOW_POLL_MS, options.signal);
  try {
    const start = await openFirst(base, waker, options);
    if (!start) return;
    const { set } = start;
    for (const note of set.notes) options.onNote?.(note);
    let file = start.file;
    let lastT: number | null = null;
    // Joined after --keep deleted the first file: the session's start comes from the header of the first one left.
    const sessionStart = file.segment > 0 ? headerSessionStart((set.segments[0] as (typeof set.segments)[number]).header) : null;
    let gapBefore: number[] | null = null;
    /** The proxy writing the capture, when it runs on this host: if it goes without a session.end, nothing more will come. */
    let writer = sessionStart ? localWriter(sessionStart) : null;
    /** The writer was found gone: one more read for lines it wrote just before, then the end. */
    let lastLook = false;
    try {
      if (sessionStart) {
        lastT = sessionStart.t;
        yield sessionStart;
      }
      while (!waker.aborted) {
        let lines = readNewLines(file);
        const next = lines.length > 0 || set.session === null ? null : nextSegment(set.base, set.session, file.segment);
        // The writer moved on: what it wrote here is complete. Read it to its end (lines written just before the switch) first.
        if (next) lines = readNewLines(file, true);
        for (const { text, line } of lines) {
          const event = parseLine(file, text, line, set, options);
          if (!event) continue;
          if (gapBefore) {
            yield missingSegmentGap(lastT ?? event.t, event.t, gapBefore);
            gapBefore = null;
          }
          lastT = event.t;
          if (event.kind === 'session.start') writer = localWriter(event);
          yield event;
          if (event.kind === 'session.end') return;
        }
        if (lines.length > 0) continue;
        if (!next) {
          if (lastLook && writer) {
            options.onNote?.(writerGoneNote(writer));
            return;
          }
          if (writer && !isRunning(writer.pid)) {
            lastLook = true;
            continue;
          }
          await waker.wait();
          continue;
        }
        let nextFile: TailedFile;
        try {
          nextFile = openTailed(next.path, next.segment);
        } catch (err) {
          // --keep deleted it before we got to it: the next look finds the one after.
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw err;
        }
        if (file.partial !== '') options.onWarning?.({ path: file.path, line: file.line + 1, message: 'the last line of this file was cut short; skipped' });
        const missing: number[] = [];
        for (let n = file.segment + 1; n < next.segment; n++) {
          missing.push(n);
          options.onWarning?.({ path: segmentPath(set.base, n), line: null, message: missingSegmentWarning({ segment: n, path: segmentPath(set.base, n) }) });
        }
        if (missing.length > 0) gapBefore = missing;
        options.onNote?.(`following ${next.path} (segment ${next.segment})`);
        fs.closeSync(file.fd);
        file = nextFile;
      }
    } finally {
      fs.closeSync(file.fd);
    }
  } finally {
    waker.close();
  }
}

/** The proxy of a session.start, when it ran on this host (a pid elsewhere says nothing here). */
function localWriter(start: SessionStartEvent): { pid: number; host: string } | null {
  return start.host !== undefined && start.host === os.hostname() && Number.isInteger(start.pid) && start.pid > 0 ? { pid: start.pid, host: start.host } : null;
}

/** Whether a process runs (one of another user's too: EPERM means it exists). A reused pid reads as running: following goes on, as before. */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function writerGoneNote(writer: { pid: number }): string {
  return `the proxy writing this capture (pid ${writer.pid}) has exited without ending its session (killed, or it crashed): nothing more will come; what it wrote is all there is`;
}

/** The set as it is now; waits for the file to appear (the proxy may start after the viewer). */
async function waitForSet(base: string, waker: Waker, options: FollowOptions): Promise<CaptureSet | null> {
  let said = false;
  let readAgain = false;
  while (!waker.aborted) {
    try {
      return discoverCaptureSet(base);
    } catch (err) {
      const state = headerState(err);
      if (state === 'bad') throw err;
      // Completed between the failed read and the look at it: read once more before calling it bad.
      if (state === 'complete') {
        if (readAgain) throw err;
        readAgain = true;
        continue;
      }
    }
    if (!said) options.onNote?.(`waiting for ${base} to appear`);
    said = true;
    await waker.wait();
  }
  return null;
}

/** The set and its first file opened; --keep may delete that file between the two: then the set is looked at again. */
async function openFirst(base: string, waker: Waker, options: FollowOptions): Promise<{ set: CaptureSet; file: TailedFile } | null> {
  for (;;) {
    const set = await waitForSet(base, waker, options);
    const first = set?.segments[0];
    if (!set || !first) return null;
    try {
      return { set, file: openTailed(first.path, first.segment) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

/**
 * What a failure to read a capture's first line means for a follower that
 * may have come before the writer: `missing` (no file yet), `incomplete`
 * (the writer created it and has not written its whole header line yet:
 * the proxy opens the file, then writes), `complete` (the header line is
 * there now: the failed read may have come just before it was written) or
 * `bad` (any other error).
 */
export function headerState(err: unknown): 'missing' | 'incomplete' | 'complete' | 'bad' {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
  if (!(err instanceof CaptureFormatError) || err.line !== 1) return 'bad';
  try {
    // Only the head: by now the writer may have written far more than its header.
    const head = readFileHead(err.path, HEADER_MAX);
    if (head.includes('\n')) return 'complete';
    return Buffer.byteLength(head) < HEADER_MAX ? 'incomplete' : 'bad';
  } catch {
    return 'missing';
  }
}

/** The file the writer went on to after `segment`: the lowest later segment of the same session whose header is complete. */
function nextSegment(base: string, session: string, segment: number): { path: string; segment: number } | null {
  for (const sibling of siblingSegmentPaths(base)) {
    if (sibling.n <= segment) continue;
    let header: CaptureHeader;
    try {
      header = checkCaptureHeader(sibling.path);
    } catch {
      continue;
    }
    if (header.session === session) return { path: sibling.path, segment: header.segment ?? sibling.n };
  }
  return null;
}

function openTailed(filePath: string, segment: number): TailedFile {
  return { path: filePath, segment, fd: fs.openSync(filePath, 'r'), position: 0, partial: '', line: 0 };
}

/**
 * The complete lines written since the last call. `toEnd` reads until the
 * end of the file; otherwise one chunk, so a fast writer cannot keep the
 * consumer from its other work.
 */
function readNewLines(file: TailedFile, toEnd = false): Array<{ text: string; line: number }> {
  const size = fs.fstatSync(file.fd).size;
  if (size < file.position) throw new CaptureFormatError(file.path, file.line, 'the file got shorter while it was followed (a new capture over it?)');
  const out: Array<{ text: string; line: number }> = [];
  const buffer = Buffer.alloc(READ_CHUNK);
  do {
    const n = fs.readSync(file.fd, buffer, 0, READ_CHUNK, file.position);
    if (n === 0) break;
    file.position += n;
    // A multi-byte character cut by the chunk's end stays in `partial` until its line is complete: decode whole lines only.
    const text = file.partial + buffer.subarray(0, n).toString('latin1');
    const lines = text.split('\n');
    file.partial = lines.pop() ?? '';
    for (const l of lines) out.push({ text: Buffer.from(l, 'latin1').toString('utf8'), line: ++file.line });
  } while (toEnd || out.length === 0);
  return out;
}

function parseLine(file: TailedFile, text: string, line: number, set: CaptureSet, options: FollowOptions): CaptureEvent | null {
  if (line === 1) {
    checkHeader(file, text, set);
    return null;
  }
  if (text.length === 0) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    options.onWarning?.({ path: file.path, line, message: 'line is not valid JSON (a write cut short?); skipped' });
    return null;
  }
  const event = value as { kind?: unknown; t?: unknown } | null;
  if (!event || typeof event !== 'object' || typeof event.kind !== 'string' || typeof event.t !== 'number') {
    options.onWarning?.({ path: file.path, line, message: 'line is not a capture event (needs "kind" and "t"); skipped' });
    return null;
  }
  return value as CaptureEvent;
}

function checkHeader(file: TailedFile, text: string, set: CaptureSet): void {
  let header: Partial<CaptureHeader> | null;
  try {
    header = JSON.parse(text) as Partial<CaptureHeader> | null;
  } catch {
    throw new CaptureFormatError(file.path, 1, 'not a wstap capture (first line is not JSON)');
  }
  if (header?.format !== CAPTURE_FORMAT) throw new CaptureFormatError(file.path, 1, `not a wstap capture (first line does not name format "${CAPTURE_FORMAT}")`);
  if (set.session !== null && header.session !== set.session) {
    throw new CaptureFormatError(file.path, 1, `belongs to session ${String(header.session)}, not ${set.session} (a new capture started over the set?)`);
  }
}

/** Wakes the follower on a change in the directory, after `pollMs` at the latest, or on abort. */
class Waker {
  readonly #watcher: fs.FSWatcher | null;
  readonly #pollMs: number;
  readonly #signal: AbortSignal | undefined;
  #wake: (() => void) | null = null;
  #changed = false;

  constructor(dir: string, pollMs: number, signal: AbortSignal | undefined) {
    this.#pollMs = pollMs;
    this.#signal = signal;
    let watcher: fs.FSWatcher | null = null;
    try {
      watcher = fs.watch(dir, { persistent: false }, () => this.#fire());
      // A watch that fails later (the directory removed, a limit) leaves the poll.
      watcher.on('error', () => watcher?.close());
    } catch {
      watcher = null;
    }
    this.#watcher = watcher;
    signal?.addEventListener('abort', () => this.#fire(), { once: true });
  }

  get aborted(): boolean {
    return this.#signal?.aborted === true;
  }

  #fire(): void {
    this.#changed = true;
    this.#wake?.();
  }

  async wait(): Promise<void> {
    if (this.#changed || this.aborted) {
      this.#changed = false;
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, this.#pollMs);
      const self = this;
      function done(): void {
        clearTimeout(timer);
        self.#wake = null;
        resolve();
      }
      this.#wake = done;
    });
    this.#changed = false;
  }

  close(): void {
    this.#watcher?.close();
    this.#wake?.();
  }
}
