import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  FrameDecoder,
  type DecodedFrame,
  type FrameDecoderOptions,
  type FrameErrorCode,
} from '../../src/wire/frame-decoder.js';
import { anyPayload, closeBody, expectedFrames, frame, run, smallPayload, splitAt, streamArb } from '../support/frame-fixtures.js';

describe('FrameDecoder: valid frames', () => {
  it('decodes an unmasked text frame', () => {
    const { frames, headers, errors, decoder } = run([Buffer.from('810548656c6c6f', 'hex')], {}, [42]);
    expect(errors).toEqual([]);
    expect(headers).toHaveLength(1);
    expect(frames).toEqual([
      {
        index: 0, offset: 0, t: 42, previousByteAt: 42, fin: true, rsv1: false, rsv2: false, rsv3: false, opcode: 1,
        masked: false, length: 5, headerLength: 2, maskKey: null,
        preview: Buffer.from('Hello'), previewTruncated: false,
      },
    ]);
    expect(decoder.framesSeen).toBe(1);
    expect(decoder.bytesSeen).toBe(7);
    expect(decoder.failed).toBe(false);
  });

  it('decodes a masked text frame (RFC 6455 5.7 example)', () => {
    const { frames, errors } = run([Buffer.from('818537fa213d7f9f4d5158', 'hex')]);
    expect(errors).toEqual([]);
    expect(frames[0]!.preview.toString()).toBe('Hello');
    expect(frames[0]!.maskKey).toEqual(Buffer.from('37fa213d', 'hex'));
    expect(frames[0]!.headerLength).toBe(6);
    expect(frames[0]!.masked).toBe(true);
  });

  it.each([0, 1, 125, 126, 65535, 65536, 70000])('%i-byte binary payload, masked and unmasked', (n) => {
    const payload = Buffer.alloc(n);
    for (let i = 0; i < n; i++) payload[i] = (i * 7 + 3) & 0xff;
    for (const mask of [false, true]) {
      const wire = frame({ opcode: 2, payload, mask });
      const { frames, errors } = run([wire]);
      expect(errors).toEqual([]);
      expect(frames).toHaveLength(1);
      const f = frames[0]!;
      const ext = n < 126 ? 0 : n < 65536 ? 2 : 8;
      expect(f.headerLength).toBe(2 + ext + (mask ? 4 : 0));
      expect(f.length).toBe(n);
      expect(f.opcode).toBe(2);
      expect(f.preview).toEqual(payload.subarray(0, 256));
      expect(f.previewTruncated).toBe(n > 256);
    }
  });

  it('decodes a fragmented text message with ping/pong interleaved', () => {
    const wire = Buffer.concat([
      frame({ opcode: 1, payload: Buffer.from('Hel'), fin: false, mask: true }),
      frame({ opcode: 9, payload: Buffer.from('ping'), mask: true }),
      frame({ opcode: 0, payload: Buffer.from('lo, '), fin: false, mask: true }),
      frame({ opcode: 10, payload: Buffer.alloc(0), mask: true }),
      frame({ opcode: 0, payload: Buffer.from('world'), fin: true, mask: true }),
    ]);
    const inMessage: boolean[] = [];
    const frames: DecodedFrame[] = [];
    const decoder = new FrameDecoder({
      onFrame: (f) => {
        frames.push(f);
        inMessage.push(decoder.inMessage);
      },
      onError: (e) => expect.unreachable(e.message),
    });
    decoder.push(wire, 0);
    expect(frames.map((f) => [f.opcode, f.fin, f.preview.toString()])).toEqual([
      [1, false, 'Hel'], [9, true, 'ping'], [0, false, 'lo, '], [10, true, ''], [0, true, 'world'],
    ]);
    expect(inMessage).toEqual([true, true, true, true, false]);
    expect(frames.map((f) => f.index)).toEqual([0, 1, 2, 3, 4]);
  });

  it('decodes close frames with code+reason and with an empty body', () => {
    const wire = Buffer.concat([
      frame({ opcode: 8, payload: closeBody(1000, 'bye ✓'), mask: true }),
      frame({ opcode: 8, payload: Buffer.alloc(0) }),
      frame({ opcode: 8, payload: closeBody(4999, '') }),
    ]);
    const { frames, errors } = run([wire], { previewLimit: 0 });
    expect(errors).toEqual([]);
    expect(frames[0]!.closeCode).toBe(1000);
    expect(frames[0]!.closeReason).toBe('bye ✓');
    expect(frames[0]!.preview).toEqual(closeBody(1000, 'bye ✓')); // control bodies are always whole
    expect(frames[0]!.previewTruncated).toBe(false);
    expect('closeCode' in frames[1]!).toBe(false);
    expect(frames[1]!.preview.length).toBe(0);
    expect(frames[2]!.closeCode).toBe(4999);
    expect(frames[2]!.closeReason).toBe('');
  });

  it('decodes several frames in one chunk with correct offsets', () => {
    const parts = [
      frame({ opcode: 1, payload: Buffer.from('a') }),
      frame({ opcode: 2, payload: Buffer.alloc(300, 1), mask: true }),
      frame({ opcode: 9, payload: Buffer.alloc(0) }),
      frame({ opcode: 1, payload: Buffer.from('z'), mask: true }),
    ];
    const { frames, errors } = run([Buffer.concat(parts)]);
    expect(errors).toEqual([]);
    let offset = 0;
    frames.forEach((f, i) => {
      expect(f.offset).toBe(offset);
      offset += parts[i]!.length;
    });
  });

  it('applies previewLimit, including 0', () => {
    const payload = Buffer.from('abcdefghij');
    expect(run([frame({ opcode: 1, payload, mask: true })], { previewLimit: 4 }).frames[0]).toMatchObject({
      preview: Buffer.from('abcd'),
      previewTruncated: true,
    });
    expect(run([frame({ opcode: 1, payload })], { previewLimit: 0 }).frames[0]).toMatchObject({
      preview: Buffer.alloc(0),
      previewTruncated: true,
    });
    expect(run([frame({ opcode: 1, payload })], { previewLimit: 10 }).frames[0]!.previewTruncated).toBe(false);
  });

  it('reads a 64-bit length without buffering the payload', () => {
    const r = run([Buffer.from('827f0000010000000000', 'hex'), Buffer.alloc(1 << 20, 9)]);
    expect(r.errors).toEqual([]);
    expect(r.headers[0]!.length).toBe(2 ** 40);
    expect(r.frames).toEqual([]);
    expect(r.decoder.bytesSeen).toBe(10 + (1 << 20));
    expect(r.decoder.inMessage).toBe(true);
  });

  it('accepts rsv1 on the first frame of a data message when allowed', () => {
    const wire = Buffer.concat([
      frame({ opcode: 1, payload: Buffer.from('x'), fin: false, rsv1: true }),
      frame({ opcode: 0, payload: Buffer.from('y') }),
    ]);
    const { frames, errors } = run([wire], { allowRsv1: true });
    expect(errors).toEqual([]);
    expect(frames.map((f) => f.rsv1)).toEqual([true, false]);
  });

  it('checks masking per direction only when expectMasked is set', () => {
    expect(run([frame({ opcode: 1, payload: Buffer.from('x'), mask: true })], { expectMasked: true }).errors).toEqual([]);
    expect(run([frame({ opcode: 1, payload: Buffer.from('x') })], { expectMasked: false }).errors).toEqual([]);
  });

  it('streams unmasked payload slices with the right mask phase for wanted frames only', () => {
    const payload = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 31) & 0xff));
    const wire = Buffer.concat([
      frame({ opcode: 2, payload, mask: Buffer.from('a1b2c3d4', 'hex') }),
      frame({ opcode: 1, payload: Buffer.from('skip me') }),
      frame({ opcode: 2, payload, mask: false }),
    ]);
    const { chunks } = splitAt(wire, [1, 5, 7, 9, 10, 11, 13, 500, 501, 503, 1006, 1012, 1016]);
    const r = run(chunks, { wantPayload: (h) => h.opcode === 2 });
    expect(r.errors).toEqual([]);
    expect(Buffer.concat(r.payloads.get(0)!)).toEqual(payload);
    expect(r.payloads.has(1)).toBe(false);
    expect(Buffer.concat(r.payloads.get(2)!)).toEqual(payload);
  });

  it('does not modify the chunks it is given', () => {
    const wire = Buffer.concat([
      frame({ opcode: 2, payload: Buffer.alloc(5000, 0x5a), mask: true }),
      frame({ opcode: 8, payload: closeBody(1001, 'going'), mask: true }),
    ]);
    const copy = Buffer.from(wire);
    const { chunks } = splitAt(wire, [3, 100, 2001, 4999, 5010]);
    const r = run(chunks, { wantPayload: () => true, previewLimit: 4096 });
    expect(r.errors).toEqual([]);
    expect(r.frames).toHaveLength(2);
    expect(wire.equals(copy)).toBe(true);
  });
});

