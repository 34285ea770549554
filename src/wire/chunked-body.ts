/**
 * De-chunks the start of an HTTP/1.1 `Transfer-Encoding: chunked` body
 * (RFC 9112 section 7.1), fed with copies of the relayed bytes in chunks of
 * any size. Pure and tolerant: a prefix cut anywhere (mid size line, mid
 * data) simply leaves the decoder waiting; malformed framing stops it with
 * `error` set and the data decoded so far kept. Never throws.
 *
 *   chunked-body   = *chunk last-chunk trailer-section CRLF
 *   chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   last-chunk     = 1*("0") [ chunk-ext ] CRLF
 *
 * Bare LF is accepted where CRLF is expected (RFC 9112 section 2.2 lets a
 * recipient do so); everything else is held to the grammar.
 */

const CR = 0x0d;
const LF = 0x0a;
/** Chunk sizes beyond this are treated as malformed (no real body is this large; keeps the arithmetic exact). */
const MAX_CHUNK_SIZE = 2 ** 48;

type State =
  | 'size' // reading hex digits of chunk-size
  | 'ext' // skipping chunk-ext up to the line's LF
  | 'size-lf' // CR seen after the size line, LF expected
  | 'data' // chunk-data
  | 'data-cr' // CRLF after chunk-data expected
  | 'data-lf'
  | 'trailer-start' // at the start of a trailer line (or the final CRLF)
  | 'trailer' // skipping a trailer field line
  | 'final-lf' // CR of the final empty line seen
  | 'done'
  | 'error';

export interface ChunkedBodyDecoderOptions {
  /** Data bytes kept for `data`; the rest is counted, not kept. */
  keep: number;
}

export class ChunkedBodyDecoder {
  #state: State = 'size';
  #size = 0;
  #digits = 0;
  #remaining = 0;
  readonly #keep: number;
  readonly #kept: Buffer[] = [];
  #keptBytes = 0;
  /** Data bytes decoded so far (kept or not). */
  dataBytes = 0;
  /** Wire bytes consumed by the chunked framing and data, up to and including the final CRLF once done. */
  wireBytes = 0;
  /** Why decoding stopped, when the framing was malformed. */
  error: string | null = null;

  constructor(options: ChunkedBodyDecoderOptions) {
    this.#keep = Math.max(0, Math.floor(options.keep));
  }

  /** The last chunk and the trailer section were seen: the body is complete. */
  get done(): boolean {
    return this.#state === 'done';
  }

  /** The first `keep` data bytes decoded so far. */
  get data(): Buffer {
    return this.#kept.length === 1 ? (this.#kept[0] as Buffer) : Buffer.concat(this.#kept, this.#keptBytes);
  }

  /** Feeds the next bytes of the body; bytes after a complete body or after an error are ignored. */
  push(chunk: Buffer): void {
    let i = 0;
    const n = chunk.length;
    while (i < n && this.#state !== 'done' && this.#state !== 'error') {
      if (this.#state === 'data') {
        const take = Math.min(this.#remaining, n - i);
        this.#keepData(chunk, i, take);
        this.#remaining -= take;
        this.dataBytes += take;
        i += take;
        this.wireBytes += take;
        if (this.#remaining === 0) this.#state = 'data-cr';
        continue;
      }
      const byte = chunk[i] as number;
      i++;
      this.wireBytes++;
      this.#step(byte);
    }
  }

  #step(byte: number): void {
    switch (this.#state) {
      case 'size': {
        const digit = hexValue(byte);
        if (digit >= 0) {
          this.#size = this.#size * 16 + digit;
          this.#digits++;
          if (this.#size > MAX_CHUNK_SIZE) this.#fail('chunk size too large');
          return;
        }
        if (this.#digits === 0) return this.#fail(`expected a hex chunk size, got byte 0x${hex(byte)}`);
        if (byte === CR) this.#state = 'size-lf';
        else if (byte === LF) this.#sizeLineDone();
        // chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
        else if (byte === 0x3b || byte === 0x20 || byte === 0x09) this.#state = 'ext';
        else this.#fail(`unexpected byte 0x${hex(byte)} after the chunk size`);
        return;
      }
      case 'ext':
        if (byte === LF) this.#sizeLineDone();
        return;
      case 'size-lf':
        if (byte === LF) this.#sizeLineDone();
        else this.#fail('expected LF after CR ending the chunk size line');
        return;
      case 'data-cr':
        if (byte === CR) this.#state = 'data-lf';
        else if (byte === LF) this.#nextChunk();
        else this.#fail('chunk data is longer than its chunk size');
        return;
      case 'data-lf':
        if (byte === LF) this.#nextChunk();
        else this.#fail('expected LF after chunk data');
        return;
      case 'trailer-start':
        if (byte === CR) this.#state = 'final-lf';
        else if (byte === LF) this.#state = 'done';
        else this.#state = 'trailer';
        return;
      case 'trailer':
        if (byte === LF) this.#state = 'trailer-start';
        return;
      case 'final-lf':
        if (byte === LF) this.#state = 'done';
        else this.#fail('expected LF ending the chunked body');
        return;
      default:
        return;
    }
  }

  #sizeLineDone(): void {
    if (this.#size === 0) {
      this.#state = 'trailer-start';
      return;
    }
    this.#remaining = this.#size;
    this.#state = 'data';
  }

  #nextChunk(): void {
    this.#size = 0;
    this.#digits = 0;
    this.#state = 'size';
  }

  #keepData(chunk: Buffer, from: number, length: number): void {
    const room = this.#keep - this.#keptBytes;
    if (room <= 0 || length === 0) return;
    const take = Math.min(room, length);
    // Copied: the caller's chunk belongs to the relay.
    this.#kept.push(Buffer.from(chunk.subarray(from, from + take)));
    this.#keptBytes += take;
  }

  #fail(message: string): void {
    this.error = message;
    this.#state = 'error';
  }
}

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x41 + 10;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x61 + 10;
  return -1;
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}
