import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import type { FrameDecoderOptions, FrameErrorCode } from '../../src/wire/frame-decoder.js';
import {
  HOSTILE_CLASSES,
  chunkIndexAt,
  expectedFrames,
  frame,
  hostileCaseArb,
  invalidCloseCodeArb,
  invalidUtf8ReasonArb,
  rawFrame,
  run,
  smallPayload,
  splitAt,
  streamArb,
  type HostileCase,
  type RawFrameSpec,
} from '../support/frame-fixtures.js';

/**
 * Issue 6, "decoder under fire": a valid prefix, one invalid frame, then
 * anything, cut at random points. The decoder must report exactly the first
 * protocol error, where it is, decode everything before it as if fed whole,
 * and nothing after it.
 */

/** Every code the decoder can report; a Record so a new code fails to compile until it is listed. */
const ALL_CODES: Record<FrameErrorCode, true> = {
  WS_ERR_INVALID_OPCODE: true,
  WS_ERR_UNEXPECTED_RSV_1: true,
  WS_ERR_UNEXPECTED_RSV_2_3: true,
  WS_ERR_EXPECTED_FIN: true,
  WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH: true,
  WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH: true,
  WS_ERR_INVALID_LENGTH_ENCODING: true,
  WS_ERR_UNEXPECTED_CONTINUATION: true,
  WS_ERR_EXPECTED_CONTINUATION: true,
  WS_ERR_EXPECTED_MASK: true,
  WS_ERR_UNEXPECTED_MASK: true,
  WS_ERR_INVALID_CLOSE_PAYLOAD: true,
  WS_ERR_INVALID_CLOSE_CODE: true,
  WS_ERR_INVALID_UTF8: true,
};

/** Distinct, increasing t per chunk, so the reported t names exactly one chunk. */
const tsFor = (count: number): number[] => Array.from({ length: count }, (_, i) => 1000 + 10 * i);

/** Cut points anywhere, plus some inside the offending frame's header (where splits matter most). */
function cutsFor(c: HostileCase, anywhere: number[], inHeader: number[]): number[] {
  return [...anywhere.map((n) => n % (c.wire.length + 1)), ...inHeader.map((k) => c.prefix.length + k)];
}

function decoderOptions(c: HostileCase, previewLimit: number): FrameDecoderOptions {
  // wantPayload: also exercise the payload path up to the error.
  return { allowRsv1: c.ctx.allowRsv1, expectMasked: c.ctx.expectMasked, previewLimit, wantPayload: () => true };
}

/**
 * Decodes `c` whole and cut at `cuts`, and checks the error, the frames before
 * it, silence after it, the byte count and the untouched input; then cuts the
 * stream short at `shortAt` bytes into the offending frame (and just before and
 * at the point where the violation shows) and checks the error shows exactly then.
 */
function checkCase(c: HostileCase, code: FrameErrorCode, cuts: number[], previewLimit: number, shortAt: number): void {
  const options = decoderOptions(c, previewLimit);
  const n = c.specs.length;
  const pristine = Buffer.from(c.wire);

  // The valid prefix alone: no error, every frame as specified.
  const prefixOnly = run([c.prefix], options, [0]);
  expect(prefixOnly.errors).toEqual([]);
  expect(prefixOnly.decoder.inMessage).toBe(c.ctx.open);
  expect(prefixOnly.frames).toHaveLength(n);
  expectedFrames(c.specs, c.wires, previewLimit).forEach((exp, i) => expect(prefixOnly.frames[i]).toMatchObject(exp));

  const expectedError = {
    code,
    message: expect.stringMatching(/^Invalid WebSocket frame: /),
    offset: c.prefix.length,
    frameIndex: n,
  };

  // Fed whole.
  const whole = run([c.wire], options, [0]);
  expect(whole.errors).toEqual([{ ...expectedError, t: 0 }]);
  expect(whole.frames).toEqual(prefixOnly.frames);

  // Cut: the same frames (t from the chunk holding each frame's first byte) and the same error.
  const { chunks, starts } = splitAt(c.wire, cuts);
  const ts = tsFor(chunks.length);
  const tAt = (offset: number): number => ts[chunkIndexAt(chunks, starts, offset)]!;
  const cut = run(chunks, options, ts);
  // t is that of the chunk with the offending frame's first byte, even when the
  // violation only shows in a later chunk (split header, close body).
  expect(cut.errors).toEqual([{ ...expectedError, t: tAt(c.prefix.length) }]);
  expect(cut.frames).toEqual(prefixOnly.frames.map((f) => ({ ...f, t: tAt(f.offset), previousByteAt: tAt(f.offset) })));
  // Nothing after the error: the offending frame's header only when its body was at fault.
  expect(cut.headers.map((h) => h.index)).toEqual([...Array(n + (c.bad.headerDelivered ? 1 : 0)).keys()]);
  expect([...cut.payloads.keys()].every((index) => index <= n)).toBe(true);
  expect(cut.decoder.failed).toBe(true);
  expect(cut.decoder.framesSeen).toBe(n);
  expect(cut.decoder.bytesSeen).toBe(c.wire.length);
  expect(c.wire.equals(pristine)).toBe(true);

  // Cut short inside the offending frame: the error shows exactly once its evidence is in.
  const detectAt = c.bad.detectAt;
  for (const k of [detectAt - 1, detectAt, shortAt % (c.bad.bytes.length + 1)]) {
    const short = c.wire.subarray(0, c.prefix.length + k);
    const pieces = splitAt(short, cuts);
    const partial = run(pieces.chunks, options, tsFor(pieces.chunks.length));
    expect(partial.errors.map((e) => e.code)).toEqual(k >= detectAt ? [code] : []);
    expect(partial.frames).toHaveLength(n);
    expect(partial.decoder.bytesSeen).toBe(short.length);
  }
}

