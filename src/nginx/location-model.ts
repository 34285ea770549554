import { ConfigError, expandIncludes, type ConfigDirective, type LoadedConfig } from './config-ast.js';

/**
 * The configuration's levels as nginx's http module sees them: main, http,
 * each server, each location (nested ones under their parent), with the
 * directives written at each level (includes resolved). Location names and
 * modifiers are read as ngx_http_core_location reads them.
 */

export type LevelKind = 'main' | 'http' | 'server' | 'location';

export interface ConfigLevel {
  kind: LevelKind;
  /** The block's own directive (null for main). */
  directive: ConfigDirective | null;
  /** The directives written at this level, includes resolved. */
  directives: ConfigDirective[];
  parent: ConfigLevel | null;
}

export type LocationModifier = '=' | '^~' | '~' | '~*' | '' | '@';

export interface LocationModel {
  level: ConfigLevel;
  modifier: LocationModifier;
  /** The prefix, the exact URI, the regex source or the @name. */
  name: string;
  /** For `~` and `~*`: the pattern as a JavaScript RegExp, or null when it has no JavaScript equivalent. */
  regex: RegExp | null;
  /** Why a regex could not be evaluated here (PCRE-only syntax). */
  regexProblem?: string;
  children: LocationModel[];
  parent: LocationModel | null;
  server: ServerModel;
  /** A `*_pass` handler is set here: nginx answers a URI one `/` short with a 301 (auto_redirect). */
  autoRedirect: boolean;
}

export interface ServerModel {
  level: ConfigLevel;
  /** `server_name`s and `listen`s, for saying which server a finding is about. */
  names: string[];
  listens: string[];
  locations: LocationModel[];
}

export interface HttpModel {
  main: ConfigLevel;
  http: ConfigLevel | null;
  servers: ServerModel[];
  /** `upstream NAME { }` blocks of the http level, by name. */
  upstreams: Map<string, ConfigDirective>;
  /** `map $source $variable { }` blocks of the http level, by the variable they define (without `$`). */
  maps: Map<string, ConfigDirective>;
}

/** Directives that make a location a handler location, each of which sets auto_redirect for a name ending in `/`. */
export const PASS_DIRECTIVES = ['proxy_pass', 'fastcgi_pass', 'uwsgi_pass', 'scgi_pass', 'grpc_pass', 'memcached_pass'];

export function buildHttpModel(config: LoadedConfig): HttpModel {
  const main: ConfigLevel = { kind: 'main', directive: null, directives: expandIncludes(config.directives), parent: null };
  const httpDirective = main.directives.find((d) => d.name === 'http' && d.block);
  const model: HttpModel = { main, http: null, servers: [], upstreams: new Map(), maps: new Map() };
  if (!httpDirective?.block) return model;
  const http: ConfigLevel = { kind: 'http', directive: httpDirective, directives: expandIncludes(httpDirective.block), parent: main };
  model.http = http;
  for (const d of http.directives) {
    if (d.name === 'upstream' && d.block && d.args[0]) model.upstreams.set(d.args[0].value, d);
    if (d.name === 'map' && d.block && d.args[1]) model.maps.set(d.args[1].value.replace(/^\$/, ''), d);
    if (d.name === 'server' && d.block) model.servers.push(buildServer(d, http));
  }
  return model;
}

function buildServer(directive: ConfigDirective, http: ConfigLevel): ServerModel {
  const level: ConfigLevel = { kind: 'server', directive, directives: expandIncludes(directive.block ?? []), parent: http };
  const server: ServerModel = {
    level,
    names: level.directives.filter((d) => d.name === 'server_name').flatMap((d) => d.args.map((a) => a.value)),
    listens: level.directives.filter((d) => d.name === 'listen').map((d) => d.args[0]?.value ?? ''),
    locations: [],
  };
  server.locations = buildLocations(level, server, null);
  return server;
}

function buildLocations(parentLevel: ConfigLevel, server: ServerModel, parent: LocationModel | null): LocationModel[] {
  return parentLevel.directives
    .filter((d) => d.name === 'location' && d.block)
    .map((d) => {
      const level: ConfigLevel = { kind: 'location', directive: d, directives: expandIncludes(d.block ?? []), parent: parentLevel };
      const { modifier, name } = locationName(d);
      const location: LocationModel = {
        level,
        modifier,
        name,
        regex: null,
        children: [],
        parent,
        server,
        autoRedirect: name.endsWith('/') && level.directives.some((x) => PASS_DIRECTIVES.includes(x.name)),
      };
      if (modifier === '~' || modifier === '~*') {
        const compiled = compileLocationRegex(name, modifier === '~*');
        if ('regex' in compiled) location.regex = compiled.regex;
        else location.regexProblem = compiled.problem;
      }
      location.children = buildLocations(level, server, location);
      return location;
    });
}

/** `location [=|~|~*|^~] NAME`, and the one-word forms `=/x`, `~regex`, `^~/x` (ngx_http_core_location). */
function locationName(d: ConfigDirective): { modifier: LocationModifier; name: string } {
  const [first, second] = d.args;
  if (!first) throw ConfigError.at(d.pos, 'invalid number of arguments in "location" directive');
  if (second) {
    const mod = first.value;
    if (mod === '=' || mod === '^~' || mod === '~' || mod === '~*') return { modifier: mod, name: second.value };
    throw ConfigError.at(first.pos, `invalid location modifier "${mod}"`);
  }
  const v = first.value;
  if (v.startsWith('=')) return { modifier: '=', name: v.slice(1) };
  if (v.startsWith('^~')) return { modifier: '^~', name: v.slice(2) };
  if (v.startsWith('~*')) return { modifier: '~*', name: v.slice(2) };
  if (v.startsWith('~')) return { modifier: '~', name: v.slice(1) };
  if (v.startsWith('@')) return { modifier: '@', name: v };
  return { modifier: '', name: v };
}

/** A PCRE location pattern as a JavaScript RegExp: named groups `(?P<n>` rewritten, a leading `(?i)` as the i flag. */
export function compileLocationRegex(source: string, caseless: boolean): { regex: RegExp } | { problem: string } {
  let pattern = source.replace(/\(\?P<(\w+)>/g, '(?<$1>');
  let flags = caseless ? 'i' : '';
  if (pattern.startsWith('(?i)')) {
    pattern = pattern.slice(4);
    flags = 'i';
  }
  if (/\(\?[>|]|[*+?}]\+|\\[AZzG]|\(\?[a-zA-Z]+\)|\(\?#/.test(pattern)) {
    return { problem: `the regex "${source}" uses PCRE syntax JavaScript lacks; which location nginx picks for a URI it matches is not decided here` };
  }
  try {
    return { regex: new RegExp(pattern, flags) };
  } catch (err) {
    return { problem: `the regex "${source}" could not be evaluated here (${(err as Error).message})` };
  }
}

/** `server_name` (or its listen address) and the location, as a person names them: `server example.com location /ws`. */
export function locationLabel(server: ServerModel, location: LocationModel | null): string {
  const serverText = server.names[0] && server.names[0] !== '_' ? server.names[0] : `(listen ${server.listens[0] ?? '80'})`;
  const where = location ? `location ${location.modifier ? `${location.modifier} ` : ''}${location.name}` : 'server level';
  return `server ${serverText} ${where}`;
}

/** From the level up to main: the order nginx merges settings in, innermost first. */
export function levelChain(level: ConfigLevel): ConfigLevel[] {
  const chain: ConfigLevel[] = [];
  for (let l: ConfigLevel | null = level; l; l = l.parent) chain.push(l);
  return chain;
}
