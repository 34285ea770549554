import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isAlias, isMap, isNode, isScalar, isSeq, LineCounter, parseDocument, visit, type YAMLMap, type YAMLSeq } from 'yaml';
import type { Side } from '../capture/events.js';
import { parseDuration, TIMEOUT_MEASURES, TimeoutSpecError, type TimeoutMeasure } from '../analysis/hop-timeout.js';
import {
  HOP_PLACEMENTS,
  TIMEOUT_ACTIONS,
  type Heartbeat,
  type Hop,
  type HopPlacement,
  type Profile,
  type ProfileTimeout,
  type TimeoutAction,
} from './profile.js';

/**
 * Loads profiles (DESIGN.md section 6) from YAML. The document is walked node
 * by node rather than through toJS() so that every problem carries the line
 * and column of the node it is about: the key for an unknown key, the value
 * for a wrong value, the map for a missing key. All problems are collected and
 * the first one in document order is thrown; YAML syntax errors come before
 * any validation, since a broken document cannot be checked meaningfully.
 *
 * Over 400 lines: one validator per profile section (hops, timeouts,
 * heartbeat, proxy, headers), each a few dozen lines walking YAML nodes
 * with the same position bookkeeping; kept together so every message has
 * one voice. A split by section is the next step if it grows.
 */

/** A problem with a profile. line/column are 1-based; both are 0 when the problem is not about a place in a file. */
export class ProfileError extends Error {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** The message without the "FILE:LINE:COLUMN: " prefix. */
  readonly problem: string;

  constructor(file: string, line: number, column: number, problem: string) {
    super(line > 0 ? `${file}:${line}:${column}: ${problem}` : problem);
    this.name = 'ProfileError';
    this.file = file;
    this.line = line;
    this.column = column;
    this.problem = problem;
  }
}

const PROFILE_NAME_RE = /^[a-z0-9][a-z0-9-]*$/;
const HEADER_NAME_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const DURATION_EXAMPLES = 'e.g. 60, 60s, 1m30s, 250ms';
const SIDES: readonly Side[] = ['client', 'upstream'];
const HEARTBEAT_KINDS: readonly Heartbeat['kind'][] = ['ws-ping', 'app-message'];

const TOP_KEYS = ['name', 'description', 'hops', 'heartbeat', 'app', 'proxy'] as const;
const HOP_KEYS = ['name', 'where', 'timeouts'] as const;
const TIMEOUT_KEYS = ['setting', 'after', 'measures', 'action', 'code'] as const;
const HEARTBEAT_KEYS = ['from', 'kind', 'interval', 'timeout'] as const;
const APP_KEYS = ['requires-headers'] as const;
const PROXY_KEYS = ['listen', 'target'] as const;

/** Parses and validates YAML text; `file` is only used for messages and Profile.source. Throws ProfileError with the first problem in document order. */
export function parseProfile(text: string, file: string): Profile {
  // A byte-order mark would shift every column on line 1 by one.
  const source = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const lineCounter = new LineCounter();
  const fail = (offset: number, problem: string): never => {
    const { line, col } = lineCounter.linePos(offset);
    throw new ProfileError(file, line, col, problem);
  };

  const doc = parseDocument(source, { keepSourceTokens: false, lineCounter, prettyErrors: false, uniqueKeys: false });
  const yamlError = firstByOffset([...doc.errors, ...doc.warnings].map((e) => ({ offset: e.pos[0], error: e })));
  if (yamlError) {
    const { error } = yamlError;
    if (error.code === 'MULTIPLE_DOCS') {
      fail(yamlError.offset, 'a profile is a single YAML document; remove this second one (and its "---")');
    }
    fail(yamlError.offset, `YAML syntax error: ${error.message}`);
  }

  const checker = new Checker(lineCounter);
  visit(doc, {
    Alias(_key, node) {
      checker.report(node, 0, `aliases (*${node.source}) are not supported in profiles; write the value out`);
    },
  });
  const profile = checker.profile(doc.contents, file);
  const problem = firstByOffset(checker.problems);
  if (problem) fail(problem.offset, problem.message);
  if (!profile) return fail(0, 'invalid profile');
  return profile;
}

