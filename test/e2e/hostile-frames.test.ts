import crypto from 'node:crypto';
import net from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Side } from '../../src/capture/events.js';
import {
  HOSTILE_CLASSES,
  contextArb,
  fits,
  frame,
  hostileCaseArb,
  type HostileCase,
  type HostileClass,
  type HostileContext,
} from '../support/frame-fixtures.js';
import { correctUpgradeHeaders, startRawUpgradeServer, type RawUpgradeServer } from '../support/upstream-app.js';
import { waitUntil } from '../support/wait-until.js';
import { connOfUrl, ofConn, sleep } from '../support/ws-peers.js';
import { captureOfClosed, startWstap, type WstapProcess } from '../support/wstap-process.js';

/**
 * Issue 6, "decoder under fire", at the relay: whatever either peer sends
 * after the handshake (valid frames, then an invalid one, then anything), the
 * other peer receives exactly those bytes, the connection stays up, and the
 * capture records the first protocol error of each direction where it is.
 */

/** One end of a relayed connection, recording what it receives. */
interface Peer {
  socket: net.Socket;
  received: Buffer[];
  /** The peer's FIN or the socket's close has been seen. */
  ended: boolean;
  closed: Promise<void>;
}

function watch(socket: net.Socket, already: Buffer = Buffer.alloc(0)): Peer {
  socket.setNoDelay(true); // each write its own segment, so chunk boundaries reach wstap
  const peer: Peer = {
    socket,
    received: already.length > 0 ? [already] : [],
    ended: false,
    closed: new Promise((resolve) => socket.once('close', () => resolve())),
  };
  socket.on('data', (d: Buffer) => peer.received.push(d));
  socket.on('end', () => {
    peer.ended = true;
    socket.end(); // the raw upstream allows half-open: answer the FIN
  });
  socket.on('close', () => (peer.ended = true));
  socket.on('error', () => undefined);
  return peer;
}

const receivedBytes = (peer: Peer): Buffer => Buffer.concat(peer.received);

/** Resolves once `peer` has received `n` bytes (the bytes themselves are compared by the caller). */
async function waitForBytes(peer: Peer, n: number, what: string): Promise<void> {
  const enough = (): boolean => {
    const got = receivedBytes(peer).length;
    if (got < n && peer.ended) throw new Error(`${what}: connection ended after ${got} of ${n} bytes`);
    return got >= n;
  };
  await waitUntil(`${n} bytes at ${what}`, enough, { intervalMs: 5, context: () => `${receivedBytes(peer).length} of ${n} bytes` });
}

/** A raw WebSocket handshake through wstap; the peer keeps any bytes that came with the 101. */
function openClient(port: number, path: string, deflate: boolean): Promise<Peer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('error', reject);
    socket.once('connect', () =>
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
          (deflate ? 'Sec-WebSocket-Extensions: permessage-deflate\r\n' : '') +
          '\r\n',
      ),
    );
    let head = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.removeListener('data', onData);
      socket.removeListener('error', reject);
      const text = head.subarray(0, end).toString('latin1');
      if (!text.startsWith('HTTP/1.1 101')) reject(new Error(`not upgraded: ${text.slice(0, 60)}`));
      else resolve(watch(socket, head.subarray(end + 4)));
    };
    socket.on('data', onData);
  });
}

/** Writes `bytes` cut at `cuts`, yielding between writes (setImmediate, or 1-2 ms) so chunks arrive apart. */
async function sendChunked(socket: net.Socket, bytes: Buffer, cuts: number[], pauses: number[]): Promise<void> {
  const points = [...new Set([0, bytes.length, ...cuts.map((c) => c % (bytes.length + 1))])].sort((a, b) => a - b);
  for (let i = 0; i + 1 < points.length; i++) {
    socket.write(bytes.subarray(points[i], points[i + 1]));
    const pause = pauses.length > 0 ? pauses[i % pauses.length]! : 0;
    await (pause === 0 ? new Promise<void>((resolve) => setImmediate(resolve)) : sleep(pause));
  }
}

interface SidePlan {
  cls: HostileClass;
  c: HostileCase;
  /** Send the offending frame and what follows it, or only the valid prefix. */
  withError: boolean;
  cuts: number[];
  pauses: number[];
}

/**
 * What one side sends: its generated case for the decoder settings wstap uses
 * for it (clients must mask, servers must not; RSV1 only with deflate).
 */
function sideArb(side: Side, deflate: boolean): fc.Arbitrary<SidePlan> {
  const fixed: Partial<HostileContext> = { allowRsv1: deflate, expectMasked: side === 'client' };
  return fc.constantFrom(...HOSTILE_CLASSES.filter((cls) => fits(cls, fixed))).chain((cls) =>
    fc.record({
      cls: fc.constant(cls),
      c: hostileCaseArb(cls, contextArb(cls, fixed)),
      withError: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      cuts: fc.array(fc.nat(), { maxLength: 8 }),
      pauses: fc.array(fc.integer({ min: 0, max: 2 }), { maxLength: 4 }),
    }),
  );
}

