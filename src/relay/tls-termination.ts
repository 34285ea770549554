import type net from 'node:net';
import tls from 'node:tls';

/** As long as a client may take over its TLS handshake: Node's tls.Server default. */
export const TLS_HANDSHAKE_TIMEOUT_MS = 120_000;

export class TlsMaterialError extends Error {
  readonly code = 'WSTAP_BAD_TLS_MATERIAL';
}

/** The listener's certificate and key (PEM): a TlsMaterialError saying why when they are no usable pair. */
export function listenerTlsContext(cert: Buffer, key: Buffer): tls.SecureContext {
  try {
    return tls.createSecureContext({ cert, key });
  } catch (err) {
    throw new TlsMaterialError(`not a usable certificate and key (${(err as Error).message})`);
  }
}

export interface HandshakeWatch {
  /** Handshake done: the socket now carries the client's plaintext. */
  secure(): void;
  /** The handshake failed, timed out or the connection broke first; the socket is being destroyed. */
  failed(err: NodeJS.ErrnoException): void;
  /** The client sent its FIN before finishing the handshake; the socket is being destroyed. */
  ended(): void;
}

/**
 * Decrypts one accepted connection. The TLSSocket is built on the raw socket
 * (not by tls.Server) so wstap keeps the raw one: the TLSSocket's own
 * resetAndDestroy() throws ERR_INVALID_HANDLE_TYPE (its handle is a TLSWrap),
 * while the socket under it can still send an RST (the listener layers the
 * one on the other, tcp-beneath.ts). allowHalfOpen is the raw socket's.
 */
export function terminateTls(raw: net.Socket, context: tls.SecureContext, alpn: string[] | undefined): tls.TLSSocket {
  return new tls.TLSSocket(raw, { isServer: true, secureContext: context, ...(alpn ? { ALPNProtocols: alpn } : {}) });
}

/**
 * Follows the handshake of a socket from terminateTls and does for it what
 * tls.Server would: a deadline, and after the handshake, TLS errors (a bad
 * record) turned into the socket's 'error'. Without a server, Node keeps the
 * TLSSocket's errors after the handshake to an internal '_tlsError' event
 * (tls.Server "releases control" to make them plain errors) and the socket
 * would stay open, silently broken.
 */
export function watchHandshake(socket: tls.TLSSocket, timeoutMs: number, watch: HandshakeWatch): void {
  let settled = false;
  const settle = (): void => {
    settled = true;
    clearTimeout(timer);
    socket.removeListener('error', onError);
    socket.removeListener('end', onEnd);
  };
  const onError = (err: NodeJS.ErrnoException): void => {
    if (settled) return;
    settle();
    watch.failed(err);
    socket.destroy();
  };
  const onEnd = (): void => {
    if (settled) return;
    settle();
    watch.ended();
    socket.destroy();
  };
  const timer = setTimeout(() => {
    const err: NodeJS.ErrnoException = new Error(`TLS handshake not done within ${timeoutMs / 1000} s`);
    err.code = 'ERR_TLS_HANDSHAKE_TIMEOUT';
    onError(err);
  }, timeoutMs);
  timer.unref();
  socket.on('error', onError);
  socket.once('end', onEnd);
  socket.once('close', settle);
  socket.once('secure', () => {
    if (settled) return;
    settle();
    socket.on('_tlsError', (err: Error) => {
      if (!socket.destroyed) socket.destroy(err);
    });
    watch.secure();
  });
}
