import { ChunkedBodyDecoder } from './chunked-body.js';
import { HttpHeadParser, type HeadFor, type HeadKind, type HeadParseErrorCode } from './http-head-parser.js';
import type { BodyFraming, FramingAnomaly } from './http-message-framing.js';

/** What the stream does once a message's head is read: how its body ends, and whether the next bytes wait for a decision (an upgrade request). */
export interface MessagePlan {
  framing: BodyFraming;
  anomalies: readonly FramingAnomaly[];
  /** `hold`: after this message, keep the following bytes unparsed until release() (an upgrade request waits for its answer). */
  after: 'next' | 'hold';
}

export type StreamAnomalyCode = FramingAnomaly['code'] | 'HEAD_REJECTED' | 'BAD_CHUNKED_BODY' | 'HELD_BYTES_OVERFLOW';

/** Why the rest of a direction is not parsed as HTTP. */
export type OpaqueReason = 'switch' | 'unframed' | 'error';

export interface HttpStreamHandlers<K extends HeadKind> {
  /** A head is complete, at `offset` in the stream; the answer says how its body is framed. */
  head(head: HeadFor<K>, t: number, offset: number): MessagePlan;
  /** Wire bytes of the current body (chunk framing included): a subarray of the pushed chunk, copy to keep. */
  body(data: Buffer, t: number): void;
  /** The current message is complete; `bodyBytes` is its body's payload (de-chunked). */
  end(bodyBytes: number, t: number): void;
  /** `headError`: with HEAD_REJECTED, the head parser's own code (MALFORMED_START_LINE...). */
  anomaly(code: StreamAnomalyCode, message: string, offset: number, t: number, headError?: HeadParseErrorCode): void;
  /** Bytes that are not HTTP: after a switch, an unframed message or a head that did not parse. Every later push comes here too. */
  opaque(data: Buffer, t: number, reason: OpaqueReason): void;
}

/** Bytes held after an upgrade request until its answer; more are not kept (the upgrade's frames are then decoded from where they resume). */
export const MAX_HELD_BYTES = 64 * 1024;

/** Where the stream was when it ended. */
export type StreamEnd = 'between-messages' | 'in-head' | 'in-body' | 'opaque' | 'held';

type State =
  | { kind: 'head'; parser: HttpHeadParser<HeadKind> | null }
  | { kind: 'length'; remaining: number; bytes: number; after: 'next' | 'hold' }
  | { kind: 'chunked'; decoder: ChunkedBodyDecoder; after: 'next' | 'hold' }
  | { kind: 'until-close'; bytes: number }
  | { kind: 'held'; chunks: Buffer[]; bytes: number }
  | { kind: 'opaque'; reason: OpaqueReason };

const CR = 0x0d;
const LF = 0x0a;

/**
 * One direction of an HTTP/1.x connection, parsed passively from copies of
 * the relayed bytes: heads as they came, body framing (Content-Length,
 * chunked with extensions and trailers, until close), one message after
 * another (keep-alive, pipelining). Pure: no sockets, no clock; the caller
 * passes each chunk with its time. Never throws on any input: what it cannot
 * parse is reported through `anomaly` and the rest goes to `opaque`.
 */
export class HttpStreamParser<K extends HeadKind> {
  readonly kind: K;
  readonly #handlers: HttpStreamHandlers<K>;
  readonly #maxHeadBytes: number;
  #state: State = { kind: 'head', parser: null };
  /** Stream offset of the next byte pushed. */
  #offset = 0;
  /** Stream offset where the current head began. */
  #headStart = 0;
  /** A release() that came before the message to hold after was complete. */
  #decided: 'continue' | 'switch' | null = null;

  constructor(kind: K, handlers: HttpStreamHandlers<K>, options: { maxHeadBytes?: number } = {}) {
    this.kind = kind;
    this.#handlers = handlers;
    this.#maxHeadBytes = options.maxHeadBytes ?? 64 * 1024;
  }

  /** Bytes pushed so far. */
  get offset(): number {
    return this.#offset;
  }

  /** The stream is past HTTP (switched, unframed or unparsable). */
  get opaque(): boolean {
    return this.#state.kind === 'opaque';
  }

  /** Waiting, after an upgrade request, for its answer. */
  get held(): boolean {
    return this.#state.kind === 'held';
  }

  /**
   * Where the head being read began (a stream offset), while one is begun
   * and not complete; null between messages, in a body, held or opaque. A
   * relay that must see a whole head before passing it on holds the bytes
   * from here (request-head-gate's later heads, see later-request-gate.ts).
   */
  get headStart(): number | null {
    const state = this.#state;
    return state.kind === 'head' && state.parser !== null ? this.#headStart : null;
  }

  push(chunk: Buffer, t: number): void {
    let input = chunk;
    while (input.length > 0) {
      const consumed = this.#step(input, t);
      this.#offset += consumed;
      input = consumed === input.length ? EMPTY : input.subarray(consumed);
    }
  }

  /**
   * The decision a held stream waited for: `continue` parses the held bytes
   * as the next messages (the upgrade was refused), `switch` hands them over
   * as opaque (the protocol changed).
   */
  release(how: 'continue' | 'switch', t: number): void {
    const state = this.#state;
    if (state.kind !== 'held') {
      // Answered before the held message was complete (an early refusal): applied when it is.
      this.#decided = how;
      return;
    }
    const held = state.chunks.length === 1 ? (state.chunks[0] as Buffer) : Buffer.concat(state.chunks, state.bytes);
    this.#offset -= held.length;
    if (how === 'switch') {
      this.#state = { kind: 'opaque', reason: 'switch' };
      this.#offset += held.length;
      if (held.length > 0) this.#handlers.opaque(held, t, 'switch');
      return;
    }
    this.#state = { kind: 'head', parser: null };
    this.push(held, t);
  }