// --- property tests ---------------------------------------------------------

describe('FrameDecoder: the frame in progress', () => {
  it('is null between frames, known from its first byte, complete with its header, and null again after it or after an error', () => {
    const wire = frame({ opcode: 2, payload: Buffer.alloc(70_000, 1), mask: new Uint8Array([1, 2, 3, 4]) });
    const r = run([]);
    expect(r.decoder.unfinishedFrame).toBeNull();
    r.decoder.push(wire.subarray(0, 3), 5);
    // Header (2 + 8 + 4 bytes) not complete yet: only where it started and how much came.
    expect(r.decoder.unfinishedFrame).toEqual({ index: 0, offset: 0, t: 5, received: 3, header: null, payloadReceived: 0 });
    r.decoder.push(wire.subarray(3, 14 + 1000), 6);
    expect(r.decoder.unfinishedFrame).toMatchObject({ index: 0, offset: 0, t: 5, received: 1014, payloadReceived: 1000, header: { opcode: 2, length: 70_000 } });
    r.decoder.push(wire.subarray(14 + 1000), 7);
    expect(r.frames).toHaveLength(1);
    expect(r.decoder.unfinishedFrame).toBeNull();
    r.decoder.push(Buffer.from('8300', 'hex'), 8); // reserved opcode
    expect(r.errors).toHaveLength(1);
    expect(r.decoder.unfinishedFrame).toBeNull();
  });
});

