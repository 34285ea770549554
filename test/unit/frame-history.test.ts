import { describe, it, expect } from 'vitest';
import { FrameHistory } from '../../src/analysis/frame-history.js';
import type { FrameEvent, MessageEvent, Side } from '../../src/capture/events.js';
import { frameEvent } from '../support/event-fixtures.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

function messageEvent(fields: { conn: number; t: number; side: Side; firstFrame: number } & Partial<MessageEvent>): MessageEvent {
  return {
    kind: 'ws.message',
    opcode: 1,
    tEnd: fields.t,
    frames: 1,
    wireLength: 10,
    compressed: true,
    size: 42,
    preview: b64('inflated'),
    previewTruncated: false,
    ...fields,
  };
}

/** Frames numbered per connection and side, as the decoder numbers them. */
function feeder(h: FrameHistory): (conn: number, side?: Side, extra?: Partial<FrameEvent>) => FrameEvent {
  const next = new Map<string, number>();
  let t = 1000;
  return (conn, side = 'client', extra = {}) => {
    const key = `${conn}/${side}`;
    const index = next.get(key) ?? 0;
    next.set(key, index + 1);
    const e = frameEvent({ conn, t: t++, side, opcode: 2, index, length: index, ...extra });
    h.apply(e);
    return e;
  };
}

