import { finEvent, frameEvent, rstEvent } from '../support/event-fixtures.js';
import { describe, it, expect } from 'vitest';
import {
  attributeClose,
  closeEvidenceOf,
  describeEvidence,
  describeOrderUnknown,
  describeUnread,
  type CloseEvidence,
} from '../../src/analysis/close-attribution.js';
import type { CaptureEvent, FrameEvent, Idle, Side } from '../../src/capture/events.js';

function frame(t: number, side: Side, opcode: number, extra: Partial<FrameEvent> = {}): FrameEvent {
  return frameEvent({ conn: 3, t, side, opcode, ...extra });
}

const idle: Idle = { client: 1234.5, upstream: 6.25 };

describe('closeEvidenceOf', () => {
  it('maps a close frame with code, reason and idle', () => {
    const e = frame(100.5, 'upstream', 8, { length: 5, closeCode: 1001, closeReason: 'bye', idle });
    expect(closeEvidenceOf(e)).toStrictEqual({ side: 'upstream', kind: 'close-frame', t: 100.5, code: 1001, reason: 'bye', idle });
  });

  it('maps a close frame without a body to evidence with no code, reason or idle keys', () => {
    const evidence = closeEvidenceOf(frame(7, 'client', 8));
    expect(evidence).toStrictEqual({ side: 'client', kind: 'close-frame', t: 7 });
    expect(evidence && 'code' in evidence).toBe(false);
    expect(evidence && 'idle' in evidence).toBe(false);
  });

  it('keeps an empty close reason', () => {
    expect(closeEvidenceOf(frame(7, 'client', 8, { closeCode: 1000, closeReason: '' }))).toStrictEqual({
      side: 'client',
      kind: 'close-frame',
      t: 7,
      code: 1000,
      reason: '',
    });
  });

  it('returns null for every non-close frame', () => {
    for (const opcode of [0, 1, 2, 9, 10]) {
      expect(closeEvidenceOf(frame(1, 'client', opcode))).toBeNull();
    }
  });

  it('maps tcp.fin', () => {
    expect(closeEvidenceOf({ kind: 'tcp.fin', t: 10, conn: 1, side: 'client', idle })).toStrictEqual({
      side: 'client',
      kind: 'fin',
      t: 10,
      idle,
    });
  });

  it('maps tcp.rst', () => {
    expect(closeEvidenceOf({ kind: 'tcp.rst', t: 11, conn: 1, side: 'upstream', idle })).toStrictEqual({
      side: 'upstream',
      kind: 'rst',
      t: 11,
      idle,
    });
  });

  it('maps tcp.error with its code as the error', () => {
    expect(
      closeEvidenceOf({ kind: 'tcp.error', t: 12, conn: 1, side: 'upstream', code: 'ECONNRESET', message: 'read ECONNRESET', idle }),
    ).toStrictEqual({ side: 'upstream', kind: 'error', t: 12, error: 'ECONNRESET', idle });
  });

  it('maps proxy.close to a fin by the proxy with its reason', () => {
    expect(closeEvidenceOf({ kind: 'proxy.close', t: 13, conn: 1, reason: 'shutdown', idle })).toStrictEqual({
      side: 'proxy',
      kind: 'fin',
      t: 13,
      reason: 'shutdown',
      idle,
    });
  });

  it('returns null for events that are not close evidence', () => {
    const others: CaptureEvent[] = [
      { kind: 'conn.open', t: 1, conn: 1, mode: 'http', remoteAddress: '127.0.0.1', remotePort: 1, localPort: 2 },
      { kind: 'conn.close', t: 2, conn: 1, bytes: { fromClient: 0, fromUpstream: 0 } },
      { kind: 'ws.protocol-error', t: 3, conn: 1, side: 'client', code: 'X', message: 'm', offset: 0, frameIndex: 0 },
      { kind: 'session.end', t: 4, reason: 'done', droppedEvents: 0 },
    ];
    for (const e of others) expect(closeEvidenceOf(e)).toBeNull();
  });
});

function ev(side: CloseEvidence['side'], kind: CloseEvidence['kind'], t: number, extra: Partial<CloseEvidence> = {}): CloseEvidence {
  return { side, kind, t, ...extra };
}

