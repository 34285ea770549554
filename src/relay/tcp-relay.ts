import type net from 'node:net';
import type { ConnectionContext } from './connection-context.js';
import { DuplexRelay, resetOrDestroy } from './duplex-relay.js';
import type { Target } from './target.js';
import { dialUpstream, type DialOptions } from './upstream-dialer.js';

/**
 * Raw TCP mode: the same byte relay and close evidence, nothing parsed.
 * An upstream that cannot be reached is mirrored to the client as an RST,
 * which is what the client would have seen connecting directly.
 */
export function relayTcp(
  ctx: ConnectionContext,
  client: net.Socket,
  target: Target,
  dial: DialOptions,
  register: (relay: DuplexRelay | null) => void,
): void {
  dialUpstream(ctx, client, target, dial, {
    connected(upstream) {
      const relay = new DuplexRelay(ctx, client, upstream.stream, {
        observe: () => undefined,
        onClosed: () => register(null),
      });
      register(relay);
      relay.start();
    },
    failed(err) {
      const t = ctx.now();
      ctx.record({ kind: 'tcp.error', t, conn: ctx.id, side: 'upstream', code: err.code ?? err.name, message: err.message, idle: ctx.idleAt(t) });
      client.on('error', () => undefined);
      client.once('close', () => {
        ctx.recordClose();
        register(null);
      });
      // As an RST, which a TLS or unix client socket cannot take directly.
      resetOrDestroy(client);
    },
    abandoned: () => register(null),
  });
}
