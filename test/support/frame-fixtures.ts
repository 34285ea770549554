/**
 * Frame builders, a decoding harness and stream generators shared by the
 * frame decoder's unit tests and the relay-level hostile-frames test.
 *
 * Valid frames are built with ws's own Sender, so the decoder is checked
 * against an independent encoder. Invalid frames (which ws refuses to build)
 * come from `rawFrame`, a byte-level encoder written from RFC 6455 5.2.
 */
import fc from 'fast-check';
import * as ws from 'ws';
import {
  FrameDecoder,
  type DecodedFrame,
  type FrameDecoderOptions,
  type FrameErrorCode,
  type FrameHeader,
  type FrameProtocolError,
} from '../../src/wire/frame-decoder.js';

// --- valid frames, built by ws ------------------------------------------------

// @types/ws does not declare Sender; ws's ESM wrapper exports it.
interface SenderFrameOptions {
  fin: boolean;
  rsv1: boolean;
  opcode: number;
  mask: boolean;
  readOnly: boolean;
  maskBuffer?: Buffer;
  generateMask?: (mask: Buffer) => void;
}
const { Sender } = ws as unknown as {
  Sender: { frame(data: Buffer, options: SenderFrameOptions): Buffer[] };
};

export interface FrameSpec {
  opcode: number;
  payload: Buffer;
  fin?: boolean;
  rsv1?: boolean;
  /** A 4-byte key, or true for a random one. */
  mask?: Uint8Array | boolean;
}

/** Builds one frame with ws's own sender (which masks its input in place, so give it a copy). */
export function frame(spec: FrameSpec): Buffer {
  const key = spec.mask instanceof Uint8Array ? Buffer.from(spec.mask) : undefined;
  return Buffer.concat(
    Sender.frame(Buffer.from(spec.payload), {
      fin: spec.fin ?? true,
      rsv1: spec.rsv1 ?? false,
      opcode: spec.opcode,
      mask: spec.mask !== undefined && spec.mask !== false,
      readOnly: false,
      ...(key ? { maskBuffer: key, generateMask: () => {} } : {}),
    }),
  );
}

export function closeBody(code: number, reason: string): Buffer {
  const body = Buffer.alloc(2 + Buffer.byteLength(reason));
  body.writeUInt16BE(code, 0);
  body.write(reason, 2);
  return body;
}

// --- decoding harness ----------------------------------------------------------

export interface Run {
  frames: DecodedFrame[];
  headers: FrameHeader[];
  errors: FrameProtocolError[];
  payloads: Map<number, Buffer[]>;
  decoder: FrameDecoder;
}

/** Pushes `chunks` into a fresh decoder (chunk i gets t = ts[i], or i) and records every callback. */
/** Feeds `chunks` with times `ts` (default: the chunk's index) and `previous` (each chunk's previousByteAt, default: none given). */
export function run(chunks: Buffer[], options?: FrameDecoderOptions, ts?: number[], previous?: number[]): Run {
  const frames: DecodedFrame[] = [];
  const headers: FrameHeader[] = [];
  const errors: FrameProtocolError[] = [];
  const payloads = new Map<number, Buffer[]>();
  const decoder = new FrameDecoder(
    {
      onFrameHeader: (h) => headers.push(h),
      onPayload: (h, data) => {
        const list = payloads.get(h.index) ?? [];
        list.push(Buffer.from(data));
        payloads.set(h.index, list);
      },
      onFrame: (f) => frames.push(f),
      onError: (e) => errors.push(e),
    },
    options,
  );
  chunks.forEach((c, i) => {
    const t = ts ? ts[i]! : i;
    decoder.push(c, t, previous ? previous[i]! : t);
  });
  return { frames, headers, errors, payloads, decoder };
}

/** Cuts `buf` at `cuts` (clamped, any order, duplicates give empty chunks); `starts` are the chunks' offsets. */
export function splitAt(buf: Buffer, cuts: number[]): { chunks: Buffer[]; starts: number[] } {
  const points = [...cuts.map((c) => Math.min(c, buf.length)), 0, buf.length].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  const starts: number[] = [];
  for (let i = 0; i + 1 < points.length; i++) {
    chunks.push(buf.subarray(points[i], points[i + 1]));
    starts.push(points[i]!);
  }
  return { chunks, starts };
}

