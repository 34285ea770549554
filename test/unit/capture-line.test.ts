import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { captureLine, fastLineRoom, writeFastLine } from '../../src/capture/capture-line.js';
import type { CaptureEvent, FrameEvent, HttpRequestEvent, HttpResponseEvent, MessageEvent } from '../../src/capture/events.js';

/**
 * ws.frame and ws.message lines are written as bytes by hand for speed: they
 * must be JSON.stringify's text exactly, for every value and every field. The
 * `Required<...>` objects below stop compiling when a field is added to either
 * event type, and then fail until writeFastLine writes that field too (or
 * leaves such events to JSON.stringify).
 */

const fullFrame: Required<FrameEvent> = {
  kind: 'ws.frame',
  t: 1763750000123.4567,
  conn: 42,
  side: 'upstream',
  index: 7,
  offset: 1234,
  opcode: 8,
  fin: true,
  rsv1: false,
  rsv2: true,
  rsv3: false,
  masked: false,
  length: 14,
  preview: Buffer.from([0x03, 0xe8, 0x62, 0x79, 0x65]).toString('base64'),
  previewTruncated: false,
  dataId: '3',
  closeCode: 1000,
  closeReason: 'bye "now"\\\n\u0000\u2028é😀',
  idle: { client: 60000.125, upstream: 0.001 },
  pausedSince: { upstream: 1763749999000.25 },
};

const fullMessage: Required<MessageEvent> = {
  kind: 'ws.message',
  t: 1763750000123.4567,
  tEnd: 1763750000124.5,
  conn: 42,
  side: 'client',
  opcode: 1,
  firstFrame: 3,
  frames: 2,
  wireLength: 70000,
  compressed: true,
  size: 123456,
  preview: Buffer.from('hello').toString('base64'),
  previewTruncated: true,
};

const json = (event: CaptureEvent): string => JSON.stringify(event) + '\n';

/** The event's line through the path the capture writer takes, checked to stay within the room it asked for. */
function written(event: CaptureEvent, at = 0): string {
  const room = fastLineRoom(event);
  if (room === 0) return captureLine(event);
  const target = Buffer.alloc(at + room, 0xff);
  const end = writeFastLine(event, target, at);
  expect(end - at).toBeLessThanOrEqual(room);
  expect(target.subarray(0, at).every((byte) => byte === 0xff)).toBe(true);
  return target.toString('utf8', at, end);
}

const { closeCode: _code, closeReason: _reason, idle: _idle, pausedSince: _paused, dataId: _dataId, ...plainFrame } = fullFrame;

