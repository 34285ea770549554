import { describe, it, expect } from 'vitest';
import type { HopTimeout } from '../../src/profiles/hop-timeout.js';
import type { CaptureEvent } from '../../src/capture/events.js';
import type { LiveActivity } from '../../src/capture/live-activity.js';
import { connectionRows, isFailed, rowKind } from '../../src/tui/connection-rows.js';
import {
  T0,
  b64,
  closeEvent,
  finEvent,
  fold,
  frameEvent,
  handshakeRequestEvent,
  handshakeResponseEvent,
  httpErrorEvent,
  httpRequestEvent,
  httpResponseEvent,
  messageEvent,
  openEvent,
  proxyCloseEvent,
  query,
  rowOf,
  rowsOf,
  summariesOf,
  wsOpened,
} from '../support/tui-fixtures.js';

const nginx60: HopTimeout = { hop: 'nginx', setting: 'proxy_read_timeout', seconds: 60, measures: 'both-idle' };

/** A WebSocket with traffic both ways and one answered ping (upstream pings, client pongs). */
function busyWs(conn: number, t = T0): CaptureEvent[] {
  const hb = b64('hb');
  return [
    ...wsOpened(conn, { t }),
    frameEvent({ conn, t: t + 1000, side: 'client', opcode: 1, index: 0, length: 5 }),
    messageEvent(conn, t + 1000, 'client', { wireLength: 5, size: 5 }),
    frameEvent({ conn, t: t + 5000, side: 'upstream', opcode: 2, index: 0, length: 100 }),
    frameEvent({ conn, t: t + 6000, side: 'upstream', opcode: 9, index: 1, length: 2, preview: hb }),
    frameEvent({ conn, t: t + 6007.25, side: 'client', opcode: 10, index: 1, length: 2, preview: hb }),
  ];
}

