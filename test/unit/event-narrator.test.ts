import { describe, it, expect } from 'vitest';
import { narrate, narrateFindings, seconds, type Narration } from '../../src/analysis/event-narrator.js';
import { EMPTY_DIAGNOSIS_CONTEXT } from '../../src/analysis/connection-diagnosis.js';
import { printable } from '../../src/analysis/printable.js';
import { ConnectionTracker } from '../../src/analysis/connection-tracker.js';
import {
  closeEvent,
  finEvent,
  frameEvent,
  handshakeBodyEvent,
  handshakeRequestEvent,
  handshakeResponseEvent,
  httpRequestEvent,
  httpResponseEvent,
  openEvent,
} from '../support/event-fixtures.js';
import { HttpHeadParser } from '../../src/wire/http-head-parser.js';
import type {
  CaptureEvent,
  ConnOpenEvent,
  FrameEvent,
  HandshakeRequestEvent,
  HandshakeResponseEvent,
  HttpErrorEvent,
  HttpRequestEvent,
  HttpResponseEvent,
  Side,
} from '../../src/capture/events.js';

const T0 = 1_700_000_000_000;

function open(conn: number): ConnOpenEvent {
  return { kind: 'conn.open', t: T0, conn, mode: 'http', remoteAddress: '10.1.2.3', remotePort: 51234, localPort: 8066 };
}

function handshakeRequest(conn: number, url = '/ws', t = T0 + 1): HandshakeRequestEvent {
  return {
    kind: 'ws.handshake.request',
    t,
    conn,
    method: 'GET',
    url,
    httpVersion: '1.1',
    rawHeaders: [
      ['Host', 'x'],
      ['upgrade', 'websocket'],
    ],
    headLength: 100,
  };
}

function handshakeResponse(conn: number, extra: Partial<HandshakeResponseEvent> = {}): HandshakeResponseEvent {
  return {
    kind: 'ws.handshake.response',
    t: T0 + 3,
    conn,
    statusCode: 101,
    reason: 'Switching Protocols',
    httpVersion: '1.1',
    rawHeaders: [],
    headLength: 120,
    upgraded: true,
    deflate: null,
    waitMs: 2,
    ...extra,
  };
}

function frame(conn: number, t: number, side: Side, opcode: number, extra: Partial<FrameEvent> = {}): FrameEvent {
  return frameEvent({ conn, t, side, opcode, length: 2, ...extra });
}

function request(conn: number, exchange: number, method: string, url: string): HttpRequestEvent {
  return { kind: 'http.request', t: T0 + exchange * 10, conn, exchange, method, url, httpVersion: '1.1', rawHeaders: [] };
}

function response(conn: number, exchange: number, extra: Partial<HttpResponseEvent> = {}): HttpResponseEvent {
  return httpResponseEvent({ conn, exchange, t: T0 + exchange * 10 + 5, totalMs: 4.25, ...extra });
}

/** Folds events through a tracker and narrates each, as the --no-tui log does. */
function narrateAll(events: CaptureEvent[]): Array<Narration | null> {
  const tracker = new ConnectionTracker();
  return events.map((e) => narrate(e, tracker.apply(e)));
}

function lastLine(events: CaptureEvent[]): Narration {
  const n = narrateAll(events).at(-1);
  if (!n) throw new Error('expected a narration for the last event');
  return n;
}

const NO_CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