describe('capture lines', () => {
  it('writes a ws.frame without close fields as bytes, JSON.stringify\'s text', () => {
    expect(fastLineRoom(plainFrame)).toBeGreaterThan(0);
    expect(written(plainFrame)).toBe(json(plainFrame));
    expect(written({ ...plainFrame, fin: false, rsv1: true, rsv3: true, masked: true, previewTruncated: true }, 17)).toBe(
      json({ ...plainFrame, fin: false, rsv1: true, rsv3: true, masked: true, previewTruncated: true }),
    );
  });

  it('writes close frames (code, reason, idle times) and frames with a dataId through JSON.stringify', () => {
    expect(fastLineRoom(fullFrame)).toBe(0);
    expect(written(fullFrame)).toBe(json(fullFrame));
    // An opcode the fixed literals do not cover (not one a decoder delivers) takes the slow path too.
    for (const odd of [{ ...plainFrame, opcode: 16 }, { ...plainFrame, opcode: 2.5 }, { ...fullMessage, opcode: 0 as unknown as 1 }]) {
      expect(fastLineRoom(odd)).toBe(0);
      expect(written(odd)).toBe(json(odd));
    }
    // dataId is never in a capture (a HAR read back has it), but a line with one keeps it.
    for (const extra of [{ closeCode: 1006 }, { closeReason: '' }, { idle: { client: 1, upstream: 2 } }, { pausedSince: { client: 5 } }, { dataId: '0' }]) {
      const frame = { ...plainFrame, ...extra };
      expect(fastLineRoom(frame)).toBe(0);
      expect(written(frame)).toBe(json(frame));
    }
  });

  it('writes a ws.message, with a size or without one, as JSON.stringify does', () => {
    expect(fastLineRoom(fullMessage)).toBeGreaterThan(0);
    expect(written(fullMessage)).toBe(json(fullMessage));
    const unknown = { ...fullMessage, opcode: 2 as const, side: 'upstream' as const, size: null, preview: '', compressed: false };
    expect(written(unknown, 3)).toBe(json(unknown));
  });

  it('spells numbers as JSON does: whole, on the µs grid, past the fast paths, not finite', () => {
    const values = [
      -0, 0, 9, 10, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 1e21, 1.5e-7, -1, -1.5, 0.1, 0.001, 0.0005, 1.999, 1795277989952.829,
      1795277989952.8, 1795277989952.5, 1795277989953, 1763750000123.4567, 2 ** 42 - 0.001, 2 ** 42, 2 ** 42 + 0.5,
      Number.MAX_SAFE_INTEGER, Number.MAX_VALUE, Number.MIN_VALUE, NaN, Infinity, -Infinity,
    ];
    for (const value of values) {
      const frame = { ...plainFrame, t: value, conn: value, index: value, offset: value, length: value };
      expect(written(frame)).toBe(json(frame));
      const message = { ...fullMessage, t: value, tEnd: value, conn: value, firstFrame: value, frames: value, wireLength: value, size: value };
      expect(written(message)).toBe(json(message));
    }
  });

  it('keeps the digits of the whole milliseconds only for the millisecond they belong to', () => {
    for (const t of [1795277989952.829, 1795277989953.001, 1795277989952.9, 5, 5.25, 1795277989953.001]) {
      expect(written({ ...plainFrame, t })).toBe(json({ ...plainFrame, t }));
    }
  });

  it('matches JSON.stringify for generated frames and messages', () => {
    const number = fc.oneof(fc.double(), fc.integer(), fc.constant(-0), fc.maxSafeNat());
    // What SessionClock gives: epoch ms rounded to the µs, around now and anywhere below 2^53 / 1000.
    const time = fc.oneof(
      number,
      fc.double({ min: 1.6e12, max: 2.1e12, noNaN: true }).map((ms) => Math.round(ms * 1000) / 1000),
      fc.maxSafeNat().map((us) => us / 1000),
    );
    const count = fc.oneof(fc.nat(), fc.maxSafeNat(), number);
    const base64 = fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes).toString('base64'));
    const frameArb = fc.record({
      kind: fc.constant('ws.frame' as const),
      t: time,
      conn: count,
      side: fc.constantFrom('client' as const, 'upstream' as const),
      index: count,
      offset: count,
      opcode: fc.integer({ min: 0, max: 15 }),
      fin: fc.boolean(),
      rsv1: fc.boolean(),
      rsv2: fc.boolean(),
      rsv3: fc.boolean(),
      masked: fc.boolean(),
      length: count,
      preview: base64,
      previewTruncated: fc.boolean(),
    });
    const messageArb = fc.record({
      kind: fc.constant('ws.message' as const),
      t: time,
      tEnd: time,
      conn: count,
      side: fc.constantFrom('client' as const, 'upstream' as const),
      opcode: fc.constantFrom(1 as const, 2 as const),
      firstFrame: count,
      frames: count,
      wireLength: count,
      compressed: fc.boolean(),
      size: fc.option(count, { nil: null }),
      preview: base64,
      previewTruncated: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.oneof(frameArb, messageArb), fc.nat(64), (event, at) => fastLineRoom(event) > 0 && written(event, at) === json(event)),
      { numRuns: 3000 },
    );
  });

  it('writes every other kind through JSON.stringify, and has no fast form for them', () => {
    const events: CaptureEvent[] = [
      { kind: 'tcp.fin', t: 1.5, conn: 1, side: 'client', idle: { client: 1, upstream: 2 } },
      { kind: 'capture.gap', t: 2, from: 1, lostEvents: 3, code: 'ENOSPC' },
      { kind: 'conn.close', t: 3, conn: 1, bytes: { fromClient: 10, fromUpstream: 20 } },
    ];
    for (const event of events) {
      expect(fastLineRoom(event)).toBe(0);
      expect(captureLine(event)).toBe(json(event));
      expect(() => writeFastLine(event, Buffer.alloc(1024), 0)).toThrow(/no fast form for a .* event/);
    }
  });
});

