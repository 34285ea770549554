import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CaptureWriter, type CaptureIo } from '../../src/capture/capture-writer.js';
import { readCaptureFile, type CaptureReadWarning } from '../../src/capture/capture-reader.js';
import { segmentPath, type CaptureHeader } from '../../src/capture/capture-format.js';
import type { CaptureEvent, CaptureGapEvent } from '../../src/capture/events.js';
import { frameEvent } from '../support/event-fixtures.js';
import { discoverCaptureSet, readCaptureSetEvents } from '../../src/capture/capture-set.js';

const dirs: string[] = [];

function tempBase(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-rotation-'));
  dirs.push(dir);
  return path.join(dir, 'cap.jsonl');
}

afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

type WriterOptions = ConstructorParameters<typeof CaptureWriter>[0];

/** Writes only when the test flushes (or at close). */
function rotatingWriter(base: string, extra: Partial<WriterOptions>): CaptureWriter {
  return new CaptureWriter({ path: base, createdBy: 'wstap unit test', flushIntervalMs: 3_600_000, highWaterBytes: 1 << 30, ...extra });
}

/** A frame whose line is about `bytes` long (its preview is most of it); `i` makes each one different. */
function sizedEvent(i: number, bytes: number): CaptureEvent {
  const preview = Buffer.alloc(Math.max(0, Math.floor(((bytes - 230) * 3) / 4)), i % 251).toString('base64');
  return frameEvent({ conn: 1, t: 1000 + i, side: i % 2 === 0 ? 'client' : 'upstream', opcode: 2, index: i, offset: i * 10, length: preview.length, preview });
}

/** The segments of the set at `base`, in order, as they are on disk now. */
function segmentsOnDisk(base: string): number[] {
  const prefix = `${path.basename(base)}.`;
  const numbers = fs
    .readdirSync(path.dirname(base))
    .flatMap((name) => (name === path.basename(base) ? [0] : name.startsWith(prefix) ? [Number(name.slice(prefix.length))] : []));
  return numbers.sort((a, b) => a - b);
}

function headerOf(file: string): CaptureHeader {
  return JSON.parse(fs.readFileSync(file, 'utf8').split('\n')[0] as string) as CaptureHeader;
}

/** Reads every file of the set with the single-file reader; checks each is whole (no warning). */
async function readSet(base: string): Promise<{ events: CaptureEvent[]; files: string[] }> {
  const files = segmentsOnDisk(base).map((n) => segmentPath(base, n));
  const events: CaptureEvent[] = [];
  for (const file of files) {
    const warnings: CaptureReadWarning[] = [];
    events.push(...(await readCaptureFile(file, { onWarning: (w) => warnings.push(w) })));
    expect(warnings, file).toEqual([]);
  }
  return { events, files };
}

