import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { captureLine } from '../../src/capture/capture-line.js';
import type { CaptureEvent, FrameEvent, MessageEvent } from '../../src/capture/events.js';

/**
 * ws.frame and ws.message lines are written by hand for speed: they must be
 * JSON.stringify's text exactly, for every value and every optional field.
 * The `Required<...>` objects below stop compiling when a field is added to
 * either event type, and then fail until captureLine writes that field too.
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
  closeCode: 1000,
  closeReason: 'bye "now"\\\n\u0000\u2028é😀',
  idle: { client: 60000.125, upstream: 0.001 },
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

describe('captureLine', () => {
  it('writes a ws.frame with every optional field as JSON.stringify does', () => {
    expect(captureLine(fullFrame)).toBe(json(fullFrame));
  });

  it('writes a ws.frame without its optional fields as JSON.stringify does', () => {
    const { closeCode: _code, closeReason: _reason, idle: _idle, ...plain } = fullFrame;
    expect(captureLine(plain)).toBe(json(plain));
    expect(captureLine({ ...plain, closeCode: 1006 })).toBe(json({ ...plain, closeCode: 1006 }));
  });

  it('writes a ws.message, with a size or without one, as JSON.stringify does', () => {
    expect(captureLine(fullMessage)).toBe(json(fullMessage));
    expect(captureLine({ ...fullMessage, size: null, preview: '' })).toBe(json({ ...fullMessage, size: null, preview: '' }));
  });

  it('spells numbers as JSON does, and quotes a preview that is not base64', () => {
    for (const value of [-0, 1e21, 1.5e-7, Number.MAX_SAFE_INTEGER, NaN, Infinity, -Infinity]) {
      const frame = { ...fullFrame, t: value, length: value, idle: { client: value, upstream: value } };
      expect(captureLine(frame)).toBe(json(frame));
      const message = { ...fullMessage, size: value, tEnd: value };
      expect(captureLine(message)).toBe(json(message));
    }
    const odd = { ...fullFrame, preview: 'not "base64"\n' };
    expect(captureLine(odd)).toBe(json(odd));
  });

  it('matches JSON.stringify for generated frames and messages', () => {
    const number = fc.oneof(fc.double(), fc.integer(), fc.constant(-0));
    const frameArb = fc.record(
      {
        kind: fc.constant('ws.frame' as const),
        t: number,
        conn: fc.nat(),
        side: fc.constantFrom('client' as const, 'upstream' as const),
        index: fc.nat(),
        offset: fc.maxSafeNat(),
        opcode: fc.integer({ min: 0, max: 15 }),
        fin: fc.boolean(),
        rsv1: fc.boolean(),
        rsv2: fc.boolean(),
        rsv3: fc.boolean(),
        masked: fc.boolean(),
        length: fc.maxSafeNat(),
        preview: fc.oneof(fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString('base64')), fc.string()),
        previewTruncated: fc.boolean(),
        closeCode: fc.integer({ min: 0, max: 65535 }),
        closeReason: fc.string({ unit: 'binary' }),
        idle: fc.record({ client: number, upstream: number }),
      },
      { requiredKeys: ['kind', 't', 'conn', 'side', 'index', 'offset', 'opcode', 'fin', 'rsv1', 'rsv2', 'rsv3', 'masked', 'length', 'preview', 'previewTruncated'] },
    );
    const messageArb = fc.record({
      kind: fc.constant('ws.message' as const),
      t: number,
      tEnd: number,
      conn: fc.nat(),
      side: fc.constantFrom('client' as const, 'upstream' as const),
      opcode: fc.constantFrom(1 as const, 2 as const),
      firstFrame: fc.nat(),
      frames: fc.nat(),
      wireLength: fc.maxSafeNat(),
      compressed: fc.boolean(),
      size: fc.option(fc.maxSafeNat(), { nil: null }),
      preview: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString('base64')),
      previewTruncated: fc.boolean(),
    });
    fc.assert(fc.property(fc.oneof(frameArb, messageArb), (event) => captureLine(event) === json(event)), { numRuns: 2000 });
  });

  it('writes every other kind through JSON.stringify', () => {
    const events: CaptureEvent[] = [
      { kind: 'tcp.fin', t: 1.5, conn: 1, side: 'client', idle: { client: 1, upstream: 2 } },
      { kind: 'capture.gap', t: 2, from: 1, lostEvents: 3, code: 'ENOSPC' },
      { kind: 'conn.close', t: 3, conn: 1, bytes: { fromClient: 10, fromUpstream: 20 } },
    ];
    for (const event of events) expect(captureLine(event)).toBe(json(event));
  });
});