describe('FrameHistory', () => {
  it('keeps frames oldest first, per connection', () => {
    const h = new FrameHistory();
    const feed = feeder(h);
    feed(1, 'client', { opcode: 1, preview: b64('hi') });
    feed(2, 'upstream');
    feed(1, 'upstream', { opcode: 9, fin: true });
    feed(1, 'client', { opcode: 8, closeCode: 1000, closeReason: 'bye' });

    const frames = h.framesOf(1);
    expect(frames.map((f) => [f.side, f.index, f.opcode])).toStrictEqual([
      ['client', 0, 1],
      ['upstream', 0, 9],
      ['client', 1, 8],
    ]);
    expect(frames[0]).toStrictEqual({
      t: 1000,
      side: 'client',
      index: 0,
      opcode: 1,
      fin: true,
      rsv1: false,
      length: 0,
      preview: b64('hi'),
      previewTruncated: false,
    });
    expect(frames[2]?.closeCode).toBe(1000);
    expect(frames[2]?.closeReason).toBe('bye');
    expect(h.framesOf(2)).toHaveLength(1);
    expect(h.size).toBe(4);
    expect(h.droppedOf(1)).toBe(0);
  });

  it('answers [] and 0 for unknown connections', () => {
    const h = new FrameHistory();
    expect(h.framesOf(7)).toStrictEqual([]);
    expect(h.droppedOf(7)).toBe(0);
    expect(h.size).toBe(0);
  });

  it('ignores events other than frames and compressed messages', () => {
    const h = new FrameHistory();
    h.apply({ kind: 'conn.open', t: 1, conn: 1, mode: 'http', remoteAddress: '127.0.0.1', remotePort: 5, localPort: 6 });
    h.apply(messageEvent({ conn: 1, t: 2, side: 'client', firstFrame: 0 }));
    h.apply({ kind: 'tcp.fin', t: 3, conn: 1, side: 'client', idle: { client: 0, upstream: 0 } });
    expect(h.size).toBe(0);
    expect(h.framesOf(1)).toStrictEqual([]);
  });

  it('caps each connection and counts what it dropped', () => {
    const h = new FrameHistory({ perConnection: 5 });
    const feed = feeder(h);
    for (let i = 0; i < 12; i++) feed(1);
    feed(2);
    expect(h.framesOf(1).map((f) => f.index)).toStrictEqual([7, 8, 9, 10, 11]);
    expect(h.droppedOf(1)).toBe(7);
    expect(h.droppedOf(2)).toBe(0);
    expect(h.size).toBe(6);
  });

  it('keeps the cap exact across ring growth', () => {
    const h = new FrameHistory({ perConnection: 200 });
    const feed = feeder(h);
    for (let i = 0; i < 1000; i++) feed(1);
    const kept = h.framesOf(1).map((f) => f.index);
    expect(kept).toHaveLength(200);
    expect(kept[0]).toBe(800);
    expect(kept[199]).toBe(999);
    expect(h.droppedOf(1)).toBe(800);
  });

  it('keeps the globally newest frames within the total budget (round robin)', () => {
    const h = new FrameHistory({ total: 10_000 });
    const feed = feeder(h);
    let maxSize = 0;
    for (let round = 0; round < 100; round++) {
      for (let conn = 0; conn < 1000; conn++) {
        feed(conn);
        maxSize = Math.max(maxSize, h.size);
      }
    }
    expect(maxSize).toBe(10_000);
    expect(h.size).toBe(10_000);
    for (const conn of [0, 1, 500, 999]) {
      expect(h.framesOf(conn).map((f) => f.index)).toStrictEqual([90, 91, 92, 93, 94, 95, 96, 97, 98, 99]);
      expect(h.droppedOf(conn)).toBe(90);
    }
    expect(h.queued).toBeLessThanOrEqual(20_000);
  });

  it('evicts whole old connections first when they come one after another', () => {
    const h = new FrameHistory({ total: 10_000 });
    const feed = feeder(h);
    for (let conn = 0; conn < 1000; conn++) for (let i = 0; i < 100; i++) feed(conn);
    expect(h.size).toBe(10_000);
    expect(h.framesOf(899)).toStrictEqual([]);
    expect(h.droppedOf(899)).toBe(100);
    expect(h.framesOf(900)).toHaveLength(100);
    expect(h.framesOf(999).at(-1)?.index).toBe(99);
    expect(h.droppedOf(900)).toBe(0);
  });

  it('combines the per-connection cap and the global budget', () => {
    const h = new FrameHistory({ perConnection: 3, total: 5 });
    const feed = feeder(h);
    for (let i = 0; i < 10; i++) feed(1); // keeps 7, 8, 9
    feed(2);
    feed(2);
    expect(h.size).toBe(5);
    feed(2); // over budget: conn 1's oldest (7) goes
    expect(h.size).toBe(5);
    expect(h.framesOf(1).map((f) => f.index)).toStrictEqual([8, 9]);
    expect(h.droppedOf(1)).toBe(8);
    expect(h.framesOf(2).map((f) => f.index)).toStrictEqual([0, 1, 2]);
    feed(2); // conn 2 at its cap: drops its own oldest, the budget is not touched
    expect(h.framesOf(1).map((f) => f.index)).toStrictEqual([8, 9]);
    expect(h.framesOf(2).map((f) => f.index)).toStrictEqual([1, 2, 3]);
    expect(h.droppedOf(2)).toBe(1);
  });

  it('forget() drops a connection and frees its share of the budget', () => {
    const h = new FrameHistory({ total: 10 });
    const feed = feeder(h);
    for (let i = 0; i < 6; i++) feed(1);
    for (let i = 0; i < 4; i++) feed(2);
    h.forget(1);
    expect(h.size).toBe(4);
    expect(h.framesOf(1)).toStrictEqual([]);
    expect(h.droppedOf(1)).toBe(0);
    h.forget(1); // twice is harmless
    h.forget(42);
    expect(h.size).toBe(4);
    // The freed budget is reused without evicting conn 2, despite conn 1's stale queue entries.
    for (let i = 0; i < 6; i++) feed(3);
    expect(h.size).toBe(10);
    expect(h.framesOf(2)).toHaveLength(4);
    expect(h.droppedOf(2)).toBe(0);
    feed(3);
    expect(h.framesOf(2).map((f) => f.index)).toStrictEqual([1, 2, 3]);
  });

  it('starts afresh when a forgotten connection number shows up again', () => {
    const h = new FrameHistory({ total: 4 });
    const feed = feeder(h);
    for (let i = 0; i < 3; i++) feed(1);
    h.forget(1);
    feed(1);
    feed(2);
    feed(2);
    feed(2);
    expect(h.size).toBe(4);
    feed(2); // the oldest live record is conn 1's new frame, not a stale one
    expect(h.framesOf(1)).toStrictEqual([]);
    expect(h.framesOf(2)).toHaveLength(4);
  });

  it('attaches a compressed message to its first frame', () => {
    const h = new FrameHistory();
    const feed = feeder(h);
    feed(1, 'client', { opcode: 1, rsv1: true, fin: false }); // client 0: starts the message
    feed(1, 'upstream', { opcode: 1, rsv1: true }); // upstream 0
    feed(1, 'client', { opcode: 0 }); // client 1: continuation
    feed(1, 'client', { opcode: 9 }); // client 2: ping, after the message (inflation is async)
    h.apply(messageEvent({ conn: 1, t: 5000, side: 'client', firstFrame: 0, frames: 2, size: 300, preview: b64('{"a":1}'), previewTruncated: true }));

    const frames = h.framesOf(1);
    expect(frames[0]?.message).toStrictEqual({ preview: b64('{"a":1}'), previewTruncated: true, size: 300 });
    expect(frames.slice(1).every((f) => f.message === undefined)).toBe(true);

    h.apply(messageEvent({ conn: 1, t: 5001, side: 'upstream', firstFrame: 0, size: null, preview: '' }));
    expect(h.framesOf(1)[1]?.message).toStrictEqual({ preview: '', previewTruncated: false, size: null });
  });

  it('does not attach uncompressed messages, or to frames no longer kept', () => {
    const h = new FrameHistory({ perConnection: 2 });
    const feed = feeder(h);
    feed(1, 'client', { rsv1: true });
    h.apply(messageEvent({ conn: 1, t: 2, side: 'client', firstFrame: 0, compressed: false }));
    expect(h.framesOf(1)[0]?.message).toBeUndefined();

    feed(1, 'client', { rsv1: true });
    feed(1, 'client', { rsv1: true }); // index 0 is dropped now
    h.apply(messageEvent({ conn: 1, t: 3, side: 'client', firstFrame: 0 }));
    h.apply(messageEvent({ conn: 2, t: 3, side: 'client', firstFrame: 0 })); // unknown connection
    expect(h.framesOf(1).some((f) => f.message !== undefined)).toBe(false);
  });

  it('keeps its queue bounded under a single-connection flood', () => {
    const total = 1000;
    const h = new FrameHistory({ perConnection: 200, total });
    const e = frameEvent({ conn: 1, t: 0, side: 'upstream', opcode: 2 });
    let maxQueued = 0;
    for (let i = 0; i < 1_000_000; i++) {
      e.index = i;
      e.t = i;
      h.apply(e);
      if (h.queued > maxQueued) maxQueued = h.queued;
    }
    expect(h.size).toBe(200);
    expect(maxQueued).toBeLessThanOrEqual(2 * total);
    expect(h.droppedOf(1)).toBe(1_000_000 - 200);
    expect(h.framesOf(1).at(-1)?.index).toBe(999_999);
  });

  it('keeps its queue bounded while connections come and are forgotten', () => {
    const total = 500;
    const h = new FrameHistory({ perConnection: 50, total });
    const feed = feeder(h);
    let maxQueued = 0;
    for (let conn = 0; conn < 5000; conn++) {
      for (let i = 0; i < 20; i++) feed(conn);
      if (conn >= 3) h.forget(conn - 3);
      maxQueued = Math.max(maxQueued, h.queued);
    }
    expect(h.size).toBe(60);
    expect(maxQueued).toBeLessThanOrEqual(2 * total);
  });

  it('rejects nonsense bounds', () => {
    expect(() => new FrameHistory({ perConnection: 0 })).toThrow(RangeError);
    expect(() => new FrameHistory({ total: 1.5 })).toThrow('FrameHistory total must be a positive integer, got 1.5');
  });
});
