import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { selfSignedCertificate, startTlsEchoApp, type Certificate, type TlsEchoApp } from '../support/tls-app.js';
import { startWstap } from '../support/wstap-process.js';
import { closedEvent, connectClient, ofKind } from '../support/ws-peers.js';

/** A wss:// app with a self-signed certificate made by openssl for this run. */
let certificate: Certificate;
let app: TlsEchoApp;
let port: number;

beforeAll(async () => {
  certificate = selfSignedCertificate();
  app = await startTlsEchoApp(certificate);
  port = app.port;
});

afterAll(async () => {
  await app?.close();
  certificate?.remove();
});

describe('TLS upstream', () => {
  it('refuses an unverifiable certificate with a 502 that says why', async () => {
    const wstap = await startWstap(['--target', `wss://127.0.0.1:${port}`]);
    const answer = await new Promise<{ status: number; body: string }>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${wstap.port}/ws`);
      ws.on('error', () => undefined);
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
    });
    expect(answer.status).toBe(502);
    expect(answer.body).toContain('SELF_SIGNED');
    expect(await wstap.stop()).toBe(0);
    expect(ofKind(await wstap.events(), 'http.error')[0]?.code).toMatch(/SELF_SIGNED/);
  });

  it('relays to it with --insecure, and says loudly that it does', async () => {
    const wstap = await startWstap(['--target', `wss://127.0.0.1:${port}`, '--insecure']);
    expect(wstap.logs.some((l) => /--insecure: the certificate of https:\/\/127\.0\.0\.1:\d+ is NOT verified/.test(l.msg))).toBe(true);
    const client = await connectClient(`ws://127.0.0.1:${wstap.port}/ws`);
    const echoed = new Promise<string>((resolve) => client.once('message', (d: Buffer) => resolve(d.toString())));
    client.send('over tls');
    expect(await echoed).toBe('over tls');
    client.close();
    await closedEvent(client);
    expect(await wstap.stop()).toBe(0);
    const all = await wstap.events();
    expect(ofKind(all, 'ws.handshake.response')[0]?.statusCode).toBe(101);
    expect(ofKind(all, 'ws.message').map((m) => Buffer.from(m.preview, 'base64').toString())).toEqual(['over tls', 'over tls']);
  });

  it('verifies a certificate it can trust (IP in the subjectAltName) and relays without --insecure', async () => {
    const wstap = await startWstap(['--target', `wss://127.0.0.1:${port}`], { env: { NODE_EXTRA_CA_CERTS: certificate.certPath } });
    const client = await connectClient(`ws://127.0.0.1:${wstap.port}/ws`);
    const echoed = new Promise<string>((resolve) => client.once('message', (d: Buffer) => resolve(d.toString())));
    client.send('verified');
    expect(await echoed).toBe('verified');
    client.close();
    await closedEvent(client);
    expect(await wstap.stop()).toBe(0);
  });

  it('a client that resets after an echo: the RST is passed on to the TLS upstream, recorded, and wstap stays up (issue 14)', async () => {
    const wstap = await startWstap(['--target', `wss://127.0.0.1:${port}`, '--insecure']);
    const client = await connectClient(`ws://127.0.0.1:${wstap.port}/ws`);
    const echoed = new Promise<string>((resolve) => client.once('message', (d: Buffer) => resolve(d.toString())));
    client.send('then reset');
    expect(await echoed).toBe('then reset');
    client.on('error', () => undefined);
    (client as unknown as { _socket: net.Socket })._socket.resetAndDestroy();
    const line = await wstap.waitForLog((l) => /closed by client/.test(l.msg));
    expect(line.msg).toMatch(/client rst/);
    // Still up: the next connection is relayed.
    const next = await connectClient(`ws://127.0.0.1:${wstap.port}/ws`);
    const again = new Promise<string>((resolve) => next.once('message', (d: Buffer) => resolve(d.toString())));
    next.send('still here');
    expect(await again).toBe('still here');
    next.close();
    await closedEvent(next);
    expect(await wstap.stop()).toBe(0);
    expect(wstap.stderr()).not.toMatch(/ERR_INVALID_HANDLE_TYPE/);
    expect(ofKind(await wstap.events(), 'tcp.rst')).toEqual([expect.objectContaining({ conn: line.conn, side: 'client' })]);
  });
});