/** Index of the non-empty chunk holding stream offset `offset` (empty chunks hold no byte). */
export function chunkIndexAt(chunks: Buffer[], starts: number[], offset: number): number {
  return starts.findIndex((s, i) => s <= offset && offset < s + chunks[i]!.length);
}

// --- valid streams -------------------------------------------------------------

export type MaskChoice = false | Uint8Array;

export const maskKeyArb: fc.Arbitrary<Uint8Array> = fc.uint8Array({ minLength: 4, maxLength: 4 });
export const maskArb: fc.Arbitrary<MaskChoice> = fc.oneof(fc.constant<false>(false), maskKeyArb);
export const smallPayload = fc.uint8Array({ maxLength: 140 }).map((a) => Buffer.from(a));
export const anyPayload = fc.oneof(
  { weight: 8, arbitrary: smallPayload },
  { weight: 1, arbitrary: fc.integer({ min: 65530, max: 65540 }).map((n) => Buffer.alloc(n, n & 0xff)) },
);

/** Masks as a direction requires: true = always, false = never, undefined = either. */
export function maskFor(expectMasked: boolean | undefined): fc.Arbitrary<MaskChoice> {
  if (expectMasked === undefined) return maskArb;
  return expectMasked ? maskKeyArb : fc.constant<false>(false);
}

export function controlArb(mask: fc.Arbitrary<MaskChoice> = maskArb): fc.Arbitrary<FrameSpec> {
  return fc.record({
    opcode: fc.constantFrom(9, 10),
    payload: fc.uint8Array({ maxLength: 125 }).map((a) => Buffer.from(a)),
    mask,
  });
}

export interface StreamOptions {
  /** Masking of every frame (default: random per frame). */
  mask?: fc.Arbitrary<MaskChoice>;
  /** Set RSV1 at random on first fragments, as permessage-deflate may (default false). */
  rsv1?: boolean;
  /** Maybe end with a close frame (default true). */
  close?: boolean;
}

/** A message: 1+ fragments (control frames maybe interleaved), complete unless `open`. */
function messageArb(payloadArb: fc.Arbitrary<Buffer>, mask: fc.Arbitrary<MaskChoice>, rsv1: boolean, open: boolean): fc.Arbitrary<FrameSpec[]> {
  return fc
    .tuple(
      fc.constantFrom(1, 2),
      rsv1 ? fc.boolean() : fc.constant(false),
      fc.array(fc.tuple(payloadArb, mask, fc.option(controlArb(mask), { nil: undefined })), { minLength: 1, maxLength: 4 }),
    )
    .map(([opcode, compressed, fragments]) =>
      fragments.flatMap(([payload, frameMask, control], i): FrameSpec[] => {
        const spec: FrameSpec = {
          opcode: i === 0 ? opcode : 0,
          payload,
          mask: frameMask,
          fin: !open && i === fragments.length - 1,
          // RFC 7692 6.1: only the first frame of a message carries RSV1.
          ...(i === 0 && compressed ? { rsv1: true } : {}),
        };
        return control && !spec.fin ? [spec, control] : [spec];
      }),
    );
}

/** A message (1+ fragments, control frames maybe interleaved) or a lone control frame. */
export function streamArb(payloadArb: fc.Arbitrary<Buffer>, options: StreamOptions = {}): fc.Arbitrary<FrameSpec[]> {
  const mask = options.mask ?? maskArb;
  const message = messageArb(payloadArb, mask, options.rsv1 ?? false, false);
  const close = fc
    .tuple(fc.constantFrom(1000, 1001, 1011, 3000, 4999), fc.string({ maxLength: 20 }), mask)
    .map(([code, reason, frameMask]): FrameSpec[] => [{ opcode: 8, payload: closeBody(code, reason), mask: frameMask }]);
  return fc
    .tuple(
      fc.array(fc.oneof(message, controlArb(mask).map((c) => [c])), { maxLength: 8 }),
      options.close === false ? fc.constant(undefined) : fc.option(close, { nil: undefined }),
    )
    .map(([items, end]) => [...items.flat(), ...(end ?? [])]);
}

