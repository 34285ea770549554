import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { httpGet, ofKind } from '../support/ws-peers.js';
import { harSchemaErrors } from '../support/har-schema.js';
import { BIN, startWstap, type WstapProcess } from '../support/wstap-process.js';

/**
 * Heads wstap will not hold: over 64 KiB, trickling in (slowloris), or not
 * HTTP at all. Each is answered as nginx would, recorded, and never reaches
 * the app; memory stays at what Node's parser allows (64 KiB per head).
 */

/** Sends `data` on a raw connection to wstap, then whatever `more` sends; resolves with all the bytes wstap answered and how the connection ended. */
function rawExchange(port: number, data: string, more?: (socket: net.Socket) => void): Promise<{ answer: string; ended: 'fin' | 'reset' }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.on('error', () => resolve({ answer, ended: 'reset' }));
    socket.on('close', () => resolve({ answer, ended: 'fin' }));
    socket.on('connect', () => {
      socket.write(data);
      more?.(socket);
    });
  });
}

const statusOf = (answer: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);

describe('request heads', () => {
  let app: UpstreamApp;
  let wstap: WstapProcess;
  beforeAll(async () => {
    app = await startUpstreamApp();
    wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`, '--head-timeout', '1']);
  });
  afterAll(async () => {
    await wstap?.stop();
    await app?.close();
  });

  it('a head just under 64 KiB is forwarded; one over it is answered 431, recorded, and never reaches the app', async () => {
    const ok = await rawExchange(wstap.port, `GET /fits HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(60 * 1024)}\r\nConnection: close\r\n\r\n`);
    expect(statusOf(ok.answer)).toBe(200);
    expect(app.requests.find((r) => r.url === '/fits')?.headers['x-big']).toHaveLength(60 * 1024);

    const big = await rawExchange(wstap.port, `GET /too-big HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70 * 1024)}\r\n\r\n`);
    expect(statusOf(big.answer)).toBe(431);
    expect(big.answer).toContain('wstap: request head over 64 KiB');
    expect(app.requests.some((r) => r.url === '/too-big')).toBe(false);
    await wstap.waitForLog((l) => /rejected (a request|GET \/too-big): 431 request head over 64 KiB$/.test(l.msg));
  });

  it('a head trickling in (slowloris) is answered 408 after --head-timeout, and the connection is ended by wstap', async () => {
    let timer: NodeJS.Timeout | undefined;
    const slow = await rawExchange(wstap.port, 'GET /slow HTTP/1.1\r\nHost: x\r\n', (socket) => {
      // One header byte every 200 ms, never the blank line.
      timer = setInterval(() => socket.writable && socket.write('X'), 200);
    });
    clearInterval(timer);
    expect(statusOf(slow.answer)).toBe(408);
    expect(slow.answer).toContain('request head not complete in time');
    expect(app.requests.some((r) => r.url === '/slow')).toBe(false);
    await wstap.waitForLog((l) => /rejected (a request|GET \/slow): 408 request head not complete in time/.test(l.msg));
  });

  it('bytes that are not HTTP are answered 400 and recorded', async () => {
    const junk = await rawExchange(wstap.port, '\x16\x03\x01\x02\x00 this is a TLS hello, not HTTP\r\n\r\n');
    expect(statusOf(junk.answer)).toBe(400);
    await wstap.waitForLog((l) => /rejected .*: 400 not a valid HTTP request/.test(l.msg));
  });

  it('every rejection is in the capture as http.rejected, with its connection closed', async () => {
    expect(await wstap.stop()).toBe(0);
    const all = await wstap.events();
    const rejected = ofKind(all, 'http.rejected');
    expect(rejected.map((e) => e.statusCode)).toEqual([431, 408, 400]);
    for (const e of rejected) expect(ofKind(all, 'conn.close').some((c) => c.conn === e.conn)).toBe(true);
    // They export as HAR entries that still validate, with no request line to show.
    const har = path.join(path.dirname(wstap.capturePath), 'rejected.har');
    const r = spawnSync(process.execPath, [BIN, 'export', wstap.capturePath, '-o', har], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(fs.readFileSync(har, 'utf8')) as { log: { entries: Array<{ response: { status: number } }> } };
    expect(harSchemaErrors(doc)).toEqual([]);
    expect(doc.log.entries.map((e) => e.response.status)).toEqual(expect.arrayContaining([431, 408, 400]));
  });
});

describe('response heads from the app', () => {
  let server: http.Server;
  let wstap: WstapProcess;
  beforeAll(async () => {
    // Node's own client would refuse anything over 16 KiB; wstap reads up to 64 KiB, like the request side.
    server = http.createServer({ maxHeaderSize: 128 * 1024 }, (req, res) => {
      const size = Number(new URL(req.url ?? '/', 'http://app').searchParams.get('kib') ?? 0) * 1024;
      res.writeHead(200, { 'x-big': 'b'.repeat(size), 'content-type': 'text/plain' });
      res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    wstap = await startWstap(['--target', `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`]);
  });
  afterAll(async () => {
    await wstap?.stop();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('a 40 KiB response head is passed on and recorded; a 70 KiB one is passed on unchanged too, recorded as a head the parser refused', async () => {
    // Reads heads as large as the test needs (fetch stops at 16 KiB).
    const fits = await httpGet(`http://127.0.0.1:${wstap.port}/?kib=40`, { maxHeaderSize: 128 * 1024 });
    expect(fits.status).toBe(200);
    expect(fits.headers['x-big']).toHaveLength(40 * 1024);

    // wstap relays bytes, it does not answer for the app: the client gets what the app sent.
    const big = await httpGet(`http://127.0.0.1:${wstap.port}/?kib=70`, { maxHeaderSize: 128 * 1024 });
    expect(big.status).toBe(200);
    expect(big.headers['x-big']).toHaveLength(70 * 1024);
    expect(await wstap.stop()).toBe(0);
    const all = await wstap.events();
    expect(ofKind(all, 'http.response')).toEqual([expect.objectContaining({ statusCode: 200, exchange: 1 })]);
    expect(ofKind(all, 'http.anomaly')).toEqual([expect.objectContaining({ side: 'upstream', code: 'HEAD_REJECTED', parsing: 'stopped' })]);
  });
});
