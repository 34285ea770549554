import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import type { CaptureEvent } from '../../src/capture/events.js';
import { harSchemaErrors } from '../support/har-schema.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { closedEvent, connectClient, MessageDigest, ofConn, ofKind, sleep } from '../support/ws-peers.js';
import { BIN, startWstap, type WstapProcess } from '../support/wstap-process.js';

/**
 * Containment, through the real CLI: a fault of wstap's own observer (made
 * on purpose by the test-only WSTAP_TEST_FAULT) costs the observation of
 * that one connection, never its bytes; a fault outside every guarded
 * handler ends the process with status 70 after writing out the capture.
 */

/** Echoes every message back as it came (text as text, binary as binary). */
function echoing(app: UpstreamApp): void {
  const next = (): void => {
    void app.nextConnection().then(({ ws }) => {
      ws.on('message', (data: Buffer, isBinary: boolean) => ws.send(data, { binary: isBinary }));
      next();
    });
  };
  next();
}

/** Deterministic payloads from 1 byte to ~6 KB, text and binary alternating. */
function payload(i: number): { data: Buffer; binary: boolean } {
  const size = 1 + ((i * 7919) % 6000);
  const data = Buffer.alloc(size);
  for (let k = 0; k < size; k++) data[k] = (k * 131 + i) & 0xff;
  return i % 2 === 0 ? { data, binary: true } : { data: Buffer.from(data.toString('base64').slice(0, size)), binary: false };
}

/** Sends `count` messages continuously (a few per event-loop turn), resolving with what was sent and what came back. */
async function busyEcho(ws: WebSocket, count: number): Promise<{ sent: MessageDigest; received: MessageDigest }> {
  const sent = new MessageDigest();
  const received = new MessageDigest();
  const allBack = new Promise<void>((resolve) => {
    const onMessage = (data: Buffer, isBinary: boolean): void => {
      received.add(data, isBinary);
      if (received.count < count) return;
      ws.off('message', onMessage);
      resolve();
    };
    ws.on('message', onMessage);
  });
  for (let i = 0; i < count; i++) {
    const { data, binary } = payload(i);
    sent.add(data, binary);
    ws.send(data, { binary });
    if (i % 4 === 3) await sleep(1);
  }
  await allBack;
  return { sent, received };
}

/** A short, fully recorded exchange: three messages echoed, then a clean close. */
async function shortExchange(url: string): Promise<void> {
  const ws = await connectClient(url);
  const { sent, received } = await busyEcho(ws, 3);
  expect(received.hex()).toBe(sent.hex());
  const closed = closedEvent(ws);
  ws.close(1000, 'done');
  expect((await closed).code).toBe(1000);
}

const kinds = (events: CaptureEvent[]): string[] => events.map((e) => e.kind);