describe('FrameDecoder: properties', () => {
  it('any chunking of a valid stream gives the same frames as feeding it whole', () => {
    fc.assert(
      fc.property(
        streamArb(anyPayload),
        fc.array(fc.nat(), { maxLength: 30 }),
        fc.integer({ min: 0, max: 300 }),
        (specs, rawCuts, previewLimit) => {
          const wires = specs.map(frame);
          const wire = Buffer.concat(wires);
          const whole = run([wire], { previewLimit }, [0]);
          expect(whole.errors).toEqual([]);
          expect(whole.frames).toHaveLength(specs.length);
          expectedFrames(specs, wires, previewLimit).forEach((exp, i) => expect(whole.frames[i]).toMatchObject(exp));

          const { chunks, starts } = splitAt(wire, rawCuts.map((c) => c % (wire.length + 1)));
          const cut = run(chunks, { previewLimit }, starts);
          expect(cut.errors).toEqual([]);
          // t is the start offset of the (non-empty) chunk holding the frame's first byte.
          const tFor = (offset: number): number =>
            starts.find((s, i) => s <= offset && offset < s + chunks[i]!.length)!;
          // Without a previousByteAt given, a frame's is its chunk's t.
          expect(cut.frames).toEqual(whole.frames.map((f) => ({ ...f, t: tFor(f.offset), previousByteAt: tFor(f.offset) })));
          expect(cut.decoder.bytesSeen).toBe(wire.length);
          expect(cut.decoder.inMessage).toBe(false);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('a frame carries the previousByteAt of the chunk its first byte came in, or that chunk\'s t when a frame ended before it there', () => {
    fc.assert(
      fc.property(streamArb(smallPayload), fc.array(fc.nat(), { maxLength: 30 }), (specs, rawCuts) => {
        const wire = Buffer.concat(specs.map(frame));
        const { chunks, starts } = splitAt(wire, rawCuts.map((c) => c % (wire.length + 1)));
        // Chunk i arrives at 1000 (i + 1); the byte before it at 1000 (i + 1) - 7 (i + 1).
        const ts = chunks.map((_, i) => 1000 * (i + 1));
        const previous = chunks.map((_, i) => 1000 * (i + 1) - 7 * (i + 1));
        const cut = run(chunks, {}, ts, previous);
        expect(cut.errors).toEqual([]);
        expect(cut.frames).toHaveLength(specs.length);
        for (const f of cut.frames) {
          const i = starts.findIndex((s, k) => s <= f.offset && f.offset < s + chunks[k]!.length);
          expect(f.t).toBe(ts[i]);
          expect(f.previousByteAt).toBe(f.offset === starts[i] ? previous[i] : ts[i]);
        }
        // The headers handed out early carry the same pair.
        expect(cut.headers.map((h) => [h.t, h.previousByteAt])).toEqual(cut.frames.map((f) => [f.t, f.previousByteAt]));
      }),
      { numRuns: 150 },
    );
  });

  it('feeding one byte at a time gives the same frames (small frames)', () => {
    fc.assert(
      fc.property(streamArb(smallPayload), (specs) => {
        const wire = Buffer.concat(specs.map(frame));
        const whole = run([wire], {}, [0]);
        const bytes = [...wire].map((b) => Buffer.from([b]));
        const single = run(bytes, {}, bytes.map(() => 0));
        expect(single.errors).toEqual([]);
        expect(single.frames).toEqual(whole.frames);
      }),
      { numRuns: 60 },
    );
  });

  it('never throws on random garbage, reports at most one error and then stays silent', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 20 }),
        fc.record({ allowRsv1: fc.boolean(), expectMasked: fc.option(fc.boolean(), { nil: undefined }) }),
        (arrays, options) => {
          const events: string[] = [];
          const decoder = new FrameDecoder(
            { onFrame: () => events.push('frame'), onError: () => events.push('error') },
            { ...options, wantPayload: () => true },
          );
          let total = 0;
          for (const a of arrays) {
            decoder.push(Buffer.from(a), 0);
            total += a.length;
          }
          const errorAt = events.indexOf('error');
          if (errorAt >= 0) expect(events.slice(errorAt)).toEqual(['error']);
          expect(decoder.failed).toBe(errorAt >= 0);
          expect(decoder.bytesSeen).toBe(total);
          expect(decoder.framesSeen).toBe(events.filter((e) => e === 'frame').length);
        },
      ),
      { numRuns: 500 },
    );
  });
});

