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

/** Opens the upstream socket; half-open kept so a FIN can be passed on as a FIN. */
export function connectUpstream(target: Target, options: UpstreamConnectOptions): net.Socket {
  if (target.tls) {
    // tls.connect passes allowHalfOpen on to the TLSSocket; @types/node omits it.
    const tlsOptions: tls.ConnectionOptions & { allowHalfOpen: boolean } = {
      host: target.host,
      port: target.port,
      servername: net.isIP(target.host) ? undefined : target.host,
      rejectUnauthorized: !options.insecure,
      allowHalfOpen: true,
      ALPNProtocols: ['http/1.1'],
    };
    return tls.connect(tlsOptions);
  }
  return net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
}
