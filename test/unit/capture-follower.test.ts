import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { captureHeaderLine, segmentPath } from '../../src/capture/capture-format.js';
import { followCapture, headerState } from '../../src/capture/capture-follower.js';
import { checkCaptureHeader } from '../../src/capture/capture-reader.js';
import type { CaptureSetWarning } from '../../src/capture/capture-set.js';
import type { CaptureEvent } from '../../src/capture/events.js';
import { closeEvent, frameEvent, openEvent } from '../support/event-fixtures.js';

const T0 = 1_790_000_000_000;
let dir: string;
let base: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-follow-'));
  base = path.join(dir, 'cap.jsonl');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const line = (e: CaptureEvent): string => JSON.stringify(e) + '\n';
const header = (segment: number, session = 's1'): string => captureHeaderLine('test', { session, segment });
const end: CaptureEvent = { kind: 'session.end', t: T0 + 99, reason: 'SIGINT', droppedEvents: 0 };

/** Pulls events one at a time, so a test can write between them as a live writer would. */
function follow(options: { signal?: AbortSignal } = {}): { next: () => Promise<CaptureEvent | null>; warnings: CaptureSetWarning[]; notes: string[] } {
  const warnings: CaptureSetWarning[] = [];
  const notes: string[] = [];
  // A short poll keeps the tests quick; fs.watch usually wakes the follower first anyway.
  const it = followCapture(base, { pollMs: 40, onWarning: (w) => warnings.push(w), onNote: (n) => notes.push(n), ...options });
  return { next: async () => ((await it.next()).value as CaptureEvent | undefined) ?? null, warnings, notes };
}

/** Resolves to 'pending' when `promise` has not settled after a while: a line must not be delivered before its newline. */
async function stillPending(promise: Promise<unknown>, ms = 500): Promise<unknown> {
  return Promise.race([promise, delay(ms).then(() => 'pending')]);
}

