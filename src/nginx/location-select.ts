import type { LocationModel, ServerModel } from './location-model.js';

/**
 * The location nginx picks for a URI in a server, by nginx's own rules
 * (src/http/ngx_http_core_module.c, ngx_http_core_find_location and
 * ngx_http_core_find_static_location), level by level:
 * 1. an exact `=` location equal to the URI wins at once (no regex, no nesting);
 * 2. otherwise the longest matching prefix (plain or `^~`) is remembered and
 *    its nested locations are searched the same way;
 * 3. a URI one `/` short of a location with a `*_pass` handler is answered
 *    301 (auto_redirect), unless a location equals the URI itself;
 * 4. unless the remembered prefix is `^~`, the regex locations of the level
 *    are tried in the order they appear; the first match wins (and its own
 *    nested locations are searched);
 * 5. nothing matched: the remembered prefix, or the server level.
 */

export interface LocationChoice {
  /** null: no location matched, the server level's settings apply. */
  location: LocationModel | null;
  /** nginx answers 301 to URI + "/" instead of proxying (auto_redirect). */
  redirect: boolean;
  /** Which rule decided, in words. */
  rule: string;
  /** Regex locations that could not be evaluated here and might have matched. */
  uncertain: string[];
}

type Outcome = 'ok' | 'done' | 'again' | 'declined';

interface Search {
  location: LocationModel | null;
  rule: string;
  uncertain: string[];
}

export function selectLocation(server: ServerModel, uri: string): LocationChoice {
  const search: Search = { location: null, rule: 'no location matches: the server level applies', uncertain: [] };
  const outcome = findLocation(server.locations, uri, search);
  return { location: search.location, redirect: outcome === 'done', rule: search.rule, uncertain: search.uncertain };
}

function findLocation(locations: LocationModel[], uri: string, search: Search): Outcome {
  let outcome = findStatic(locations, uri, search);
  let noRegex = false;
  if (outcome === 'again') {
    const prefix = search.location as LocationModel;
    noRegex = prefix.modifier === '^~';
    outcome = findLocation(prefix.children, uri, search);
  }
  if (outcome === 'ok' || outcome === 'done') return outcome;
  if (noRegex) return outcome;
  for (const candidate of locations) {
    if (candidate.modifier !== '~' && candidate.modifier !== '~*') continue;
    if (candidate.regex === null) {
      search.uncertain.push(candidate.regexProblem ?? `the regex "${candidate.name}" could not be evaluated`);
      continue;
    }
    if (candidate.regex.test(uri)) {
      search.location = candidate;
      search.rule = `the first matching regex location (${candidate.modifier} ${candidate.name})`;
      findLocation(candidate.children, uri, search);
      return 'ok';
    }
  }
  return outcome;
}

function findStatic(locations: LocationModel[], uri: string, search: Search): Outcome {
  const statics = locations.filter((l) => l.modifier === '' || l.modifier === '=' || l.modifier === '^~');
  const exact = statics.find((l) => l.modifier === '=' && l.name === uri);
  if (exact) {
    search.location = exact;
    search.rule = `exact match (= ${exact.name})`;
    return 'ok';
  }
  const inclusive = statics.filter((l) => l.modifier !== '=');
  const equal = inclusive.find((l) => l.name === uri);
  if (!equal) {
    const redirect = statics.find((l) => l.autoRedirect && l.name === `${uri}/`);
    if (redirect) {
      search.location = redirect;
      search.rule = `nginx answers 301 to ${uri}/ (auto_redirect: ${redirect.modifier ? `${redirect.modifier} ` : ''}${redirect.name} has a *_pass handler)`;
      return 'done';
    }
  }
  let longest: LocationModel | undefined = equal;
  if (!longest) {
    for (const l of inclusive) if (uri.startsWith(l.name) && (!longest || l.name.length > longest.name.length)) longest = l;
  }
  if (!longest) return 'declined';
  search.location = longest;
  search.rule = longest.modifier === '^~' ? `longest prefix, ^~ so no regex is tried (^~ ${longest.name})` : `longest matching prefix (${longest.name}), no regex location matched`;
  return 'again';
}

/**
 * A request target as nginx matches it ($uri): the query cut off, `%XX`
 * decoded, `//` merged (merge_slashes on), `.` and `..` segments resolved.
 */
export function normalizeUri(target: string): string {
  let uri = target.split('?')[0] ?? '';
  if (!uri.startsWith('/')) uri = `/${uri}`;
  try {
    uri = decodeURIComponent(uri);
  } catch {
    // A malformed escape: nginx answers 400; match the text as given.
  }
  uri = uri.replace(/\/{2,}/g, '/');
  const out: string[] = [];
  const segments = uri.split('/').slice(1);
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    if (segment === '.') {
      if (last) out.push('');
    } else if (segment === '..') {
      out.pop();
      if (last) out.push('');
    } else out.push(segment);
  });
  return `/${out.join('/')}`;
}