/** Built in the order HttpTap builds them; `Required` stops compiling when a field is added. */
const fullRequest: Required<HttpRequestEvent> = {
  kind: 'http.request',
  t: 1763750000123.4567,
  conn: 42,
  method: 'POST',
  url: '/echo?q="quoted"&back\\slash&é',
  httpVersion: '1.1',
  rawHeaders: [
    ['Host', 'example'],
    ['X-Dup', '1'],
    ['x-dup', 'tab\there \u0001 del\u007f'],
    ['X-Latin1', 'caf\u00e9 \u2028'],
  ],
  exchange: 3,
};

const fullResponse: Required<HttpResponseEvent> = {
  kind: 'http.response',
  t: 1763750000124.5,
  conn: 42,
  exchange: 3,
  statusCode: 200,
  statusMessage: 'OK "fine"',
  httpVersion: '1.1',
  rawHeaders: [['Content-Length', '100']],
  requestBodyBytes: 100,
  responseBodyBytes: 100,
  ttfbMs: 0.25,
  totalMs: 1.125,
  complete: true,
};

describe('plain HTTP capture lines', () => {
  it('are JSON.stringify\'s text, quotes, backslashes, control and non-ASCII characters included', () => {
    expect(captureLine(fullRequest)).toBe(json(fullRequest));
    expect(captureLine(fullResponse)).toBe(json(fullResponse));
    const empty = { ...fullRequest, rawHeaders: [], url: '', method: '' };
    expect(captureLine(empty)).toBe(json(empty));
    const odd = { ...fullResponse, ttfbMs: NaN, totalMs: Infinity, complete: false, responseBodyBytes: 1e21, statusMessage: '' };
    expect(captureLine(odd)).toBe(json(odd));
  });

  it('match JSON.stringify for generated requests and responses, as text and as bytes', () => {
    // Printable ASCII (mostly plain: the byte path) and anything (mostly not: the text path).
    const text = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme-ascii' }), fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) }));
    const headers = fc.array(fc.tuple(text, text), { maxLength: 6 });
    const number = fc.oneof(fc.double(), fc.integer(), fc.maxSafeNat());
    fc.assert(
      fc.property(text, text, text, headers, number, number, fc.boolean(), fc.nat(64), (method, url, version, rawHeaders, t, n, complete, at) => {
        const request: HttpRequestEvent = { ...fullRequest, method, url, httpVersion: version, rawHeaders, t, exchange: n };
        const response: HttpResponseEvent = { ...fullResponse, statusMessage: url, httpVersion: version, rawHeaders, t, ttfbMs: n, totalMs: t, requestBodyBytes: n, complete };
        return (
          captureLine(request) === json(request) &&
          captureLine(response) === json(response) &&
          written(request, at) === json(request) &&
          written(response, at) === json(response)
        );
      }),
      { numRuns: 1000 },
    );
  });

  it('are written as bytes when every string is plain, and through text otherwise', () => {
    const plainRequest: HttpRequestEvent = { ...fullRequest, url: '/echo?q=1', rawHeaders: [['Host', 'example'], ['X-Dup', '1'], ['x-dup', 'a b']] };
    const plainResponse: HttpResponseEvent = { ...fullResponse, statusMessage: 'OK' };
    for (const event of [plainRequest, plainResponse, { ...plainRequest, rawHeaders: [] }, { ...plainResponse, ttfbMs: NaN, totalMs: -0, complete: false }]) {
      expect(fastLineRoom(event)).toBeGreaterThan(0);
      expect(written(event, 5)).toBe(json(event));
    }
    // A quote, a backslash, a tab, a DEL, a Latin-1 letter: each sends the line through JSON.stringify's escapes.
    for (const odd of ['say "hi"', 'back\\slash', 'tab\there', 'del\u007f', 'caf\u00e9']) {
      expect(fastLineRoom({ ...plainRequest, url: odd })).toBe(0);
      expect(fastLineRoom({ ...plainRequest, rawHeaders: [['X-Odd', odd]] })).toBe(0);
      expect(fastLineRoom({ ...plainResponse, statusMessage: odd })).toBe(0);
      expect(written({ ...plainRequest, rawHeaders: [['X-Odd', odd]] })).toBe(json({ ...plainRequest, rawHeaders: [['X-Odd', odd]] }));
    }
  });
});
