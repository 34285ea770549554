import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CaptureEvent } from '../../src/capture/events.js';
import { exportCapture } from '../../src/har/export-capture.js';
import { frame } from '../support/frame-fixtures.js';
import { startRawUpgradeServer, serverTextFrame, type RawUpgradeServer } from '../support/upstream-app.js';
import { waitUntil } from '../support/wait-until.js';
import { connOfUrl, sleep } from '../support/ws-peers.js';
import { captureOfClosed, startWstap, type WstapProcess } from '../support/wstap-process.js';

/**
 * Issue 14 item 6 a and b, through the real CLI with raw peers: an upstream
 * that sends interim responses (103 Early Hints) before its 101, and a client
 * that writes a close frame's header in two writes with a pause.
 */

const EARLY_HINTS = 'HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload; as=style\r\n\r\n';
const MASK = Uint8Array.from([1, 2, 3, 4]);

interface RawClient {
  socket: net.Socket;
  /** Everything received, the handshake's heads included. */
  received(): Buffer;
}

/** A raw client: sends an Upgrade request and resolves once the 101's head has arrived (after any interim heads). */
function connectRaw(port: number, url: string): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    const chunks: Buffer[] = [];
    const client: RawClient = { socket, received: () => Buffer.concat(chunks) };
    socket.once('error', reject);
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      const text = client.received().toString('latin1');
      const at = text.indexOf('HTTP/1.1 101');
      if (at >= 0 && text.indexOf('\r\n\r\n', at) >= 0) resolve(client);
      else if (/^HTTP\/1\.1 [2-5]/m.test(text)) reject(new Error(`not upgraded: ${text.slice(0, 80)}`));
    });
    socket.write(
      `GET ${url} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  });
}

/** The capture's events of the connection for `url`, once its conn.close is in. */
async function eventsOfClosed(wstap: WstapProcess, url: string): Promise<CaptureEvent[]> {
  const { conn, events } = await captureOfClosed(wstap, (all) => connOfUrl(all, url));
  return events.filter((e) => 'conn' in e && e.conn === conn);
}

describe('interim responses before the 101', () => {
  let upstream: RawUpgradeServer;
  let wstap: WstapProcess;
  const appReceived: Buffer[] = [];

  beforeAll(async () => {
    upstream = await startRawUpgradeServer(
      (socket) => {
        socket.on('data', (d: Buffer) => appReceived.push(d));
        socket.on('end', () => socket.end());
        socket.write(serverTextFrame('hello from the app'));
      },
      undefined,
      { interim: [EARLY_HINTS] },
    );
    wstap = await startWstap(['--target', `http://127.0.0.1:${upstream.port}`]);
  });

  afterAll(async () => {
    await wstap?.stop();
    await upstream?.close();
  });

  it('relays the 103 and the 101 unchanged, decodes frames both ways and records the 103 apart from the handshake response', async () => {
    const client = await connectRaw(wstap.port, '/early-hints');
    const toApp = frame({ opcode: 1, payload: Buffer.from('hello from the client'), mask: MASK });
    client.socket.write(toApp);
    const fromApp = serverTextFrame('hello from the app');
    await waitUntil('the app frame at the client', () => client.received().includes(fromApp), { timeoutMs: 15_000, intervalMs: 20 });
    await waitUntil('the client frame at the app', () => Buffer.concat(appReceived).equals(toApp), { timeoutMs: 15_000, intervalMs: 20 });
    const text = client.received().toString('latin1');
    expect(text.startsWith(EARLY_HINTS + 'HTTP/1.1 101 Switching Protocols\r\n')).toBe(true);
    client.socket.end();
    await new Promise((resolve) => client.socket.once('close', resolve));

    const events = await eventsOfClosed(wstap, '/early-hints');
    const [interim, ...moreInterim] = events.filter((e) => e.kind === 'ws.handshake.interim');
    expect(moreInterim).toEqual([]);
    expect(interim).toMatchObject({ statusCode: 103, reason: 'Early Hints', rawHeaders: [['Link', '</app.css>; rel=preload; as=style']], headLength: EARLY_HINTS.length });
    const responses = events.filter((e) => e.kind === 'ws.handshake.response');
    expect(responses).toHaveLength(1);
    expect(responses[0]).toMatchObject({ statusCode: 101, upgraded: true });
    expect(interim!.t).toBeLessThanOrEqual(responses[0]!.t);
    const messages = events.flatMap((e) => (e.kind === 'ws.message' ? [[e.side, Buffer.from(e.preview, 'base64').toString('utf8')]] : []));
    expect(messages).toEqual(expect.arrayContaining([['client', 'hello from the client'], ['upstream', 'hello from the app']]));
    expect(events.filter((e) => e.kind === 'ws.frame').map((e) => e.kind === 'ws.frame' && [e.side, e.offset])).toEqual(
      expect.arrayContaining([['client', 0], ['upstream', 0]]),
    );
    expect(events.some((e) => e.kind === 'ws.protocol-error' || e.kind === 'ws.handshake.error')).toBe(false);

    // In the HAR the handshake's response is the 101, with its messages; the 103 is in _wstap.interimResponses.
    const harPath = path.join(path.dirname(wstap.capturePath), 'early-hints.har');
    await exportCapture({ capturePath: wstap.capturePath, harPath, overwrite: true, redact: true, payloads: 'preview', creatorVersion: 'test' });
    const har = JSON.parse(fs.readFileSync(harPath, 'utf8')) as { log: { entries: Array<{ request: { url: string }; response: { status: number }; _webSocketMessages?: Array<{ type: string; data: string }>; _wstap?: { interimResponses?: unknown[] } }> } };
    const entry = har.log.entries.find((e) => e.request.url.endsWith('/early-hints'));
    expect(entry?.response.status).toBe(101);
    expect(entry?._wstap?.interimResponses).toEqual([
      { status: 103, statusText: 'Early Hints', headers: [{ name: 'Link', value: '</app.css>; rel=preload; as=style' }], time: expect.any(Number) },
    ]);
    // The app spoke first (on the upgrade), the client once it had the 101.
    expect(entry?._webSocketMessages?.map((m) => [m.type, m.data])).toEqual([['receive', 'hello from the app'], ['send', 'hello from the client']]);
  });
});