describe('a fault of the observer of one connection', () => {
  let app: UpstreamApp;
  let wstap: WstapProcess;
  let events: CaptureEvent[];
  const MESSAGES = 600;
  let busy: { sent: MessageDigest; received: MessageDigest };
  let busySocket: { bytesRead: number; bytesWritten: number };
  let closeCode: number;

  beforeAll(async () => {
    app = await startUpstreamApp();
    echoing(app);
    // Connection 2's observer throws on its 101st chunk, in the middle of the busy exchange.
    wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`], { env: { WSTAP_TEST_FAULT: 'observe:2:100' } });
    const url = `ws://127.0.0.1:${wstap.port}/room`;

    await shortExchange(url);
    await wstap.waitForLog((l) => l.conn === 1 && l.msg.startsWith('#1 closed '));
    const ws = await connectClient(url);
    busy = await busyEcho(ws, MESSAGES);
    // The connection still works after the fault: one more round trip, then a clean close.
    const more = await busyEcho(ws, 1);
    expect(more.received.hex()).toBe(more.sent.hex());
    const closed = closedEvent(ws);
    ws.close(1000, 'bye');
    closeCode = (await closed).code;
    busySocket = (ws as unknown as { _socket: { bytesRead: number; bytesWritten: number } })._socket;
    await shortExchange(url);
    await wstap.waitForLog((l) => l.conn === 3 && l.msg.startsWith('#3 closed '));
    await wstap.waitForLog((l) => l.conn === 2 && l.msg.startsWith('#2 closed '));
    expect(await wstap.stop()).toBe(0);
    events = await wstap.events();
  }, 120_000);

  afterAll(async () => {
    await wstap?.stop();
    await app?.close();
  });

  it('every message is echoed byte-exact and the connection closes cleanly', () => {
    expect(busy.received.count).toBe(MESSAGES);
    expect(busy.received.hex()).toBe(busy.sent.hex());
    expect(closeCode).toBe(1000);
  });

  it('records exactly one observer.fault, then only the close evidence and conn.close of that connection', () => {
    const faults = ofKind(events, 'observer.fault');
    expect(faults).toHaveLength(1);
    expect(faults[0]).toMatchObject({ conn: 2, where: 'observe' });
    expect(faults[0]!.message).toContain('test-only fault');
    const own = events.filter((e) => 'conn' in e && e.conn === 2);
    const after = own.slice(own.indexOf(faults[0]!) + 1);
    expect(new Set(kinds(after))).toEqual(new Set(['tcp.fin', 'conn.close']));
    expect(kinds(after).at(-1)).toBe('conn.close');
    // Observed up to the fault: some messages, not all.
    const messages = ofConn(events, 2, 'ws.message').length;
    expect(messages).toBeGreaterThan(0);
    expect(messages).toBeLessThan(2 * (MESSAGES + 1));
  });

  it('still counts every byte of the faulted connection', () => {
    const close = ofConn(events, 2, 'conn.close')[0]!;
    expect(close.bytes.fromUpstream).toBe(busySocket.bytesRead);
    // The handshake's head included: it went through the byte relay like every other byte.
    expect(close.bytes.fromClient).toBe(busySocket.bytesWritten);
  });

  it('logs one error line saying observation of #2 stopped and relaying continues; its close line says what is missing', () => {
    const lines = wstap.logs.filter((l) => /observation stopped/.test(l.msg));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 50, conn: 2 });
    expect(lines[0]!.msg).toMatch(/^#2 observation stopped: .*relaying continues/);
    const closeLine = wstap.logs.find((l) => l.msg.startsWith('#2 closed '));
    expect(closeLine?.msg).toMatch(/not observed after \+/);
  });

  it('view and export read the capture: the fault is said, and kept in the HAR', () => {
    const view = spawnSync(process.execPath, [BIN, 'view', wstap.capturePath], { encoding: 'utf8', timeout: 30_000 });
    expect(view.status, view.stderr).toBe(0);
    expect(`${view.stdout}${view.stderr}`).toMatch(/#2 observation stopped/);
    const harPath = path.join(path.dirname(wstap.capturePath), 'out.har');
    const exported = spawnSync(process.execPath, [BIN, 'export', wstap.capturePath, '-o', harPath], { encoding: 'utf8', timeout: 30_000 });
    expect(exported.status, exported.stderr).toBe(0);
    const har = JSON.parse(fs.readFileSync(harPath, 'utf8')) as { log: { entries: Array<{ _wstap?: { connectionId: number; observerFault?: { where: string } } }> } };
    expect(harSchemaErrors(har)).toEqual([]);
    const faulted = har.log.entries.filter((e) => e._wstap?.observerFault);
    expect(faulted.map((e) => [e._wstap?.connectionId, e._wstap?.observerFault?.where])).toEqual([[2, 'observe']]);
    // And back: the HAR read as events says it the same way.
    const fromHar = spawnSync(process.execPath, [BIN, 'view', harPath], { encoding: 'utf8', timeout: 30_000 });
    expect(fromHar.status, fromHar.stderr).toBe(0);
    expect(`${fromHar.stdout}${fromHar.stderr}`).toMatch(/#2 observation stopped/);
  });

  it('records the other connections in full', () => {
    for (const conn of [1, 3]) {
      expect(ofConn(events, conn, 'observer.fault')).toEqual([]);
      expect(ofConn(events, conn, 'ws.message').map((m) => m.side).sort()).toEqual(['client', 'client', 'client', 'upstream', 'upstream', 'upstream']);
      // The close frames of both sides and the connection's end.
      expect(ofConn(events, conn, 'ws.frame').filter((f) => f.opcode === 8)).toHaveLength(2);
      expect(ofConn(events, conn, 'conn.close')).toHaveLength(1);
    }
  });
});

describe('a fault outside every guarded handler', () => {
  let app: UpstreamApp;
  let wstap: WstapProcess;

  beforeAll(async () => {
    app = await startUpstreamApp();
    echoing(app);
  });

  afterAll(async () => {
    await wstap?.stop();
    await app?.close();
  });

  it('logs the stack, writes out every event recorded before it and exits with status 70', async () => {
    // A timer throws right after connection 2 opens.
    wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`], { env: { WSTAP_TEST_FAULT: 'uncaught:2' } });
    const url = `ws://127.0.0.1:${wstap.port}/room`;
    await shortExchange(url);
    await wstap.waitForLog((l) => l.msg.startsWith('#1 closed '));
    const second = connectClient(url).then(
      (ws) => ws.terminate(),
      () => undefined,
    );
    expect(await wstap.exited).toBe(70);
    await second;

    const fatal = wstap.logs.find((l) => l.level === 60);
    expect(fatal?.msg).toMatch(/^internal error \(uncaughtException\): test-only fault/);
    expect((fatal?.err as { stack?: string } | undefined)?.stack).toMatch(/test-only fault[\s\S]*\n\s+at /);

    const events = await wstap.events();
    const first = events.filter((e) => 'conn' in e && e.conn === 1);
    expect(kinds(first)[0]).toBe('conn.open');
    expect(kinds(first).at(-1)).toBe('conn.close');
    expect(ofConn(events, 1, 'ws.message')).toHaveLength(6);
    expect(ofConn(events, 2, 'conn.open')).toHaveLength(1);
    expect(kinds(events)).not.toContain('session.end');
  }, 60_000);
});
