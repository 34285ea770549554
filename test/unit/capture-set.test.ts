import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { captureHeaderLine, segmentPath } from '../../src/capture/capture-format.js';
import { captureSetOfFiles, discoverCaptureSet, readCaptureSetEvents, type CaptureSet, type CaptureSetWarning } from '../../src/capture/capture-set.js';
import type { CaptureEvent } from '../../src/capture/events.js';
import { closeEvent, finEvent, frameEvent, openEvent } from '../support/event-fixtures.js';

const T0 = 1_790_000_000_000;
let dir: string;
let base: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-set-'));
  base = path.join(dir, 'cap.jsonl');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A file of a rotated set as the writer's contract lays it out (the writer is not needed to test the reader). */
function writeSegment(session: string | null, segment: number, events: CaptureEvent[], at = segmentPath(base, segment)): string {
  const header = session === null ? captureHeaderLine('test') : captureHeaderLine('test', { session, segment });
  fs.writeFileSync(at, header + events.map((e) => JSON.stringify(e) + '\n').join(''));
  return at;
}

async function read(set: CaptureSet): Promise<{ events: CaptureEvent[]; warnings: CaptureSetWarning[] }> {
  const warnings: CaptureSetWarning[] = [];
  const events: CaptureEvent[] = [];
  for await (const e of readCaptureSetEvents(set, { onWarning: (w) => warnings.push(w) })) events.push(e);
  return { events, warnings };
}

/** One connection spanning three files: opened in 0, a frame in 1, closed in 2. */
function writeThreeSegments(session = 'abc'): void {
  writeSegment(session, 0, [{ kind: 'session.start', t: T0, version: '1', mode: 'http', listen: 'l', target: 'http://t', pid: 1, previewLimit: 64 }, openEvent(1, { t: T0 + 1 })]);
  writeSegment(session, 1, [frameEvent({ conn: 1, t: T0 + 2, side: 'client', opcode: 1, length: 1 })]);
  writeSegment(session, 2, [finEvent(1, T0 + 3, 'client'), closeEvent(1, T0 + 4), { kind: 'session.end', t: T0 + 5, reason: 'SIGINT', droppedEvents: 0 }]);
}

