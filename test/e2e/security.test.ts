import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultLogFile } from '../../src/cli/ui-prerequisites.js';
import { startRawUpgradeServer, type RawUpgradeServer } from '../support/upstream-app.js';
import { waitUntil } from '../support/wait-until.js';
import { connectClient, closedEvent, ofKind } from '../support/ws-peers.js';
import { BIN, startWstap } from '../support/wstap-process.js';

/**
 * Issue 6, security: wstap listens on loopback unless told, reaches no host
 * but its target, and lets no byte from the wire steer the terminal that
 * shows its log. (CONNECT, absolute-form and Host on plain HTTP: cli.test.ts;
 * redaction: redaction.test.ts and har-export.test.ts; 0600 files:
 * capture-file.test.ts, har-fold.test.ts, cli.test.ts; escapes in the UI:
 * connection-rows, detail-lines and payload-preview tests.)
 */

/** Sends `head` on a new connection and resolves with everything received until the server closes. */
function rawExchange(port: number, head: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => resolve(got));
    socket.write(head);
  });
}

/** Waits until `text()` matches `pattern`; throws with the text seen if it does not within 20 s. */
const waitForText = (text: () => string, pattern: RegExp): Promise<true> =>
  waitUntil(`${pattern}`, () => pattern.test(text()), { timeoutMs: 20_000, intervalMs: 50, context: () => `in:\n${text()}` });

describe('where wstap listens and where it connects', () => {
  let upstream: RawUpgradeServer;
  beforeAll(async () => {
    upstream = await startRawUpgradeServer((socket) => socket.end());
  });
  afterAll(async () => upstream?.close());

  it('a bare port listens on loopback only, with no warning', async () => {
    // Waits for the listen line however slow the start (a fixed poll once killed it before its SIGINT handler).
    const wstap = await startWstap(['--target', `http://127.0.0.1:${upstream.port}`], { listen: '0' });
    expect(await wstap.stop()).toBe(0);
    const lines = wstap.logs;
    expect(lines.find((l) => l.listen)?.listen).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
  });

  it('a WebSocket handshake in absolute form, or naming another Host, goes to the target and nowhere else, unchanged', async () => {
    const wstap = await startWstap(['--target', `http://127.0.0.1:${upstream.port}`]);
    const handshake = (target: string, host: string): Buffer =>
      Buffer.from(
        `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        'latin1',
      );
    const before = upstream.heads.length;
    const absolute = handshake('http://169.254.169.254/latest/meta-data', '169.254.169.254');
    const foreignHost = handshake('/ws', 'internal.example:22');
    expect(await rawExchange(wstap.port, absolute)).toMatch(/^HTTP\/1\.1 101 /);
    expect(await rawExchange(wstap.port, foreignHost)).toMatch(/^HTTP\/1\.1 101 /);
    // Both reached our upstream, the only target, with the heads byte for byte as sent.
    expect(upstream.heads.slice(before)).toEqual([absolute.toString('latin1'), foreignHost.toString('latin1')]);
    expect(await wstap.stop()).toBe(0);
    const events = await wstap.events();
    expect(ofKind(events, 'ws.handshake.request').map((e) => e.url)).toEqual(['http://169.254.169.254/latest/meta-data', '/ws']);
  });
});

describe('terminal escapes from the wire in the line log', () => {
  let upstream: RawUpgradeServer;
  beforeAll(async () => {
    // Answers the upgrade, then closes with a reason full of escape sequences.
    upstream = await startRawUpgradeServer((socket) => {
      const reason = Buffer.from('bye\x1b[31m\x07\x1b]0;pwned\x07', 'latin1');
      socket.write(Buffer.concat([Buffer.from([0x88, 2 + reason.length, 0x0f, 0xa0]), reason]));
      socket.end();
    });
  });
  afterAll(async () => upstream?.close());

  it('paths, header values and close reasons reach the human-readable log as visible text, never as control bytes', async () => {
    // Pretty lines, as on a terminal (JSON escapes control characters by itself).
    const child = spawn(
      process.execPath,
      [BIN, 'proxy', '--listen', '127.0.0.1:0', '--no-tui', '--log-format', 'pretty', '--log-level', 'debug', '--target', `http://127.0.0.1:${upstream.port}`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    await waitForText(() => out, /listening on 127\.0\.0\.1:\d+/);
    const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(out)?.[1]);

    // Heads the parser refuses (a control byte in the path, in a header value, a C1 control in UTF-8): 400, logged.
    for (const head of [
      'GET /p\x1b]0;x HTTP/1.1\r\nHost: a\r\n\r\n',
      'GET /q HTTP/1.1\r\nHost: a\r\nX-Evil: a\x1b[2Jb\x07\r\n\r\n',
      'GET /\xc2\x9b31m HTTP/1.1\r\nHost: a\r\n\r\n',
    ]) {
      expect(await rawExchange(port, Buffer.from(head, 'latin1'))).toMatch(/^HTTP\/1\.1 400 /);
    }
    // A WebSocket the upstream closes with an escape-laden reason.
    const client = await connectClient(`ws://127.0.0.1:${port}/ws`);
    const closed = await closedEvent(client);
    expect(closed).toEqual({ code: 4000, reason: 'bye\x1b[31m\x07\x1b]0;pwned\x07' });
    await waitForText(() => out, /closed by upstream/);
    child.kill('SIGINT');
    expect(await exited).toBe(0);

    // Not one C0 or C1 control byte besides the line feeds; the escapes are spelled out.
    expect(out.match(/[\x00-\x09\x0b-\x1f\x7f\u0080-\u009f]/g)).toBeNull();
    expect(out).toContain('rejected GET /p\\x1b]0;x: 400');
    expect(out).toContain('rejected GET /q: 400 not a valid HTTP request (header "X-Evil" has a control character in its value)');
    expect(out).toContain('\\x9b31m: 400');
    expect(out).toContain('close-frame 4000 "bye\\x1b[31m\\x07\\x1b]0;pwned\\x07"');
  });
});

describe('the UI log file', () => {
  it('defaults to a new private directory, so nobody can plant the file or a symlink in its place', () => {
    const a = defaultLogFile();
    const b = defaultLogFile();
    expect(a).not.toBe(b);
    for (const file of [a, b]) {
      const dir = file.slice(0, file.lastIndexOf('/'));
      const stat = fs.statSync(dir);
      expect(stat.mode & 0o777).toBe(0o700);
      expect(stat.uid).toBe(process.getuid?.());
      expect(fs.existsSync(file)).toBe(false);
      fs.rmdirSync(dir);
    }
  });
});
