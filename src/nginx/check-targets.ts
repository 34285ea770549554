import type { ConfigLevel, HttpModel, LocationModel, ServerModel } from './location-model.js';
import { PASS_DIRECTIVES } from './location-model.js';
import { arrayInForce, headerIn } from './location-effective.js';
import { normalizeUri, selectLocation } from './location-select.js';
import { positionText } from './config-ast.js';

/**
 * Which locations carry WebSockets, and which rule picked each: with
 * `--path URI`, the one nginx would choose for the URI in every server;
 * without, every proxying location with an Upgrade header in force, plus
 * the proxying ones whose path looks like a WebSocket endpoint; when neither finds any, every
 * proxying location (a config that forgot the headers is the usual case).
 */

export interface WebSocketTarget {
  server: ServerModel;
  /** null: no location matched the path; the server level applies. */
  location: LocationModel | null;
  /** Why this one: "--path /ws: longest matching prefix (/)", "sets an Upgrade header", ... */
  why: string;
  /** The --path URIs that chose it (none for the heuristics). */
  paths: string[];
  /** nginx answers such a handshake 301 (auto_redirect) instead of proxying it. */
  redirect: boolean;
  /** Regex locations not evaluated here that might have been chosen instead. */
  uncertain: string[];
}

/** A location name that reads like a WebSocket endpoint. */
const WEBSOCKET_PATH = /(^|[/_.-])(ws|wss|websockets?|socket\.io|sockjs|cable|signalr|realtime)([/_.$-]|$)/i;

export function levelOf(target: { server: ServerModel; location: LocationModel | null }): ConfigLevel {
  return target.location?.level ?? target.server.level;
}

export function chooseWebSocketTargets(model: HttpModel, paths: readonly string[]): WebSocketTarget[] {
  if (paths.length > 0) return byPaths(model, paths);
  const all = model.servers.flatMap((server) => allLocations(server.locations).map((location) => ({ server, location })));
  const picked: WebSocketTarget[] = [];
  for (const { server, location } of all) {
    if (location.modifier === '@') continue;
    const upgrade = headerIn(arrayInForce(location.level, 'proxy_set_header').directives, 'Upgrade');
    const proxies = location.level.directives.some((d) => d.name === 'proxy_pass');
    if (upgrade && proxies) {
      picked.push(target(server, location, `sets an Upgrade header (${positionText(upgrade.pos)})`));
    } else if (proxies && WEBSOCKET_PATH.test(location.name)) {
      picked.push(target(server, location, 'its path looks like a WebSocket endpoint'));
    }
  }
  if (picked.length > 0) return picked;
  return all
    .filter(({ location }) => location.modifier !== '@' && location.level.directives.some((d) => PASS_DIRECTIVES.includes(d.name)))
    .map(({ server, location }) => target(server, location, 'it proxies, and no location sets an Upgrade header or looks like a WebSocket endpoint (name one with --path)'));
}

function byPaths(model: HttpModel, paths: readonly string[]): WebSocketTarget[] {
  const out: WebSocketTarget[] = [];
  for (const server of model.servers) {
    for (const path of paths) {
      const uri = normalizeUri(path);
      const choice = selectLocation(server, uri);
      const same = out.find((t) => t.server === server && t.location === choice.location && t.redirect === choice.redirect);
      if (same) {
        same.paths.push(path);
        continue;
      }
      out.push({
        server,
        location: choice.location,
        why: `--path ${path}: ${choice.rule}`,
        paths: [path],
        redirect: choice.redirect,
        uncertain: choice.uncertain,
      });
    }
  }
  return out;
}

function target(server: ServerModel, location: LocationModel, why: string): WebSocketTarget {
  return { server, location, why, paths: [], redirect: false, uncertain: [] };
}

function allLocations(locations: LocationModel[]): LocationModel[] {
  return locations.flatMap((l) => [l, ...allLocations(l.children)]);
}
