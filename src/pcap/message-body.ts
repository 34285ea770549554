import { headerTokens, headerValues } from '../capture/raw-headers.js';
import { ChunkedBodyDecoder } from '../wire/chunked-body.js';
import type { RawHeaders } from '../capture/events.js';

/** How an HTTP/1.1 message says its body ends (RFC 9112 section 6.3). */
export type BodyFraming = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'close' };

function contentLength(headers: RawHeaders): number | null {
  const lengths = new Set(headerValues(headers, 'content-length').flatMap((v) => v.split(',')).map((v) => v.trim()));
  const [only] = lengths;
  return lengths.size === 1 && only !== undefined && /^\d{1,15}$/.test(only) ? Number(only) : null;
}

/** A request's body: chunked, a Content-Length, or none (a request never runs to the close). */
export function requestFraming(headers: RawHeaders): BodyFraming {
  const codings = headerTokens(headers, 'transfer-encoding');
  if (codings.length > 0) return codings.at(-1) === 'chunked' ? { kind: 'chunked' } : { kind: 'close' };
  const length = contentLength(headers) ?? 0;
  return length === 0 ? { kind: 'none' } : { kind: 'length', length };
}

/** A response's body; `method` is its request's (a HEAD answer has none). */
export function responseFraming(method: string, statusCode: number, headers: RawHeaders): BodyFraming {
  if (method === 'HEAD' || statusCode < 200 || statusCode === 204 || statusCode === 304) return { kind: 'none' };
  const codings = headerTokens(headers, 'transfer-encoding');
  if (codings.length > 0) return codings.at(-1) === 'chunked' ? { kind: 'chunked' } : { kind: 'close' };
  const length = contentLength(headers);
  if (length === null) return { kind: 'close' };
  return length === 0 ? { kind: 'none' } : { kind: 'length', length };
}

/**
 * Finds where one message body ends in a stream of copies, so the next head
 * can be parsed behind it (keep-alive): counts bytes, never keeps them.
 */
export class MessageBody {
  readonly #framing: BodyFraming;
  readonly #chunked: ChunkedBodyDecoder | null;
  /** Wire bytes of the body consumed. */
  #wire = 0;
  #ended = false;

  constructor(framing: BodyFraming) {
    this.#framing = framing;
    this.#chunked = framing.kind === 'chunked' ? new ChunkedBodyDecoder({ keep: 0 }) : null;
  }

  get framing(): BodyFraming {
    return this.#framing;
  }

  /** The body is complete (for `close` framing: once `end()` was called). */
  get done(): boolean {
    switch (this.#framing.kind) {
      case 'none':
        return true;
      case 'length':
        return this.#wire >= this.#framing.length;
      case 'chunked':
        return this.#chunked?.done === true;
      default:
        return this.#ended;
    }
  }

  /** Malformed chunked framing: where the body ends is unknown. */
  get broken(): boolean {
    return this.#chunked?.error != null;
  }

  /** Data bytes: de-chunked, as an HTTP library hands them on. */
  get dataBytes(): number {
    return this.#chunked ? this.#chunked.dataBytes : this.#wire;
  }

  /** The sender closed its side: a `close`-framed body ends here. */
  end(): void {
    this.#ended = true;
  }

  /** Consumes the body's bytes from `chunk`; returns how many (the rest belongs to the next message). */
  push(chunk: Buffer): number {
    if (this.done || this.broken) return this.broken ? chunk.length : 0;
    switch (this.#framing.kind) {
      case 'length': {
        const take = Math.min(chunk.length, this.#framing.length - this.#wire);
        this.#wire += take;
        return take;
      }
      case 'chunked': {
        const decoder = this.#chunked as ChunkedBodyDecoder;
        const before = decoder.wireBytes;
        decoder.push(chunk);
        const used = decoder.wireBytes - before;
        this.#wire += used;
        return decoder.error === null ? used : chunk.length;
      }
      default:
        this.#wire += chunk.length;
        return chunk.length;
    }
  }
}