describe('FrameDecoder under fire: one invalid frame after a valid prefix', () => {
  it('covers every error code', () => {
    expect(new Set(HOSTILE_CLASSES.map((c) => c.code))).toEqual(new Set(Object.keys(ALL_CODES)));
  });

  it.each(HOSTILE_CLASSES.map((c) => [c.name, c] as const))('%s', (_name, cls) => {
    fc.assert(
      fc.property(
        hostileCaseArb(cls),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.array(fc.integer({ min: 0, max: 15 }), { maxLength: 4 }),
        fc.integer({ min: 0, max: 300 }),
        fc.nat(),
        (c, anywhere, inHeader, previewLimit, shortAt) => checkCase(c, cls.code, cutsFor(c, anywhere, inHeader), previewLimit, shortAt),
      ),
      { numRuns: 120 },
    );
  });

  // The edges of each rule, cut at every single point (random picks would rarely hit them all).
  const key = Uint8Array.from([0xa1, 0xb2, 0xc3, 0xd4]);
  const closeFrame = (code: number): Buffer =>
    rawFrame({ fin: true, rsv: 0, opcode: 8, mask: key, payload: Buffer.from([code >> 8, code & 0xff, 0x6f, 0x6b]) });
  const binary = (payload: Buffer, extra: Partial<RawFrameSpec> = {}): Buffer =>
    rawFrame({ fin: true, rsv: 0, opcode: 2, mask: key, payload, ...extra });
  /** Name, code, the offending frame, and how many of its bytes show the violation. */
  const edges: Array<[string, FrameErrorCode, Buffer, number]> = [
    ...[0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535].map((code): [string, FrameErrorCode, Buffer, number] => {
      const bad = closeFrame(code);
      return [`close code ${code}`, 'WS_ERR_INVALID_CLOSE_CODE', bad, bad.length];
    }),
    ['125 in 16 bits', 'WS_ERR_INVALID_LENGTH_ENCODING', binary(Buffer.alloc(125, 1), { lengthForm: 16 }), 4],
    ['65535 in 64 bits', 'WS_ERR_INVALID_LENGTH_ENCODING', binary(Buffer.alloc(65535, 2), { lengthForm: 64 }), 10],
    ['2^53 in 64 bits', 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH', binary(Buffer.alloc(0), { declaredLength: 2n ** 53n }), 10],
    ['2^63 in 64 bits', 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH', binary(Buffer.alloc(0), { declaredLength: 2n ** 63n }), 10],
    ['ping of 126 bytes', 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH', rawFrame({ fin: true, rsv: 0, opcode: 9, mask: key, payload: Buffer.alloc(126, 3) }), 2],
  ];
  it.each(edges)('%s, cut at every point', (_name, code, bad, detectAt) => {
    const specs = [
      { opcode: 1, payload: Buffer.from('hello'), mask: key },
      { opcode: 9, payload: Buffer.from('p'), mask: key },
    ];
    const wires = specs.map(frame);
    const prefix = Buffer.concat(wires);
    const trailer = frame({ opcode: 1, payload: Buffer.from('after'), mask: key });
    const c: HostileCase = {
      ctx: { allowRsv1: false, expectMasked: true, open: false },
      specs,
      wires,
      prefix,
      bad: { bytes: bad, detectAt, headerDelivered: code === 'WS_ERR_INVALID_CLOSE_CODE' },
      trailer,
      wire: Buffer.concat([prefix, bad, trailer]),
    };
    // Every cut up to a little past the header (a 64 KiB body cut everywhere would take long for nothing new).
    const last = Math.min(c.wire.length, prefix.length + 24);
    for (let at = 0; at <= last; at++) checkCase(c, code, [at], 256, at);
  });
});

describe('the hostile generators themselves', () => {
  it('rawFrame encodes valid frames exactly as ws does', () => {
    fc.assert(
      fc.property(streamArb(smallPayload, { rsv1: true }), (specs) => {
        for (const spec of specs) {
          const mask = spec.mask instanceof Uint8Array ? spec.mask : false;
          const raw = rawFrame({ fin: spec.fin ?? true, rsv: spec.rsv1 ? 4 : 0, opcode: spec.opcode, mask, payload: spec.payload });
          expect(raw).toEqual(frame(spec));
        }
      }),
      { numRuns: 100 },
    );
  });

  it('close reasons meant to be invalid are rejected by a fatal UTF-8 decoder too', () => {
    // An oracle independent of the decoder's isUtf8.
    const fatal = new TextDecoder('utf-8', { fatal: true });
    fc.assert(
      fc.property(invalidUtf8ReasonArb, (reason) => {
        expect(reason.length).toBeLessThanOrEqual(123);
        expect(() => fatal.decode(reason)).toThrow(TypeError);
      }),
      { numRuns: 300 },
    );
  });

  it('invalid close codes are outside RFC 6455 7.4 (1000-1003, 1007-1014, 3000-4999)', () => {
    fc.assert(
      fc.property(invalidCloseCodeArb, (code) => {
        const valid = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
        expect(valid).toBe(false);
      }),
      { numRuns: 300 },
    );
  });
});
