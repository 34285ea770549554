import type { HttpResponseHead } from '../wire/http-head-parser.js';
import { HttpHeadParser } from '../wire/http-head-parser.js';
import { ResponseHeads } from '../wire/response-heads.js';
import { headerTokens, headerValues } from '../capture/raw-headers.js';
import type { Side } from '../capture/events.js';
import type { ConnectionContext } from '../relay/connection-context.js';
import { UpgradeObserver } from '../relay/upgrade-observer.js';
import { MessageBody, requestFraming, responseFraming } from './message-body.js';

/** Requests waiting for their responses (pipelining) that are kept; more stop the decoding of the connection. */
const MAX_OUTSTANDING = 64;

interface Exchange {
  exchange: number;
  method: string;
  startedAt: number;
  requestBodyBytes: number;
  response: HttpResponseHead | null;
  responseHeadAt: number | null;
  body: MessageBody | null;
}

/**
 * The HTTP/1.1 conversation of one reassembled TCP connection, in the events
 * the live proxy records: each plain exchange as `http.request` and (when
 * its response has ended) `http.response`; an Upgrade request as
 * `ws.handshake.request`, after which the live relay's own UpgradeObserver
 * takes both directions (response heads, frames, messages, a refusal's body).
 *
 * Seam for issue 17 (a full passive HTTP/1.1 parser in src/wire/): the plain
 * exchange part here (heads with HttpHeadParser, bodies with MessageBody)
 * is what that parser replaces; the upgrade hand-over stays.
 */
export class HttpStreamObserver {
  readonly #ctx: ConnectionContext;
  readonly #previewLimit: number;
  readonly #note: (message: string) => void;
  #upgrade: UpgradeObserver | null = null;
  readonly #stopped: Record<Side, boolean> = { client: false, upstream: false };
  #request = new HttpHeadParser('request');
  #requestBody: MessageBody | null = null;
  readonly #outstanding: Exchange[] = [];
  #exchanges = 0;
  #responseHeads = new ResponseHeads();

  constructor(ctx: ConnectionContext, previewLimit: number, note: (message: string) => void) {
    this.#ctx = ctx;
    this.#previewLimit = previewLimit;
    this.#note = note;
  }

