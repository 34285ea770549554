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
import { captureWhen, runWstapSync, startWstap, type WstapProcess } from '../support/wstap-process.js';

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
