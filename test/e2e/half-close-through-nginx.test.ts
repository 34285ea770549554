import net from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { attributeClose, type CloseEvidence } from '../../src/analysis/close-attribution.js';
import { startNginx, type Nginx } from '../support/nginx.js';
import { serverTextFrame, startRawUpgradeServer, type RawUpgradeServer } from '../support/upstream-app.js';
import { startWstap, type WstapProcess } from '../support/wstap-process.js';
import type { CaptureEvent } from '../../src/capture/events.js';
import { connectClient, evidenceOf, ofKind, sleep } from '../support/ws-peers.js';

/**
 * A client FIN is passed on as a FIN, not as a full close: the upstream
 * still gets to send after it. `ws` closes on a FIN, so the upstream here is
 * a raw socket that answered the handshake itself.
 */
let upstream: RawUpgradeServer;
let wstap: WstapProcess;
let nginx: Nginx;
const upstreamSawFin: Array<() => void> = [];

beforeAll(async () => {
  upstream = await startRawUpgradeServer((socket) => {
    socket.once('end', () => {
      for (const f of upstreamSawFin.splice(0)) f();
      // Half-open: the client stopped sending, we have not.
      socket.write(serverTextFrame('after your FIN'));
      setTimeout(() => socket.end(), 100);
    });
  });
  wstap = await startWstap(['--target', `http://127.0.0.1:${upstream.port}`]);
  nginx = await startNginx({ upstreamPort: wstap.port });
});

afterAll(async () => {
  await nginx?.stop();
  await wstap?.stop();
  await upstream?.close();
});

async function evidenceFor(tag: string): Promise<{ all: CaptureEvent[]; conn: number; evidence: CloseEvidence[] }> {
  for (let i = 0; i < 40; i++) {
    await sleep(300);
    const all = await wstap.events();
    const conn = ofKind(all, 'ws.handshake.request').find((e) => e.url.endsWith(`test=${tag}`))?.conn;
    if (conn !== undefined && ofKind(all, 'conn.close').some((e) => e.conn === conn)) {
      const evidence = evidenceOf(all, conn);
      return { all, conn, evidence };
    }
  }
  throw new Error(`no closed connection for ${tag} in the capture`);
}

it('wstap keeps a half-close: after the client FIN the upstream still gets to send', async () => {
  // Straight to wstap: this is the relay's own guarantee.
  const client = await connectClient(`ws://127.0.0.1:${wstap.port}/ws?test=direct-fin`);
  const clientSocket = (client as unknown as { _socket: net.Socket })._socket;
  const finReachedUpstream = new Promise<void>((resolve) => upstreamSawFin.push(resolve));
  const late = new Promise<string>((resolve) => client.once('message', (d: Buffer) => resolve(d.toString())));
  clientSocket.end();
  await finReachedUpstream;
  expect(await late).toBe('after your FIN');

  const { all, conn, evidence } = await evidenceFor('direct-fin');
  expect(attributeClose(evidence).closedBy).toBe('client');
  expect(evidence.map((e) => `${e.side} ${e.kind}`)).toEqual(['client fin', 'upstream fin']);
  const lateFrame = ofKind(all, 'ws.frame').find((f) => f.conn === conn && f.side === 'upstream' && f.opcode === 1);
  expect(Buffer.from(lateFrame?.preview ?? '', 'base64').toString()).toBe('after your FIN');
  expect((lateFrame?.t ?? 0) > (evidence[0]?.t ?? Infinity)).toBe(true);
});

it('client FIN through nginx: nginx passes the FIN on, wstap records closedBy client', async () => {
  const client = await connectClient(`ws://127.0.0.1:${nginx.port}/ws?test=nginx-fin`);
  const clientSocket = (client as unknown as { _socket: net.Socket })._socket;
  const finReachedUpstream = new Promise<void>((resolve) => upstreamSawFin.push(resolve));
  const clientClosed = new Promise<void>((resolve) => clientSocket.once('close', () => resolve()));
  clientSocket.end();
  await finReachedUpstream;
  await clientClosed;

  const { evidence } = await evidenceFor('nginx-fin');
  expect(attributeClose(evidence).closedBy).toBe('client');
  expect(evidence[0]).toMatchObject({ side: 'client', kind: 'fin' });
  // nginx ends the whole upgraded connection once its client reached EOF, so
  // what the upstream sends afterwards cannot reach the client through it.
  expect(evidence.some((e) => e.side === 'upstream')).toBe(true);
});