  observe(side: Side, chunk: Buffer, t: number, previousByteAt: number): void {
    if (this.#upgrade) return this.#upgrade.observe(side, chunk, t, previousByteAt);
    if (this.#stopped[side]) return;
    if (side === 'client') this.#observeClient(chunk, t, previousByteAt);
    else this.#observeUpstream(chunk, t);
  }

  /** Bytes of `side` are missing from here on: its decoding stops (a head boundary after a hole is not certain). */
  stop(side: Side): void {
    if (this.#upgrade) this.#upgrade.stop(side);
    this.#stopped[side] = true;
  }

  /** See WebSocketTap.bridgeable: a hole inside one frame's payload of an upgraded connection; plain HTTP stops. */
  bridgeable(side: Side, missing: number): ((t: number) => void) | null {
    return this.#upgrade && !this.#stopped[side] ? this.#upgrade.bridgeable(side, missing) : null;
  }

  /** The upstream's FIN: a body that runs to the close is complete. */
  upstreamEnded(t: number): void {
    if (this.#upgrade) return this.#upgrade.upstreamEnded();
    const current = this.#outstanding[0];
    if (current?.body && current.body.framing.kind === 'close') {
      current.body.end();
      this.#finishExchange(current, t, true);
    }
  }

  /**
   * The connection ended: answers never completed are recorded as such.
   * `ended` false: the capture ended with the connection open; nothing is
   * judged incomplete, messages still inflating are recorded.
   */
  settle(t: number, done: () => void, ended = true): void {
    if (this.#upgrade) return this.#upgrade.settle(done, ended);
    if (!ended) return done();
    for (const exchange of this.#outstanding.splice(0)) {
      if (exchange.response) this.#recordResponse(exchange, t, false);
      else {
        this.#ctx.record({
          kind: 'http.error',
          t,
          conn: this.#ctx.id,
          exchange: exchange.exchange,
          stage: 'response',
          code: 'NO_RESPONSE',
          message: 'the connection ended before the app sent a response head',
          answeredStatus: null,
        });
      }
    }
    done();
  }

  #observeClient(chunk: Buffer, t: number, previousByteAt: number): void {
    let rest = chunk;
    while (rest.length > 0 && !this.#stopped.client && !this.#upgrade) {
      const current = this.#outstanding.at(-1);
      if (this.#requestBody && current) {
        const used = this.#requestBody.push(rest);
        current.requestBodyBytes = this.#requestBody.dataBytes;
        rest = rest.subarray(used);
        if (!this.#requestBody.done) return;
        this.#requestBody = null;
        continue;
      }
      const result = this.#request.push(rest);
      if (result.state === 'incomplete') return;
      if (result.state === 'error') {
        this.#stopped.client = true;
        this.#note(`client bytes are not an HTTP request head (${result.code}: ${result.message}); not decoded further`);
        return;
      }
      this.#request = new HttpHeadParser('request');
      rest = result.rest;
      const head = result.head;
      const connection = headerTokens(head.rawHeaders, 'connection');
      if (headerValues(head.rawHeaders, 'upgrade').length > 0 && connection.includes('upgrade')) {
        const upgrade = this.#startUpgrade(head.method, head.target, head.httpVersion, head.rawHeaders, head.headLength, t);
        // As live: an upgraded connection's client bytes are counted from the relay's start, after
        // the request head (Node's parser read it); the upstream's include its response head.
        this.#ctx.bytes.fromClient = rest.length;
        if (rest.length > 0) upgrade.observe('client', rest, t, previousByteAt);
        return;
      }
      if (this.#outstanding.length >= MAX_OUTSTANDING) {
        this.stop('client');
        this.stop('upstream');
        this.#note(`more than ${MAX_OUTSTANDING} requests without a response; not decoded further`);
        return;
      }
      const exchange: Exchange = { exchange: ++this.#exchanges, method: head.method, startedAt: t, requestBodyBytes: 0, response: null, responseHeadAt: null, body: null };
      this.#outstanding.push(exchange);
      this.#ctx.record({ kind: 'http.request', t, conn: this.#ctx.id, exchange: exchange.exchange, method: head.method, url: head.target, httpVersion: head.httpVersion, rawHeaders: head.rawHeaders });
      const body = new MessageBody(requestFraming(head.rawHeaders));
      if (!body.done) this.#requestBody = body;
    }
  }

  #startUpgrade(method: string, url: string, httpVersion: string, rawHeaders: Array<[string, string]>, headLength: number, t: number): UpgradeObserver {
    const ctx = this.#ctx;
    ctx.record({ kind: 'ws.handshake.request', t, conn: ctx.id, method, url, httpVersion, rawHeaders, headLength });
    // The packets' times drive it: no wall-clock deadline for a refusal's body.
    const upgrade = new UpgradeObserver(ctx, { previewLimit: this.#previewLimit, requestAt: t, deadline: false });
    if (this.#stopped.upstream) upgrade.stop('upstream');
    this.#upgrade = upgrade;
    return upgrade;
  }

  #observeUpstream(chunk: Buffer, t: number): void {
    let rest = chunk;
    while (rest.length > 0 && !this.#stopped.upstream) {
      const current = this.#outstanding[0];
      if (!current) {
        this.#stopped.upstream = true;
        this.#note('the app sent bytes no request asked for; its side is not decoded further');
        return;
      }
      if (current.body) {
        rest = rest.subarray(current.body.push(rest));
        if (current.body.done) this.#finishExchange(current, t, true);
        else if (current.body.broken) this.stop('upstream');
        continue;
      }
      const step = this.#responseHeads.push(rest);
      const end = step.end;
      if (end === null) return;
      if (end.state === 'error') {
        this.#stopped.upstream = true;
        this.#note(`the app's bytes are not an HTTP response head (${end.code}: ${end.message}); not decoded further`);
        return;
      }
      this.#responseHeads = new ResponseHeads();
      current.response = end.head;
      current.responseHeadAt = t;
      current.body = new MessageBody(responseFraming(current.method, end.head.statusCode, end.head.rawHeaders));
      rest = end.rest;
      if (current.body.done) this.#finishExchange(current, t, true);
    }
  }

  #finishExchange(exchange: Exchange, t: number, complete: boolean): void {
    this.#outstanding.shift();
    this.#recordResponse(exchange, t, complete);
  }

  #recordResponse(exchange: Exchange, t: number, complete: boolean): void {
    const head = exchange.response as HttpResponseHead;
    const ms = (v: number): number => Math.round(v * 1000) / 1000;
    this.#ctx.record({
      kind: 'http.response',
      t,
      conn: this.#ctx.id,
      exchange: exchange.exchange,
      statusCode: head.statusCode,
      statusMessage: head.reason,
      httpVersion: head.httpVersion,
      rawHeaders: head.rawHeaders,
      requestBodyBytes: exchange.requestBodyBytes,
      responseBodyBytes: exchange.body?.dataBytes ?? 0,
      ttfbMs: ms((exchange.responseHeadAt ?? t) - exchange.startedAt),
      totalMs: ms(t - exchange.startedAt),
      complete,
    });
  }
}
