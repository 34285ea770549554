import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CaptureEvent } from '../../src/capture/events.js';
import { SessionClock } from '../../src/capture/session-clock.js';
import { ConnectionContext } from '../../src/relay/connection-context.js';
import { DuplexRelay, resetOrDestroy } from '../../src/relay/duplex-relay.js';
import { layerOn } from '../../src/relay/tcp-beneath.js';
import { socketPair } from '../support/socket-pair.js';
import { selfSignedCertificate, type Certificate } from '../support/tls-app.js';

const closed = (s: net.Socket): Promise<boolean> => new Promise((resolve) => s.once('close', () => resolve(true)));
const within = <T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> => Promise.race([p, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms))]);

describe('DuplexRelay passing a reset on', () => {
  let server: net.Server;
  const sockets: net.Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await new Promise((resolve) => server?.close(resolve));
  });

  async function listen(): Promise<void> {
    server = net.createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  }

  it('closes a socket whose FIN is still being sent, where Node cannot reset it (it would leak the descriptor)', async () => {
    await listen();
    const [socket, peer] = await socketPair(server);
    sockets.push(socket, peer);
    socket.end();
    // The shutdown is under way: libuv refuses a reset now (EINVAL) and Node 20
    // then drops the handle unclosed: no 'close', the descriptor stays open.
    expect(socket.writableEnded && !socket.writableFinished).toBe(true);
    const done = closed(socket);
    resetOrDestroy(socket);
    // 'close' comes once the handle, hence the descriptor, is closed.
    expect(await within(done, 2000)).toBe(true);
  });

  it('still resets a socket that is open both ways: the peer sees ECONNRESET', async () => {
    await listen();
    const [socket, peer] = await socketPair(server);
    sockets.push(socket, peer);
    const peerError = new Promise<string | undefined>((resolve) => peer.once('error', (e: NodeJS.ErrnoException) => resolve(e.code)));
    peer.write('unread by the reset side');
    await new Promise((r) => setTimeout(r, 50));
    resetOrDestroy(socket);
    expect(await within(peerError, 2000)).toBe('ECONNRESET');
  });

  it('an upstream FIN followed at once by its RST: both sockets close and conn.close is recorded', async () => {
    await listen();
    const [client, clientPeer] = await socketPair(server);
    const [upstream, upstreamPeer] = await socketPair(server);
    sockets.push(client, clientPeer, upstream, upstreamPeer);
    const events: CaptureEvent[] = [];
    const ctx = new ConnectionContext(1, new SessionClock(), { record: (e) => events.push(e) });
    ctx.relayed = true;
    const relay = new DuplexRelay(ctx, client, upstream, { observe: () => undefined });
    relay.start();
    const bothClosed = Promise.all([closed(client), closed(upstream)]);
    // What a loaded relay can see in one turn of the event loop: the upstream's
    // FIN (passed on: client.end(), whose shutdown is then under way) and, on
    // the next write to it, its RST (passed on to the client while that
    // shutdown has not finished).
    upstream.emit('end');
    expect(client.writableEnded && !client.writableFinished).toBe(true);
    upstream.destroy(Object.assign(new Error('write ECONNRESET'), { code: 'ECONNRESET' }));
    expect(await within(bothClosed, 2000)).not.toBe('timeout');
    await new Promise((r) => setTimeout(r, 50));
    expect(events.map((e) => `${e.kind}${'side' in e ? ` ${e.side}` : ''}`)).toEqual(['tcp.fin upstream', 'tcp.rst upstream', 'conn.close']);
  });
});

describe('resetOrDestroy under TLS and on unix sockets', () => {
  let certificate: Certificate;
  beforeAll(() => {
    certificate = selfSignedCertificate();
  });
  afterAll(() => certificate?.remove());

  it('resets the TCP socket under a TLS socket (a TLSSocket cannot be reset): the peer sees ECONNRESET and both sockets close', async () => {
    const server = tls.createServer({ key: certificate.key, cert: certificate.cert });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const accepted = new Promise<tls.TLSSocket>((resolve) => server.once('secureConnection', resolve));
    const tcp = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
    const socket = tls.connect({ socket: tcp, rejectUnauthorized: false });
    const errors: string[] = [];
    socket.on('error', (e: NodeJS.ErrnoException) => errors.push(`tls ${e.code}`));
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    const peer = await accepted;
    const peerError = new Promise<string | undefined>((resolve) => peer.once('error', (e: NodeJS.ErrnoException) => resolve(e.code)));
    // Both ways read empty first: Linux reports an RST that finds unread bytes as a plain EOF.
    const peerGot = new Promise((resolve) => peer.once('data', resolve));
    const got = new Promise((resolve) => socket.once('data', resolve));
    socket.write('to the peer');
    peer.write('from the peer');
    await Promise.all([peerGot, got]);
    const bothClosed = Promise.all([closed(socket), closed(tcp)]);
    layerOn(socket, tcp);
    resetOrDestroy(socket);
    expect(await within(peerError, 2000)).toBe('ECONNRESET');
    expect(await within(bothClosed, 2000)).not.toBe('timeout');
    expect(errors).toEqual([]);
    await new Promise((resolve) => server.close(resolve));
  });

  it('closes a unix socket, which has no RST, instead of throwing', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-unix-'));
    const server = net.createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve) => server.listen(path.join(dir, 's.sock'), resolve));
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const socket = net.connect({ path: path.join(dir, 's.sock'), allowHalfOpen: true });
    await new Promise((resolve) => socket.once('connect', resolve));
    const peer = await accepted;
    peer.on('error', () => undefined);
    const peerEnded = new Promise<boolean>((resolve) => peer.once('end', () => resolve(true)));
    peer.resume();
    const done = closed(socket);
    expect(() => resetOrDestroy(socket)).not.toThrow();
    expect(await within(done, 2000)).toBe(true);
    expect(await within(peerEnded, 2000)).toBe(true);
    peer.destroy();
    await new Promise((resolve) => server.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
