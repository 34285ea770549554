import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attributeClose } from '../../src/analysis/close-attribution.js';
import type { CaptureEvent } from '../../src/capture/events.js';
import { startNginx, type Nginx } from '../support/nginx.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { startWstap, type WstapProcess } from '../support/wstap-process.js';
import { closedEvent, connectClient, evidenceOf, ofConn, ofKind, payloadMix, receive, sendAll, sleep } from '../support/ws-peers.js';

/**
 * client (ws) -> real nginx -> wstap (the real CLI) -> app (ws server).
 * One nginx, wstap and app for the file; each test tags its URL so its
 * connection can be found in the capture afterwards.
 */
let app: UpstreamApp;
let wstap: WstapProcess;
let nginx: Nginx;
let events: CaptureEvent[] = [];

beforeAll(async () => {
  app = await startUpstreamApp({ perMessageDeflate: true, autoPong: true });
  wstap = await startWstap(['--target', `http://127.0.0.1:${app.port}`]);
  nginx = await startNginx({ upstreamPort: wstap.port });
});

afterAll(async () => {
  await nginx?.stop();
  await wstap?.stop();
  await app?.close();
});

const url = (tag: string): string => `ws://127.0.0.1:${nginx.port}/ws?test=${tag}`;

/** Capture so far (the writer flushes every 250 ms). */
async function capture(): Promise<CaptureEvent[]> {
  await sleep(400);
  events = await wstap.events();
  return events;
}

function connOf(all: CaptureEvent[], tag: string): number {
  const request = ofKind(all, 'ws.handshake.request').find((e) => e.url.endsWith(`test=${tag}`));
  if (!request) throw new Error(`no handshake recorded for ${tag}`);
  return request.conn;
}

async function waitClosed(tag: string): Promise<{ all: CaptureEvent[]; conn: number }> {
  for (let i = 0; i < 40; i++) {
    const all = await capture();
    const conn = connOf(all, tag);
    if (ofConn(all, conn, 'conn.close').length > 0) return { all, conn };
  }
  throw new Error(`connection ${tag} was not closed in the capture`);
}

