import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCaptureFile, type CaptureReadWarning } from '../../src/capture/capture-reader.js';
import type { CaptureEvent, CaptureGapEvent } from '../../src/capture/events.js';
import type { HarLog } from '../../src/har/har-types.js';
import { harSchemaErrors } from '../support/har-schema.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { EchoClient, echoEverything } from '../support/echo-client.js';
import { ofConn, ofKind, sleep } from '../support/ws-peers.js';
import { BIN, startWstap, type LogLine, type WstapProcess } from '../support/wstap-process.js';

/**
 * Fault matrix (issue 6): the capture file's disk fills or the file becomes
 * unwritable. Relaying goes on byte for byte, wstap warns once, and once the
 * file accepts data again it notes the gap (`capture.gap`), which `wstap
 * view` and the HAR export carry. The disk "fills" for real, in the wstap
 * process: a file size limit (RLIMIT_FSIZE, EFBIG: no privilege needed), and
 * where mounting is allowed a tiny tmpfs (ENOSPC).
 */

const WARN = 40;

const isCaptureWarning = (l: LogLine): boolean => l.level >= WARN && l.msg.includes('capture');
const isResumeLine = (l: LogLine): boolean => l.msg.startsWith('capture file ') && l.msg.includes(' accepts data again: ');

function runCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface DiskFault {
  code: string;
  /** Options for startWstap: how the capture can fill up. */
  start: { wrapper?: string[]; capturePath?: string };
  /** More wstap options. */
  args?: string[];
  fill(wstap: WstapProcess): void;
  free(wstap: WstapProcess): void;
}

/**
 * The scenario both faults go through: a connection that lives through the
 * whole outage, one opened and closed during it (lost from the capture), and
 * one after it (recorded again).
 */
