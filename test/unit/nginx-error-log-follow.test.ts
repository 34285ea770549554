import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CaptureEvent, NginxLogEvent, NginxLogSourceEvent } from '../../src/capture/events.js';
import { ErrorLogFollower, INITIAL_TAIL_BYTES } from '../../src/nginx/error-log-follower.js';
import type { NginxErrorLine } from '../../src/nginx/error-log-line.js';
import { mergeErrorLog } from '../../src/nginx/error-log-merge.js';
import { closeEvent, finEvent, openEvent, T0 } from '../support/event-fixtures.js';

const lineText = (n: number, level = 'info'): string => `2026/12/02 06:44:${String(n % 60).padStart(2, '0')} [${level}] 40#40: *${n} client closed connection while waiting for request, client: 127.0.0.1, server: 127.0.0.1:8080`;

describe('ErrorLogFollower: a live log across rotation', () => {
  const dirs: string[] = [];
  const followers: ErrorLogFollower[] = [];
  afterEach(async () => {
    for (const f of followers.splice(0)) await f.close();
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  function follow(file: string): { seen: number[]; notes: string[]; follower: ErrorLogFollower } {
    const seen: number[] = [];
    const notes: string[] = [];
    // A long poll: the test drives reads with catchUp, as a connection's close does.
    const follower = new ErrorLogFollower({ path: file, zone: { kind: 'offset', minutes: 0 }, pollMs: 60_000, onLines: (lines: NginxErrorLine[]) => seen.push(...lines.map((l) => l.connection ?? -1)), onNote: (n) => notes.push(n) });
    followers.push(follower);
    return { seen, notes, follower };
  }

  it('starts at the end (only counting what the end held), then reads new lines, a partial one once whole, across rename + new file and copytruncate', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-nginx-follow-'));
    dirs.push(dir);
    const file = path.join(dir, 'error.log');
    fs.writeFileSync(file, `${lineText(1)}\n${lineText(2, 'error')}\n`);
    const { seen, notes, follower } = follow(file);
    expect(await follower.start()).toEqual({ lines: 2, infoLines: 1, lastInfoTime: '2026/12/02 06:44:01' });
    expect(seen).toEqual([]);

    const third = lineText(3);
    fs.appendFileSync(file, third.slice(0, 30));
    await follower.catchUp();
    expect(seen).toEqual([]);
    fs.appendFileSync(file, `${third.slice(30)}\n`);
    await follower.catchUp();
    expect(seen).toEqual([3]);

    // logrotate `create`: renamed away, nginx still writes to it until it reopens, then a new file.
    fs.renameSync(file, `${file}.1`);
    fs.appendFileSync(`${file}.1`, `${lineText(4)}\n`);
    fs.writeFileSync(file, `${lineText(5)}\n`);
    await follower.catchUp();
    expect(seen).toEqual([3, 4, 5]);
    expect(notes).toContain(`nginx error log ${file} was rotated (renamed away); following the new file`);

    // copytruncate: the file shrinks under the read position (seen at the next read), then grows again.
    fs.truncateSync(file, 0);
    await follower.catchUp();
    fs.appendFileSync(file, `${lineText(6)}\n`);
    await follower.catchUp();
    expect(seen).toEqual([3, 4, 5, 6]);
    expect(notes.some((n) => n.includes('was truncated (copytruncate)'))).toBe(true);
  });

  it('a log that does not exist yet is waited for and read from its start; a huge existing one is only read at its end', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-nginx-follow-'));
    dirs.push(dir);
    const file = path.join(dir, 'error.log');
    const { seen, notes, follower } = follow(file);
    expect(await follower.start()).toEqual({ lines: 0, infoLines: 0, lastInfoTime: null });
    expect(notes).toEqual([`nginx error log ${file} does not exist yet; waiting for it`]);
    fs.writeFileSync(file, `${lineText(7)}\n`);
    await follower.catchUp();
    expect(seen).toEqual([7]);

    const big = path.join(dir, 'big.log');
    const many = Array.from({ length: 2000 }, (_, i) => lineText(i)).join('\n') + '\n';
    fs.writeFileSync(big, many);
    const other = follow(big);
    const before = await other.follower.start();
    expect(before.lines).toBeLessThan(2000);
    expect(before.lines).toBeGreaterThan(Math.floor(INITIAL_TAIL_BYTES / (lineText(1999).length + 1)) - 2);
  });
});

