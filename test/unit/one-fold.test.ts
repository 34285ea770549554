import { describe, expect, it } from 'vitest';
import { attributionOf, ConnectionTracker } from '../../src/analysis/connection-tracker.js';
import { DiagnosisChoice, diagnosisRecord } from '../../src/analysis/diagnosis-record.js';
import { narrate, narrateFindings } from '../../src/analysis/event-narrator.js';
import type { Finding } from '../../src/analysis/finding.js';
import type { CaptureEvent, FrameEvent, HandshakeRequestEvent, SessionStartEvent, Side } from '../../src/capture/events.js';
import { NarratedLines } from '../../src/cli/view-lines.js';
import { buildHar } from '../../src/har/har-document.js';
import { harToEvents } from '../../src/har/har-reader.js';
import type { HarEntry } from '../../src/har/har-types.js';
import {
  b64,
  closeEvent,
  finEvent,
  frameEvent,
  handshakeBodyEvent,
  handshakeRequestEvent,
  handshakeResponseEvent,
  httpErrorEvent,
  httpRequestEvent,
  httpResponseEvent,
  openEvent,
  proxyCloseEvent,
  rstEvent,
  T0,
} from '../support/event-fixtures.js';

/**
 * The contract of issue 15 item 2: one capture, three readers. The live proxy
 * (tracker + narrateFindings, as ProxySession.record), `view --no-tui`
 * (NarratedLines) and the HAR's `_wstap.diagnosis` say the same about every
 * connection: the same findings (ids, severities, evidence), who closed it,
 * and whether it was still open when the capture ended. `view FILE.har` of
 * that HAR (a fourth reader) says the same again: the same findings, closers
 * and open states (with --payloads none, the same ids, severities and messages).
 */

/**
 * One context that makes every rule of the fold reachable (a capture holds
 * one session.start, so one context for every connection):
 * - nginx proxy_read_timeout 60 s as a --timeout flag gives it (no place, no
 *   action: it fits a close from either side, of any kind);
 * - two hops in front of wstap at 45 s, both-way idle: the ALB sends a FIN,
 *   what Cloudflare sends is not known, so a FIN at 45 s is a tie and an RST
 *   at 45 s is Cloudflare's alone (the action breaks the tie);
 * - the client pings every 20 s and gives up on a pong after 5 s;
 * - the app needs X-Forwarded-For.
 * Not judged by the fold: `timeout.approaching` comes from TimeoutWatch on the
 * live proxy's ticks (an open connection nearing a timer); `view` and the HAR
 * do not tick, so it is not held to them here. `heartbeat.slower-than-timeout`
 * as a setup warning (heartbeatSetupFindings) is said once at start-up, not
 * per connection; the fold's own one (a cadence too slow) is #28.
 */
const record = diagnosisRecord({ name: 'one-fold', source: 'test' }, ['nginx.proxy_read_timeout=60:upstream-idle'], {
  timeouts: [
    { hop: 'nginx', setting: 'proxy_read_timeout', seconds: 60, measures: 'upstream-idle' },
    { hop: 'aws-alb', setting: 'idle_timeout.timeout_seconds', seconds: 45, measures: 'both-idle', where: 'client-side', action: 'fin' },
    { hop: 'cloudflare', setting: 'proxy_read_timeout', seconds: 45, measures: 'both-idle', where: 'client-side' },
  ],
  requiredHeaders: ['X-Forwarded-For'],
  heartbeat: { from: 'client', kind: 'ws-ping', interval: 20, timeout: 5 },
});

const start: SessionStartEvent = {
  kind: 'session.start',
  t: T0,
  version: '0.1.0',
  mode: 'http',
  listen: '127.0.0.1:8066',
  target: 'http://127.0.0.1:8065',
  pid: 1,
  previewLimit: 256,
  diagnosis: record,
};

const S = 1000;
const idle = (client: number, upstream: number) => ({ client, upstream });
/** Where the connections added for the rules start: after #13's capture gap, so it touches none of them. */
const B = T0 + 100 * S;
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/** A handshake request as nginx passes it on (Upgrade, Connection, X-Forwarded-For), `extra` headers added. */
function request(conn: number, t: number, extra: Array<[string, string]> = [], fields: Partial<HandshakeRequestEvent> = {}): HandshakeRequestEvent {
  return handshakeRequestEvent(conn, t, {
    rawHeaders: [['Host', 'chat.example'], ['Upgrade', 'websocket'], ['Connection', 'Upgrade'], ['X-Forwarded-For', '203.0.113.9'], ...extra],
    ...fields,
  });
}