describe('narrate: which events produce a line', () => {
  it('gives a line for opens, handshakes and closes but not for frames, messages or fins', () => {
    const events: CaptureEvent[] = [
      open(1),
      handshakeRequest(1),
      handshakeResponse(1),
      frame(1, T0 + 5, 'client', 1),
      { kind: 'ws.message', t: T0 + 5, conn: 1, side: 'client', opcode: 1, tEnd: T0 + 5, firstFrame: 0, frames: 1, wireLength: 2, compressed: false, size: 2, preview: '', previewTruncated: false },
      frame(1, T0 + 6, 'upstream', 9),
      frame(1, T0 + 7, 'client', 10),
      frame(1, T0 + 8, 'upstream', 8, { closeCode: 1000 }),
      { kind: 'tcp.fin', t: T0 + 9, conn: 1, side: 'upstream', idle: { client: 1, upstream: 1 } },
      { kind: 'tcp.rst', t: T0 + 9.5, conn: 1, side: 'client', idle: { client: 1, upstream: 1 } },
      { kind: 'proxy.close', t: T0 + 9.75, conn: 1, reason: 'shutdown', idle: { client: 1, upstream: 1 } },
      { kind: 'conn.close', t: T0 + 10, conn: 1, bytes: { fromClient: 1, fromUpstream: 2 } },
    ];
    const produced = narrateAll(events).map((n, i) => `${events[i]?.kind}:${n ? 'line' : '-'}`);
    expect(produced).toStrictEqual([
      'conn.open:line',
      'ws.handshake.request:line',
      'ws.handshake.response:line',
      'ws.frame:-',
      'ws.message:-',
      'ws.frame:-',
      'ws.frame:-',
      'ws.frame:-',
      'tcp.fin:-',
      'tcp.rst:-',
      'proxy.close:-',
      'conn.close:line',
    ]);
  });

  it('narrates an interim response before the 101, and the 101 after it as before', () => {
    const interim: CaptureEvent = {
      kind: 'ws.handshake.interim', t: T0 + 2, conn: 4, statusCode: 103, reason: 'Early Hints\u001b[2J', httpVersion: '1.1',
      rawHeaders: [['Link', '</a.css>; rel=preload']], headLength: 60, waitMs: 1,
    };
    const lines = narrateAll([open(4), handshakeRequest(4), interim, handshakeResponse(4)]);
    expect(lines[2]).toStrictEqual({
      level: 'info',
      msg: '#4 upstream sent 103 Early Hints\\x1b[2J after 1.0 ms (interim; the final answer follows)',
      fields: { conn: 4, status: 103, waitMs: 1 },
    });
    expect(lines[3]).toMatchObject({ level: 'info', msg: '#4 upstream answered 101 Switching Protocols after 2.0 ms' });
  });

  it('narrates the open with the remote address', () => {
    expect(narrate(open(7), null)).toStrictEqual({
      level: 'info',
      msg: '#7 open from 10.1.2.3:51234',
      fields: { conn: 7, remote: '10.1.2.3:51234' },
    });
  });

  it('narrates an open without a peer address (a unix socket) as such', () => {
    expect(narrate({ ...open(8), remoteAddress: '', remotePort: 0, localPort: 0 }, null)).toStrictEqual({
      level: 'info',
      msg: '#8 open from a peer without an address (a unix socket, or not recorded)',
      fields: { conn: 8, remote: '' },
    });
  });

  it('narrates the session start and end', () => {
    const start = narrate(
      { kind: 'session.start', t: T0, version: '0.1.0', mode: 'http', listen: '127.0.0.1:8066', target: 'http://127.0.0.1:8065', pid: 1, previewLimit: 64 },
      null,
    );
    expect(start?.level).toBe('info');
    expect(start?.msg).toBe('listening on 127.0.0.1:8066 -> http://127.0.0.1:8065 (http mode)');
    const end = narrate({ kind: 'session.end', t: T0, reason: 'SIGINT', droppedEvents: 0 }, null);
    expect(end).toMatchObject({ level: 'info', msg: 'session ended (SIGINT)' });
    const lossy = narrate({ kind: 'session.end', t: T0, reason: 'SIGTERM', droppedEvents: 3 }, null);
    expect(lossy?.level).toBe('warn');
    expect(lossy?.msg).toContain('3 events could not be written to the capture');
  });

  it('narrates a capture gap read from a file as a warning with the count, the span and the cause', () => {
    const gap = narrate({ kind: 'capture.gap', t: T0 + 4500, from: T0, lostEvents: 17, code: 'EFBIG' }, null);
    expect(gap).toStrictEqual({
      level: 'warn',
      msg: 'capture gap: 17 events of the 4.50 s before this were not saved (EFBIG); connections of that time may lack events or be missing',
      fields: { lostEvents: 17, code: 'EFBIG', from: T0 },
    });
    expect(narrate({ kind: 'capture.gap', t: T0 + 1, from: T0, lostEvents: 3, code: 'backlog' }, null)?.msg).toContain('(the disk did not keep up)');
    // The disk guard's pause (--min-free), read back from a file: said as a pause, with or without events lost.
    expect(narrate({ kind: 'capture.gap', t: T0 + 2000, from: T0, lostEvents: 40, code: 'MIN_FREE' }, null)?.msg).toBe(
      'capture gap: the capture was paused for 2.00 s before this, free space being below --min-free (MIN_FREE); 40 events were not saved; connections of that time may lack events or be missing',
    );
    expect(narrate({ kind: 'capture.gap', t: T0 + 2000, from: T0, lostEvents: 0, code: 'MIN_FREE' }, null)?.msg).toMatch(/paused for 2\.00 s .*; no event was lost$/);
  });

  it('narrates a frame cut off by the connection\'s end, with what arrived of it', () => {
    const cut = narrate(
      { kind: 'ws.frame.cut', t: T0 + 1250, conn: 3, side: 'upstream', index: 7, offset: 900, started: T0, received: 102_410, opcode: 2, length: 1_048_576, payloadReceived: 102_400 },
      null,
    );
    expect(cut).toStrictEqual({
      level: 'warn',
      msg: "#3 upstream's binary frame 7 (1048576 payload bytes announced) was cut off after 102400 of them: the connection ended 1.25 s after its first byte",
      fields: { conn: 3, side: 'upstream', offset: 900 },
    });
    const inHeader = narrate({ kind: 'ws.frame.cut', t: T0 + 5, conn: 3, side: 'client', index: 0, offset: 0, started: T0, received: 1 }, null);
    expect(inHeader?.msg).toBe("#3 client's frame 0 was cut off inside its header (1 byte): the connection ended 0.01 s after its first byte");
  });

  it('narrates the handshake request with method, url, version and upgrade header', () => {
    expect(narrate(handshakeRequest(2, '/api/v4/websocket?a=1'), null)?.msg).toBe('#2 GET /api/v4/websocket?a=1 HTTP/1.1 upgrade: websocket');
    const noUpgrade = { ...handshakeRequest(2), rawHeaders: [] as Array<[string, string]> };
    expect(narrate(noUpgrade, null)?.msg).toContain('upgrade: (none)');
  });

  it('returns null for a conn.close without a summary', () => {
    expect(narrate({ kind: 'conn.close', t: T0, conn: 9, bytes: { fromClient: 0, fromUpstream: 0 } }, null)).toBeNull();
  });
});

