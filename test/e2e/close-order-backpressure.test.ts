import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attributeClose, type CloseEvidence } from '../../src/analysis/close-attribution.js';
import type { CaptureEvent } from '../../src/capture/events.js';
import type { HarLog } from '../../src/har/har-types.js';
import { closeBody, frame } from '../support/frame-fixtures.js';
import { startRawUpgradeServer } from '../support/upstream-app.js';
import { evidenceOf, ofConn } from '../support/ws-peers.js';
import { BIN, captureOfClosed, startWstap, type WstapProcess } from '../support/wstap-process.js';

/**
 * Close order under backpressure (issue 14, item 7). While the receiving
 * side does not read, wstap stops reading the sending side (DuplexRelay
 * pauses it when write() returns false), so a FIN that side sends meanwhile
 * waits in the kernel and is read only once the receiver has taken the
 * backlog: the receiver's own later FIN is recorded first. wstap cannot know
 * the real order then, and says so instead of naming a side.
 *
 * Raw TCP (`--tcp`): the bytes and the FINs are the whole story. The sender
 * writes more than the kernel buffers between it and the non-reading
 * receiver hold (a non-reading socket's receive buffer stays near its 128 KiB
 * default; wstap's send buffer grows to at most 4 MiB), so wstap must pause
 * it; and little enough that its end() completes, i.e. its FIN is queued in
 * its kernel behind the data: the sender has closed, at a moment we note.
 */
const FLOOD = 6 * 1024 * 1024;

/** A payload whose every byte depends on its offset, so a byte lost or reordered shows. */
function flood(): Buffer {
  const data = Buffer.alloc(FLOOD);
  for (let i = 0; i < FLOOD; i += 4) data.writeUInt32BE(i, i);
  return data;
}

interface Upstream {
  port: number;
  next(): Promise<net.Socket>;
  close(): Promise<void>;
}

