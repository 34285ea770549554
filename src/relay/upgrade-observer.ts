import type { HandshakeResponseEvent, Side } from '../capture/events.js';
import { headerValues } from '../capture/raw-headers.js';
import type { HttpResponseHead } from '../wire/http-head-parser.js';
import { ResponseHeads } from '../wire/response-heads.js';
import { negotiatedDeflate } from '../wire/websocket-extensions.js';
import type { ConnectionContext } from './connection-context.js';
import { HandshakeBodyTap, type HandshakeBodyTapOptions } from './handshake-body-tap.js';
import { WebSocketTap } from './websocket-tap.js';

function isWebSocketUpgrade(head: HttpResponseHead): boolean {
  return head.statusCode === 101 && headerValues(head.rawHeaders, 'upgrade').some((v) => v.trim().toLowerCase() === 'websocket');
}

export interface UpgradeObserverOptions extends HandshakeBodyTapOptions {
  previewLimit: number;
  /** When the request head arrived: response waits are measured from it. */
  requestAt: number;
}

/**
 * Everything decoded from one Upgrade exchange once its request head is
 * recorded: the upstream's heads (interim ones, then the final one), then
 * either the frames both ways (101 websocket) or the refusal's body. Fed
 * copies of each direction's bytes in order; knows no socket, so the live
 * relay and a packet capture's reassembled streams (src/pcap/) share it.
 */
export class UpgradeObserver {
  readonly #ctx: ConnectionContext;
  readonly #options: UpgradeObserverOptions;
  readonly #tap: WebSocketTap;
  /** The upstream's heads: interim ones (103 Early Hints...) are recorded, and decoding waits for the final one. */
  readonly #heads = new ResponseHeads();
  /** After a response that did not upgrade: what the app said in its body. */
  #body: HandshakeBodyTap | null = null;

  constructor(ctx: ConnectionContext, options: UpgradeObserverOptions) {
    this.#ctx = ctx;
    this.#options = options;
    this.#tap = new WebSocketTap(ctx, { previewLimit: options.previewLimit });
  }

  /** A copy of bytes one side sent (the relay's ChunkObserver). */
  observe(side: Side, chunk: Buffer, t: number, previousByteAt: number): void {
    if (side === 'upstream' && !this.#heads.done) this.#observeUpstreamHead(chunk, t, previousByteAt);
    else if (side === 'upstream' && this.#body) this.#body.observe(chunk, t);
    else this.#tap.observe(side, chunk, t, previousByteAt);
  }

  /** The upstream ended (its FIN): a refusal's body is complete. */
  upstreamEnded(): void {
    this.#body?.finish();
  }

  /** Bytes of `side` are missing from here on (a packet capture's hole): its decoding stops, without a cut frame. */
  stop(side: Side): void {
    if (side === 'upstream' && !this.#heads.done) this.#tap.disarm();
    this.#tap.stop(side);
  }

  /** See WebSocketTap.bridgeable: only once the upgrade is decoded. */
  bridgeable(side: Side, missing: number): ((t: number) => void) | null {
    if (!this.#heads.done || this.#body) return null;
    return this.#tap.bridgeable(side, missing);
  }

  /**
   * The connection ended (`ended` false: only its recording did, at a packet
   * capture's end): `done` once everything still to record is recorded.
   */
  settle(done: () => void, ended = true): void {
    this.#body?.finish();
    this.#tap.close(done, ended);
  }

  #observeUpstreamHead(chunk: Buffer, t: number, previousByteAt: number): void {
    const ctx = this.#ctx;
    const step = this.#heads.push(chunk);
    const waitMs = Math.round((t - this.#options.requestAt) * 1000) / 1000;
    for (const interim of step.interim) {
      const { statusCode, reason, httpVersion, rawHeaders, headLength } = interim;
      ctx.record({ kind: 'ws.handshake.interim', t, conn: ctx.id, statusCode, reason, httpVersion, rawHeaders, headLength, waitMs });
    }
    const result = step.end;
    if (result === null) return;
    if (result.state === 'error') {
      ctx.record({ kind: 'ws.handshake.error', t, conn: ctx.id, code: result.code, message: result.message, offset: result.offset });
      this.#tap.disarm();
      return;
    }
    const response = result.head;
    const event: HandshakeResponseEvent = {
      kind: 'ws.handshake.response',
      t,
      conn: ctx.id,
      statusCode: response.statusCode,
      reason: response.reason,
      httpVersion: response.httpVersion,
      rawHeaders: response.rawHeaders,
      headLength: response.headLength,
      upgraded: isWebSocketUpgrade(response),
      deflate: negotiatedDeflate(headerValues(response.rawHeaders, 'sec-websocket-extensions')),
      waitMs,
    };
    ctx.record(event);
    if (!event.upgraded) {
      this.#tap.disarm();
      try {
        this.#body = new HandshakeBodyTap(ctx, response, this.#options.previewLimit, this.#options);
        this.#body.observe(result.rest, t);
      } catch {
        // Only the body's evidence is lost; the relay goes on.
        this.#body = null;
      }
      return;
    }
    this.#tap.arm(event);
    if (result.rest.length > 0) this.#tap.observe('upstream', result.rest, t, previousByteAt);
  }
}