describe('a close frame whose header comes in two writes', () => {
  let upstream: RawUpgradeServer;
  let wstap: WstapProcess;

  beforeAll(async () => {
    upstream = await startRawUpgradeServer((socket) => {
      socket.on('data', () => undefined);
      socket.on('end', () => socket.end());
    });
    wstap = await startWstap(['--target', `http://127.0.0.1:${upstream.port}`]);
  });

  afterAll(async () => {
    await wstap?.stop();
    await upstream?.close();
  });

  it('gets the silence before its first byte, not 0', async () => {
    const client = await connectRaw(wstap.port, '/split-close');
    client.socket.write(frame({ opcode: 1, payload: Buffer.from('last words'), mask: MASK }));
    await sleep(1000);
    const close = frame({ opcode: 8, payload: Buffer.from([0x03, 0xe8]), mask: MASK });
    client.socket.write(close.subarray(0, 1));
    await sleep(500);
    client.socket.write(close.subarray(1));
    client.socket.end();
    await new Promise((resolve) => client.socket.once('close', resolve));

    const events = await eventsOfClosed(wstap, '/split-close');
    const closes = events.filter((e) => e.kind === 'ws.frame' && e.opcode === 8);
    expect(closes).toHaveLength(1);
    const idle = closes[0]!.kind === 'ws.frame' ? closes[0]!.idle : undefined;
    // About 1000 ms of silence before the close's first byte (generous margins for a loaded machine);
    // measured to the chunk its header completes in, it read 0.
    expect(idle?.client).toBeGreaterThanOrEqual(500);
  });
});