/** The first fragments of a message whose final frame has not been sent yet. */
export function openMessageArb(payloadArb: fc.Arbitrary<Buffer>, options: StreamOptions = {}): fc.Arbitrary<FrameSpec[]> {
  return messageArb(payloadArb, options.mask ?? maskArb, options.rsv1 ?? false, true);
}

/** What the decoder must report for each valid frame of `specs` (encoded as `wires`). */
export function expectedFrames(specs: FrameSpec[], wires: Buffer[], previewLimit: number): Partial<DecodedFrame>[] {
  let offset = 0;
  return specs.map((spec, index) => {
    const plain = spec.payload; // specs keep the plain payload; only the wire is masked
    const control = spec.opcode >= 8;
    const cap = control ? plain.length : Math.min(plain.length, previewLimit);
    const out: Partial<DecodedFrame> = {
      index,
      offset,
      opcode: spec.opcode,
      fin: spec.fin ?? true,
      rsv1: spec.rsv1 ?? false,
      masked: spec.mask instanceof Uint8Array,
      maskKey: spec.mask instanceof Uint8Array ? Buffer.from(spec.mask) : null,
      length: plain.length,
      preview: plain.subarray(0, cap),
      previewTruncated: cap < plain.length,
    };
    offset += wires[index]!.length;
    return out;
  });
}

// --- invalid frames --------------------------------------------------------------

export interface RawFrameSpec {
  fin: boolean;
  /** The three reserved bits as one number: 4 = RSV1, 2 = RSV2, 1 = RSV3. */
  rsv: number;
  opcode: number;
  mask: MaskChoice;
  payload: Buffer;
  /** Length field width: 7 (only up to 125), 16 or 64 bits; default the minimal one. */
  lengthForm?: 7 | 16 | 64;
  /** Written into the length field instead of payload.length (the payload is still appended). */
  declaredLength?: bigint;
}

/** Encodes any frame, including ones RFC 6455 forbids (ws's Sender refuses most of them). */
export function rawFrame(spec: RawFrameSpec): Buffer {
  const declared = spec.declaredLength ?? BigInt(spec.payload.length);
  const form = spec.lengthForm ?? (declared < 126n ? 7 : declared < 65536n ? 16 : 64);
  if (form === 7 && declared > 125n) throw new Error(`rawFrame: ${declared} does not fit in 7 bits`);
  if (form === 16 && declared > 65535n) throw new Error(`rawFrame: ${declared} does not fit in 16 bits`);
  const ext = form === 7 ? 0 : form === 16 ? 2 : 8;
  const key = spec.mask === false ? null : Buffer.from(spec.mask);
  const header = Buffer.alloc(2 + ext + (key ? 4 : 0));
  header[0] = (spec.fin ? 0x80 : 0) | ((spec.rsv & 7) << 4) | (spec.opcode & 0x0f);
  header[1] = (key ? 0x80 : 0) | (form === 7 ? Number(declared) : form === 16 ? 126 : 127);
  if (form === 16) header.writeUInt16BE(Number(declared), 2);
  if (form === 64) header.writeBigUInt64BE(declared, 2);
  if (key) key.copy(header, 2 + ext);
  const body = Buffer.from(spec.payload);
  if (key) for (let i = 0; i < body.length; i++) body[i] = body[i]! ^ key[i & 3]!;
  return Buffer.concat([header, body]);
}

/** The decoder's settings for one direction. */
export interface DecoderSide {
  allowRsv1: boolean;
  expectMasked: boolean | undefined;
}

/** A direction plus the state its valid prefix leaves it in. */
export interface HostileContext extends DecoderSide {
  /** The prefix ends inside a fragmented message (continuations expected). */
  open: boolean;
}

export interface BadFrame {
  bytes: Buffer;
  /** How many of its bytes the decoder needs before the violation shows. */
  detectAt: number;
  /** The violation is in the body (close frames): the header is reported before the error. */
  headerDelivered: boolean;
}

/** One kind of invalid frame, generated so that exactly one rule is broken. */
export interface HostileClass {
  name: string;
  code: FrameErrorCode;
  /** Settings and state the class needs (e.g. a mask error needs expectMasked). */
  needs?: Partial<HostileContext>;
  bad(ctx: HostileContext): fc.Arbitrary<BadFrame>;
}

