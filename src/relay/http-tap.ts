import { CLIENT_ABORTED, UPSTREAM_CLOSED, type HandshakeResponseEvent, type Side } from '../capture/events.js';
import { headerValues } from '../capture/raw-headers.js';
import { HttpConversation, type ConversationAnomaly } from '../wire/http-exchange-pairing.js';
import type { HttpRequestHead, HttpResponseHead } from '../wire/http-head-parser.js';
import type { OpaqueReason } from '../wire/http-stream-parser.js';
import { negotiatedDeflate } from '../wire/websocket-extensions.js';
import type { ConnectionContext } from './connection-context.js';
import { HandshakeBodyTap } from './handshake-body-tap.js';
import { MAX_REQUEST_HEAD_BYTES } from './request-head-gate.js';
import { WebSocketTap } from './websocket-tap.js';

export interface HttpTapOptions {
  previewLimit: number;
  /**
   * False for a packet capture, read much faster than it happened: a refused
   * handshake's body waits for no wall-clock deadline (see HandshakeBodyTap).
   */
  handshakeBodyDeadline?: boolean;
}

/** One exchange while it is open: a plain request and its answer, or an upgrade request (recorded as a handshake). */
interface OpenExchange {
  handshake: boolean;
  requestAt: number;
  requestBodyBytes: number;
  response: HttpResponseHead | null;
  responseAt: number;
  /** Wire bytes of the answer's body so far, for an answer cut short. */
  responseWireBytes: number;
}

/**
 * Exchanges a connection may have open at once (pipelined requests not yet
 * answered): past this the connection is relayed without parsing, so a
 * client that pipelines without end cannot grow wstap's memory.
 */
export const MAX_OPEN_EXCHANGES = 1024;

function isWebSocketUpgrade(head: HttpResponseHead): boolean {
  return head.statusCode === 101 && headerValues(head.rawHeaders, 'upgrade').some((v) => v.trim().toLowerCase() === 'websocket');
}

