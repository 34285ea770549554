import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConnectionTracker } from '../../src/analysis/connection-tracker.js';
import { captureHeaderLine, segmentPath } from '../../src/capture/capture-format.js';
import { instanceCapturesOfFiles, readMergedEvents } from '../../src/capture/capture-merge.js';
import type { CaptureEvent, SessionStartEvent } from '../../src/capture/events.js';
import { connectionRow } from '../../src/tui/connection-rows.js';
import { layoutTable, tableLine } from '../../src/tui/connection-table.js';
import { Paint } from '../../src/tui/paint.js';
import { closeEvent, finEvent, frameEvent, openEvent } from '../support/event-fixtures.js';
import { query, untag } from '../support/tui-fixtures.js';

const T0 = 1_790_000_000_000;
let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-merge-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function start(t: number, instance?: string): SessionStartEvent {
  return { kind: 'session.start', t, version: '1', mode: 'http', listen: 'l', target: 'http://10.0.0.9:8065', pid: 1, previewLimit: 64, ...(instance ? { instance } : {}) };
}

/** One capture file as the writer lays it out: a header (with or without an instance), then events. */
function write(name: string, events: CaptureEvent[], header: { session?: string; segment?: number; instance?: string } = {}): string {
  const file = path.join(dir, name);
  const set = header.session !== undefined ? { session: header.session, segment: header.segment ?? 0 } : undefined;
  fs.writeFileSync(file, captureHeaderLine('test', set, header.instance) + events.map((e) => JSON.stringify(e) + '\n').join(''));
  return file;
}

async function merged(files: string[]): Promise<CaptureEvent[]> {
  const out: CaptureEvent[] = [];
  for await (const e of readMergedEvents(instanceCapturesOfFiles(files))) out.push(e);
  return out;
}

describe('several instances read as one', () => {
  it('merges by time, renumbers connections uniquely and labels each with its instance and id there', async () => {
    const a = write('a.jsonl', [start(T0, 'edge-a'), openEvent(1, { t: T0 + 10 }), finEvent(1, T0 + 40, 'client'), closeEvent(1, T0 + 41), openEvent(2, { t: T0 + 50 }), closeEvent(2, T0 + 60)], { session: 'sa', instance: 'edge-a' });
    const b = write('b.jsonl', [start(T0 + 5, 'edge-b'), openEvent(1, { t: T0 + 20 }), frameEvent({ conn: 1, t: T0 + 30, side: 'client', opcode: 1, length: 3 }), closeEvent(1, T0 + 55)], { session: 'sb', instance: 'edge-b' });
    const events = await merged([a, b]);
    expect(events.map((e) => e.t)).toEqual([...events.map((e) => e.t)].sort((x, y) => x - y));
    const opens = events.filter((e) => e.kind === 'conn.open');
    expect(opens.map((e) => [e.conn, e.instance, e.instanceConn])).toEqual([
      [1, 'edge-a', 1],
      [2, 'edge-b', 1],
      [3, 'edge-a', 2],
    ]);
    // Every later event of a connection carries its new id.
    expect(events.filter((e) => e.kind === 'ws.frame').map((e) => ('conn' in e ? e.conn : 0))).toEqual([2]);
    expect(events.filter((e) => e.kind === 'conn.close').map((e) => ('conn' in e ? e.conn : 0))).toEqual([1, 2, 3]);
    expect(events.filter((e) => e.kind === 'session.start').map((e) => (e.kind === 'session.start' ? e.instance : ''))).toEqual(['edge-a', 'edge-b']);
  });

  it('names an instance by its header, else its session.start, else its file; a capture without instances is still read', async () => {
    const old = write('old-host.jsonl', [start(T0), openEvent(7, { t: T0 + 1 }), closeEvent(7, T0 + 2)]);
    const fromStart = write('s.jsonl', [start(T0, 'from-start'), openEvent(7, { t: T0 + 3 }), closeEvent(7, T0 + 4)], { session: 's2' });
    expect(instanceCapturesOfFiles([old, fromStart]).map((c) => c.instance)).toEqual(['old-host.jsonl', 'from-start']);
    const events = await merged([old, fromStart]);
    expect(events.filter((e) => e.kind === 'conn.open').map((e) => [e.conn, e.instance, e.instanceConn])).toEqual([
      [1, 'old-host.jsonl', 7],
      [2, 'from-start', 7],
    ]);
  });

  it('reads each instance\'s rotated set whole, named by its first file', async () => {
    const base = path.join(dir, 'r.jsonl');
    write('r.jsonl', [start(T0, 'edge-r'), openEvent(1, { t: T0 + 1 })], { session: 'rr', segment: 0, instance: 'edge-r' });
    write(path.basename(segmentPath(base, 1)), [closeEvent(1, T0 + 9)], { session: 'rr', segment: 1, instance: 'edge-r' });
    const other = write('o.jsonl', [start(T0, 'edge-o'), openEvent(1, { t: T0 + 5 }), closeEvent(1, T0 + 6)], { session: 'oo', instance: 'edge-o' });
    const captures = instanceCapturesOfFiles([base, other]);
    expect(captures.map((c) => [c.instance, c.set.segments.length])).toEqual([
      ['edge-r', 2],
      ['edge-o', 1],
    ]);
    const closes = (await merged([base, other])).filter((e) => e.kind === 'conn.close').map((e) => ('conn' in e ? e.conn : 0));
    expect(closes).toEqual([2, 1]);
  });

  it('a gap of one instance marks only its own connections; a connection whose open is missing is still labelled', async () => {
    const a = write('a.jsonl', [start(T0, 'edge-a'), openEvent(1, { t: T0 + 1 }), { kind: 'capture.gap', t: T0 + 20, from: T0 + 10, lostEvents: 4, code: 'ENOSPC' }, closeEvent(1, T0 + 30)], { session: 'sa', instance: 'edge-a' });
    const b = write('b.jsonl', [start(T0, 'edge-b'), openEvent(1, { t: T0 + 2 }), frameEvent({ conn: 9, t: T0 + 3, side: 'upstream', opcode: 2, length: 1 }), closeEvent(1, T0 + 31)], { session: 'sb', instance: 'edge-b' });
    const tracker = new ConnectionTracker();
    for (const e of await merged([a, b])) tracker.apply(e);
    const [fromA, fromB] = [tracker.get(1), tracker.get(2)];
    expect(fromA?.open.instance).toBe('edge-a');
    expect(fromA?.missing).not.toBeNull();
    expect(fromB?.open.instance).toBe('edge-b');
    expect(fromB?.missing).toBeNull();
    const standIn = tracker.get(3);
    expect([standIn?.open.instance, standIn?.open.instanceConn, standIn?.missing?.beginning]).toEqual(['edge-b', 9, true]);
  });

  it('shows the instance column in the UI only when connections carry one', () => {
    const tracker = new ConnectionTracker();
    const summary = tracker.apply({ ...openEvent(4, { t: T0 }), instance: 'edge-a', instanceConn: 12 });
    const row = connectionRow(summary as NonNullable<typeof summary>, query(T0 + 1000));
    expect(row.instance).toBe('edge-a#12');
    const paint = new Paint(false);
    expect(layoutTable(200).columns.some((c) => c.id === 'instance')).toBe(false);
    const layout = layoutTable(200, { instances: true });
    expect(layout.columns.map((c) => c.id)).toContain('instance');
    expect(untag(tableLine(row, layout, paint, false))).toContain('edge-a#12');
  });
});