describe('attributeClose', () => {
  it('returns nulls when there is no evidence', () => {
    expect(attributeClose([])).toStrictEqual({ closedBy: null, first: null, idleBeforeCloseMs: null });
  });

  it('picks the only evidence', () => {
    const only = ev('client', 'fin', 5, { idle });
    expect(attributeClose([only])).toStrictEqual({ closedBy: 'client', first: only, idleBeforeCloseMs: idle });
  });

  it('picks the earliest by t even when it was recorded later', () => {
    const late = ev('client', 'fin', 200.75);
    const early = ev('upstream', 'close-frame', 200.5, { code: 1000 });
    const latest = ev('client', 'close-frame', 300);
    const result = attributeClose([late, latest, early]);
    expect(result.closedBy).toBe('upstream');
    expect(result.first).toBe(early);
  });

  it('keeps recording order on ties', () => {
    const a = ev('upstream', 'fin', 50);
    const b = ev('client', 'fin', 50);
    expect(attributeClose([a, b]).first).toBe(a);
    expect(attributeClose([a, b]).closedBy).toBe('upstream');
    expect(attributeClose([b, a]).first).toBe(b);
    expect(attributeClose([b, a]).closedBy).toBe('client');
  });

  it('keeps recording order on a tie that comes after a later first entry', () => {
    const later = ev('proxy', 'fin', 60);
    const a = ev('upstream', 'rst', 40);
    const b = ev('client', 'rst', 40);
    expect(attributeClose([later, a, b]).first).toBe(a);
  });

  it('passes the first evidence idle through as idleBeforeCloseMs', () => {
    const firstIdle: Idle = { client: 30_000, upstream: 12 };
    const result = attributeClose([ev('client', 'fin', 20, { idle: { client: 1, upstream: 1 } }), ev('upstream', 'fin', 10, { idle: firstIdle })]);
    expect(result.idleBeforeCloseMs).toStrictEqual(firstIdle);
  });

  it('gives idleBeforeCloseMs null when the first evidence has no idle', () => {
    const result = attributeClose([ev('upstream', 'close-frame', 1), ev('client', 'fin', 2, { idle })]);
    expect(result.closedBy).toBe('upstream');
    expect(result.idleBeforeCloseMs).toBeNull();
  });

  it('attributes to the proxy when wstap ended the connection first', () => {
    const fromProxy = closeEvidenceOf({ kind: 'proxy.close', t: 1, conn: 1, reason: 'shutdown', idle }) as CloseEvidence;
    const fin = closeEvidenceOf({ kind: 'tcp.fin', t: 2, conn: 1, side: 'client', idle }) as CloseEvidence;
    expect(attributeClose([fin, fromProxy]).closedBy).toBe('proxy');
  });
});

/**
 * Close order under backpressure: wstap stops reading a side while the other
 * side does not take its bytes, so that side's FIN (or RST, or close frame)
 * is read late. `pausedSince` on evidence names the sides that were behind.
 */
