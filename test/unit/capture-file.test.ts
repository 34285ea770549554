import { describe, it, expect, afterEach } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CaptureWriter, type CaptureIo } from '../../src/capture/capture-writer.js';
import {
  CaptureFormatError,
  readCaptureEvents,
  readCaptureFile,
  type CaptureReadWarning,
} from '../../src/capture/capture-reader.js';
import { CAPTURE_FORMAT, CAPTURE_VERSION, captureHeaderLine } from '../../src/capture/capture-format.js';
import { GAP_BACKLOG, type CaptureEvent, type CaptureGapEvent, type FrameEvent } from '../../src/capture/events.js';
import { waitUntil } from '../support/wait-until.js';

const dirs: string[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-unit-'));
  dirs.push(dir);
  return dir;
}

function tempPath(name = 'capture.jsonl'): string {
  return path.join(tempDir(), name);
}

afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** A writer that never flushes on its own during a test: only close()/flushSync() write. */
function quietWriter(p: string, extra: Partial<ConstructorParameters<typeof CaptureWriter>[0]> = {}): CaptureWriter {
  return new CaptureWriter({ path: p, createdBy: 'wstap unit test', flushIntervalMs: 3_600_000, highWaterBytes: 1 << 30, ...extra });
}

function frame(t: number, side: 'client' | 'upstream', index: number, extra: Partial<FrameEvent> = {}): FrameEvent {
  return {
    kind: 'ws.frame',
    t,
    conn: 1,
    side,
    index,
    offset: index * 7,
    opcode: 1,
    fin: true,
    rsv1: false,
    rsv2: false,
    rsv3: false,
    masked: side === 'client',
    length: 5,
    preview: Buffer.from('hello').toString('base64'),
    previewTruncated: false,
    ...extra,
  };
}

function sampleEvents(): CaptureEvent[] {
  return [
    { kind: 'session.start', t: 1000.001, version: '0.1.0', mode: 'http', listen: '127.0.0.1:8066', target: 'http://127.0.0.1:8065', pid: 42, previewLimit: 64 },
    { kind: 'conn.open', t: 1001.5, conn: 1, mode: 'http', remoteAddress: '127.0.0.1', remotePort: 50000, localPort: 8066 },
    {
      kind: 'ws.handshake.request',
      t: 1001.75,
      conn: 1,
      method: 'GET',
      url: '/ws?x=ü',
      httpVersion: '1.1',
      rawHeaders: [['Host', 'example'], ['Upgrade', 'websocket']],
      headLength: 120,
    },
    frame(1002.125, 'client', 0),
    frame(1003.25, 'upstream', 0, { opcode: 8, length: 2, closeCode: 1000, closeReason: 'bye\n', idle: { client: 1.5, upstream: 0.25 } }),
    { kind: 'tcp.fin', t: 1004, conn: 1, side: 'upstream', idle: { client: 2, upstream: 0.75 } },
    { kind: 'conn.close', t: 1005, conn: 1, bytes: { fromClient: 300, fromUpstream: 200 } },
    { kind: 'session.end', t: 1006, reason: 'SIGINT', droppedEvents: 0 },
  ];
}

async function writeCapture(p: string, events: CaptureEvent[]): Promise<void> {
  const writer = quietWriter(p);
  for (const e of events) writer.record(e);
  await writer.close();
}

async function expectFormatError(promise: Promise<unknown>): Promise<CaptureFormatError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CaptureFormatError);
  return error as CaptureFormatError;
}

