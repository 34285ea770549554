import type http from 'node:http';
import type net from 'node:net';
import { rawHeaderPairs } from '../capture/raw-headers.js';
import type { ChunkObserver, ConnectionContext } from './connection-context.js';
import { DuplexRelay } from './duplex-relay.js';
import type { Target } from './target.js';
import { dialUpstream, type DialOptions } from './upstream-dialer.js';
import { UpgradeObserver } from './upgrade-observer.js';

export interface UpgradeRelayOptions extends DialOptions {
  target: Target;
  previewLimit: number;
}

/**
 * The request head as it arrived: method, target and version, then the
 * headers in their order and casing, duplicates kept (Node's rawHeaders).
 * Not `proxy.ws()`: it lowercases, merges and reorders them.
 */
export function serializeRequestHead(req: http.IncomingMessage): Buffer {
  let head = `${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/${req.httpVersion}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return Buffer.from(head + '\r\n', 'latin1');
}

/**
 * Relays one Upgrade request byte for byte: the head goes to the upstream as
 * it arrived, the upstream's answer (101, 400, anything) goes back unchanged,
 * then both directions are piped. Copies of both directions feed an
 * UpgradeObserver (our own head parser, then the frame decoders after a 101).
 */
export function relayUpgrade(
  ctx: ConnectionContext,
  req: http.IncomingMessage,
  client: net.Socket,
  early: Buffer,
  options: UpgradeRelayOptions,
  register: (relay: DuplexRelay | null) => void,
): void {
  const head = serializeRequestHead(req);
  const requestAt = ctx.now();
  const requestHeaders = rawHeaderPairs(req.rawHeaders);
  ctx.record({
    kind: 'ws.handshake.request',
    t: requestAt,
    conn: ctx.id,
    method: req.method ?? '',
    url: req.url ?? '',
    httpVersion: req.httpVersion,
    rawHeaders: requestHeaders,
    headLength: head.length,
  });

  const observer = new UpgradeObserver(ctx, { previewLimit: options.previewLimit, requestAt });

  dialUpstream(ctx, client, options.target, options, {
    failed(err) {
      const code = err.code ?? err.name;
      const body = `wstap: upstream ${options.target.href} failed: ${code}: ${err.message}\n`;
      ctx.record({
        kind: 'http.error',
        t: ctx.now(),
        conn: ctx.id,
        exchange: 1,
        stage: 'connect',
        code,
        message: err.message,
        answeredStatus: 502,
      });
      // The upstream never spoke, so answering is ours to do, as any reverse proxy would.
      client.on('error', () => client.destroy());
      client.once('close', () => {
        ctx.recordClose();
        register(null);
      });
      client.end(
        `HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\nX-Wstap-Error: ${code}\r\n\r\n${body}`,
      );
    },
    abandoned: () => register(null),
    connected: ({ stream: upstream }) => {
      upstream.write(head);

      // Called through ctx.observe (by the relay, and below for the early bytes): a throw stops observing, never relaying.
      const observe: ChunkObserver = (side, chunk, t, previousByteAt) => observer.observe(side, chunk, t, previousByteAt);
      const relay = new DuplexRelay(ctx, client, upstream, {
        observe,
        settle: (done) => observer.settle(done),
        onClosed: () => register(null),
      });
      register(relay);
      // Registered before the relay's own listener: the body is recorded ahead of the upstream's FIN.
      upstream.once('end', () => observer.upstreamEnded());
      relay.start();
      if (early.length > 0) {
        // Bytes the client sent right behind its head: forwarded like any other.
        const t = ctx.now();
        const previousByteAt = ctx.lastByteAt.client;
        ctx.lastByteAt.client = t;
        ctx.bytes.fromClient += early.length;
        upstream.write(early);
        ctx.observe(observe, 'client', early, t, previousByteAt);
      }
    },
  });
}
