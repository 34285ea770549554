import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { captureHeaderLine, segmentPath } from '../../src/capture/capture-format.js';
import type { CaptureEvent } from '../../src/capture/events.js';
import { closeEvent, finEvent, frameEvent, handshakeRequestEvent, handshakeResponseEvent, openEvent } from '../support/event-fixtures.js';
import { harSchemaErrors } from '../support/har-schema.js';
import { BIN } from '../support/wstap-process.js';

/** `wstap view` and `wstap export` over a rotated set laid out as the capture-format contract says (written by hand here). */

const T0 = 1_790_000_000_000;

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 15_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir: string;
let base: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-set-e2e-'));
  base = path.join(dir, 'cap.jsonl');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function writeSegment(segment: number, events: CaptureEvent[], session = 'f00d'): void {
  fs.writeFileSync(segmentPath(base, segment), captureHeaderLine('wstap test', { session, segment }) + events.map((e) => JSON.stringify(e) + '\n').join(''));
}

/** Connection 1 spans segments 0-2 (closed by the upstream); connection 2 opens in segment 1 and closes in 2. */
function writeSet(): void {
  const idle = { client: 900, upstream: 900 };
  writeSegment(0, [
    { kind: 'session.start', t: T0, version: '1', mode: 'http', listen: '127.0.0.1:8066', target: 'http://127.0.0.1:8065', pid: 1, previewLimit: 64 },
    openEvent(1, { t: T0 + 1 }),
    handshakeRequestEvent(1, T0 + 2, { url: '/span' }),
    handshakeResponseEvent(1, T0 + 3),
  ]);
  writeSegment(1, [
    frameEvent({ conn: 1, t: T0 + 100, side: 'client', opcode: 1, length: 2 }),
    frameEvent({ conn: 1, t: T0 + 110, side: 'upstream', opcode: 1, length: 2 }),
    openEvent(2, { t: T0 + 120 }),
    handshakeRequestEvent(2, T0 + 121, { url: '/later' }),
    handshakeResponseEvent(2, T0 + 122),
  ]);
  writeSegment(2, [
    frameEvent({ conn: 1, t: T0 + 1000, side: 'upstream', opcode: 8, length: 2, closeCode: 1001, idle }),
    finEvent(1, T0 + 1001, 'upstream', idle),
    closeEvent(1, T0 + 1002),
    frameEvent({ conn: 2, t: T0 + 1100, side: 'client', opcode: 8, length: 2, closeCode: 1000, idle }),
    closeEvent(2, T0 + 1101),
    { kind: 'session.end', t: T0 + 1200, reason: 'signal', droppedEvents: 0 },
  ]);
}

describe('a rotated capture read as one session', () => {
  it('view reads every file of the set, a connection spanning files included', () => {
    writeSet();
    const r = run(['view', '--no-tui', base]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('reading 3 files of the set, segments 0-2');
    expect(r.stdout).toMatch(/#1 closed by upstream \(upstream close-frame 1001\)/);
    expect(r.stdout).toMatch(/#2 closed by client \(client close-frame 1000\)/);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('2 connection(s) closed: 1 by upstream, 1 by client');
  });

  it('view with cap.jsonl deleted (--keep): says which segments are read; a connection opened in the deleted file is kept, its closer not invented', () => {
    writeSet();
    fs.rmSync(base);
    const r = run(['view', '--no-tui', base]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('reading 2 files of the set, segments 1-2; segments before 1 were deleted (--keep)');
    // Both sides sent frames after the missing part, before the upstream's close frame: it is the first evidence.
    expect(r.stdout).toMatch(/#1 closed by upstream \(upstream close-frame 1001\) after at least .* \(its beginning is not in the capture\)/);
    expect(r.stdout).toMatch(/#2 closed by client/);
  });

  it('view with a missing middle segment: warns naming it, reads on, judges no closer across the hole', () => {
    writeSet();
    fs.rmSync(segmentPath(base, 1));
    const r = run(['view', '--no-tui', base]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`segment 1 (${segmentPath(base, 1)}) is missing`);
    expect(r.stdout).toMatch(/capture gap: segment 1 of the set is missing/);
    expect(r.stdout).toMatch(/#1 closed after .*who closed first is unknown: some of its events are not in the capture/);
  });

  it('export of the set: one HAR with every connection; files of two sessions are read as two instances', () => {
    writeSet();
    const har = path.join(dir, 'out.har');
    const r = run(['export', base, '-o', har]);
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(fs.readFileSync(har, 'utf8')) as { log: { entries: Array<{ _wstap?: { connectionId: number; closedBy: string | null } }> } };
    expect(harSchemaErrors(doc)).toEqual([]);
    expect(doc.log.entries.map((e) => [e._wstap?.connectionId, e._wstap?.closedBy])).toEqual([
      [1, 'upstream'],
      [2, 'client'],
    ]);
    const other = path.join(dir, 'other.jsonl');
    fs.writeFileSync(other, captureHeaderLine('wstap test', { session: 'beef', segment: 0 }));
    // Issue 20: another session's capture (another proxy, or a restart) is merged by time, not refused.
    const both = run(['view', '--no-tui', base, other]);
    expect(both.status, both.stderr).toBe(0);
    expect(both.stdout).toMatch(/2 wstap captures merged by time \(cap\.jsonl, other\.jsonl\)/);
    expect(both.stdout).toMatch(/#1 \[cap\.jsonl#1\] /);
  });
});
