import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HarLog } from '../../src/har/har-types.js';
import { startNginx, type Nginx } from '../support/nginx.js';
import { harSchemaErrors } from '../support/har-schema.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { BIN, startWstap, type WstapProcess } from '../support/wstap-process.js';
import { closedEvent, connectClient, sleep } from '../support/ws-peers.js';

/**
 * Traffic through a real nginx and wstap, exported, validated against the
 * HAR 1.2 schema and compared with what the endpoints saw.
 */
const SECRETS = { cookie: 'MMAUTHTOKEN=cookie-secret-1', auth: 'Bearer auth-secret-2', query: 'query-secret-3' };

let app: UpstreamApp;
let wstap: WstapProcess;
let nginx: Nginx;
let dir: string;
const sentByClient: Array<{ data: Buffer; binary: boolean }> = [];
const sentByServer: Array<{ data: Buffer; binary: boolean }> = [];
let harDefault: HarLog;
let harPlain: HarLog;
let exportStderr = '';

function wstapCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function readHar(file: string): HarLog {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as HarLog;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-har-e2e-'));
  app = await startUpstreamApp({ perMessageDeflate: true });
  wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--preview-bytes', '100000', '--har', path.join(dir, 'at-exit.har')]);
  nginx = await startNginx({ upstreamPort: wstap.port });

  const client = await connectClient(`ws://127.0.0.1:${nginx.port}/api/v4/websocket?access_token=${SECRETS.query}&seq=1`, {
    perMessageDeflate: true,
    headers: { Cookie: SECRETS.cookie, Authorization: SECRETS.auth },
  });
  const { ws: server } = await app.nextConnection();
  const serverGot = new Promise<void>((resolve) => {
    let n = 0;
    server.on('message', () => ++n === 4 && resolve());
  });
  const clientGot = new Promise<void>((resolve) => {
    let n = 0;
    client.on('message', () => ++n === 3 && resolve());
  });
  const c1 = [
    { data: Buffer.from('{"action":"user_typing","seq":1}'), binary: false },
    { data: Buffer.from([0, 1, 2, 250, 251, 252]), binary: true },
    { data: Buffer.from('x'.repeat(70_000)), binary: false },
  ];
  for (const m of c1) {
    sentByClient.push(m);
    client.send(m.data, { binary: m.binary });
  }
  // A fragmented message: two frames.
  sentByClient.push({ data: Buffer.from('part one, part two'), binary: false });
  client.send(Buffer.from('part one, '), { binary: false, fin: false });
  client.send(Buffer.from('part two'), { binary: false, fin: true });
  const s1 = [
    { data: Buffer.from('{"event":"hello","seq":0}'), binary: false },
    { data: Buffer.from('é😀 unicode'), binary: false },
    { data: Buffer.alloc(1000, 7), binary: true },
  ];
  for (const m of s1) {
    sentByServer.push(m);
    server.send(m.data, { binary: m.binary });
  }
  await Promise.all([serverGot, clientGot]);
  server.ping(Buffer.from('hb'));
  await new Promise((r) => server.once('pong', r));
  client.close(1000, 'client done');
  await closedEvent(client);

  const res = await fetch(`http://127.0.0.1:${nginx.port}/api/v4/users/me?session=${SECRETS.query}`, { headers: { Authorization: SECRETS.auth } });
  expect(res.status).toBe(200);
  await sleep(300);
  await nginx.stop();
  expect(await wstap.stop()).toBe(0);

  const a = wstapCli(['export', wstap.capturePath, '-o', path.join(dir, 'default.har')]);
  expect(a.status).toBe(0);
  exportStderr = a.stderr;
  harDefault = readHar(path.join(dir, 'default.har'));
  const b = wstapCli(['export', wstap.capturePath, '-o', path.join(dir, 'plain.har'), '--no-redact']);
  expect(b.status).toBe(0);
  harPlain = readHar(path.join(dir, 'plain.har'));
});