// --- invalid input ----------------------------------------------------------

const HELLO = '810548656c6c6f'; // valid unmasked text frame, 7 bytes
const MASKED_HELLO = '818537fa213d7f9f4d5158'; // the same, masked (RFC 6455 5.7), 11 bytes
const fixtures: [FrameErrorCode, string, string, FrameDecoderOptions?][] = [
  ['WS_ERR_INVALID_OPCODE', 'opcode 3', '8300'],
  ['WS_ERR_INVALID_OPCODE', 'opcode 0xB', '8b00'],
  ['WS_ERR_UNEXPECTED_RSV_1', 'rsv1 without extension', 'c100'],
  ['WS_ERR_UNEXPECTED_RSV_1', 'rsv1 on a control frame', 'c900', { allowRsv1: true }],
  ['WS_ERR_UNEXPECTED_RSV_1', 'rsv1 on a continuation frame', '0100c000', { allowRsv1: true }],
  ['WS_ERR_UNEXPECTED_RSV_2_3', 'rsv2', 'a100'],
  ['WS_ERR_UNEXPECTED_RSV_2_3', 'rsv3', '9100'],
  ['WS_ERR_EXPECTED_FIN', 'fragmented ping', '0900'],
  ['WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH', 'ping of 126 bytes', '897e007e'],
  ['WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH', '64-bit length with MSB set', '827f8000000000000000'],
  ['WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH', '64-bit length of 2^53', '827f0020000000000000'],
  ['WS_ERR_INVALID_LENGTH_ENCODING', '125 in 16 bits', '827e007d'],
  ['WS_ERR_INVALID_LENGTH_ENCODING', '65535 in 64 bits', '827f000000000000ffff'],
  ['WS_ERR_UNEXPECTED_CONTINUATION', 'orphan continuation', '8000'],
  ['WS_ERR_EXPECTED_CONTINUATION', 'text frame inside a fragmented message', '01008100'],
  ['WS_ERR_EXPECTED_MASK', 'unmasked client frame', '8100', { expectMasked: true }],
  ['WS_ERR_UNEXPECTED_MASK', 'masked server frame', '818001020304', { expectMasked: false }],
  ['WS_ERR_INVALID_CLOSE_PAYLOAD', '1-byte close body', '880100'],
  ['WS_ERR_INVALID_CLOSE_CODE', 'close code 1005', '880203ed'],
  ['WS_ERR_INVALID_CLOSE_CODE', 'close code 1004', '880203ec'],
  ['WS_ERR_INVALID_CLOSE_CODE', 'close code 2999', '88020bb7'],
  ['WS_ERR_INVALID_CLOSE_CODE', 'close code 5000', '88021388'],
  ['WS_ERR_INVALID_UTF8', 'close reason c3 28', '880403e8c328'],
];