async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('CaptureWriter with --rotate', () => {
  it('splits the capture between lines into files of at most SIZE bytes, each with its header, events in order', async () => {
    const base = tempBase();
    const max = 4096;
    // Asynchronous writes as in the proxy (a high-water flush every few events), and sync ones at the end.
    const writer = new CaptureWriter({ path: base, createdBy: 'wstap unit test', flushIntervalMs: 3_600_000, highWaterBytes: 1500, maxFileBytes: max });
    const events: CaptureEvent[] = [];
    for (let i = 0; i < 300; i++) {
      const event = sizedEvent(i, 250 + ((i * 397) % 900));
      events.push(event);
      writer.record(event);
      // Let the asynchronous writes (and rotations) run between bursts.
      if (i % 25 === 0) await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await writer.close();
    expect(writer.droppedEvents).toBe(0);

    const { events: read, files } = await readSet(base);
    expect(read).toStrictEqual(events);
    expect(segmentsOnDisk(base)).toEqual(Array.from({ length: files.length }, (_, n) => n));
    expect(files.length).toBeGreaterThan(20);
    const session = writer.session;
    files.forEach((file, n) => {
      const text = fs.readFileSync(file, 'utf8');
      expect(Buffer.byteLength(text), file).toBeLessThanOrEqual(max);
      expect(text.endsWith('\n'), file).toBe(true);
      expect(headerOf(file)).toStrictEqual({ format: 'wstap-capture', version: 1, createdBy: 'wstap unit test', session, segment: n });
    });
    // Files are filled: each but the last could not have taken the first line of the next.
    for (let n = 0; n + 1 < files.length; n++) {
      const next = fs.readFileSync(files[n + 1] as string, 'utf8').split('\n')[1] as string;
      expect(fs.statSync(files[n] as string).size + Buffer.byteLength(next) + 1).toBeGreaterThan(max);
    }
  });

  it('every file after the first repeats the session.start in its header, so a set --keep cut still says where it listened', async () => {
    const base = tempBase();
    const writer = rotatingWriter(base, { maxFileBytes: 4096, keepFiles: 2 });
    const start: CaptureEvent = { kind: 'session.start', t: 999, version: '1', mode: 'http', listen: '127.0.0.1:8066', target: 'http://127.0.0.1:8065', pid: 7, previewLimit: 256 };
    writer.record(start);
    for (let i = 0; i < 40; i++) writer.record(sizedEvent(i, 600));
    await writer.close();
    const files = segmentsOnDisk(base);
    expect(files[0]).toBeGreaterThan(1);
    for (const n of files) expect(headerOf(segmentPath(base, n)), `segment ${n}`).toStrictEqual({ format: 'wstap-capture', version: 1, createdBy: 'wstap unit test', session: writer.session, segment: n, start });
    // Read on its own, a later file still starts with the session's start (the set reader yields it from the header).
    const set = discoverCaptureSet(base);
    const first: CaptureEvent[] = [];
    for await (const e of readCaptureSetEvents(set)) if (first.push(e) >= 2) break;
    expect(first[0]).toStrictEqual(start);
    expect(first[1]).toMatchObject({ kind: 'ws.frame' });
  });

  it('puts a single line longer than SIZE into a file of its own, and goes on in the next', async () => {
    const base = tempBase();
    const max = 4096;
    const writer = rotatingWriter(base, { maxFileBytes: max });
    const events = [sizedEvent(0, 500), sizedEvent(1, 500), sizedEvent(2, 3 * max), sizedEvent(3, 500), sizedEvent(4, 2 * max)];
    for (const e of events) writer.record(e);
    writer.flushSync();
    await writer.close();
    const { events: read, files } = await readSet(base);
    expect(read).toStrictEqual(events);
    const linesOf = (file: string): number => fs.readFileSync(file, 'utf8').split('\n').length - 2;
    // [0, 1] | [2] alone, over SIZE | [3] | [4] alone, over SIZE
    expect(files.map(linesOf)).toEqual([2, 1, 1, 1]);
    expect(fs.statSync(files[1] as string).size).toBeGreaterThan(3 * max);
    expect(fs.statSync(files[0] as string).size).toBeLessThanOrEqual(max);
    expect(fs.statSync(files[2] as string).size).toBeLessThanOrEqual(max);
    expect(files.map((f) => headerOf(f).segment)).toEqual([0, 1, 2, 3]);
  });

  it('with --keep N deletes the oldest before creating the next: never more than N files, the newest events kept', async () => {
    const base = tempBase();
    const writer = new CaptureWriter({ path: base, createdBy: 'wstap unit test', flushIntervalMs: 3_600_000, highWaterBytes: 600, maxFileBytes: 4096, keepFiles: 3 });
    const events: CaptureEvent[] = [];
    let mostFiles = 0;
    for (let i = 0; i < 200; i++) {
      const event = sizedEvent(i, 400);
      events.push(event);
      writer.record(event);
      mostFiles = Math.max(mostFiles, segmentsOnDisk(base).length);
      if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await writer.close();
    expect(mostFiles).toBeLessThanOrEqual(3);
    const last = writer.segment;
    expect(last).toBeGreaterThan(5);
    expect(segmentsOnDisk(base)).toEqual([last - 2, last - 1, last]);
    const { events: read } = await readSet(base);
    // Whatever is left is the tail of what was recorded, whole and in order.
    expect(read.length).toBeGreaterThan(10);
    expect(read).toStrictEqual(events.slice(events.length - read.length));
  });

  it('--keep 1: one file at a time', async () => {
    const base = tempBase();
    const writer = rotatingWriter(base, { maxFileBytes: 4096, keepFiles: 1 });
    for (let i = 0; i < 40; i++) writer.record(sizedEvent(i, 500));
    writer.flushSync();
    await writer.close();
    expect(segmentsOnDisk(base)).toEqual([writer.segment]);
    expect(writer.segment).toBeGreaterThan(3);
  });

  it('a failing delete is reported and the capture goes on (one file over --keep)', async () => {
    const base = tempBase();
    const failed: Array<{ file: string; code: string | undefined }> = [];
    const writer = rotatingWriter(base, { maxFileBytes: 4096, keepFiles: 1, onDeleteError: (file, err) => failed.push({ file, code: err.code }) });
    // Segment 0 becomes a directory with something in it: unlink fails (EISDIR), as it would on a read-only or busy file.
    fs.renameSync(base, `${base}.moved`);
    fs.mkdirSync(base);
    fs.writeFileSync(path.join(base, 'x'), 'x');
    const events: CaptureEvent[] = [];
    for (let i = 0; i < 12; i++) events.push(sizedEvent(i, 800));
    for (const e of events) writer.record(e);
    writer.flushSync();
    await writer.close();
    expect(failed).toEqual([{ file: base, code: 'EISDIR' }]);
    expect(writer.droppedEvents).toBe(0);
    expect(fs.statSync(base).isDirectory()).toBe(true);
    // The capture went on: the newest file holds the last event.
    const newest = await readCaptureFile(segmentPath(base, writer.segment));
    expect(newest.at(-1)).toStrictEqual(events.at(-1));
  });

  it('without --force refuses to start over an earlier set; with it deletes the leftovers at start', () => {
    const base = tempBase();
    fs.writeFileSync(`${base}.3`, 'old');
    fs.writeFileSync(`${base}.notes`, 'not a segment');
    let error: NodeJS.ErrnoException | null = null;
    try {
      rotatingWriter(base, { maxFileBytes: 4096 });
    } catch (err) {
      error = err as NodeJS.ErrnoException;
    }
    expect(error?.code).toBe('EEXIST');
    expect(error?.path).toBe(`${base}.3`);
    expect(fs.existsSync(base)).toBe(false);

    const writer = rotatingWriter(base, { maxFileBytes: 4096, overwrite: true });
    expect(fs.existsSync(`${base}.3`)).toBe(false);
    expect(fs.readFileSync(`${base}.notes`, 'utf8')).toBe('not a segment');
    void writer.close();
  });

  it('new files are created 0600 (and an overwritten one is made 0600)', async () => {
    const base = tempBase();
    fs.writeFileSync(`${base}`, 'old', { mode: 0o644 });
    const writer = rotatingWriter(base, { maxFileBytes: 4096, overwrite: true });
    for (let i = 0; i < 20; i++) writer.record(sizedEvent(i, 500));
    await writer.close();
    for (const n of segmentsOnDisk(base)) expect(fs.statSync(segmentPath(base, n)).mode & 0o777).toBe(0o600);
  });

  it('while a write is out (maybe rotating), flushSync leaves the lines to it and flush() waits for it: files stay in order, within SIZE, each header first', async () => {
    const base = tempBase();
    const slow = new SlowDisk();
    const writer = new CaptureWriter({ path: base, createdBy: 'wstap unit test', flushIntervalMs: 3_600_000, highWaterBytes: 3000, maxFileBytes: 4096, io: slow });
    const events: CaptureEvent[] = [];
    const record = (i: number): void => {
      const event = sizedEvent(i, 700);
      events.push(event);
      writer.record(event);
    };
    // Past the high-water mark: an asynchronous write across several files starts, each piece's callback held back.
    for (let i = 0; i < 20; i++) record(i);
    expect(slow.held).toBeGreaterThan(0);
    for (let i = 20; i < 30; i++) record(i);
    // The UI's export asks for everything so far while that write is still out (the last-resort path calls flushSync).
    const before = segmentsOnDisk(base).map((n) => fs.statSync(segmentPath(base, n)).size);
    writer.flushSync();
    expect(segmentsOnDisk(base).map((n) => fs.statSync(segmentPath(base, n)).size)).toEqual(before);
    const flushed = writer.flush();
    slow.release();
    await flushed;
    const { events: read, files } = await readSet(base);
    expect(read).toStrictEqual(events);
    for (const file of files) expect(fs.statSync(file).size, file).toBeLessThanOrEqual(4096);
    await writer.close();
  });

  it('a disk that fills mid-set: the gap goes into the file being written, files stay within SIZE and readable', async () => {
    const base = tempBase();
    const disk = new RoomDisk(6000);
    const resumed: CaptureGapEvent[] = [];
    const writer = new CaptureWriter({
      path: base,
      createdBy: 'wstap unit test',
      flushIntervalMs: 5,
      retryIntervalMs: 20,
      highWaterBytes: 1 << 30,
      maxFileBytes: 4096,
      io: disk,
      onResume: (gap) => resumed.push(gap),
    });
    for (let i = 0; i < 30; i++) writer.record(sizedEvent(i, 700));
    await until(() => writer.health().refusing === 'ENOSPC', 'the disk to fill');
    for (let i = 30; i < 40; i++) writer.record(sizedEvent(i, 700));
    disk.room = Infinity;
    await until(() => resumed.length === 1, 'the gap');
    for (let i = 40; i < 50; i++) writer.record(sizedEvent(i, 700));
    await writer.close();

    const files = segmentsOnDisk(base).map((n) => segmentPath(base, n));
    const all: CaptureEvent[] = [];
    let skipped = 0;
    for (const file of files) {
      expect(fs.statSync(file).size).toBeLessThanOrEqual(4096);
      all.push(...(await readCaptureFile(file, { onWarning: () => skipped++ })));
    }
    // At most the one line the failed write tore.
    expect(skipped).toBeLessThanOrEqual(1);
    const gap = all.find((e): e is CaptureGapEvent => e.kind === 'capture.gap');
    expect(gap?.code).toBe('ENOSPC');
    const frames = all.filter((e) => e.kind === 'ws.frame').length;
    expect(frames + (gap?.lostEvents ?? 0)).toBe(50);
    expect(writer.droppedEvents).toBe(gap?.lostEvents);
  });
});

/** fs writes until `room` bytes have been written, then ENOSPC. */
class RoomDisk implements CaptureIo {
  constructor(public room: number) {}

  write(fd: number, buffer: Buffer, offset: number, length: number, callback: (err: NodeJS.ErrnoException | null, written: number) => void): void {
    setImmediate(() => {
      let n: number;
      try {
        n = this.writeSync(fd, buffer, offset, length);
      } catch (err) {
        return callback(err as NodeJS.ErrnoException, 0);
      }
      callback(null, n);
    });
  }

  writeSync(fd: number, buffer: Buffer, offset: number, length: number): number {
    if (this.room <= 0) throw Object.assign(new Error('ENOSPC: the test disk is full, write'), { code: 'ENOSPC', syscall: 'write' });
    const n = fs.writeSync(fd, buffer, offset, Math.min(length, this.room), null);
    this.room -= n;
    return n;
  }
}

/** fs writes whose callbacks come only once released (then at once): a write stays "out" as long as a test needs. */
class SlowDisk implements CaptureIo {
  #released = false;
  #waiting: Array<() => void> = [];

  get held(): number {
    return this.#waiting.length;
  }

  release(): void {
    this.#released = true;
    for (const go of this.#waiting.splice(0)) go();
  }

  write(fd: number, buffer: Buffer, offset: number, length: number, callback: (err: NodeJS.ErrnoException | null, written: number) => void): void {
    const n = fs.writeSync(fd, buffer, offset, length, null);
    const done = (): void => callback(null, n);
    if (this.#released) setImmediate(done);
    else this.#waiting.push(done);
  }

  writeSync(fd: number, buffer: Buffer, offset: number, length: number): number {
    return fs.writeSync(fd, buffer, offset, length, null);
  }
}
