import type { FrameEvent, HandshakeResponseEvent, Side } from '../capture/events.js';
import { FrameDecoder, type DecodedFrame, type FrameHeader, type FrameProtocolError } from '../wire/frame-decoder.js';
import { MessageAssembler, type AssembledMessage } from '../wire/message-assembler.js';
import { MessageInflater } from '../wire/message-inflater.js';
import type { ConnectionContext } from './connection-context.js';

const OPCODE_CLOSE = 8;
/** Bytes a client may send before the 101 arrives that we keep for decoding. */
const MAX_EARLY_BYTES = 64 * 1024;

export interface WebSocketTapOptions {
  previewLimit: number;
}

/**
 * Decodes a copy of one upgraded connection's bytes into frame and message
 * events. It never touches the sockets: a decoder failure, or a fault in this
 * code, is recorded and ends decoding of that direction only.
 */
export class WebSocketTap {
  readonly #ctx: ConnectionContext;
  readonly #options: WebSocketTapOptions;
  #client: DirectionTap | null = null;
  #upstream: DirectionTap | null = null;
  #early: Array<{ chunk: Buffer; t: number; previousByteAt: number }> = [];
  #earlyBytes = 0;
  #disarmed = false;
  /** The client's bytes before the 101 have a hole: not kept, not decoded. */
  #earlyStopped = false;

  constructor(ctx: ConnectionContext, options: WebSocketTapOptions) {
    this.#ctx = ctx;
    this.#options = options;
  }