/** Broken in the first two bytes. */
function inHeader(spec: RawFrameSpec): BadFrame {
  return { bytes: rawFrame(spec), detectAt: 2, headerDelivered: false };
}

/** Broken in the body: seen once the whole frame is in. */
function inBody(spec: RawFrameSpec): BadFrame {
  const bytes = rawFrame(spec);
  return { bytes, detectAt: bytes.length, headerDelivered: true };
}

const payloadUpTo = (max: number, min = 0): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((a) => Buffer.from(a));
/** Large payloads from a length and a seed: an array of 65000 random bytes would shrink byte by byte, for minutes. */
const patternedPayload = (min: number, max: number): fc.Arbitrary<Buffer> =>
  fc.tuple(fc.integer({ min, max }), fc.nat(255)).map(([n, seed]) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff)));
const controlOpcode = fc.constantFrom(8, 9, 10);
/** Every opcode RFC 6455 defines. */
const definedOpcode = fc.constantFrom(0, 1, 2, 8, 9, 10);
/** The data opcode the message state calls for: a continuation inside a message, a new message outside. */
const dataOpcodeFor = (open: boolean): fc.Arbitrary<number> => (open ? fc.constant(0) : fc.constantFrom(1, 2));
/** RSV1 where permessage-deflate allows it: on a message's first frame, when negotiated. */
const rsvFor = (ctx: DecoderSide, opcode: number): fc.Arbitrary<number> =>
  ctx.allowRsv1 && (opcode === 1 || opcode === 2) ? fc.constantFrom(0, 4) : fc.constant(0);

/** A data frame the decoder accepts in `ctx` but for its length field, which `length` fills in. */
function dataFrameWith(
  ctx: HostileContext,
  length: fc.Arbitrary<Pick<RawFrameSpec, 'payload' | 'lengthForm' | 'declaredLength'>>,
  detectAt: number,
): fc.Arbitrary<BadFrame> {
  return dataOpcodeFor(ctx.open).chain((opcode) =>
    fc
      .record({ fin: fc.boolean(), rsv: rsvFor(ctx, opcode), mask: maskFor(ctx.expectMasked), length })
      .map(({ length: l, ...rest }) => ({ bytes: rawFrame({ opcode, ...rest, ...l }), detectAt, headerDelivered: false })),
  );
}

/** A frame valid in `ctx` (header-wise) but for its mask bit. */
function wrongMask(ctx: HostileContext, mask: fc.Arbitrary<MaskChoice>): fc.Arbitrary<BadFrame> {
  return fc.oneof(controlOpcode, dataOpcodeFor(ctx.open)).chain((opcode) =>
    fc
      .record({
        fin: opcode >= 8 ? fc.constant(true) : fc.boolean(),
        rsv: rsvFor(ctx, opcode),
        mask,
        payload: payloadUpTo(opcode >= 8 ? 125 : 200),
      })
      .map((s) => inHeader({ opcode, ...s })),
  );
}

/** A close frame (valid header in `ctx`) with this body. */
function closeWith(ctx: HostileContext, body: fc.Arbitrary<Buffer>): fc.Arbitrary<BadFrame> {
  return fc
    .record({ mask: maskFor(ctx.expectMasked), payload: body })
    .map((s) => inBody({ opcode: 8, fin: true, rsv: 0, ...s }));
}

