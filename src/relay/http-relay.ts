import type net from 'node:net';
import type { ConnectionContext } from './connection-context.js';
import { DuplexRelay } from './duplex-relay.js';
import { HttpTap } from './http-tap.js';
import type { HeldRequest } from './request-head-gate.js';
import type { Target } from './target.js';
import { dialUpstream, type DialOptions } from './upstream-dialer.js';

export interface HttpRelayOptions extends DialOptions {
  target: Target;
  previewLimit: number;
}

/**
 * An HTTP connection whose first request head is complete: it gets its own
 * upstream connection, the bytes held so far go first, then both directions
 * are piped byte for byte (DuplexRelay: FIN as FIN, RST as RST) for as long
 * as the client's connection lives, whatever it carries: more requests
 * (keep-alive, pipelining), an upgrade on any of them, a WebSocket after a
 * 101. A copy of each chunk feeds the HttpTap, which records the exchanges.
 * An upstream that cannot be reached is answered 502 with a short plain-text
 * body, as any reverse proxy would: the app never spoke.
 */
export function relayHttp(
  ctx: ConnectionContext,
  client: net.Socket,
  held: HeldRequest,
  options: HttpRelayOptions,
  register: (relay: DuplexRelay | null) => void,
): void {
  const tap = new HttpTap(ctx, { previewLimit: options.previewLimit });
  const observe = (side: 'client' | 'upstream', chunk: Buffer, t: number, previousByteAt: number): void => tap.observe(side, chunk, t, previousByteAt);

  /** The held bytes, observed with the times they arrived at (the first request's timing starts when its head did). */
  const observeHeld = (): void => {
    let previousByteAt = ctx.openedAt;
    for (const { chunk, t } of held.chunks) {
      ctx.bytes.fromClient += chunk.length;
      ctx.observe(observe, 'client', chunk, t, previousByteAt);
      previousByteAt = t;
    }
  };

  dialUpstream(ctx, client, options.target, options, {
    failed(err) {
      const code = err.code ?? err.name;
      observeHeld();
      const body = `wstap: upstream ${options.target.href} failed: ${code}: ${err.message}\n`;
      ctx.record({ kind: 'http.error', t: ctx.now(), conn: ctx.id, exchange: 1, stage: 'connect', code, message: err.message, answeredStatus: 502 });
      client.on('error', () => client.destroy());
      client.once('close', () => {
        ctx.recordClose();
        register(null);
      });
      client.end(
        `HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\nX-Wstap-Error: ${code}\r\n\r\n${body}`,
      );
      client.resume();
    },
    abandoned: () => register(null),
    connected: ({ stream: upstream }) => {
      const relay = new DuplexRelay(ctx, client, upstream, {
        observe,
        ended: (side, how, t) => tap.ended(side, how, t),
        settle: (done) => tap.close(done),
        onClosed: () => register(null),
      });
      register(relay);
      for (const { chunk } of held.chunks) upstream.write(chunk);
      observeHeld();
      relay.start();
      client.resume();
    },
  });
}