describe('ErrorLogFollower: a log that cannot be read', () => {
  it('says so once, never throws (a close waiting on it is recorded all the same), and picks the log up again when it can', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-nginx-follow-'));
    const file = path.join(dir, 'error.log');
    fs.mkdirSync(file);
    const seen: number[] = [];
    const notes: string[] = [];
    const follower = new ErrorLogFollower({ path: file, zone: { kind: 'offset', minutes: 0 }, pollMs: 60_000, onLines: (lines) => seen.push(...lines.map((l) => l.connection ?? -1)), onNote: (n) => notes.push(n) });
    try {
      await follower.start().catch((err: unknown) => notes.push(`start threw ${String(err)}`));
      await follower.catchUp();
      await follower.catchUp();
      expect(notes.filter((n) => n.startsWith('cannot read nginx error log'))).toEqual([`cannot read nginx error log ${file} (not a regular file); trying again`]);
      fs.rmdirSync(file);
      fs.writeFileSync(file, `${lineText(8)}\n`);
      await follower.catchUp();
      expect(seen).toEqual([8]);
    } finally {
      await follower.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('mergeErrorLog: lines read after the fact, merged by time', () => {
  const line = (at: number, connection: number): NginxLogEvent => ({
    kind: 'nginx.log', t: at + 999, file: 'e.log', at, time: 'x', level: 'info', pid: 1, tid: 1, connection, message: 'm', fields: {},
  });
  const source: NginxLogSourceEvent = { kind: 'nginx.log.source', t: 0, file: 'e.log', zone: 'UTC+00:00' };

  async function collect(events: CaptureEvent[], lines: NginxLogEvent[]): Promise<string[]> {
    async function* log(): AsyncGenerator<NginxLogEvent> {
      yield* lines;
    }
    const out: string[] = [];
    for await (const e of mergeErrorLog(events, log(), [source])) out.push(e.kind === 'nginx.log' ? `line*${e.connection}` : 'conn' in e ? `${e.kind}#${e.conn}` : e.kind);
    return out;
  }

  it("sources after session.start, each line where its second ends, a close held until the log passed a second after it; the capture's own lines replaced", async () => {
    const start: CaptureEvent = { kind: 'session.start', t: T0, version: 'x', mode: 'http', listen: '', target: '', pid: 1, previewLimit: 0 };
    const recorded: NginxLogEvent = line(T0, 99);
    const events: CaptureEvent[] = [start, recorded, openEvent(1, { t: T0 + 100 }), finEvent(1, T0 + 2300, 'client'), closeEvent(1, T0 + 2310), openEvent(2, { t: T0 + 2500 }), openEvent(3, { t: T0 + 5000 })];
    // nginx's timeout line of #1, logged in the second of its close (written before it): its t (+999) is after the close's t.
    expect(await collect(events, [line(T0 + 2000, 1), line(T0 + 4000, 2)])).toEqual([
      'session.start',
      'nginx.log.source',
      'conn.open#1',
      'tcp.fin#1',
      'conn.open#2',
      'line*1',
      'conn.close#1',
      'line*2',
      'conn.open#3',
    ]);
  });

  it('closes still held at session.end come out before it; later lines after it', async () => {
    const events: CaptureEvent[] = [openEvent(1, { t: T0 }), closeEvent(1, T0 + 100), { kind: 'session.end', t: T0 + 200, reason: 'signal', droppedEvents: 0 }];
    expect(await collect(events, [line(T0, 1), line(T0 + 9000, 5)])).toEqual(['nginx.log.source', 'conn.open#1', 'line*1', 'conn.close#1', 'session.end', 'line*5']);
  });
});