/** An upgraded WebSocket opened at `t0`; `rest` ends it. */
function websocket(conn: number, t0: number, rest: CaptureEvent[]): CaptureEvent[] {
  return [openEvent(conn, { t: t0 }), request(conn, t0 + 1), handshakeResponseEvent(conn, t0 + 3), ...rest];
}

/** A ping or pong frame carrying `data`. */
function control(conn: number, t: number, side: Side, opcode: 9 | 10, data: string): FrameEvent {
  return frameEvent({ conn, t, side, opcode, length: Buffer.byteLength(data), preview: b64(data) });
}

/** The client's normal close, answered, then both FINs: no timeout or handshake finding of its own. */
function normalClose(conn: number, t: number): CaptureEvent[] {
  return [
    frameEvent({ conn, t, side: 'client', opcode: 8, closeCode: 1000 }),
    frameEvent({ conn, t: t + 1, side: 'upstream', opcode: 8, closeCode: 1000 }),
    finEvent(conn, t + 2, 'upstream'),
    finEvent(conn, t + 3, 'client'),
    closeEvent(conn, t + 4),
  ];
}

/**
 * Every close kind, every handshake and heartbeat rule, timeouts matched,
 * tied, broken by the action and not matched, a connection left open, a
 * stand-in, a gap, an observer fault; interim answers, protocol errors, a
 * cut frame, wstap's own refusals and 502s, a close order backpressure hid.
 */