const VALID_CLOSE_CODE = fc.oneof(fc.integer({ min: 1000, max: 1003 }), fc.integer({ min: 1007, max: 1014 }), fc.integer({ min: 3000, max: 4999 }));
/** RFC 6455 7.4: everything else, including the never-sent 1005/1006 and unassigned 1004/1015. */
export const invalidCloseCodeArb = fc.oneof(
  // The edges of the valid ranges, which random picks would rarely hit.
  { weight: 3, arbitrary: fc.constantFrom(0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 999 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1015, max: 2999 }) },
  { weight: 1, arbitrary: fc.integer({ min: 5000, max: 65535 }) },
);
const cont = fc.integer({ min: 0x80, max: 0xbf });
/** Byte sequences that are not UTF-8 wherever they appear between whole characters (RFC 3629 4). */
export const invalidUtf8SequenceArb: fc.Arbitrary<number[]> = fc.oneof(
  cont.map((c) => [c]), // continuation byte without a lead
  fc.tuple(fc.constantFrom(0xc0, 0xc1), cont).map((b) => [...b]), // overlong 2-byte form
  fc.tuple(fc.constant(0xe0), fc.integer({ min: 0x80, max: 0x9f }), cont).map((b) => [...b]), // overlong 3-byte form
  fc.tuple(fc.constant(0xed), fc.integer({ min: 0xa0, max: 0xbf }), cont).map((b) => [...b]), // UTF-16 surrogate
  fc.tuple(fc.constant(0xf0), fc.integer({ min: 0x80, max: 0x8f }), cont, cont).map((b) => [...b]), // overlong 4-byte form
  fc.tuple(fc.constant(0xf4), fc.integer({ min: 0x90, max: 0xbf }), cont, cont).map((b) => [...b]), // above U+10FFFF
  fc.integer({ min: 0xf5, max: 0xff }).map((b) => [b]), // never a UTF-8 byte
  // A lead byte cut short: what follows is a lead byte, ASCII or the end, never a continuation byte.
  fc.integer({ min: 0xc2, max: 0xdf }).map((b) => [b]),
  fc.tuple(fc.integer({ min: 0xe1, max: 0xec }), cont).map((b) => [...b]),
  fc.tuple(fc.integer({ min: 0xf1, max: 0xf3 }), cont, cont).map((b) => [...b]),
);
/** A close reason of at most 123 bytes with an invalid sequence between valid text. */
export const invalidUtf8ReasonArb: fc.Arbitrary<Buffer> = fc
  .tuple(fc.string({ unit: 'binary', maxLength: 12 }), invalidUtf8SequenceArb, fc.string({ unit: 'binary', maxLength: 12 }))
  .map(([before, bad, after]) => Buffer.concat([Buffer.from(before), Buffer.from(bad), Buffer.from(after)]));

const RESERVED_OPCODES = [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf];
const TWO_53 = 2n ** 53n;
const TWO_63 = 2n ** 63n;
const TWO_64 = 2n ** 64n;

/*
 * Where a class leaves other bits random (mask, FIN, RSV1), every order of
 * checks seen in practice (ours, and ws's receiver) gives the same first
 * error; everything else is kept valid so the expected code is certain.
 */