describe('FrameDecoder: protocol errors', () => {
  it.each(fixtures)('%s (%s)', (code, _name, hex, options) => {
    const bad = Buffer.from(hex, 'hex');
    // A fixture may start with a valid fragment ('0100'); the offending frame is its last one.
    const badFrameStart = hex.startsWith('0100') ? 2 : 0;
    const hello = Buffer.from(options?.expectMasked ? MASKED_HELLO : HELLO, 'hex');
    const wire = Buffer.concat([hello, bad, hello]);
    const r = run([wire.subarray(0, 3), wire.subarray(3), hello], options, [10, 20, 30]);
    expect(r.errors).toHaveLength(1);
    const err = r.errors[0]!;
    expect(err.code).toBe(code);
    expect(err.message).toMatch(/^Invalid WebSocket frame: /);
    expect(err.offset).toBe(hello.length + badFrameStart);
    expect(err.t).toBe(20);
    expect(err.frameIndex).toBe(badFrameStart ? 2 : 1);
    // Valid frames after the error are not decoded; bytes are still counted.
    expect(r.frames).toHaveLength(badFrameStart ? 2 : 1);
    expect(r.decoder.failed).toBe(true);
    expect(r.decoder.framesSeen).toBe(r.frames.length);
    expect(r.decoder.bytesSeen).toBe(wire.length + hello.length);
  });

  it('accepts the boundary close codes', () => {
    for (const code of [1000, 1003, 1007, 1014, 3000, 4999]) {
      const r = run([frame({ opcode: 8, payload: closeBody(code, 'ok') })]);
      expect(r.errors).toEqual([]);
      expect(r.frames[0]!.closeCode).toBe(code);
    }
  });

  it('reports an error split across chunks once the header byte arrives', () => {
    const r = run([Buffer.from('82', 'hex'), Buffer.from('7e', 'hex'), Buffer.from('00', 'hex'), Buffer.from('7d', 'hex')]);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatchObject({ code: 'WS_ERR_INVALID_LENGTH_ENCODING', offset: 0, t: 0, frameIndex: 0 });
  });
});
