import { closeNarration } from '../../src/analysis/event-narrator.js';
import { describe, it, expect } from 'vitest';
import { ConnectionTracker, attributionOf } from '../../src/analysis/connection-tracker.js';
import {
  frameEvent,
  handshakeBodyEvent,
  handshakeRequestEvent as handshakeRequest,
  handshakeResponseEvent as handshakeResponse,
  httpResponseEvent,
} from '../support/event-fixtures.js';
import type {
  CaptureEvent,
  ConnCloseEvent,
  ConnOpenEvent,
  FrameEvent,
  HandshakeRequestEvent,
  HandshakeResponseEvent,
  Idle,
  Side,
} from '../../src/capture/events.js';

const T0 = 1_700_000_000_000;

function open(conn: number, t = T0, mode: 'http' | 'tcp' = 'http'): ConnOpenEvent {
  return { kind: 'conn.open', t, conn, mode, remoteAddress: '127.0.0.1', remotePort: 40000 + conn, localPort: 8066 };
}

function close(conn: number, t: number): ConnCloseEvent {
  return { kind: 'conn.close', t, conn, bytes: { fromClient: 321, fromUpstream: 654 } };
}



function frame(conn: number, t: number, side: Side, index: number, opcode: number, length: number, extra: Partial<FrameEvent> = {}): FrameEvent {
  return frameEvent({ conn, t, side, index, offset: index * 10, opcode, length, ...extra });
}

const idleAtClose: Idle = { client: 45_000, upstream: 3 };

/** A complete WebSocket connection where the upstream closes first. */
function wsConnection(conn: number): CaptureEvent[] {
  const ping = Buffer.from('hb').toString('base64');
  return [
    open(conn, T0),
    handshakeRequest(conn, T0 + 1),
    handshakeResponse(conn, T0 + 3.5),
    frame(conn, T0 + 10, 'client', 0, 1, 5),
    { kind: 'ws.message', t: T0 + 10, conn, side: 'client', opcode: 1, tEnd: T0 + 10, firstFrame: 0, frames: 1, wireLength: 5, compressed: false, size: 5, preview: '', previewTruncated: false },
    frame(conn, T0 + 20, 'upstream', 0, 2, 100),
    frame(conn, T0 + 30, 'upstream', 1, 9, 2, { preview: ping }),
    frame(conn, T0 + 37.25, 'client', 1, 10, 2, { preview: ping }),
    frame(conn, T0 + 50, 'upstream', 2, 8, 5, { closeCode: 1001, closeReason: 'bye', idle: idleAtClose }),
    frame(conn, T0 + 51, 'client', 2, 8, 2, { closeCode: 1001, idle: { client: 0.5, upstream: 1 } }),
    { kind: 'tcp.fin', t: T0 + 52, conn, side: 'upstream', idle: { client: 1, upstream: 2 } },
    { kind: 'tcp.fin', t: T0 + 53, conn, side: 'client', idle: { client: 2, upstream: 1 } },
    close(conn, T0 + 54),
  ];
}