export const HOSTILE_CLASSES: HostileClass[] = [
  {
    name: 'reserved opcode (3-7, 0xB-0xF)',
    code: 'WS_ERR_INVALID_OPCODE',
    bad: () =>
      fc
        .record({ opcode: fc.constantFrom(...RESERVED_OPCODES), fin: fc.boolean(), mask: maskArb, payload: payloadUpTo(200) })
        .map((s) => inHeader({ ...s, rsv: 0 })),
  },
  {
    name: 'RSV2 or RSV3 set',
    code: 'WS_ERR_UNEXPECTED_RSV_2_3',
    bad: () =>
      fc
        .record({
          opcode: definedOpcode,
          rsv: fc.integer({ min: 1, max: 7 }).filter((r) => (r & 3) !== 0),
          fin: fc.boolean(),
          mask: maskArb,
          payload: payloadUpTo(125),
        })
        .map(inHeader),
  },
  {
    name: 'RSV1 without a negotiated extension',
    code: 'WS_ERR_UNEXPECTED_RSV_1',
    needs: { allowRsv1: false },
    bad: () =>
      fc
        .record({ opcode: definedOpcode, fin: fc.boolean(), mask: maskArb, payload: payloadUpTo(125) })
        .map((s) => inHeader({ ...s, rsv: 4 })),
  },
  {
    name: 'RSV1 on a control or continuation frame with permessage-deflate',
    code: 'WS_ERR_UNEXPECTED_RSV_1',
    needs: { allowRsv1: true },
    bad: () =>
      fc.constantFrom(0, 8, 9, 10).chain((opcode) =>
        fc
          // ws checks FIN before RSV1 on control frames, we the other way round: keep FIN valid there.
          .record({ fin: opcode === 0 ? fc.boolean() : fc.constant(true), mask: maskArb, payload: payloadUpTo(125) })
          .map((s) => inHeader({ opcode, ...s, rsv: 4 })),
      ),
  },
  {
    name: 'fragmented control frame (FIN clear)',
    code: 'WS_ERR_EXPECTED_FIN',
    bad: () =>
      fc
        .record({ opcode: controlOpcode, mask: maskArb, payload: payloadUpTo(200) })
        .map((s) => inHeader({ ...s, fin: false, rsv: 0 })),
  },
  {
    name: 'control frame over 125 bytes',
    code: 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH',
    bad: () =>
      fc
        .record({
          opcode: controlOpcode,
          mask: maskArb,
          length: fc.oneof(
            payloadUpTo(400, 126).map((payload) => ({ payload })),
            // Any 64-bit value: the 7-bit field (127) alone already says "over 125".
            fc.bigInt(0n, TWO_64 - 1n).map((declaredLength) => ({ payload: Buffer.alloc(0), lengthForm: 64 as const, declaredLength })),
          ),
        })
        .map(({ length, ...s }) => inHeader({ ...s, ...length, fin: true, rsv: 0 })),
  },
  {
    name: '64-bit length over 2^53 - 1 (MSB set or not)',
    code: 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH',
    bad: (ctx) =>
      dataFrameWith(
        ctx,
        fc
          .oneof(fc.constantFrom(TWO_53, TWO_63), fc.bigInt(TWO_63, TWO_64 - 1n), fc.bigInt(TWO_53, TWO_63 - 1n))
          .map((declaredLength) => ({ payload: Buffer.alloc(0), lengthForm: 64 as const, declaredLength })),
        10,
      ),
  },
  {
    name: 'non-minimal length in 16 bits',
    code: 'WS_ERR_INVALID_LENGTH_ENCODING',
    bad: (ctx) =>
      dataFrameWith(
        ctx,
        // 120-125 as often as 0-125: 125 is the edge, one below the first length that needs 16 bits.
        fc.oneof(payloadUpTo(125), payloadUpTo(125, 120)).map((payload) => ({ payload, lengthForm: 16 as const })),
        4,
      ),
  },
  {
    name: 'non-minimal length in 64 bits',
    code: 'WS_ERR_INVALID_LENGTH_ENCODING',
    bad: (ctx) =>
      dataFrameWith(
        ctx,
        fc
          .oneof({ weight: 6, arbitrary: payloadUpTo(300) }, { weight: 1, arbitrary: patternedPayload(65000, 65535) })
          .map((payload) => ({ payload, lengthForm: 64 as const })),
        10,
      ),
  },
  {
    name: 'orphan continuation frame',
    code: 'WS_ERR_UNEXPECTED_CONTINUATION',
    needs: { open: false },
    bad: () =>
      fc.record({ fin: fc.boolean(), mask: maskArb, payload: payloadUpTo(200) }).map((s) => inHeader({ ...s, opcode: 0, rsv: 0 })),
  },
  {
    name: 'new data frame inside a fragmented message',
    code: 'WS_ERR_EXPECTED_CONTINUATION',
    needs: { open: true },
    bad: (ctx) =>
      fc.constantFrom(1, 2).chain((opcode) =>
        fc
          .record({ fin: fc.boolean(), rsv: rsvFor(ctx, opcode), mask: maskArb, payload: payloadUpTo(200) })
          .map((s) => inHeader({ ...s, opcode })),
      ),
  },
  {
    name: 'unmasked frame where masking is required (client)',
    code: 'WS_ERR_EXPECTED_MASK',
    needs: { expectMasked: true },
    bad: (ctx) => wrongMask(ctx, fc.constant<false>(false)),
  },
  {
    name: 'masked frame where masking is forbidden (server)',
    code: 'WS_ERR_UNEXPECTED_MASK',
    needs: { expectMasked: false },
    bad: (ctx) => wrongMask(ctx, maskKeyArb),
  },
  {
    name: 'close frame with a 1-byte body',
    code: 'WS_ERR_INVALID_CLOSE_PAYLOAD',
    bad: (ctx) => closeWith(ctx, payloadUpTo(1, 1)),
  },
  {
    name: 'close frame with an invalid code',
    code: 'WS_ERR_INVALID_CLOSE_CODE',
    // The code is checked before the reason: any reason bytes will do.
    bad: (ctx) => closeWith(ctx, fc.tuple(invalidCloseCodeArb, payloadUpTo(123)).map(([code, reason]) => closeBodyBytes(code, reason))),
  },
  {
    name: 'close reason that is not UTF-8',
    code: 'WS_ERR_INVALID_UTF8',
    bad: (ctx) => closeWith(ctx, fc.tuple(VALID_CLOSE_CODE, invalidUtf8ReasonArb).map(([code, reason]) => closeBodyBytes(code, reason))),
  },
];