describe('CaptureWriter + readCaptureFile round trip', () => {
  it('reads back identical events in the order they were recorded', async () => {
    const p = tempPath();
    const events = sampleEvents();
    await writeCapture(p, events);
    const read = await readCaptureFile(p);
    expect(read).toStrictEqual(events);
  });

  it('counts the written events', async () => {
    const p = tempPath();
    const writer = quietWriter(p);
    for (const e of sampleEvents()) writer.record(e);
    await writer.close();
    expect(writer.writtenEvents).toBe(sampleEvents().length);
    expect(writer.droppedEvents).toBe(0);
  });

  it('writes the header (format, version, session, segment 0) as the first line and one event per line', async () => {
    const p = tempPath();
    const events = sampleEvents();
    await writeCapture(p, events);
    const lines = fs.readFileSync(p, 'utf8').split('\n');
    const header = JSON.parse(lines[0] as string) as Record<string, unknown>;
    expect(header).toStrictEqual({ format: 'wstap-capture', version: 1, createdBy: 'wstap unit test', session: header.session, segment: 0 });
    expect(header.session).toMatch(/^[0-9a-f-]{36}$/);
    expect(CAPTURE_FORMAT).toBe('wstap-capture');
    expect(CAPTURE_VERSION).toBe(1);
    // header + one line per event + the empty string after the final newline
    expect(lines).toHaveLength(events.length + 2);
    expect(lines.at(-1)).toBe('');
    expect(lines.slice(1, -1).map((l) => JSON.parse(l) as unknown)).toStrictEqual(events);
  });

  it('reads a header-only capture as no events', async () => {
    const p = tempPath();
    await writeCapture(p, []);
    expect(fs.readFileSync(p, 'utf8')).toMatch(/^\{"format":"wstap-capture","version":1,"createdBy":"wstap unit test","session":"[0-9a-f-]{36}","segment":0\}\n$/);
    expect(await readCaptureFile(p)).toStrictEqual([]);
  });

  it('creates the file with mode 0600', async () => {
    const p = tempPath();
    await writeCapture(p, sampleEvents());
    expect(fs.statSync(p).mode & 0o777).toBe(0o600);
  });

  it('refuses an existing file with EEXIST and leaves it untouched', () => {
    const p = tempPath();
    fs.writeFileSync(p, 'precious evidence\n');
    let error: unknown = null;
    try {
      quietWriter(p);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(Error);
    expect((error as NodeJS.ErrnoException).code).toBe('EEXIST');
    expect(fs.readFileSync(p, 'utf8')).toBe('precious evidence\n');
  });

  it('replaces an existing file with overwrite: true, and makes it 0600', async () => {
    const p = tempPath();
    fs.writeFileSync(p, 'old content that is longer than nothing\n'.repeat(50), { mode: 0o644 });
    fs.chmodSync(p, 0o644);
    const writer = quietWriter(p, { overwrite: true });
    const events = sampleEvents().slice(0, 2);
    for (const e of events) writer.record(e);
    await writer.close();
    expect(fs.statSync(p).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(p, 'utf8')).not.toContain('old content');
    expect(await readCaptureFile(p)).toStrictEqual(events);
  });

  it('counts events recorded after close() as dropped and does not write them', async () => {
    const p = tempPath();
    const writer = quietWriter(p);
    const events = sampleEvents();
    writer.record(events[0] as CaptureEvent);
    await writer.close();
    writer.record(events[1] as CaptureEvent);
    writer.record(events[2] as CaptureEvent);
    expect(writer.droppedEvents).toBe(2);
    expect(writer.writtenEvents).toBe(1);
    expect(await readCaptureFile(p)).toStrictEqual([events[0]]);
  });

  it('close() twice is harmless', async () => {
    const p = tempPath();
    const writer = quietWriter(p);
    writer.record(sampleEvents()[0] as CaptureEvent);
    await writer.close();
    await writer.close();
    expect(await readCaptureFile(p)).toStrictEqual([sampleEvents()[0]]);
  });

  it('flushSync() writes the pending events to the file at once', async () => {
    const p = tempPath();
    const writer = quietWriter(p);
    const events = sampleEvents().slice(0, 3);
    for (const e of events) writer.record(e);
    // Nothing but the header before the flush (no timer or high-water flush can run in between).
    expect(fs.readFileSync(p, 'utf8')).toBe(captureHeaderLine('wstap unit test', { session: writer.session, segment: 0 }));
    writer.flushSync();
    const lines = fs.readFileSync(p, 'utf8').split('\n').slice(1, -1);
    expect(lines.map((l) => JSON.parse(l) as unknown)).toStrictEqual(events);
    expect(writer.writtenEvents).toBe(3);
    await writer.close();
    expect(await readCaptureFile(p)).toStrictEqual(events);
  });

  it('keeps every line whole and in order across its 1 MiB buffers, with lines bigger than a buffer and multi-byte text, while writes are out', async () => {
    const p = tempPath();
    // Early writes on: batches go out while later lines are still being encoded.
    const writer = new CaptureWriter({ path: p, createdBy: 'wstap unit test', flushIntervalMs: 3_600_000, highWaterBytes: 100_000 });
    const events: CaptureEvent[] = [];
    for (let i = 0; i < 30_000; i++) {
      const event: CaptureEvent =
        i % 5000 === 17
          ? { kind: 'ws.handshake.request', t: i, conn: 1, method: 'GET', url: `/é${'😀'.repeat(300_000)}`, httpVersion: '1.1', rawHeaders: [['X', 'ü'.repeat(i)]], headLength: i }
          : frame(i, i % 2 ? 'client' : 'upstream', i, i % 7 === 0 ? { opcode: 8, closeCode: 1000, closeReason: `€${i}` } : {});
      events.push(event);
      writer.record(event);
      if (i % 1000 === 0) await new Promise((r) => setImmediate(r));
    }
    // High-water writes, not the (hour-long) timer or close, drain the buffer: how soon depends on the disk and the machine's load.
    await waitUntil('the high-water writes to drain the buffer', () => writer.bufferedBytes < 100_000 + 2 ** 21, { timeoutMs: 30_000, intervalMs: 20 });
    await writer.close();
    expect(writer.writtenEvents).toBe(events.length);
    expect(writer.droppedEvents).toBe(0);
    expect(await readCaptureFile(p)).toStrictEqual(events);
  });

  it('drops (and counts) events past maxBufferedBytes instead of buffering them, and the file says so', async () => {
    const p = tempPath();
    const writer = quietWriter(p, { maxBufferedBytes: 10, now: () => 1500 });
    const events = sampleEvents();
    for (const e of events.slice(0, 3)) writer.record(e);
    // The first line takes the buffer past 10 bytes; the next two are dropped.
    expect(writer.droppedEvents).toBe(2);
    await writer.close();
    const gap: CaptureGapEvent = { kind: 'capture.gap', t: 1500, from: events[1]?.t ?? 0, lostEvents: 2, code: GAP_BACKLOG };
    expect(await readCaptureFile(p)).toStrictEqual([events[0], gap]);
  });
});

describe('readCaptureFile on damaged or foreign files', () => {
  it('reads every event before a cut last line and warns with its line number', async () => {
    const p = tempPath();
    const events = sampleEvents();
    await writeCapture(p, events);
    const cut = JSON.stringify(frame(2000, 'client', 9)).slice(0, 40);
    fs.appendFileSync(p, cut);
    const warnings: CaptureReadWarning[] = [];
    const read = await readCaptureFile(p, { onWarning: (w) => warnings.push(w) });
    expect(read).toStrictEqual(events);
    expect(warnings).toHaveLength(1);
    // header is line 1, events are lines 2..n+1, the cut line is n+2
    expect(warnings[0]?.line).toBe(events.length + 2);
    expect(warnings[0]?.message).toContain('cut short');
  });

  it('does not throw on a cut last line when nobody listens for warnings', async () => {
    const p = tempPath();
    const events = sampleEvents().slice(0, 2);
    await writeCapture(p, events);
    fs.appendFileSync(p, '{"kind":"ws.fra');
    expect(await readCaptureFile(p)).toStrictEqual(events);
  });

  it('throws CaptureFormatError naming the line for damage in the middle', async () => {
    const p = tempPath();
    const events = sampleEvents().slice(0, 3);
    fs.writeFileSync(
      p,
      captureHeaderLine('test') +
        JSON.stringify(events[0]) + '\n' +
        JSON.stringify(events[1]) + '\n' +
        '{"kind":"ws.frame","t":12\n' +
        JSON.stringify(events[2]) + '\n',
    );
    const warnings: CaptureReadWarning[] = [];
    const error = await expectFormatError(readCaptureFile(p, { onWarning: (w) => warnings.push(w) }));
    expect(error.line).toBe(4);
    expect(error.path).toBe(p);
    expect(error.code).toBe('WSTAP_BAD_CAPTURE');
    expect(error.message).toContain(`${p}:4:`);
    expect(warnings).toStrictEqual([]);
  });

  it('streams the events before mid-file damage, then throws', async () => {
    const p = tempPath();
    const events = sampleEvents().slice(0, 2);
    fs.writeFileSync(p, captureHeaderLine('test') + JSON.stringify(events[0]) + '\nnot json at all\n' + JSON.stringify(events[1]) + '\n');
    const seen: CaptureEvent[] = [];
    let error: unknown = null;
    try {
      for await (const e of readCaptureEvents(p)) seen.push(e);
    } catch (e) {
      error = e;
    }
    expect(seen).toStrictEqual([events[0]]);
    expect(error).toBeInstanceOf(CaptureFormatError);
    expect((error as CaptureFormatError).line).toBe(3);
  });

  it('treats a JSON line that is not an event (no kind/t) in the middle as damage', async () => {
    const p = tempPath();
    const events = sampleEvents().slice(0, 2);
    fs.writeFileSync(p, captureHeaderLine('test') + JSON.stringify(events[0]) + '\n{"kind":"x"}\n' + JSON.stringify(events[1]) + '\n');
    const error = await expectFormatError(readCaptureFile(p));
    expect(error.line).toBe(3);
    expect(error.message).toContain('not a capture event');
  });

  it('refuses binary garbage with line 1', async () => {
    const p = tempPath();
    fs.writeFileSync(p, crypto.randomBytes(4096));
    const error = await expectFormatError(readCaptureFile(p));
    expect(error.line).toBe(1);
    expect(error.message).toContain('not a wstap capture');
  });

  it('refuses a JSON-lines file without the header with line 1', async () => {
    const p = tempPath();
    const events = sampleEvents();
    fs.writeFileSync(p, events.map((e) => JSON.stringify(e) + '\n').join(''));
    const error = await expectFormatError(readCaptureFile(p));
    expect(error.line).toBe(1);
    expect(error.message).toContain('not a wstap capture');
    expect(error.message).toContain('wstap-capture');
  });

  it('refuses a newer format version and says to upgrade', async () => {
    const p = tempPath();
    fs.writeFileSync(p, '{"format":"wstap-capture","version":99}\n' + JSON.stringify(sampleEvents()[0]) + '\n');
    const error = await expectFormatError(readCaptureFile(p));
    expect(error.line).toBe(1);
    expect(error.message).toContain('99');
    expect(error.message).toMatch(/upgrade/i);
  });

  it('refuses an empty file', async () => {
    const p = tempPath();
    fs.writeFileSync(p, '');
    const error = await expectFormatError(readCaptureFile(p));
    expect(error.line).toBe(1);
    expect(error.message).toContain('empty');
  });
});

/**
 * A disk with `room` bytes left: a write past it is cut short (as write(2)
 * does at a full disk or a file size limit), the next one fails with `code`.
 * Bytes that fit go to the real file, so the reader reads what a real disk
 * would hold.
 */
class FillingDisk implements CaptureIo {
  room = Infinity;
  code = 'ENOSPC';
  attempts = 0;
  failures = 0;
  /** Asynchronous writes issued and not yet answered (a batch's next write is issued from the callback of the one before). */
  inFlight = 0;

  write(fd: number, buffer: Buffer, offset: number, length: number, callback: (err: NodeJS.ErrnoException | null, written: number) => void): void {
    this.inFlight++;
    setImmediate(() => {
      this.inFlight--;
      let n: number;
      try {
        n = this.writeSync(fd, buffer, offset, length);
      } catch (err) {
        callback(err as NodeJS.ErrnoException, 0);
        return;
      }
      callback(null, n);
    });
  }

  writeSync(fd: number, buffer: Buffer, offset: number, length: number): number {
    this.attempts++;
    if (this.room <= 0) {
      this.failures++;
      throw Object.assign(new Error(`${this.code}: the test disk is full, write`), { code: this.code, syscall: 'write' });
    }
    const n = fs.writeSync(fd, buffer, offset, Math.min(length, this.room), null);
    this.room -= n;
    return n;
  }
}

async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const lineOf = (event: CaptureEvent): string => JSON.stringify(event) + '\n';

/** A writer on a FillingDisk with a clock the test sets; writes on its own every 5 ms, retries every 20 ms. */
function diskWriter(p: string, disk: FillingDisk, clock: { now: number }, extra: Partial<ConstructorParameters<typeof CaptureWriter>[0]> = {}) {
  const errors: NodeJS.ErrnoException[] = [];
  const resumed: CaptureGapEvent[] = [];
  const writer = new CaptureWriter({
    path: p,
    createdBy: 'wstap unit test',
    flushIntervalMs: 5,
    retryIntervalMs: 20,
    highWaterBytes: 1 << 30,
    io: disk,
    now: () => clock.now,
    onError: (err) => errors.push(err),
    onResume: (gap) => resumed.push(gap),
    ...extra,
  });
  return { writer, errors, resumed };
}

describe('CaptureWriter when the disk fails', () => {
  it('keeps counting while the disk is full, retries quietly, and writes a capture.gap with the count once it accepts data again', async () => {
    const p = tempPath();
    const disk = new FillingDisk();
    const clock = { now: 5000 };
    const { writer, errors, resumed } = diskWriter(p, disk, clock);
    const before = [frame(1000, 'client', 0), frame(1001, 'upstream', 0)];
    for (const e of before) writer.record(e);
    await until(() => writer.writtenEvents === 2, 'the first events to be written');
    expect(writer.health()).toStrictEqual({ lostEvents: 0, refusing: null, paused: null });

    disk.room = 0;
    const lost = Array.from({ length: 30 }, (_, i) => frame(2000 + i, 'client', i + 1));
    for (const e of lost.slice(0, 10)) writer.record(e);
    await until(() => errors.length === 1, 'the failure to be told');
    expect(errors[0]?.code).toBe('ENOSPC');
    for (const e of lost.slice(10)) writer.record(e);
    // Those that came while a retry was out (every 20 ms) are counted once it fails.
    await until(() => writer.droppedEvents === 30, 'all 30 counted as dropped');
    // Retries happen (every 20 ms here) and fail without another report.
    const failuresSoFar = disk.failures;
    await until(() => disk.failures >= failuresSoFar + 3, 'retries');
    expect(errors).toHaveLength(1);
    expect(resumed).toHaveLength(0);
    // What a display shows meanwhile.
    expect(writer.health()).toStrictEqual({ lostEvents: 30, refusing: 'ENOSPC', paused: null });

    clock.now = 9000;
    disk.room = Infinity;
    await until(() => resumed.length === 1, 'the capture to resume');
    expect(writer.health()).toStrictEqual({ lostEvents: 30, refusing: null, paused: null });
    const after = [frame(9001, 'client', 31), frame(9002, 'upstream', 1)];
    for (const e of after) writer.record(e);
    await writer.close();

    const gap: CaptureGapEvent = { kind: 'capture.gap', t: 9000, from: 2000, lostEvents: 30, code: 'ENOSPC' };
    expect(resumed).toStrictEqual([gap]);
    const warnings: CaptureReadWarning[] = [];
    expect(await readCaptureFile(p, { onWarning: (w) => warnings.push(w) })).toStrictEqual([...before, gap, ...after]);
    expect(warnings).toStrictEqual([]);
    expect(writer.droppedEvents).toBe(30);
    expect(writer.writtenEvents).toBe(4);
    expect(errors).toHaveLength(1);
  });

  it('a short write followed by an error: the torn line is ended by a newline before the gap, and counted as lost', async () => {
    const p = tempPath();
    const disk = new FillingDisk();
    const clock = { now: 7000 };
    const { writer, errors, resumed } = diskWriter(p, disk, clock, { flushIntervalMs: 3_600_000 });
    const events = [frame(1000, 'client', 0), frame(1001, 'client', 1), frame(1002, 'client', 2)];
    // Room for the first line and 10 bytes of the second.
    disk.room = Buffer.byteLength(lineOf(events[0] as CaptureEvent)) + 10;
    for (const e of events) writer.record(e);
    writer.flushSync();
    expect(writer.writtenEvents).toBe(1);
    expect(writer.droppedEvents).toBe(2);
    expect(errors.map((e) => e.code)).toStrictEqual(['ENOSPC']);

    disk.room = Infinity;
    const later = frame(8000, 'upstream', 0);
    writer.record(later); // still failing until a retry succeeds: dropped
    await writer.close(); // close tries once more, and the disk has room now
    const gap: CaptureGapEvent = { kind: 'capture.gap', t: 7000, from: 1001, lostEvents: 3, code: 'ENOSPC' };
    expect(resumed).toStrictEqual([gap]);

    const lines = fs.readFileSync(p, 'utf8').split('\n');
    expect(lines[2]).toBe(lineOf(events[1] as CaptureEvent).slice(0, 10));
    expect(JSON.parse(lines[3] as string)).toStrictEqual(gap);
    const warnings: CaptureReadWarning[] = [];
    expect(await readCaptureFile(p, { onWarning: (w) => warnings.push(w) })).toStrictEqual([events[0], gap]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.line).toBe(3);
    expect(warnings[0]?.message).toContain('torn');
  });

  it('short writes that succeed are continued until every line is whole', async () => {
    const p = tempPath();
    // A disk that takes at most 7 bytes per call and never fails.
    const io: CaptureIo = {
      write: (fd, buffer, offset, length, callback) => fs.write(fd, buffer, offset, Math.min(length, 7), null, callback),
      writeSync: (fd, buffer, offset, length) => fs.writeSync(fd, buffer, offset, Math.min(length, 7), null),
    };
    const writer = new CaptureWriter({ path: p, createdBy: 'wstap unit test', flushIntervalMs: 5, io });
    const events = sampleEvents();
    for (const e of events.slice(0, 4)) writer.record(e);
    await until(() => writer.writtenEvents === 4, 'the asynchronous writes');
    for (const e of events.slice(4)) writer.record(e);
    await writer.close();
    expect(writer.droppedEvents).toBe(0);
    expect(await readCaptureFile(p)).toStrictEqual(events);
  });

  it('a line cut just before its newline is kept: the newline before the gap completes it', async () => {
    const p = tempPath();
    const disk = new FillingDisk();
    const { writer } = diskWriter(p, disk, { now: 3000 }, { flushIntervalMs: 3_600_000 });
    const events = [frame(1000, 'client', 0), frame(1001, 'client', 1)];
    disk.room = Buffer.byteLength(lineOf(events[0] as CaptureEvent)) - 1;
    for (const e of events) writer.record(e);
    writer.flushSync();
    expect(writer.writtenEvents).toBe(1);
    disk.room = Infinity;
    await writer.close();
    const warnings: CaptureReadWarning[] = [];
    const gap: CaptureGapEvent = { kind: 'capture.gap', t: 3000, from: 1001, lostEvents: 1, code: 'ENOSPC' };
    expect(await readCaptureFile(p, { onWarning: (w) => warnings.push(w) })).toStrictEqual([events[0], gap]);
    expect(warnings).toStrictEqual([]);
  });

  it('a retry that is itself cut short leaves another torn line; the next gap counts everything', async () => {
    const p = tempPath();
    const disk = new FillingDisk();
    disk.code = 'EFBIG';
    const clock = { now: 4000 };
    const { writer, errors, resumed } = diskWriter(p, disk, clock);
    const first = frame(1000, 'client', 0);
    disk.room = 20;
    writer.record(first);
    await until(() => errors.length === 1, 'the failure');
    writer.record(frame(1001, 'client', 1));
    // The retry writes the newline and 15 bytes of its gap line, then fails again.
    const failuresBefore = disk.failures;
    disk.room = 16;
    // Its failure, and no retry out: one taken meanwhile would go through once the disk has room again.
    await until(() => disk.room === 0 && disk.failures > failuresBefore && disk.inFlight === 0, 'a retry cut short');
    writer.record(frame(1002, 'client', 2));
    clock.now = 6000;
    disk.room = Infinity;
    await until(() => resumed.length === 1, 'the capture to resume');
    await writer.close();
    const gap: CaptureGapEvent = { kind: 'capture.gap', t: 6000, from: 1000, lostEvents: 3, code: 'EFBIG' };
    expect(resumed).toStrictEqual([gap]);
    expect(errors).toHaveLength(1);
    const warnings: CaptureReadWarning[] = [];
    expect(await readCaptureFile(p, { onWarning: (w) => warnings.push(w) })).toStrictEqual([gap]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.message).toContain('2 lines torn');
  });

  it('holds no events while failing, whatever arrives: memory stays bounded', async () => {
    const p = tempPath();
    const disk = new FillingDisk();
    disk.room = 0;
    const { writer, errors } = diskWriter(p, disk, { now: 1 }, { maxBufferedBytes: 64 * 1024 });
    writer.record(frame(1, 'client', 0));
    await until(() => errors.length === 1, 'the failure');
    const big = frame(2, 'client', 1, { preview: Buffer.alloc(700, 1).toString('base64') });
    let maxHeld = 0;
    for (let i = 0; i < 50_000; i++) {
      writer.record(big);
      maxHeld = Math.max(maxHeld, writer.bufferedBytes);
      // Let retries run now and then: what arrives during one is held (up to the limit) until it fails.
      if (i % 5000 === 0) await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect(maxHeld).toBeLessThanOrEqual(64 * 1024 + lineOf(big).length);
    // Events that arrived while the last retry was out are counted once it fails.
    await until(() => writer.droppedEvents === 50_001, 'every event counted as dropped');
    expect(writer.writtenEvents).toBe(0);
    await writer.close();
    // Still failing at close: the count stays with the writer (and the session summary), the file has the header only.
    expect(writer.droppedEvents).toBe(50_001);
    expect(await readCaptureFile(p)).toStrictEqual([]);
  });

  it('records after a failure never throw into the caller, even when the disk throws synchronously', async () => {
    const p = tempPath();
    const io: CaptureIo = {
      write: () => {
        throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
      },
      writeSync: () => {
        throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
      },
    };
    const errors: string[] = [];
    const writer = new CaptureWriter({ path: p, createdBy: 'wstap unit test', flushIntervalMs: 5, retryIntervalMs: 5, highWaterBytes: 1, io, onError: (e) => errors.push(e.code ?? '') });
    for (let i = 0; i < 100; i++) expect(() => writer.record(frame(i, 'client', i))).not.toThrow();
    await new Promise((resolve) => setTimeout(resolve, 50));
    await writer.close();
    expect(errors).toStrictEqual(['EIO']);
    expect(writer.droppedEvents).toBe(100);
  });
});

describe('readCaptureFile and torn lines', () => {
  const gap: CaptureGapEvent = { kind: 'capture.gap', t: 1500, from: 1002, lostEvents: 4, code: 'EFBIG' };

  it('skips a torn line followed by a capture.gap, warns once, and reads every event after it', async () => {
    const p = tempPath();
    const events = sampleEvents();
    fs.writeFileSync(
      p,
      captureHeaderLine('test') +
        lineOf(events[0] as CaptureEvent) +
        lineOf(events[1] as CaptureEvent).slice(0, 25) + '\n' +
        lineOf(gap) +
        events.slice(2).map(lineOf).join(''),
    );
    const warnings: CaptureReadWarning[] = [];
    expect(await readCaptureFile(p, { onWarning: (w) => warnings.push(w) })).toStrictEqual([events[0], gap, ...events.slice(2)]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.line).toBe(3);
    expect(warnings[0]?.message).toContain('line 4');
  });

  it('still refuses a torn line that no capture.gap explains, and a JSON line that is not an event before a gap', async () => {
    const events = sampleEvents();
    const torn = tempPath();
    fs.writeFileSync(torn, captureHeaderLine('test') + '{"kind":"ws.fr\n' + lineOf(events[1] as CaptureEvent) + lineOf(gap));
    expect((await expectFormatError(readCaptureFile(torn))).line).toBe(2);
    const notEvent = tempPath();
    fs.writeFileSync(notEvent, captureHeaderLine('test') + '{"x":1}\n' + lineOf(gap));
    expect((await expectFormatError(readCaptureFile(notEvent))).line).toBe(2);
  });
});