describe('ConnectionTracker on a WebSocket connection', () => {
  it('goes handshaking -> open -> half-closed -> closed', () => {
    const tracker = new ConnectionTracker();
    const states: string[] = [];
    for (const e of wsConnection(1)) {
      const s = tracker.apply(e);
      expect(s).not.toBeNull();
      states.push(`${e.kind}:${s?.state}`);
    }
    expect(states).toStrictEqual([
      'conn.open:handshaking',
      'ws.handshake.request:handshaking',
      'ws.handshake.response:open',
      'ws.frame:open',
      'ws.message:open',
      'ws.frame:open',
      'ws.frame:open',
      'ws.frame:open',
      'ws.frame:half-closed',
      'ws.frame:half-closed',
      'tcp.fin:half-closed',
      'tcp.fin:half-closed',
      'conn.close:closed',
    ]);
  });

  it('keeps the handshake, byte totals and close time', () => {
    const tracker = new ConnectionTracker();
    const events = wsConnection(1);
    for (const e of events) tracker.apply(e);
    const s = tracker.get(1);
    expect(s?.open).toStrictEqual(events[0]);
    expect(s?.handshakeRequest).toStrictEqual(events[1]);
    expect(s?.handshakeResponse).toStrictEqual(events[2]);
    expect(s?.bytes).toStrictEqual({ fromClient: 321, fromUpstream: 654 });
    expect(s?.closedAt).toBe(T0 + 54);
    expect(s?.upstreamError).toBeNull();
    expect(s?.httpExchanges).toBe(0);
  });

  it('an interim response (103) before the 101 is upstream activity, and the handshake stays the 101', () => {
    const tracker = new ConnectionTracker();
    const events = wsConnection(1);
    const interim: CaptureEvent = {
      kind: 'ws.handshake.interim', t: T0 + 2, conn: 1, statusCode: 103, reason: 'Early Hints', httpVersion: '1.1', rawHeaders: [], headLength: 30, waitMs: 1,
    };
    tracker.apply(events[0]!);
    tracker.apply(events[1]!);
    const s = tracker.apply(interim);
    expect(s?.state).toBe('handshaking');
    expect(s?.lastActivityAt.upstream).toBe(T0 + 2);
    expect(s?.handshakeResponse).toBeNull();
    for (const e of events.slice(2)) tracker.apply(e);
    expect(tracker.get(1)?.handshakeResponse).toStrictEqual(events[2]);
  });

  it('counts frames, messages and payload bytes per side', () => {
    const tracker = new ConnectionTracker();
    for (const e of wsConnection(1)) tracker.apply(e);
    const s = tracker.get(1);
    expect(s?.directions.client).toStrictEqual({ frames: 3, messages: 1, payloadBytes: 5 + 2 + 2, lastFrameAt: T0 + 51 });
    expect(s?.directions.upstream).toStrictEqual({ frames: 3, messages: 0, payloadBytes: 100 + 2 + 5, lastFrameAt: T0 + 50 });
  });

  it('records ping round trips', () => {
    const tracker = new ConnectionTracker();
    for (const e of wsConnection(1)) tracker.apply(e);
    const s = tracker.get(1);
    expect(s?.pings).toStrictEqual([{ from: 'upstream', rttMs: 7.25, pingAt: T0 + 30, pongAt: T0 + 37.25 }]);
    expect(s?.pingPairing.pending).toBe(0);
    expect(s?.pingPairing.unsolicitedPongs).toBe(0);
  });

  it('keeps the close evidence in recording order', () => {
    const tracker = new ConnectionTracker();
    for (const e of wsConnection(1)) tracker.apply(e);
    const s = tracker.get(1);
    expect(s?.evidence.map((e) => `${e.side} ${e.kind} ${e.t - T0}`)).toStrictEqual([
      'upstream close-frame 50',
      'client close-frame 51',
      'upstream fin 52',
      'client fin 53',
    ]);
    expect(s?.evidence[0]).toStrictEqual({ side: 'upstream', kind: 'close-frame', t: T0 + 50, code: 1001, reason: 'bye', idle: idleAtClose });
  });

  it('attributes the close to the side of the earliest evidence', () => {
    const tracker = new ConnectionTracker();
    for (const e of wsConnection(1)) tracker.apply(e);
    const s = tracker.get(1);
    if (!s) throw new Error('connection 1 not tracked');
    const attribution = attributionOf(s);
    expect(attribution.closedBy).toBe('upstream');
    expect(attribution.first?.kind).toBe('close-frame');
    expect(attribution.idleBeforeCloseMs).toStrictEqual(idleAtClose);
  });

  it('attributes by time when evidence is recorded out of order', () => {
    const tracker = new ConnectionTracker();
    tracker.apply(open(1));
    tracker.apply(handshakeRequest(1, T0 + 1));
    tracker.apply(handshakeResponse(1, T0 + 2));
    tracker.apply({ kind: 'tcp.fin', t: T0 + 9, conn: 1, side: 'upstream', idle: { client: 0, upstream: 0 } });
    tracker.apply({ kind: 'tcp.rst', t: T0 + 8.5, conn: 1, side: 'client', idle: { client: 5, upstream: 0 } });
    const s = tracker.get(1);
    if (!s) throw new Error('connection 1 not tracked');
    expect(s.evidence.map((e) => e.side)).toStrictEqual(['upstream', 'client']);
    expect(attributionOf(s).closedBy).toBe('client');
  });

  it('keeps a bounded list of evidence when a peer sends close frame after close frame, and still attributes exactly', () => {
    const tracker = new ConnectionTracker();
    tracker.apply(open(1));
    tracker.apply(handshakeRequest(1, T0 + 1));
    tracker.apply(handshakeResponse(1, T0 + 2));
    // 10,000 client close frames: unbounded, this list grew ~180 bytes a frame (8 bytes on the wire).
    for (let i = 0; i < 10_000; i++) tracker.apply(frame(1, T0 + 100 + i, 'client', i, 8, 2, { closeCode: 1000 }));
    // The upstream's close frame began before all of them (its first byte came first) and is recorded last.
    tracker.apply(frame(1, T0 + 50, 'upstream', 0, 8, 2, { closeCode: 1001 }));
    tracker.apply(frame(1, T0 + 20_000, 'upstream', 1, 8, 2, { closeCode: 1001 }));
    tracker.apply({ kind: 'tcp.fin', t: T0 + 20_001, conn: 1, side: 'client', idle: { client: 0, upstream: 0 } });
    const s = tracker.get(1);
    if (!s) throw new Error('connection 1 not tracked');
    // The first 32, then only the first of a side not yet seen.
    expect(s.evidence).toHaveLength(33);
    expect(s.evidence.slice(0, 32).every((e) => e.side === 'client' && e.kind === 'close-frame')).toBe(true);
    expect(s.evidence[32]).toMatchObject({ side: 'upstream', t: T0 + 50, code: 1001 });
    expect(s.evidenceDropped).toBe(10_000 - 32 + 1 + 1);
    expect(attributionOf(s).closedBy).toBe('upstream');
    tracker.apply({ kind: 'conn.close', t: T0 + 20_002, conn: 1, bytes: { fromClient: 80_000, fromUpstream: 8 } });
    // The close line says how many more there were, and where they are.
    const line = closeNarration(s);
    expect(line.msg).toContain(' and 9970 more in the capture; frames client 10000, upstream 2');
    expect(line.fields.evidenceDropped).toBe(9970);
  });

  it('has no attribution before any evidence', () => {
    const tracker = new ConnectionTracker();
    const s = tracker.apply(open(1));
    if (!s) throw new Error('connection 1 not tracked');
    expect(attributionOf(s)).toStrictEqual({ closedBy: null, first: null, idleBeforeCloseMs: null });
  });

  it('moves a connection from live to closed', () => {
    const tracker = new ConnectionTracker();
    const events = wsConnection(1);
    for (const e of events.slice(0, -1)) tracker.apply(e);
    expect([...tracker.live].map((s) => s.conn)).toStrictEqual([1]);
    expect([...tracker.closed]).toStrictEqual([]);
    tracker.apply(events.at(-1) as CaptureEvent);
    expect([...tracker.live]).toStrictEqual([]);
    expect([...tracker.closed].map((s) => s.conn)).toStrictEqual([1]);
  });

  it('tracks interleaved connections independently', () => {
    const tracker = new ConnectionTracker();
    const a = wsConnection(1);
    const b = wsConnection(2);
    for (let i = 0; i < a.length; i++) {
      tracker.apply(a[i] as CaptureEvent);
      if (i < 5) tracker.apply(b[i] as CaptureEvent);
    }
    expect(tracker.get(1)?.state).toBe('closed');
    expect(tracker.get(2)?.state).toBe('open');
    expect(tracker.get(2)?.directions.client.frames).toBe(1);
    expect(tracker.get(2)?.directions.upstream.frames).toBe(0);
    expect(tracker.get(2)?.evidence).toStrictEqual([]);
  });

  it('starts a tcp-mode connection open', () => {
    const tracker = new ConnectionTracker();
    expect(tracker.apply(open(7, T0, 'tcp'))?.state).toBe('open');
  });

  it('goes half-closed on a fin when open', () => {
    const tracker = new ConnectionTracker();
    tracker.apply(open(7, T0, 'tcp'));
    expect(tracker.apply({ kind: 'tcp.fin', t: T0 + 1, conn: 7, side: 'client', idle: { client: 0, upstream: 0 } })?.state).toBe('half-closed');
  });
});