describe('connectionRows: row fields', () => {
  it('describes a live WebSocket connection', () => {
    const row = rowOf(busyWs(1), 1, query(T0 + 10_000));
    expect(row).toMatchObject({
      conn: 1,
      kind: 'ws',
      client: '192.0.2.7',
      path: '/api/v4/websocket',
      state: 'open',
      failed: false,
      ageMs: 10_000,
      frames: { client: 2, upstream: 2 },
      // No live activity and not closed: payload bytes from the frames.
      bytes: { client: 7, upstream: 102 },
      rttMs: 7.25,
      status: null,
      close: null,
      countdown: null,
      idleLevel: { client: 'ok', upstream: 'ok' },
    });
    // Last client byte at +6007.25 (the pong), last upstream byte at +6000 (the ping).
    expect(row.idle.client).toBeCloseTo(3992.75, 6);
    expect(row.idle.upstream).toBe(4000);
  });

  it('describes a connection whose beginning is not in the capture (a deleted segment) without making up an address or path', () => {
    const tail = busyWs(4).filter((e) => e.kind === 'ws.frame' || e.kind === 'ws.message');
    const row = rowOf([...tail, finEvent(4, T0 + 7000, 'upstream'), closeEvent(4, T0 + 7001)], 4, query(T0 + 10_000));
    expect(row).toMatchObject({ conn: 4, kind: 'ws', client: '?', path: '(beginning not in capture)', state: 'closed' });
    // Its age runs from its first event read (+1000), a lower bound.
    expect(row.ageMs).toBe(6001);
    // Both sides sent frames after the missing part, before the FIN: nothing earlier can be in it.
    expect(row.close?.by).toBe('upstream');
  });

  it('describes a plain HTTP connection by its request path and last status', () => {
    const events: CaptureEvent[] = [
      openEvent(2),
      httpRequestEvent(2, T0 + 1, { url: '/api/v4/users/me' }),
      httpResponseEvent({ conn: 2, t: T0 + 30, exchange: 1, statusCode: 404 }),
    ];
    const row = rowOf(events, 2, query(T0 + 1000));
    expect(row).toMatchObject({ conn: 2, kind: 'http', path: '/api/v4/users/me', state: 'open', failed: false, status: 404, close: null });
    expect(row.frames).toEqual({ client: 0, upstream: 0 });
    expect(row.idle).toEqual({ client: 999, upstream: 970 });
  });

  it('shows the latest request of a keep-alive connection', () => {
    const events: CaptureEvent[] = [
      openEvent(2),
      httpRequestEvent(2, T0 + 1, { url: '/first' }),
      httpResponseEvent({ conn: 2, t: T0 + 2, exchange: 1 }),
      httpRequestEvent(2, T0 + 3, { url: '/second', exchange: 2 }),
      httpResponseEvent({ conn: 2, t: T0 + 4, exchange: 2, statusCode: 304 }),
    ];
    const row = rowOf(events, 2, query(T0 + 10));
    expect(row.path).toBe('/second');
    expect(row.status).toBe(304);
  });

  it('describes a TCP-mode connection as (tcp), open from the start', () => {
    const events: CaptureEvent[] = [
      openEvent(3, { mode: 'tcp' }),
      frameEvent({ conn: 3, t: T0 + 100, side: 'client', opcode: 1, length: 3 }),
    ];
    const row = rowOf(events, 3, query(T0 + 1000));
    expect(row).toMatchObject({ conn: 3, kind: 'tcp', path: '(tcp)', state: 'open', failed: false, status: null });
    expect(row.idle).toEqual({ client: 900, upstream: 1000 });
  });

  it('rowKind tells ws, http and tcp apart', () => {
    const tracker = fold([...wsOpened(1), openEvent(2), httpRequestEvent(2, T0 + 1), openEvent(3, { mode: 'tcp' })]);
    expect([1, 2, 3].map((c) => rowKind(tracker.get(c)!))).toEqual(['ws', 'http', 'tcp']);
  });

  it('reports an upgraded but half-closed connection as half-closed', () => {
    const events = [...busyWs(1), frameEvent({ conn: 1, t: T0 + 7000, side: 'upstream', opcode: 8, index: 2, closeCode: 1000, length: 2 })];
    expect(rowOf(events, 1, query(T0 + 8000)).state).toBe('half-closed');
  });
});

describe('connectionRows: client address', () => {
  const headers = (extra: Array<[string, string]>): Array<[string, string]> => [['Host', 'chat.example'], ['Upgrade', 'websocket'], ...extra];

  it('prefers X-Real-IP', () => {
    const events = wsOpened(1, { headers: headers([['X-Forwarded-For', '198.51.100.1, 10.0.0.1'], ['X-Real-IP', ' 203.0.113.5 ']]) });
    expect(rowOf(events, 1, query(T0 + 10)).client).toBe('203.0.113.5');
  });

  it('falls back to the first X-Forwarded-For hop', () => {
    const events = wsOpened(1, { headers: headers([['x-forwarded-for', ' 198.51.100.1 , 10.0.0.1, 10.0.0.2']]) });
    expect(rowOf(events, 1, query(T0 + 10)).client).toBe('198.51.100.1');
  });

  it('takes the forwarded address from a plain HTTP request too', () => {
    const events: CaptureEvent[] = [openEvent(2), httpRequestEvent(2, T0 + 1, { rawHeaders: [['X-Real-IP', '203.0.113.77']] })];
    expect(rowOf(events, 2, query(T0 + 10)).client).toBe('203.0.113.77');
  });

  it('falls back to the socket peer when nginx named no client', () => {
    const events = wsOpened(1, { remoteAddress: '10.1.2.3', headers: headers([['X-Forwarded-For', '  ']]) });
    expect(rowOf(events, 1, query(T0 + 10)).client).toBe('10.1.2.3');
  });
});

