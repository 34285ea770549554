import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_PENDING_LOG_BYTES } from '../../src/log.js';
import { freePort, waitForPort } from '../support/ports.js';
import { waitUntil } from '../support/wait-until.js';
import { BIN } from '../support/wstap-process.js';

/**
 * Principle 3 against its own log: wstap's stderr goes to a pipe nobody
 * reads (a paused pager, a stuck log shipper). The relay must go on at full
 * speed; lines wait in a bounded buffer, past it they are dropped and
 * counted, and one line says how many once the reader is back. With the
 * synchronous writes wstap had before, the relay stopped as soon as the pipe
 * was full, and this test timed out.
 */

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** An app that answers every request head it sees with an empty 200, on one connection. */
async function startCountingApp(): Promise<{ port: number; answered: () => number }> {
  let answered = 0;
  const server = net.createServer((socket) => {
    let tail = '';
    socket.on('data', (d: Buffer) => {
      const text = tail + d.toString('latin1');
      const heads = text.split('\r\n\r\n');
      tail = heads.pop() ?? '';
      if (heads.length === 0) return;
      answered += heads.length;
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'.repeat(heads.length));
    });
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, answered: () => answered };
}

describe('a log reader that stops reading', () => {
  it('never stops the relay: lines wait, the excess is dropped and counted, and one line says so', async () => {
    const app = await startCountingApp();
    const port = await freePort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-logbp-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const child = spawn(process.execPath, [BIN, 'proxy', '--target', `http://127.0.0.1:${app.port}`, '--listen', `127.0.0.1:${port}`, '--no-tui', '--log-format', 'json', '--log-level', 'debug', '--capture', path.join(dir, 'c.jsonl')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    cleanups.push(() => child.kill('SIGKILL'));
    const stderr = child.stderr;
    // Nobody reads: once the pipe and its socket buffers are full, every write of wstap's would block.
    stderr.pause();
    await waitForPort(port);

    // At debug (an answered exchange below 400 is logged at debug), each exchange logs one line of about 350 B (its target shortened): enough exchanges to fill the pipe and then twice the buffer.
    const target = `/${'x'.repeat(3000)}`;
    const requests = Math.ceil((2 * MAX_PENDING_LOG_BYTES) / 350);
    const client = net.connect({ port, host: '127.0.0.1' });
    let responses = 0;
    client.on('data', (d: Buffer) => {
      responses += d.toString('latin1').split('HTTP/1.1 200 OK').length - 1;
    });
    await new Promise<void>((resolve) => client.once('connect', resolve));
    cleanups.push(() => client.destroy());
    const request = `GET ${target} HTTP/1.1\r\nHost: app\r\n\r\n`;
    // Pipelined 200 at a time (wstap parses up to 1024 unanswered requests on a connection).
    for (let sent = 0; sent < requests; sent += 200) {
      client.write(request.repeat(Math.min(200, requests - sent)));
      await waitUntil('a batch of responses', () => responses >= Math.min(requests, sent + 200), { timeoutMs: 20_000, intervalMs: 2 });
    }
    await waitUntil(`all ${requests} responses through wstap while its stderr is not read`, () => responses >= requests && responses, {
      timeoutMs: 60_000,
      intervalMs: 50,
      context: () => `${responses} responses, the app answered ${app.answered()}`,
    });
    expect(responses).toBe(requests);

    // The reader comes back: every line that waited arrives, and one line counts those that did not.
    let text = '';
    stderr.on('data', (d: Buffer) => (text += d.toString('utf8')));
    stderr.resume();
    const lines = (): Array<{ msg: string; droppedLogLines?: number; status?: number }> =>
      text
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg: string; droppedLogLines?: number; status?: number });
    const dropLine = await waitUntil('the line counting dropped lines', () => lines().find((l) => l.droppedLogLines !== undefined), { timeoutMs: 30_000, intervalMs: 100 });
    const dropped = dropLine.droppedLogLines ?? 0;
    expect(dropped).toBeGreaterThan(0);
    expect(dropLine.msg).toContain(`${dropped} log lines were dropped`);
    // Every exchange's line either arrived or was counted as dropped: none went missing unsaid.
    const exchangeLines = lines().filter((l) => l.status === 200).length;
    expect(exchangeLines + dropped).toBe(requests);

    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
    expect(lines().some((l) => l.msg.startsWith('session ended'))).toBe(true);
  }, 120_000);

  it('a reader that never comes back does not keep a stopped wstap from exiting', async () => {
    const app = await startCountingApp();
    const port = await freePort();
    const child = spawn(process.execPath, [BIN, 'proxy', '--target', `http://127.0.0.1:${app.port}`, '--listen', `127.0.0.1:${port}`, '--no-tui', '--log-format', 'json', '--log-level', 'debug'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    cleanups.push(() => child.kill('SIGKILL'));
    child.stderr.pause();
    await waitForPort(port);
    // Enough lines to fill the pipe: from then on every write of the log is refused (EAGAIN) and retried.
    const client = net.connect({ port, host: '127.0.0.1' });
    cleanups.push(() => client.destroy());
    let responses = 0;
    client.on('data', (d: Buffer) => {
      responses += d.toString('latin1').split('HTTP/1.1 200 OK').length - 1;
    });
    await new Promise<void>((resolve) => client.once('connect', resolve));
    const requests = 3000;
    for (let sent = 0; sent < requests; sent += 100) {
      client.write(`GET /${'x'.repeat(2000)} HTTP/1.1\r\nHost: app\r\n\r\n`.repeat(100));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await waitUntil(`${requests} responses`, () => responses >= requests, { timeoutMs: 20_000, intervalMs: 20 });
    // The log's retries of the full pipe are under way.
    await new Promise((resolve) => setTimeout(resolve, 1000));

    // Stopped while nobody reads: the log's pending lines are tried for a second at exit, then given up.
    const stoppedAt = Date.now();
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
    // A hang, not a speed: 2 s for the loop to finish on its own (cli/main.ts), 1 s of retries at exit (log.ts); before, it never exited.
    expect(Date.now() - stoppedAt).toBeLessThan(30_000);
  }, 60_000);
});
