/**
 * Passive, incremental RFC 6455 frame decoder for one direction of a relayed
 * connection.
 *
 * About 500 lines on purpose: one state machine whose states share the
 * header, mask and preview buffers; the error codes and the hostile-input
 * cases (frame-decoder-hostile.test.ts) read best next to the state that
 * detects them.
 *
 * The relay forwards bytes unchanged and hands this decoder the same chunks
 * only to record what went past. Hence the decoder:
 * - never throws on any input and never mutates the chunks it is given
 *   (masked payload is unmasked into fresh preview/payload buffers only);
 * - buffers at most the 14 header bytes, the payload preview (`previewLimit`
 *   bytes) and whole control frame bodies (<= 125 bytes), so a 1 GB frame
 *   costs no more memory than a small one;
 * - stops at the first protocol error: it reports it once through `onError`
 *   and afterwards only counts bytes.
 *
 * Structured like ws's lib/receiver.js: a small state machine with named
 * states and `WS_ERR_*` codes. Handlers must not throw; the relay wraps `push`
 * in try/catch, and a throwing handler may lose the rest of that chunk.
 */
import { isUtf8 } from 'node:buffer';

export type FrameErrorCode =
  | 'WS_ERR_INVALID_OPCODE' // reserved opcodes 3-7, 0xB-0xF
  | 'WS_ERR_UNEXPECTED_RSV_1' // rsv1 without negotiated extension, or on control/continuation frame
  | 'WS_ERR_UNEXPECTED_RSV_2_3'
  | 'WS_ERR_EXPECTED_FIN' // fragmented control frame
  | 'WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH' // control frame > 125
  | 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH' // 64-bit length with MSB set, or > Number.MAX_SAFE_INTEGER
  | 'WS_ERR_INVALID_LENGTH_ENCODING' // non-minimal length encoding
  | 'WS_ERR_UNEXPECTED_CONTINUATION' // continuation frame with no message in progress
  | 'WS_ERR_EXPECTED_CONTINUATION' // new text/binary frame while a fragmented message is in progress
  | 'WS_ERR_EXPECTED_MASK'
  | 'WS_ERR_UNEXPECTED_MASK' // only checked when option expectMasked is set
  | 'WS_ERR_INVALID_CLOSE_PAYLOAD' // close body of exactly 1 byte
  | 'WS_ERR_INVALID_CLOSE_CODE' // RFC 6455 7.4; valid are 1000-1003, 1007-1014, 3000-4999
  | 'WS_ERR_INVALID_UTF8'; // close reason not valid UTF-8

export interface FrameHeader {
  index: number; // 0-based frame number in this direction
  offset: number; // stream offset (bytes pushed before it) of the frame's first byte
  t: number; // the `t` passed with the chunk that held the frame's first byte
  /** The `previousByteAt` passed with that chunk: with `t`, the silence before the frame's first byte. */
  previousByteAt: number;
  fin: boolean; rsv1: boolean; rsv2: boolean; rsv3: boolean;
  opcode: number;
  masked: boolean;
  length: number; // payload length
  headerLength: number; // 2..14
  maskKey: Buffer | null; // 4 bytes when masked: a copy, not a view into a chunk
}

export interface DecodedFrame extends FrameHeader {
  preview: Buffer; // unmasked first min(length, previewLimit) payload bytes; control frames whole
  previewTruncated: boolean;
  closeCode?: number; // close frames with a body of >= 2 bytes
  closeReason?: string;
}

export interface FrameProtocolError {
  code: FrameErrorCode;
  message: string;
  offset: number; // offset of the first byte of the offending frame
  t: number; // and the `t` of the chunk that held it
  frameIndex: number;
}

/** A frame whose first byte arrived but not its last: what is known of it. */
export interface UnfinishedFrame {
  index: number;
  offset: number;
  t: number;
  /** Bytes of it received so far, header included. */
  received: number;
  /** Null while the header itself is incomplete. */
  header: FrameHeader | null;
  /** Payload bytes received (0 while the header is incomplete). */
  payloadReceived: number;
}