describe('connectionRows: idle per direction', () => {
  it('derives idle from the events when there is no live activity', () => {
    const events = [
      ...wsOpened(1),
      frameEvent({ conn: 1, t: T0 + 1000, side: 'client', opcode: 1, length: 1 }),
      frameEvent({ conn: 1, t: T0 + 5000, side: 'upstream', opcode: 1, length: 1 }),
    ];
    expect(rowOf(events, 1, query(T0 + 10_000)).idle).toEqual({ client: 9000, upstream: 5000 });
  });

  it('uses the exact last byte from the activity probe when it is later than the events', () => {
    const events = [
      ...wsOpened(1),
      frameEvent({ conn: 1, t: T0 + 1000, side: 'client', opcode: 1, length: 1 }),
      frameEvent({ conn: 1, t: T0 + 5000, side: 'upstream', opcode: 1, length: 1 }),
    ];
    const activity: LiveActivity = {
      // Client: a byte after the last event (a partial frame). Upstream: older than the last event, so the event wins.
      lastByteAt: { client: T0 + 9500, upstream: T0 + 2000 },
      bytes: { fromClient: 4321, fromUpstream: 8765 },
    };
    const asked: number[] = [];
    const row = rowOf(events, 1, query(T0 + 10_000, { activity: (conn) => (asked.push(conn), conn === 1 ? activity : null) }));
    expect(asked).toContain(1);
    expect(row.idle).toEqual({ client: 500, upstream: 5000 });
    // Live byte counts win over payload sums.
    expect(row.bytes).toEqual({ client: 4321, upstream: 8765 });
  });

  it('falls back to the events when the probe knows nothing of the connection', () => {
    const row = rowOf(wsOpened(1), 1, query(T0 + 1000, { activity: () => null }));
    expect(row.idle).toEqual({ client: 999, upstream: 997 });
  });

  it('never reports negative idle when the clock is behind the last event', () => {
    const row = rowOf(wsOpened(1), 1, query(T0));
    expect(row.idle).toEqual({ client: 0, upstream: 0 });
    expect(row.ageMs).toBe(0);
  });

  it('shows a closed row the silence before its first close evidence, ignoring live activity', () => {
    const events = [
      ...busyWs(1),
      frameEvent({ conn: 1, t: T0 + 7000, side: 'upstream', opcode: 8, index: 2, length: 2, closeCode: 1000, idle: { client: 993, upstream: 1000 } }),
      finEvent(1, T0 + 7001, 'upstream'),
      closeEvent(1, T0 + 20_000, { fromClient: 11, fromUpstream: 22 }),
    ];
    const probe = (): LiveActivity => ({ lastByteAt: { client: T0 + 19_999, upstream: T0 + 19_999 }, bytes: { fromClient: 1, fromUpstream: 1 } });
    const late = rowOf(events, 1, query(T0 + 1_000_000, { activity: probe }));
    const later = rowOf(events, 1, query(T0 + 9_000_000, { activity: probe }));
    expect(late.state).toBe('closed');
    expect(late.ageMs).toBe(20_000);
    // The close frame's own idle (the evidence), not the time until conn.close.
    expect(late.idle).toEqual({ client: 993, upstream: 1000 });
    expect(late.bytes).toEqual({ client: 11, upstream: 22 });
    expect(later).toEqual(late);
  });
});

