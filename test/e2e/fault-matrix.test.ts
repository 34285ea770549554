import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attributeClose } from '../../src/analysis/close-attribution.js';
import { readCaptureFile } from '../../src/capture/capture-reader.js';
import type { CaptureEvent } from '../../src/capture/events.js';
import { startNginxStack, type NginxStack } from '../support/nginx-stack.js';
import { startRawUpgradeServer, startUpstreamApp, type RawUpgradeServer, type UpstreamApp } from '../support/upstream-app.js';
import { closedEvent, connectClient, evidenceOf, ofConn, ofKind, rawWebSocket, sleep } from '../support/ws-peers.js';
import { startWstap, type WstapProcess } from '../support/wstap-process.js';

/**
 * Rows of the fault matrix (issue 6) not covered elsewhere: the relay keeps
 * going, the record says what happened, nothing already captured is lost.
 * Other rows: upstream RST between messages and the client's half-close
 * (relay-through-nginx, half-close-through-nginx), TLS with a bad certificate (tls-upstream), heads
 * too large or too slow (head-limits).
 */

/** A masked client frame header announcing `length` bytes of binary payload (64-bit length form). */
function clientFrameHeader(length: number): Buffer {
  const header = Buffer.alloc(14);
  header[0] = 0x82;
  header[1] = 0x80 | 127;
  header.writeBigUInt64BE(BigInt(length), 2);
  header.writeUInt32BE(0x01020304, 10);
  return header;
}

