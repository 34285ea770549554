import type net from 'node:net';
import type { HttpRequestHead } from '../wire/http-head-parser.js';
import type { ConnectionContext } from './connection-context.js';
import { DuplexRelay } from './duplex-relay.js';
import { HttpTap } from './http-tap.js';
import { LaterRequestGate, type ClaimedRequest } from './later-request-gate.js';
import { PROBE_TOKEN_HEADER } from './probe-protocol.js';
import type { HeldRequest } from './request-head-gate.js';
import type { Target } from './target.js';
import { dialUpstream, type DialOptions } from './upstream-dialer.js';

/** With --probe-token: which later requests are wstap's, and who answers them once the app's connection is ended. */
export interface LaterRequestClaims {
  claims(head: HttpRequestHead): boolean;
  /** The client's socket is the caller's from here (paused, no relay listener left on it): answer `claimed` on it. */
  answer(claimed: ClaimedRequest, client: net.Socket): void;
}

export interface HttpRelayOptions extends DialOptions {
  target: Target;
  previewLimit: number;
  /** Set with --probe-token only: later request heads are then held until complete (later-request-gate.ts). */
  claims?: LaterRequestClaims;
}

/** How long the app may take to close its side after wstap's FIN on a taken-over connection, before it is closed anyway. */
const RETIRED_UPSTREAM_GRACE_MS = 5000;

/**
 * An HTTP connection whose first request head is complete: it gets its own
 * upstream connection, the bytes held so far go first, then both directions
 * are piped byte for byte (DuplexRelay: FIN as FIN, RST as RST) for as long
 * as the client's connection lives, whatever it carries: more requests
 * (keep-alive, pipelining), an upgrade on any of them, a WebSocket after a
 * 101. A copy of each chunk feeds the HttpTap, which records the exchanges.
 * An upstream that cannot be reached is answered 502 with a short plain-text
 * body, as any reverse proxy would: the app never spoke.
 *
 * With --probe-token (`options.claims`) the client's bytes pass a
 * LaterRequestGate first: each later request head is held until complete,
 * and one wstap claims ends the app's connection (takeOver below) instead
 * of reaching it. Without it, nothing sits between the two sockets.
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
      const claims = options.claims;
      const gate = claims ? new LaterRequestGate(ctx, (head) => claims.claims(head), (claimed) => takeOver(claimed)) : undefined;
      const relay = new DuplexRelay(ctx, client, upstream, {
        observe,
        ended: (side, how, t) => tap.ended(side, how, t),
        settle: (done) => tap.close(done),
        onClosed: () => register(null),
        ...(gate ? { clientGate: gate } : {}),
      });
      /**
       * A later request wstap answers itself: every earlier exchange is
       * complete, so the app's connection has nothing more to carry. wstap
       * ends it (a FIN, recorded as `proxy.takeover`: not close evidence, the
       * client's connection lives on), the tap's open records are settled,
       * and the client's socket goes to the answerer, which records the rest
       * as on a connection whose first request was the probe: its close is
       * judged from what follows, as there.
       */
      const takeOver = (claimed: ClaimedRequest): void => {
        relay.detach();
        const t = ctx.now();
        ctx.record({
          kind: 'proxy.takeover',
          t,
          conn: ctx.id,
          exchange: claimed.exchange,
          reason: `request ${claimed.exchange} carries ${PROBE_TOKEN_HEADER}: wstap ended the app's connection (FIN) and answers that request itself`,
          idle: ctx.idleAt(t),
        });
        retire(ctx, upstream);
        ctx.guard('settle', () => tap.close(() => undefined));
        claims?.answer(claimed, client);
      };
      register(relay);
      if (gate) {
        relay.startGated(held.chunks);
        return;
      }
      for (const { chunk } of held.chunks) upstream.write(chunk);
      observeHeld();
      relay.start();
      client.resume();
    },
  });
}

/**
 * The app's connection, ended by wstap after its last answer: a FIN, then
 * whatever it still sends is read and dropped (no request is open; counted
 * as not relayed), and the socket is closed once the app closes its side,
 * or after a grace. Its FIN or RST is not recorded: the connection's
 * upstream side is wstap's own answer from here on.
 */
function retire(ctx: ConnectionContext, upstream: net.Socket): void {
  const force = setTimeout(() => upstream.destroy(), RETIRED_UPSTREAM_GRACE_MS);
  force.unref();
  upstream.on('error', () => upstream.destroy());
  upstream.on('end', () => upstream.destroy());
  upstream.on('close', () => clearTimeout(force));
  upstream.on('data', (chunk: Buffer) => {
    ctx.bytes.fromUpstream += chunk.length;
    ctx.notRelayed.fromUpstream += chunk.length;
  });
  upstream.end();
  upstream.resume();
}