describe('connectionRows: sorting', () => {
  // #5 opened first but has a higher id; ids are the opening order in practice.
  const events: CaptureEvent[] = [
    // #5: live, idle 2s both ways, 10 payload bytes.
    ...wsOpened(5),
    frameEvent({ conn: 5, t: T0 + 8000, side: 'client', opcode: 1, length: 10 }),
    frameEvent({ conn: 5, t: T0 + 8000, side: 'upstream', opcode: 1, length: 0 }),
    // #2: live, client idle 9s, upstream idle 6s (both-way 6s), 500 bytes.
    ...wsOpened(2),
    frameEvent({ conn: 2, t: T0 + 1000, side: 'client', opcode: 1, length: 200 }),
    frameEvent({ conn: 2, t: T0 + 4000, side: 'upstream', opcode: 1, length: 300 }),
    // #9: closed long ago, most idle of all, 2000 bytes on the wire.
    ...wsOpened(9),
    finEvent(9, T0 + 50, 'client'),
    closeEvent(9, T0 + 60, { fromClient: 1000, fromUpstream: 1000 }),
    // #7: live, idle 1s, 500 bytes (ties with #2 on bytes).
    ...wsOpened(7),
    frameEvent({ conn: 7, t: T0 + 9000, side: 'client', opcode: 1, length: 250 }),
    frameEvent({ conn: 7, t: T0 + 9000, side: 'upstream', opcode: 1, length: 250 }),
  ];
  const ids = (sort: 'age' | 'idle' | 'bytes'): number[] => rowsOf(events, query(T0 + 10_000, { sort })).map((r) => r.conn);

  it('age: oldest connection (lowest id) first', () => {
    expect(ids('age')).toEqual([2, 5, 7, 9]);
  });

  it('idle: the live connection closest to a both-way idle timeout first, closed ones after', () => {
    expect(ids('idle')).toEqual([2, 5, 7, 9]);
    // Make #7 the most idle live one: it moves to the front, #9 stays last.
    const quiet = events.filter((e) => !(e.kind === 'ws.frame' && e.conn === 7));
    expect(rowsOf(quiet, query(T0 + 10_000, { sort: 'idle' })).map((r) => r.conn)).toEqual([7, 2, 5, 9]);
  });

  it('bytes: most bytes first, ties by id', () => {
    expect(ids('bytes')).toEqual([9, 2, 7, 5]);
  });

  it('does not depend on the order the summaries come in', () => {
    const tracker = fold(events);
    const reversed = summariesOf(tracker).reverse();
    for (const sort of ['age', 'idle', 'bytes'] as const) {
      expect(connectionRows(reversed, query(T0 + 10_000, { sort })).map((r) => r.conn)).toEqual(ids(sort));
    }
  });
});

describe('connectionRows: filter and HTTP visibility', () => {
  const events: CaptureEvent[] = [
    ...wsOpened(1, { url: '/api/v4/websocket', remoteAddress: '10.9.8.7' }),
    ...wsOpened(2, { url: '/socket.io/?EIO=4', remoteAddress: '172.16.0.2' }),
    openEvent(3),
    httpRequestEvent(3, T0 + 1, { url: '/api/v4/users/me', rawHeaders: [['X-Real-IP', '203.0.113.200']] }),
    ...wsOpened(4242, { url: '/chat/Room' }),
    frameEvent({ conn: 4242, t: T0 + 5, side: 'client', opcode: 8, closeCode: 1000, length: 2 }),
    ...wsOpened(42, { url: '/other' }),
    finEvent(42, T0 + 6, 'client'),
    closeEvent(42, T0 + 7),
    openEvent(7, { mode: 'tcp' }),
  ];
  const ids = (filter: string, showHttp = true): number[] =>
    rowsOf(events, query(T0 + 100, { filter, showHttp })).map((r) => r.conn);

  it('shows everything with an empty or blank filter', () => {
    expect(ids('')).toEqual([1, 2, 3, 7, 42, 4242]);
    expect(ids('   ')).toEqual([1, 2, 3, 7, 42, 4242]);
  });

  it('matches a path substring, case-insensitively and trimmed', () => {
    expect(ids('/api/v4')).toEqual([1, 3]);
    expect(ids('  CHAT/room ')).toEqual([4242]);
    expect(ids('socket.io')).toEqual([2]);
    expect(ids('(tcp)')).toEqual([7]);
  });

  it('matches the client address, forwarded or peer', () => {
    expect(ids('172.16.')).toEqual([2]);
    expect(ids('203.0.113.200')).toEqual([3]);
  });

  it('matches the state', () => {
    expect(ids('half')).toEqual([4242]);
    expect(ids('closed')).toEqual([42, 4242]);
    expect(ids('CLOSED')).toEqual([42, 4242]);
  });

  it('matches a connection id exactly, not as a substring', () => {
    expect(ids('4242')).toEqual([4242]);
    expect(ids('42')).toEqual([42]);
  });

  it('returns nothing when nothing matches', () => {
    expect(ids('no-such-thing')).toEqual([]);
  });

  it('hides plain-HTTP connections when showHttp is false, keeping WebSocket and TCP', () => {
    expect(ids('', false)).toEqual([1, 2, 7, 42, 4242]);
    expect(ids('/api/v4', false)).toEqual([1]);
  });
});