async function outageScenario(app: UpstreamApp, fault: DiskFault, dir: string): Promise<void> {
  const wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`, ...(fault.args ?? [])], fault.start);
  try {
    const throughout = await EchoClient.open(wstap.port, '/ws?phase=throughout', 1);
    await throughout.round(5);
    fault.fill(wstap);

    // Traffic until wstap says the capture stopped: the file fills within a few rounds.
    const warning = await throughout.roundsUntil(wstap.waitForLog(isCaptureWarning, 15_000), 10, 100);
    expect(warning.msg).toContain(`capture file ${wstap.capturePath} stopped accepting data (${fault.code})`);
    expect(warning.msg).toContain('relaying continues');

    const during = await EchoClient.open(wstap.port, '/ws?phase=during', 1000);
    await during.round(20);
    await during.close();
    await throughout.round(20);
    // Past two retries (one a second): still failing, still one warning, nothing more said.
    await sleep(2500);
    expect(wstap.logs.filter(isCaptureWarning)).toHaveLength(1);
    expect(wstap.logs.some(isResumeLine)).toBe(false);

    fault.free(wstap);
    const resumed = await wstap.waitForLog(isResumeLine, 5000);
    expect(resumed.level).toBe(30);
    expect(resumed.msg).toMatch(new RegExp(`^capture file ${wstap.capturePath} accepts data again: \\d+ events were lost over [\\d.]+ s \\(${fault.code}\\), marked in it as capture\\.gap$`));

    const after = await EchoClient.open(wstap.port, '/ws?phase=after', 2000);
    await after.round(20);
    await after.close();
    await throughout.round(10);
    await throughout.close();

    // Every byte echoed unchanged, through the whole outage.
    for (const client of [throughout, during, after]) {
      expect(client.received.count).toBe(client.sent.count);
      expect(client.received.hex()).toBe(client.sent.hex());
    }

    await wstap.waitForLog((l) => l.msg.includes('closed by client') && ofUrlConn(l, wstap) === 'after');
    expect(await wstap.stop()).toBe(0);
    const end = wstap.logs.find((l) => l.msg.startsWith('session ended'));
    expect(wstap.logs.filter(isCaptureWarning).filter((l) => l !== end)).toHaveLength(1);

    // The capture: one gap, counting exactly what the session says it lost.
    const warnings: CaptureReadWarning[] = [];
    const events = await readCaptureFile(wstap.capturePath, { onWarning: (w) => warnings.push(w) });
    const gaps = ofKind(events, 'capture.gap');
    expect(gaps).toHaveLength(1);
    const gap = gaps[0] as CaptureGapEvent;
    expect(gap.code).toBe(fault.code);
    expect(gap.lostEvents).toBeGreaterThan(0);
    expect(resumed.lostEvents).toBe(gap.lostEvents);
    const sessionEnd = ofKind(events, 'session.end')[0];
    expect(sessionEnd?.droppedEvents).toBe(gap.lostEvents);
    expect(end?.droppedEvents).toBe(gap.lostEvents);
    expect(gap.from).toBeLessThan(gap.t);
    // At most the line the failed write tore, skipped by the reader.
    expect(warnings.length).toBeLessThanOrEqual(1);
    for (const w of warnings) expect(w.message).toContain('torn by a failed write');

    const urls = ofKind(events, 'ws.handshake.request').map((e) => e.url);
    expect(urls).toEqual(['/ws?phase=throughout', '/ws?phase=after']);
    const connOf = (url: string): number => ofKind(events, 'ws.handshake.request').find((e) => e.url === url)?.conn ?? -1;
    const gapAt = events.indexOf(gap);
    const afterConn = connOf('/ws?phase=after');
    const throughoutConn = connOf('/ws?phase=throughout');
    // Recorded again after the gap: the later connection's open and close, the long one's close, the session's end.
    for (const e of [ofConn(events, afterConn, 'conn.open')[0], ofConn(events, afterConn, 'conn.close')[0], ofConn(events, throughoutConn, 'conn.close')[0], sessionEnd]) {
      expect(e).toBeDefined();
      expect(events.indexOf(e as CaptureEvent)).toBeGreaterThan(gapAt);
    }
    // The after connection's 20 messages each way are all there.
    expect(ofConn(events, afterConn, 'ws.message').filter((m) => m.side === 'client')).toHaveLength(20);

    // wstap view prints the gap as a warning line; the HAR export carries it at the session level.
    const view = runCli(['view', wstap.capturePath, '--no-tui']);
    expect(view.status).toBe(0);
    expect(view.stdout).toMatch(new RegExp(`WARN  capture gap: ${gap.lostEvents} events of the [\\d.]+ s before this were not saved \\(${fault.code}\\)`));
    expect(view.stdout).toContain('/ws?phase=after');
    const harPath = path.join(dir, `${fault.code}.har`);
    const exported = runCli(['export', wstap.capturePath, '-o', harPath]);
    expect(exported.status).toBe(0);
    const har = JSON.parse(fs.readFileSync(harPath, 'utf8')) as HarLog;
    expect(harSchemaErrors(har)).toEqual([]);
    // Epoch seconds to the microsecond, like every time in _wstap.
    const seconds = (ms: number): number => Math.round(ms * 1000) / 1e6;
    expect(har.log._wstap?.captureGaps).toEqual([{ from: seconds(gap.from), to: seconds(gap.t), lostEvents: gap.lostEvents, code: fault.code }]);
    expect(har.log.entries.map((e) => new URL(e.request.url).search).sort()).toEqual(['?phase=after', '?phase=throughout']);
    // And `wstap view` of that HAR shows the gap too.
    const viewHar = runCli(['view', harPath, '--no-tui']);
    expect(viewHar.status).toBe(0);
    expect(viewHar.stdout).toContain(`capture gap: ${gap.lostEvents} events`);
  } finally {
    await wstap.stop('SIGKILL');
  }

  /** Which phase a close line's connection belongs to, from the handshake line logged for it. */
  function ofUrlConn(line: LogLine, w: WstapProcess): string | undefined {
    const handshake = w.logs.find((l) => l.conn === line.conn && typeof l.url === 'string');
    return /phase=(\w+)/.exec(String(handshake?.url ?? ''))?.[1];
  }
}

/**
 * A tmpfs of `size` mounted for the enclosing describe block. Mounting needs
 * CAP_SYS_ADMIN; where it is refused `mounted()` is false and the tests
 * that need it skip, saying why (the EFBIG case and the unit tests stand).
 */
function smallDisk(dir: string, name: string, size: string): { mountPoint: string; mounted: () => boolean } {
  const mountPoint = path.join(dir, name);
  let mounted = false;
  beforeAll(() => {
    fs.mkdirSync(mountPoint);
    mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', mountPoint]).status === 0;
  });
  afterAll(() => {
    if (!mounted) return;
    if (spawnSync('umount', [mountPoint]).status !== 0) spawnSync('umount', ['-l', mountPoint]);
  });
  return { mountPoint, mounted: () => mounted };
}

function freeBytes(dir: string): number {
  const stats = fs.statfsSync(dir);
  return stats.bavail * stats.bsize;
}

function fsizeHardLimit(pid: number): string {
  return execFileSync('prlimit', ['--pid', String(pid), '--fsize', '--raw', '--noheadings', '--output', 'HARD'], { encoding: 'utf8' }).trim();
}

describe('capture disk faults', () => {
  let app: UpstreamApp;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-disk-faults-'));
  beforeAll(async () => {
    app = await startUpstreamApp();
    echoEverything(app);
  });
  afterAll(async () => {
    await app?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the capture file reaches the file size limit (EFBIG) mid-session, then the limit is lifted', async () => {
    // Room for the session start and a few rounds; Node ignores SIGXFSZ, so writes past it fail with EFBIG.
    const limit = 32 * 1024;
    await outageScenario(
      app,
      {
        code: 'EFBIG',
        start: { wrapper: ['prlimit', `--fsize=${limit}:`, '--'], capturePath: path.join(dir, 'efbig.jsonl') },
        fill: () => undefined,
        // Raising a soft limit up to the hard one needs no privilege.
        free: (wstap) => execFileSync('prlimit', ['--pid', String(wstap.pid), `--fsize=${fsizeHardLimit(wstap.pid)}:`]),
      },
      dir,
    );
    // The gap line starts exactly where the limit stopped the file (after the newline ending a torn line).
    const rest = fs.readFileSync(path.join(dir, 'efbig.jsonl')).subarray(limit).toString('utf8');
    expect(rest).toMatch(/^\n?\{"kind":"capture\.gap"/);
  });

  describe('the disk itself fills up (ENOSPC, a 256 KiB tmpfs)', () => {
    const disk = smallDisk(dir, 'small-disk', '256k');

    it('fills, then space is freed', async (context) => {
      if (!disk.mounted()) context.skip('mounting a tmpfs is not permitted here');
      const filler = path.join(disk.mountPoint, 'filler');
      await outageScenario(
        app,
        {
          code: 'ENOSPC',
          start: { capturePath: path.join(disk.mountPoint, 'enospc.jsonl') },
          // The disk guard would pause the capture before the disk is full: this case is about the write errors.
          args: ['--min-free', '0'],
          // Takes every free block, so the capture's next write has nowhere to go.
          fill: () => {
            const fd = fs.openSync(filler, 'w');
            const chunk = Buffer.alloc(4096, 0x2e);
            try {
              for (;;) fs.writeSync(fd, chunk);
            } catch (err) {
              if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
            } finally {
              fs.closeSync(fd);
            }
          },
          free: () => fs.rmSync(filler),
        },
        dir,
      );
    });
  });
  describe('free space falls below --min-free (a 2 MiB tmpfs): the guard pauses the capture before the disk fills', () => {
    const disk = smallDisk(dir, 'guarded-disk', '2m');
    const isPauseLine = (l: LogLine): boolean => l.msg.startsWith('capture paused: ');
    const isResumedLine = (l: LogLine): boolean => l.msg.startsWith('capture resumed: ');

    it('pauses with one warning while relaying byte-exact, the file stops growing, and a MIN_FREE gap is written once space is freed', async (context) => {
      if (!disk.mounted()) context.skip('mounting a tmpfs is not permitted here');
      const capturePath = path.join(disk.mountPoint, 'guarded.jsonl');
      const filler = path.join(disk.mountPoint, 'filler');
      const wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--min-free', '1M'], { capturePath });
      try {
        const throughout = await EchoClient.open(wstap.port, '/ws?phase=throughout', 1);
        await throughout.round(5);
        // Leaves 512 KiB: below --min-free, and room for what is written before the guard's next reading (no ENOSPC).
        fs.writeFileSync(filler, Buffer.alloc(freeBytes(disk.mountPoint) - 512 * 1024, 0x2e));

        // Paced: the filler is another process's write, seen only at the guard's next reading (about a second,
        // later on a loaded machine), and an unpaced loop can fill the 512 KiB left before it comes.
        const warning = await throughout.roundsUntil(wstap.waitForLog(isPauseLine, 15_000), 5, 300);
        expect(warning.level).toBe(WARN);
        expect(warning.msg).toMatch(/^capture paused: free space on \S+ is [\d.]+ KiB, below --min-free 1\.0 MiB; relaying continues, events are counted but not saved until free space is above 1\.1 MiB$/);
        expect(warning.msg).toContain(disk.mountPoint);
        // Told once the last write is done: from here the file does not grow.
        const sizeAtPause = fs.statSync(capturePath).size;

        const during = await EchoClient.open(wstap.port, '/ws?phase=during', 1000);
        await during.round(20);
        await during.close();
        await throughout.round(20);
        // Past two readings (one a second): still paused, nothing more said, nothing written.
        await sleep(2500);
        expect(fs.statSync(capturePath).size).toBe(sizeAtPause);
        expect(wstap.logs.filter(isCaptureWarning)).toEqual([warning]);
        expect(wstap.logs.some(isResumedLine)).toBe(false);

        fs.rmSync(filler);
        const resumed = await wstap.waitForLog(isResumedLine, 10_000);
        expect(resumed.level).toBe(30);
        expect(resumed.msg).toMatch(/^capture resumed: free space is back above --min-free; \d+ events were not saved over [\d.]+ s \(MIN_FREE\), marked in the capture as capture\.gap$/);

        const after = await EchoClient.open(wstap.port, '/ws?phase=after', 2000);
        await after.round(20);
        await after.close();
        await throughout.round(10);
        await throughout.close();
        for (const client of [throughout, during, after]) {
          expect(client.received.count).toBe(client.sent.count);
          expect(client.received.hex()).toBe(client.sent.hex());
        }
        await wstap.waitForLog((l) => l.msg.includes('closed by client') && l.conn === 3);
        expect(await wstap.stop()).toBe(0);
        const end = wstap.logs.find((l) => l.msg.startsWith('session ended'));
        // One warning for the whole pause (the session's end repeats the count); the disk never refused a write.
        expect(wstap.logs.filter(isCaptureWarning).filter((l) => l !== end)).toEqual([warning]);

        const warnings: CaptureReadWarning[] = [];
        const events = await readCaptureFile(capturePath, { onWarning: (w) => warnings.push(w) });
        expect(warnings).toEqual([]);
        const gaps = ofKind(events, 'capture.gap');
        expect(gaps).toHaveLength(1);
        const gap = gaps[0] as CaptureGapEvent;
        expect(gap.code).toBe('MIN_FREE');
        expect(gap.lostEvents).toBeGreaterThan(0);
        expect(resumed.lostEvents).toBe(gap.lostEvents);
        expect(ofKind(events, 'session.end')[0]?.droppedEvents).toBe(gap.lostEvents);
        expect(ofKind(events, 'ws.handshake.request').map((e) => e.url)).toEqual(['/ws?phase=throughout', '/ws?phase=after']);
        const afterOpen = ofKind(events, 'conn.open').find((e) => e.conn === 3);
        expect(events.indexOf(afterOpen as CaptureEvent)).toBeGreaterThan(events.indexOf(gap));
      } finally {
        await wstap.stop('SIGKILL');
        fs.rmSync(filler, { force: true });
      }
    });
  });
});
