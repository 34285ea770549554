import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CaptureWriter, type CapturePause } from '../../src/capture/capture-writer.js';
import { readCaptureFile } from '../../src/capture/capture-reader.js';
import { DiskGuard, defaultMinFree, pausedAfter, resumeAbove, type FreeSpace, type FreeSpaceSource } from '../../src/capture/disk-guard.js';
import { GAP_MIN_FREE, type CaptureEvent, type CaptureGapEvent } from '../../src/capture/events.js';
import { frameEvent } from '../support/event-fixtures.js';

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

/** A filesystem whose free space the test sets; a reading can be made to fail. */
class FakeDisk implements FreeSpaceSource {
  reads = 0;
  failing = false;
  constructor(
    public freeBytes: number,
    public totalBytes = 100 * GIB,
  ) {}

  read(): Promise<FreeSpace> {
    return Promise.resolve().then(() => this.readSync());
  }

  readSync(): FreeSpace {
    this.reads++;
    if (this.failing) throw Object.assign(new Error('EIO: statfs failed'), { code: 'EIO' });
    return { freeBytes: this.freeBytes, totalBytes: this.totalBytes };
  }
}

const dirs: string[] = [];
const guards: DiskGuard[] = [];

afterEach(() => {
  for (const g of guards.splice(0)) g.stop();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function tempPath(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-guard-'));
  dirs.push(dir);
  return path.join(dir, 'cap.jsonl');
}

async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const event = (i: number): CaptureEvent => frameEvent({ conn: 1, t: 1000 + i, side: 'client', opcode: 1, index: i, length: 5, preview: 'aGVsbG8=' });

describe('the --min-free rule', () => {
  it('defaults to the smaller of 1 GiB and 5 % of the filesystem', () => {
    expect(defaultMinFree(100 * GIB)).toBe(GIB);
    expect(defaultMinFree(10 * GIB)).toBe(512 * MIB);
    expect(defaultMinFree(2 * MIB)).toBe(Math.floor(0.05 * 2 * MIB));
  });

  it('pauses below the limit and resumes only above it plus 5 % (at least 64 KiB)', () => {
    expect(resumeAbove(GIB)).toBe(GIB + Math.ceil(GIB / 20));
    expect(resumeAbove(100 * KIB)).toBe(164 * KIB);
    expect(pausedAfter(false, GIB, GIB)).toBe(false);
    expect(pausedAfter(false, GIB - 1, GIB)).toBe(true);
    // Back at the limit is not enough: a disk hovering there would flap.
    expect(pausedAfter(true, GIB, GIB)).toBe(true);
    expect(pausedAfter(true, resumeAbove(GIB) - 1, GIB)).toBe(true);
    expect(pausedAfter(true, resumeAbove(GIB), GIB)).toBe(false);
  });
});

describe('DiskGuard', () => {
  function guard(disk: FakeDisk, minFreeBytes?: number): { guard: DiskGuard; changes: boolean[] } {
    const changes: boolean[] = [];
    const g = new DiskGuard({ path: os.tmpdir(), source: disk, intervalMs: 3_600_000, onChange: (p) => changes.push(p), ...(minFreeBytes !== undefined ? { minFreeBytes } : {}) });
    guards.push(g);
    return { guard: g, changes };
  }

  it('reads once at start (synchronously) and then on each check, telling each change once', async () => {
    const disk = new FakeDisk(10 * MIB);
    const { guard: g, changes } = guard(disk, MIB);
    expect(g.paused).toBe(false);
    expect(disk.reads).toBe(1);
    disk.freeBytes = MIB - 1;
    await g.check();
    await g.check();
    expect(changes).toEqual([true]);
    expect(g.freeBytes).toBe(MIB - 1);
    disk.freeBytes = MIB + 32 * KIB;
    await g.check();
    expect(changes).toEqual([true]);
    disk.freeBytes = resumeAbove(MIB);
    await g.check();
    expect(changes).toEqual([true, false]);
    expect(g.paused).toBe(false);
  });

  it('is paused from the start on a disk already low, with the default limit of that disk', () => {
    const { guard: g, changes } = guard(new FakeDisk(100 * MIB, 10 * GIB));
    expect(g.minFreeBytes).toBe(512 * MIB);
    expect(g.paused).toBe(true);
    expect(changes).toEqual([]);
  });

  it("takes the capture's own writes off the last reading: a burst between readings pauses at the limit", () => {
    const disk = new FakeDisk(MIB + 100 * KIB);
    const { guard: g, changes } = guard(disk, MIB);
    g.wrote(60 * KIB);
    expect(changes).toEqual([]);
    g.wrote(60 * KIB);
    expect(changes).toEqual([true]);
    expect(g.freeBytes).toBe(MIB - 20 * KIB);
    g.wrote(KIB);
    expect(changes).toEqual([true]);
    expect(disk.reads).toBe(1);
  });

  it('a failed reading changes nothing', async () => {
    const disk = new FakeDisk(MIB / 2);
    const { guard: g, changes } = guard(disk, MIB);
    expect(g.paused).toBe(true);
    disk.failing = true;
    await g.check();
    expect(g.paused).toBe(true);
    expect(changes).toEqual([]);
  });
});

describe('CaptureWriter with the disk guard', () => {
  function guardedWriter(p: string, disk: FakeDisk) {
    const pauses: CapturePause[] = [];
    const resumed: CaptureGapEvent[] = [];
    const clock = { now: 5000 };
    const writer = new CaptureWriter({
      path: p,
      createdBy: 'wstap unit test',
      flushIntervalMs: 5,
      highWaterBytes: 1 << 30,
      now: () => clock.now,
      diskGuard: { minFreeBytes: MIB, source: disk, intervalMs: 5 },
      onPause: (s) => pauses.push(s),
      onResume: (gap) => resumed.push(gap),
    });
    return { writer, pauses, resumed, clock };
  }

  it('stops writing below --min-free (relaying is not its business), counts what it skips, writes one MIN_FREE gap once space is back', async () => {
    const p = tempPath();
    const disk = new FakeDisk(10 * MIB);
    const { writer, pauses, resumed, clock } = guardedWriter(p, disk);
    for (let i = 0; i < 3; i++) writer.record(event(i));
    await until(() => writer.writtenEvents === 3, 'the first events');
    expect(writer.health().paused).toBeNull();

    disk.freeBytes = MIB - 1;
    await until(() => pauses.length === 1, 'the pause');
    expect(pauses[0]).toStrictEqual({ dir: path.dirname(p), freeBytes: MIB - 1, minFreeBytes: MIB, resumeAboveBytes: resumeAbove(MIB) });
    expect(writer.health().paused).toStrictEqual(pauses[0]);
    const sizeAtPause = fs.statSync(p).size;
    for (let i = 3; i < 13; i++) writer.record(event(i));
    // Space comes back, but not past the hysteresis: still paused, still not writing.
    disk.freeBytes = MIB + KIB;
    const reads = disk.reads;
    await until(() => disk.reads >= reads + 3, 'a few more readings');
    expect(writer.health().paused).not.toBeNull();
    expect(fs.statSync(p).size).toBe(sizeAtPause);
    expect(writer.droppedEvents).toBe(10);

    clock.now = 6000;
    disk.freeBytes = 2 * MIB;
    await until(() => resumed.length === 1, 'the resume');
    const gap: CaptureGapEvent = { kind: 'capture.gap', t: 6000, from: 1003, lostEvents: 10, code: GAP_MIN_FREE };
    expect(resumed).toStrictEqual([gap]);
    expect(writer.health()).toStrictEqual({ lostEvents: 10, refusing: null, paused: null });
    writer.record(event(20));
    await writer.close();
    expect(pauses).toHaveLength(1);
    expect(await readCaptureFile(p)).toStrictEqual([event(0), event(1), event(2), gap, event(20)]);
  });

  it('held lines are not written once paused: they join the gap', async () => {
    const p = tempPath();
    const disk = new FakeDisk(10 * MIB);
    const pauses: CapturePause[] = [];
    const writer = new CaptureWriter({
      path: p,
      createdBy: 'wstap unit test',
      flushIntervalMs: 3_600_000,
      highWaterBytes: 1 << 30,
      now: () => 7000,
      diskGuard: { minFreeBytes: MIB, source: disk, intervalMs: 5 },
      onPause: (s) => pauses.push(s),
    });
    for (let i = 0; i < 4; i++) writer.record(event(i));
    disk.freeBytes = 0;
    await until(() => pauses.length === 1, 'the pause');
    // Closing while paused: the one gap line says why the file stops, nothing else is written.
    await writer.close();
    expect(await readCaptureFile(p)).toStrictEqual([{ kind: 'capture.gap', t: 7000, from: 1000, lostEvents: 4, code: GAP_MIN_FREE }]);
    expect(writer.droppedEvents).toBe(4);
  });

  it('pauses on its own writes before the next reading when they would take free space under the limit', async () => {
    const p = tempPath();
    // A reading an hour away: only the writes themselves can bring the pause.
    const disk = new FakeDisk(MIB + 4 * KIB);
    const pauses: CapturePause[] = [];
    const writer = new CaptureWriter({
      path: p,
      createdBy: 'wstap unit test',
      flushIntervalMs: 5,
      highWaterBytes: 1 << 30,
      now: () => 9000,
      diskGuard: { minFreeBytes: MIB, source: disk, intervalMs: 3_600_000 },
      onPause: (s) => pauses.push(s),
    });
    let i = 0;
    while (pauses.length === 0 && i < 10_000) {
      writer.record(event(i++));
      if (i % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(pauses).toHaveLength(1);
    const sizeAtPause = fs.statSync(p).size;
    // The header and some lines, about 4 KiB: not the 10,000 events.
    expect(sizeAtPause).toBeGreaterThan(4 * KIB);
    expect(sizeAtPause).toBeLessThan(16 * KIB);
    for (let j = 0; j < 100; j++) writer.record(event(i + j));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(fs.statSync(p).size).toBe(sizeAtPause);
    await writer.close();
  });

  it('starts paused on a disk already below --min-free, says so once, and resumes when space is freed', async () => {
    const p = tempPath();
    const disk = new FakeDisk(KIB);
    const { writer, pauses, resumed, clock } = guardedWriter(p, disk);
    expect(writer.health().paused?.freeBytes).toBe(KIB);
    await until(() => pauses.length === 1, 'the pause at start');
    // Only the header is on disk.
    expect(fs.readFileSync(p, 'utf8').split('\n')).toHaveLength(2);
    writer.record(event(0));
    writer.record(event(1));
    clock.now = 9000;
    disk.freeBytes = 10 * MIB;
    await until(() => resumed.length === 1, 'the resume');
    writer.record(event(2));
    await writer.close();
    expect(pauses).toHaveLength(1);
    const events = await readCaptureFile(p);
    expect(events[0]).toMatchObject({ kind: 'capture.gap', lostEvents: 2, code: GAP_MIN_FREE, from: 1000, t: 9000 });
    expect(events.slice(1)).toStrictEqual([event(2)]);
  });

  it('without the option there is no guard', async () => {
    const p = tempPath();
    const writer = new CaptureWriter({ path: p, createdBy: 'wstap unit test' });
    writer.record(event(0));
    await writer.close();
    expect(writer.health()).toStrictEqual({ lostEvents: 0, refusing: null, paused: null });
  });
});