describe('connectionRows: redaction', () => {
  const events = [
    ...wsOpened(1, { url: '/api/v4/websocket?access_token=s3cr3t-t0k3n&connection_id=abc' }),
    openEvent(2),
    httpRequestEvent(2, T0 + 1, { url: '/files?access_token=other-s3cr3t' }),
  ];

  it('redacts access_token in WebSocket and HTTP paths by default', () => {
    const rows = rowsOf(events, query(T0 + 10));
    expect(rows.map((r) => r.path)).toEqual(['/api/v4/websocket?access_token=[redacted]&connection_id=abc', '/files?access_token=[redacted]']);
    expect(JSON.stringify(rows)).not.toContain('s3cr3t');
  });

  it('filters on the redacted path, so a secret cannot be probed for', () => {
    expect(rowsOf(events, query(T0 + 10, { filter: 's3cr3t' }))).toEqual([]);
  });

  it('shows the path as sent with redact: false', () => {
    const rows = rowsOf(events, query(T0 + 10, { redact: false }));
    expect(rows.map((r) => r.path)).toEqual(['/api/v4/websocket?access_token=s3cr3t-t0k3n&connection_id=abc', '/files?access_token=other-s3cr3t']);
  });
});

describe('connectionRows: failed rows', () => {
  it('an upstream that could not be reached (wstap answered 502)', () => {
    const events: CaptureEvent[] = [openEvent(1), httpRequestEvent(1, T0 + 1), httpErrorEvent(1, T0 + 2, { answeredStatus: 502 })];
    const row = rowOf(events, 1, query(T0 + 10));
    expect(row).toMatchObject({ kind: 'http', failed: true, status: 502 });
  });

  it('a WebSocket handshake the upstream answered 400', () => {
    const events: CaptureEvent[] = [
      openEvent(1),
      handshakeRequestEvent(1, T0 + 1),
      handshakeResponseEvent(1, T0 + 2, { statusCode: 400, reason: 'Bad Request', upgraded: false }),
    ];
    const row = rowOf(events, 1, query(T0 + 10));
    expect(row).toMatchObject({ kind: 'ws', failed: true, status: 400 });
  });

  it('a WebSocket handshake the upstream closed before answering', () => {
    const events: CaptureEvent[] = [openEvent(1), handshakeRequestEvent(1, T0 + 1), finEvent(1, T0 + 5, 'upstream'), closeEvent(1, T0 + 6)];
    const row = rowOf(events, 1, query(T0 + 10));
    expect(row).toMatchObject({ kind: 'ws', failed: true, status: null, state: 'closed' });
    expect(row.close).toMatchObject({ by: 'upstream', kind: 'fin' });
  });

  it('a handshake still waiting for its answer is not (yet) failed', () => {
    const tracker = fold([openEvent(1), handshakeRequestEvent(1, T0 + 1)]);
    const summary = tracker.get(1)!;
    expect(isFailed(summary)).toBe(false);
    expect(connectionRows([summary], query(T0 + 10))[0]?.failed).toBe(false);
  });

  it('an error while relaying a response (not connect) is not a failed connection', () => {
    const events: CaptureEvent[] = [openEvent(1), httpRequestEvent(1, T0 + 1), httpErrorEvent(1, T0 + 2, { stage: 'response', answeredStatus: null })];
    expect(rowOf(events, 1, query(T0 + 10)).failed).toBe(false);
  });

  it('a successful upgrade is not failed', () => {
    expect(rowOf(wsOpened(1), 1, query(T0 + 10)).failed).toBe(false);
  });
});

