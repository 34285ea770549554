import { expandIncludes, type ConfigDirective } from './config-ast.js';
import type { HttpModel } from './location-model.js';

/**
 * Where a `proxy_pass` sends requests: `http://HOST[:PORT][/URI]`,
 * `https://...`, `http://unix:/PATH:[/URI]` (ngx_parse_url), or the name of
 * an `upstream` block; with variables, only known per request.
 */
export interface ProxyPassTarget {
  scheme: 'http' | 'https';
  /** The address part as written: `backend`, `127.0.0.1:8065`, `unix:/run/app.sock:`. */
  address: string;
  /** The URI part as written, including its leading `/` (empty when none). */
  uri: string;
  /** HOST or unix path, and port (null: the scheme's default). */
  host: string;
  port: number | null;
  unixPath: string | null;
  /** The `upstream` block the address names, when there is one. */
  upstream: ConfigDirective | null;
}

export type ProxyPassReading = { ok: true; target: ProxyPassTarget } | { ok: false; why: string };

export function readProxyPass(value: string, model: HttpModel): ProxyPassReading {
  if (value.includes('$')) return { ok: false, why: `proxy_pass ${value} uses variables: its upstream is only known per request` };
  const scheme = /^(https?):\/\//i.exec(value);
  if (!scheme) return { ok: false, why: `proxy_pass ${value} has no http:// or https:// prefix` };
  const rest = value.slice(scheme[0].length);
  const kind = (scheme[1] as string).toLowerCase() as 'http' | 'https';
  if (rest.startsWith('unix:')) {
    const colon = rest.indexOf(':', 'unix:'.length);
    const unixPath = colon === -1 ? rest.slice(5) : rest.slice(5, colon);
    const address = colon === -1 ? rest : rest.slice(0, colon + 1);
    return { ok: true, target: { scheme: kind, address, uri: colon === -1 ? '' : rest.slice(colon + 1), host: 'localhost', port: null, unixPath, upstream: null } };
  }
  const slash = rest.indexOf('/');
  const address = slash === -1 ? rest : rest.slice(0, slash);
  const uri = slash === -1 ? '' : rest.slice(slash);
  const hostPort = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(address);
  if (!hostPort) return { ok: false, why: `proxy_pass ${value}: cannot read its address` };
  const host = hostPort[1] as string;
  const port = hostPort[2] !== undefined ? Number(hostPort[2]) : null;
  const upstream = port === null ? (model.upstreams.get(host) ?? null) : null;
  return { ok: true, target: { scheme: kind, address, uri, host, port, unixPath: null, upstream } };
}

/** The first `server` of an upstream block as `HOST:PORT` or `unix:PATH` (port 80/443 by default). */
export function firstUpstreamServer(upstream: ConfigDirective, scheme: 'http' | 'https'): { address: string; count: number } | null {
  const servers = expandIncludes(upstream.block ?? []).filter((d) => d.name === 'server');
  const first = servers[0]?.args[0]?.value;
  if (first === undefined) return null;
  if (first.startsWith('unix:')) return { address: first, count: servers.length };
  const withPort = /:\d+$/.test(first) && !/^\[[^\]]*$/.test(first) ? first : `${first}:${scheme === 'https' ? 443 : 80}`;
  return { address: withPort, count: servers.length };
}

/** wstap's --target for where the proxy_pass went: `http://HOST:PORT`, `https://...`, `unix:/PATH`. */
export function wstapTargetOf(target: ProxyPassTarget): { target: string; note: string | null } | null {
  if (target.unixPath !== null) return { target: `unix:${target.unixPath}`, note: target.scheme === 'https' ? 'the app speaks TLS on a unix socket, which wstap does not dial: check the target' : null };
  if (target.upstream) {
    const first = firstUpstreamServer(target.upstream, target.scheme);
    if (!first) return null;
    const note = first.count > 1 ? `upstream ${target.host} has ${first.count} servers; wstap forwards to the first one only` : null;
    if (first.address.startsWith('unix:')) return { target: first.address, note };
    return { target: `${target.scheme}://${first.address}`, note };
  }
  return { target: `${target.scheme}://${target.host}${target.port !== null ? `:${target.port}` : ''}`, note: null };
}