describe('a rotated capture set', () => {
  it('reads cap.jsonl and its cap.jsonl.<n> siblings of the same session, in segment order, as one stream', async () => {
    writeThreeSegments();
    // Files of another session, and names that only look alike, are not part of it.
    writeSegment('old', 7, [openEvent(9, { t: T0 - 100 })]);
    fs.writeFileSync(`${base}.bak`, 'x');
    fs.writeFileSync(`${base}.01`, 'x');
    const set = discoverCaptureSet(base);
    expect(set.segments.map((s) => s.segment)).toEqual([0, 1, 2]);
    expect(set.notes).toEqual(['reading 3 files of the set, segments 0-2']);
    const { events, warnings } = await read(set);
    expect(events.map((e) => e.kind)).toEqual(['session.start', 'conn.open', 'ws.frame', 'tcp.fin', 'conn.close', 'session.end']);
    expect(warnings).toEqual([]);
  });

  it('reads the rest of the set when cap.jsonl itself was deleted (--keep), and says which segments are there', async () => {
    writeThreeSegments();
    fs.rmSync(base);
    const set = discoverCaptureSet(base);
    expect(set.segments.map((s) => s.path)).toEqual([`${base}.1`, `${base}.2`]);
    expect(set.notes).toEqual(['reading 2 files of the set, segments 1-2; segments before 1 were deleted (--keep)']);
    const { events } = await read(set);
    expect(events[0]).toMatchObject({ kind: 'ws.frame', conn: 1 });
  });

  it('warns about a missing middle segment, names it, goes on, and puts a capture.gap where it was', async () => {
    writeThreeSegments();
    fs.rmSync(`${base}.1`);
    const set = discoverCaptureSet(base);
    expect(set.holes).toEqual([{ segment: 1, path: `${base}.1` }]);
    const { events, warnings } = await read(set);
    expect(warnings).toEqual([{ path: `${base}.1`, line: null, message: expect.stringMatching(/^segment 1 \(.*cap\.jsonl\.1\) is missing/) }]);
    expect(events.map((e) => e.kind)).toEqual(['session.start', 'conn.open', 'capture.gap', 'tcp.fin', 'conn.close', 'session.end']);
    expect(events[2]).toEqual({ kind: 'capture.gap', t: T0 + 3, from: T0 + 1, lostEvents: 0, code: 'segment-missing', missingSegments: [1] });
  });

  it('a set still being written: a file --keep deletes after discovery is missing like a hole (a gap once events were read), not an error', async () => {
    writeThreeSegments();
    const set = discoverCaptureSet(base);
    fs.rmSync(`${base}.1`);
    const { events, warnings } = await read(set);
    expect(warnings).toEqual([{ path: `${base}.1`, line: null, message: expect.stringMatching(/^deleted while the set was read \(--keep/) }]);
    expect(events.map((e) => e.kind)).toEqual(['session.start', 'conn.open', 'capture.gap', 'tcp.fin', 'conn.close', 'session.end']);
    expect(events[2]).toMatchObject({ code: 'segment-missing', missingSegments: [1], from: T0 + 1, t: T0 + 3 });

    // The first file gone before it was opened: the beginning is missing, as when --keep deleted it before discovery; no gap.
    writeThreeSegments();
    const whole = discoverCaptureSet(base);
    fs.rmSync(base);
    const late = await read(whole);
    expect(late.warnings.map((w) => w.path)).toEqual([base]);
    expect(late.events.map((e) => e.kind)).toEqual(['ws.frame', 'tcp.fin', 'conn.close', 'session.end']);
  });

  it('a file opened before --keep deletes it is read to its end', async () => {
    writeThreeSegments();
    const set = discoverCaptureSet(base);
    const events: CaptureEvent[] = [];
    for await (const e of readCaptureSetEvents(set)) {
      events.push(e);
      // Deleted while its first event is being handled: the open descriptor still reads it.
      if (events.length === 1) fs.rmSync(base);
    }
    expect(events.map((e) => e.kind)).toEqual(['session.start', 'conn.open', 'ws.frame', 'tcp.fin', 'conn.close', 'session.end']);
  });

  it('several files named explicitly are ordered by segment; files of different sessions are refused, named', async () => {
    writeThreeSegments();
    const set = captureSetOfFiles([`${base}.2`, base, `${base}.1`]);
    expect(set.segments.map((s) => s.segment)).toEqual([0, 1, 2]);
    const other = writeSegment('zzz', 0, [], path.join(dir, 'other.jsonl'));
    expect(() => captureSetOfFiles([base, other])).toThrow(/different sessions.*session abc: .*cap\.jsonl; session zzz: .*other\.jsonl/);
    const legacy = writeSegment(null, 0, [], path.join(dir, 'legacy.jsonl'));
    expect(() => captureSetOfFiles([legacy, base])).toThrow(/different sessions.*no session: .*legacy\.jsonl/);
  });

  it('an old capture without session or segment reads as before: one file, no notes', async () => {
    writeSegment(null, 0, [openEvent(1, { t: T0 }), closeEvent(1, T0 + 1)]);
    // A stray sibling does not join a capture that names no session.
    writeSegment('abc', 1, [openEvent(2, { t: T0 })]);
    const set = discoverCaptureSet(base);
    expect(set.session).toBeNull();
    expect(set.notes).toEqual([]);
    expect((await read(set)).events.map((e) => e.kind)).toEqual(['conn.open', 'conn.close']);
  });

  it('a missing file with no siblings fails as a missing file does; siblings of two sessions need naming', () => {
    expect(() => discoverCaptureSet(base)).toThrow(/ENOENT.*cap\.jsonl/);
    writeSegment('one', 1, []);
    writeSegment('two', 2, []);
    expect(() => discoverCaptureSet(base)).toThrow(/is gone and the files beside it belong to 2 different sessions \(cap\.jsonl\.1, cap\.jsonl\.2\)/);
  });

  it('names the file and line of a damaged line in a segment', async () => {
    writeThreeSegments();
    fs.appendFileSync(`${base}.1`, '{"kind":"ws.fr');
    const { warnings } = await read(discoverCaptureSet(base));
    expect(warnings).toEqual([{ path: `${base}.1`, line: 3, message: expect.stringMatching(/cut short/) }]);
  });
});

describe('a later segment named alone', () => {
  it('is read alone, and the note does not claim the earlier files were deleted when they are there', () => {
    writeThreeSegments();
    const set = discoverCaptureSet(`${base}.2`);
    expect(set.segments.map((s) => s.segment)).toEqual([2]);
    expect(set.notes).toEqual(['reading 1 file of the set, segment 2; segments before 2 are there but not read (name the first file to read the whole set)']);
    expect(captureSetOfFiles([`${base}.1`, `${base}.2`]).notes).toEqual(['reading 2 files of the set, segments 1-2; segments before 1 are there but not read (name the first file to read the whole set)']);
  });
});
