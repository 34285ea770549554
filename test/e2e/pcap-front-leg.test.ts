import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CaptureEvent } from '../../src/capture/events.js';
import { readPacketCaptureEvents } from '../../src/pcap/packet-capture-reader.js';
import { startNginx, type Nginx } from '../support/nginx.js';
import { startTcpdump, type Tcpdump } from '../support/tcpdump.js';
import { startUpstreamApp, type UpstreamApp } from '../support/upstream-app.js';
import { runWstapSync } from '../support/wstap-process.js';
import { closedEvent, connectClient, connOfUrl, ofKind } from '../support/ws-peers.js';

/**
 * Zero intrusion, both legs: client -> nginx -> app with nothing in the
 * path but tcpdump on both ports. Each back-leg connection is joined to the
 * front-leg one that carried it, and the verdict says which leg closed
 * first: the question of which hop cut it, answered from packets.
 */

async function pcapEvents(file: string): Promise<CaptureEvent[]> {
  const events: CaptureEvent[] = [];
  for await (const e of readPacketCaptureEvents([file], { serverPorts: [], note: () => undefined })) events.push(e);
  return events;
}

describe.each([
  ['the client address and time', ''],
  ["the client's address and port ($remote_port in a header)", 'proxy_set_header X-Real-Port $remote_port;'],
])('a capture of both legs joined by %s', (_name, locationExtra) => {
  let app: UpstreamApp;
  let nginx: Nginx;
  let dump: Tcpdump;
  let dir: string;
  let events: CaptureEvent[];
  let stats = '';
  const exact = locationExtra !== '';

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-pcap-legs-'));
    app = await startUpstreamApp();
    nginx = await startNginx({ upstreamPort: app.port, locationExtra });
    dump = await startTcpdump(path.join(dir, 'legs.pcap'), [nginx.port, app.port]);
    // The client cuts it (an RST on the front leg), then the app does (a FIN on the back leg).
    const front = await connectClient(`ws://127.0.0.1:${nginx.port}/ws?leg=client-cut`);
    const { ws: first } = await app.nextConnection();
    const appSawClose = closedEvent(first);
    (front as unknown as { _socket: net.Socket })._socket.resetAndDestroy();
    await appSawClose;
    const other = await connectClient(`ws://127.0.0.1:${nginx.port}/ws?leg=app-cut`);
    const { ws: second } = await app.nextConnection();
    const clientSawClose = closedEvent(other);
    (second as unknown as { _socket: net.Socket })._socket.end();
    await clientSawClose;
    // Both connections closed on both legs in the file (two conn.close per scenario) before tcpdump stops.
    const deadline = Date.now() + 30_000;
    while (ofKind(await pcapEvents(dump.file), 'conn.close').length < 4) {
      if (Date.now() > deadline) throw new Error('the capture did not hold both legs of both connections');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    stats = await dump.stop();
    events = await pcapEvents(dump.file);
  }, 120_000);
  afterAll(async () => {
    await nginx?.stop();
    await app?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('joins each back-leg connection to its front-leg one', () => {
    expect(stats).toMatch(/ 0 packets dropped by kernel/);
    const fronts = ofKind(events, 'conn.front');
    expect(fronts).toHaveLength(2);
    for (const leg of ['client-cut', 'app-cut']) {
      const conns = [...ofKind(events, 'ws.handshake.request')].filter((e) => e.url.endsWith(`leg=${leg}`)).map((e) => e.conn);
      // The same request on both legs: the front one (client -> nginx) opened first.
      expect(conns).toHaveLength(2);
      const [frontConn, backConn] = conns as [number, number];
      const join = fronts.find((f) => f.conn === backConn);
      expect(join).toMatchObject({ front: frontConn, matchedBy: exact ? 'address+port' : 'address+time', candidates: 1 });
      expect(join?.client).toMatch(exact ? /^127\.0\.0\.1:\d+$/ : /^127\.0\.0\.1$/);
    }
  });

  it('the verdict says which leg closed first', () => {
    const view = runWstapSync(['view', '--no-tui', dump.file]);
    expect(view.status, view.stderr).toBe(0);
    const closing = (leg: string): string | undefined => {
      const conns = ofKind(events, 'ws.handshake.request').filter((e) => e.url.endsWith(`leg=${leg}`));
      const back = conns[1]?.conn;
      return view.stdout.split('\n').find((l) => l.includes(`#${back} closed by`));
    };
    expect(closing('client-cut')).toMatch(/; the front leg \(#\d+, matched by .*\) closed first: client rst [\d.]+ ms before this leg's first evidence: the client side cut it, nginx followed/);
    // nginx ends the front leg only after the app ended this one: still open, or closing a little later.
    expect(closing('app-cut')).toMatch(/#\d+ closed by upstream \(upstream fin\).*; this leg closed before the front leg \(#\d+, matched by .*\): (it was still open then|its first evidence \(upstream fin\) came [\d.]+ ms later)$/);
    expect(connOfUrl(events, 'leg=app-cut')).toBeDefined();
  });
});
