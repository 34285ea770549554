import net from 'node:net';
import tls from 'node:tls';

export interface Target {
  /** As the user wrote it, normalised: `http://127.0.0.1:8065`. */
  href: string;
  protocol: 'http:' | 'https:' | 'tcp:';
  host: string;
  port: number;
  tls: boolean;
  /** http-proxy's target: ws/wss are forwarded as http/https. */
  httpBase: string;
}

export class TargetError extends Error {
  readonly code = 'WSTAP_BAD_TARGET';
}

const DEFAULT_PORT: Record<string, number> = { 'http:': 80, 'ws:': 80, 'https:': 443, 'wss:': 443 };

/**
 * Accepts http://, https://, ws://, wss:// (and tcp:// or host:port for the raw
 * TCP mode). A path on the target is refused: wstap forwards paths unchanged,
 * and silently prefixing one would change what the app sees.
 */
export function parseTarget(text: string, mode: 'http' | 'tcp'): Target {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `${mode === 'tcp' ? 'tcp' : 'http'}://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new TargetError(`target "${text}" is not a URL (expected e.g. http://127.0.0.1:8065)`);
  }
  const scheme = url.protocol;
  if (!['http:', 'https:', 'ws:', 'wss:', 'tcp:'].includes(scheme)) {
    throw new TargetError(`target "${text}": scheme ${scheme} is not one of http, https, ws, wss, tcp`);
  }
  if (mode === 'tcp' && scheme !== 'tcp:' && scheme !== 'http:' && scheme !== 'https:') {
    throw new TargetError(`target "${text}": --tcp takes host:port or tcp://host:port`);
  }
  if (mode === 'http' && scheme === 'tcp:') {
    throw new TargetError(`target "${text}": tcp:// targets need --tcp`);
  }
  if (url.pathname !== '/' && url.pathname !== '' || url.search || url.hash) {
    throw new TargetError(`target "${text}": a path or query is not supported; wstap forwards request paths unchanged`);
  }
  if (url.username || url.password) throw new TargetError(`target "${text}": credentials in the target are not supported`);
  const isTls = scheme === 'https:' || scheme === 'wss:';
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const defaultPort = DEFAULT_PORT[scheme];
  const port = url.port ? Number(url.port) : defaultPort;
  if (port === undefined || port === 0) throw new TargetError(`target "${text}": a port is required`);
  const protocol = scheme === 'tcp:' ? 'tcp:' : isTls ? 'https:' : 'http:';
  const hostPart = net.isIPv6(host) ? `[${host}]` : host;
  return {
    href: `${protocol}//${hostPart}:${port}`,
    protocol,
    host,
    port,
    tls: isTls,
    httpBase: `${isTls ? 'https' : 'http'}://${hostPart}:${port}`,
  };
}

export interface UpstreamConnectOptions {
  /** Skip certificate verification (--insecure). */
  insecure: boolean;
}

/** An upstream connection: the socket bytes are relayed on, and the TCP socket under it. */
export interface UpstreamConnection {
  /** The TLS socket for an https/wss target, else the TCP socket itself. */
  stream: net.Socket;
  /** Where an RST is sent: a TLSSocket cannot be reset (ERR_INVALID_HANDLE_TYPE), the TCP socket under it can. */
  tcp: net.Socket;
  /** The event that says `stream` is ready: `secureConnect` (TLS handshake done) or `connect`. */
  readyEvent: 'connect' | 'secureConnect';
}

/**
 * Opens the upstream; half-open kept so a FIN can be passed on as a FIN. For
 * TLS we dial the TCP socket ourselves and wrap it, so the relay holds the
 * TCP socket for an RST, and the TLS socket (which takes allowHalfOpen from
 * it) sends close_notify + FIN on end() and still reads afterwards.
 */
export function connectUpstream(target: Target, options: UpstreamConnectOptions): UpstreamConnection {
  const tcp = net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
  if (!target.tls) return { stream: tcp, tcp, readyEvent: 'connect' };
  const stream = tls.connect({
    socket: tcp,
    // With a socket given, host is used only to check the certificate's name.
    host: target.host,
    servername: net.isIP(target.host) ? undefined : target.host,
    rejectUnauthorized: !options.insecure,
    ALPNProtocols: ['http/1.1'],
  });
  return { stream, tcp, readyEvent: 'secureConnect' };
}