afterAll(async () => {
  await nginx?.stop();
  await wstap?.stop();
  await app?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('wstap export of a real session', () => {
  it('writes valid HAR 1.2 (schema-checked) and says what it wrote', () => {
    expect(harSchemaErrors(harDefault)).toEqual([]);
    expect(harSchemaErrors(harPlain)).toEqual([]);
    expect(exportStderr).toMatch(/wrote .*default\.har: 2 entries, 7 messages, secrets redacted/);
    expect(fs.statSync(path.join(dir, 'default.har')).mode & 0o777).toBe(0o600);
  });

  it('round trip: messages, order, opcodes, bytes, close code and closedBy match the endpoints', () => {
    const ws = harPlain.log.entries.find((e) => e._resourceType === 'websocket');
    expect(ws?.response.status).toBe(101);
    const messages = ws?._webSocketMessages ?? [];
    const sent = messages.filter((m) => m.type === 'send');
    const received = messages.filter((m) => m.type === 'receive');
    const bytesOf = (m: { opcode: number; data: string }): Buffer => (m.opcode === 2 ? Buffer.from(m.data, 'base64') : Buffer.from(m.data, 'utf8'));
    expect(sent.map((m) => m.opcode)).toEqual(sentByClient.map((m) => (m.binary ? 2 : 1)));
    expect(sent.map(bytesOf)).toEqual(sentByClient.map((m) => m.data));
    expect(received.map(bytesOf)).toEqual(sentByServer.map((m) => m.data));
    expect(messages.every((m) => m._size === undefined)).toBe(true);
    const times = messages.map((m) => m.time);
    expect([...times].sort((x, y) => x - y)).toEqual(times);
    expect(ws?._webSocketClose).toMatchObject({ code: 1000, reason: 'client done' });
    expect(ws?._wstap?.closedBy).toBe('client');
    expect(ws?._wstap?.closeEvents[0]).toMatchObject({ side: 'client', kind: 'close-frame', code: 1000 });
    // Every frame, control frames included; the fragmented message is two data frames.
    const opcodes = (ws?._wstap?.frames ?? []).map((f) => f.opcode);
    expect(opcodes).toEqual(expect.arrayContaining([0, 9, 10, 8]));
    expect(ws?._wstap?.pings).toHaveLength(1);
    expect(ws?._wstap?.pings[0]?.from).toBe('upstream');
  });

  it('--payloads preview (default) cuts nothing the capture held whole; --preview-bytes decided that', () => {
    const ws = harDefault.log.entries.find((e) => e._resourceType === 'websocket');
    const big = ws?._webSocketMessages?.find((m) => m.data.length === 70_000);
    expect(big?._size).toBeUndefined();
  });

  it('redacts Cookie, Authorization and token query parameters by default, keeps them with --no-redact', () => {
    const redacted = JSON.stringify(harDefault);
    const plain = JSON.stringify(harPlain);
    for (const secret of [SECRETS.cookie, SECRETS.auth, SECRETS.query]) {
      expect(redacted).not.toContain(secret);
      expect(plain).toContain(secret);
    }
    const ws = harDefault.log.entries.find((e) => e._resourceType === 'websocket');
    expect(ws?.request.headers).toContainEqual({ name: 'Cookie', value: '[redacted]' });
    expect(ws?.request.url).toContain('access_token=%5Bredacted%5D&seq=1');
  });

  it('--har writes the same session at exit', () => {
    const atExit = readHar(path.join(dir, 'at-exit.har'));
    expect(harSchemaErrors(atExit)).toEqual([]);
    expect(atExit.log.entries).toHaveLength(harDefault.log.entries.length);
  });
});

describe('damaged or wrong input', () => {
  it('a capture cut mid-line by a crash exports what came before and warns with the line number', () => {
    const lines = fs.readFileSync(wstap.capturePath, 'utf8').split('\n').filter(Boolean);
    const cut = path.join(dir, 'cut.jsonl');
    const last = lines.at(-1) ?? '';
    fs.writeFileSync(cut, lines.slice(0, -1).join('\n') + '\n' + last.slice(0, Math.floor(last.length / 2)));
    const r = wstapCli(['export', cut, '-o', path.join(dir, 'cut.har')]);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`cut.jsonl:${lines.length}: line is not valid JSON`);
    expect(harSchemaErrors(readHar(path.join(dir, 'cut.har')))).toEqual([]);
  });

  it('binary garbage, a JSON file that is not a capture, and a newer format version: exit 2, one line, no output', () => {
    const garbage = path.join(dir, 'garbage.bin');
    fs.writeFileSync(garbage, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)));
    const notCapture = path.join(dir, 'package.json');
    fs.writeFileSync(notCapture, '{"name":"x"}\n');
    const newer = path.join(dir, 'newer.jsonl');
    fs.writeFileSync(newer, '{"format":"wstap-capture","version":99}\n');
    for (const [file, message] of [
      [garbage, /not a wstap capture/],
      [notCapture, /not a wstap capture/],
      [newer, /version 99 is newer than this wstap reads/],
    ] as const) {
      const out = path.join(dir, `${path.basename(file)}.har`);
      const r = wstapCli(['export', file, '-o', out]);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(fs.existsSync(out)).toBe(false);
    }
  });

  it('an existing output is not overwritten without --force', () => {
    const out = path.join(dir, 'exists.har');
    fs.writeFileSync(out, 'keep me');
    const r = wstapCli(['export', wstap.capturePath, '-o', out]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('already exists; pass --force');
    expect(fs.readFileSync(out, 'utf8')).toBe('keep me');
    expect(wstapCli(['export', wstap.capturePath, '-o', out, '--force']).status).toBe(0);
    expect(harSchemaErrors(readHar(out))).toEqual([]);
  });
});