  /** The upstream answered 101 with `Upgrade: websocket`: start decoding. */
  arm(response: HandshakeResponseEvent): void {
    const deflate = response.deflate;
    this.#client = new DirectionTap(this.#ctx, 'client', this.#options, deflate && {
      windowBits: deflate.clientMaxWindowBits,
      noContextTakeover: deflate.clientNoContextTakeover,
    });
    if (this.#earlyStopped) this.#client.stop();
    this.#upstream = new DirectionTap(this.#ctx, 'upstream', this.#options, deflate && {
      windowBits: deflate.serverMaxWindowBits,
      noContextTakeover: deflate.serverNoContextTakeover,
    });
    const early = this.#early;
    this.#early = [];
    for (const { chunk, t, previousByteAt } of early) this.#client.push(chunk, t, previousByteAt);
  }

  /** Not a WebSocket after all (no 101): nothing to decode. */
  disarm(): void {
    this.#disarmed = true;
    this.#early = [];
  }

  observe(side: Side, chunk: Buffer, t: number, previousByteAt: number): void {
    const tap = side === 'client' ? this.#client : this.#upstream;
    if (tap) {
      tap.push(chunk, t, previousByteAt);
      return;
    }
    if (side === 'client' && !this.#disarmed && !this.#earlyStopped && this.#earlyBytes + chunk.length <= MAX_EARLY_BYTES) {
      // Copy: the relay may reuse nothing, but we must not pin large socket buffers.
      this.#early.push({ chunk: Buffer.from(chunk), t, previousByteAt });
      this.#earlyBytes += chunk.length;
    }
  }

  /**
   * Bytes of `side` are missing from here on (a hole in a packet capture):
   * decoding that direction stops without recording a cut frame, since the
   * connection did not cut it.
   */
  stop(side: Side): void {
    if (side === 'client') {
      this.#early = [];
      this.#earlyStopped = true;
    }
    (side === 'client' ? this.#client : this.#upstream)?.stop();
  }

  /**
   * `missing` bytes of `side` are not in a packet capture: when they lie
   * inside the payload of the frame being decoded (its header gave its
   * length), returns how to go on past them (zeros in their place, so the
   * next frame is found where it starts); null when the next frame boundary
   * is not certain.
   */
  bridgeable(side: Side, missing: number): ((t: number) => void) | null {
    return (side === 'client' ? this.#client : this.#upstream)?.bridgeable(missing) ?? null;
  }

  /**
   * The connection ended; `settled` is called once every message event of it
   * has been recorded. `ended` false: only the recording ended (a packet
   * capture's end with the connection open), so no frame was cut.
   */
  close(settled: () => void, ended = true): void {
    let waiting = 2;
    const one = (): void => {
      if (--waiting === 0) settled();
    };
    if (this.#client) this.#client.close(one, ended);
    else one();
    if (this.#upstream) this.#upstream.close(one, ended);
    else one();
  }
}

interface InflateSettings {
  windowBits: number;
  noContextTakeover: boolean;
}

/** One direction: frame decoder, message assembler and, with permessage-deflate, an inflater. */
class DirectionTap {
  readonly #ctx: ConnectionContext;
  readonly #side: Side;
  readonly #decoder: FrameDecoder;
  readonly #assembler: MessageAssembler;
  readonly #inflater: MessageInflater | null;
  #messageCompressed = false;
  #closeIdle: { client: number; upstream: number } | null = null;
  #faulted = false;

  constructor(ctx: ConnectionContext, side: Side, options: WebSocketTapOptions, inflate: InflateSettings | null) {
    this.#ctx = ctx;
    this.#side = side;
    this.#assembler = new MessageAssembler({ previewLimit: options.previewLimit });
    this.#inflater = inflate
      ? new MessageInflater({ ...inflate, previewLimit: options.previewLimit })
      : null;
    this.#decoder = new FrameDecoder(
      {
        onFrameHeader: (header) => this.#onFrameHeader(header),
        onPayload: (_header, data) => this.#inflater?.write(data),
        onFrame: (frame) => this.#onFrame(frame),
        onError: (error) => this.#onError(error),
      },
      {
        previewLimit: options.previewLimit,
        allowRsv1: inflate !== null,
        // RFC 6455 5.1: clients MUST mask, servers MUST NOT. A violation is evidence worth recording.
        expectMasked: side === 'client',
        wantPayload: (header) => this.#wantPayload(header),
      },
    );
  }

  /** See WebSocketTap.bridgeable. */
  bridgeable(missing: number): ((t: number) => void) | null {
    if (this.#faulted) return null;
    const cut = this.#decoder.unfinishedFrame;
    if (!cut?.header || missing > cut.header.length - cut.payloadReceived) return null;
    return (t) => {
      // The message's compressed bytes have a hole: it cannot be inflated, nor can what shares its context.
      if (this.#messageCompressed) this.#inflater?.desync('bytes missing from the capture');
      const zeros = Buffer.alloc(Math.min(missing, 64 * 1024));
      for (let left = missing; left > 0; left -= zeros.length) this.push(left >= zeros.length ? zeros : zeros.subarray(0, left), t, t);
    };
  }

  /** See WebSocketTap.stop: no more decoding, no cut frame at the end. */
  stop(): void {
    if (this.#faulted) return;
    this.#faulted = true;
    this.#inflater?.desync('bytes missing from the capture');
  }

  push(chunk: Buffer, t: number, previousByteAt: number): void {
    if (this.#faulted) return;
    try {
      this.#decoder.push(chunk, t, previousByteAt);
    } catch (err) {
      // A bug of ours must cost the recording of this direction, never the relay.
      this.#faulted = true;
      this.#inflater?.desync('decoder fault');
      this.#ctx.record({
        kind: 'ws.protocol-error',
        t,
        conn: this.#ctx.id,
        side: this.#side,
        code: 'WSTAP_DECODER_FAULT',
        message: `decoder fault: ${(err as Error).message}`,
        offset: this.#decoder.bytesSeen,
        frameIndex: this.#decoder.framesSeen,
      });
    }
  }

  /** The connection ended: record a frame it cut off, let messages already complete finish inflating, then release zlib. */
  close(settled: () => void, ended: boolean): void {
    if (!this.#faulted && ended) this.#recordCut();
    if (this.#inflater) this.#inflater.finish(settled);
    else settled();
  }

  #recordCut(): void {
    const cut = this.#decoder.unfinishedFrame;
    if (!cut) return;
    const { header } = cut;
    this.#ctx.record({
      kind: 'ws.frame.cut',
      t: this.#ctx.now(),
      conn: this.#ctx.id,
      side: this.#side,
      index: cut.index,
      offset: cut.offset,
      started: cut.t,
      received: cut.received,
      ...(header ? { opcode: header.opcode, length: header.length, payloadReceived: cut.payloadReceived } : {}),
    });
  }

  #wantPayload(header: FrameHeader): boolean {
    if (!this.#inflater) return false;
    if (header.opcode === 1 || header.opcode === 2) this.#messageCompressed = header.rsv1;
    else if (header.opcode !== 0) return false;
    return this.#messageCompressed;
  }

  #onFrameHeader(header: FrameHeader): void {
    if (header.opcode !== OPCODE_CLOSE) return;
    // Silence before the close frame's first byte: this direction's from the
    // byte before it (the header may end chunks later), the other's up to now.
    const other: Side = this.#side === 'client' ? 'upstream' : 'client';
    const own = Math.max(0, header.t - header.previousByteAt);
    const theirs = Math.max(0, header.t - this.#ctx.lastByteAt[other]);
    const round = (ms: number): number => Math.round(ms * 1000) / 1000;
    this.#closeIdle =
      this.#side === 'client'
        ? { client: round(own), upstream: round(theirs) }
        : { client: round(theirs), upstream: round(own) };
  }

  #onFrame(frame: DecodedFrame): void {
    const ctx = this.#ctx;
    const event: FrameEvent = {
      kind: 'ws.frame',
      t: frame.t,
      conn: ctx.id,
      side: this.#side,
      index: frame.index,
      offset: frame.offset,
      opcode: frame.opcode,
      fin: frame.fin,
      rsv1: frame.rsv1,
      rsv2: frame.rsv2,
      rsv3: frame.rsv3,
      masked: frame.masked,
      length: frame.length,
      preview: frame.preview.toString('base64'),
      previewTruncated: frame.previewTruncated,
    };
    // Assigned, not spread from temporary objects: this runs for every frame.
    if (frame.closeCode !== undefined) event.closeCode = frame.closeCode;
    if (frame.closeReason !== undefined) event.closeReason = frame.closeReason;
    if (frame.opcode === OPCODE_CLOSE) {
      if (this.#closeIdle) event.idle = this.#closeIdle;
      const pausedSince = ctx.backlog.snapshot();
      if (pausedSince) event.pausedSince = pausedSince;
    }
    ctx.record(event);
    const message = this.#assembler.push(frame);
    // A one-frame message's preview is its frame's: encoded once.
    if (message) this.#onMessage(message, frame.preview, event.preview);
  }

  /** `lastPreview` and its base64 `lastPreviewBase64`: the last frame's, the same bytes as a one-frame message's preview. */
  #onMessage(message: AssembledMessage, lastPreview: Buffer, lastPreviewBase64: string): void {
    if (!message.compressed || !this.#inflater) {
      this.#recordMessage(message, message.compressed ? null : message.length, message.compressed ? null : message.preview, message.previewTruncated, lastPreview, lastPreviewBase64);
      return;
    }
    // Called back by zlib, outside any socket handler: contained the same way.
    this.#inflater.end((error, inflated) => this.#ctx.guard('inflate', () => {
      if (error || !inflated) {
        this.#ctx.record({
          kind: 'ws.inflate-error',
          t: this.#ctx.now(),
          conn: this.#ctx.id,
          side: this.#side,
          message: error ? error.message : 'no result',
        });
        this.#recordMessage(message, null, null, true);
        return;
      }
      this.#recordMessage(message, inflated.size, inflated.preview, inflated.previewTruncated);
    }));
  }

  #recordMessage(
    message: AssembledMessage,
    size: number | null,
    preview: Buffer | null,
    truncated: boolean,
    knownPreview: Buffer | null = null,
    knownBase64 = '',
  ): void {
    this.#ctx.record({
      kind: 'ws.message',
      t: message.t,
      tEnd: message.tEnd,
      conn: this.#ctx.id,
      side: this.#side,
      opcode: message.opcode,
      firstFrame: message.firstFrameIndex,
      frames: message.frames,
      wireLength: message.length,
      compressed: message.compressed,
      size,
      preview: preview === null ? '' : preview === knownPreview ? knownBase64 : preview.toString('base64'),
      previewTruncated: truncated,
    });
  }

  #onError(error: FrameProtocolError): void {
    this.#inflater?.desync(`frame decoder stopped at byte ${error.offset}`);
    this.#ctx.record({
      kind: 'ws.protocol-error',
      t: error.t,
      conn: this.#ctx.id,
      side: this.#side,
      code: error.code,
      message: error.message,
      offset: error.offset,
      frameIndex: error.frameIndex,
    });
  }
}
