import type { ConfigDirective } from './config-ast.js';
import { levelChain, type ConfigLevel } from './location-model.js';

/**
 * What is in force at a level, by nginx's merge rules: a plain setting comes
 * from the innermost level that writes it; an array setting such as
 * `proxy_set_header` or `error_log` comes whole from the innermost level that
 * writes any of it, and everything written further out is dropped
 * (ngx_http_proxy_merge_loc_conf: `headers_source` is inherited only when
 * the level has none of its own).
 */

export interface InForce {
  directive: ConfigDirective;
  level: ConfigLevel;
}

/** The innermost directive `name` from the level outwards, or null (nginx's default applies). */
export function settingInForce(level: ConfigLevel, name: string): InForce | null {
  for (const l of levelChain(level)) {
    const directive = l.directives.find((d) => d.name === name);
    if (directive) return { directive, level: l };
  }
  return null;
}

export interface ArrayInForce {
  /** The directives in force, all from one level. */
  directives: ConfigDirective[];
  /** The level they come from (null: none written anywhere, nginx's defaults). */
  level: ConfigLevel | null;
  /** Directives written further out that this level's own hide. */
  dropped: ConfigDirective[];
}

/** An array setting (`proxy_set_header`, `error_log`): the innermost level writing any of it wins whole. */
export function arrayInForce(level: ConfigLevel, name: string): ArrayInForce {
  const chain = levelChain(level);
  for (let i = 0; i < chain.length; i++) {
    const l = chain[i] as ConfigLevel;
    const own = l.directives.filter((d) => d.name === name);
    if (own.length > 0) {
      const dropped = chain.slice(i + 1).flatMap((outer) => outer.directives.filter((d) => d.name === name));
      return { directives: own, level: l, dropped };
    }
  }
  return { directives: [], level: null, dropped: [] };
}

/** The `proxy_set_header NAME VALUE` for a header (case-insensitive) among those in force. */
export function headerIn(set: readonly ConfigDirective[], header: string): ConfigDirective | undefined {
  const wanted = header.toLowerCase();
  return set.find((d) => d.args[0]?.value.toLowerCase() === wanted);
}

const TIME_UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, M: 2592000, y: 31536000 };

/** nginx's time syntax (ngx_parse_time): `60`, `60s`, `1m30s`, `500ms`, `1h 30m`; seconds, or null if nginx would refuse it. */
export function parseNginxTime(text: string): number | null {
  const compact = text.replace(/\s+/g, '');
  if (compact === '') return null;
  if (/^\d+$/.test(compact)) return Number(compact);
  let total = 0;
  let rest = compact;
  while (rest.length > 0) {
    const m = /^(\d+)(ms|s|m|h|d|w|M|y)/.exec(rest);
    if (!m) return null;
    total += Number(m[1]) * (TIME_UNITS[m[2] as string] as number);
    rest = rest.slice(m[0].length);
  }
  return total;
}

/** A duration as the config would write it: `60s`, `120s`, `500ms`. */
export function formatNginxTime(seconds: number): string {
  return Number.isInteger(seconds) ? `${seconds}s` : `${Math.round(seconds * 1000)}ms`;
}