function oneCapture(): CaptureEvent[] {
  const events: CaptureEvent[] = [start];
  // 1: the client's close frame (normal), answered; then FINs.
  events.push(
    ...websocket(1, T0, [
      frameEvent({ conn: 1, t: T0 + 2 * S, side: 'client', opcode: 8, closeCode: 1000, closeReason: 'bye' }),
      frameEvent({ conn: 1, t: T0 + 2 * S + 1, side: 'upstream', opcode: 8, closeCode: 1000 }),
      finEvent(1, T0 + 2 * S + 2, 'upstream'),
      finEvent(1, T0 + 2 * S + 3, 'client'),
      closeEvent(1, T0 + 2 * S + 4),
    ]),
  );
  // 2: the app's close frame 1011.
  events.push(
    ...websocket(2, T0 + 10, [
      frameEvent({ conn: 2, t: T0 + 3 * S, side: 'upstream', opcode: 8, closeCode: 1011, closeReason: 'oops' }),
      finEvent(2, T0 + 3 * S + 1, 'client'),
      closeEvent(2, T0 + 3 * S + 2),
    ]),
  );
  // 3: nginx's proxy_read_timeout: a FIN 60 s after the app's last byte (timeout.match; no client ping in 60 s: heartbeat.missing).
  events.push(
    ...websocket(3, T0 + 20, [
      frameEvent({ conn: 3, t: T0 + 30, side: 'upstream', opcode: 1, length: 5 }),
      finEvent(3, T0 + 30 + 60 * S, 'client', idle(60 * S, 60 * S)),
      finEvent(3, T0 + 30 + 60 * S + 1, 'upstream', idle(1, 60 * S)),
      closeEvent(3, T0 + 30 + 60 * S + 2),
    ]),
  );
  // 4: the app resets after 5 s (no timeout fits: timeout.none).
  events.push(...websocket(4, T0 + 40, [rstEvent(4, T0 + 5 * S, 'upstream', idle(4 * S, 4 * S)), closeEvent(4, T0 + 5 * S + 1)]));
  // 5: a socket error on the client side.
  events.push(
    ...websocket(5, T0 + 50, [
      { kind: 'tcp.error', t: T0 + 6 * S, conn: 5, side: 'client', code: 'ECONNRESET', message: 'read ECONNRESET', idle: idle(10, 10) },
      closeEvent(5, T0 + 6 * S + 1),
    ]),
  );
  // 6: wstap shut down.
  events.push(...websocket(6, T0 + 60, [proxyCloseEvent(6, T0 + 7 * S, idle(5, 5)), closeEvent(6, T0 + 7 * S + 1)]));
  // 7: a handshake that lost its Upgrade header: plain GET with Sec-WebSocket-Key, answered 426 (handshake.missing-upgrade, handshake.not-upgraded).
  events.push(
    openEvent(7, { t: T0 + 70 }),
    httpRequestEvent(7, T0 + 75, {
      url: '/api/v4/websocket',
      rawHeaders: [['Host', 'chat.example'], ['X-Forwarded-For', '203.0.113.9'], ['Sec-WebSocket-Key', KEY], ['Sec-WebSocket-Version', '13']],
    }),
    httpResponseEvent({ conn: 7, t: T0 + 80, exchange: 1, statusCode: 426, statusMessage: 'Upgrade Required' }),
    finEvent(7, T0 + 90, 'client'),
    finEvent(7, T0 + 91, 'upstream'),
    closeEvent(7, T0 + 92),
  );
  // 8: a refusal (403 with a body: handshake.not-upgraded quoting it).
  events.push(
    openEvent(8, { t: T0 + 100 }),
    request(8, T0 + 101),
    handshakeResponseEvent(8, T0 + 103, { statusCode: 403, reason: 'Forbidden', upgraded: false, rawHeaders: [['Content-Type', 'text/plain']] }),
    handshakeBodyEvent(8, T0 + 104, 'origin not allowed'),
    finEvent(8, T0 + 105, 'upstream'),
    closeEvent(8, T0 + 106),
  );
  // 9: a handshake never answered: the client gave up.
  events.push(openEvent(9, { t: T0 + 110 }), request(9, T0 + 111), finEvent(9, T0 + 4 * S, 'client', idle(3 * S, 3 * S)), closeEvent(9, T0 + 4 * S + 1));
  // 10: still open when the capture ended (wstap was killed): pings, no close, so no close verdict.
  events.push(
    ...websocket(10, T0 + 120, [
      control(10, T0 + 1 * S, 'client', 9, 'p'),
      control(10, T0 + 1 * S + 4, 'upstream', 10, 'p'),
      control(10, T0 + 6 * S, 'client', 9, 'q'),
      frameEvent({ conn: 10, t: T0 + 8 * S, side: 'upstream', opcode: 1, length: 3 }),
    ]),
  );
  // 11: a client FIN 30 s into silence: no timeout of the context fits (timeout.none; heartbeat.missing).
  events.push(
    ...websocket(11, T0 + 130, [finEvent(11, T0 + 30 * S, 'client', idle(29 * S, 29 * S)), finEvent(11, T0 + 30 * S + 1, 'upstream'), closeEvent(11, T0 + 30 * S + 2)]),
  );
  // 12: its conn.open and handshake are in a deleted segment: a stand-in, no verdict on who closed it.
  events.push(
    frameEvent({ conn: 12, t: T0 + 9 * S, side: 'upstream', opcode: 1, length: 4 }),
    finEvent(12, T0 + 9 * S + 5, 'upstream', idle(5, 5)),
    finEvent(12, T0 + 9 * S + 6, 'client', idle(1, 1)),
    closeEvent(12, T0 + 9 * S + 7),
  );
  // 13: the capture lost events while it was open (after #3 and #11 closed, so their verdicts stand): who closed first may be in the lost part.
  events.push(
    ...websocket(13, T0 + 61 * S, [
      { kind: 'capture.gap', t: T0 + 62 * S, from: T0 + 61 * S + 500, lostEvents: 7, code: 'ENOSPC' },
      finEvent(13, T0 + 63 * S, 'client', idle(3, 3)),
      closeEvent(13, T0 + 63 * S + 1),
    ]),
  );
  // 14: wstap's observer failed on it; only its close is recorded after that.
  events.push(
    ...websocket(14, T0 + 150, [
      { kind: 'observer.fault', t: T0 + 12 * S, conn: 14, side: 'client', where: 'observe', message: 'boom' },
      rstEvent(14, T0 + 13 * S, 'client', idle(1 * S, 1 * S)),
      closeEvent(14, T0 + 13 * S + 1),
    ]),
  );
  // 15: a plain HTTP keep-alive connection, two exchanges, then the app closes it (FIN) and the client follows.
  events.push(
    openEvent(15, { t: T0 + 14 * S }),
    httpRequestEvent(15, T0 + 14 * S + 1, { exchange: 1 }),
    httpResponseEvent({ conn: 15, t: T0 + 14 * S + 5, exchange: 1 }),
    httpRequestEvent(15, T0 + 15 * S, { exchange: 2, url: '/api/v4/channels' }),
    httpResponseEvent({ conn: 15, t: T0 + 15 * S + 5, exchange: 2 }),
    finEvent(15, T0 + 20 * S, 'upstream', idle(5 * S, 5 * S)),
    finEvent(15, T0 + 20 * S + 1, 'client'),
    closeEvent(15, T0 + 20 * S + 2),
  );

  // --- Handshake rules ---
  // 16: nginx did not pass X-Forwarded-For, which the app needs (handshake.missing-header); otherwise a normal WebSocket.
  events.push(
    openEvent(16, { t: B }),
    handshakeRequestEvent(16, B + 1),
    handshakeResponseEvent(16, B + 3),
    ...normalClose(16, B + 2 * S),
  );
  // 17: nginx without proxy_http_version 1.1: the handshake reaches the app as a plain HTTP/1.0 GET, and the app answers 400
  // (handshake.missing-upgrade, handshake.http10, handshake.not-upgraded).
  events.push(
    openEvent(17, { t: B + 10 }),
    httpRequestEvent(17, B + 11, {
      url: '/api/v4/websocket',
      httpVersion: '1.0',
      rawHeaders: [['Host', 'chat.example'], ['X-Forwarded-For', '203.0.113.9'], ['Connection', 'close'], ['Sec-WebSocket-Key', KEY], ['Sec-WebSocket-Version', '13']],
    }),
    httpResponseEvent({ conn: 17, t: B + 15, exchange: 1, statusCode: 400, statusMessage: 'Bad Request', httpVersion: '1.0' }),
    finEvent(17, B + 16, 'upstream'),
    finEvent(17, B + 17, 'client'),
    closeEvent(17, B + 18),
  );
  // 18: the app closes the connection before answering the handshake (handshake.no-answer).
  events.push(
    openEvent(18, { t: B + 20 }),
    request(18, B + 21),
    finEvent(18, B + 30, 'upstream', idle(9, 9)),
    finEvent(18, B + 31, 'client'),
    closeEvent(18, B + 32),
  );
  // 19: the app is down: wstap answers 502 itself and ends the connection (handshake.upstream-unreachable).
  events.push(
    openEvent(19, { t: B + 40 }),
    request(19, B + 41),
    httpErrorEvent(19, B + 45),
    closeEvent(19, B + 46),
  );
  // 20: the 101's Sec-WebSocket-Accept is not the key's (handshake.bad-accept); the client fails the connection with an RST.
  events.push(
    openEvent(20, { t: B + 50 }),
    request(20, B + 51, [['Sec-WebSocket-Key', KEY], ['Sec-WebSocket-Version', '13']]),
    handshakeResponseEvent(20, B + 53, { rawHeaders: [['Upgrade', 'websocket'], ['Connection', 'Upgrade'], ['Sec-WebSocket-Accept', 'bm90IHRoZSByaWdodCBvbmU=']] }),
    rstEvent(20, B + 60, 'client', idle(9, 7)),
    closeEvent(20, B + 61),
  );
  // 21: the app accepts permessage-deflate, which the request did not offer (handshake.unoffered-extension); the client closes 1002.
  events.push(
    openEvent(21, { t: B + 70 }),
    request(21, B + 71),
    handshakeResponseEvent(21, B + 73, {
      rawHeaders: [['Upgrade', 'websocket'], ['Connection', 'Upgrade'], ['Sec-WebSocket-Extensions', 'permessage-deflate']],
      deflate: { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 },
    }),
    frameEvent({ conn: 21, t: B + 80, side: 'client', opcode: 8, closeCode: 1002 }),
    finEvent(21, B + 81, 'upstream'),
    finEvent(21, B + 82, 'client'),
    closeEvent(21, B + 83),
  );
  // 22: the app chooses subprotocol mqtt; the request offered chat only (handshake.unoffered-subprotocol); the client closes 1002.
  events.push(
    openEvent(22, { t: B + 90 }),
    request(22, B + 91, [['Sec-WebSocket-Protocol', 'chat']]),
    handshakeResponseEvent(22, B + 93, { rawHeaders: [['Upgrade', 'websocket'], ['Connection', 'Upgrade'], ['Sec-WebSocket-Protocol', 'mqtt']] }),
    frameEvent({ conn: 22, t: B + 100, side: 'client', opcode: 8, closeCode: 1002 }),
    finEvent(22, B + 101, 'upstream'),
    finEvent(22, B + 102, 'client'),
    closeEvent(22, B + 103),
  );

  // --- Heartbeat rules (the profile: the client pings every 20 s and waits 5 s for the pong) ---
  // 23: the client pings every 10 s, not 20 (heartbeat.interval-differs), and one pong comes after 6 s (heartbeat.late-pong).
  events.push(
    ...websocket(23, B + 200, [
      control(23, B + 1 * S, 'client', 9, 'a'),
      control(23, B + 1 * S + 5, 'upstream', 10, 'a'),
      control(23, B + 11 * S, 'client', 9, 'b'),
      control(23, B + 17 * S, 'upstream', 10, 'b'),
      control(23, B + 21 * S, 'client', 9, 'c'),
      control(23, B + 21 * S + 5, 'upstream', 10, 'c'),
      ...normalClose(23, B + 25 * S),
    ]),
  );
  // 24: the app never answers the client's pings (heartbeat.unanswered); the client gives up with a FIN (timeout.none).
  events.push(
    ...websocket(24, B + 210, [
      control(24, B + 20 * S, 'client', 9, 'x'),
      control(24, B + 40 * S, 'client', 9, 'y'),
      finEvent(24, B + 50 * S, 'client', idle(10 * S, 50 * S)),
      finEvent(24, B + 50 * S + 1, 'upstream'),
      closeEvent(24, B + 50 * S + 2),
    ]),
  );
  // 25: a pong from the client with the client's own ping data: it travelled the ping's way (heartbeat.same-direction-pong).
  events.push(...websocket(25, B + 220, [control(25, B + 1 * S, 'client', 9, 'me'), control(25, B + 1 * S + 2, 'client', 10, 'me'), ...normalClose(25, B + 2 * S)]));
  // 26: the app answers the client's ping with other data (heartbeat.pong-mismatch), then with the right data.
  events.push(
    ...websocket(26, B + 230, [
      control(26, B + 1 * S, 'client', 9, 'p1'),
      control(26, B + 1 * S + 2, 'upstream', 10, 'zz'),
      control(26, B + 1 * S + 3, 'upstream', 10, 'p1'),
      ...normalClose(26, B + 2 * S),
    ]),
  );
  // 27: the app sends pongs nobody asked for, a one-way heartbeat (heartbeat.unsolicited-pong).
  events.push(...websocket(27, B + 240, [control(27, B + 1 * S, 'upstream', 10, 'hb'), ...normalClose(27, B + 2 * S)]));
  // 28: the app pings every 50 s, slower than the 45 s both-way idle timers in front (heartbeat.slower-than-timeout); the client answers;
  // the client itself never pings (heartbeat.missing).
  events.push(
    ...websocket(28, B + 250, [
      control(28, B + 1 * S, 'upstream', 9, 'u1'),
      control(28, B + 1 * S + 3, 'client', 10, 'u1'),
      control(28, B + 51 * S, 'upstream', 9, 'u2'),
      control(28, B + 51 * S + 3, 'client', 10, 'u2'),
      ...normalClose(28, B + 55 * S),
    ]),
  );

  // --- Timeout verdicts ---
  // 29: a client FIN after 45 s of silence both ways: the ALB (FIN) and Cloudflare (action unknown) both fit (timeout.ambiguous).
  events.push(
    ...websocket(29, B + 300, [
      frameEvent({ conn: 29, t: B + 1 * S, side: 'upstream', opcode: 1, length: 5 }),
      finEvent(29, B + 46 * S, 'client', idle(45 * S, 45 * S)),
      finEvent(29, B + 46 * S + 1, 'upstream'),
      closeEvent(29, B + 46 * S + 2),
    ]),
  );
  // 30: the same silence ended by an RST: the ALB sends a FIN, so only Cloudflare fits (timeout.match, the ALB ruled out by the action).
  events.push(
    ...websocket(30, B + 310, [
      frameEvent({ conn: 30, t: B + 1 * S, side: 'upstream', opcode: 1, length: 5 }),
      rstEvent(30, B + 46 * S, 'client', idle(45 * S, 45 * S)),
      closeEvent(30, B + 46 * S + 1),
    ]),
  );

  // --- What else the relay records ---
  // 31: a 103 Early Hints before the 101, then a normal close.
  events.push(
    openEvent(31, { t: B + 400 }),
    request(31, B + 401),
    { kind: 'ws.handshake.interim', t: B + 402, conn: 31, statusCode: 103, reason: 'Early Hints', httpVersion: '1.1', rawHeaders: [['Link', '</app.js>; rel=preload']], headLength: 60, waitMs: 1 },
    handshakeResponseEvent(31, B + 404),
    ...normalClose(31, B + 2 * S),
  );
  // 32: the client sends an unmasked frame (a protocol error); the app closes 1002.
  events.push(
    ...websocket(32, B + 410, [
      frameEvent({ conn: 32, t: B + 1 * S, side: 'client', opcode: 1, masked: false, length: 3 }),
      { kind: 'ws.protocol-error', t: B + 1 * S, conn: 32, side: 'client', code: 'UNMASKED', message: 'a client frame must be masked', offset: 0, frameIndex: 0 },
      frameEvent({ conn: 32, t: B + 1 * S + 1, side: 'upstream', opcode: 8, closeCode: 1002 }),
      finEvent(32, B + 1 * S + 2, 'upstream'),
      finEvent(32, B + 1 * S + 3, 'client'),
      closeEvent(32, B + 1 * S + 4),
    ]),
  );
  // 33: the app resets in the middle of a 5000-byte binary frame (a cut frame).
  events.push(
    ...websocket(33, B + 420, [
      frameEvent({ conn: 33, t: B + 1 * S, side: 'upstream', opcode: 1, length: 5 }),
      rstEvent(33, B + 3 * S, 'upstream', idle(3 * S, 1 * S)),
      { kind: 'ws.frame.cut', t: B + 3 * S + 1, conn: 33, side: 'upstream', index: 1, offset: 7, started: B + 2 * S, received: 100, opcode: 2, length: 5000, payloadReceived: 96 },
      closeEvent(33, B + 3 * S + 2),
    ]),
  );
  // 34: wstap refuses a request whose head is too large (431) and closes.
  events.push(
    openEvent(34, { t: B + 430 }),
    { kind: 'http.rejected', t: B + 431, conn: 34, method: 'GET', url: '/api/v4/websocket', statusCode: 431, reason: 'request head larger than 16384 bytes' },
    closeEvent(34, B + 432),
  );
  // 35: the app answers the handshake with something that is not HTTP (ws.handshake.error), then closes.
  events.push(
    openEvent(35, { t: B + 440 }),
    request(35, B + 441),
    { kind: 'ws.handshake.error', t: B + 443, conn: 35, code: 'HPE_INVALID_CONSTANT', message: 'Expected HTTP/', offset: 0 },
    finEvent(35, B + 444, 'upstream', idle(3, 1)),
    finEvent(35, B + 445, 'client'),
    closeEvent(35, B + 446),
  );
  // 36: a plain request whose response the app cut short with an RST.
  events.push(
    openEvent(36, { t: B + 450 }),
    httpRequestEvent(36, B + 451),
    { kind: 'http.error', t: B + 460, conn: 36, exchange: 1, stage: 'response', code: 'ECONNRESET', message: 'socket hang up', answeredStatus: null },
    rstEvent(36, B + 460, 'upstream', idle(9, 2)),
    closeEvent(36, B + 461),
  );
  // 37: a plain request while the app is down: wstap answers 502.
  events.push(openEvent(37, { t: B + 470 }), httpRequestEvent(37, B + 471), httpErrorEvent(37, B + 473), closeEvent(37, B + 474));
  // 38: both sides' FINs read in one paused period (backpressure): the order is unknown, no side is named.
  events.push(
    ...websocket(38, B + 480, [
      frameEvent({ conn: 38, t: B + 1 * S, side: 'upstream', opcode: 2, length: 65536 }),
      finEvent(38, B + 2 * S, 'upstream', idle(2 * S, 1 * S), { client: B + 1 * S + 500 }),
      finEvent(38, B + 2 * S + 5, 'client', idle(2 * S, 1 * S), { client: B + 1 * S + 500 }),
      closeEvent(38, B + 2 * S + 6),
    ]),
  );
  // Events are written in time order.
  return events.sort((a, b) => a.t - b.t);
}