export interface FrameDecoderHandlers {
  /** As soon as the header is complete. */
  onFrameHeader?(header: FrameHeader): void;
  /**
   * Unmasked payload slices, only for frames where `wantPayload(header)`
   * returned true. For unmasked frames `data` is a view into the pushed chunk:
   * copy it if it must outlive the chunk, and never write to it.
   */
  onPayload?(header: FrameHeader, data: Buffer): void;
  /** When the frame's last payload byte has arrived. */
  onFrame(frame: DecodedFrame): void;
  /** Once; the decoder then stops. The offending frame gets no onFrame. */
  onError(error: FrameProtocolError): void;
}

export interface FrameDecoderOptions {
  previewLimit?: number; // default 256; 0 allowed
  allowRsv1?: boolean; // permessage-deflate: rsv1 allowed on the first frame of a data message
  expectMasked?: boolean; // undefined = don't check; true = frames MUST be masked; false = MUST NOT
  /** Called after onFrameHeader for every frame; true routes its payload to onPayload. */
  wantPayload?(header: FrameHeader): boolean;
}

// States, named as in ws's receiver.
const GET_INFO = 0;
const GET_PAYLOAD_LENGTH_16 = 1;
const GET_PAYLOAD_LENGTH_64 = 2;
const GET_MASK = 3;
const GET_DATA = 4;
const FAILED = 5;

const EMPTY = Buffer.alloc(0);
const TWO_32 = 2 ** 32;