describe('ConnectionTracker on plain HTTP', () => {
  it('counts keep-alive exchanges, remembers the first URL and the current request', () => {
    const tracker = new ConnectionTracker();
    tracker.apply(open(4));
    const s1 = tracker.apply({ kind: 'http.request', t: T0 + 1, conn: 4, exchange: 1, method: 'GET', url: '/first', httpVersion: '1.1', rawHeaders: [] });
    expect(s1?.state).toBe('open');
    expect(s1?.httpExchanges).toBe(1);
    expect(s1?.firstRequestUrl).toBe('/first');
    expect(s1?.currentRequest).toStrictEqual({ exchange: 1, method: 'GET', url: '/first' });
    tracker.apply(httpResponseEvent({ conn: 4, t: T0 + 5, exchange: 1 }));
    const s2 = tracker.apply({ kind: 'http.request', t: T0 + 10, conn: 4, exchange: 2, method: 'POST', url: '/second', httpVersion: '1.1', rawHeaders: [] });
    expect(s2?.httpExchanges).toBe(2);
    expect(s2?.firstRequestUrl).toBe('/first');
    expect(s2?.currentRequest).toStrictEqual({ exchange: 2, method: 'POST', url: '/second' });
    expect(s2?.handshakeRequest).toBeNull();
  });

  it('keeps the upstream error', () => {
    const tracker = new ConnectionTracker();
    tracker.apply(open(4));
    tracker.apply({ kind: 'http.request', t: T0 + 1, conn: 4, exchange: 1, method: 'GET', url: '/', httpVersion: '1.1', rawHeaders: [] });
    const error = { kind: 'http.error', t: T0 + 2, conn: 4, exchange: 1, stage: 'connect', code: 'ECONNREFUSED', message: 'connect ECONNREFUSED', answeredStatus: 502 } as const;
    expect(tracker.apply(error)?.upstreamError).toStrictEqual(error);
  });
});

