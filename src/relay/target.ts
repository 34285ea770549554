import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { layerOn } from './tcp-beneath.js';

export interface Target {
  /** As the user wrote it, normalised: `http://127.0.0.1:8065`, `unix:/run/app.sock`. */
  href: string;
  protocol: 'http:' | 'https:' | 'tcp:';
  /** For a unix socket target: `localhost` and 80, which only http-proxy's bookkeeping sees (the Host header is the client's). */
  host: string;
  port: number;
  tls: boolean;
  /** http-proxy's target: ws/wss are forwarded as http/https. */
  httpBase: string;
  /** A unix socket target (`unix:/path/app.sock`, as nginx's `proxy_pass http://unix:/path:`): dialled instead of host and port. */
  socketPath?: string;
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
  if (/^unix:/i.test(text)) return parseUnixTarget(text, mode);
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

/**
 * `unix:PATH`: plain HTTP and WebSocket (or raw bytes with --tcp) to an app
 * on a unix socket. A relative path is taken from the working directory and
 * shown absolute; nginx's trailing colon (`unix:/path:`) is allowed.
 */
function parseUnixTarget(text: string, mode: 'http' | 'tcp'): Target {
  const given = text.slice('unix:'.length).replace(/:$/, '');
  if (given === '') throw new TargetError(`target "${text}": a socket path is required (e.g. unix:/run/app.sock)`);
  if (given.includes('\0')) throw new TargetError(`target "${text}": a socket path cannot contain a NUL byte`);
  const socketPath = path.resolve(given);
  return {
    href: `unix:${socketPath}`,
    protocol: mode === 'tcp' ? 'tcp:' : 'http:',
    host: 'localhost',
    port: 80,
    tls: false,
    httpBase: 'http://localhost:80',
    socketPath,
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
  /** The TCP socket under `stream` (the same socket unless TLS; tcp-beneath.ts knows it too, for an RST). */
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
  if (target.socketPath !== undefined) {
    const socket = net.connect({ path: target.socketPath, allowHalfOpen: true });
    return { stream: socket, tcp: socket, readyEvent: 'connect' };
  }
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
  layerOn(stream, tcp);
  return { stream, tcp, readyEvent: 'secureConnect' };
}
