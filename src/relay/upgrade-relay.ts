import type http from 'node:http';
import type net from 'node:net';
import type { HandshakeResponseEvent } from '../capture/events.js';
import { headerValues, rawHeaderPairs } from '../capture/raw-headers.js';
import type { HttpResponseHead } from '../wire/http-head-parser.js';
import { ResponseHeads } from '../wire/response-heads.js';
import { negotiatedDeflate } from '../wire/websocket-extensions.js';
import type { ChunkObserver, ConnectionContext } from './connection-context.js';
import { DuplexRelay } from './duplex-relay.js';
import { HandshakeBodyTap } from './handshake-body-tap.js';
import type { Target } from './target.js';
import { dialUpstream, type DialOptions } from './upstream-dialer.js';
import { WebSocketTap } from './websocket-tap.js';

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

function isWebSocketUpgrade(head: HttpResponseHead): boolean {
  return head.statusCode === 101 && headerValues(head.rawHeaders, 'upgrade').some((v) => v.trim().toLowerCase() === 'websocket');
}

/**
 * Relays one Upgrade request byte for byte: the head goes to the upstream as
 * it arrived, the upstream's answer (101, 400, anything) goes back unchanged,
 * then both directions are piped. A copy of the upstream's bytes feeds our own
 * head parser, and after a 101 both directions feed the frame decoders.
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

  const tap = new WebSocketTap(ctx, { previewLimit: options.previewLimit });
  /** The upstream's heads: interim ones (103 Early Hints...) are recorded and relayed, and decoding waits for the final one. */
  const heads = new ResponseHeads();
  /** After a response that did not upgrade: what the app said in its body. */
  let body: HandshakeBodyTap | null = null;

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

      const observeUpstreamHead = (chunk: Buffer, t: number, previousByteAt: number): void => {
        const step = heads.push(chunk);
        const waitMs = Math.round((t - requestAt) * 1000) / 1000;
        for (const interim of step.interim) {
          const { statusCode, reason, httpVersion, rawHeaders, headLength } = interim;
          ctx.record({ kind: 'ws.handshake.interim', t, conn: ctx.id, statusCode, reason, httpVersion, rawHeaders, headLength, waitMs });
        }
        const result = step.end;
        if (result === null) return;
        if (result.state === 'error') {
          ctx.record({ kind: 'ws.handshake.error', t, conn: ctx.id, code: result.code, message: result.message, offset: result.offset });
          tap.disarm();
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
          tap.disarm();
          try {
            body = new HandshakeBodyTap(ctx, response, options.previewLimit);
            body.observe(result.rest, t);
          } catch {
            // Only the body's evidence is lost; the relay goes on.
            body = null;
          }
          return;
        }
        tap.arm(event);
        if (result.rest.length > 0) tap.observe('upstream', result.rest, t, previousByteAt);
      };

      // Called through ctx.observe (by the relay, and below for the early bytes): a throw stops observing, never relaying.
      const observe: ChunkObserver = (side, chunk, t, previousByteAt) => {
        if (side === 'upstream' && !heads.done) observeUpstreamHead(chunk, t, previousByteAt);
        else if (side === 'upstream' && body) body.observe(chunk, t);
        else tap.observe(side, chunk, t, previousByteAt);
      };
      const relay = new DuplexRelay(ctx, client, upstream, {
        observe,
        settle: (done) => {
          body?.finish();
          tap.close(done);
        },
        onClosed: () => register(null),
      });
      register(relay);
      // Registered before the relay's own listener: the body is recorded ahead of the upstream's FIN.
      upstream.once('end', () => body?.finish());
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
