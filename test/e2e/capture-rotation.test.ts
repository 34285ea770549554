import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCaptureFile, type CaptureReadWarning } from '../../src/capture/capture-reader.js';
import { segmentPath, type CaptureHeader } from '../../src/capture/capture-format.js';
import type { CaptureEvent } from '../../src/capture/events.js';
import { EchoClient, echoEverything } from '../support/echo-client.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { ofKind } from '../support/ws-peers.js';
import { BIN, startWstap } from '../support/wstap-process.js';

/**
 * --rotate/--keep through the real CLI (issue 14): a busy session's capture
 * is split into files of at most SIZE, each readable on its own, and the
 * oldest are deleted so the set never holds more than N files.
 */

const SIZE = 64 * 1024;

/** The segment numbers of the set at `base` on disk now. */
function segmentsOnDisk(base: string): number[] {
  const prefix = `${path.basename(base)}.`;
  let names: string[];
  try {
    names = fs.readdirSync(path.dirname(base));
  } catch {
    return [];
  }
  return names
    .flatMap((name) => (name === path.basename(base) ? [0] : name.startsWith(prefix) && /^\d+$/.test(name.slice(prefix.length)) ? [Number(name.slice(prefix.length))] : []))
    .sort((a, b) => a - b);
}

describe('capture rotation through the CLI', () => {
  let app: UpstreamApp;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-rotation-e2e-'));
  beforeAll(async () => {
    app = await startUpstreamApp();
    echoEverything(app);
  });
  afterAll(async () => {
    await app?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('--rotate 64K --keep 3 under load: never more than 3 files, each within 64 KiB with its own header, the newest holding the end', async () => {
    const base = path.join(dir, 'cap.jsonl');
    const wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--rotate', '64K', '--keep', '3'], { capturePath: base });
    // Sampled all along, as an operator's `ls` would.
    let mostFiles = 0;
    let samples = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        mostFiles = Math.max(mostFiles, segmentsOnDisk(base).length);
        samples++;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    let clients: EchoClient[] = [];
    try {
      clients = await Promise.all([1, 2, 3, 4].map((n) => EchoClient.open(wstap.port, `/ws?client=${n}`, n * 10_000)));
      for (let round = 0; round < 15; round++) await Promise.all(clients.map((c) => c.round(40)));
      for (const c of clients) await c.close();
      for (const c of clients) {
        expect(c.received.count).toBe(c.sent.count);
        expect(c.received.hex()).toBe(c.sent.hex());
      }
      await wstap.waitForLog((l) => l.msg.includes('closed by client') && l.conn === 4);
      expect(await wstap.stop()).toBe(0);
    } finally {
      sampling = false;
      await sampler;
      await wstap.stop('SIGKILL');
    }

    expect(samples).toBeGreaterThan(10);
    expect(mostFiles).toBeLessThanOrEqual(3);
    const segments = segmentsOnDisk(base);
    const last = segments.at(-1) ?? 0;
    // 2400 echoed messages of up to 3000 bytes make many times 3 x 64 KiB of capture.
    expect(last).toBeGreaterThan(10);
    expect(segments).toEqual([last - 2, last - 1, last]);

    const headers: CaptureHeader[] = [];
    const events: CaptureEvent[] = [];
    for (const n of segments) {
      const file = segmentPath(base, n);
      expect(fs.statSync(file).size, file).toBeLessThanOrEqual(SIZE);
      const text = fs.readFileSync(file, 'utf8');
      expect(text.endsWith('\n'), file).toBe(true);
      headers.push(JSON.parse(text.slice(0, text.indexOf('\n'))) as CaptureHeader);
      const warnings: CaptureReadWarning[] = [];
      events.push(...(await readCaptureFile(file, { onWarning: (w) => warnings.push(w) })));
      expect(warnings, file).toEqual([]);
    }
    const session = headers[0]?.session;
    expect(session).toMatch(/^[0-9a-f-]{36}$/);
    // Each later file repeats the session's start (segment 0, which held it, is long deleted).
    const start = headers[0]?.start;
    expect(start).toMatchObject({ kind: 'session.start', listen: `127.0.0.1:${wstap.port}`, target: `http://127.0.0.1:${app.port}` });
    expect(headers).toStrictEqual(segments.map((segment) => ({ format: 'wstap-capture', version: 1, createdBy: expect.stringMatching(/^wstap /) as unknown, session, segment, start, instance: expect.stringMatching(/\/127\.0\.0\.1:0$/) as unknown })));
    // Events in time order across the files; the newest end with the session's end and the four closes before it.
    for (let i = 1; i < events.length; i++) expect(events[i]?.t ?? 0).toBeGreaterThanOrEqual(events[i - 1]?.t ?? 0);
    expect(events.at(-1)).toMatchObject({ kind: 'session.end', reason: 'signal', droppedEvents: 0 });
    expect(ofKind(events, 'conn.close').map((e) => e.conn).sort()).toEqual([1, 2, 3, 4]);
    expect(ofKind(events, 'capture.gap')).toEqual([]);
  });

  it('refuses to start over an earlier set\'s segment without --force, and replaces the set with it', async () => {
    const base = path.join(dir, 'again.jsonl');
    fs.writeFileSync(`${base}.3`, 'from an earlier session\n');
    const refused = spawnSync(process.execPath, [BIN, 'proxy', '--target', `http://127.0.0.1:${app.port}`, '--listen', '127.0.0.1:0', '--no-tui', '--log-format', 'json', '--capture', base, '--rotate', '64K'], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain(`capture file ${base}.3 already exists; choose another name or pass --force to overwrite it`);
    expect(fs.existsSync(base)).toBe(false);

    const wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--rotate', '64K', '--force'], { capturePath: base });
    expect(await wstap.stop()).toBe(0);
    expect(segmentsOnDisk(base)).toEqual([0]);
    expect(ofKind(await readCaptureFile(base), 'session.end')).toHaveLength(1);
  });

  it('usage errors: --keep without --rotate, --keep 0, a SIZE too small or not a size', () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [BIN, 'proxy', '--target', 'http://127.0.0.1:9', '--no-tui', '--capture', path.join(dir, 'u.jsonl'), ...args], { encoding: 'utf8', timeout: 20_000 });
    const cases: Array<[string[], string]> = [
      [['--keep', '3'], '--keep needs --rotate SIZE'],
      [['--rotate', '64K', '--keep', '0'], '--keep "0" must be at least 1'],
      [['--rotate', '100'], '--rotate "100" is too small: at least 4K'],
      [['--rotate', 'big'], '--rotate "big" is not a size'],
      [['--min-free', '5%'], '--min-free "5%" is not a size'],
    ];
    for (const [args, message] of cases) {
      const r = run(...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(message);
    }
    expect(fs.existsSync(path.join(dir, 'u.jsonl'))).toBe(false);
  });
});