function ms(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/**
 * Turns a copy of an HTTP connection's bytes, both ways, into events: each
 * exchange (`http.request`, `http.response`, or `http.error` when no answer
 * came), upgrade requests as handshakes (`ws.handshake.*`), then after a 101
 * the frames (WebSocketTap). Parsing is HttpConversation's (wire/); this
 * class only times and records. It never touches a socket: called through
 * ConnectionContext.observe, a throw stops observing, never relaying.
 */
export class HttpTap {
  readonly #ctx: ConnectionContext;
  readonly #options: HttpTapOptions;
  /** Null once the connection switched protocols (a 101): from then on every byte is the WebSocketTap's. */
  #conversation: HttpConversation | null;
  #switched = false;
  readonly #open = new Map<number, OpenExchange>();
  #websocket: WebSocketTap | null = null;
  #handshakeBody: HandshakeBodyTap | null = null;
  /** previousByteAt of the chunk being parsed, for the frame decoder after a switch. */
  #previousByteAt = 0;
  #parsing = true;
  /** Directions with bytes missing from here on (a packet capture's hole): not parsed further, nothing claimed about them. */
  readonly #stopped: Record<Side, boolean> = { client: false, upstream: false };

  constructor(ctx: ConnectionContext, options: HttpTapOptions) {
    this.#ctx = ctx;
    this.#options = options;
    this.#conversation = new HttpConversation(
      {
        request: (n, head, t, upgrade) => this.#onRequest(n, head, t, upgrade),
        requestEnd: (n, bytes) => {
          const open = this.#open.get(n);
          if (open) open.requestBodyBytes = bytes;
        },
        interim: (n, head, t) => this.#onInterim(n, head, t),
        response: (n, head, t) => this.#onResponse(n, head, t),
        responseBody: (n, data, t) => {
          const open = this.#open.get(n);
          if (open) open.responseWireBytes += data.length;
          this.#handshakeBody?.observe(data, t);
        },
        responseEnd: (n, bytes, t) => this.#onResponseEnd(n, bytes, t),
        anomaly: (a) => this.#onAnomaly(a),
        switched: () => (this.#switched = true),
        opaque: (side, data, t, reason) => this.#onOpaque(side, data, t, reason),
      },
      { maxHeadBytes: MAX_REQUEST_HEAD_BYTES },
    );
  }

  /** A ChunkObserver: a copy of a chunk already forwarded. */
  observe(side: Side, chunk: Buffer, t: number, previousByteAt: number): void {
    if (!this.#parsing || this.#stopped[side]) return;
    const conversation = this.#conversation;
    if (conversation === null) {
      // After the switch the HTTP parsers have nothing left to do: the frames go straight to the decoder, and the parsers' memory is let go.
      this.#websocket?.observe(side, chunk, t, previousByteAt);
      return;
    }
    this.#previousByteAt = previousByteAt;
    conversation.push(side, chunk, t);
    if (this.#switched) this.#conversation = null;
  }

  /**
   * Bytes of `side` are missing from here on (a hole in a packet capture):
   * that direction is not parsed further, no frame is recorded as cut, and
   * what its missing bytes may have said (an answer, the end of a body) is
   * not guessed at the end.
   */
  stop(side: Side): void {
    this.#stopped[side] = true;
    this.#websocket?.stop(side);
  }

  /** See WebSocketTap.bridgeable: a hole inside one frame's payload after a 101; plain HTTP has no such certainty. */
  bridgeable(side: Side, missing: number): ((t: number) => void) | null {
    if (!this.#parsing || this.#stopped[side] || !this.#websocket) return null;
    return this.#websocket.bridgeable(side, missing);
  }

  /** A side's FIN, RST or error: an answer read until close ends; requests the app leaves unanswered are recorded as such. */
  ended(side: Side, how: 'fin' | 'rst' | 'error', t: number): void {
    if (!this.#parsing) return;
    if (!this.#stopped[side]) this.#conversation?.finish(side, t);
    if (side !== 'upstream') return;
    this.#handshakeBody?.finish();
    // The answers may be in the hole: not claimed unanswered.
    if (this.#stopped.upstream) return;
    const what = how === 'fin' ? 'closed the connection (FIN)' : how === 'rst' ? 'reset the connection (RST)' : 'connection failed';
    for (const n of this.#conversation?.unanswered ?? []) {
      const open = this.#open.get(n);
      if (!open || open.handshake) continue;
      this.#open.delete(n);
      this.#ctx.record({
        kind: 'http.error',
        t,
        conn: this.#ctx.id,
        exchange: n,
        stage: 'response',
        code: UPSTREAM_CLOSED,
        message: `the upstream ${what} ${ms(t - open.requestAt)} ms after request ${n} arrived, without answering it`,
        answeredStatus: null,
      });
    }
  }

  /**
   * The connection is gone: exchanges still open are recorded as cut short;
   * `done` once the frame decoders have settled. `ended` false: only the
   * recording ended (a packet capture's end with the connection open), so
   * nothing was cut short and nothing is recorded as such.
   */
  close(done: () => void, ended = true): void {
    const t = this.#ctx.now();
    for (const [n, open] of ended ? this.#open : []) {
      if (open.handshake) continue;
      if (open.response) this.#recordResponse(n, open, open.responseWireBytes, t, false);
      else if (!this.#stopped.upstream) {
        this.#ctx.record({
          kind: 'http.error',
          t,
          conn: this.#ctx.id,
          exchange: n,
          stage: 'response',
          code: CLIENT_ABORTED,
          message: 'client closed the connection before the upstream answered',
          answeredStatus: null,
        });
      }
    }
    this.#open.clear();
    this.#handshakeBody?.finish();
    if (this.#websocket) this.#websocket.close(done, ended);
    else done();
  }

  #onRequest(n: number, head: HttpRequestHead, t: number, upgrade: boolean): void {
    if (this.#open.size >= MAX_OPEN_EXCHANGES) {
      this.#parsing = false;
      this.#open.clear();
      this.#ctx.record({
        kind: 'http.anomaly',
        t,
        conn: this.#ctx.id,
        side: 'client',
        exchange: n,
        code: 'TOO_MANY_OPEN_EXCHANGES',
        message: `${MAX_OPEN_EXCHANGES} requests pipelined without answers: the rest of the connection is relayed without being parsed`,
        offset: 0,
        parsing: 'stopped',
      });
      return;
    }
    const handshake = upgrade && head.method !== 'CONNECT';
    this.#open.set(n, { handshake, requestAt: t, requestBodyBytes: 0, response: null, responseAt: 0, responseWireBytes: 0 });
    const common = { t, conn: this.#ctx.id, method: head.method, url: head.target, httpVersion: head.httpVersion, rawHeaders: head.rawHeaders };
    if (handshake) this.#ctx.record({ kind: 'ws.handshake.request', ...common, headLength: head.headLength });
    else this.#ctx.record({ kind: 'http.request', ...common, exchange: n });
  }

  #onInterim(n: number, head: HttpResponseHead, t: number): void {
    const open = this.#open.get(n);
    if (!open?.handshake) return;
    const { statusCode, reason, httpVersion, rawHeaders, headLength } = head;
    this.#ctx.record({ kind: 'ws.handshake.interim', t, conn: this.#ctx.id, statusCode, reason, httpVersion, rawHeaders, headLength, waitMs: ms(t - open.requestAt) });
  }

  #onResponse(n: number, head: HttpResponseHead, t: number): void {
    const open = this.#open.get(n);
    if (!open) return;
    open.response = head;
    open.responseAt = t;
    if (!open.handshake) return;
    const event: HandshakeResponseEvent = {
      kind: 'ws.handshake.response',
      t,
      conn: this.#ctx.id,
      statusCode: head.statusCode,
      reason: head.reason,
      httpVersion: head.httpVersion,
      rawHeaders: head.rawHeaders,
      headLength: head.headLength,
      upgraded: isWebSocketUpgrade(head),
      deflate: negotiatedDeflate(headerValues(head.rawHeaders, 'sec-websocket-extensions')),
      waitMs: ms(t - open.requestAt),
    };
    this.#ctx.record(event);
    if (event.upgraded) {
      this.#websocket = new WebSocketTap(this.#ctx, { previewLimit: this.#options.previewLimit });
      this.#websocket.arm(event);
      for (const side of ['client', 'upstream'] as const) if (this.#stopped[side]) this.#websocket.stop(side);
      return;
    }
    this.#handshakeBody?.finish();
    this.#handshakeBody = new HandshakeBodyTap(this.#ctx, head, this.#options.previewLimit, { deadline: this.#options.handshakeBodyDeadline !== false });
    this.#handshakeBody.observe(Buffer.alloc(0), t);
  }

  #onResponseEnd(n: number, bytes: number, t: number): void {
    const open = this.#open.get(n);
    if (!open) return;
    this.#open.delete(n);
    if (open.handshake) this.#handshakeBody?.finish();
    else this.#recordResponse(n, open, bytes, t, true);
  }

  #recordResponse(n: number, open: OpenExchange, bodyBytes: number, t: number, complete: boolean): void {
    const head = open.response;
    if (!head) return;
    this.#ctx.record({
      kind: 'http.response',
      t,
      conn: this.#ctx.id,
      exchange: n,
      statusCode: head.statusCode,
      statusMessage: head.reason,
      httpVersion: head.httpVersion,
      rawHeaders: head.rawHeaders,
      requestBodyBytes: open.requestBodyBytes,
      responseBodyBytes: bodyBytes,
      ttfbMs: ms(open.responseAt - open.requestAt),
      totalMs: ms(t - open.requestAt),
      complete,
    });
  }

  #onAnomaly(a: ConversationAnomaly): void {
    const open = a.exchange !== null ? this.#open.get(a.exchange) : undefined;
    if (a.side === 'upstream' && a.code === 'HEAD_REJECTED' && open?.handshake && !open.response && a.exchange !== null) {
      // The answer to a handshake that is not HTTP: recorded as handshake evidence, as the handshake's other facts are.
      this.#open.delete(a.exchange);
      this.#ctx.record({ kind: 'ws.handshake.error', t: a.t, conn: this.#ctx.id, code: a.headError ?? a.code, message: a.message.replace(/^response head: /, ''), offset: a.offset });
      return;
    }
    const stops = a.code === 'HEAD_REJECTED' || a.code === 'RESPONSE_WITHOUT_REQUEST' || a.code === 'BAD_CHUNKED_BODY' || a.code === 'HELD_BYTES_OVERFLOW' || a.code === 'CONFLICTING_CONTENT_LENGTH' || a.code === 'BAD_CONTENT_LENGTH' || a.code === 'UNKNOWN_TRANSFER_CODING';
    this.#ctx.record({ kind: 'http.anomaly', t: a.t, conn: this.#ctx.id, side: a.side, exchange: a.exchange, code: a.code, message: a.message, offset: a.offset, parsing: stops ? 'stopped' : 'continues' });
  }

  #onOpaque(side: Side, data: Buffer, t: number, reason: OpaqueReason): void {
    if (reason === 'switch') this.#websocket?.observe(side, data, t, this.#previousByteAt);
  }
}