  /** The sender's FIN (or the connection's end): an until-close body ends here. Says where the stream was. */
  finish(t: number): StreamEnd {
    const state = this.#state;
    switch (state.kind) {
      case 'until-close':
        this.#state = { kind: 'head', parser: null };
        this.#handlers.end(state.bytes, t);
        return 'between-messages';
      case 'head':
        return state.parser === null ? 'between-messages' : 'in-head';
      case 'length':
      case 'chunked':
        return 'in-body';
      default:
        return state.kind;
    }
  }

  /** Handles the start of `input` in the current state; returns how many bytes it took (at least 1). */
  #step(input: Buffer, t: number): number {
    const state = this.#state;
    switch (state.kind) {
      case 'head':
        return this.#stepHead(state, input, t);
      case 'length': {
        const take = Math.min(state.remaining, input.length);
        state.remaining -= take;
        state.bytes += take;
        this.#handlers.body(take === input.length ? input : input.subarray(0, take), t);
        if (state.remaining === 0) this.#endMessage(state.bytes, state.after, t);
        return take;
      }
      case 'chunked': {
        const decoder = state.decoder;
        const before = decoder.wireBytes;
        decoder.push(input);
        const take = decoder.wireBytes - before;
        if (take > 0) this.#handlers.body(take === input.length ? input : input.subarray(0, take), t);
        if (decoder.error !== null) {
          this.#handlers.anomaly('BAD_CHUNKED_BODY', `chunked body: ${decoder.error}`, this.#offset + take, t);
          this.#toOpaque(input.subarray(take), t, 'unframed');
          return input.length;
        }
        if (decoder.done) this.#endMessage(decoder.dataBytes, state.after, t);
        // A decoder not done took the whole input; a done one took at least the final LF.
        return decoder.done ? take : input.length;
      }
      case 'until-close':
        state.bytes += input.length;
        this.#handlers.body(input, t);
        return input.length;
      case 'held': {
        if (state.bytes + input.length <= MAX_HELD_BYTES) {
          // Copied: the chunk belongs to the relay.
          state.chunks.push(Buffer.from(input));
          state.bytes += input.length;
        } else {
          this.#handlers.anomaly('HELD_BYTES_OVERFLOW', `more than ${MAX_HELD_BYTES} bytes behind an upgrade request before its answer: the rest of this direction is not parsed`, this.#offset, t);
          this.#state = { kind: 'opaque', reason: 'error' };
        }
        return input.length;
      }
      case 'opaque':
        this.#handlers.opaque(input, t, state.reason);
        return input.length;
    }
  }

  #stepHead(state: { kind: 'head'; parser: HttpHeadParser<HeadKind> | null }, input: Buffer, t: number): number {
    if (state.parser === null) {
      // RFC 9112 2.2: empty lines before a request line are ignored (a client's stray CRLF after a body).
      let skip = 0;
      while (skip < input.length && (input[skip] === CR || input[skip] === LF)) skip++;
      if (skip > 0) return skip;
      state.parser = new HttpHeadParser(this.kind, { maxHeadBytes: this.#maxHeadBytes });
      this.#headStart = this.#offset;
    }
    const seenBefore = state.parser.bytesSeen;
    const result = state.parser.push(input);
    if (result.state === 'incomplete') return input.length;
    if (result.state === 'error') {
      this.#handlers.anomaly('HEAD_REJECTED', `${this.kind} head: ${result.message}`, this.#headStart + result.offset, t, result.code);
      this.#toOpaque(EMPTY, t, 'error');
      return input.length;
    }
    const head = result.head as HeadFor<K>;
    const taken = head.headLength - seenBefore;
    const plan = this.#handlers.head(head, t, this.#headStart);
    for (const anomaly of plan.anomalies) this.#handlers.anomaly(anomaly.code, anomaly.message, this.#headStart, t);
    this.#begin(plan, t);
    return taken;
  }

  #begin(plan: MessagePlan, t: number): void {
    const framing = plan.framing;
    switch (framing.kind) {
      case 'none':
        this.#endMessage(0, plan.after, t);
        return;
      case 'length':
        this.#state = { kind: 'length', remaining: framing.length, bytes: 0, after: plan.after };
        return;
      case 'chunked':
        this.#state = { kind: 'chunked', decoder: new ChunkedBodyDecoder({ keep: 0 }), after: plan.after };
        return;
      case 'until-close':
        this.#state = { kind: 'until-close', bytes: 0 };
        return;
      case 'switch':
        this.#handlers.end(0, t);
        this.#state = { kind: 'opaque', reason: 'switch' };
        return;
      case 'unframed':
        // The rest of the chunk, and every later one, reaches `opaque` through push().
        this.#state = { kind: 'opaque', reason: 'unframed' };
        return;
    }
  }

  #endMessage(bodyBytes: number, after: 'next' | 'hold', t: number): void {
    const decided = after === 'hold' ? this.#decided : null;
    this.#decided = null;
    if (decided === 'switch') this.#state = { kind: 'opaque', reason: 'switch' };
    else this.#state = after === 'hold' && decided === null ? { kind: 'held', chunks: [], bytes: 0 } : { kind: 'head', parser: null };
    this.#handlers.end(bodyBytes, t);
  }

  #toOpaque(rest: Buffer, t: number, reason: OpaqueReason): void {
    this.#state = { kind: 'opaque', reason };
    if (rest.length > 0) this.#handlers.opaque(rest, t, reason);
  }
}

const EMPTY = Buffer.alloc(0);
