import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUnansweredListener, type UnansweredListener } from '../support/ports.js';
import { waitUntil } from '../support/wait-until.js';
import { connectClient, httpGet, ofKind, unexpectedResponse } from '../support/ws-peers.js';
import { startWstap, type WstapProcess } from '../support/wstap-process.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';

/**
 * --connect-timeout: an upstream whose connect never completes (a full
 * listen queue: the kernel leaves the SYN unanswered) or whose TLS handshake
 * never does (a listener that accepts and says nothing) is answered and
 * recorded like an unreachable one, after the timeout.
 */

/** Connects a raw client in --tcp mode and reports how its connection ended. */
function tcpClientEnd(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    socket.on('end', () => resolve('FIN'));
  });
}

/** wstap is still up: a relayed exchange through it to a working app. */
async function relaysToWorkingApp(args: string[]): Promise<void> {
  const app: UpstreamApp = await startUpstreamApp();
  const wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`, ...args]);
  const client = await connectClient(`ws://127.0.0.1:${wstap.port}/ws`);
  client.close();
  expect((await httpGet({ host: '127.0.0.1', port: wstap.port, path: '/ok', agent: false })).status).toBe(200);
  expect(await wstap.stop()).toBe(0);
  await app.close();
}

describe('--connect-timeout: the TCP connect never completes', () => {
  let unanswered: UnansweredListener;
  beforeAll(async () => {
    unanswered = await startUnansweredListener();
  });
  afterAll(async () => {
    await unanswered?.close();
  });

  it('an upgrade and a plain request are answered 502 ETIMEDOUT and recorded as connect errors', async () => {
    const wstap: WstapProcess = await startWstap(['--target', `http://127.0.0.1:${unanswered.port}`, '--connect-timeout', '0.5']);
    const upgrade = await unexpectedResponse(`ws://127.0.0.1:${wstap.port}/ws`);
    expect(upgrade.status).toBe(502);
    expect(upgrade.body).toMatch(/ETIMEDOUT: connect to http:\/\/127\.0\.0\.1:\d+ not done after 0\.5 s/);
    const plain = await httpGet({ host: '127.0.0.1', port: wstap.port, path: '/api', agent: false });
    expect(plain.status).toBe(502);
    expect(plain.headers['x-wstap-error']).toBe('ETIMEDOUT');
    expect(plain.body).toMatch(/connect to .* not done after 0\.5 s/);
    expect(await wstap.stop()).toBe(0);
    const errors = ofKind(await wstap.events(), 'http.error');
    expect(errors).toEqual([
      expect.objectContaining({ stage: 'connect', code: 'ETIMEDOUT', answeredStatus: 502 }),
      expect.objectContaining({ stage: 'connect', code: 'ETIMEDOUT', answeredStatus: 502 }),
    ]);
    expect(ofKind(await wstap.events(), 'conn.close')).toHaveLength(2);
  });

  it('--tcp: the client is reset and the capture says why', async () => {
    const wstap = await startWstap(['--tcp', '--target', `127.0.0.1:${unanswered.port}`, '--connect-timeout', '0.5']);
    expect(await tcpClientEnd(wstap.port)).toBe('ECONNRESET');
    expect(await wstap.stop()).toBe(0);
    const events = await wstap.events();
    expect(ofKind(events, 'tcp.error')).toEqual([expect.objectContaining({ side: 'upstream', code: 'ETIMEDOUT' })]);
    expect(ofKind(events, 'conn.close')).toHaveLength(1);
  });

  it('0 (no limit) is accepted and relays to a working app; a bad value is refused', async () => {
    await relaysToWorkingApp(['--connect-timeout', '0']);
    const wstap = startWstap(['--target', 'http://127.0.0.1:1', '--connect-timeout', 'soon']);
    await expect(wstap).rejects.toThrow(/--connect-timeout "soon" is not a non-negative number/);
  });
});

describe('--connect-timeout: the TLS handshake never completes', () => {
  let silent: net.Server;
  const accepted: net.Socket[] = [];
  let closedByWstap = 0;
  beforeAll(async () => {
    // Accepts TCP, never answers the ClientHello.
    silent = net.createServer((socket) => {
      accepted.push(socket);
      socket.on('error', () => undefined);
      socket.once('close', () => closedByWstap++);
      // Reads (and ignores) the ClientHello, so it sees wstap's FIN.
      socket.resume();
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    for (const s of accepted) s.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  it('wss:// upgrades and https:// requests: 502 ETIMEDOUT naming the handshake; --tcp: an RST', async () => {
    const port = (silent.address() as net.AddressInfo).port;
    const wstap = await startWstap(['--target', `wss://127.0.0.1:${port}`, '--connect-timeout', '0.5']);
    const upgrade = await unexpectedResponse(`ws://127.0.0.1:${wstap.port}/ws`);
    expect(upgrade.status).toBe(502);
    expect(upgrade.body).toMatch(/ETIMEDOUT: TLS handshake to https:\/\/127\.0\.0\.1:\d+ not done after 0\.5 s/);
    const plain = await httpGet({ host: '127.0.0.1', port: wstap.port, path: '/api', agent: false });
    expect(plain.status).toBe(502);
    expect(plain.body).toMatch(/ETIMEDOUT: TLS handshake to .* not done after 0\.5 s/);
    // The dials gave up: wstap closed both sockets the silent listener accepted (while it still runs).
    await waitUntil('both accepted sockets closed', () => closedByWstap === 2 && accepted.length === 2, { intervalMs: 50 });
    expect(await wstap.stop()).toBe(0);
    expect(ofKind(await wstap.events(), 'http.error').map((e) => `${e.stage} ${e.code} ${e.answeredStatus}`)).toEqual(['connect ETIMEDOUT 502', 'connect ETIMEDOUT 502']);

    const tcp = await startWstap(['--tcp', '--target', `https://127.0.0.1:${port}`, '--connect-timeout', '0.5']);
    expect(await tcpClientEnd(tcp.port)).toBe('ECONNRESET');
    expect(await tcp.stop()).toBe(0);
    expect(ofKind(await tcp.events(), 'tcp.error')).toEqual([expect.objectContaining({ side: 'upstream', code: 'ETIMEDOUT' })]);
    expect(accepted).toHaveLength(3);
  });
});