/** A valid ping at the very end: decoded when nothing went wrong before it, and proof the relay still carries bytes. */
const probe = (side: Side): Buffer =>
  frame({ opcode: 9, payload: Buffer.from('still there?'), mask: side === 'client' ? Uint8Array.from([9, 8, 7, 6]) : false });

function bytesOf(plan: SidePlan, side: Side): Buffer {
  return Buffer.concat([plan.withError ? plan.c.wire : plan.c.prefix, probe(side)]);
}

describe('hostile frames through the real proxy', () => {
  let upstream: RawUpgradeServer;
  let wstap: WstapProcess;
  const upgraded: Peer[] = [];
  const waiting: Array<(peer: Peer) => void> = [];
  const clients: Peer[] = [];

  const nextUpstream = (): Promise<Peer> =>
    new Promise((resolve) => {
      const ready = upgraded.shift();
      if (ready) resolve(ready);
      else waiting.push(resolve);
    });

  beforeAll(async () => {
    upstream = await startRawUpgradeServer(
      (socket) => {
        const peer = watch(socket);
        const waiter = waiting.shift();
        if (waiter) waiter(peer);
        else upgraded.push(peer);
      },
      // permessage-deflate when the client offers it, so RSV1 on first frames becomes legal.
      (key, head) => [
        ...correctUpgradeHeaders(key),
        ...(/^sec-websocket-extensions:.*permessage-deflate/im.test(head) ? [['Sec-WebSocket-Extensions', 'permessage-deflate'] as [string, string]] : []),
      ],
    );
    wstap = await startWstap(['--target', `http://127.0.0.1:${upstream.port}`]);
  });

  afterAll(async () => {
    for (const peer of [...clients, ...upgraded]) peer.socket.destroy();
    await wstap?.stop();
    await upstream?.close();
  });

  it('relays every byte unchanged both ways, stays open, and records the first error of each direction', async () => {
    let runs = 0;
    const seen = new Set<string>();
    await fc.assert(
      fc.asyncProperty(
        fc.boolean().chain((deflate) =>
          fc.record({ deflate: fc.constant(deflate), client: sideArb('client', deflate), upstream: sideArb('upstream', deflate) }),
        ),
        async ({ deflate, client: clientPlan, upstream: upstreamPlan }) => {
          const url = `/hostile/${++runs}`;
          const [client, server] = await Promise.all([openClient(wstap.port, url, deflate), nextUpstream()]);
          clients.push(client);
          const toUpstream = bytesOf(clientPlan, 'client');
          const toClient = bytesOf(upstreamPlan, 'upstream');

          await Promise.all([
            sendChunked(client.socket, toUpstream, clientPlan.cuts, clientPlan.pauses),
            sendChunked(server.socket, toClient, upstreamPlan.cuts, upstreamPlan.pauses),
            waitForBytes(server, toUpstream.length, `${url} upstream`),
            waitForBytes(client, toClient.length, `${url} client`),
          ]);
          // Everything, the probe behind the invalid frame included, went through, and nobody hung up.
          expect(receivedBytes(server)).toEqual(toUpstream);
          expect(receivedBytes(client)).toEqual(toClient);
          expect({ client: client.ended, upstream: server.ended }).toEqual({ client: false, upstream: false });

          client.socket.end();
          await Promise.all([client.closed, server.closed]);
          // Nothing was added on the way out either.
          expect(receivedBytes(server)).toEqual(toUpstream);
          expect(receivedBytes(client)).toEqual(toClient);

          const { conn, events } = await captureOfClosed(wstap, (all) => connOfUrl(all, url), 10_000);
          for (const [side, plan] of [['client', clientPlan], ['upstream', upstreamPlan]] as const) {
            const errors = ofConn(events, conn, 'ws.protocol-error').filter((e) => e.side === side);
            const frames = ofConn(events, conn, 'ws.frame').filter((e) => e.side === side);
            const { specs, wires, prefix } = plan.c;
            const expected = specs.map((spec, i) => ({
              index: i,
              offset: wires.slice(0, i).reduce((sum, w) => sum + w.length, 0),
              opcode: spec.opcode,
            }));
            if (plan.withError) {
              seen.add(`${side}: ${plan.cls.name}`);
              expect(errors.map((e) => ({ code: e.code, offset: e.offset, frameIndex: e.frameIndex }))).toEqual([
                { code: plan.cls.code, offset: prefix.length, frameIndex: specs.length },
              ]);
            } else {
              expect(errors).toEqual([]);
              expected.push({ index: specs.length, offset: prefix.length, opcode: 9 }); // the probe
            }
            expect(frames.map((f) => ({ index: f.index, offset: f.offset, opcode: f.opcode }))).toEqual(expected);
          }
        },
      ),
      // Real sockets: a shrink would take minutes, so report the first failing case as generated.
      { numRuns: 20, endOnFailure: true },
    );
    expect(runs).toBe(20);
    // Both directions met invalid frames (the per-class coverage is the unit test's job).
    expect([...seen].some((s) => s.startsWith('client: '))).toBe(true);
    expect([...seen].some((s) => s.startsWith('upstream: '))).toBe(true);
  }, 60_000);
});
