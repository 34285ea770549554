import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CaptureEvent } from '../../src/capture/events.js';
import { frame } from '../support/frame-fixtures.js';
import { startRawUpgradeServer, serverTextFrame, type RawUpgradeServer } from '../support/upstream-app.js';
import { ofKind, sleep } from '../support/ws-peers.js';
import { startWstap, type WstapProcess } from '../support/wstap-process.js';

/**
 * Issue 14 item 6 c: wstap's own shutdown ends both sides of a connection
 * whose peers keep talking. What they send after that cannot be passed on;
 * it must not turn into socket errors (ERR_STREAM_WRITE_AFTER_END) recorded
 * as if a peer had failed. The evidence is wstap's proxy.close and what the
 * peers really did.
 */

const MASK = Uint8Array.from([7, 7, 7, 7]);

/** Writes `bytes` every few milliseconds until the socket can no longer take them. */
function chatter(socket: net.Socket, bytes: Buffer): void {
  const timer = setInterval(() => {
    if (socket.destroyed || socket.writableEnded) clearInterval(timer);
    else socket.write(bytes);
  }, 2);
  socket.once('close', () => clearInterval(timer));
}

describe('shutdown of a chatty connection', () => {
  let upstream: RawUpgradeServer;
  let wstap: WstapProcess;
  const appSockets: net.Socket[] = [];

  beforeAll(async () => {
    upstream = await startRawUpgradeServer((socket) => {
      appSockets.push(socket);
      socket.on('data', () => undefined);
      // A peer that goes on sending after wstap's FIN, as a busy app does until it notices.
      chatter(socket, serverTextFrame('tick from the app'));
    });
    wstap = await startWstap(['--target', `http://127.0.0.1:${upstream.port}`]);
  });

  afterAll(async () => {
    for (const s of appSockets) s.destroy();
    await upstream?.close();
  });

  it('records proxy.close and the peers\' own FIN/RST, no write-after-end errors', async () => {
    const clients: net.Socket[] = [];
    for (let i = 0; i < 4; i++) {
      const socket = net.connect(wstap.port, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.on('end', () => undefined); // half-open: the client keeps sending after wstap's FIN
      socket.write(
        `GET /chatty/${i} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
      await new Promise<void>((resolve) => socket.once('data', () => resolve()));
      chatter(socket, frame({ opcode: 1, payload: Buffer.from('tick from the client'), mask: MASK }));
      clients.push(socket);
    }
    await sleep(300);
    expect(await wstap.stop('SIGINT')).toBe(0);
    for (const c of clients) c.destroy();

    const events: CaptureEvent[] = await wstap.events();
    const errors = ofKind(events, 'tcp.error');
    expect(errors.map((e) => `#${e.conn} ${e.side} ${e.code}`)).toEqual([]);
    const conns = ofKind(events, 'ws.handshake.response').map((e) => e.conn);
    expect(conns).toHaveLength(4);
    for (const conn of conns) {
      const closes = events.filter((e) => 'conn' in e && e.conn === conn && (e.kind === 'proxy.close' || e.kind === 'conn.close'));
      expect(closes.map((e) => e.kind)).toEqual(['proxy.close', 'conn.close']);
      // Both peers went on talking until wstap closed their sockets: what it could not pass on is counted.
      const closed = closes[1];
      expect(closed?.kind === 'conn.close' && closed.notRelayed).toEqual({ fromClient: expect.any(Number), fromUpstream: expect.any(Number) });
      const notRelayed = closed?.kind === 'conn.close' ? closed.notRelayed : undefined;
      expect((notRelayed?.fromClient ?? 0) + (notRelayed?.fromUpstream ?? 0)).toBeGreaterThan(0);
      expect(wstap.logs.some((l) => l.msg.startsWith(`#${conn} closed by proxy`) && l.msg.includes('not relayed, sent after wstap ended the connection'))).toBe(true);
    }
  });
});