/** Reads a file and parses it (I/O errors are rethrown as ProfileError at 1:1 with the OS message). */
export function loadProfileFile(file: string): Profile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ProfileError(file, 1, 1, `cannot read the profile: ${(err as Error).message}`);
  }
  return parseProfile(text, file);
}

/** The directory of shipped profiles: <package root>/profiles (the same ../../profiles from src/profiles and dist/profiles). */
export function shippedProfilesDir(): string {
  return resolve(fileURLToPath(new URL('../../profiles', import.meta.url)));
}

/**
 * A NAME of a shipped profile (DIR/NAME.yaml) or a path to a file (anything
 * containing "/" or "\" or ending in .yaml/.yml). A shipped profile's source
 * is its name; a file's is the path as given. Unknown names throw a
 * ProfileError (line 0) listing the shipped names and the nearest one.
 */
export function resolveProfile(nameOrFile: string, dir: string = shippedProfilesDir()): Profile {
  if (/[/\\]/.test(nameOrFile) || /\.ya?ml$/i.test(nameOrFile)) return loadProfileFile(nameOrFile);
  const names = shippedProfileNames(dir);
  if (!names.includes(nameOrFile)) {
    const nearest = nearestOf(nameOrFile, names);
    const hint = nearest === undefined ? '' : ` (did you mean "${nearest}"?)`;
    const shipped =
      names.length === 0 ? `no shipped profiles were found in ${dir}` : `shipped profiles: ${names.join(', ')}`;
    throw new ProfileError(dir, 0, 0, `unknown profile "${nameOrFile}"${hint}; ${shipped}; or give the path of a YAML file`);
  }
  return { ...loadProfileFile(join(dir, `${nameOrFile}.yaml`)), source: nameOrFile };
}

/** Every shipped profile, sorted by name (for `wstap profiles`). */
export function listShippedProfiles(dir: string = shippedProfilesDir()): Profile[] {
  return shippedProfileNames(dir).map((name) => ({ ...loadProfileFile(join(dir, `${name}.yaml`)), source: name }));
}

function shippedProfileNames(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.slice(0, -'.yaml'.length))
    .sort();
}

function firstByOffset<T extends { offset: number }>(items: readonly T[]): T | undefined {
  let first: T | undefined;
  // Strictly smaller only: among problems at one offset the first reported wins.
  for (const item of items) if (first === undefined || item.offset < first.offset) first = item;
  return first;
}

// ---------------------------------------------------------------------------
// Validation

interface Problem {
  offset: number;
  message: string;
}

/** A recognized key of a map: its name, where the key is, and its value node (null when the pair has none). */
interface Entry {
  key: string;
  keyOffset: number;
  value: unknown;
}

type Entries<K extends string> = Partial<Record<K, Entry>>;

/** Where a map sits, for messages: `unknown key "x" in a hop`. */
interface MapContext {
  /** "at the top level", "in a hop", `in "heartbeat"`. */
  unknownIn: string;
  /** Appended to `missing required key "x"`: "" at the top level, " in a hop". */
  missingIn: string;
}

class Checker {
  readonly problems: Problem[] = [];

  constructor(private readonly lineCounter: LineCounter) {}

  report(node: unknown, fallback: number, message: string): void {
    this.problems.push({ offset: offsetOf(node, fallback), message });
  }