interface ConnectionSaying {
  findings: Finding[];
  closedBy: string | null;
  open: boolean;
}

const clock = (t: number): string => new Date(t).toISOString().slice(11, 23);

/** The live proxy's fold, as ProxySession.record runs it; also the lines `view --no-tui` must print. */
function live(events: CaptureEvent[]): { byConn: Map<number, ConnectionSaying>; lines: string[] } {
  const tracker = new ConnectionTracker();
  const byConn = new Map<number, ConnectionSaying>();
  const lines: string[] = [];
  const line = (t: number, level: string, msg: string) => lines.push(`${clock(t)} ${level.toUpperCase().padEnd(5)} ${msg}`);
  for (const event of events) {
    const summary = tracker.apply(event);
    const said = narrate(event, summary);
    if (said) line(event.t, said.level, said.msg);
    for (const f of narrateFindings(event, summary, record.context)) {
      if (f.level !== 'debug') line(event.t, f.level, f.msg);
      const conn = (f.fields as { conn: number }).conn;
      const saying = byConn.get(conn) ?? { findings: [], closedBy: null, open: true };
      saying.findings.push((f.fields as { finding: Finding }).finding);
      byConn.set(conn, saying);
    }
  }
  for (const s of [...tracker.live, ...tracker.closed]) {
    const saying = byConn.get(s.conn) ?? { findings: [], closedBy: null, open: true };
    saying.closedBy = attributionOf(s).closedBy;
    saying.open = s.state !== 'closed';
    byConn.set(s.conn, saying);
  }
  return { byConn, lines };
}

