import { positionText, type SourcePosition } from './config-ast.js';
import { FALLBACK_ERROR_LOG, finding, versionAtLeast, type CheckContext, type NginxFinding } from './check-finding.js';
import { arrayInForce, formatNginxTime, parseNginxTime, settingInForce } from './location-effective.js';
import type { ConfigLevel } from './location-model.js';

/**
 * Settings of the location in force that break or cut upgraded connections,
 * each read the way nginx reads it (defaults from ngx_http_proxy_module.c
 * and ngx_http_upstream.c).
 */

/** nginx 1.29.7 made HTTP/1.1 the default for proxying (commit 6bb27a631, "Proxy: enabled HTTP/1.1 by default"). */
const HTTP11_DEFAULT_SINCE = [1, 29, 7] as const;

export function httpVersionFindings(level: ConfigLevel, where: string, anchor: SourcePosition, context: CheckContext): NginxFinding[] {
  const set = settingInForce(level, 'proxy_http_version');
  const value = set?.directive.args[0]?.value;
  if (value === '1.1') return [];
  const fix = 'proxy_http_version 1.1;';
  if (set) {
    return [finding('nginx.http-version', 'error', set.directive.pos, where, `proxy_http_version ${value}: an HTTP/1.0 request cannot be upgraded, so the WebSocket handshake never reaches the app as one`, fix)];
  }
  const version = context.nginxVersion;
  if (version !== null && versionAtLeast(version, HTTP11_DEFAULT_SINCE)) return [];
  const whose = version === null ? 'nginx before 1.29.7 proxies with HTTP/1.0 by default (version unknown here: pass --nginx-version)' : `nginx ${version} proxies with HTTP/1.0 by default (HTTP/1.1 only from 1.29.7)`;
  return [finding('nginx.http-version', 'error', anchor, where, `proxy_http_version is not set: ${whose}, and an HTTP/1.0 request cannot be upgraded`, fix)];
}

/**
 * proxy_read_timeout (default 60 s) on an upgraded connection is re-armed by
 * traffic either way (ngx_http_upstream_process_upgraded): a heartbeat at
 * least as long races it or loses.
 */
export function readTimeoutFindings(level: ConfigLevel, where: string, anchor: SourcePosition, context: CheckContext): NginxFinding[] {
  const heartbeat = context.heartbeat;
  if (!heartbeat) return [];
  const set = settingInForce(level, 'proxy_read_timeout');
  const seconds = set ? parseNginxTime(set.directive.args[0]?.value ?? '') : 60;
  if (seconds === null || seconds > heartbeat.interval) return [];
  const pinger = heartbeat.from === 'upstream' ? 'the app pings' : 'the client pings';
  const written = set ? `proxy_read_timeout ${set.directive.args[0]?.value}` : 'proxy_read_timeout (not set: 60s)';
  const outcome = seconds === heartbeat.interval ? 'they race: when the timeout fires first, nginx closes both sides (FIN, no close frame)' : 'a connection with nothing else to say is closed by nginx (FIN, no close frame) before the next ping';
  return [
    finding(
      'nginx.read-timeout',
      seconds === heartbeat.interval ? 'warning' : 'error',
      set?.directive.pos ?? anchor,
      where,
      `${written} is not longer than the heartbeat (${pinger} every ${formatNginxTime(heartbeat.interval)}, profile ${heartbeat.profile}): ${outcome}`,
      `proxy_read_timeout ${formatNginxTime(heartbeat.interval * 2)};  (at least twice the heartbeat)`,
    ),
  ];
}

/**
 * proxy_send_timeout and send_timeout are armed on an upgraded connection
 * only while a write is blocked (a peer not reading): set shorter than the
 * read timeout, they cut a slow reader first. Worth knowing, not a fault.
 */
export function sendTimeoutFindings(level: ConfigLevel, where: string): NginxFinding[] {
  const read = settingInForce(level, 'proxy_read_timeout');
  const readSeconds = read ? parseNginxTime(read.directive.args[0]?.value ?? '') : 60;
  if (readSeconds === null) return [];
  const out: NginxFinding[] = [];
  for (const [name, peer] of [
    ['proxy_send_timeout', 'the app'],
    ['send_timeout', 'the client'],
  ] as const) {
    const set = settingInForce(level, name);
    const seconds = set ? parseNginxTime(set.directive.args[0]?.value ?? '') : null;
    if (!set || seconds === null || seconds >= readSeconds) continue;
    out.push(
      finding(
        'nginx.send-timeout',
        'info',
        set.directive.pos,
        where,
        `${name} ${set.directive.args[0]?.value} is shorter than proxy_read_timeout ${formatNginxTime(readSeconds)}: when ${peer} stops reading for that long, nginx closes the upgraded connection (wstap shows the paused side as evidence)`,
        `${name} ${formatNginxTime(readSeconds)};  (if slow readers are expected)`,
      ),
    );
  }
  return out;
}

const LOG_LEVELS = ['debug', 'info', 'notice', 'warn', 'error', 'crit', 'alert', 'emerg'];

/**
 * nginx logs "upstream timed out ... while proxying upgraded connection" and
 * "client timed out" at info (ngx_connection_error on a client connection,
 * log_error NGX_ERROR_INFO): an error log above info never has them.
 */
export function errorLogFindings(level: ConfigLevel, where: string, anchor: SourcePosition, context: CheckContext): NginxFinding[] {
  const logs = arrayInForce(level, 'error_log');
  const levels = logs.directives.map((d) => ({ d, level: d.args[1]?.value ?? 'error' }));
  if (levels.some((l) => LOG_LEVELS.indexOf(l.level) !== -1 && LOG_LEVELS.indexOf(l.level) <= 1)) return [];
  const first = levels[0];
  const defaultLog = context.defaultErrorLog ?? FALLBACK_ERROR_LOG;
  const current = first ? `error_log ${first.d.args[0]?.value} ${first.level} (${positionText(first.d.pos)})` : `nginx's default error_log ${defaultLog} (level error)`;
  const file = first?.d.args[0]?.raw ?? defaultLog;
  return [
    finding(
      'nginx.error-log-level',
      'info',
      first?.d.pos ?? anchor,
      where,
      `the error log in force is ${current}, above info: nginx's own "upstream timed out" and "client timed out" lines for upgraded connections are never written`,
      `error_log ${file} info;  (in this location; --plan adds it)`,
    ),
  ];
}

/**
 * On a reload, nginx's old workers keep every upgraded connection open
 * until it closes, unless worker_shutdown_timeout is set: then they close
 * what is left when it expires (ngx_set_shutdown_timer). A wave of closes
 * by nginx after each reload comes from here.
 */
export function workerShutdownFindings(main: ConfigLevel): NginxFinding[] {
  const set = main.directives.find((d) => d.name === 'worker_shutdown_timeout');
  if (!set) return [];
  return [
    finding(
      'nginx.worker-shutdown-timeout',
      'info',
      set.pos,
      'main',
      `worker_shutdown_timeout ${set.args[0]?.value ?? ''}: after every reload, nginx closes the WebSocket connections still open on its old workers when this expires`,
      'expect closes by nginx that long after each reload; raise it (or remove it) if clients should not see them',
    ),
  ];
}
