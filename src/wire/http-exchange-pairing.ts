import type { HeadParseErrorCode, HttpRequestHead, HttpResponseHead } from './http-head-parser.js';
import { isUpgradeRequest, requestFraming, responseFraming } from './http-message-framing.js';
import { HttpStreamParser, type MessagePlan, type OpaqueReason, type StreamAnomalyCode, type StreamEnd } from './http-stream-parser.js';
import { isInterimStatus } from './response-heads.js';

export type ConversationSide = 'client' | 'upstream';

export type ConversationAnomalyCode = StreamAnomalyCode | 'RESPONSE_WITHOUT_REQUEST';

export interface ConversationAnomaly {
  side: ConversationSide;
  /** The exchange the trouble belongs to, when there is one. */
  exchange: number | null;
  code: ConversationAnomalyCode;
  message: string;
  /** Byte offset in that side's stream. */
  offset: number;
  t: number;
  /** With HEAD_REJECTED: the head parser's code. */
  headError?: HeadParseErrorCode;
}

/** What a conversation tells as it goes, one call per fact; every exchange number counts from 1 on its connection. */
export interface ExchangeHandlers {
  /** A request head; `upgrade`: it asks to switch protocols (Upgrade, or CONNECT), so what follows waits for its answer; `offset`: where the head began in the client's stream. */
  request(exchange: number, head: HttpRequestHead, t: number, upgrade: boolean, offset: number): void;
  requestEnd(exchange: number, bodyBytes: number, t: number): void;
  /** A 1xx answer other than 101 (100 Continue, 103 Early Hints); the final one follows. */
  interim(exchange: number, head: HttpResponseHead, t: number): void;
  /** The final answer's head. */
  response(exchange: number, head: HttpResponseHead, t: number): void;
  /** Wire bytes of the final answer's body (chunk framing included): a subarray of the relayed chunk, copy to keep. */
  responseBody(exchange: number, data: Buffer, t: number): void;
  responseEnd(exchange: number, bodyBytes: number, t: number): void;
  anomaly(anomaly: ConversationAnomaly): void;
  /** The protocol changed after this exchange's answer (101, a 2xx to CONNECT): from now on each side's bytes go to `opaque`. */
  switched(exchange: number, t: number): void;
  /** Bytes not parsed as HTTP: past a switch, or after what could not be parsed. */
  opaque(side: ConversationSide, data: Buffer, t: number, reason: OpaqueReason): void;
}

interface AwaitingAnswer {
  exchange: number;
  method: string;
  upgrade: boolean;
}

const NOTHING_MORE: MessagePlan = { framing: { kind: 'unframed' }, anomalies: [], after: 'next' };

/**
 * Both directions of one HTTP/1.x connection: requests numbered as they
 * come, answers matched to them in order (pipelining), interim answers kept
 * apart from final ones, and after an upgrade request the client's next bytes
 * held until the answer says whether they are HTTP or the new protocol. Pure:
 * fed copies of each side's chunks with their times (a live relay or a
 * reassembled packet capture), it reports exchange facts and never throws on
 * any input.
 */
export class HttpConversation {
  readonly #handlers: ExchangeHandlers;
  readonly #requests: HttpStreamParser<'request'>;
  readonly #responses: HttpStreamParser<'response'>;
  readonly #awaiting: AwaitingAnswer[] = [];
  #requested = 0;
  /** The request whose body is being read. */
  #requestInBody = 0;
  /** The answer whose body is being read, 0 when none. */
  #answering = 0;