  profile(root: unknown, file: string): Profile | undefined {
    if (!isMap(root)) {
      const what = root === null || root === undefined || isEmptyScalar(root) ? 'an empty file' : describe(root);
      this.report(root, 0, `a profile must be a map with name, description and hops, got ${what}`);
      return undefined;
    }
    const ctx: MapContext = { unknownIn: 'at the top level', missingIn: '' };
    const e = this.entries(root, TOP_KEYS, ['name', 'description', 'hops'], ctx);

    const name = this.string(e.name);
    // The name need not match the file's: users copy nginx.yaml to my-site.yaml and edit it.
    // Shipped profiles do match (test/unit/profile-loader.test.ts), since --profile NAME finds them by file name.
    if (name !== undefined && e.name && !PROFILE_NAME_RE.test(name)) {
      this.reportAt(
        e.name,
        `"name" must be lowercase letters, digits and dashes, starting with a letter or digit, got ${JSON.stringify(name)}`,
      );
    }

    const description = this.string(e.description);
    if (description !== undefined && e.description && description.includes('\n')) {
      this.reportAt(e.description, '"description" must be one line');
    }

    const hops = this.hops(e.hops);
    const profile: Profile = { name: name ?? '', description: description ?? '', hops: hops ?? [], source: file };

    const heartbeat = this.heartbeat(e.heartbeat);
    if (heartbeat) profile.heartbeat = heartbeat;

    const appMap = this.map(e.app);
    if (appMap) {
      const a = this.entries(appMap, APP_KEYS, [], { unknownIn: 'in "app"', missingIn: ' in "app"' });
      const app: NonNullable<Profile['app']> = {};
      const headers = this.headerList(a['requires-headers']);
      if (headers) app.requiresHeaders = headers;
      profile.app = app;
    }

    const proxyMap = this.map(e.proxy);
    if (proxyMap) {
      const p = this.entries(proxyMap, PROXY_KEYS, [], { unknownIn: 'in "proxy"', missingIn: ' in "proxy"' });
      const proxy: NonNullable<Profile['proxy']> = {};
      const listen = this.string(p.listen);
      if (listen !== undefined) proxy.listen = listen;
      const target = this.string(p.target);
      if (target !== undefined) proxy.target = target;
      profile.proxy = proxy;
    }
    return profile;
  }

  private hops(entry: Entry | undefined): Hop[] | undefined {
    const seq = this.seq(entry);
    if (!seq) return undefined;
    const hops: Hop[] = [];
    const firstLine = new Map<string, number>();
    for (const item of seq.items) {
      if (!isMap(item)) {
        this.report(item, offsetOf(seq, 0), `each hop must be a map with name, where and timeouts, got ${describe(item)}`);
        continue;
      }
      const e = this.entries(item, HOP_KEYS, ['name', 'where'], { unknownIn: 'in a hop', missingIn: ' in a hop' });
      const name = this.string(e.name);
      if (name !== undefined && e.name) {
        const line = this.lineCounter.linePos(this.valueOffset(e.name)).line;
        const first = firstLine.get(name);
        if (first !== undefined) this.reportAt(e.name, `hop name ${JSON.stringify(name)} is used twice (first on line ${first})`);
        else firstLine.set(name, line);
      }
      const where = this.oneOf<HopPlacement>(e.where, HOP_PLACEMENTS);
      const timeouts = e.timeouts ? this.timeouts(e.timeouts) : [];
      hops.push({ name: name ?? '', where: where ?? 'client-side', timeouts: timeouts ?? [] });
    }
    return hops;
  }

  private timeouts(entry: Entry): ProfileTimeout[] | undefined {
    const seq = this.seq(entry);
    if (!seq) return undefined;
    const timeouts: ProfileTimeout[] = [];
    for (const item of seq.items) {
      if (!isMap(item)) {
        this.report(
          item,
          offsetOf(seq, 0),
          `each timeout must be a map with setting, after, measures and action, got ${describe(item)}`,
        );
        continue;
      }
      const ctx: MapContext = { unknownIn: 'in a timeout', missingIn: ' in a timeout' };
      const e = this.entries(item, TIMEOUT_KEYS, ['setting', 'after', 'measures', 'action'], ctx);
      const timeout: ProfileTimeout = {
        setting: this.string(e.setting) ?? '',
        after: this.duration(e.after) ?? 0,
        measures: this.oneOf<TimeoutMeasure>(e.measures, TIMEOUT_MEASURES) ?? 'both-idle',
        action: this.oneOf<TimeoutAction>(e.action, TIMEOUT_ACTIONS) ?? 'unknown',
      };
      const code = this.code(e.code);
      if (code !== undefined) timeout.code = code;
      timeouts.push(timeout);
    }
    return timeouts;
  }

  private heartbeat(entry: Entry | undefined): Heartbeat | undefined {
    const map = this.map(entry);
    if (!map) return undefined;
    const ctx: MapContext = { unknownIn: 'in "heartbeat"', missingIn: ' in "heartbeat"' };
    const e = this.entries(map, HEARTBEAT_KEYS, ['from', 'kind', 'interval'], ctx);
    const heartbeat: Heartbeat = {
      from: this.oneOf<Side>(e.from, SIDES) ?? 'upstream',
      kind: this.oneOf<Heartbeat['kind']>(e.kind, HEARTBEAT_KINDS) ?? 'ws-ping',
      interval: this.duration(e.interval) ?? 0,
    };
    const timeout = this.duration(e.timeout);
    if (timeout !== undefined) heartbeat.timeout = timeout;
    return heartbeat;
  }

