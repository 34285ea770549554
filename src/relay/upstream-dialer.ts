import type net from 'node:net';
import type { ConnectionContext } from './connection-context.js';
import { connectUpstream, type Target, type UpstreamConnection } from './target.js';

export interface DialOptions {
  /** Skip certificate verification (--insecure). */
  insecure: boolean;
  /** Give up on the TCP connect and the TLS handshake together after this long (--connect-timeout); 0: never. */
  connectTimeoutMs: number;
}

/** Default --connect-timeout: nginx's proxy_connect_timeout. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 60_000;

export interface DialHandlers {
  /** The upstream is connected (TLS: handshake done); the caller now owns both sockets. */
  connected(upstream: UpstreamConnection): void;
  /** The upstream could not be reached in time; the caller answers the client (502, RST) and must record nothing more about the dial. */
  failed(error: NodeJS.ErrnoException): void;
  /** The client went away first; its evidence and conn.close are already recorded. */
  abandoned(): void;
}

/**
 * Opens the upstream for a client connection and covers the moment in
 * between: the client may reset or close while we are still connecting, the
 * upstream may never answer, and neither socket may be left without an
 * error listener.
 */
export function dialUpstream(ctx: ConnectionContext, client: net.Socket, target: Target, options: DialOptions, handlers: DialHandlers): void {
  ctx.relayed = true;
  const upstream = connectUpstream(target, { insecure: options.insecure });
  const { stream, tcp } = upstream;
  let settled = false;

  const detach = (): void => {
    settled = true;
    stream.removeListener('error', onUpstreamError);
    client.removeListener('error', onClientError);
    client.removeListener('close', onClientClose);
  };
  const abandonUpstream = (): void => {
    stream.on('error', () => undefined);
    tcp.on('error', () => undefined);
    stream.destroy();
    tcp.destroy();
  };
  const onUpstreamError = (err: NodeJS.ErrnoException): void => {
    if (settled) return;
    detach();
    handlers.failed(err);
  };
  const onClientError = (err: NodeJS.ErrnoException): void => ctx.recordSocketError('client', err);
  const onClientClose = (): void => {
    if (settled) return;
    detach();
    abandonUpstream();
    ctx.recordClose();
    handlers.abandoned();
  };

  stream.once('error', onUpstreamError);
  client.on('error', onClientError);
  client.once('close', onClientClose);
  stream.once(upstream.readyEvent, () => {
    if (settled) return;
    detach();
    handlers.connected(upstream);
  });
  failDialAfter(stream, upstream.readyEvent, options.connectTimeoutMs, target);
}

/**
 * Destroys a dialing socket with an ETIMEDOUT error (as the kernel's own
 * connect timeout says it) unless `readyEvent` comes within `ms`: the dial
 * then fails the way an unreachable upstream does. Under TLS the time covers
 * the TCP connect and the handshake; the message names the step that did not
 * finish. 0: no limit.
 */
export function failDialAfter(socket: net.Socket, readyEvent: 'connect' | 'secureConnect', ms: number, target: Target): void {
  if (ms <= 0) return;
  const timer = setTimeout(() => {
    const step = socket.connecting ? 'connect' : 'TLS handshake';
    const err: NodeJS.ErrnoException = new Error(`${step} to ${target.href} not done after ${ms / 1000} s (--connect-timeout)`);
    err.code = 'ETIMEDOUT';
    socket.destroy(err);
  }, ms);
  const cancel = (): void => clearTimeout(timer);
  socket.once(readyEvent, cancel);
  socket.once('close', cancel);
}