describe('fault matrix', () => {
  let app: UpstreamApp;
  let wstap: WstapProcess;
  beforeAll(async () => {
    app = await startUpstreamApp();
    wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`]);
  });
  afterAll(async () => {
    await wstap?.stop('SIGKILL');
    await app?.close();
  });

  it('the client vanishes (RST) in the middle of a 1 MB frame: the app sees the connection go, the record says the client reset it, the next connection works', async () => {
    const socket = await rawWebSocket(wstap.port, '/ws?fault=client-vanishes');
    const { ws: server } = await app.nextConnection();
    const serverClosed = closedEvent(server);
    socket.write(clientFrameHeader(1024 * 1024));
    socket.write(Buffer.alloc(100 * 1024, 7));
    await sleep(100);
    socket.resetAndDestroy();
    const { code } = await serverClosed;
    expect(code).toBe(1006);

    // wstap carries on.
    const next = await connectClient(`ws://127.0.0.1:${wstap.port}/ws?fault=after`);
    const echoed = new Promise<string>((resolve) => next.once('message', (d: Buffer) => resolve(d.toString())));
    (await app.nextConnection()).ws.on('message', function echo(this: import('ws').WebSocket, d: Buffer) {
      this.send(d);
    });
    next.send('still here');
    expect(await echoed).toBe('still here');
    next.close(1000);
    await closedEvent(next);

    const line = await wstap.waitForLog((l) => /closed by client \(client (rst|error)/.test(l.msg));
    const conn = line.conn as number;
    // The bytes that did arrive were relayed (not held back for the whole frame). The capture is flushed at least every 250 ms.
    await sleep(400);
    const events = await readCaptureFile(wstap.capturePath);
    const close = ofConn(events, conn, 'conn.close')[0];
    expect(close?.bytes.fromClient).toBeGreaterThanOrEqual(100 * 1024);
    expect(attributeClose(evidenceOf(events, conn)).closedBy).toBe('client');
  });

  it('SIGKILL: the capture reads back up to the last flushed event', async () => {
    const client = await connectClient(`ws://127.0.0.1:${wstap.port}/ws?fault=sigkill`);
    await app.nextConnection();
    for (let i = 0; i < 50; i++) client.send(`message ${i}`);
    // The writer flushes at least every 250 ms.
    await sleep(700);
    expect(await wstap.stop('SIGKILL')).toBeNull();
    const events = await readCaptureFile(wstap.capturePath);
    const handshake = ofKind(events, 'ws.handshake.request').find((e) => e.url === '/ws?fault=sigkill');
    expect(handshake).toBeDefined();
    const frames = ofConn(events, handshake?.conn ?? -1, 'ws.frame').filter((f) => f.side === 'client');
    expect(frames).toHaveLength(50);
    // Killed, not stopped: no session.end, and the earlier connections are all there.
    expect(ofKind(events, 'session.end')).toHaveLength(0);
    expect(ofKind(events, 'ws.handshake.request').map((e) => e.url)).toEqual(['/ws?fault=client-vanishes', '/ws?fault=after', '/ws?fault=sigkill']);
  });
});

describe('an upstream that answers the handshake with something that is not HTTP', () => {
  let server: net.Server;
  let wstap: WstapProcess;
  const GARBAGE = 'SSH-2.0-OpenSSH_9.6\r\n\r\nnot http at all';
  beforeAll(async () => {
    server = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => socket.end(GARBAGE));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    wstap = await startWstap(['--target', `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`]);
  });
  afterAll(async () => {
    await wstap?.stop();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('is relayed to the client unchanged and recorded as a handshake error at its byte offset', async () => {
    const socket = net.connect(wstap.port, '127.0.0.1');
    let got = '';
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
    const ended = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    await ended;
    expect(got).toBe(GARBAGE);
    await wstap.waitForLog((l) => /upstream's response head is not HTTP/.test(l.msg));
    expect(await wstap.stop()).toBe(0);
    const events = await wstap.events();
    const error = ofKind(events, 'ws.handshake.error')[0];
    expect(error).toMatchObject({ offset: 0 });
    expect(ofKind(events, 'ws.handshake.response')).toHaveLength(0);
    expect(attributeClose(evidenceOf(events, error?.conn ?? -1)).closedBy).toBe('upstream');
  });
});

/** An unmasked server frame header announcing `length` bytes of binary payload (64-bit length form). */
function serverFrameHeader(length: number): Buffer {
  const header = Buffer.alloc(10);
  header[0] = 0x82;
  header[1] = 127;
  header.writeBigUInt64BE(BigInt(length), 2);
  return header;
}

describe('faults through a real nginx', () => {
  const upgraded: net.Socket[] = [];
  const upgradeWaiters: Array<(socket: net.Socket) => void> = [];
  let upstream: RawUpgradeServer;
  let stack: NginxStack;
  const nextUpstream = (): Promise<net.Socket> =>
    new Promise((resolve) => {
      const ready = upgraded.shift();
      if (ready) resolve(ready);
      else upgradeWaiters.push(resolve);
    });
  beforeAll(async () => {
    upstream = await startRawUpgradeServer((socket) => {
      const waiter = upgradeWaiters.shift();
      if (waiter) waiter(socket);
      else upgraded.push(socket);
    });
    stack = await startNginxStack(upstream.port);
  });
  afterAll(async () => {
    await stack?.stop();
    await upstream?.close();
  });

  async function closedConn(tag: string): Promise<{ events: CaptureEvent[]; conn: number }> {
    const line = await stack.wstap.waitForLog((l) => typeof l.conn === 'number' && /closed by/.test(l.msg) && stack.wstap.logs.some((o) => o.conn === l.conn && String(o.msg).includes(tag)));
    await sleep(400); // the capture is flushed at least every 250 ms
    return { events: await stack.wstap.events(), conn: line.conn as number };
  }

  it('the upstream vanishes (RST) in the middle of a 1 MB message: what arrived reached the client, the client sees the connection fail, the record says the upstream reset it', async () => {
    const client = await connectClient(`ws://127.0.0.1:${stack.nginx.port}/ws?fault=upstream-vanishes`);
    const clientSocket = (client as unknown as { _socket: net.Socket })._socket;
    let received = 0;
    clientSocket.on('data', (d: Buffer) => (received += d.length));
    const clientClosed = closedEvent(client);
    const server = await nextUpstream();
    server.write(serverFrameHeader(1024 * 1024));
    server.write(Buffer.alloc(100 * 1024, 9));
    // Let the 100 KiB travel through wstap and nginx before the reset.
    for (let i = 0; i < 50 && received < 10 + 100 * 1024; i++) await sleep(20);
    server.resetAndDestroy();
    expect((await clientClosed).code).toBe(1006);
    expect(received).toBe(10 + 100 * 1024);

    const { events, conn } = await closedConn('upstream-vanishes');
    const evidence = evidenceOf(events, conn);
    expect(evidence[0]).toMatchObject({ side: 'upstream', kind: 'rst' });
    expect(attributeClose(evidence).closedBy).toBe('upstream');
    const answerHead = ofConn(events, conn, 'ws.handshake.response')[0]?.headLength ?? NaN;
    expect(ofConn(events, conn, 'conn.close')[0]?.bytes.fromUpstream).toBe(answerHead + 10 + 100 * 1024);
    // The frame was never completed: no ws.frame for it, but a record of how much of it came.
    expect(ofConn(events, conn, 'ws.frame').filter((f) => f.side === 'upstream')).toHaveLength(0);
    expect(ofConn(events, conn, 'ws.frame.cut')).toEqual([
      expect.objectContaining({ side: 'upstream', index: 0, offset: 0, received: 10 + 100 * 1024, opcode: 2, length: 1024 * 1024, payloadReceived: 100 * 1024 }),
    ]);
    await stack.wstap.waitForLog((l) => l.conn === conn && /upstream's binary frame 0 \(1048576 payload bytes announced\) was cut off after 102400 of them/.test(l.msg));
  });

  it('the client vanishes (RST) behind nginx in the middle of a frame: the app sees the connection end, closed by the client side', async () => {
    const socket = await rawWebSocket(stack.nginx.port, '/ws?fault=client-vanishes-behind-nginx');
    const server = await nextUpstream();
    let arrived = 0;
    server.on('data', (d: Buffer) => (arrived += d.length));
    // The raw upstream allows half-open connections: the hop's FIN (or reset) ends its reading side.
    const serverEnded = new Promise<string>((resolve) => {
      server.once('end', () => resolve('fin'));
      server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    socket.write(clientFrameHeader(1024 * 1024));
    socket.write(Buffer.alloc(50 * 1024, 3));
    for (let i = 0; i < 50 && arrived < 14 + 50 * 1024; i++) await sleep(20);
    expect(arrived).toBe(14 + 50 * 1024);
    socket.resetAndDestroy();
    expect(await serverEnded).toBe('fin');
    server.end();

    const { events, conn } = await closedConn('client-vanishes-behind-nginx');
    const evidence = evidenceOf(events, conn);
    // nginx turns its client's reset into its own close of the upstream connection.
    expect(evidence[0]?.side).toBe('client');
    expect(attributeClose(evidence).closedBy).toBe('client');
    // Every byte from nginx went through the byte relay, the handshake's head included.
    const head = ofConn(events, conn, 'ws.handshake.request')[0]?.headLength ?? NaN;
    expect(ofConn(events, conn, 'conn.close')[0]?.bytes.fromClient).toBe(head + 14 + 50 * 1024);
    expect(ofConn(events, conn, 'ws.frame.cut')).toEqual([expect.objectContaining({ side: 'client', received: 14 + 50 * 1024, length: 1024 * 1024, payloadReceived: 50 * 1024 })]);
  });

  it('the upstream half-closes first: its FIN is passed on and the client still gets to send', async () => {
    // Straight to wstap: nginx ends the whole connection on either side's EOF; the half-close is wstap's own guarantee.
    const socket = await rawWebSocket(stack.wstap.port, '/ws?fault=upstream-fin-first', { allowHalfOpen: true });
    const server = await nextUpstream();
    const clientSawFin = new Promise<void>((resolve) => socket.once('end', () => resolve()));
    const late: Buffer[] = [];
    const upstreamGotLate = new Promise<void>((resolve) =>
      server.on('data', (d: Buffer) => {
        late.push(d);
        if (Buffer.concat(late).length >= 6 + 5) resolve();
      }),
    );
    server.end();
    await clientSawFin;
    // A masked client text frame "after", sent after the upstream's FIN.
    const key = [1, 2, 3, 4];
    const text = Buffer.from('after');
    socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | text.length, ...key]), Buffer.from(text.map((b, i) => b ^ key[i % 4]!))]));
    await upstreamGotLate;
    socket.end();

    const { events, conn } = await closedConn('upstream-fin-first');
    const evidence = evidenceOf(events, conn);
    expect(evidence.map((e) => `${e.side} ${e.kind}`)).toEqual(['upstream fin', 'client fin']);
    expect(attributeClose(evidence).closedBy).toBe('upstream');
    const lateFrame = ofConn(events, conn, 'ws.frame').find((f) => f.side === 'client');
    expect(Buffer.from(lateFrame?.preview ?? '', 'base64').toString()).toBe('after');
  });
});