function viewLines(events: CaptureEvent[]): string[] {
  const view = new NarratedLines(new DiagnosisChoice(null));
  return events.flatMap((event) => view.linesOf(event));
}

function harSaying(events: CaptureEvent[]): Map<number, ConnectionSaying> {
  const byConn = new Map<number, ConnectionSaying>();
  for (const entry of buildHar(events, { payloads: 'preview', redact: false }, '0.1.0').log.entries as HarEntry[]) {
    const w = entry._wstap;
    if (!w) continue;
    const conn = Number(entry.connection);
    const saying = byConn.get(conn) ?? { findings: [], closedBy: null, open: false };
    saying.findings.push(...w.diagnosis);
    if (entry._resourceType === 'websocket' || w.closeEvents.length > 0) saying.closedBy = w.closedBy;
    saying.open = w.openAtEnd === true;
    byConn.set(conn, saying);
  }
  return byConn;
}

/** `view` of the HAR the capture exported: who closed each connection, and which are still open. */
function harReadBack(events: CaptureEvent[]): Map<number, { closedBy: string | null; open: boolean }> {
  const har = JSON.stringify(buildHar(events, { payloads: 'preview', redact: false }, '0.1.0'));
  const tracker = new ConnectionTracker();
  for (const event of harToEvents(har, 'one.har').events) tracker.apply(event);
  const out = new Map<number, { closedBy: string | null; open: boolean }>();
  for (const s of [...tracker.live, ...tracker.closed]) out.set(s.conn, { closedBy: attributionOf(s).closedBy, open: s.state !== 'closed' });
  return out;
}

