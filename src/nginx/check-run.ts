import { finding, sortFindings, type CheckContext, type NginxFinding } from './check-finding.js';
import { headerFindings } from './check-headers.js';
import { errorLogFindings, httpVersionFindings, readTimeoutFindings, sendTimeoutFindings, workerShutdownFindings } from './check-settings.js';
import { chooseWebSocketTargets, levelOf, type WebSocketTarget } from './check-targets.js';
import { locationLabel, PASS_DIRECTIVES, type HttpModel } from './location-model.js';
import { readProxyPass } from './location-upstream.js';
import type { ConfigDirective } from './config-ast.js';

/**
 * `nginx-check`'s verdicts: the WebSocket locations (check-targets.ts) and,
 * for each, the findings of the configuration in force there.
 */

export interface CheckReport {
  targets: WebSocketTarget[];
  findings: NginxFinding[];
}

export function checkConfig(model: HttpModel, paths: readonly string[], context: CheckContext): CheckReport {
  const targets = chooseWebSocketTargets(model, paths);
  const once = targets.length > 0 ? workerShutdownFindings(model.main) : [];
  return { targets, findings: sortFindings([...once, ...targets.flatMap((t) => targetFindings(model, t, context))]) };
}

export function targetWhere(t: WebSocketTarget): string {
  return `${locationLabel(t.server, t.location)}${t.paths.length > 0 ? ` (for ${t.paths.join(', ')})` : ''}`;
}

function targetFindings(model: HttpModel, t: WebSocketTarget, context: CheckContext): NginxFinding[] {
  const where = targetWhere(t);
  const level = levelOf(t);
  const block = (t.location?.level.directive ?? t.server.level.directive) as ConfigDirective;
  const out: NginxFinding[] = t.uncertain.map((why) => finding('nginx.location-uncertain', 'info', block.pos, where, why, 'check the choice with a request to nginx itself'));
  if (t.redirect) {
    const uri = t.paths[0] ?? '';
    out.push(
      finding(
        'nginx.handshake-redirect',
        'error',
        block.pos,
        where,
        `nginx answers ${uri} with a 301 to ${uri}/ (this location's name ends in "/" and it proxies): a WebSocket client does not follow redirects, so the handshake fails`,
        `add an exact location for the path: location = ${uri} { ... the same proxy settings ... }`,
      ),
    );
    return out;
  }
  const pass = level.directives.find((d) => PASS_DIRECTIVES.includes(d.name));
  if (!pass || pass.name !== 'proxy_pass') {
    const what = pass ? `${pass.name} cannot carry an upgraded connection (only proxy_pass can)` : 'it has no proxy_pass: nginx answers the handshake itself';
    out.push(finding('nginx.no-proxy-pass', 'error', pass?.pos ?? block.pos, where, `${t.why}; ${what}`, 'proxy_pass http://UPSTREAM;  (with the WebSocket headers and proxy_http_version 1.1)'));
    return out;
  }
  const reading = readProxyPass(pass.args[0]?.value ?? '', model);
  const target = reading.ok ? reading.target : null;
  out.push(
    ...httpVersionFindings(level, where, pass.pos, context),
    ...headerFindings(model, level, where, pass.pos, target, context),
    ...readTimeoutFindings(level, where, pass.pos, context),
    ...sendTimeoutFindings(level, where),
    ...errorLogFindings(level, where, pass.pos, context),
  );
  return out;
}
