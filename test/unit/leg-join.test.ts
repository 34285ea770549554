import { describe, expect, it } from 'vitest';
import { ConnectionTracker } from '../../src/analysis/connection-tracker.js';
import { closeNarration } from '../../src/analysis/event-narrator.js';
import type { CaptureEvent, ConnOpenEvent, HandshakeRequestEvent } from '../../src/capture/events.js';
import { LegJoin } from '../../src/pcap/leg-join.js';
import { T0, closeEvent, finEvent, rstEvent } from '../support/event-fixtures.js';

function open(conn: number, address: string, port: number, localPort: number, t: number): ConnOpenEvent {
  return { kind: 'conn.open', t, conn, mode: 'tcp', remoteAddress: address, remotePort: port, localPort };
}

function request(conn: number, t: number, headers: Array<[string, string]>): HandshakeRequestEvent {
  return { kind: 'ws.handshake.request', t, conn, method: 'GET', url: '/ws', httpVersion: '1.1', rawHeaders: headers, headLength: 100 };
}

describe('LegJoin', () => {
  it('one front connection from the named client open at the request: joined by address and time', () => {
    const join = new LegJoin();
    for (const e of [open(1, '198.51.100.9', 61000, 443, T0), open(2, '127.0.0.1', 50000, 8065, T0 + 5)]) join.note(e);
    expect(join.note(request(2, T0 + 6, [['X-Real-IP', '198.51.100.9']]))).toEqual({ kind: 'conn.front', t: T0 + 6, conn: 2, front: 1, matchedBy: 'address+time', candidates: 1, client: '198.51.100.9' });
  });

  it('two fit: no join, the count said; a port header makes it exact', () => {
    const join = new LegJoin();
    for (const e of [open(1, '198.51.100.9', 61000, 443, T0), open(2, '198.51.100.9', 61001, 443, T0 + 1), open(3, '127.0.0.1', 50000, 8065, T0 + 5)]) join.note(e);
    expect(join.note(request(3, T0 + 6, [['X-Forwarded-For', '198.51.100.9, 10.0.0.1']]))).toMatchObject({ front: null, matchedBy: null, candidates: 2 });
    expect(join.note(request(3, T0 + 6, [['X-Real-IP', '198.51.100.9'], ['X-Real-Port', '61001']]))).toMatchObject({ front: 2, matchedBy: 'address+port', client: '198.51.100.9:61001' });
  });

  it('a front connection closed before the request, or none from that client: nothing', () => {
    const join = new LegJoin();
    for (const e of [open(1, '198.51.100.9', 61000, 443, T0), closeEvent(1, T0 + 2), open(2, '127.0.0.1', 50000, 8065, T0 + 5)] as CaptureEvent[]) join.note(e);
    expect(join.note(request(2, T0 + 6, [['X-Real-IP', '198.51.100.9']]))).toBeNull();
    expect(join.note(request(2, T0 + 6, [['X-Real-IP', '203.0.113.1']]))).toBeNull();
  });
});

describe('the close verdict with a joined front leg', () => {
  function verdict(events: CaptureEvent[], back: number): string {
    const tracker = new ConnectionTracker();
    for (const e of events) tracker.apply(e);
    const summary = tracker.get(back);
    if (!summary) throw new Error('no summary');
    return closeNarration(summary).msg;
  }
  const join = (front: number | null, candidates = 1): CaptureEvent => ({ kind: 'conn.front', t: T0 + 6, conn: 2, front, matchedBy: front === null ? null : 'address+time', candidates, client: '198.51.100.9' });

  it('the front leg reset first: the client side cut it', () => {
    const events: CaptureEvent[] = [open(1, '198.51.100.9', 61000, 443, T0), open(2, '127.0.0.1', 50000, 8065, T0 + 5), join(1), rstEvent(1, T0 + 100, 'client'), finEvent(2, T0 + 103, 'client'), finEvent(2, T0 + 104, 'upstream'), closeEvent(2, T0 + 104)];
    expect(verdict(events, 2)).toMatch(/closed by client \(client fin\).*; the front leg \(#1, matched by the client's address 198\.51\.100\.9 and time\) closed first: client rst 3\.0 ms before this leg's first evidence: the client side cut it, nginx followed$/);
  });

  it('ambiguous: said, not guessed', () => {
    const events: CaptureEvent[] = [open(2, '127.0.0.1', 50000, 8065, T0 + 5), join(null, 2), finEvent(2, T0 + 103, 'upstream'), closeEvent(2, T0 + 104)];
    expect(verdict(events, 2)).toMatch(/; front leg unknown: 2 connections from 198\.51\.100\.9 were open at the request \(name the client's port to nginx's upstream: proxy_set_header X-Real-Port \$remote_port\)$/);
  });
});
