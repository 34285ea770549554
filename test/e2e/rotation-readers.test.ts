import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { segmentPath } from '../../src/capture/capture-format.js';
import { EchoClient, echoEverything } from '../support/echo-client.js';
import { harSchemaErrors } from '../support/har-schema.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { sleep } from '../support/ws-peers.js';
import { BIN, startWstap, type WstapProcess } from '../support/wstap-process.js';

/**
 * The two halves of rotation meet through the real CLI: `proxy --capture
 * --rotate 64K --keep 3` writes a set whose first files --keep deletes,
 * while `view --follow` follows it live (one follower keeping up, one
 * stopped and resumed as a follower blocked on its output pipe would be);
 * then `view`, `export` and the proxy's own `--har` at exit read what was
 * kept.
 *
 * One session for the whole file: connection #1 is opened first and carries
 * the load that makes the files rotate, so its conn.open is in a file --keep
 * deletes; #2-#4 open and close once that has happened, so the kept files
 * hold them whole; #1 then exchanges one more message and closes cleanly.
 */

const KEEP = 3;
/** #1's open is deleted once segment KEEP exists; more rotations than that, and the slow follower must lose whole files. */
const LEAST_ROTATIONS = 6;

interface CliRun {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function spawnCli(args: string[]): CliRun {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The segment numbers of the set at `base` on disk now. */
function segmentsOnDisk(base: string): number[] {
  const prefix = `${path.basename(base)}.`;
  return fs
    .readdirSync(path.dirname(base))
    .flatMap((name) => (name === path.basename(base) ? [0] : name.startsWith(prefix) && /^\d+$/.test(name.slice(prefix.length)) ? [Number(name.slice(prefix.length))] : []))
    .sort((a, b) => a - b);
}

/** The newest file and its size: changes with every write that reaches the capture. */
function diskMark(base: string): string {
  const last = segmentsOnDisk(base).at(-1) ?? 0;
  try {
    return `${last}:${fs.statSync(segmentPath(base, last)).size}`;
  } catch {
    return `${last}:gone`;
  }
}

/** The highest segment a follower has said it follows (its `following FILE (segment N)` notes), 0 before any. */
function followedSegment(follower: CliRun): number {
  let most = 0;
  for (const m of follower.stderr().matchAll(/following .* \(segment (\d+)\)/g)) most = Math.max(most, Number(m[1]));
  return most;
}

async function until(what: string, test: () => boolean, context: () => string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms\n${context()}`);
    await sleep(25);
  }
}

/** Close lines (`#N closed ...`) in the order printed. */
function closeLines(stdout: string): string[] {
  return stdout.split('\n').filter((l) => / #\d+ closed /.test(l));
}

interface HarDoc {
  log: { entries: Array<{ request: { url: string }; serverIPAddress?: string; _wstap?: { connectionId: number; closedBy: string | null; incomplete?: { beginningMissing: boolean; note: string } } }> };
}

describe('a rotated capture read back while it is written and after: view, view --follow, export, --har', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-rotation-readers-'));
  const base = path.join(dir, 'cap.jsonl');
  const exitHar = path.join(dir, 'at-exit.har');
  let app: UpstreamApp;
  let wstap: WstapProcess | undefined;
  let follower: CliRun;
  let slow: CliRun;
  let stoppedAt = 0;
  let lastSegment = 0;
  let proxyExit: number | null = null;

  const context = (): string =>
    `segments on disk: ${segmentsOnDisk(base).join(', ')}\nfollower stderr:\n${follower?.stderr()}\nslow follower stderr:\n${slow?.stderr()}\nproxy stderr (tail):\n${wstap?.stderr().split('\n').slice(-8).join('\n')}`;

  beforeAll(async () => {
    app = await startUpstreamApp();
    echoEverything(app);
    // Both followers start before the proxy: the capture does not exist yet, and is waited for.
    follower = spawnCli(['view', '--follow', '--no-tui', base]);
    slow = spawnCli(['view', '--follow', '--no-tui', base]);
    await until('both followers waiting', () => follower.stderr().includes('waiting for') && slow.stderr().includes('waiting for'), context);
    wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--rotate', '64K', '--keep', String(KEEP), '--har', exitHar], { capturePath: base });

    const long = await EchoClient.open(wstap.port, '/long', 1);
    let slowStopped = false;
    // Load on #1 until the files have rotated well past --keep; the slow follower is stopped once it is into segment 1.
    for (;;) {
      // About 20 KB of capture a round, then a wait for the writer to flush it (every 250 ms): so one flush stays
      // under one file (64K), and a follower on the newest file when a round starts is at most one behind after it.
      // Rounds faster than flushes pile up into one write that takes the writer through more than --keep files at
      // once, and then any follower, however quick, loses some (the slow follower's case below).
      const before = diskMark(base);
      await long.round(10);
      await until('the round written to the capture', () => diskMark(base) !== before, context);
      const last = segmentsOnDisk(base).at(-1) ?? 0;
      // The followers keep up (the quick one is the one that must miss nothing): load waits for them, never a fixed pause.
      await until(`the follower following segment ${last}`, () => followedSegment(follower) >= last, context);
      if (!slowStopped) await until(`the slow follower following segment ${last}`, () => followedSegment(slow) >= last, context);
      if (!slowStopped && last >= 1) {
        // SIGSTOP: what a follower blocked on a full stdout pipe (| less, a stalled ssh) amounts to; it holds its file open meanwhile.
        slow.child.kill('SIGSTOP');
        slowStopped = true;
      }
      if (slowStopped && last >= Math.max(LEAST_ROTATIONS, followedSegment(slow) + KEEP + 2)) break;
    }
    // More than --keep files were written while the slow follower was stopped: files it never opened are gone.
    stoppedAt = followedSegment(slow);
    slow.child.kill('SIGCONT');

    // #2-#4 open and close inside the kept files.
    for (const n of [2, 3, 4]) {
      const short = await EchoClient.open(wstap.port, `/short/${n}`, n * 1000);
      await short.round(3);
      await short.close();
    }
    // #1 speaks again on both sides (so its closer can be judged without its beginning), then closes cleanly.
    await long.round(1);
    await long.close();
    expect(long.received.hex()).toBe(long.sent.hex());
    await wstap.waitForLog((l) => l.msg.startsWith('#1 closed '), 20_000);
    proxyExit = await wstap.stop();
    lastSegment = segmentsOnDisk(base).at(-1) ?? 0;
  }, 180_000);

  afterAll(async () => {
    for (const f of [follower, slow]) {
      if (f && f.child.exitCode === null) {
        f.child.kill('SIGCONT');
        f.child.kill('SIGKILL');
      }
      await f?.exited;
    }
    await wstap?.stop('SIGKILL');
    await app?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the proxy rotated past --keep and exited 0 with its --har written', () => {
    expect(proxyExit, context()).toBe(0);
    expect(lastSegment).toBeGreaterThanOrEqual(LEAST_ROTATIONS);
    expect(segmentsOnDisk(base)).toEqual([lastSegment - 2, lastSegment - 1, lastSegment]);
    expect(wstap?.logs.some((l) => l.msg.includes(`reading 3 files of the set, segments ${lastSegment - 2}-${lastSegment}; segments before ${lastSegment - 2} were deleted (--keep)`))).toBe(true);
    expect(wstap?.logs.find((l) => l.msg.startsWith(`wrote ${exitHar}`))?.msg).toMatch(/: 4 entries, /);
  });

  it('view reads the kept files as one session: which were read, that earlier ones were deleted; #1 incomplete with its close, #2-#4 whole', () => {
    const r = run(['view', '--no-tui', base]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`${base}: reading 3 files of the set, segments ${lastSegment - 2}-${lastSegment}; segments before ${lastSegment - 2} were deleted (--keep)`);
    expect(r.stderr).not.toMatch(/warning/);
    const closes = closeLines(r.stdout);
    expect(closes.map((l) => / #(\d+) closed /.exec(l)?.[1])).toEqual(['2', '3', '4', '1']);
    expect(closes[3]).toMatch(/#1 closed by client \(client close-frame 1000 "done"\) after at least .* \(its beginning is not in the capture\)/);
    for (const n of [2, 3, 4]) {
      expect(r.stdout).toMatch(new RegExp(`#${n} open from 127\\.0\\.0\\.1:`));
      const line = closes.find((l) => l.includes(`#${n} closed`));
      expect(line).toMatch(new RegExp(`#${n} closed by client \\(client close-frame 1000 "done"\\)`));
      expect(line).not.toMatch(/beginning is not in the capture/);
    }
    expect(r.stdout).not.toMatch(/#1 open from/);
    // The session's start was in the deleted segment 0: the kept files' headers repeat it.
    expect(r.stdout.split('\n')[1]).toMatch(new RegExp(`INFO  listening on 127\\.0\\.0\\.1:${wstap?.port} -> http://127\\.0\\.0\\.1:${app.port} \\(http mode\\)$`));
    expect(r.stdout).toMatch(/session ended \(signal\)/);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('4 connection(s) closed: 4 by client');
  });

  it('export of the kept set, and --har at exit: valid HAR, #1 marked _wstap.incomplete, #2-#4 whole', () => {
    const exported = path.join(dir, 'x.har');
    const r = run(['export', base, '-o', exported]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`segments before ${lastSegment - 2} were deleted (--keep)`);
    for (const file of [exported, exitHar]) {
      const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as HarDoc;
      expect(harSchemaErrors(doc), file).toEqual([]);
      const byConn = new Map(doc.log.entries.map((e) => [e._wstap?.connectionId, e]));
      expect([...byConn.keys()].sort(), file).toEqual([1, 2, 3, 4]);
      expect(byConn.get(1)?._wstap, file).toMatchObject({ closedBy: 'client', incomplete: { beginningMissing: true, note: expect.stringContaining('deleted file of a rotated set') as unknown } });
      // From the session's start, which only the kept files' headers still hold.
      expect(doc.log.entries.map((e) => e.serverIPAddress), file).toEqual(doc.log.entries.map(() => '127.0.0.1'));
      for (const n of [2, 3, 4]) {
        expect(byConn.get(n)?._wstap?.incomplete, `${file} #${n}`).toBeUndefined();
        expect(byConn.get(n)?._wstap?.closedBy).toBe('client');
        expect(byConn.get(n)?.request.url).toContain(`/short/${n}`);
      }
    }
  });

  it('view --follow, started before the proxy, follows every rotation: every close in order, then stops by itself at the session end', async () => {
    expect(await follower.exited, context()).toBe(0);
    const out = follower.stdout();
    // It saw #1 open: it was there before the file that held it was deleted.
    expect(out).toMatch(/#1 open from 127\.0\.0\.1:/);
    expect(closeLines(out).map((l) => / #(\d+) closed /.exec(l)?.[1])).toEqual(['2', '3', '4', '1']);
    expect(closeLines(out)[3]).toMatch(/#1 closed by client \(client close-frame 1000 "done"\)/);
    expect(closeLines(out)[3]).not.toMatch(/beginning|unknown/);
    for (let n = 1; n <= lastSegment; n++) expect(follower.stderr()).toContain(`following ${segmentPath(base, n)} (segment ${n})`);
    expect(follower.stderr()).not.toMatch(/warning|missing/);
    expect(out).not.toMatch(/capture gap/);
    expect(out).toMatch(/session ended \(signal\)/);
    expect(out.trim().split('\n').at(-1)).toBe('4 connection(s) closed: 4 by client');
  });

  it('a follower that fell more than --keep files behind says which files it lost (a gap), reads on, and ends at the session end', async () => {
    expect(await slow.exited, context()).toBe(0);
    const out = slow.stdout();
    const err = slow.stderr();
    // The file it held open was read to its end though --keep deleted it; the ones after it it never opened are named.
    const lost = [...err.matchAll(/warning: .*: segment (\d+) \(.*\) is missing/g)].map((m) => Number(m[1]));
    expect(lost.length, err).toBeGreaterThanOrEqual(1);
    expect(lost[0]).toBe(stoppedAt + 1);
    expect(lost).toEqual(lost.map((_, i) => stoppedAt + 1 + i));
    expect(out).toContain(`capture gap: segment${lost.length === 1 ? '' : 's'} ${lost.join(', ')} of the set ${lost.length === 1 ? 'is' : 'are'} missing`);
    expect(err).toContain(`following ${segmentPath(base, (lost.at(-1) as number) + 1)} (segment ${(lost.at(-1) as number) + 1})`);
    // Every connection's close still comes, in order; #1 spoke on both sides after the gap, so its closer is still judged.
    expect(closeLines(out).map((l) => / #(\d+) closed /.exec(l)?.[1])).toEqual(['2', '3', '4', '1']);
    expect(closeLines(out)[3]).toMatch(/#1 closed by client \(client close-frame 1000 "done"\)/);
    expect(out.trim().split('\n').at(-1)).toBe('4 connection(s) closed: 4 by client');
  });
});