describe('following a capture being written', () => {
  it('yields what the file holds, then each line appended, and ends at session.end', async () => {
    fs.writeFileSync(base, header(0) + line(openEvent(1, { t: T0 })));
    const f = follow();
    expect(await f.next()).toMatchObject({ kind: 'conn.open', conn: 1 });
    const waiting = f.next();
    fs.appendFileSync(base, line(frameEvent({ conn: 1, t: T0 + 1, side: 'client', opcode: 1, length: 2 })));
    expect(await waiting).toMatchObject({ kind: 'ws.frame', conn: 1 });
    fs.appendFileSync(base, line(closeEvent(1, T0 + 2)) + line(end) + line(openEvent(2, { t: T0 + 100 })));
    expect(await f.next()).toMatchObject({ kind: 'conn.close' });
    expect(await f.next()).toMatchObject({ kind: 'session.end' });
    // Nothing after session.end: the session is over.
    expect(await f.next()).toBeNull();
    expect(f.warnings).toEqual([]);
  });

  it('ends when the proxy writing on this host is gone without its session.end (SIGKILL), after reading what it wrote last; a proxy elsewhere or still running is waited for', async () => {
    // A pid that ran here and is gone: a child that has exited.
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(gone.stdout);
    const start = (pid: number, host: string): CaptureEvent => ({ kind: 'session.start', t: T0, version: 'test', mode: 'http', listen: '127.0.0.1:1', target: 'http://127.0.0.1:2', pid, previewLimit: 64, host });
    fs.writeFileSync(base, header(0) + line(start(deadPid, os.hostname())) + line(openEvent(1, { t: T0 + 1 })));
    const f = follow();
    expect(await f.next()).toMatchObject({ kind: 'session.start' });
    expect(await f.next()).toMatchObject({ kind: 'conn.open', conn: 1 });
    expect(await f.next()).toBeNull();
    expect(f.notes.at(-1)).toBe(`the proxy writing this capture (pid ${deadPid}) has exited without ending its session (killed, or it crashed): nothing more will come; what it wrote is all there is`);

    // The same pid on another host says nothing about this one; a live writer (this process) is waited for.
    for (const [pid, host] of [[deadPid, `not-${os.hostname()}`], [process.pid, os.hostname()]] as const) {
      fs.writeFileSync(base, header(0) + line(start(pid, host)));
      const abort = new AbortController();
      const g = follow({ signal: abort.signal });
      expect(await g.next()).toMatchObject({ kind: 'session.start', pid });
      expect(await stillPending(g.next(), 400)).toBe('pending');
      abort.abort();
      expect(g.notes.some((n) => n.includes('has exited'))).toBe(false);
    }
  });

  it('holds a half-written last line until its newline arrives', async () => {
    fs.writeFileSync(base, header(0));
    const f = follow();
    const text = line(openEvent(5, { t: T0, remoteAddress: '10.0.0.7' }));
    fs.appendFileSync(base, text.slice(0, 20));
    const waiting = f.next();
    expect(await stillPending(waiting)).toBe('pending');
    fs.appendFileSync(base, text.slice(20));
    expect(await waiting).toEqual(openEvent(5, { t: T0, remoteAddress: '10.0.0.7' }));
    expect(f.warnings).toEqual([]);
  });

  it('keeps multi-byte characters whole across reads', async () => {
    fs.writeFileSync(base, header(0));
    const f = follow();
    const text = line({ kind: 'session.start', t: T0, version: '1', mode: 'http', listen: 'l', target: 'http://é→😀', pid: 1, previewLimit: 64 });
    const bytes = Buffer.from(text);
    const cut = bytes.indexOf(Buffer.from('😀')) + 2;
    fs.appendFileSync(base, bytes.subarray(0, cut));
    const waiting = f.next();
    expect(await stillPending(waiting)).toBe('pending');
    fs.appendFileSync(base, bytes.subarray(cut));
    expect(await waiting).toMatchObject({ target: 'http://é→😀' });
  });

  it('reads the current file to its end, then switches when the next segment of the session appears', async () => {
    fs.writeFileSync(base, header(0) + line(openEvent(1, { t: T0 })));
    // A file of another session beside it is not the next segment.
    fs.writeFileSync(segmentPath(base, 2), header(2, 'other') + line(openEvent(9, { t: T0 })));
    const f = follow();
    expect(await f.next()).toMatchObject({ kind: 'conn.open', conn: 1 });
    // The writer's last lines of segment 0 and its switch to segment 1, as close together as it writes them.
    fs.appendFileSync(base, line(frameEvent({ conn: 1, t: T0 + 1, side: 'client', opcode: 1, length: 2 })));
    fs.writeFileSync(segmentPath(base, 1), header(1) + line(closeEvent(1, T0 + 2)));
    expect(await f.next()).toMatchObject({ kind: 'ws.frame' });
    expect(await f.next()).toMatchObject({ kind: 'conn.close', conn: 1 });
    fs.appendFileSync(segmentPath(base, 1), line(end));
    expect(await f.next()).toMatchObject({ kind: 'session.end' });
    expect(f.notes).toContain(`following ${segmentPath(base, 1)} (segment 1)`);
  });

  it('a segment that never appears before the next: warned, and a capture.gap stands for it', async () => {
    fs.writeFileSync(base, header(0) + line(openEvent(1, { t: T0 })));
    fs.writeFileSync(segmentPath(base, 2), header(2) + line(closeEvent(1, T0 + 5)) + line(end));
    const f = follow();
    expect(await f.next()).toMatchObject({ kind: 'conn.open' });
    expect(await f.next()).toMatchObject({ kind: 'capture.gap', code: 'segment-missing', missingSegments: [1], from: T0, t: T0 + 5 });
    expect(await f.next()).toMatchObject({ kind: 'conn.close' });
    expect(f.warnings.map((w) => w.path)).toEqual([segmentPath(base, 1)]);
  });

  it('waits for a capture that does not exist yet, and stops when aborted', async () => {
    const controller = new AbortController();
    const f = follow({ signal: controller.signal });
    const waiting = f.next();
    fs.writeFileSync(base, header(0) + line(openEvent(3, { t: T0 })));
    expect(await waiting).toMatchObject({ conn: 3 });
    expect(f.notes[0]).toBe(`waiting for ${base} to appear`);
    const idle = f.next();
    controller.abort();
    expect(await idle).toBeNull();
  });
});