describe('wstap view', () => {
  it('shows a capture and wstap\'s own HAR with the same verdicts', () => {
    const fromCapture = wstapCli(['view', wstap.capturePath]);
    const fromHar = wstapCli(['view', path.join(dir, 'plain.har')]);
    expect(fromCapture.status).toBe(0);
    expect(fromHar.status).toBe(0);
    const verdict = /#\d+ closed by client \(client close-frame 1000 "client done"\)/;
    expect(fromCapture.stdout).toMatch(verdict);
    expect(fromHar.stdout).toMatch(verdict);
    expect(fromHar.stdout).toContain('HAR by wstap');
  });

  it('shows a Chrome DevTools HAR and marks what it cannot tell as unknown', () => {
    const chrome = {
      log: {
        version: '1.2',
        creator: { name: 'WebInspector', version: '537.36' },
        pages: [],
        entries: [
          {
            startedDateTime: '2026-11-21T10:00:00.000Z',
            time: 12.5,
            request: { method: 'GET', url: 'wss://chat.example.com/api/v4/websocket', httpVersion: 'HTTP/1.1', headers: [{ name: 'Upgrade', value: 'websocket' }], queryString: [], cookies: [], headersSize: -1, bodySize: 0 },
            response: { status: 101, statusText: 'Switching Protocols', httpVersion: 'HTTP/1.1', headers: [], cookies: [], content: { size: 0, mimeType: 'x-unknown' }, redirectURL: '', headersSize: -1, bodySize: 0 },
            cache: {},
            timings: { send: 0, wait: 12.5, receive: 0 },
            _resourceType: 'websocket',
            _webSocketMessages: [
              { type: 'send', time: 1795255200.1, opcode: 1, data: '{"seq":1,"action":"authentication_challenge"}' },
              { type: 'receive', time: 1795255200.2, opcode: 1, data: '{"status":"OK","seq_reply":1}' },
            ],
          },
        ],
      },
    };
    const file = path.join(dir, 'chrome.har');
    fs.writeFileSync(file, JSON.stringify(chrome));
    const r = wstapCli(['view', file]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('HAR by WebInspector 537.36');
    expect(r.stdout).toMatch(/GET \/api\/v4\/websocket HTTP\/1\.1 upgrade: websocket/);
    expect(r.stdout).toMatch(/not in this file \(unknown\): .*close evidence/);
    expect(r.stdout).toContain('1 by unknown');
  });

  it('refuses a file that is neither, with exit 2 and one line', () => {
    const file = path.join(dir, 'notes.txt');
    fs.writeFileSync(file, 'just some notes\n');
    const r = wstapCli(['view', file]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toMatch(/neither a wstap capture nor a HAR file/);
  });
});

describe('message data in a HAR: what the capture holds, the first --preview-bytes of each message', () => {
  const PREVIEW = 16;
  let small: { app: UpstreamApp; wstap: WstapProcess; har: string } | undefined;

  afterAll(async () => {
    await small?.wstap.stop();
    await small?.app.close();
  });

  it('a message longer than --preview-bytes is its first bytes with its real size in _size, the same from --har and export; --payloads full is refused', async () => {
    const app = await startUpstreamApp();
    const har = path.join(dir, 'preview-16.har');
    const wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--preview-bytes', String(PREVIEW), '--har', har]);
    small = { app, wstap, har };
    const client = await connectClient(`ws://127.0.0.1:${wstap.port}/long`);
    const { ws: server } = await app.nextConnection();
    const long = 'a message of sixty-four bytes, longer than the sixteen kept....';
    const got = new Promise<string[]>((resolve) => {
      const all: string[] = [];
      server.on('message', (d: Buffer) => all.push(d.toString()) === 2 && resolve(all));
    });
    client.send(long);
    client.send('short');
    expect(await got).toEqual([long, 'short']);
    client.close(1000);
    await closedEvent(client);
    await sleep(200);
    expect(await wstap.stop()).toBe(0);

    const exported = path.join(dir, 'preview-16-export.har');
    const r = wstapCli(['export', wstap.capturePath, '-o', exported]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('(1 with partial data, marked with _size)');
    for (const file of [har, exported]) {
      const entry = readHar(file).log.entries.find((e) => e._resourceType === 'websocket');
      expect(entry?._webSocketMessages, file).toEqual([
        { type: 'send', time: expect.any(Number), opcode: 1, data: long.slice(0, PREVIEW), _size: Buffer.byteLength(long) },
        { type: 'send', time: expect.any(Number), opcode: 1, data: 'short' },
      ]);
    }

    // No mode promises more than the capture holds.
    const full = wstapCli(['export', wstap.capturePath, '-o', path.join(dir, 'full.har'), '--payloads', 'full']);
    expect(full.status).toBe(2);
    expect(full.stderr.trim()).toBe(
      'wstap: --payloads full was removed: a HAR holds what the capture holds, the first --preview-bytes of each message (a longer one is marked with _size); record with a larger --preview-bytes for whole messages (see wstap --help)',
    );
    expect(fs.existsSync(path.join(dir, 'full.har'))).toBe(false);
    for (const command of ['proxy', 'export', 'view']) {
      const help = wstapCli([command, '--help']).stdout;
      expect(help, command).toMatch(/--payloads MODE +none or preview/);
      expect(help, command).not.toMatch(/\bfull\b/);
    }
  });
});
