import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { CaptureEvent } from '../../src/capture/events.js';
import { SessionClock } from '../../src/capture/session-clock.js';
import { ConnectionContext } from '../../src/relay/connection-context.js';
import { DuplexRelay, type ChunkObserver } from '../../src/relay/duplex-relay.js';
import { socketPair } from '../support/socket-pair.js';

/**
 * Nothing the observer does may throw into a socket handler: a fault stops
 * observing that connection (one observer.fault), its bytes keep flowing and
 * its close is still recorded. Real loopback sockets; the observer and the
 * sink are ours to make fail.
 */

/** Everything `socket` receives until its peer's FIN. */
function readAll(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve) => socket.once('end', () => resolve(Buffer.concat(chunks))));
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

const tags = (events: CaptureEvent[]): string[] => events.map((e) => `${e.kind}${'side' in e && e.side ? ` ${e.side}` : ''}`);

describe('observer containment', () => {
  let server: net.Server;
  const sockets: net.Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await new Promise((resolve) => server?.close(resolve));
  });

  /** client <-> [clientEnd | relay | upstreamEnd] <-> upstream */
  async function relayed(ctx: ConnectionContext, options: ConstructorParameters<typeof DuplexRelay>[3]) {
    server = net.createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const [client, clientEnd] = await socketPair(server);
    const [upstreamEnd, upstream] = await socketPair(server);
    sockets.push(client, clientEnd, upstreamEnd, upstream);
    ctx.relayed = true;
    let onClosed: () => void = () => undefined;
    const closed = new Promise<void>((resolve) => (onClosed = resolve));
    const relay = new DuplexRelay(ctx, clientEnd, upstreamEnd, {
      ...options,
      onClosed: () => {
        options.onClosed?.();
        onClosed();
      },
    });
    relay.start();
    return { client, upstream, closed };
  }

  /** Writes `data` in pieces with a turn of the event loop between them, so the relay sees many chunks; then FIN. */
  async function trickle(socket: net.Socket, data: Buffer, pieces: number): Promise<void> {
    const size = Math.ceil(data.length / pieces);
    for (let at = 0; at < data.length; at += size) {
      socket.write(data.subarray(at, at + size));
      await new Promise((r) => setTimeout(r, 2));
    }
    socket.end();
  }

  it('an observer that throws mid-stream: every byte still relayed both ways, one observer.fault, close evidence and conn.close still recorded', async () => {
    const events: CaptureEvent[] = [];
    const ctx = new ConnectionContext(7, new SessionClock(), { record: (e) => events.push(e) });
    let seen = 0;
    const observe: ChunkObserver = (side, chunk, t) => {
      seen++;
      if (seen === 4) throw new TypeError('decoder bug');
      ctx.record({ kind: 'ws.inflate-error', t, conn: 7, side, message: `chunk ${chunk.length}` });
    };
    const { client, upstream, closed } = await relayed(ctx, { observe });
    const up = pattern(200_000, 1);
    const down = pattern(150_000, 2);
    const upstreamGot = readAll(upstream);
    const clientGot = readAll(client);
    await Promise.all([trickle(client, up, 20), trickle(upstream, down, 20)]);
    expect((await upstreamGot).equals(up)).toBe(true);
    expect((await clientGot).equals(down)).toBe(true);
    await closed;

    const faults = events.filter((e) => e.kind === 'observer.fault');
    expect(faults).toHaveLength(1);
    expect(faults[0]).toMatchObject({ conn: 7, where: 'observe', message: 'decoder bug' });
    expect(ctx.observing).toBe(false);
    // Observed chunks before the fault only; after it, close evidence alone.
    const after = events.slice(events.indexOf(faults[0]!) + 1);
    expect(tags(after).sort()).toEqual(['conn.close', 'tcp.fin client', 'tcp.fin upstream']);
    expect(seen).toBe(4);
    const close = events.at(-1);
    expect(close).toMatchObject({ kind: 'conn.close', bytes: { fromClient: up.length, fromUpstream: down.length } });
  });

  it('a sink that throws on one kind of event: that connection stops being observed, the throw never reaches the caller', () => {
    const events: CaptureEvent[] = [];
    const ctx = new ConnectionContext(3, new SessionClock(), {
      record: (e) => {
        if (e.kind === 'ws.inflate-error') throw new RangeError('cannot serialise');
        events.push(e);
      },
    });
    const t = ctx.now();
    ctx.record({ kind: 'ws.inflate-error', t, conn: 3, side: 'client', message: 'x' });
    ctx.record({ kind: 'ws.inflate-error', t, conn: 3, side: 'client', message: 'y' });
    ctx.observe(() => {
      throw new Error('never called: observing stopped');
    }, 'client', Buffer.from('z'), t, t);
    ctx.recordFin('client');
    ctx.recordClose();
    expect(tags(events)).toEqual(['observer.fault', 'tcp.fin client', 'conn.close']);
    expect(events[0]).toMatchObject({ where: 'record ws.inflate-error', message: 'cannot serialise' });
  });

  it('a sink that refuses even the fault and the close: nothing escapes', () => {
    const ctx = new ConnectionContext(4, new SessionClock(), {
      record: () => {
        throw new Error('disk on fire');
      },
    });
    expect(() => {
      ctx.record({ kind: 'tcp.fin', t: ctx.now(), conn: 4, side: 'upstream', idle: { client: 0, upstream: 0 } });
      ctx.recordSocketError('client', Object.assign(new Error('reset'), { code: 'ECONNRESET' }));
      ctx.recordClose();
    }).not.toThrow();
    expect(ctx.observing).toBe(false);
  });

  it('a settle step that throws: conn.close is recorded at once and the relay lets go of the connection', async () => {
    const events: CaptureEvent[] = [];
    const ctx = new ConnectionContext(5, new SessionClock(), { record: (e) => events.push(e) });
    let released = false;
    const { client, upstream, closed } = await relayed(ctx, {
      observe: () => undefined,
      settle: () => {
        throw new Error('inflater bug at the end');
      },
      onClosed: () => (released = true),
    });
    upstream.resume();
    client.resume();
    client.end();
    upstream.end();
    await closed;
    expect(released).toBe(true);
    expect(tags(events).slice(0, 2).sort()).toEqual(['tcp.fin client', 'tcp.fin upstream']);
    expect(tags(events).slice(2)).toEqual(['observer.fault', 'conn.close']);
    expect(events.filter((e) => e.kind === 'observer.fault')).toEqual([expect.objectContaining({ where: 'settle' })]);
    expect(events.at(-1)?.kind).toBe('conn.close');
  });

  it('after a fault, settle still runs (to release what it holds) but the close is not held back for it', async () => {
    const events: CaptureEvent[] = [];
    const ctx = new ConnectionContext(6, new SessionClock(), { record: (e) => events.push(e) });
    let settleCalls = 0;
    const { client, upstream, closed } = await relayed(ctx, {
      observe: () => {
        throw new Error('first chunk fails');
      },
      // Never calls done: a broken observer must not keep conn.close from being recorded.
      settle: () => void settleCalls++,
    });
    upstream.resume();
    client.write('hello');
    client.end();
    upstream.end();
    await closed;
    expect(settleCalls).toBe(1);
    expect(events.filter((e) => e.kind === 'observer.fault')).toHaveLength(1);
    expect(events.at(-1)?.kind).toBe('conn.close');
  });
});