  /** The recognized keys of a map; reports unknown, duplicate and non-scalar keys, then missing required ones. */
  private entries<K extends string>(
    map: YAMLMap,
    allowed: readonly K[],
    required: readonly K[],
    ctx: MapContext,
  ): Entries<K> {
    const found: Entries<K> = {};
    const mapOffset = offsetOf(map, 0);
    const misspelled = new Set<string>();
    for (const pair of map.items) {
      const keyNode: unknown = pair.key;
      const keyOffset = offsetOf(keyNode, mapOffset);
      if (isAlias(keyNode)) continue; // reported by the alias pass
      if (!isScalar(keyNode) || keyNode.value === null || typeof keyNode.value === 'object') {
        this.report(keyNode, mapOffset, `keys must be plain words, got ${describe(keyNode)} as a key ${ctx.unknownIn}`);
        continue;
      }
      const key = String(keyNode.value);
      if (!(allowed as readonly string[]).includes(key)) {
        const nearest = nearestOf(key, allowed);
        const hint = nearest === undefined ? `expected one of ${allowed.join(', ')}` : `did you mean "${nearest}"?`;
        this.report(keyNode, mapOffset, `unknown key ${JSON.stringify(key)} ${ctx.unknownIn} (${hint})`);
        if (nearest !== undefined) misspelled.add(nearest);
        continue;
      }
      const k = key as K;
      const previous = found[k];
      if (previous) {
        const line = this.lineCounter.linePos(previous.keyOffset).line;
        this.report(keyNode, mapOffset, `duplicate key ${JSON.stringify(key)} ${ctx.unknownIn} (first on line ${line})`);
        continue;
      }
      found[k] = { key, keyOffset, value: pair.value };
    }
    for (const key of required) {
      // A misspelled key already says what is missing, at the line that needs the change.
      if (!found[key] && !misspelled.has(key)) this.report(map, 0, `missing required key ${JSON.stringify(key)}${ctx.missingIn}`);
    }
    return found;
  }

  /** Where a value's problem points: the value, or the key when the value is empty. */
  private valueOffset(entry: Entry): number {
    const v = entry.value;
    if (v === null || v === undefined || isEmptyScalar(v)) return entry.keyOffset;
    return offsetOf(v, entry.keyOffset);
  }

  private reportAt(entry: Entry, message: string): void {
    this.problems.push({ offset: this.valueOffset(entry), message });
  }

  private string(entry: Entry | undefined): string | undefined {
    if (!entry || isAlias(entry.value)) return undefined;
    const v = entry.value;
    if (isScalar(v) && typeof v.value === 'string') {
      const s = v.value.trim();
      if (s !== '') return s;
      this.reportAt(entry, `"${entry.key}" must not be empty`);
      return undefined;
    }
    this.reportAt(entry, `"${entry.key}" must be a string, got ${describe(v)}`);
    return undefined;
  }

  private oneOf<T extends string>(entry: Entry | undefined, values: readonly T[]): T | undefined {
    if (!entry || isAlias(entry.value)) return undefined;
    const v = entry.value;
    if (isScalar(v) && typeof v.value === 'string' && (values as readonly string[]).includes(v.value)) return v.value as T;
    const nearest = isScalar(v) && v.value !== null ? nearestOf(String(v.value), values) : undefined;
    const hint = nearest === undefined ? '' : ` (did you mean "${nearest}"?)`;
    this.reportAt(entry, `"${entry.key}" must be one of ${values.join(', ')}, got ${describe(v)}${hint}`);
    return undefined;
  }