  constructor(handlers: ExchangeHandlers, options: { maxHeadBytes?: number } = {}) {
    this.#handlers = handlers;
    this.#requests = new HttpStreamParser(
      'request',
      {
        head: (head, t, offset) => this.#onRequest(head, t, offset),
        body: () => undefined,
        end: (bytes, t) => handlers.requestEnd(this.#requestInBody, bytes, t),
        // A head that does not parse starts no exchange; other troubles belong to the request being read.
        anomaly: (code, message, offset, t) => handlers.anomaly({ side: 'client', exchange: code === 'HEAD_REJECTED' ? null : this.#requestInBody || null, code, message, offset, t }),
        opaque: (data, t, reason) => handlers.opaque('client', data, t, reason),
      },
      options,
    );
    this.#responses = new HttpStreamParser(
      'response',
      {
        head: (head, t, offset) => this.#onResponse(head, t, offset),
        body: (data, t) => handlers.responseBody(this.#answering, data, t),
        end: (bytes, t) => this.#onResponseEnd(bytes, t),
        anomaly: (code, message, offset, t, headError) =>
          handlers.anomaly({ side: 'upstream', exchange: this.#answering || (this.#awaiting[0]?.exchange ?? null), code, message, offset, t, ...(headError ? { headError } : {}) }),
        opaque: (data, t, reason) => handlers.opaque('upstream', data, t, reason),
      },
      options,
    );
  }

  /** Requests seen so far. */
  get requests(): number {
    return this.#requested;
  }

  /** Exchanges whose final answer has not begun, oldest first. */
  get unanswered(): readonly number[] {
    return this.#awaiting.map((a) => a.exchange);
  }

  /** The exchange whose answer's body is being read, or null. */
  get answering(): number | null {
    return this.#answering || null;
  }

  /** The oldest exchange whose final answer has not begun, or null (unanswered[0] without a copy). */
  get oldestUnanswered(): number | null {
    return this.#awaiting[0]?.exchange ?? null;
  }

  /** How many exchanges wait for their final answer (unanswered.length without a copy). */
  get unansweredCount(): number {
    return this.#awaiting.length;
  }

  /** Where the client's request head being read began (an offset in its stream), while one is incomplete; else null. */
  get requestHeadStart(): number | null {
    return this.#requests.headStart;
  }

  push(side: ConversationSide, chunk: Buffer, t: number): void {
    if (side === 'client') this.#requests.push(chunk, t);
    else this.#responses.push(chunk, t);
  }

  /** That side's FIN or the connection's end: an answer read until close ends here. Says where that side's stream was. */
  finish(side: ConversationSide, t: number): StreamEnd {
    return side === 'client' ? this.#requests.finish(t) : this.#responses.finish(t);
  }

  #onRequest(head: HttpRequestHead, t: number, offset: number): MessagePlan {
    const exchange = ++this.#requested;
    this.#requestInBody = exchange;
    const upgrade = head.method === 'CONNECT' || isUpgradeRequest(head);
    this.#awaiting.push({ exchange, method: head.method, upgrade });
    this.#handlers.request(exchange, head, t, upgrade, offset);
    const decision = requestFraming(head);
    return { framing: decision.framing, anomalies: decision.anomalies, after: upgrade ? 'hold' : 'next' };
  }

  #onResponse(head: HttpResponseHead, t: number, offset: number): MessagePlan {
    const awaiting = this.#awaiting[0];
    if (awaiting === undefined) {
      this.#handlers.anomaly({
        side: 'upstream',
        exchange: null,
        code: 'RESPONSE_WITHOUT_REQUEST',
        message: `the upstream sent a ${head.statusCode} answer no request asked for: the rest of its stream is not parsed`,
        offset,
        t,
      });
      return NOTHING_MORE;
    }
    if (isInterimStatus(head.statusCode)) {
      this.#handlers.interim(awaiting.exchange, head, t);
      return { framing: { kind: 'none' }, anomalies: [], after: 'next' };
    }
    this.#awaiting.shift();
    this.#answering = awaiting.exchange;
    this.#handlers.response(awaiting.exchange, head, t);
    const decision = responseFraming(head, awaiting.method);
    if (awaiting.upgrade || decision.framing.kind === 'switch') {
      const switched = decision.framing.kind === 'switch';
      if (switched) this.#handlers.switched(awaiting.exchange, t);
      this.#requests.release(switched ? 'switch' : 'continue', t);
    }
    return { framing: decision.framing, anomalies: decision.anomalies, after: 'next' };
  }

  #onResponseEnd(bytes: number, t: number): void {
    const exchange = this.#answering;
    this.#answering = 0;
    if (exchange > 0) this.#handlers.responseEnd(exchange, bytes, t);
  }
}