/** A raw server whose sockets are handed out not reading (pauseOnConnect), half-close kept. */
async function startUpstream(): Promise<Upstream> {
  const waiting: net.Socket[] = [];
  const takers: Array<(s: net.Socket) => void> = [];
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
    socket.on('error', () => undefined);
    const taker = takers.shift();
    if (taker) taker(socket);
    else waiting.push(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    next: () => {
      const s = waiting.shift();
      return s ? Promise.resolve(s) : new Promise((resolve) => takers.push(resolve));
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** A client socket to wstap, connected, not reading, half-close kept. */
async function connectPaused(port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  socket.pause();
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/** Writes `data` and FINs; resolves when the kernel has taken all of it and the FIN (end() finished): the moment the side closed. */
function sendAllAndFin(socket: net.Socket, data: Buffer): Promise<number> {
  return new Promise((resolve) => socket.end(data, () => resolve(Date.now())));
}

/** Reads everything up to the peer's FIN; resolves with the bytes. */
function readToEnd(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  return new Promise((resolve) => {
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.resume();
  });
}

function sawFin(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => socket.once('end', () => resolve()));
}

/** Bytes waiting in the receive queue of the loopback TCP socket local:remote, as the kernel shows them (/proc/net/tcp). */
function receiveQueue(localPort: number, remotePort: number): number | null {
  const hex = (port: number): string => port.toString(16).toUpperCase().padStart(4, '0');
  for (const row of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const cols = row.trim().split(/\s+/);
    if (cols[1]?.endsWith(`:${hex(localPort)}`) && cols[2]?.endsWith(`:${hex(remotePort)}`)) return parseInt(cols[4]?.split(':')[1] ?? '', 16);
  }
  return null;
}

/**
 * Waits until wstap has stopped reading the socket local:remote (its side of
 * a connection): bytes wait in its receive queue and the queue stays the
 * same over several looks. Until then wstap may still be reading the flood
 * as it comes, not paused.
 */
async function untilNotRead(localPort: number, remotePort: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  let same = 0;
  while (same < 4) {
    if (Date.now() > deadline) throw new Error(`wstap kept reading 127.0.0.1:${localPort} (from :${remotePort}) for ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
    const queued = receiveQueue(localPort, remotePort) ?? 0;
    same = queued > 0 && queued === last ? same + 1 : 0;
    last = queued;
  }
}

/** The connection's events once wstap has written its close (the capture is flushed at least every 250 ms). */
async function closedConnection(wstap: WstapProcess): Promise<{ all: CaptureEvent[]; conn: number; evidence: CloseEvidence[]; line: string }> {
  const line = await wstap.waitForLog((l) => typeof l.conn === 'number' && /^#\d+ closed /.test(l.msg), 20_000);
  const { conn, events: all } = await captureOfClosed(wstap, line.conn as number, 10_000);
  return { all, conn, evidence: evidenceOf(all, conn), line: line.msg };
}

function closeEvents(all: CaptureEvent[], conn: number): Array<Extract<CaptureEvent, { kind: 'tcp.fin' | 'tcp.rst' }>> {
  return all.filter((e): e is Extract<CaptureEvent, { kind: 'tcp.fin' | 'tcp.rst' }> => (e.kind === 'tcp.fin' || e.kind === 'tcp.rst') && e.conn === conn);
}

describe('close order while wstap had paused reading a side', () => {
  let upstream: Upstream;
  const started: WstapProcess[] = [];
  const data = flood();

  beforeAll(async () => {
    upstream = await startUpstream();
  });
  afterAll(async () => {
    await upstream?.close();
  });
  // One wstap per case: each asserts on "the" connection's close line.
  async function start(): Promise<WstapProcess> {
    const wstap = await startWstap(['--tcp', '--target', `127.0.0.1:${upstream.port}`]);
    started.push(wstap);
    return wstap;
  }
  afterAll(async () => {
    // Each case stops its own; this is for a case that failed half-way.
    for (const wstap of started) await wstap.stop('SIGKILL');
  });

  it('upstream floods and FINs while the client does not read, then the client FINs: recorded client first, so the verdict names no side', async () => {
    const w = await start();
    const client = await connectPaused(w.port);
    const app = await upstream.next();
    app.resume();
    // x: the upstream closed (its FIN is queued behind data wstap is not reading).
    const upstreamClosedAt = await sendAllAndFin(app, data);
    // wstap's socket to the upstream: its local port is the app's remote one.
    await untilNotRead(app.remotePort ?? 0, app.localPort ?? 0);
    const appSawFin = sawFin(app);
    client.end();
    await appSawFin;
    const received = await readToEnd(client);
    expect(received.equals(data)).toBe(true);
    client.destroy();
    app.destroy();

    const { all, conn, evidence, line } = await closedConnection(w);
    await w.stop();
    const [first, second] = closeEvents(all, conn);
    // The capture's order: the client's FIN, then the upstream's, read only when the backlog had gone (y > x).
    expect(first).toMatchObject({ kind: 'tcp.fin', side: 'client' });
    expect(second).toMatchObject({ kind: 'tcp.fin', side: 'upstream' });
    expect(second?.t).toBeGreaterThan(upstreamClosedAt);
    // The paused period is the evidence: wstap was not reading the upstream when the client's FIN came, nor caught up when the upstream's was read.
    const pausedSince = first?.pausedSince?.upstream;
    expect(pausedSince).toBeDefined();
    expect(pausedSince).toBeLessThan(first?.t ?? 0);
    expect(second?.pausedSince?.upstream).toBe(pausedSince);
    const attribution = attributeClose(evidence);
    expect(attribution.closedBy).toBeNull();
    expect(attribution.orderUnknown).toMatchObject({ pausedSide: 'upstream', pausedSince, other: { side: 'client', kind: 'fin' }, paused: { side: 'upstream', kind: 'fin' } });
    expect(line).toMatch(/^#\d+ closed after [\d.]+ s, order unknown: upstream fin was read at \+[\d.]+ s after reading upstream had been paused since \+[\d.]+ s \(client was not reading/);
    expect(line).toContain('client fin came at');
    expect(line).toContain('a packet capture of the upstream leg');
    expect(line).not.toContain('closed by');
  });

  it('the same the other way: the client floods and FINs while the upstream does not read, then the upstream FINs', async () => {
    const w = await start();
    const client = await connectPaused(w.port);
    const app = await upstream.next();
    const clientClosedAt = await sendAllAndFin(client, data);
    await untilNotRead(w.port, client.localPort ?? 0);
    const clientSawFin = sawFin(client);
    client.resume();
    app.end();
    await clientSawFin;
    const received = await readToEnd(app);
    expect(received.equals(data)).toBe(true);
    client.destroy();
    app.destroy();

    const { all, conn, evidence, line } = await closedConnection(w);
    await w.stop();
    const [first, second] = closeEvents(all, conn);
    expect(first).toMatchObject({ kind: 'tcp.fin', side: 'upstream' });
    expect(second).toMatchObject({ kind: 'tcp.fin', side: 'client' });
    expect(second?.t).toBeGreaterThan(clientClosedAt);
    const attribution = attributeClose(evidence);
    expect(attribution.closedBy).toBeNull();
    expect(attribution.orderUnknown?.pausedSide).toBe('client');
    expect(line).toContain('order unknown: client fin was read at');
    expect(line).toContain('(upstream was not reading');
  });

  it('the client resets instead: wstap resets the upstream, whose FIN is never read; the closer stands and the verdict says what could not be seen', async () => {
    const w = await start();
    const client = await connectPaused(w.port);
    const app = await upstream.next();
    app.resume();
    await sendAllAndFin(app, data);
    await untilNotRead(app.remotePort ?? 0, app.localPort ?? 0);
    const appReset = new Promise<string>((resolve) => {
      app.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      app.once('close', () => resolve('closed'));
    });
    client.resetAndDestroy();
    expect(await appReset).toBe('ECONNRESET');

    const { all, conn, evidence, line } = await closedConnection(w);
    await w.stop();
    const events = closeEvents(all, conn);
    expect(events.map((e) => `${e.side} ${e.kind}`)).toEqual(['client tcp.rst']);
    expect(events[0]?.pausedSince?.upstream).toBeDefined();
    const attribution = attributeClose(evidence);
    expect(attribution.closedBy).toBe('client');
    expect(attribution.unread?.side).toBe('upstream');
    expect(line).toMatch(/closed by client \(client rst\)/);
    expect(line).toContain("upstream's reading had been paused since");
    expect(line).toContain('a FIN or RST included, was never read');
  });

  it('when the paused side had caught up before the other side closed, the order is certain and the verdict names it as before', async () => {
    const w = await start();
    const client = await connectPaused(w.port);
    const app = await upstream.next();
    app.resume();
    // The upstream floods (wstap pauses it), the client then reads all of it: wstap catches up.
    app.write(data);
    const chunks: Buffer[] = [];
    let got = 0;
    const all = new Promise<void>((resolve) =>
      client.on('data', (d: Buffer) => {
        chunks.push(d);
        got += d.length;
        if (got === data.length) resolve();
      }),
    );
    client.resume();
    await all;
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    // Now the client closes first, for certain; the upstream answers with its own FIN.
    const appSawFin = sawFin(app);
    client.end();
    await appSawFin;
    const clientSawFin = sawFin(client);
    app.end();
    await clientSawFin;
    client.destroy();
    app.destroy();

    const { all: events, conn, evidence, line } = await closedConnection(w);
    await w.stop();
    const fins = closeEvents(events, conn);
    expect(fins.map((e) => e.side)).toEqual(['client', 'upstream']);
    expect(fins.map((e) => e.pausedSince)).toEqual([undefined, undefined]);
    expect(attributeClose(evidence)).toMatchObject({ closedBy: 'client' });
    expect(line).toMatch(/^#\d+ closed by client \(client fin\)/);
    expect(line).not.toContain('paused');
  });
});

describe('close frames under backpressure, through the HAR export', () => {
  it('the upstream floods, sends its close frame and FIN while the client does not read; the client then closes: the capture and the HAR name no side', async () => {
    const apps: net.Socket[] = [];
    const appWaiters: Array<(s: net.Socket) => void> = [];
    const upstream = await startRawUpgradeServer((socket) => {
      const waiter = appWaiters.shift();
      if (waiter) waiter(socket);
      else apps.push(socket);
    });
    const wstap = await startWstap(['--target', `http://127.0.0.1:${upstream.port}`]);
    try {
      const client = net.connect({ host: '127.0.0.1', port: wstap.port, allowHalfOpen: true });
      client.on('error', () => undefined);
      // Read the 101 head, then stop reading; whatever came behind it is kept.
      const early = await new Promise<Buffer>((resolve) => {
        let got = Buffer.alloc(0);
        const onData = (d: Buffer): void => {
          got = Buffer.concat([got, d]);
          const end = got.indexOf('\r\n\r\n');
          if (end < 0) return;
          client.removeListener('data', onData);
          client.pause();
          resolve(got.subarray(end + 4));
        };
        client.on('data', onData);
        client.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      });
      const app = apps.shift() ?? (await new Promise<net.Socket>((resolve) => appWaiters.push(resolve)));
      const appReceived: Buffer[] = [];
      app.on('data', (d: Buffer) => appReceived.push(d));
      const appSawFin = sawFin(app);

      const message = frame({ opcode: 2, payload: Buffer.alloc(64 * 1024, 0x5a) });
      const upstreamBytes = Buffer.concat([...Array.from({ length: 96 }, () => message), frame({ opcode: 8, payload: closeBody(1001, 'going away') })]);
      await sendAllAndFin(app, upstreamBytes);
      await untilNotRead(app.remotePort ?? 0, app.localPort ?? 0);
      const clientClose = frame({ opcode: 8, payload: closeBody(1000, 'bye'), mask: true });
      client.end(clientClose);
      await appSawFin;
      expect(Buffer.concat(appReceived).equals(clientClose)).toBe(true);
      const rest = await readToEnd(client);
      expect(Buffer.concat([early, rest]).equals(upstreamBytes)).toBe(true);
      client.destroy();
      app.destroy();

      const { all, conn, evidence, line } = await closedConnection(wstap);
      const closeFrames = ofConn(all, conn, 'ws.frame').filter((f) => f.opcode === 8);
      expect(closeFrames.map((f) => [f.side, f.closeCode])).toEqual([
        ['client', 1000],
        ['upstream', 1001],
      ]);
      const pausedSince = closeFrames[0]?.pausedSince?.upstream;
      expect(pausedSince).toBeDefined();
      expect(closeFrames[1]?.pausedSince?.upstream).toBe(pausedSince);
      expect(attributeClose(evidence)).toMatchObject({ closedBy: null, orderUnknown: { pausedSide: 'upstream', pausedSince } });
      expect(line).toContain('order unknown: upstream close-frame 1001 "going away" was read at');
      expect(line).toContain('client close-frame 1000 "bye" came at');
      await wstap.stop();

      const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-order-')), 'order.har');
      const exported = spawnSync(process.execPath, [BIN, 'export', wstap.capturePath, '-o', out], { encoding: 'utf8', timeout: 30_000 });
      expect(exported.status, exported.stderr).toBe(0);
      const har = JSON.parse(fs.readFileSync(out, 'utf8')) as HarLog;
      const entry = har.log.entries.find((e) => e._wstap?.connectionId === conn);
      expect(entry?._wstap?.closedBy).toBeNull();
      expect(entry?._wstap?.closeOrder).toEqual({ reason: 'order-unknown', pausedSide: 'upstream', pausedSince: Math.round((pausedSince ?? 0) * 1000) / 1e6 });
      expect(entry?._wstap?.closeEvents.filter((e) => e.kind === 'close-frame').every((e) => e.pausedSince?.upstream !== undefined)).toBe(true);

      // `view` of the capture and of the HAR say what the live log said.
      for (const file of [wstap.capturePath, out]) {
        const view = spawnSync(process.execPath, [BIN, 'view', file, '--no-tui'], { encoding: 'utf8', timeout: 30_000 });
        expect(view.status, view.stderr).toBe(0);
        expect(view.stdout).toContain('order unknown: upstream close-frame 1001 "going away" was read at');
        expect(view.stdout).toContain('1 connection(s) closed: 1 by either side (order unknown)');
      }
    } finally {
      await wstap.stop('SIGKILL');
      await upstream.close();
    }
  });
});
