import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { readCaptureFile } from '../../src/capture/capture-reader.js';
import { segmentPath } from '../../src/capture/capture-format.js';
import { harSchemaErrors } from '../support/har-schema.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { closedEvent, connectClient, ofKind, sleep } from '../support/ws-peers.js';
import type { HarLog } from '../../src/har/har-types.js';
import { paneExitStatus, shellQuote, tmuxMissing, TmuxServer } from '../support/tmux.js';
import { BIN, captureWhen, findingsIn, runWstapSync, startWstap, type WstapProcess } from '../support/wstap-process.js';

/**
 * Issue 20 item 3: two proxies on two ports, each writing its own capture
 * (one of them rotated), read back as one session: `wstap view A B` and
 * `wstap export A B` order the connections by time across both, number
 * them uniquely and say for each which proxy it went through.
 */

describe('two proxies, read as one', () => {
  let app: UpstreamApp;
  let edgeA: WstapProcess;
  let edgeB: WstapProcess;
  let dir: string;
  /** When each WebSocket opened, as its client saw it: the merged order must follow these. */
  const opened: Array<{ via: string; path: string; at: number }> = [];

  async function talk(via: WstapProcess, name: string, pathName: string, messages = 1): Promise<void> {
    const next = app.nextConnection();
    const at = Date.now();
    const ws: WebSocket = await connectClient(`ws://127.0.0.1:${via.port}${pathName}`);
    opened.push({ via: name, path: pathName, at });
    const server = await next;
    for (let i = 0; i < messages; i++) server.ws.send(`message ${i} ${'x'.repeat(200)}`);
    ws.close(1000);
    await closedEvent(ws);
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-instances-'));
    app = await startUpstreamApp();
    edgeA = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--instance', 'edge-a'], { capturePath: path.join(dir, 'a.jsonl') });
    // The other proxy rotates its capture: the merge reads its whole set.
    edgeB = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--rotate', '4K'], { capturePath: path.join(dir, 'b.jsonl') });
    await talk(edgeA, 'edge-a', '/first-via-a');
    await sleep(20);
    await talk(edgeB, 'edge-b', '/second-via-b', 40);
    await sleep(20);
    await talk(edgeA, 'edge-a', '/third-via-a');
    await captureWhen(edgeA, (events) => ofKind(events, 'conn.close').length === 2);
    expect(await edgeA.stop()).toBe(0);
    expect(await edgeB.stop()).toBe(0);
  });

  afterAll(async () => {
    await edgeA?.stop();
    await edgeB?.stop();
    await app?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('each capture names its instance in its first line and its session.start', async () => {
    const a = path.join(dir, 'a.jsonl');
    const b = path.join(dir, 'b.jsonl');
    expect(JSON.parse(fs.readFileSync(a, 'utf8').split('\n')[0] as string)).toMatchObject({ format: 'wstap-capture', instance: 'edge-a' });
    // The default: the host's name and the listen address as given.
    const defaultName = `${os.hostname()}/127.0.0.1:0`;
    expect(JSON.parse(fs.readFileSync(b, 'utf8').split('\n')[0] as string)).toMatchObject({ instance: defaultName });
    expect(fs.existsSync(segmentPath(b, 1))).toBe(true);
    expect(JSON.parse(fs.readFileSync(segmentPath(b, 1), 'utf8').split('\n')[0] as string)).toMatchObject({ segment: 1, instance: defaultName });
    expect(ofKind(await readCaptureFile(a), 'session.start')[0]?.instance).toBe('edge-a');
  });

  it('view: connections in time order across both, renumbered, each line saying its instance', () => {
    const b = path.join(dir, 'b.jsonl');
    const r = runWstapSync(['view', '--no-tui', path.join(dir, 'a.jsonl'), b]);
    expect(r.status, r.stderr).toBe(0);
    const defaultName = `${os.hostname()}/127.0.0.1:0`;
    expect(r.stdout).toContain(`2 wstap captures merged by time (edge-a, ${defaultName})`);
    expect(r.stderr).toMatch(new RegExp(`${defaultName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: reading \\d+ files of the set`));
    const opens = r.stdout.split('\n').filter((l) => / open from /.test(l));
    expect(opens.map((l) => /#(\d+) \[([^\]]+)\]/.exec(l)?.slice(1))).toEqual([
      ['1', 'edge-a#1'],
      ['2', `${defaultName}#1`],
      ['3', 'edge-a#2'],
    ]);
    const handshakes = r.stdout.split('\n').filter((l) => /GET \//.test(l)).map((l) => /GET (\S+)/.exec(l)?.[1]);
    expect(handshakes).toEqual(opened.sort((x, y) => x.at - y.at).map((o) => o.path));
    expect(r.stdout.split('\n').filter((l) => / closed /.test(l)).map((l) => /\[([^\]#]+)#/.exec(l)?.[1])).toEqual(['edge-a', defaultName, 'edge-a']);
    expect(r.stdout).toMatch(/\[edge-a\] listening on 127\.0\.0\.1:\d+ ->/);
    expect(r.stdout).toMatch(/3 connection\(s\) closed: 3 by client/);
  });

  it('export: one HAR whose entries say their instance and id there, ids unique', () => {
    const har = path.join(dir, 'both.har');
    const r = runWstapSync(['export', path.join(dir, 'a.jsonl'), path.join(dir, 'b.jsonl'), '-o', har]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/2 captures merged by time/);
    const doc = JSON.parse(fs.readFileSync(har, 'utf8')) as {
      log: { entries: Array<{ startedDateTime: string; request: { url: string }; _wstap?: { connectionId: number; instance?: string; instanceConnectionId?: number } }> };
    };
    expect(harSchemaErrors(doc)).toEqual([]);
    const entries = doc.log.entries.map((e) => [e._wstap?.connectionId, e._wstap?.instance, e._wstap?.instanceConnectionId, new URL(e.request.url).pathname]);
    const defaultName = `${os.hostname()}/127.0.0.1:0`;
    expect(entries).toEqual([
      [1, 'edge-a', 1, '/first-via-a'],
      [2, defaultName, 1, '/second-via-b'],
      [3, 'edge-a', 2, '/third-via-a'],
    ]);
  });
});

const SLOW_PROFILE = `name: slow-front
description: a front hop that waits 30 s (test)
hops:
  - name: front
    where: client-side
    timeouts:
      - setting: idle
        after: 30s
        measures: both-idle
        action: unknown
`;

/**
 * Two proxies that ran with different contexts (edge-a: --timeout
 * front.idle=2s; edge-b: --profile with a 30 s front hop), each with a
 * WebSocket the client closes after 2 s of silence: the same silence is a
 * timeout.match through edge-a and matches nothing through edge-b. Read as
 * one (view, export, view of that HAR), each connection is judged with its
 * own instance's context, as each proxy judged it live.
 */
describe('two proxies with different contexts, read as one', () => {
  let app: UpstreamApp;
  let edgeA: WstapProcess;
  let edgeB: WstapProcess;
  let dir: string;
  let a: string;
  let b: string;
  let liveA: string;

  /** Each connection's verdict line, from its id on: `#1 [edge-a#1] closed by client side ... matches ...`. */
  const verdicts = (stdout: string): string[] => stdout.split('\n').filter((l) => / matches /.test(l)).map((l) => l.slice(l.indexOf('#')));

  async function quiet(via: WstapProcess, pathName: string): Promise<WebSocket> {
    const next = app.nextConnection();
    const ws = await connectClient(`ws://127.0.0.1:${via.port}${pathName}`);
    await next;
    return ws;
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-instances-ctx-'));
    const profile = path.join(dir, 'slow.yaml');
    fs.writeFileSync(profile, SLOW_PROFILE);
    app = await startUpstreamApp();
    a = path.join(dir, 'a.jsonl');
    b = path.join(dir, 'b.jsonl');
    edgeA = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--instance', 'edge-a', '--timeout', 'front.idle=2s'], { capturePath: a });
    edgeB = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--instance', 'edge-b', '--profile', profile], { capturePath: b });
    const viaA = await quiet(edgeA, '/quiet-via-a');
    const viaB = await quiet(edgeB, '/quiet-via-b');
    // The same 2 s of silence on both, then each TCP connection ends with a FIN, as a hop's idle timer would end it.
    await sleep(2000);
    viaA.terminate();
    viaB.terminate();
    await Promise.all([closedEvent(viaA), closedEvent(viaB)]);
    await edgeA.waitForLog((l) => (l as unknown as { finding?: { id?: string } }).finding?.id === 'timeout.match', 15_000);
    liveA = findingsIn(edgeA).find((f) => f.id === 'timeout.match')?.message ?? '';
    // timeout.none is a debug-level line live: edge-b's close is what shows it is done.
    await captureWhen(edgeB, (events) => ofKind(events, 'conn.close').length === 1);
    expect(await edgeA.stop()).toBe(0);
    expect(await edgeB.stop()).toBe(0);
  }, 60_000);

  afterAll(async () => {
    await edgeA?.stop();
    await edgeB?.stop();
    await app?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('live, the silence was a timeout.match through edge-a', () => {
    expect(liveA).toMatch(/matches front idle 2s/);
    expect(findingsIn(edgeB).filter((f) => f.id === 'timeout.match')).toEqual([]);
  });

  it('view judges each connection with its instance\'s context, as live, and says once that they differ', () => {
    const r = runWstapSync(['view', '--no-tui', a, b]);
    expect(r.status, r.stderr).toBe(0);
    // The two closes came at once: their lines may come in either order.
    const judged = verdicts(r.stdout).sort();
    expect(judged).toHaveLength(2);
    expect(judged[0]).toMatch(/#1 \[edge-a#1\] /);
    expect(judged[0]).toContain(liveA);
    expect(judged[1]).toMatch(/#2 \[edge-b#1\] /);
    expect(judged[1]).toMatch(/matches no known timeout/);
    const notes = r.stderr.split('\n').filter((l) => /different contexts/.test(l));
    expect(notes).toEqual([
      `wstap: the instances ran with different contexts, each connection is judged with its own instance's: edge-a: --timeout front.idle=2s; edge-b: --profile slow-front (${path.join(dir, 'slow.yaml')})`,
    ]);
  });

  it('export: each entry\'s findings by its instance\'s context, each context in log._wstap; view of the HAR judges and labels the same', () => {
    const har = path.join(dir, 'both.har');
    const r = runWstapSync(['export', a, b, '-o', har]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/different contexts/);
    const doc = JSON.parse(fs.readFileSync(har, 'utf8')) as HarLog;
    expect(harSchemaErrors(doc)).toEqual([]);
    const byInstance = doc.log.entries.map((e) => [e._wstap?.instance ?? '', e._wstap?.diagnosis.filter((f) => f.id.startsWith('timeout.')).map((f) => f.message)] as const);
    expect([...byInstance].sort((x, y) => x[0].localeCompare(y[0]))).toEqual([
      ['edge-a', [liveA]],
      ['edge-b', [expect.stringMatching(/matches no known timeout/)]],
    ]);
    expect(doc.log._wstap?.diagnosisContext?.timeoutFlags).toEqual(['front.idle=2s']);
    expect(Object.entries(doc.log._wstap?.diagnosisContexts ?? {}).map(([name, record]) => [name, record?.timeoutFlags, record?.profile?.name ?? null])).toEqual([
      ['edge-a', ['front.idle=2s'], null],
      ['edge-b', [], 'slow-front'],
    ]);
    const fromCaptures = runWstapSync(['view', '--no-tui', a, b]);
    const fromHar = runWstapSync(['view', '--no-tui', har]);
    expect(fromHar.status, fromHar.stderr).toBe(0);
    expect(verdicts(fromHar.stdout).sort()).toEqual(verdicts(fromCaptures.stdout).sort());
    expect(fromHar.stdout.split('\n').filter((l) => / open from /.test(l)).map((l) => /#\d+ \[[^\]]+\]/.exec(l)?.[0])).toEqual(['#1 [edge-a#1]', '#2 [edge-b#1]']);
    expect(fromHar.stderr).toMatch(/different contexts/);
  });

  it('--timeout given to view judges every instance with it, and says so', () => {
    const r = runWstapSync(['view', '--no-tui', a, b, '--timeout', 'front.idle=2s']);
    expect(r.status, r.stderr).toBe(0);
    const judged = verdicts(r.stdout);
    expect(judged.map((l) => /matches front idle 2s/.test(l))).toEqual([true, true]);
    expect(r.stderr).toContain(`judging with --timeout front.idle=2s instead of edge-b's capture's --profile slow-front (${path.join(dir, 'slow.yaml')})`);
    expect(r.stderr).not.toMatch(/different contexts/);
  });

  it('the UI: the log pane labels session lines with their instance, the status line and each detail judge per instance', async () => {
    const noTmux = tmuxMissing();
    if (noTmux) throw noTmux;
    const paneDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-instances-tui-'));
    const tmux = new TmuxServer(paneDir);
    try {
      const cli = [process.execPath, BIN, 'view', a, b].map(shellQuote).join(' ');
      const status = path.join(paneDir, 'status');
      const script = ['export TERM=xterm-256color NCURSES_NO_UTF8_ACS=1', cli, `echo "$?" > ${shellQuote(status)}.tmp && mv ${shellQuote(status)}.tmp ${shellQuote(status)}`, 'exec sleep 3600', ''].join('\n');
      tmux.start({ width: 220, height: 24, script, scriptFile: path.join(paneDir, 'run.sh') });
      const lines = await tmux.waitForScreen('the recording in the UI', (l) => (l.some((x) => x.includes('end of recording')) ? l : null), { timeoutMs: 10_000 });
      const text = lines.join('\n');
      expect(text).toMatch(/\[edge-a\] session ended/);
      expect(text).toMatch(/\[edge-b\] session ended/);
      expect(lines[1]).toContain('judged per instance (edge-a: profile none, timeouts front.idle 2s; edge-b: profile slow-front, timeouts front.idle 30s)');
      expect(lines.find((l) => l.includes('/quiet-via-a'))).toContain('edge-a#1');
      tmux.sendKeys('Enter');
      const first = await tmux.waitForScreen('the detail of #1', (l) => (l.some((x) => x.includes('matches front idle 2s')) ? l : null));
      expect(first.join('\n')).toContain('timeout.match');
      tmux.sendKeys('Escape');
      await tmux.waitForScreen('the table again', (l) => (l.some((x) => x.includes('/quiet-via-b')) && !l.some((x) => x.includes('Findings')) ? l : null));
      tmux.sendKeys('Down');
      await sleep(200);
      tmux.sendKeys('Enter');
      const second = await tmux.waitForScreen('the detail of #2', (l) => (l.some((x) => x.includes('GET /quiet-via-b')) ? l : null));
      expect(second.join('\n')).not.toContain('matches front idle 2s');
      expect(second.join('\n')).toContain('matches no known timeout');
      tmux.sendKeys('q');
      expect(await paneExitStatus(status, tmux)).toBe('0');
    } finally {
      await tmux.kill();
      fs.rmSync(paneDir, { recursive: true, force: true });
    }
  });
});