describe('attributeClose: a side whose reading was paused', () => {
  const P = 50;
  const paused = { upstream: P };

  it('carries pausedSince from fin, rst, error and close-frame events into the evidence', () => {
    expect(closeEvidenceOf(finEvent(1, 10, 'client', idle, paused))).toStrictEqual({ side: 'client', kind: 'fin', t: 10, idle, pausedSince: paused });
    expect(closeEvidenceOf(rstEvent(1, 11, 'client', idle, paused))).toMatchObject({ kind: 'rst', pausedSince: paused });
    expect(closeEvidenceOf({ kind: 'tcp.error', t: 12, conn: 1, side: 'upstream', code: 'EPIPE', message: 'm', idle, pausedSince: paused })).toMatchObject({
      kind: 'error',
      pausedSince: paused,
    });
    expect(closeEvidenceOf(frame(13, 'upstream', 8, { closeCode: 1000, pausedSince: paused }))).toMatchObject({ kind: 'close-frame', pausedSince: paused });
  });

  it('names no side when the paused side\'s evidence was read after the other side\'s, in the same paused period', () => {
    const clientFin = ev('client', 'fin', 100, { idle, pausedSince: paused });
    const upstreamFin = ev('upstream', 'fin', 150, { pausedSince: paused });
    expect(attributeClose([clientFin, upstreamFin])).toStrictEqual({
      closedBy: null,
      first: clientFin,
      idleBeforeCloseMs: idle,
      orderUnknown: { reason: 'order-unknown', pausedSide: 'upstream', pausedSince: P, paused: upstreamFin, other: clientFin },
    });
  });

  it('says so for close frames and resets too, whichever side was paused', () => {
    const upstreamClose = ev('upstream', 'close-frame', 100, { code: 1001, pausedSince: { client: 20 } });
    const clientClose = ev('client', 'close-frame', 180, { code: 1000, pausedSince: { client: 20 } });
    const clientFin = ev('client', 'fin', 181, { pausedSince: { client: 20 } });
    const result = attributeClose([upstreamClose, clientClose, clientFin]);
    expect(result.closedBy).toBeNull();
    expect(result.orderUnknown).toMatchObject({ pausedSide: 'client', pausedSince: 20, paused: clientClose, other: upstreamClose });

    const rst = attributeClose([ev('client', 'rst', 100, { pausedSince: paused }), ev('upstream', 'rst', 101, { pausedSince: paused })]);
    expect(rst.closedBy).toBeNull();
    expect(rst.orderUnknown?.pausedSide).toBe('upstream');
  });

  it('keeps the order when the paused side caught up before its evidence came', () => {
    const clientFin = ev('client', 'fin', 100, { pausedSince: paused });
    const upstreamFin = ev('upstream', 'fin', 300);
    expect(attributeClose([clientFin, upstreamFin])).toStrictEqual({ closedBy: 'client', first: clientFin, idleBeforeCloseMs: null });
  });

  it('keeps the order when the paused side\'s evidence came in a later paused period', () => {
    const result = attributeClose([ev('client', 'fin', 100, { pausedSince: paused }), ev('upstream', 'fin', 300, { pausedSince: { upstream: 250 } })]);
    expect(result.closedBy).toBe('client');
    expect(result.orderUnknown).toBeUndefined();
  });

  it('keeps the order when the paused side gave its evidence before the other side did anything', () => {
    const upstreamFin = ev('upstream', 'fin', 80, { pausedSince: paused });
    const result = attributeClose([upstreamFin, ev('client', 'fin', 100, { pausedSince: paused })]);
    expect(result.closedBy).toBe('upstream');
    expect(result.orderUnknown).toBeUndefined();
  });

  it('keeps the order when the other side closed before the pause began', () => {
    const clientFin = ev('client', 'fin', 40);
    const result = attributeClose([clientFin, ev('upstream', 'fin', 150, { pausedSince: paused })]);
    expect(result).toStrictEqual({ closedBy: 'client', first: clientFin, idleBeforeCloseMs: null });
  });

  it('ignores a backlog of the first side itself: its evidence can only have been sent earlier still', () => {
    const result = attributeClose([ev('client', 'fin', 100, { pausedSince: { client: 50 } }), ev('upstream', 'fin', 150, { pausedSince: { client: 50 } })]);
    expect(result.closedBy).toBe('client');
    expect(result.orderUnknown).toBeUndefined();
  });

  it('keeps the closer but names the paused side as unread when that side gave no evidence at all', () => {
    const clientRst = ev('client', 'rst', 100, { pausedSince: paused });
    expect(attributeClose([clientRst])).toStrictEqual({
      closedBy: 'client',
      first: clientRst,
      idleBeforeCloseMs: null,
      unread: { side: 'upstream', pausedSince: P },
    });
  });

  it('leaves wstap\'s own shutdown attributed to wstap', () => {
    const result = attributeClose([ev('proxy', 'fin', 100, { pausedSince: paused }), ev('upstream', 'fin', 150, { pausedSince: paused })]);
    expect(result.closedBy).toBe('proxy');
  });

  it('describes both pieces of evidence, the paused period, and how to tell them apart', () => {
    const result = attributeClose([ev('client', 'fin', 1520, { pausedSince: { upstream: 540 } }), ev('upstream', 'fin', 2070, { pausedSince: { upstream: 540 } })]);
    expect(describeOrderUnknown(result.orderUnknown!, 0)).toBe(
      'order unknown: upstream fin was read at +2.070 s after reading upstream had been paused since +0.540 s ' +
        "(client was not reading, so upstream's bytes waited); client fin came at +1.520 s in between, " +
        "and upstream's may have been sent before it; to tell them apart: a packet capture of the upstream leg has when it reached this host, upstream's own log when it closed",
    );
    expect(describeUnread({ side: 'upstream', pausedSince: 540 }, 0)).toBe(
      "upstream's reading had been paused since +0.540 s (client was not reading): what upstream sent after that, a FIN or RST included, was never read",
    );
  });
});

describe('describeEvidence', () => {
  it('describes a close frame with code and reason', () => {
    expect(describeEvidence(ev('upstream', 'close-frame', 1, { code: 1000, reason: 'bye' }))).toBe('upstream close-frame 1000 "bye"');
  });

  it('describes a close frame with a code and no reason', () => {
    expect(describeEvidence(ev('client', 'close-frame', 1, { code: 1001 }))).toBe('client close-frame 1001');
    expect(describeEvidence(ev('client', 'close-frame', 1, { code: 1001, reason: '' }))).toBe('client close-frame 1001');
  });

  it('describes a close frame without a code', () => {
    expect(describeEvidence(ev('client', 'close-frame', 1))).toBe('client close-frame (no code)');
  });

  it('describes fin, rst and error', () => {
    expect(describeEvidence(ev('client', 'fin', 1))).toBe('client fin');
    expect(describeEvidence(ev('upstream', 'rst', 1))).toBe('upstream rst');
    expect(describeEvidence(ev('upstream', 'error', 1, { error: 'ECONNRESET' }))).toBe('upstream error ECONNRESET');
    expect(describeEvidence(ev('client', 'error', 1))).toBe('client error');
  });

  it('describes the proxy fin with its reason, defaulting to shutdown', () => {
    expect(describeEvidence(ev('proxy', 'fin', 1, { reason: 'idle limit' }))).toBe('wstap fin (idle limit)');
    expect(describeEvidence(ev('proxy', 'fin', 1))).toBe('wstap fin (shutdown)');
  });

  it('describes a timeout', () => {
    expect(describeEvidence(ev('upstream', 'timeout', 1))).toBe('upstream timeout');
  });
});
