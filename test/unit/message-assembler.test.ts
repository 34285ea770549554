import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import * as ws from 'ws';
import { FrameDecoder, type DecodedFrame, type FrameDecoderOptions } from '../../src/wire/frame-decoder.js';
import { MessageAssembler, type AssembledMessage } from '../../src/wire/message-assembler.js';

// @types/ws does not declare Sender; ws's ESM wrapper exports it.
interface SenderFrameOptions { fin: boolean; rsv1: boolean; opcode: number; mask: boolean; readOnly: boolean }
const { Sender } = ws as unknown as {
  Sender: { frame(data: Buffer, options: SenderFrameOptions): Buffer[] };
};

function frame(opcode: number, payload: string | Buffer, opts: { fin?: boolean; mask?: boolean; rsv1?: boolean } = {}): Buffer {
  return Buffer.concat(
    Sender.frame(Buffer.from(payload), {
      fin: opts.fin ?? true, rsv1: opts.rsv1 ?? false, opcode, mask: opts.mask ?? true, readOnly: false,
    }),
  );
}

/** Decodes `chunks` (chunk i gets t = i) and feeds every frame to an assembler. */
function assemble(chunks: Buffer[], previewLimit?: number, decoderOptions: FrameDecoderOptions = {}): AssembledMessage[] {
  const assembler = new MessageAssembler(previewLimit === undefined ? undefined : { previewLimit });
  const messages: AssembledMessage[] = [];
  const decoder = new FrameDecoder(
    {
      onFrame: (f) => {
        const m = assembler.push(f);
        if (m) messages.push(m);
      },
      onError: (e) => {
        throw new Error(e.message);
      },
    },
    { previewLimit: 1 << 20, ...decoderOptions },
  );
  chunks.forEach((c, i) => decoder.push(c, i));
  return messages;
}

describe('MessageAssembler', () => {
  it('returns a single-frame message whole', () => {
    expect(assemble([frame(2, Buffer.from([1, 2, 3]))])).toEqual([
      {
        opcode: 2, t: 0, tEnd: 0, firstFrameIndex: 0, frames: 1, length: 3, compressed: false,
        preview: Buffer.from([1, 2, 3]), previewTruncated: false,
      },
    ]);
  });

  it('reassembles a fragmented text message with an interleaved ping', () => {
    const messages = assemble([
      frame(9, 'before'),
      frame(1, 'Hello, ', { fin: false }),
      frame(9, 'ping'),
      frame(0, 'fragmented ', { fin: false }),
      frame(10, 'pong'),
      frame(0, 'world'),
      frame(1, 'next'),
    ]);
    expect(messages).toEqual([
      {
        opcode: 1, t: 1, tEnd: 5, firstFrameIndex: 1, frames: 3, length: 23, compressed: false,
        preview: Buffer.from('Hello, fragmented world'), previewTruncated: false,
      },
      {
        opcode: 1, t: 6, tEnd: 6, firstFrameIndex: 6, frames: 1, length: 4, compressed: false,
        preview: Buffer.from('next'), previewTruncated: false,
      },
    ]);
  });

  it('caps the preview across frames at previewLimit', () => {
    const [m] = assemble([frame(1, 'abcd', { fin: false }), frame(0, 'efgh', { fin: false }), frame(0, 'ijkl')], 6);
    expect(m!.preview.toString()).toBe('abcdef');
    expect(m!.previewTruncated).toBe(true);
    expect(m!.length).toBe(12);
    expect(m!.frames).toBe(3);
  });

  it('is not truncated when the cap is met exactly and the remaining frames are empty', () => {
    const [m] = assemble([frame(1, 'abcd', { fin: false }), frame(0, 'ef', { fin: false }), frame(0, '')], 6);
    expect(m).toMatchObject({ preview: Buffer.from('abcdef'), previewTruncated: false, frames: 3, length: 6 });
  });

  it('stops the preview at a frame whose own preview was truncated by the decoder', () => {
    // Decoder previews 3 bytes per frame; the message preview must not skip the missing bytes.
    const [m] = assemble([frame(2, 'abcde', { fin: false }), frame(0, 'fgh')], 100, { previewLimit: 3 });
    expect(m).toMatchObject({ preview: Buffer.from('abc'), previewTruncated: true, length: 8 });
  });

  it('reports previewLimit 0 as truncated for non-empty messages only', () => {
    expect(assemble([frame(1, 'x')], 0)[0]).toMatchObject({ preview: Buffer.alloc(0), previewTruncated: true });
    expect(assemble([frame(1, '')], 0)[0]).toMatchObject({ preview: Buffer.alloc(0), previewTruncated: false });
  });

  it('marks compressed messages by the first frame\'s rsv1', () => {
    const [m] = assemble(
      [frame(1, Buffer.from([0xf2, 0x48]), { fin: false, rsv1: true }), frame(0, Buffer.from([0xcd, 0xc9]))],
      undefined,
      { allowRsv1: true },
    );
    expect(m).toMatchObject({ compressed: true, frames: 2, preview: Buffer.from([0xf2, 0x48, 0xcd, 0xc9]) });
  });

  it('ignores control frames and orphan continuations without disturbing a message', () => {
    const assembler = new MessageAssembler();
    const base: DecodedFrame = {
      index: 0, offset: 0, t: 0, previousByteAt: 0, fin: true, rsv1: false, rsv2: false, rsv3: false, opcode: 0, masked: false,
      length: 1, headerLength: 2, maskKey: null, preview: Buffer.from('x'), previewTruncated: false,
    };
    expect(assembler.push(base)).toBeNull(); // orphan continuation
    expect(assembler.push({ ...base, opcode: 2, fin: false, index: 1 })).toBeNull();
    expect(assembler.inMessage).toBe(true);
    expect(assembler.push({ ...base, opcode: 8, index: 2, preview: Buffer.from('03e8', 'hex'), length: 2 })).toBeNull();
    expect(assembler.push({ ...base, index: 3, t: 7 })).toMatchObject({
      opcode: 2, firstFrameIndex: 1, frames: 2, length: 2, tEnd: 7, preview: Buffer.from('xx'),
    });
    expect(assembler.inMessage).toBe(false);
  });

  it('preview equals the payload prefix for any fragmentation (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 200 }), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 0, max: 700 }),
        fc.integer({ min: 0, max: 300 }),
        (parts, limit, decoderLimit) => {
          const wire = parts.map((p, i) =>
            frame(i === 0 ? 2 : 0, Buffer.from(p), { fin: i === parts.length - 1, mask: i % 2 === 0 }),
          );
          const [m] = assemble(wire, limit, { previewLimit: decoderLimit });
          const payload = Buffer.concat(parts.map((p) => Buffer.from(p)));
          // Bytes contiguous from the start that the decoder kept for us.
          let kept = 0;
          for (const p of parts) {
            kept += Math.min(p.length, decoderLimit);
            if (p.length > decoderLimit) break;
          }
          const n = Math.min(kept, limit);
          expect(m!.preview).toEqual(payload.subarray(0, n));
          expect(m!.previewTruncated).toBe(n < payload.length);
          expect(m!.length).toBe(payload.length);
          expect(m!.frames).toBe(parts.length);
        },
      ),
      { numRuns: 200 },
    );
  });
});
