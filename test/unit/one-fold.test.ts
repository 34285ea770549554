import { describe, expect, it } from 'vitest';
import { attributionOf, ConnectionTracker } from '../../src/analysis/connection-tracker.js';
import { DiagnosisChoice, diagnosisRecord } from '../../src/analysis/diagnosis-record.js';
import { narrate, narrateFindings } from '../../src/analysis/event-narrator.js';
import type { Finding } from '../../src/analysis/finding.js';
import type { CaptureEvent, SessionStartEvent } from '../../src/capture/events.js';
import { NarratedLines } from '../../src/cli/view-lines.js';
import { buildHar } from '../../src/har/har-document.js';
import { harToEvents } from '../../src/har/har-reader.js';
import type { HarEntry } from '../../src/har/har-types.js';
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
  proxyCloseEvent,
  rstEvent,
  T0,
} from '../support/event-fixtures.js';

/**
 * The contract of issue 15 item 2: one capture, three readers. The live proxy
 * (tracker + narrateFindings, as ProxySession.record), `view --no-tui`
 * (NarratedLines) and the HAR's `_wstap.diagnosis` say the same about every
 * connection: the same findings (ids, severities, evidence), who closed it,
 * and whether it was still open when the capture ended.
 */

const record = diagnosisRecord(null, ['nginx.proxy_read_timeout=60'], {
  timeouts: [{ hop: 'nginx', setting: 'proxy_read_timeout', seconds: 60, measures: 'upstream-idle' }],
  requiredHeaders: [],
  heartbeat: { from: 'client', kind: 'ws-ping', interval: 1, timeout: 2 },
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

/** An upgraded WebSocket opened at `t0`; `rest` ends it. */
function websocket(conn: number, t0: number, rest: CaptureEvent[]): CaptureEvent[] {
  return [openEvent(conn, { t: t0 }), handshakeRequestEvent(conn, t0 + 1), handshakeResponseEvent(conn, t0 + 3), ...rest];
}

/** Every close kind, every handshake rule, timeouts matched and not, a connection left open, a stand-in, a gap, an observer fault. */
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
  // 3: nginx's proxy_read_timeout: a FIN from the upstream side 60 s after the app's last byte (matched).
  events.push(
    ...websocket(3, T0 + 20, [
      frameEvent({ conn: 3, t: T0 + 30, side: 'upstream', opcode: 1, length: 5 }),
      finEvent(3, T0 + 30 + 60 * S, 'client', idle(60 * S, 60 * S)),
      finEvent(3, T0 + 30 + 60 * S + 1, 'upstream', idle(1, 60 * S)),
      closeEvent(3, T0 + 30 + 60 * S + 2),
    ]),
  );
  // 4: the app resets after 5 s (no timeout fits).
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
  // 7: a handshake that lost its Upgrade header: plain GET with Sec-WebSocket-Key, answered 426.
  events.push(
    openEvent(7, { t: T0 + 70 }),
    httpRequestEvent(7, T0 + 75, { url: '/api/v4/websocket', rawHeaders: [['Host', 'chat.example'], ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='], ['Sec-WebSocket-Version', '13']] }),
    httpResponseEvent({ conn: 7, t: T0 + 80, exchange: 1, statusCode: 426, statusMessage: 'Upgrade Required' }),
    finEvent(7, T0 + 90, 'client'),
    finEvent(7, T0 + 91, 'upstream'),
    closeEvent(7, T0 + 92),
  );
  // 8: a refusal (403 with a body).
  events.push(
    openEvent(8, { t: T0 + 100 }),
    handshakeRequestEvent(8, T0 + 101),
    handshakeResponseEvent(8, T0 + 103, { statusCode: 403, reason: 'Forbidden', upgraded: false, rawHeaders: [['Content-Type', 'text/plain']] }),
    handshakeBodyEvent(8, T0 + 104, 'origin not allowed'),
    finEvent(8, T0 + 105, 'upstream'),
    closeEvent(8, T0 + 106),
  );
  // 9: a handshake never answered: the client gave up.
  events.push(openEvent(9, { t: T0 + 110 }), handshakeRequestEvent(9, T0 + 111), finEvent(9, T0 + 4 * S, 'client', idle(3 * S, 3 * S)), closeEvent(9, T0 + 4 * S + 1));
  // 10: still open when the capture ended (wstap was killed): pings, no close.
  events.push(
    ...websocket(10, T0 + 120, [
      frameEvent({ conn: 10, t: T0 + 1 * S, side: 'client', opcode: 9, preview: 'cA==' }),
      frameEvent({ conn: 10, t: T0 + 1 * S + 4, side: 'upstream', opcode: 10, preview: 'cA==' }),
      frameEvent({ conn: 10, t: T0 + 6 * S, side: 'client', opcode: 9, preview: 'cQ==' }),
      frameEvent({ conn: 10, t: T0 + 8 * S, side: 'upstream', opcode: 1, length: 3 }),
    ]),
  );
  // 11: a client FIN 30 s into silence: no timeout of the context fits.
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

describe('one capture, three readers', () => {
  const events = oneCapture();
  const fromLive = live(events);
  const fromHar = harSaying(events);

  it('covers what it claims: every close kind, both handshake refusals, a timeout matched and one not, one left open', () => {
    const ids = [...fromLive.byConn.values()].flatMap((s) => s.findings.map((f) => f.id));
    expect(ids).toEqual(expect.arrayContaining(['timeout.match', 'timeout.none', 'handshake.missing-upgrade']));
    expect(fromLive.byConn.get(10)?.open).toBe(true);
    expect(fromLive.byConn.get(12)?.closedBy).toBeNull();
    expect(fromLive.byConn.get(13)?.closedBy).toBeNull();
    expect(fromLive.byConn.get(14)?.closedBy).toBe('client');
    expect(fromLive.byConn.get(15)?.closedBy).toBe('upstream');
    expect([...fromLive.byConn.keys()].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
  });

  it('view --no-tui prints exactly the lines the live proxy logs', () => {
    expect(viewLines(events)).toEqual(fromLive.lines);
  });

  for (const conn of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]) {
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
    for (const conn of [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15]) {
      expect(back.get(conn), `#${conn}`).toEqual({ closedBy: fromLive.byConn.get(conn)?.closedBy, open: false });
    }
  });

  it('the HAR read back gives every connection the live fold\'s finding ids, severities and messages', () => {
    const har = JSON.stringify(buildHar(events, { payloads: 'preview', redact: false }, '0.1.0'));
    const back = live(harToEvents(har, 'one.har').events).byConn;
    for (const [conn, want] of fromLive.byConn) {
      expect(back.get(conn)?.findings.map((f) => [f.id, f.severity, f.message]) ?? [], `#${conn}`).toEqual(want.findings.map((f) => [f.id, f.severity, f.message]));
    }
  });
});