/** RFC 6455 7.4.1/7.4.2 plus the registered 1012-1014; mirrors ws's isValidStatusCode. */
function isValidCloseCode(code: number): boolean {
  return (
    (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
    (code >= 3000 && code <= 4999)
  );
}

/**
 * dst[d..d+n) = src[s..s+n) XOR mask, starting at mask phase `phase`
 * (unrolled by 4 with the key bytes in locals: ~2.5x faster than indexing the key).
 */
function unmaskInto(src: Buffer, s: number, n: number, dst: Buffer, d: number, mask: Buffer, maskOff: number, phase: number): void {
  const m0 = mask[maskOff + (phase & 3)]!;
  const m1 = mask[maskOff + ((phase + 1) & 3)]!;
  const m2 = mask[maskOff + ((phase + 2) & 3)]!;
  const m3 = mask[maskOff + ((phase + 3) & 3)]!;
  const n4 = n - (n & 3);
  let i = 0;
  for (; i < n4; i += 4) {
    dst[d + i] = src[s + i]! ^ m0;
    dst[d + i + 1] = src[s + i + 1]! ^ m1;
    dst[d + i + 2] = src[s + i + 2]! ^ m2;
    dst[d + i + 3] = src[s + i + 3]! ^ m3;
  }
  if (i < n) dst[d + i] = src[s + i]! ^ m0;
  if (i + 1 < n) dst[d + i + 1] = src[s + i + 1]! ^ m1;
  if (i + 2 < n) dst[d + i + 2] = src[s + i + 2]! ^ m2;
}

export class FrameDecoder {
  private readonly handlers: FrameDecoderHandlers;
  private readonly previewLimit: number;
  private readonly allowRsv1: boolean;
  private readonly expectMasked: boolean | undefined;
  private readonly wantPayload: ((header: FrameHeader) => boolean) | undefined;

  private state = GET_INFO;
  /** Header bytes of the current frame; the mask key stays here until the frame ends. */
  private readonly hdr = Buffer.alloc(14);
  private hdrLen = 0;
  private hdrNeed = 2;

  // The frame being parsed; copied into `header` once the header is complete.
  private frameOffset = 0;
  private frameT = 0;
  private framePreviousByteAt = 0;
  private fin = false;
  private rsv1 = false;
  private opcode = 0;
  private masked = false;
  private length = 0;

  private header: FrameHeader | null = null;
  private payloadPos = 0;
  private preview: Buffer = EMPTY;
  private previewPos = 0;
  private want = false;

  private bytes = 0;
  private frames = 0;
  private messageOpen = false;

  constructor(handlers: FrameDecoderHandlers, options: FrameDecoderOptions = {}) {
    this.handlers = handlers;
    const limit = options.previewLimit ?? 256;
    this.previewLimit = limit > 0 ? Math.floor(limit) : 0; // NaN and negatives -> 0
    this.allowRsv1 = options.allowRsv1 === true;
    this.expectMasked = options.expectMasked;
    this.wantPayload = options.wantPayload;
  }

  get failed(): boolean {
    return this.state === FAILED;
  }

  /** Total bytes pushed, including after failure. */
  get bytesSeen(): number {
    return this.bytes;
  }

  /** Frames delivered through onFrame. */
  get framesSeen(): number {
    return this.frames;
  }

  /**
   * A data message has begun and its final frame has not been fully received
   * (true between the fragments of a fragmented message, and also while the
   * payload of a single-frame message is still arriving).
   */
  get inMessage(): boolean {
    return this.messageOpen;
  }

  /**
   * The frame in progress, if its first byte has arrived: at the end of a
   * connection, a frame cut off in the middle. Null between frames and after
   * a protocol error.
   */
  get unfinishedFrame(): UnfinishedFrame | null {
    if (this.state === FAILED || (this.state === GET_INFO && this.hdrLen === 0)) return null;
    const header = this.state === GET_DATA ? this.header : null;
    return {
      index: this.frames,
      offset: this.frameOffset,
      t: this.frameT,
      received: this.bytes - this.frameOffset,
      header,
      payloadReceived: header ? this.payloadPos : 0,
    };
  }

  /**
   * `t` is when the chunk arrived and `previousByteAt` when the byte before it
   * did (both the caller's clock, default: no silence); a frame carries the
   * pair of the chunk its first byte came in, however many chunks its header
   * and payload span.
   */
  push(chunk: Buffer, t: number, previousByteAt: number = t): void {
    const base = this.bytes;
    this.bytes += chunk.length;
    const end = chunk.length;
    let pos = 0;
    while (pos < end) {
      switch (this.state) {
        case GET_INFO:
          if (this.hdrLen === 0) {
            this.frameOffset = base + pos;
            this.frameT = t;
            this.framePreviousByteAt = pos === 0 ? previousByteAt : t;
          }
          pos = this.fill(chunk, pos);
          if (this.hdrLen === 2) this.getInfo();
          break;
        case GET_PAYLOAD_LENGTH_16:
          pos = this.fill(chunk, pos);
          if (this.hdrLen === 4) this.getPayloadLength16();
          break;
        case GET_PAYLOAD_LENGTH_64:
          pos = this.fill(chunk, pos);
          if (this.hdrLen === 10) this.getPayloadLength64();
          break;
        case GET_MASK:
          pos = this.fill(chunk, pos);
          if (this.hdrLen === this.hdrNeed) this.headerComplete();
          break;
        case GET_DATA:
          pos = this.getData(chunk, pos);
          break;
        default: // FAILED: only count bytes
          return;
      }
    }
  }

  /** Copies header bytes until `hdrNeed` are buffered or the chunk ends. */
  private fill(chunk: Buffer, pos: number): number {
    const hdr = this.hdr;
    const need = this.hdrNeed;
    const end = chunk.length;
    let n = this.hdrLen;
    while (n < need && pos < end) hdr[n++] = chunk[pos++]!;
    this.hdrLen = n;
    return pos;
  }

  private getInfo(): void {
    const b0 = this.hdr[0]!;
    const b1 = this.hdr[1]!;
    const opcode = b0 & 0x0f;
    const fin = (b0 & 0x80) !== 0;
    const rsv1 = (b0 & 0x40) !== 0;
    const masked = (b1 & 0x80) !== 0;
    const len7 = b1 & 0x7f;
    const control = opcode >= 0x8;

    // "If an unknown opcode is received, the receiving endpoint MUST _Fail the WebSocket Connection_."
    if ((opcode > 0x2 && opcode < 0x8) || opcode > 0xa) {
      return this.fail('WS_ERR_INVALID_OPCODE', `invalid opcode ${opcode}`);
    }
    // "MUST be 0 unless an extension is negotiated that defines meanings for non-zero values."
    if ((b0 & 0x30) !== 0) return this.fail('WS_ERR_UNEXPECTED_RSV_2_3', 'RSV2 and RSV3 must be clear');
    // RFC 7692 6.1: "An endpoint MUST NOT set the "Per-Message Compressed" bit of control
    // frames and non-first fragments of a data message."
    if (rsv1 && (!this.allowRsv1 || control || opcode === 0x0)) {
      return this.fail('WS_ERR_UNEXPECTED_RSV_1', 'RSV1 must be clear');
    }
    if (control) {
      // "All control frames MUST have a payload length of 125 bytes or less and MUST NOT be fragmented."
      if (!fin) return this.fail('WS_ERR_EXPECTED_FIN', 'FIN must be set');
      if (len7 > 125) {
        return this.fail('WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH', `invalid payload length ${len7}`);
      }
    } else if (opcode === 0x0) {
      if (!this.messageOpen) return this.fail('WS_ERR_UNEXPECTED_CONTINUATION', 'invalid opcode 0');
    } else if (this.messageOpen) {
      // "The fragments of one message MUST NOT be interleaved between the fragments of another message"
      return this.fail('WS_ERR_EXPECTED_CONTINUATION', `invalid opcode ${opcode}`);
    }
    // "a client MUST mask all frames that it sends to the server" and
    // "A server MUST NOT mask any frames that it sends to the client."
    if (this.expectMasked !== undefined && masked !== this.expectMasked) {
      return masked
        ? this.fail('WS_ERR_UNEXPECTED_MASK', 'MASK must be clear')
        : this.fail('WS_ERR_EXPECTED_MASK', 'MASK must be set');
    }

    this.fin = fin;
    this.rsv1 = rsv1;
    this.opcode = opcode;
    this.masked = masked;
    if (len7 === 126) {
      this.state = GET_PAYLOAD_LENGTH_16;
      this.hdrNeed = 4;
    } else if (len7 === 127) {
      this.state = GET_PAYLOAD_LENGTH_64;
      this.hdrNeed = 10;
    } else {
      this.length = len7;
      this.haveLength();
    }
  }

  private getPayloadLength16(): void {
    const length = this.hdr.readUInt16BE(2);
    // "the minimal number of bytes MUST be used to encode the length"
    if (length < 126) {
      return this.fail('WS_ERR_INVALID_LENGTH_ENCODING', `length ${length} encoded in 16 bits`);
    }
    this.length = length;
    this.haveLength();
  }

  private getPayloadLength64(): void {
    const high = this.hdr.readUInt32BE(2);
    // "the most significant bit MUST be 0"
    if (high > 0x7fffffff) {
      return this.fail('WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH', 'MSB of 64-bit length must be 0');
    }
    const length = high * TWO_32 + this.hdr.readUInt32BE(6);
    if (length > Number.MAX_SAFE_INTEGER) {
      return this.fail('WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH', 'payload length > 2^53 - 1');
    }
    if (length < 65536) {
      return this.fail('WS_ERR_INVALID_LENGTH_ENCODING', `length ${length} encoded in 64 bits`);
    }
    this.length = length;
    this.haveLength();
  }

  private haveLength(): void {
    if (this.masked) {
      this.state = GET_MASK;
      this.hdrNeed = this.hdrLen + 4;
    } else {
      this.headerComplete();
    }
  }

  private headerComplete(): void {
    const headerLength = this.hdrLen;
    const length = this.length;
    const opcode = this.opcode;
    const header: FrameHeader = {
      index: this.frames,
      offset: this.frameOffset,
      t: this.frameT,
      previousByteAt: this.framePreviousByteAt,
      fin: this.fin,
      rsv1: this.rsv1,
      rsv2: false, // a set RSV2/RSV3 already failed in getInfo
      rsv3: false,
      opcode,
      masked: this.masked,
      length,
      headerLength,
      maskKey: this.masked ? this.copyMaskKey(headerLength - 4) : null,
    };
    if (opcode === 0x1 || opcode === 0x2) this.messageOpen = true;
    // Control bodies are at most 125 bytes and needed whole (close code/reason).
    const cap = opcode >= 0x8 ? length : Math.min(length, this.previewLimit);
    this.header = header;
    this.preview = cap === 0 ? EMPTY : Buffer.allocUnsafe(cap); // fully written before use
    this.previewPos = 0;
    this.payloadPos = 0;
    this.state = GET_DATA;
    this.handlers.onFrameHeader?.(header);
    this.want = this.wantPayload !== undefined && this.wantPayload(header);
    if (length === 0) this.frameComplete();
  }

  private copyMaskKey(at: number): Buffer {
    const hdr = this.hdr;
    const key = Buffer.allocUnsafe(4);
    key[0] = hdr[at]!;
    key[1] = hdr[at + 1]!;
    key[2] = hdr[at + 2]!;
    key[3] = hdr[at + 3]!;
    return key;
  }

  private getData(chunk: Buffer, pos: number): number {
    const header = this.header!;
    const n = Math.min(this.length - this.payloadPos, chunk.length - pos);
    // "j = i MOD 4; transformed-octet-i = original-octet-i XOR masking-key-octet-j",
    // with i the position in the whole payload, not in this chunk.
    const phase = this.payloadPos & 3;
    const maskOff = header.headerLength - 4;
    const preview = this.preview;
    const p = Math.min(n, preview.length - this.previewPos);
    if (p > 0) {
      if (header.masked) unmaskInto(chunk, pos, p, preview, this.previewPos, this.hdr, maskOff, phase);
      else chunk.copy(preview, this.previewPos, pos, pos + p);
      this.previewPos += p;
    }
    if (this.want) {
      let data: Buffer;
      if (header.masked) {
        data = Buffer.allocUnsafe(n);
        unmaskInto(chunk, pos, n, data, 0, this.hdr, maskOff, phase);
      } else {
        data = chunk.subarray(pos, pos + n);
      }
      this.handlers.onPayload?.(header, data);
    }
    this.payloadPos += n;
    if (this.payloadPos === this.length) this.frameComplete();
    return pos + n;
  }

  private frameComplete(): void {
    const header = this.header!;
    const preview = this.preview;
    let closeCode: number | undefined;
    let closeReason: string | undefined;
    if (header.opcode === 0x8 && header.length > 0) {
      // "If there is a body, the first two bytes of the body MUST be a 2-byte unsigned integer"
      // (RFC 6455 5.5.1); the codes allowed on the wire are listed in 7.4.
      if (header.length === 1) return this.fail('WS_ERR_INVALID_CLOSE_PAYLOAD', 'invalid payload length 1');
      closeCode = preview.readUInt16BE(0);
      if (!isValidCloseCode(closeCode)) {
        return this.fail('WS_ERR_INVALID_CLOSE_CODE', `invalid status code ${closeCode}`);
      }
      // "Following the 2-byte integer, the body MAY contain UTF-8-encoded data"
      const reason = preview.subarray(2);
      if (!isUtf8(reason)) return this.fail('WS_ERR_INVALID_UTF8', 'invalid UTF-8 sequence');
      closeReason = reason.toString('utf8');
    }
    // Field by field: `{ ...header, ... }` here made decoding 4-10x slower (V8 slow path).
    const frame: DecodedFrame = {
      index: header.index,
      offset: header.offset,
      t: header.t,
      previousByteAt: header.previousByteAt,
      fin: header.fin,
      rsv1: header.rsv1,
      rsv2: header.rsv2,
      rsv3: header.rsv3,
      opcode: header.opcode,
      masked: header.masked,
      length: header.length,
      headerLength: header.headerLength,
      maskKey: header.maskKey,
      preview,
      previewTruncated: preview.length < header.length,
    };
    if (closeCode !== undefined) {
      frame.closeCode = closeCode;
      frame.closeReason = closeReason;
    }
    if (header.fin && header.opcode < 0x8) this.messageOpen = false;
    // Reset before calling out so a throwing handler leaves us between frames.
    this.frames++;
    this.resetFrame();
    this.handlers.onFrame(frame);
  }

  private resetFrame(): void {
    this.state = GET_INFO;
    this.hdrLen = 0;
    this.hdrNeed = 2;
    this.header = null;
    this.preview = EMPTY;
    this.want = false;
  }

  private fail(code: FrameErrorCode, message: string): void {
    this.resetFrame();
    this.state = FAILED;
    this.handlers.onError({
      code,
      message: `Invalid WebSocket frame: ${message}`,
      offset: this.frameOffset,
      t: this.frameT,
      frameIndex: this.frames,
    });
  }
}