describe('a follower that comes after --keep deleted the first file', () => {
  it('starts with the session.start the first file left repeats in its header', async () => {
    const start: CaptureEvent = { kind: 'session.start', t: T0 - 5, version: '1', mode: 'http', listen: '127.0.0.1:8066', target: 'http://127.0.0.1:8065', pid: 1, previewLimit: 64 };
    fs.writeFileSync(segmentPath(base, 4), captureHeaderLine('test', { session: 's1', segment: 4, start }) + line(openEvent(9, { t: T0 })) + line(end));
    const f = follow();
    expect(await f.next()).toStrictEqual(start);
    expect(await f.next()).toMatchObject({ kind: 'conn.open', conn: 9 });
    expect(await f.next()).toMatchObject({ kind: 'session.end' });
    expect(f.notes).toEqual(['reading 1 file of the set, segment 4; segments before 4 were deleted (--keep)']);
  });
});

describe('a follower that comes before the writer', () => {
  it('waits on the empty file the proxy has created but not written its header to yet', async () => {
    fs.writeFileSync(base, '');
    const f = follow();
    const waiting = f.next();
    expect(await stillPending(waiting, 300)).toBe('pending');
    fs.writeFileSync(base, header(0) + line(openEvent(4, { t: T0 })));
    expect(await waiting).toMatchObject({ conn: 4 });
  });

  it('headerState: a header that failed to read because it was not written yet is read again, not reported as a bad capture', () => {
    expect(headerState(Object.assign(new Error('gone'), { code: 'ENOENT' }))).toBe('missing');
    fs.writeFileSync(base, '');
    let failure: unknown = null;
    try {
      checkCaptureHeader(base);
    } catch (err) {
      failure = err;
    }
    expect(headerState(failure)).toBe('incomplete');
    // The writer's header lands between the failed read and the look at it (the race a proxy started after its viewer meets).
    fs.writeFileSync(base, header(0));
    expect(headerState(failure)).toBe('complete');
    // ... and may have written far more than its header by then.
    fs.writeFileSync(base, header(0) + line(openEvent(1, { t: T0 })).repeat(100));
    expect(headerState(failure)).toBe('complete');
    fs.writeFileSync(base, 'x'.repeat(5000));
    expect(headerState(failure)).toBe('bad');
    expect(headerState(new Error('other'))).toBe('bad');
  });

  it('a file that is not a capture, header line complete, is still an error', async () => {
    fs.writeFileSync(base, 'hello\n');
    const it = followCapture(base, { pollMs: 40 });
    await expect(it.next()).rejects.toThrow(/not a wstap capture/);
  });
});

describe('following from a later segment', () => {
  it('named alone (cap.jsonl.1), it still switches to cap.jsonl.2 when the writer does', async () => {
    fs.writeFileSync(base, header(0) + line(openEvent(1, { t: T0 })));
    fs.writeFileSync(segmentPath(base, 1), header(1) + line(frameEvent({ conn: 1, t: T0 + 1, side: 'client', opcode: 1, length: 2 })));
    const it = followCapture(segmentPath(base, 1), { pollMs: 40 });
    expect((await it.next()).value).toMatchObject({ kind: 'ws.frame' });
    fs.writeFileSync(segmentPath(base, 2), header(2) + line(closeEvent(1, T0 + 2)) + line(end));
    expect((await it.next()).value).toMatchObject({ kind: 'conn.close' });
    expect((await it.next()).value).toMatchObject({ kind: 'session.end' });
    expect((await it.next()).done).toBe(true);
  });
});
