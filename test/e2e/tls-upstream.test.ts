import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { startWstap } from '../support/wstap-process.js';
import { closedEvent, connectClient, ofKind } from '../support/ws-peers.js';

/** A wss:// app with a self-signed certificate made by openssl for this run. */
let server: https.Server;
let port: number;
let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-tls-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
  ], { stdio: 'ignore' });
  server = https.createServer({ key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  fs.rmSync(dir, { recursive: true, force: true });
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
});
