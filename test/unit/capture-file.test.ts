import { describe, it, expect, afterEach } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CaptureWriter } from '../../src/capture/capture-writer.js';
import {
  CaptureFormatError,
  readCaptureEvents,
  readCaptureFile,
  type CaptureReadWarning,
} from '../../src/capture/capture-reader.js';
import { CAPTURE_FORMAT, CAPTURE_VERSION, captureHeaderLine } from '../../src/capture/capture-format.js';
import type { CaptureEvent, FrameEvent } from '../../src/capture/events.js';

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

  it('writes the header (format and version) as the first line and one event per line', async () => {
    const p = tempPath();
    const events = sampleEvents();
    await writeCapture(p, events);
    const lines = fs.readFileSync(p, 'utf8').split('\n');
    expect(JSON.parse(lines[0] as string)).toStrictEqual({ format: 'wstap-capture', version: 1, createdBy: 'wstap unit test' });
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
    expect(fs.readFileSync(p, 'utf8')).toBe(captureHeaderLine('wstap unit test'));
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
    expect(fs.readFileSync(p, 'utf8')).toBe(captureHeaderLine('wstap unit test'));
    writer.flushSync();
    const lines = fs.readFileSync(p, 'utf8').split('\n').slice(1, -1);
    expect(lines.map((l) => JSON.parse(l) as unknown)).toStrictEqual(events);
    expect(writer.writtenEvents).toBe(3);
    await writer.close();
    expect(await readCaptureFile(p)).toStrictEqual(events);
  });

  it('drops (and counts) events past maxBufferedBytes instead of buffering them', async () => {
    const p = tempPath();
    const writer = quietWriter(p, { maxBufferedBytes: 10 });
    const events = sampleEvents();
    for (const e of events.slice(0, 3)) writer.record(e);
    // The first line takes the buffer past 10 bytes; the next two are dropped.
    expect(writer.droppedEvents).toBe(2);
    await writer.close();
    expect(await readCaptureFile(p)).toStrictEqual([events[0]]);
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