describe('relay through a real nginx', () => {
  const variants = [
    { name: 'off', offer: false as const },
    { name: 'on, context takeover', offer: true as const },
    { name: 'on, no context takeover', offer: { clientNoContextTakeover: true, serverNoContextTakeover: true } },
  ];
  for (const variant of variants) {
    const deflate = variant.offer !== false;
    it(`relays payloads byte-exact both ways (permessage-deflate ${variant.name})`, async () => {
      const tag = `exact-${variants.indexOf(variant)}`;
      const client = await connectClient(url(tag), { perMessageDeflate: variant.offer });
      const { ws: server } = await app.nextConnection();
      const toServer = payloadMix(1);
      const toClient = payloadMix(2);
      const serverGot = receive(server, toServer.length);
      const clientGot = receive(client, toClient.length);
      const sentByClient = sendAll(client, toServer, 3);
      const sentByServer = sendAll(server, toClient, 4);
      expect((await serverGot).hex()).toBe(sentByClient.hex());
      expect((await clientGot).hex()).toBe(sentByServer.hex());
      client.close(1000, 'done');
      await closedEvent(client);

      const { all, conn } = await waitClosed(tag);
      const response = ofConn(all, conn, 'ws.handshake.response')[0];
      expect(response?.statusCode).toBe(101);
      expect(response?.deflate !== null).toBe(deflate);
      if (typeof variant.offer === 'object') {
        expect(response?.deflate).toMatchObject({ clientNoContextTakeover: true, serverNoContextTakeover: true });
      }
      const messages = ofConn(all, conn, 'ws.message');
      const fromClient = messages.filter((m) => m.side === 'client');
      const fromUpstream = messages.filter((m) => m.side === 'upstream');
      expect(fromClient).toHaveLength(toServer.length);
      expect(fromUpstream).toHaveLength(toClient.length);
      // Sizes after inflating equal what the peers sent, message for message.
      expect(fromClient.map((m) => m.size)).toEqual(toServer.map((m) => m.data.length));
      expect(fromUpstream.map((m) => m.size)).toEqual(toClient.map((m) => m.data.length));
      expect(fromClient.map((m) => m.opcode)).toEqual(toServer.map((m) => (m.binary ? 2 : 1)));
      // Previews are the first bytes of each message, inflated when compressed.
      fromClient.forEach((m, i) => {
        const expected = (toServer[i]?.data ?? Buffer.alloc(0)).subarray(0, 256);
        expect(Buffer.from(m.preview, 'base64').equals(expected)).toBe(true);
      });
      expect(ofConn(all, conn, 'ws.protocol-error')).toHaveLength(0);
      // conn.close is the connection's last event, after the last (asynchronously inflated) message.
      expect(all.filter((e) => 'conn' in e && e.conn === conn).at(-1)?.kind).toBe('conn.close');
      expect(ofConn(all, conn, 'ws.inflate-error')).toHaveLength(0);
      // Fragmented messages (every third from the client, when longer than 3 bytes) show as three frames.
      expect(fromClient.map((m) => m.frames)).toEqual(toServer.map((m, i) => (i % 3 === 0 && m.data.length > 3 ? 3 : 1)));
      const frames = ofConn(all, conn, 'ws.frame');
      expect(frames.filter((f) => f.side === 'client').every((f) => f.masked)).toBe(true);
      expect(frames.filter((f) => f.side === 'upstream').every((f) => !f.masked)).toBe(true);
    });
  }

  it('passes pings on and lets the client answer them; wstap never pongs itself', async () => {
    const answering = await connectClient(url('ping-answered'));
    const silent = await connectClient(url('ping-unanswered'), { autoPong: false });
    const { ws: serverA } = await app.nextConnection();
    const { ws: serverB } = await app.nextConnection();
    const clientSawPing = new Promise<Buffer>((resolve) => answering.once('ping', resolve));
    const pongA = new Promise<Buffer>((resolve) => serverA.once('pong', resolve));
    let pongB = false;
    serverB.on('pong', () => (pongB = true));
    const silentSawPing = new Promise<Buffer>((resolve) => silent.once('ping', resolve));
    serverA.ping(Buffer.from('hb-1'));
    serverB.ping(Buffer.from('hb-2'));
    expect((await clientSawPing).toString()).toBe('hb-1');
    expect((await pongA).toString()).toBe('hb-1');
    expect((await silentSawPing).toString()).toBe('hb-2');
    await sleep(500);
    expect(pongB).toBe(false);
    answering.close();
    silent.close();
    await Promise.all([closedEvent(answering), closedEvent(silent)]);

    const all = (await waitClosed('ping-answered')).all;
    const a = connOf(all, 'ping-answered');
    const framesA = ofConn(all, a, 'ws.frame');
    const ping = framesA.find((f) => f.opcode === 9);
    const pong = framesA.find((f) => f.opcode === 10);
    expect(ping?.side).toBe('upstream');
    expect(pong?.side).toBe('client');
    expect(Buffer.from(pong?.preview ?? '', 'base64').toString()).toBe('hb-1');
    expect((pong?.t ?? 0) >= (ping?.t ?? Infinity)).toBe(true);
    const b = connOf(all, 'ping-unanswered');
    expect(ofConn(all, b, 'ws.frame').filter((f) => f.opcode === 10)).toHaveLength(0);
  });

  it('client close frame: closedBy client, its close frame first', async () => {
    const client = await connectClient(url('client-close'));
    await app.nextConnection();
    client.close(4000, 'client says bye');
    expect(await closedEvent(client)).toEqual({ code: 4000, reason: 'client says bye' });
    const { all, conn } = await waitClosed('client-close');
    const evidence = evidenceOf(all, conn);
    expect(attributeClose(evidence).closedBy).toBe('client');
    expect(evidence[0]).toMatchObject({ side: 'client', kind: 'close-frame', code: 4000, reason: 'client says bye' });
    expect(evidence.some((e) => e.side === 'upstream' && e.kind === 'close-frame' && e.code === 4000)).toBe(true);
  });

  it('upstream close frame: closedBy upstream', async () => {
    const client = await connectClient(url('upstream-close'));
    const { ws: server } = await app.nextConnection();
    server.close(1001, 'going away');
    expect(await closedEvent(client)).toEqual({ code: 1001, reason: 'going away' });
    const { all, conn } = await waitClosed('upstream-close');
    const evidence = evidenceOf(all, conn);
    expect(attributeClose(evidence).closedBy).toBe('upstream');
    expect(evidence[0]).toMatchObject({ side: 'upstream', kind: 'close-frame', code: 1001, reason: 'going away' });
  });

  it('upstream RST: recorded as rst from upstream and passed on', async () => {
    const client = await connectClient(url('upstream-rst'));
    const { ws: server } = await app.nextConnection();
    client.send('before the reset');
    await new Promise((r) => server.once('message', r));
    const clientClosed = closedEvent(client);
    (server as unknown as { _socket: net.Socket })._socket.resetAndDestroy();
    const { code } = await clientClosed;
    // No close frame reached the client: the browser's 1006.
    expect(code).toBe(1006);
    const { all, conn } = await waitClosed('upstream-rst');
    const evidence = evidenceOf(all, conn);
    expect(attributeClose(evidence).closedBy).toBe('upstream');
    expect(evidence[0]).toMatchObject({ side: 'upstream', kind: 'rst' });
    expect(evidence.some((e) => e.kind === 'close-frame')).toBe(false);
  });

  it('plain HTTP goes through the byte relay and is recorded', async () => {
    const res = await fetch(`http://127.0.0.1:${nginx.port}/api/v4/system/ping?x=1`, { method: 'POST', body: 'hello body' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ method: 'POST', url: '/api/v4/system/ping?x=1', bodyLength: 10 });
    const all = await capture();
    const request = ofKind(all, 'http.request').find((e) => e.url === '/api/v4/system/ping?x=1');
    expect(request?.method).toBe('POST');
    // What nginx sent, case and order kept.
    expect(request?.rawHeaders.map(([n]) => n)).toContain('X-Forwarded-For');
    const response = ofConn(all, request?.conn ?? -1, 'http.response').find((e) => e.exchange === request?.exchange);
    expect(response).toMatchObject({ statusCode: 200, requestBodyBytes: 10, complete: true });
    expect(response?.responseBodyBytes).toBeGreaterThan(0);
    expect(response?.ttfbMs).toBeGreaterThanOrEqual(0);
    expect(response?.totalMs).toBeGreaterThanOrEqual(response?.ttfbMs ?? 0);
  });

  it('the upstream sees the handshake as nginx sent it: header order and casing kept', async () => {
    const client = await connectClient(url('head-order'), { headers: { 'X-Custom-Casing': 'Kept' } });
    const { req } = await app.nextConnection();
    const all = await capture();
    const conn = connOf(all, 'head-order');
    const recorded = ofConn(all, conn, 'ws.handshake.request')[0];
    const names = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) names.push(req.rawHeaders[i]);
    expect(recorded?.rawHeaders.map(([n]) => n)).toEqual(names);
    expect(names).toContain('X-Custom-Casing');
    client.close();
    await closedEvent(client);
  });
});