  /** Seconds. A YAML number means seconds; strings go through parseDuration. Zero and negative are rejected. */
  private duration(entry: Entry | undefined): number | undefined {
    if (!entry || isAlias(entry.value)) return undefined;
    const v = entry.value;
    const raw = isScalar(v) ? v.value : undefined;
    const text = typeof raw === 'number' ? String(raw) : typeof raw === 'string' ? raw.trim() : undefined;
    if (text !== undefined) {
      try {
        return parseDuration(text);
      } catch (err) {
        // parseDuration rejects zero by name; "-5s" is a duration with a sign it does not read.
        const zero = err instanceof TimeoutSpecError && /greater than zero/.test(err.message);
        if (zero || (text.startsWith('-') && isPositiveDuration(text.slice(1)))) {
          this.reportAt(entry, `"${entry.key}" must be greater than zero, got ${describe(v)}`);
          return undefined;
        }
      }
    }
    this.reportAt(entry, `"${entry.key}" must be a duration (${DURATION_EXAMPLES}), got ${describe(v)}`);
    return undefined;
  }

  private code(entry: Entry | undefined): number | undefined {
    if (!entry || isAlias(entry.value)) return undefined;
    const v = entry.value;
    const n = isScalar(v) ? v.value : undefined;
    if (typeof n !== 'number' || !Number.isInteger(n)) {
      this.reportAt(entry, `"code" must be an integer (a close code or an HTTP status), got ${describe(v)}`);
      return undefined;
    }
    if (n < 100 || n > 4999 || (n >= 600 && n < 1000)) {
      this.reportAt(entry, `"code" must be a close code (1000-4999) or an HTTP status (100-599), got ${n}`);
      return undefined;
    }
    return n;
  }

  private headerList(entry: Entry | undefined): string[] | undefined {
    const seq = this.seq(entry);
    if (!seq || !entry) return undefined;
    const headers: string[] = [];
    for (const item of seq.items) {
      if (isAlias(item)) continue;
      if (isScalar(item) && typeof item.value === 'string' && HEADER_NAME_RE.test(item.value)) {
        headers.push(item.value);
      } else {
        const what = isScalar(item) && typeof item.value === 'string' ? 'a header name' : 'a string';
        this.report(item, offsetOf(seq, 0), `each entry of "${entry.key}" must be ${what}, got ${describe(item)}`);
      }
    }
    return headers;
  }

  private seq(entry: Entry | undefined): YAMLSeq | undefined {
    if (!entry || isAlias(entry.value)) return undefined;
    if (isSeq(entry.value)) return entry.value;
    this.reportAt(entry, `"${entry.key}" must be a list, got ${describe(entry.value)}`);
    return undefined;
  }

  private map(entry: Entry | undefined): YAMLMap | undefined {
    if (!entry || isAlias(entry.value)) return undefined;
    if (isMap(entry.value)) return entry.value;
    this.reportAt(entry, `"${entry.key}" must be a map, got ${describe(entry.value)}`);
    return undefined;
  }
}

function isPositiveDuration(text: string): boolean {
  try {
    return parseDuration(text) > 0;
  } catch {
    return false;
  }
}

function offsetOf(node: unknown, fallback: number): number {
  return isNode(node) && node.range ? node.range[0] : fallback;
}

function isEmptyScalar(node: unknown): boolean {
  return isScalar(node) && node.value === null && (node.source === undefined || node.source === '');
}

/** What a node is, for "got ..." in messages. */
function describe(node: unknown): string {
  if (node === null || node === undefined || isEmptyScalar(node)) return 'nothing';
  if (isMap(node)) return 'a map';
  if (isSeq(node)) return 'a list';
  if (isAlias(node)) return 'an alias';
  if (isScalar(node)) {
    const v = node.value;
    if (typeof v === 'string') return JSON.stringify(v);
    if (v === null) return 'null';
    return String(v);
  }
  return 'something else';
}

// ---------------------------------------------------------------------------
// Suggestions

/** Lowercase kebab-case: requires_headers, requiresHeaders and Requires Headers all become requires-headers. */
function normalizeWord(s: string): string {
  return s
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .toLowerCase()
    .replace(/[\s_]+/g, '-');
}

/** The candidate that is a case/underscore variant of `word`, else the closest within edit distance 3. */
function nearestOf(word: string, candidates: readonly string[]): string | undefined {
  const normalized = normalizeWord(word);
  const variant = candidates.find((c) => normalizeWord(c) === normalized);
  if (variant !== undefined) return variant;
  let best: string | undefined;
  let bestDistance = 4;
  for (const c of candidates) {
    const d = levenshtein(normalized, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur.push(Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}