describe('ConnectionTracker bounds and unknown connections', () => {
  it('keeps a connection it never saw open with what is known, marked as missing its beginning', () => {
    const tracker = new ConnectionTracker();
    tracker.apply(open(1));
    const seen = tracker.apply(frame(99, T0 + 1, 'client', 0, 1, 5));
    expect(seen?.missing).toStrictEqual({ beginning: true, until: T0 + 1, heardFrom: { client: true, upstream: false }, closeJudgeable: null });
    // Nothing is made up: no address, no handshake, the open time is the first event read.
    expect(seen?.open).toMatchObject({ t: T0 + 1, remoteAddress: '', remotePort: 0 });
    expect(seen?.handshakeRequest).toBeNull();
    expect(seen?.state).toBe('open');
    tracker.apply({ kind: 'tcp.fin', t: T0 + 2, conn: 99, side: 'upstream', idle: { client: 1, upstream: 2 } });
    const closed = tracker.apply(close(99, T0 + 3));
    expect(closed?.state).toBe('closed');
    expect(closed?.directions.client.frames).toBe(1);
    expect([...tracker.closed].map((s) => s.conn)).toStrictEqual([99]);
    expect(tracker.get(1)?.directions.client.frames).toBe(0);
    // The upstream's FIN is the first evidence read, but the client's own could be in the part that is missing.
    const attribution = attributionOf(closed as NonNullable<typeof closed>);
    expect(attribution.closedBy).toBeNull();
    expect(attribution.undecided).toMatch(/beginning is not in the capture/);
    expect(closeNarration(closed as NonNullable<typeof closed>).msg).toMatch(/^#99 closed after at least .* who closed first is unknown: .*evidence seen: upstream fin/);
  });

  it('judges who closed a connection missing its beginning when both sides spoke after the missing part', () => {
    const tracker = new ConnectionTracker();
    tracker.apply(frame(7, T0 + 1, 'client', 0, 1, 5));
    tracker.apply(frame(7, T0 + 2, 'upstream', 0, 1, 5));
    tracker.apply({ kind: 'tcp.fin', t: T0 + 3, conn: 7, side: 'upstream', idle: { client: 2, upstream: 1 } });
    const s = tracker.apply(close(7, T0 + 4));
    expect(s?.missing?.closeJudgeable).toBe(true);
    expect(attributionOf(s as NonNullable<typeof s>).closedBy).toBe('upstream');
  });

  it('stops judging who closed a connection open across a capture gap until both sides speak again', () => {
    const tracker = new ConnectionTracker();
    tracker.apply(open(1));
    tracker.apply(open(2));
    tracker.apply({ kind: 'capture.gap', t: T0 + 10, from: T0 + 5, lostEvents: 0, code: 'segment-missing', missingSegments: [3] });
    tracker.apply({ kind: 'tcp.fin', t: T0 + 11, conn: 1, side: 'client', idle: { client: 0, upstream: 0 } });
    tracker.apply(frame(2, T0 + 11, 'client', 0, 1, 5));
    tracker.apply(frame(2, T0 + 12, 'upstream', 0, 1, 5));
    tracker.apply({ kind: 'tcp.fin', t: T0 + 13, conn: 2, side: 'client', idle: { client: 0, upstream: 0 } });
    const one = tracker.apply(close(1, T0 + 14));
    const two = tracker.apply(close(2, T0 + 15));
    expect(one?.missing?.beginning).toBe(false);
    expect(attributionOf(one as NonNullable<typeof one>).closedBy).toBeNull();
    expect(attributionOf(two as NonNullable<typeof two>).closedBy).toBe('client');
  });

  it('a gap that lost no event (the disk guard paused with nothing to record) hides nothing: the closer is still judged', () => {
    const tracker = new ConnectionTracker();
    tracker.apply(open(1));
    tracker.apply({ kind: 'capture.gap', t: T0 + 10, from: T0 + 5, lostEvents: 0, code: 'MIN_FREE' });
    tracker.apply({ kind: 'tcp.fin', t: T0 + 11, conn: 1, side: 'client', idle: { client: 0, upstream: 0 } });
    const one = tracker.apply(close(1, T0 + 14));
    expect(one?.missing).toBeNull();
    expect(attributionOf(one as NonNullable<typeof one>).closedBy).toBe('client');
    // With events lost it is a gap like any other.
    const lossy = new ConnectionTracker();
    lossy.apply(open(1));
    lossy.apply({ kind: 'capture.gap', t: T0 + 10, from: T0 + 5, lostEvents: 4, code: 'MIN_FREE' });
    lossy.apply({ kind: 'tcp.fin', t: T0 + 11, conn: 1, side: 'client', idle: { client: 0, upstream: 0 } });
    const two = lossy.apply(close(1, T0 + 14));
    expect(attributionOf(two as NonNullable<typeof two>).closedBy).toBeNull();
  });

  it('ignores session events', () => {
    const tracker = new ConnectionTracker();
    expect(tracker.apply({ kind: 'session.end', t: T0, reason: 'x', droppedEvents: 0 })).toBeNull();
  });

  it('ignores events for a connection after it closed', () => {
    const tracker = new ConnectionTracker();
    for (const e of wsConnection(1)) tracker.apply(e);
    expect(tracker.apply(frame(1, T0 + 100, 'client', 3, 1, 50))).toBeNull();
    expect(tracker.get(1)?.directions.client.frames).toBe(3);
    expect(tracker.get(1)?.state).toBe('closed');
  });

  it('forgets the oldest closed connections beyond maxClosed', () => {
    const tracker = new ConnectionTracker({ maxClosed: 2 });
    for (const conn of [1, 2, 3]) tracker.apply(open(conn, T0 + conn));
    // Close out of opening order: 2, then 1, then 3.
    tracker.apply(close(2, T0 + 10));
    tracker.apply(close(1, T0 + 11));
    expect([...tracker.closed].map((s) => s.conn)).toStrictEqual([2, 1]);
    tracker.apply(close(3, T0 + 12));
    expect([...tracker.closed].map((s) => s.conn)).toStrictEqual([1, 3]);
    expect(tracker.get(2)).toBeUndefined();
    expect(tracker.get(1)?.state).toBe('closed');
    expect(tracker.get(3)?.state).toBe('closed');
  });

  it('never forgets live connections because of maxClosed', () => {
    const tracker = new ConnectionTracker({ maxClosed: 1 });
    for (const conn of [1, 2, 3, 4]) tracker.apply(open(conn));
    tracker.apply(close(1, T0 + 1));
    tracker.apply(close(2, T0 + 2));
    expect([...tracker.live].map((s) => s.conn)).toStrictEqual([3, 4]);
    expect([...tracker.closed].map((s) => s.conn)).toStrictEqual([2]);
  });

  it('keeps at most 32 ping round trips, newest last', () => {
    const tracker = new ConnectionTracker();
    tracker.apply(open(1));
    tracker.apply(handshakeResponse(1, T0 + 1));
    for (let i = 0; i < 40; i++) {
      const payload = Buffer.from(`p${i}`).toString('base64');
      tracker.apply(frame(1, T0 + 100 * i, 'client', 2 * i, 9, 3, { preview: payload }));
      tracker.apply(frame(1, T0 + 100 * i + i + 1, 'upstream', 2 * i, 10, 3, { preview: payload }));
    }
    const pings = tracker.get(1)?.pings ?? [];
    expect(pings).toHaveLength(32);
    expect(pings[0]?.rttMs).toBe(9);
    expect(pings.at(-1)?.rttMs).toBe(40);
  });
});

describe('ConnectionTracker: the body of a refused handshake', () => {
  it('keeps the first ws.handshake.body on the summary, without counting it as activity', () => {
    const tracker = new ConnectionTracker();
    tracker.apply(open(1));
    tracker.apply(handshakeRequest(1, T0 + 1));
    tracker.apply(handshakeResponse(1, T0 + 2, { statusCode: 400, reason: 'Bad Request', upgraded: false }));
    expect(tracker.get(1)?.handshakeBody).toBeNull();
    const body = handshakeBodyEvent(1, T0 + 50, 'Origin not allowed\n');
    tracker.apply(body);
    tracker.apply(handshakeBodyEvent(1, T0 + 60, 'again'));
    const s = tracker.get(1);
    expect(s?.handshakeBody).toBe(body);
    expect(s?.lastActivityAt.upstream).toBe(T0 + 2);
    tracker.apply(close(1, T0 + 70));
    expect(tracker.get(1)?.handshakeBody).toBe(body);
  });
});