describe('connectionRows: countdowns and idle levels', () => {
  /** Both sides last spoke at T0 + 100; `now` is that plus the elapsed ms. */
  const quietSince: CaptureEvent[] = [
    ...wsOpened(1),
    frameEvent({ conn: 1, t: T0 + 100, side: 'client', opcode: 1, length: 1 }),
    frameEvent({ conn: 1, t: T0 + 100, side: 'upstream', opcode: 1, length: 1 }),
  ];
  const at = (elapsed: number, timeouts: readonly HopTimeout[] = [nginx60]) => rowOf(quietSince, 1, query(T0 + 100 + elapsed, { timeouts }));

  it('79% of the timeout is ok', () => {
    const row = at(47_400);
    expect(row.countdown).toMatchObject({ level: 'ok', elapsedMs: 47_400, remainingMs: 12_600, label: 'nginx 60s in 13s' });
    expect(row.idleLevel).toEqual({ client: 'ok', upstream: 'ok' });
  });

  it('80% is warn', () => {
    const row = at(48_000);
    expect(row.countdown).toMatchObject({ level: 'warn', label: 'nginx 60s in 12s' });
    expect(row.idleLevel).toEqual({ client: 'warn', upstream: 'warn' });
  });

  it('101% is over', () => {
    const row = at(60_600);
    expect(row.countdown).toMatchObject({ level: 'over', label: 'nginx 60s over by 1s' });
    expect(row.idleLevel).toEqual({ client: 'over', upstream: 'over' });
  });

  it('no timeouts: no countdown, idle levels ok', () => {
    const row = at(600_000, []);
    expect(row.countdown).toBeNull();
    expect(row.idleLevel).toEqual({ client: 'ok', upstream: 'ok' });
  });

  it('the nearest of several timeouts is the countdown', () => {
    const lb: HopTimeout = { hop: 'lb', setting: 'idle', seconds: 50, measures: 'both-idle' };
    expect(at(10_000, [nginx60, lb]).countdown?.timeout).toBe(lb);
  });

  describe('per direction', () => {
    // Client silent 50 s, upstream silent 10 s.
    const events: CaptureEvent[] = [
      ...wsOpened(1),
      frameEvent({ conn: 1, t: T0 + 10_000, side: 'client', opcode: 1, length: 1 }),
      frameEvent({ conn: 1, t: T0 + 50_000, side: 'upstream', opcode: 1, length: 1 }),
    ];
    const levels = (timeouts: HopTimeout[]) => rowOf(events, 1, query(T0 + 60_000, { timeouts })).idleLevel;
    const t = (measures: HopTimeout['measures'], seconds: number): HopTimeout => ({ hop: 'h', setting: 's', seconds, measures });

    it('client-idle colours only the client column', () => {
      expect(levels([t('client-idle', 60)])).toEqual({ client: 'warn', upstream: 'ok' });
      expect(levels([t('client-idle', 45)])).toEqual({ client: 'over', upstream: 'ok' });
    });

    it('upstream-idle colours only the upstream column', () => {
      expect(levels([t('upstream-idle', 12)])).toEqual({ client: 'ok', upstream: 'warn' });
      expect(levels([t('upstream-idle', 60)])).toEqual({ client: 'ok', upstream: 'ok' });
    });

    it('both-idle measures the more recent side and colours both columns', () => {
      // min(50 s, 10 s) = 10 s: 83% of 12 s.
      expect(levels([t('both-idle', 12)])).toEqual({ client: 'warn', upstream: 'warn' });
      expect(levels([t('both-idle', 60)])).toEqual({ client: 'ok', upstream: 'ok' });
    });

    it('lifetime timers do not colour idle columns but do count down', () => {
      const row = rowOf(events, 1, query(T0 + 60_000, { timeouts: [t('lifetime', 61)] }));
      expect(row.idleLevel).toEqual({ client: 'ok', upstream: 'ok' });
      expect(row.countdown?.level).toBe('warn');
    });

    it('each column takes the worst level among its timers', () => {
      expect(levels([t('client-idle', 45), t('upstream-idle', 12), t('both-idle', 600)])).toEqual({ client: 'over', upstream: 'warn' });
    });
  });

  it('closed rows have no countdown and plain idle levels however long they were idle', () => {
    const events = [...quietSince, finEvent(1, T0 + 200_000, 'client', { client: 199_900, upstream: 199_900 }), closeEvent(1, T0 + 200_001)];
    const row = rowOf(events, 1, query(T0 + 300_000, { timeouts: [nginx60] }));
    expect(row.countdown).toBeNull();
    expect(row.idleLevel).toEqual({ client: 'ok', upstream: 'ok' });
  });
});

