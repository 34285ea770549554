import type net from 'node:net';

/*
 * Which TCP socket carries a stream, for passing an RST on. Node resets only
 * a socket whose own handle is TCP: resetAndDestroy() on a TLS socket (its
 * handle is a TLSWrap) or a unix socket throws ERR_INVALID_HANDLE_TYPE, which
 * inside a socket handler would take the process down. The listener (TLS
 * termination) and the upstream dialer (TLS to the app) each layer a TLS
 * socket on a TCP socket they made; they say so here, and resetOrDestroy
 * (duplex-relay.ts) sends the RST on the TCP socket beneath. Kept beside the
 * socket rather than passed through every relay: it is read only on the rare
 * reset path, and any code holding the stream finds it.
 */
const beneath = new WeakMap<net.Socket, net.Socket>();

/** `stream` (a TLS socket) runs over `tcp`. */
export function layerOn(stream: net.Socket, tcp: net.Socket): void {
  if (stream !== tcp) beneath.set(stream, tcp);
}

/** The TCP socket under `stream`: `stream` itself unless something was layered on one. */
export function tcpBeneath(stream: net.Socket): net.Socket {
  return beneath.get(stream) ?? stream;
}