/** Every connection of the capture. */
const CONNS = Array.from({ length: 38 }, (_, i) => i + 1);

describe('one capture, three readers', () => {
  const events = oneCapture();
  const fromLive = live(events);
  const fromHar = harSaying(events);

  it('covers what it claims: every rule the fold judges, every close kind, one left open, a stand-in, a gap', () => {
    const ids = new Set([...fromLive.byConn.values()].flatMap((s) => s.findings.map((f) => f.id)));
    expect([...ids].sort()).toEqual([
      'handshake.bad-accept',
      'handshake.http10',
      'handshake.missing-header',
      'handshake.missing-upgrade',
      'handshake.no-answer',
      'handshake.not-upgraded',
      'handshake.unoffered-extension',
      'handshake.unoffered-subprotocol',
      'handshake.upstream-unreachable',
      'heartbeat.interval-differs',
      'heartbeat.late-pong',
      'heartbeat.missing',
      'heartbeat.pong-mismatch',
      'heartbeat.same-direction-pong',
      'heartbeat.slower-than-timeout',
      'heartbeat.unanswered',
      'heartbeat.unsolicited-pong',
      'timeout.ambiguous',
      'timeout.match',
      'timeout.none',
    ]);
    // Each scenario gives the finding its comment names, on its own connection.
    const idsOf = (conn: number) => fromLive.byConn.get(conn)?.findings.map((f) => f.id) ?? [];
    expect(idsOf(3)).toContain('timeout.match');
    expect(idsOf(7)).toEqual(['handshake.missing-upgrade', 'handshake.not-upgraded', 'timeout.none']);
    expect(idsOf(16)).toEqual(['handshake.missing-header']);
    expect(idsOf(17)).toEqual(['handshake.missing-upgrade', 'handshake.http10', 'handshake.not-upgraded', 'timeout.none']);
    expect(idsOf(18)).toContain('handshake.no-answer');
    expect(idsOf(19)).toEqual(['handshake.upstream-unreachable']);
    expect(idsOf(20)).toContain('handshake.bad-accept');
    expect(idsOf(21)).toEqual(['handshake.unoffered-extension']);
    expect(idsOf(22)).toEqual(['handshake.unoffered-subprotocol']);
    expect(idsOf(23)).toEqual(['heartbeat.interval-differs', 'heartbeat.late-pong']);
    expect(idsOf(24)).toEqual(['timeout.none', 'heartbeat.unanswered']);
    expect(idsOf(25)).toEqual(['heartbeat.same-direction-pong']);
    expect(idsOf(26)).toEqual(['heartbeat.pong-mismatch']);
    expect(idsOf(27)).toEqual(['heartbeat.unsolicited-pong']);
    expect(idsOf(28)).toEqual(['heartbeat.slower-than-timeout', 'heartbeat.missing']);
    expect(idsOf(29)).toEqual(['timeout.ambiguous', 'heartbeat.missing']);
    expect(idsOf(30)).toEqual(['timeout.match', 'heartbeat.missing']);
    expect(fromLive.byConn.get(30)?.findings[0]?.message).toContain('cloudflare');
    // Every close kind: close frames from either side, FIN, RST, a socket error, wstap's own; none (never closed).
    const firstKinds = [1, 2, 3, 4, 5, 6].map((conn) => fromLive.byConn.get(conn)?.closedBy);
    expect(firstKinds).toEqual(['client', 'upstream', 'client', 'upstream', 'client', 'proxy']);
    expect(fromLive.byConn.get(10)?.open).toBe(true);
    expect(fromLive.byConn.get(10)?.findings).toEqual([]);
    expect(fromLive.byConn.get(12)?.closedBy).toBeNull();
    expect(fromLive.byConn.get(13)?.closedBy).toBeNull();
    expect(fromLive.byConn.get(14)?.closedBy).toBe('client');
    expect(fromLive.byConn.get(15)?.closedBy).toBe('upstream');
    // Both FINs read in one paused period: no side named.
    expect(fromLive.byConn.get(38)?.closedBy).toBeNull();
    expect(idsOf(38)).toEqual([]);
    expect([...fromLive.byConn.keys()].sort((a, b) => a - b)).toEqual(CONNS);
  });

  it('view --no-tui prints exactly the lines the live proxy logs', () => {
    expect(viewLines(events)).toEqual(fromLive.lines);
  });

  for (const conn of CONNS) {
    it(`#${conn}: the HAR's diagnosis, closedBy and open state are the live fold's`, () => {
      const want = fromLive.byConn.get(conn);
      const got = fromHar.get(conn);
      expect(got).toBeDefined();
      expect(got?.findings.map((f) => [f.id, f.severity])).toEqual(want?.findings.map((f) => [f.id, f.severity]));
      expect(got?.findings).toEqual(want?.findings);
      expect(got?.closedBy).toBe(want?.closedBy);
      expect(got?.open).toBe(want?.open);
    });
  }

  it('a plain HTTP connection\'s close rides on its last entry; the entries before it carry none', () => {
    const entries = buildHar(events, { payloads: 'preview', redact: false }, '0.1.0').log.entries.filter((e) => e.connection === '15');
    expect(entries.map((e) => e.request.url)).toEqual(['http://chat.example/api/v4/users/me', 'http://chat.example/api/v4/channels']);
    expect(entries[0]?._wstap?.closeEvents).toEqual([]);
    expect(entries[1]?._wstap?.closedBy).toBe('upstream');
    expect(entries[1]?._wstap?.closeEvents.map((e) => [e.side, e.kind])).toEqual([['upstream', 'fin'], ['client', 'fin']]);
  });

  it('the HAR read back (`view` of it) keeps the connection left open open, and who closed every other one', () => {
    const back = harReadBack(events);
    expect(back.get(10)?.open).toBe(true);
    for (const conn of CONNS.filter((c) => c !== 10)) {
      expect(back.get(conn), `#${conn}`).toEqual({ closedBy: fromLive.byConn.get(conn)?.closedBy, open: false });
    }
  });

  it('with --payloads none, the HAR read back still gives every connection the live fold\'s finding ids, severities and messages', () => {
    // Pings and pongs pair by payloadId; the evidence may differ (a refusal's body cannot be quoted without its text).
    const back = live(harToEvents(JSON.stringify(buildHar(events, { payloads: 'none', redact: false }, '0.1.0')), 'none.har').events).byConn;
    for (const conn of CONNS) {
      const want = fromLive.byConn.get(conn)?.findings ?? [];
      expect(back.get(conn)?.findings.map((f) => [f.id, f.severity, f.message]) ?? [], `#${conn}`).toEqual(want.map((f) => [f.id, f.severity, f.message]));
    }
  });

  const harText = JSON.stringify(buildHar(events, { payloads: 'preview', redact: false }, '0.1.0'));
  const fromHarBack = live(harToEvents(harText, 'one.har').events).byConn;
  for (const conn of CONNS) {
    it(`#${conn}: the HAR read back gives the live fold's findings (ids, severities, messages, evidence, fixes)`, () => {
      const want = fromLive.byConn.get(conn)?.findings ?? [];
      expect(fromHarBack.get(conn)?.findings.map((f) => [f.id, f.severity, f.message]) ?? []).toEqual(want.map((f) => [f.id, f.severity, f.message]));
      expect(fromHarBack.get(conn)?.findings ?? []).toEqual(want);
    });
  }
});