describe('connectionRows: close info', () => {
  it('upstream close frame 1001: by, kind, code and the both-way idle before it', () => {
    const events = [
      ...busyWs(1),
      frameEvent({ conn: 1, t: T0 + 50_000, side: 'upstream', opcode: 8, index: 2, length: 5, closeCode: 1001, closeReason: 'bye', idle: { client: 45_000, upstream: 3000 } }),
      frameEvent({ conn: 1, t: T0 + 50_001, side: 'client', opcode: 8, index: 2, length: 2, closeCode: 1001, idle: { client: 1, upstream: 1 } }),
      finEvent(1, T0 + 50_002, 'upstream', { client: 1, upstream: 0 }),
      closeEvent(1, T0 + 50_003),
    ];
    expect(rowOf(events, 1, query(T0 + 60_000)).close).toEqual({ by: 'upstream', kind: 'close-frame', code: 1001, idleMs: 3000 });
  });

  it('a FIN by the client', () => {
    const events = [...wsOpened(1), finEvent(1, T0 + 9000, 'client', { client: 8999, upstream: 8997 }), finEvent(1, T0 + 9001, 'upstream'), closeEvent(1, T0 + 9002)];
    expect(rowOf(events, 1, query(T0 + 10_000)).close).toEqual({ by: 'client', kind: 'fin', code: null, idleMs: 8997 });
  });

  it('wstap shutting the connection down', () => {
    const events = [...wsOpened(1), proxyCloseEvent(1, T0 + 4000, { client: 3999, upstream: 2000 }), closeEvent(1, T0 + 4001)];
    expect(rowOf(events, 1, query(T0 + 10_000)).close).toEqual({ by: 'proxy', kind: 'fin', code: null, idleMs: 2000 });
  });

  it('the earliest evidence wins even when recorded later', () => {
    const events = [
      ...wsOpened(1),
      finEvent(1, T0 + 5000, 'upstream', { client: 10, upstream: 20 }),
      finEvent(1, T0 + 4999, 'client', { client: 30, upstream: 40 }),
      closeEvent(1, T0 + 5001),
    ];
    expect(rowOf(events, 1, query(T0 + 10_000)).close).toMatchObject({ by: 'client', idleMs: 30 });
  });

  it('closed without evidence', () => {
    const events: CaptureEvent[] = [openEvent(1), httpRequestEvent(1, T0 + 1), httpResponseEvent({ conn: 1, t: T0 + 2, exchange: 1 }), closeEvent(1, T0 + 3)];
    expect(rowOf(events, 1, query(T0 + 10)).close).toEqual({ by: null, kind: null, code: null, idleMs: null });
  });

  it('live (even half-closed) rows carry no close info', () => {
    const events = [...wsOpened(1), finEvent(1, T0 + 10, 'client')];
    const row = rowOf(events, 1, query(T0 + 20));
    expect(row.state).toBe('half-closed');
    expect(row.close).toBeNull();
  });
});
