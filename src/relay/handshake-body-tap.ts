import { headerTokens, headerValues } from '../capture/raw-headers.js';
import { ChunkedBodyDecoder } from '../wire/chunked-body.js';
import type { HttpResponseHead } from '../wire/http-head-parser.js';
import type { ConnectionContext } from './connection-context.js';

/** The most body bytes a `ws.handshake.body` preview holds, whatever the session's preview limit. */
export const MAX_HANDSHAKE_BODY_PREVIEW = 1024;

/**
 * The longest the body is waited for after the head: a refusal that streams
 * or stays open (an event stream, a keep-alive without framing) still gets
 * its findings logged within a second, with what arrived by then.
 */
export const HANDSHAKE_BODY_WAIT_MS = 1000;

export interface HandshakeBodyTapOptions {
  /**
   * False: no timer; the body is recorded when complete, when the preview is
   * full or at finish(). For a packet capture, read much faster than it
   * happened, a wall-clock deadline would fire at a time unrelated to the
   * packets'. Default true (HANDSHAKE_BODY_WAIT_MS).
   */
  deadline?: boolean;
}

/** How the response says its body ends (RFC 9112 section 6.3). */
type Framing = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'close' };

function framingOf(head: HttpResponseHead): Framing {
  // 1xx, 204 and 304 answers have no body whatever their headers say.
  if (head.statusCode < 200 || head.statusCode === 204 || head.statusCode === 304) return { kind: 'none' };
  const codings = headerTokens(head.rawHeaders, 'transfer-encoding');
  if (codings.length > 0) return codings.at(-1) === 'chunked' ? { kind: 'chunked' } : { kind: 'close' };
  const lengths = new Set(headerValues(head.rawHeaders, 'content-length').flatMap((v) => v.split(',')).map((v) => v.trim()));
  const [only] = lengths;
  if (lengths.size === 1 && only !== undefined && /^\d{1,15}$/.test(only)) {
    const length = Number(only);
    return length === 0 ? { kind: 'none' } : { kind: 'length', length };
  }
  return { kind: 'close' };
}

/**
 * Watches a copy of the body the upstream sends after a response that did
 * not upgrade, and records its start once as `ws.handshake.body`: when the
 * preview is full, when the body is complete (Content-Length reached, last
 * chunk seen, or a status without a body), when `finish()` is called
 * (the upstream ended, the connection settled), or HANDSHAKE_BODY_WAIT_MS
 * after the head, whichever comes first.
 * Holds at most two previews' worth of bytes; never touches the sockets and
 * never throws into the relay.
 */
export class HandshakeBodyTap {
  readonly #ctx: ConnectionContext;
  readonly #cap: number;
  readonly #framing: Framing;
  readonly #chunked: ChunkedBodyDecoder | null;
  readonly #raw: Buffer[] = [];
  #rawKept = 0;
  /** Wire bytes after the head. */
  #seen = 0;
  #recorded = false;
  #faulted = false;
  readonly #deadline: NodeJS.Timeout | null = null;

  constructor(ctx: ConnectionContext, head: HttpResponseHead, previewLimit: number, options: HandshakeBodyTapOptions = {}) {
    this.#ctx = ctx;
    this.#cap = Math.max(0, Math.min(MAX_HANDSHAKE_BODY_PREVIEW, Math.floor(previewLimit) || 0));
    this.#framing = framingOf(head);
    this.#chunked = this.#framing.kind === 'chunked' ? new ChunkedBodyDecoder({ keep: this.#cap }) : null;
    if (options.deadline !== false) {
      this.#deadline = setTimeout(() => this.finish(), HANDSHAKE_BODY_WAIT_MS);
      this.#deadline.unref();
    }
  }

  /** Bytes from the upstream after the response head (the first call gets the rest of the head's chunk, maybe empty). */
  observe(chunk: Buffer, t: number): void {
    if (this.#recorded) return;
    try {
      this.#seen += chunk.length;
      if (this.#faulted) return;
      if (this.#rawKept < this.#cap && chunk.length > 0) {
        const take = Math.min(this.#cap - this.#rawKept, chunk.length);
        // Copied: the chunk is the relay's.
        this.#raw.push(Buffer.from(chunk.subarray(0, take)));
        this.#rawKept += take;
      }
      this.#chunked?.push(chunk);
      if (this.#complete() || (this.#cap > 0 && this.#dataSeen() > this.#cap)) this.#record(t);
    } catch {
      // A bug of ours costs the preview, never the relay: the byte count is still recorded at the end.
      this.#faulted = true;
    }
  }

  /** The upstream ended or the connection settled: record what was seen, if not yet recorded. */
  finish(): void {
    if (this.#recorded) return;
    try {
      this.#record(this.#ctx.now());
    } catch {
      // Called from socket events and the settle hook: nothing here may stop the close from being recorded.
    }
  }

  /** Chunked framing that decodes; after a framing error the raw bytes are the better evidence. */
  #dechunking(): ChunkedBodyDecoder | null {
    return this.#chunked && this.#chunked.error === null ? this.#chunked : null;
  }

  #complete(): boolean {
    switch (this.#framing.kind) {
      case 'none':
        return true;
      case 'length':
        return this.#seen >= this.#framing.length;
      case 'chunked':
        return this.#chunked?.done === true;
      default:
        return false;
    }
  }

  /** Body data seen so far: de-chunked, or raw up to the Content-Length. */
  #dataSeen(): number {
    const chunked = this.#dechunking();
    if (chunked) return chunked.dataBytes;
    if (this.#framing.kind === 'none') return 0;
    if (this.#framing.kind === 'length') return Math.min(this.#seen, this.#framing.length);
    return this.#seen;
  }

  #preview(): Buffer {
    if (this.#faulted) return Buffer.alloc(0);
    const chunked = this.#dechunking();
    if (chunked) return chunked.data;
    const raw = Buffer.concat(this.#raw, this.#rawKept);
    return raw.subarray(0, Math.min(raw.length, this.#dataSeen()));
  }

  #record(t: number): void {
    this.#recorded = true;
    if (this.#deadline) clearTimeout(this.#deadline);
    let preview: Buffer = Buffer.alloc(0);
    let truncated = this.#seen > 0;
    try {
      preview = this.#preview();
      truncated = this.#faulted ? this.#seen > 0 : this.#dataSeen() > preview.length;
    } catch {
      // As in observe(): the count is still worth recording.
    }
    this.#raw.length = 0;
    this.#ctx.record({
      kind: 'ws.handshake.body',
      t,
      conn: this.#ctx.id,
      preview: preview.toString('base64'),
      previewTruncated: truncated,
      bytes: this.#seen,
    });
  }
}
