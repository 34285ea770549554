import type net from 'node:net';
import type { ConnectionContext } from './connection-context.js';
import { connectUpstream, type Target } from './target.js';

export interface DialHandlers {
  /** The upstream is connected (TLS: handshake done); the caller now owns both sockets. */
  connected(upstream: net.Socket): void;
  /** The upstream could not be reached; the caller answers the client (502, RST) and must record nothing more about the dial. */
  failed(error: NodeJS.ErrnoException): void;
  /** The client went away first; its evidence and conn.close are already recorded. */
  abandoned(): void;
}

/**
 * Opens the upstream for a client connection and covers the moment in
 * between: the client may reset or close while we are still connecting, and
 * neither socket may be left without an error listener.
 */
export function dialUpstream(ctx: ConnectionContext, client: net.Socket, target: Target, insecure: boolean, handlers: DialHandlers): void {
  ctx.relayed = true;
  const upstream = connectUpstream(target, { insecure });
  let settled = false;

  const detach = (): void => {
    settled = true;
    upstream.removeListener('error', onUpstreamError);
    client.removeListener('error', onClientError);
    client.removeListener('close', onClientClose);
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
    upstream.on('error', () => undefined);
    upstream.destroy();
    ctx.recordClose();
    handlers.abandoned();
  };

  upstream.once('error', onUpstreamError);
  client.on('error', onClientError);
  client.once('close', onClientClose);
  upstream.once(target.tls ? 'secureConnect' : 'connect', () => {
    if (settled) return;
    detach();
    handlers.connected(upstream);
  });
}