describe('narrate: levels', () => {
  it('an upgraded handshake response is info and names the wait and deflate', () => {
    const n = narrate(
      handshakeResponse(1, { waitMs: 12.34, deflate: { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 } }),
      null,
    );
    expect(n?.level).toBe('info');
    expect(n?.msg).toBe('#1 upstream answered 101 Switching Protocols after 12.3 ms permessage-deflate');
  });

  it('a non-101 handshake response is a warning saying not upgraded', () => {
    const n = narrate(handshakeResponse(1, { statusCode: 403, reason: 'Forbidden', upgraded: false }), null);
    expect(n?.level).toBe('warn');
    expect(n?.msg).toBe('#1 upstream answered 403 Forbidden after 2.0 ms (not upgraded)');
    expect(n?.fields).toStrictEqual({ conn: 1, status: 403, waitMs: 2 });
  });

  it('http.error is an error naming stage, code and the status wstap answered', () => {
    const error: HttpErrorEvent = { kind: 'http.error', t: T0, conn: 3, exchange: 1, stage: 'connect', code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:8065', answeredStatus: 502 };
    const n = narrate(error, null);
    expect(n?.level).toBe('error');
    expect(n?.msg).toBe('#3 upstream failed (connect): ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:8065; answered 502');
    const late = narrate({ ...error, stage: 'response', answeredStatus: null }, null);
    expect(late?.level).toBe('error');
    expect(late?.msg).not.toContain('answered');
  });

  it('handshake errors, protocol errors, inflate errors and rejections are warnings', () => {
    const events: CaptureEvent[] = [
      { kind: 'ws.handshake.error', t: T0, conn: 1, code: 'MALFORMED_START_LINE', message: 'bad', offset: 0 },
      { kind: 'ws.protocol-error', t: T0, conn: 1, side: 'client', code: 'RSV_SET', message: 'rsv2 set', offset: 40, frameIndex: 3 },
      { kind: 'ws.inflate-error', t: T0, conn: 1, side: 'upstream', message: 'invalid distance' },
      { kind: 'http.rejected', t: T0, conn: 1, method: 'CONNECT', url: 'evil:443', statusCode: 405, reason: 'CONNECT is not supported' },
    ];
    for (const e of events) expect(narrate(e, null)?.level).toBe('warn');
    expect(narrate(events[1] as CaptureEvent, null)?.msg).toBe(
      '#1 client sent an invalid frame (RSV_SET) at byte 40: rsv2 set; decoding of that direction stopped, relaying continues',
    );
    // A head wstap refused before it had a request line.
    expect(narrate({ kind: 'http.rejected', t: T0, conn: 2, method: '', url: '', statusCode: 431, reason: 'request head over 64 KiB' }, null)?.msg).toBe(
      '#2 rejected a request: 431 request head over 64 KiB',
    );
  });
});

describe('narrate: socket errors', () => {
  it('a tcp.error gets a warning naming the side and code, escaped', () => {
    const line = narrate(
      { kind: 'tcp.error', t: 1, conn: 7, side: 'upstream', code: 'EPIPE', message: 'write EPIPE\u001b[2J', idle: { client: 0, upstream: 0 } },
      null,
    );
    expect(line?.level).toBe('warn');
    expect(line?.msg).toBe('#7 upstream socket error EPIPE: write EPIPE\\x1b[2J');
  });
});

describe('narrate: HTTP exchanges', () => {
  it('names the request of a single exchange; an answered one below 400 is at debug', () => {
    const n = lastLine([open(4), request(4, 1, 'GET', '/first'), response(4, 1)]);
    expect(n.level).toBe('debug');
    expect(n.msg).toBe('#4 GET /first -> 200 (12 B, ttfb 3.0 ms, total 4.3 ms)');
  });

  it('an exchange answered 400 or more, or cut short, is at info', () => {
    expect(lastLine([open(4), request(4, 1, 'GET', '/gone'), response(4, 1, { statusCode: 404 })]).level).toBe('info');
    expect(lastLine([open(4), request(4, 1, 'GET', '/down'), response(4, 1, { statusCode: 502 })]).level).toBe('info');
    expect(lastLine([open(4), request(4, 1, 'GET', '/big'), response(4, 1, { complete: false })]).level).toBe('info');
  });

  it('a line below the levels the caller prints is not built', () => {
    const tracker = new ConnectionTracker();
    const answer = response(4, 1);
    tracker.apply(open(4));
    tracker.apply(request(4, 1, 'GET', '/first'));
    const summary = tracker.apply(answer);
    const asked: string[] = [];
    const line = narrate(answer, summary, (level) => (asked.push(level), level !== 'debug'));
    expect(line).toBeNull();
    expect(asked).toEqual(['debug']);
    expect(narrate(answer, summary, () => true)?.level).toBe('debug');
  });

  it('numbers later keep-alive exchanges and says when the client went away', () => {
    const n = lastLine([open(4), request(4, 1, 'GET', '/first'), response(4, 1), request(4, 2, 'POST', '/second'), response(4, 2, { statusCode: 201, complete: false })]);
    expect(n.msg).toBe('#4 exchange 2 POST /second -> 201 (12 B, ttfb 3.0 ms, total 4.3 ms) incomplete: client went away');
  });
});

describe('narrate: the close line', () => {
  const idle = { client: 45_000, upstream: 3 };
  const closedWs: CaptureEvent[] = [
    open(1),
    handshakeRequest(1),
    handshakeResponse(1),
    frame(1, T0 + 10, 'client', 1),
    frame(1, T0 + 30, 'upstream', 9, { preview: 'aGI=' }),
    frame(1, T0 + 38, 'client', 10, { preview: 'aGI=' }),
    frame(1, T0 + 50, 'upstream', 8, { closeCode: 1001, closeReason: 'bye', idle }),
    { kind: 'tcp.fin', t: T0 + 52, conn: 1, side: 'upstream', idle: { client: 1, upstream: 2 } },
    { kind: 'tcp.fin', t: T0 + 53, conn: 1, side: 'client', idle: { client: 2, upstream: 1 } },
    { kind: 'conn.close', t: T0 + 1500, conn: 1, bytes: { fromClient: 100, fromUpstream: 200 } },
  ];

  it('names closedBy, the first evidence, the idle seconds and the evidence chain', () => {
    const n = lastLine(closedWs);
    expect(n.level).toBe('info');
    expect(n.msg).toBe(
      '#1 closed by upstream (upstream close-frame 1001 "bye") after 1.50 s' +
        '; silent before: client->upstream 45.0 s, upstream->client 0.00 s' +
        '; evidence: upstream close-frame 1001 "bye" +0.0 ms, upstream fin +2.0 ms, client fin +3.0 ms' +
        '; frames client 2, upstream 2; last ping rtt 8.0 ms',
    );
    expect(n.msg).not.toContain('before answering');
  });

  it('puts the verdict in the fields', () => {
    const n = lastLine(closedWs);
    expect(n.fields.closedBy).toBe('upstream');
    expect(n.fields.lifetimeMs).toBe(1500);
    expect(n.fields.idleBeforeCloseMs).toStrictEqual(idle);
    expect(n.fields.frames).toStrictEqual({ client: 2, upstream: 2 });
    expect(n.fields.bytes).toStrictEqual({ fromClient: 100, fromUpstream: 200 });
    const evidence = n.fields.evidence as Array<Record<string, unknown>>;
    expect(evidence.map((e) => [e.side, e.kind, e.atMs])).toStrictEqual([
      ['upstream', 'close-frame', 50],
      ['upstream', 'fin', 52],
      ['client', 'fin', 53],
    ]);
  });

  it('names the earliest evidence even when recorded later', () => {
    const n = lastLine([
      open(1),
      handshakeRequest(1),
      handshakeResponse(1),
      { kind: 'tcp.fin', t: T0 + 20, conn: 1, side: 'upstream', idle: { client: 0, upstream: 0 } },
      { kind: 'tcp.rst', t: T0 + 19, conn: 1, side: 'client', idle: { client: 12_500, upstream: 250 } },
      { kind: 'conn.close', t: T0 + 21, conn: 1, bytes: { fromClient: 0, fromUpstream: 0 } },
    ]);
    expect(n.msg).toMatch(/^#1 closed by client \(client rst\) after 0\.02 s; silent before: client->upstream 12\.5 s, upstream->client 0\.25 s/);
    expect(n.msg).toContain('evidence: upstream fin +1.0 ms, client rst +0.0 ms');
  });

  it('says the upstream closed before answering when a handshake request got no response', () => {
    const n = lastLine([
      open(5),
      handshakeRequest(5),
      { kind: 'tcp.fin', t: T0 + 40, conn: 5, side: 'upstream', idle: { client: 39, upstream: 40 } },
      { kind: 'tcp.fin', t: T0 + 41, conn: 5, side: 'client', idle: { client: 40, upstream: 1 } },
      { kind: 'conn.close', t: T0 + 42, conn: 5, bytes: { fromClient: 100, fromUpstream: 0 } },
    ]);
    expect(n.level).toBe('warn');
    expect(n.msg).toContain('#5 closed by upstream (upstream fin)');
    expect(n.msg).toContain('the upstream closed before answering the handshake');
    expect(n.msg).not.toContain('frames client');
  });

  it('does not say "before answering" when the upstream failed with an http.error', () => {
    const n = lastLine([
      open(5),
      handshakeRequest(5),
      { kind: 'http.error', t: T0 + 2, conn: 5, exchange: 1, stage: 'connect', code: 'ECONNREFUSED', message: 'refused', answeredStatus: 502 },
      { kind: 'tcp.fin', t: T0 + 3, conn: 5, side: 'client', idle: { client: 2, upstream: 3 } },
      { kind: 'conn.close', t: T0 + 4, conn: 5, bytes: { fromClient: 100, fromUpstream: 0 } },
    ]);
    expect(n.level).toBe('info');
    expect(n.msg).not.toContain('before answering');
    expect(n.msg).toContain('closed by client (client fin)');
  });

  it('names the proxy when wstap ended the connection', () => {
    const n = lastLine([
      open(6),
      handshakeRequest(6),
      handshakeResponse(6),
      { kind: 'proxy.close', t: T0 + 10, conn: 6, reason: 'shutdown', idle: { client: 1, upstream: 1 } },
      { kind: 'conn.close', t: T0 + 11, conn: 6, bytes: { fromClient: 0, fromUpstream: 0 } },
    ]);
    expect(n.msg).toContain('#6 closed by proxy (wstap fin (shutdown))');
    expect(n.msg).not.toContain('not relayed');
    expect(n.fields.closedBy).toBe('proxy');
  });

  it('says what the peers sent after wstap ended the connection, which it could not pass on', () => {
    const n = lastLine([
      open(6),
      handshakeRequest(6),
      handshakeResponse(6),
      { kind: 'proxy.close', t: T0 + 10, conn: 6, reason: 'shutdown', idle: { client: 1, upstream: 1 } },
      { kind: 'conn.close', t: T0 + 11, conn: 6, bytes: { fromClient: 50, fromUpstream: 900 }, notRelayed: { fromClient: 0, fromUpstream: 300 } },
    ]);
    expect(n.msg).toMatch(/^#6 closed by proxy \(wstap fin \(shutdown\)\).*; not relayed, sent after wstap ended the connection: client 0 B, upstream 300 B$/);
    expect(n.fields.notRelayed).toEqual({ fromClient: 0, fromUpstream: 300 });
  });

  describe('under backpressure (wstap had paused reading a side)', () => {
    // The client did not read; wstap paused reading the upstream at +540 ms.
    const pausedSince = { upstream: T0 + 540 };
    const tunnel = (fins: CaptureEvent[]): CaptureEvent[] => [
      open(9),
      handshakeRequest(9),
      handshakeResponse(9),
      ...fins,
      { kind: 'conn.close', t: T0 + 2100, conn: 9, bytes: { fromClient: 0, fromUpstream: 6_291_456 } },
    ];

    it('says the order is unknown, naming both FINs, the paused period and how to tell them apart, instead of a side', () => {
      const n = lastLine(
        tunnel([
          finEvent(9, T0 + 1520, 'client', { client: 1500, upstream: 980 }, pausedSince),
          finEvent(9, T0 + 2070, 'upstream', { client: 2050, upstream: 0.5 }, pausedSince),
        ]),
      );
      expect(n.level).toBe('warn');
      expect(n.msg).toBe(
        '#9 closed after 2.10 s, order unknown: upstream fin was read at +2.070 s after reading upstream had been paused since +0.540 s ' +
          "(client was not reading, so upstream's bytes waited); client fin came at +1.520 s in between, and upstream's may have been sent before it; " +
          "to tell them apart: a packet capture of the upstream leg has when it reached this host, upstream's own log when it closed" +
          '; evidence: client fin +0.0 ms, upstream fin +550.0 ms',
      );
      expect(n.msg).not.toContain('closed by');
      expect(n.fields).toMatchObject({ closedBy: null, closeOrder: 'unknown', pausedSide: 'upstream', pausedSinceMs: 540 });
      const evidence = n.fields.evidence as Array<Record<string, unknown>>;
      expect(evidence.map((e) => [e.side, e.atMs, e.pausedSinceMs])).toStrictEqual([
        ['client', 1520, { upstream: 540 }],
        ['upstream', 2070, { upstream: 540 }],
      ]);
    });

    it('keeps naming the closer when the paused side caught up first, and says nothing of the pause', () => {
      const n = lastLine(tunnel([finEvent(9, T0 + 1520, 'client', { client: 1500, upstream: 980 }, pausedSince), finEvent(9, T0 + 2070, 'upstream')]));
      expect(n.level).toBe('info');
      expect(n.msg).toMatch(/^#9 closed by client \(client fin\) after 2\.10 s; silent before/);
      expect(n.msg).not.toContain('paused');
    });

    it('keeps the closer but says what could not be read when the paused side never gave evidence', () => {
      const n = lastLine(tunnel([{ ...finEvent(9, T0 + 1520, 'client', { client: 1500, upstream: 980 }, pausedSince), kind: 'tcp.rst' }]));
      expect(n.msg).toContain('#9 closed by client (client rst) after 2.10 s');
      expect(n.msg).toContain(
        "; upstream's reading had been paused since +0.540 s (client was not reading): what upstream sent after that, a FIN or RST included, was never read;",
      );
    });

    it('gives no timeout verdict when the order is unknown (no side\'s timer can be named)', () => {
      const context = {
        ...EMPTY_DIAGNOSIS_CONTEXT,
        timeouts: [{ hop: 'nginx', setting: 'proxy_read_timeout', seconds: 1.5, measures: 'client-idle' as const, where: 'client-side' as const }],
      };
      const tracker = new ConnectionTracker();
      const findings: string[] = [];
      for (const e of tunnel([finEvent(9, T0 + 1520, 'client', { client: 1500, upstream: 980 }, pausedSince), finEvent(9, T0 + 2070, 'upstream', undefined, pausedSince)])) {
        const summary = tracker.apply(e);
        for (const f of narrateFindings(e, summary, context)) findings.push((f.fields['finding'] as { id: string }).id);
      }
      expect(findings.filter((id) => id.startsWith('timeout.'))).toEqual([]);
    });
  });

  it('says when no close evidence was seen', () => {
    const n = lastLine([open(8), { kind: 'conn.close', t: T0 + 250, conn: 8, bytes: { fromClient: 0, fromUpstream: 0 } }]);
    expect(n.level).toBe('info');
    expect(n.msg).toBe('#8 closed after 0.25 s (no close evidence seen)');
    expect(n.fields.closedBy).toBeNull();
  });

  it('escapes a hostile close reason', () => {
    const n = lastLine([
      open(1),
      handshakeRequest(1),
      handshakeResponse(1),
      frame(1, T0 + 5, 'upstream', 8, { closeCode: 4000, closeReason: '\x1b[2J\u202eevil\r\n' }),
      { kind: 'conn.close', t: T0 + 6, conn: 1, bytes: { fromClient: 0, fromUpstream: 0 } },
    ]);
    expect(n.msg).not.toMatch(NO_CONTROL);
    expect(n.msg).toContain('upstream close-frame 4000 "\\x1b[2J\\u202eevil\\r\\n"');
  });
});

describe('narrate: hostile text from the wire is escaped', () => {
  it('escapes ESC in a handshake url', () => {
    const n = narrate(handshakeRequest(1, '/ws\x1b[2J\x1b[31mpwned'), null);
    expect(n?.msg).toBe('#1 GET /ws\\x1b[2J\\x1b[31mpwned HTTP/1.1 upgrade: websocket');
    expect(n?.msg).not.toMatch(NO_CONTROL);
  });

  it('escapes a hostile reason phrase in a handshake response', () => {
    const n = narrate(handshakeResponse(1, { statusCode: 400, reason: 'Bad\u009b2J\u2028x', upgraded: false }), null);
    expect(n?.msg).not.toMatch(NO_CONTROL);
    expect(n?.msg).toContain('Bad\\x9b2J\\u2028x');
  });

  it('escapes a hostile request url in an HTTP response line', () => {
    const n = lastLine([open(4), request(4, 1, 'GET', '/\x1b]0;title\x07'), response(4, 1)]);
    expect(n.msg).not.toMatch(NO_CONTROL);
    expect(n.msg).toContain('/\\x1b]0;title\\x07');
  });

  it('escapes control characters from a malformed upstream response head (ws.handshake.error)', () => {
    // What the real parser reports for an upstream that answers the handshake with
    // a start line carrying C1 CSI (0x9b), DEL and a BEL.
    const parser = new HttpHeadParser('response');
    const result = parser.push(Buffer.from('HTTP/1.1 2\x9b2J\x7f\x07 nope\r\n\r\n', 'latin1'));
    if (result.state !== 'error') throw new Error(`expected a parse error, got ${result.state}`);
    const n = narrate({ kind: 'ws.handshake.error', t: T0, conn: 1, code: result.code, message: result.message, offset: result.offset }, null);
    expect(n?.level).toBe('warn');
    expect(n?.msg).toContain("upstream's response head is not HTTP: malformed response start line");
    expect(n?.msg).not.toMatch(NO_CONTROL);
  });
});

describe('printable', () => {
  it('leaves ordinary text alone, including non-ASCII', () => {
    expect(printable('GET /chat?room=général ✓ 日本')).toBe('GET /chat?room=général ✓ 日本');
    expect(printable('')).toBe('');
  });

  it('escapes C0 controls: ESC, CR, LF, TAB, NUL, BEL', () => {
    expect(printable('\x1b[2J')).toBe('\\x1b[2J');
    expect(printable('a\rb\nc\td')).toBe('a\\rb\\nc\\td');
    expect(printable('\0')).toBe('\\x00');
    expect(printable('\x07')).toBe('\\x07');
    expect(printable('\x1f')).toBe('\\x1f');
  });

  it('escapes DEL and C1 controls', () => {
    expect(printable('\x7f')).toBe('\\x7f');
    expect(printable('\u0080')).toBe('\\x80');
    expect(printable('\u009b31m')).toBe('\\x9b31m');
    expect(printable('\u009f')).toBe('\\x9f');
    // Just past C1 is printable.
    expect(printable('\u00a0é')).toBe('\u00a0é');
  });

  it('escapes line/paragraph separators and bidi overrides and isolates', () => {
    expect(printable('a\u2028b\u2029c')).toBe('a\\u2028b\\u2029c');
    expect(printable('\u202eevil.exe')).toBe('\\u202eevil.exe');
    expect(printable('\u202a\u202b\u202c\u202d')).toBe('\\u202a\\u202b\\u202c\\u202d');
    expect(printable('\u2066\u2067\u2068\u2069')).toBe('\\u2066\\u2067\\u2068\\u2069');
  });

  it('never lets an unsafe character through', () => {
    let all = '';
    for (let c = 0; c <= 0x9f; c++) all += String.fromCharCode(c);
    all += '\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069';
    expect(printable(all, all.length)).not.toMatch(NO_CONTROL);
  });

  it('truncates with an ellipsis past maxLength', () => {
    expect(printable('abcdef', 3)).toBe('abc…');
    expect(printable('abc', 3)).toBe('abc');
    expect(printable('x'.repeat(200))).toBe('x'.repeat(200));
    expect(printable('x'.repeat(201))).toBe(`${'x'.repeat(200)}…`);
  });

  it('truncates before escaping', () => {
    expect(printable('\x1b\x1b\x1b\x1b', 2)).toBe('\\x1b\\x1b…');
  });
});

describe('seconds', () => {
  it('shows two decimals under ten seconds and one from ten up', () => {
    expect(seconds(0)).toBe('0.00 s');
    expect(seconds(1500)).toBe('1.50 s');
    expect(seconds(9_990)).toBe('9.99 s');
    expect(seconds(10_000)).toBe('10.0 s');
    expect(seconds(65_432)).toBe('65.4 s');
  });
});

describe('narrateFindings: when handshake findings are logged', () => {
  /** Runs events through the tracker; returns, per event kind, the finding ids logged at it. */
  function findingsAt(events: CaptureEvent[]): Array<[string, string[]]> {
    const tracker = new ConnectionTracker();
    const out: Array<[string, string[]]> = [];
    for (const e of events) {
      const summary = tracker.apply(e);
      const ids = narrateFindings(e, summary, EMPTY_DIAGNOSIS_CONTEXT).map((n) => (n.fields['finding'] as { id: string }).id);
      if (ids.length > 0) out.push([e.kind, ids]);
    }
    return out;
  }
  const refused = handshakeResponseEvent(1, T0 + 2, { statusCode: 400, reason: 'Bad Request', upgraded: false, rawHeaders: [['Content-Length', '19']] });

  it('a refusal: at the body event, once, quoting the body', () => {
    const tracker = new ConnectionTracker();
    const events: CaptureEvent[] = [openEvent(1), handshakeRequestEvent(1, T0 + 1), refused, handshakeBodyEvent(1, T0 + 3, 'Origin not allowed\n'), finEvent(1, T0 + 4, 'upstream'), closeEvent(1, T0 + 5)];
    expect(findingsAt(events)).toEqual([['ws.handshake.body', ['handshake.not-upgraded']]]);
    let logged: Narration[] = [];
    for (const e of events) {
      const summary = tracker.apply(e);
      if (e.kind === 'ws.handshake.body') logged = [...narrateFindings(e, summary, EMPTY_DIAGNOSIS_CONTEXT)];
    }
    expect((logged[0]?.fields['finding'] as { evidence: string[] }).evidence).toContain('body (19 bytes): Origin not allowed\\n');
  });

  it('a refusal recorded before the body event existed: at the close, once', () => {
    const events: CaptureEvent[] = [openEvent(1), handshakeRequestEvent(1, T0 + 1), refused, finEvent(1, T0 + 4, 'upstream'), closeEvent(1, T0 + 5)];
    expect(findingsAt(events)).toEqual([['conn.close', ['handshake.not-upgraded']]]);
  });

  it('an upgraded handshake: at the 101, as before', () => {
    const request = handshakeRequestEvent(1, T0 + 1, { rawHeaders: [['Upgrade', 'websocket'], ['Connection', 'Upgrade'], ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ==']] });
    const events: CaptureEvent[] = [openEvent(1), request, handshakeResponseEvent(1, T0 + 2), closeEvent(1, T0 + 5)];
    expect(findingsAt(events)).toEqual([['ws.handshake.response', ['handshake.bad-accept']]]);
  });

  it('a second body event (not something wstap records) logs nothing more', () => {
    const events: CaptureEvent[] = [
      openEvent(1),
      handshakeRequestEvent(1, T0 + 1),
      refused,
      handshakeBodyEvent(1, T0 + 3, 'a'),
      handshakeBodyEvent(1, T0 + 4, 'b'),
      closeEvent(1, T0 + 5),
    ];
    expect(findingsAt(events)).toEqual([['ws.handshake.body', ['handshake.not-upgraded']]]);
  });
});

describe('narrate: the body of a refused handshake', () => {
  it('one info line with the status and the escaped body', () => {
    const tracker = new ConnectionTracker();
    for (const e of [openEvent(1), handshakeRequestEvent(1, T0 + 1)]) tracker.apply(e);
    const response = handshakeResponseEvent(1, T0 + 2, { statusCode: 403, reason: 'Forbidden', upgraded: false, rawHeaders: [['Transfer-Encoding', 'chunked']] });
    tracker.apply(response);
    const body = handshakeBodyEvent(1, T0 + 3, 'no\x1b[2J', { bytes: 14 });
    const n = narrate(body, tracker.apply(body));
    expect(n).toEqual({ level: 'info', msg: "#1 upstream's 403 answer body (14 bytes, chunked): no\\x1b[2J", fields: { conn: 1, bytes: 14 } });
    expect(narrate(handshakeBodyEvent(2, T0, ''), null)?.msg).toBe("#2 upstream's answer body: (no body)");
  });
});

describe('narrateFindings: the timeout verdict in the log', () => {
  const context = {
    ...EMPTY_DIAGNOSIS_CONTEXT,
    timeouts: [{ hop: 'nginx', setting: 'proxy_read_timeout', seconds: 60, measures: 'both-idle' as const, where: 'client-side' as const }],
  };

  function verdictLevels(events: CaptureEvent[]): Array<[string, string]> {
    const tracker = new ConnectionTracker();
    const out: Array<[string, string]> = [];
    for (const e of events) {
      const summary = tracker.apply(e);
      for (const n of narrateFindings(e, summary, context)) out.push([(n.fields['finding'] as { id: string }).id, n.level]);
    }
    return out;
  }

  it('no match on a WebSocket is said at info, on a keep-alive HTTP connection only at debug (its close line has the numbers)', () => {
    const ws = verdictLevels([openEvent(1), handshakeRequestEvent(1, T0 + 1), handshakeResponseEvent(1, T0 + 2), finEvent(1, T0 + 5000, 'client', { client: 4998, upstream: 4998 }), closeEvent(1, T0 + 5001)]);
    expect(ws).toEqual([['timeout.none', 'info']]);
    const http = verdictLevels([
      openEvent(2),
      httpRequestEvent(2, T0 + 1),
      httpResponseEvent({ conn: 2, t: T0 + 3, exchange: 1 }),
      finEvent(2, T0 + 5000, 'client', { client: 4999, upstream: 4997 }),
      closeEvent(2, T0 + 5001),
    ]);
    expect(http).toEqual([['timeout.none', 'debug']]);
  });

  it('no match after a normal close frame (1000, 1001) is routine: debug; after another code, info', () => {
    const endedWith = (conn: number, code: number) =>
      verdictLevels([
        openEvent(conn),
        handshakeRequestEvent(conn, T0 + 1),
        handshakeResponseEvent(conn, T0 + 2),
        frameEvent({ conn, t: T0 + 5000, side: 'upstream', opcode: 8, closeCode: code, idle: { client: 4998, upstream: 4998 } }),
        finEvent(conn, T0 + 5001, 'upstream', { client: 4999, upstream: 1 }),
        closeEvent(conn, T0 + 5002),
      ]);
    expect(endedWith(4, 1000)).toEqual([['timeout.none', 'debug']]);
    expect(endedWith(5, 1001)).toEqual([['timeout.none', 'debug']]);
    expect(endedWith(6, 1011)).toEqual([['timeout.none', 'info']]);
  });

  it('a tie between two hops is logged as timeout.ambiguous at warn, never as a match', () => {
    const twoHops = {
      ...context,
      timeouts: [
        { hop: 'front', setting: 'idle', seconds: 60, measures: 'both-idle' as const, where: 'client-side' as const, action: 'unknown' as const },
        ...context.timeouts,
      ],
    };
    const tracker = new ConnectionTracker();
    const out: Narration[] = [];
    for (const e of [openEvent(7), handshakeRequestEvent(7, T0 + 1), handshakeResponseEvent(7, T0 + 2), finEvent(7, T0 + 60_010, 'client', { client: 60_008, upstream: 60_008 }), closeEvent(7, T0 + 60_011)]) {
      out.push(...narrateFindings(e, tracker.apply(e), twoHops));
    }
    expect(out.map((n) => [(n.fields['finding'] as { id: string }).id, n.level])).toEqual([['timeout.ambiguous', 'warn']]);
    expect(out[0]?.msg).toMatch(/^#7 closed by client side \(fin\) .*nothing observed tells them apart: front idle 60s, nginx proxy_read_timeout 60s; fix: find out which fired: /);
  });

  it('a match is a warning wherever it happens', () => {
    const ws = verdictLevels([openEvent(3), handshakeRequestEvent(3, T0 + 1), handshakeResponseEvent(3, T0 + 2), finEvent(3, T0 + 60_010, 'client', { client: 60_008, upstream: 60_008 }), closeEvent(3, T0 + 60_011)]);
    expect(ws).toEqual([['timeout.match', 'warn']]);
  });
});

describe('narrate: an observer fault', () => {
  const faulted: CaptureEvent[] = [
    open(4),
    handshakeRequest(4),
    handshakeResponse(4),
    frame(4, T0 + 10, 'client', 1),
    { kind: 'observer.fault', t: T0 + 250, conn: 4, side: 'upstream', where: 'observe', message: 'bug \u001b[31m here', stack: 'Error: bug\n    at x' },
    { kind: 'tcp.fin', t: T0 + 900, conn: 4, side: 'client', idle: { client: 890, upstream: 400 } },
    { kind: 'tcp.fin', t: T0 + 901, conn: 4, side: 'upstream', idle: { client: 1, upstream: 401 } },
    { kind: 'conn.close', t: T0 + 1000, conn: 4, bytes: { fromClient: 10, fromUpstream: 20 } },
  ];

  it('is one error line: observation of the connection stopped, relaying continues (wire text escaped)', () => {
    const n = narrateAll(faulted)[4];
    expect(n).toMatchObject({ level: 'error', fields: { conn: 4, side: 'upstream', where: 'observe', stack: 'Error: bug\n    at x' } });
    expect(n?.msg).toBe(
      "#4 observation stopped: internal fault in wstap's observe (upstream side): bug \\x1b[31m here; relaying continues, only its close is recorded from now on",
    );
  });

  it('the close line still names who closed, and says what the record lacks from the fault on', () => {
    const n = lastLine(faulted);
    expect(n.msg).toMatch(/^#4 closed by client \(client fin\) after 1\.00 s; /);
    expect(n.msg).toMatch(/; not observed after \+0\.25 s \(internal fault\): frames and close frames after that are not in the record$/);
  });

  it('the tracker keeps the first fault of a connection', () => {
    const tracker = new ConnectionTracker();
    for (const e of faulted) tracker.apply(e);
    expect(tracker.get(4)?.observerFault).toMatchObject({ where: 'observe', t: T0 + 250 });
  });
});
