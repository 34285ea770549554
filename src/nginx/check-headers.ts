import { expandIncludes, positionText, type ConfigDirective, type SourcePosition } from './config-ast.js';
import { finding, type CheckContext, type NginxFinding } from './check-finding.js';
import { arrayInForce, headerIn } from './location-effective.js';
import type { ConfigLevel, HttpModel } from './location-model.js';
import type { ProxyPassTarget } from './location-upstream.js';

/**
 * The request headers a WebSocket handshake needs from nginx: nginx sends
 * the upstream neither the client's Upgrade nor its Connection header (both
 * are hop-by-hop; ngx_http_proxy_headers sets `Connection: close`), so a
 * location must set them itself, and nginx keeps a level's own
 * `proxy_set_header` list only, dropping every inherited one.
 */

export const UPGRADE_FIX = 'proxy_set_header Upgrade $http_upgrade;';
export const CONNECTION_FIX = 'proxy_set_header Connection $connection_upgrade;  (with: map $http_upgrade $connection_upgrade { default upgrade; \'\' \'\'; })';

export function headerFindings(model: HttpModel, level: ConfigLevel, where: string, anchor: SourcePosition, pass: ProxyPassTarget | null, context: CheckContext): NginxFinding[] {
  const out: NginxFinding[] = [];
  const headers = arrayInForce(level, 'proxy_set_header');
  const upgrade = headerIn(headers.directives, 'Upgrade');
  const connection = headerIn(headers.directives, 'Connection');
  const droppedHere = (name: string): ConfigDirective | undefined => headerIn(headers.dropped, name);
  const dropped = [!upgrade && droppedHere('Upgrade'), !connection && droppedHere('Connection')].filter((d): d is ConfigDirective => Boolean(d));
  const ownFirst = headers.directives[0];
  if (dropped.length > 0 && ownFirst) {
    const names = dropped.map((d) => `${d.args[0]?.value} (${positionText(d.pos)})`).join(' and ');
    out.push(
      finding(
        'nginx.header-inheritance',
        'error',
        ownFirst.pos,
        where,
        `this level's own proxy_set_header drops the inherited ${names}: nginx inherits proxy_set_header only into a level that sets none`,
        `repeat them here: ${dropped.map((d) => `proxy_set_header ${d.args.map((a) => a.raw).join(' ')};`).join(' ')}`,
      ),
    );
  }
  if (!upgrade && !droppedHere('Upgrade')) {
    out.push(finding('nginx.missing-upgrade-header', 'error', anchor, where, 'no proxy_set_header Upgrade in force: nginx does not pass the client\'s Upgrade header on, so the app never sees a WebSocket handshake', UPGRADE_FIX));
  } else if (upgrade && !upgradeValueWorks(model, upgrade.args[1]?.value ?? '')) {
    out.push(finding('nginx.missing-upgrade-header', 'error', upgrade.pos, where, `proxy_set_header Upgrade "${upgrade.args[1]?.value ?? ''}" does not pass the client's Upgrade header on`, UPGRADE_FIX));
  }
  if (!connection && !droppedHere('Connection')) {
    out.push(finding('nginx.missing-connection-header', 'error', anchor, where, 'no proxy_set_header Connection in force: nginx sends "Connection: close", so the app refuses or ignores the upgrade', CONNECTION_FIX));
  } else if (connection && !connectionValueWorks(model, connection.args[1]?.value ?? '')) {
    out.push(finding('nginx.missing-connection-header', 'error', connection.pos, where, `proxy_set_header Connection "${connection.args[1]?.value ?? ''}" never says "upgrade"`, CONNECTION_FIX));
  }
  if (connection) out.push(...keepaliveFindings(model, connection, pass, where));
  for (const name of context.requiredHeaders) {
    if (headerIn(headers.directives, name)) continue;
    const wasDropped = headerIn(headers.dropped, name);
    const why = name.toLowerCase() === 'host' ? 'nginx sends Host: $proxy_host (the upstream\'s name), not the client\'s' : 'nginx does not send it by default';
    out.push(
      finding(
        'nginx.missing-required-header',
        'warning',
        anchor,
        where,
        `the profile says the app needs ${name}, and no proxy_set_header ${name} is in force${wasDropped ? ` (the one at ${positionText(wasDropped.pos)} is dropped by this level's own proxy_set_header)` : ''}: ${why}`,
        `proxy_set_header ${name} ${REQUIRED_VALUES[name.toLowerCase()] ?? '...'};`,
      ),
    );
  }
  return out;
}

const REQUIRED_VALUES: Record<string, string> = { host: '$host', 'x-forwarded-for': '$proxy_add_x_forwarded_for', 'x-forwarded-proto': '$scheme', 'x-real-ip': '$remote_addr' };

/** `$http_upgrade`, a variable mapped from it, or a literal `websocket`. */
function upgradeValueWorks(model: HttpModel, value: string): boolean {
  if (value.includes('$http_upgrade') || /websocket/i.test(value)) return true;
  return variablesOf(value).some((v) => mapSource(model, v) === '$http_upgrade');
}

/** A literal containing `upgrade`, the client's own `$http_connection`, or a map from `$http_upgrade` with an `upgrade` value. */
function connectionValueWorks(model: HttpModel, value: string): boolean {
  if (/upgrade/i.test(value.replace(/\$\{?\w+\}?/g, '')) || value.includes('$http_connection')) return true;
  return variablesOf(value).some((v) => {
    const map = model.maps.get(v);
    return map !== undefined && mapSource(model, v) === '$http_upgrade' && expandIncludes(map.block ?? []).some((e) => /upgrade/i.test(e.args[0]?.value ?? ''));
  });
}

/**
 * `map $http_upgrade $connection_upgrade { default upgrade; '' close; }`
 * used where the upstream block has `keepalive`: every plain request then
 * sends `Connection: close` and the upstream connection is closed after it.
 */
function keepaliveFindings(model: HttpModel, connection: ConfigDirective, pass: ProxyPassTarget | null, where: string): NginxFinding[] {
  const keepalive = expandIncludes(pass?.upstream?.block ?? []).find((d) => d.name === 'keepalive');
  if (!keepalive) return [];
  for (const variable of variablesOf(connection.args[1]?.value ?? '')) {
    const map = model.maps.get(variable);
    if (!map || mapSource(model, variable) !== '$http_upgrade') continue;
    const entries = expandIncludes(map.block ?? []);
    const plain = entries.find((e) => e.name === '') ?? entries.find((e) => e.name === 'default');
    if (plain && plain.args[0]?.value.toLowerCase() === 'close') {
      return [
        finding(
          'nginx.keepalive-connection-close',
          'warning',
          plain.pos,
          where,
          `$${variable} is "close" for a request without Upgrade, and upstream ${pass?.upstream?.args[0]?.value} keeps connections alive (keepalive at ${positionText(keepalive.pos)}): every plain request closes its upstream connection`,
          `map the empty value to an empty string, so nginx sends no Connection header: ${plain.name === '' ? "''" : 'default'} '';`,
        ),
      ];
    }
  }
  return [];
}

function variablesOf(value: string): string[] {
  return [...value.matchAll(/\$\{?(\w+)\}?/g)].map((m) => m[1] as string);
}

function mapSource(model: HttpModel, variable: string): string | undefined {
  return model.maps.get(variable)?.args[0]?.value;
}