function closeBodyBytes(code: number, reason: Buffer): Buffer {
  const body = Buffer.alloc(2 + reason.length);
  body.writeUInt16BE(code, 0);
  reason.copy(body, 2);
  return body;
}

/** Whether `cls` can be generated where the settings in `fixed` hold (keys left out are free). */
export function fits(cls: HostileClass, fixed: Partial<HostileContext>): boolean {
  const needs = cls.needs ?? {};
  return (Object.keys(needs) as Array<keyof HostileContext>).every((k) => !(k in fixed) || fixed[k] === needs[k]);
}

/** Settings for `cls`: `fixed` where given, else what the class needs, else random. */
export function contextArb(cls: HostileClass, fixed: Partial<HostileContext> = {}): fc.Arbitrary<HostileContext> {
  const needs: Partial<HostileContext> = cls.needs ?? {};
  const pick = <K extends keyof HostileContext>(k: K, any: fc.Arbitrary<HostileContext[K]>): fc.Arbitrary<HostileContext[K]> => {
    if (k in fixed) return fc.constant(fixed[k] as HostileContext[K]);
    if (k in needs) return fc.constant(needs[k] as HostileContext[K]);
    return any;
  };
  return fc.record({
    allowRsv1: pick('allowRsv1', fc.boolean()),
    expectMasked: pick('expectMasked', fc.constantFrom<boolean | undefined>(true, false, undefined)),
    open: pick('open', fc.boolean()),
  });
}

export interface HostileCase {
  ctx: HostileContext;
  /** The valid frames before the offending one, and their encodings. */
  specs: FrameSpec[];
  wires: Buffer[];
  prefix: Buffer;
  bad: BadFrame;
  /** Whatever follows the offending frame: nothing, garbage or valid frames. */
  trailer: Buffer;
  /** prefix + bad + trailer */
  wire: Buffer;
}

/** Bytes after the offending frame: the decoder must not look at them. */
export const trailerArb: fc.Arbitrary<Buffer> = fc.oneof(
  fc.constant(Buffer.alloc(0)),
  fc.uint8Array({ minLength: 1, maxLength: 64 }).map((a) => Buffer.from(a)),
  streamArb(smallPayload).map((specs) => Buffer.concat(specs.map(frame))),
);

/**
 * A valid prefix for `ctx` (ending inside a fragmented message when
 * ctx.open), one frame of class `cls`, then a trailer.
 */
export function hostileCaseArb(
  cls: HostileClass,
  ctxArb: fc.Arbitrary<HostileContext> = contextArb(cls),
  payloadArb: fc.Arbitrary<Buffer> = smallPayload,
): fc.Arbitrary<HostileCase> {
  return ctxArb.chain((ctx) => {
    const stream: StreamOptions = { mask: maskFor(ctx.expectMasked), rsv1: ctx.allowRsv1, close: false };
    const prefixArb = fc
      .tuple(streamArb(payloadArb, stream), ctx.open ? openMessageArb(payloadArb, stream) : fc.constant([]))
      .map(([complete, open]) => [...complete, ...open]);
    return fc.record({ specs: prefixArb, bad: cls.bad(ctx), trailer: trailerArb }).map(({ specs, bad, trailer }): HostileCase => {
      const wires = specs.map(frame);
      const prefix = Buffer.concat(wires);
      return { ctx, specs, wires, prefix, bad, trailer, wire: Buffer.concat([prefix, bad.bytes, trailer]) };
    });
  });
}
