/**
 * The checks a profile section is built from, on YAML nodes rather than on
 * toJS() output, so that every problem carries the offset of the node it is
 * about: the key for an unknown or duplicate key, the value for a wrong value
 * (the key when the value is empty), the map for a missing key. A NodeChecker
 * never throws: it collects problems and returns undefined for a bad value, so
 * one pass reports everything and the parser throws the first in document
 * order. The sections (hops, timeouts, heartbeat, ...) are in profile-sections.ts.
 */

import { isAlias, isMap, isNode, isScalar, isSeq, type LineCounter, type YAMLMap, type YAMLSeq } from 'yaml';
import { parseDuration, TimeoutSpecError } from './hop-timeout.js';
import { nearestOf } from './profile-suggestions.js';

const HEADER_NAME_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const DURATION_EXAMPLES = 'e.g. 60, 60s, 1m30s, 250ms';

export interface Problem {
  offset: number;
  message: string;
}

/** A recognized key of a map: its name, where the key is, and its value node (null when the pair has none). */
export interface Entry {
  key: string;
  keyOffset: number;
  value: unknown;
}

export type Entries<K extends string> = Partial<Record<K, Entry>>;

/** Where a map sits, for messages: `unknown key "x" in a hop`. */
export interface MapContext {
  /** "at the top level", "in a hop", `in "heartbeat"`. */
  unknownIn: string;
  /** Appended to `missing required key "x"`: "" at the top level, " in a hop". */
  missingIn: string;
}

export class NodeChecker {
  readonly problems: Problem[] = [];

  constructor(private readonly lineCounter: LineCounter) {}

  report(node: unknown, fallback: number, message: string): void {
    this.problems.push({ offset: offsetOf(node, fallback), message });
  }

  reportAt(entry: Entry, message: string): void {
    this.problems.push({ offset: this.valueOffset(entry), message });
  }

  /** The 1-based line of an offset, for "(first on line N)". */
  lineAt(offset: number): number {
    return this.lineCounter.linePos(offset).line;
  }

  /** Where a value's problem points: the value, or the key when the value is empty. */
  valueOffset(entry: Entry): number {
    const v = entry.value;
    if (v === null || v === undefined || isEmptyScalar(v)) return entry.keyOffset;
    return offsetOf(v, entry.keyOffset);
  }

  /** The recognized keys of a map; reports unknown, duplicate and non-scalar keys, then missing required ones. */
  entries<K extends string>(
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
        const line = this.lineAt(previous.keyOffset);
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

  string(entry: Entry | undefined): string | undefined {
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

  oneOf<T extends string>(entry: Entry | undefined, values: readonly T[]): T | undefined {
    if (!entry || isAlias(entry.value)) return undefined;
    const v = entry.value;
    if (isScalar(v) && typeof v.value === 'string' && (values as readonly string[]).includes(v.value)) return v.value as T;
    const nearest = isScalar(v) && v.value !== null ? nearestOf(String(v.value), values) : undefined;
    const hint = nearest === undefined ? '' : ` (did you mean "${nearest}"?)`;
    this.reportAt(entry, `"${entry.key}" must be one of ${values.join(', ')}, got ${describe(v)}${hint}`);
    return undefined;
  }

  /** Seconds. A YAML number means seconds; strings go through parseDuration. Zero and negative are rejected. */
  duration(entry: Entry | undefined): number | undefined {
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

  code(entry: Entry | undefined): number | undefined {
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

  headerList(entry: Entry | undefined): string[] | undefined {
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

  seq(entry: Entry | undefined): YAMLSeq | undefined {
    if (!entry || isAlias(entry.value)) return undefined;
    if (isSeq(entry.value)) return entry.value;
    this.reportAt(entry, `"${entry.key}" must be a list, got ${describe(entry.value)}`);
    return undefined;
  }

  map(entry: Entry | undefined): YAMLMap | undefined {
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

export function offsetOf(node: unknown, fallback: number): number {
  return isNode(node) && node.range ? node.range[0] : fallback;
}

export function isEmptyScalar(node: unknown): boolean {
  return isScalar(node) && node.value === null && (node.source === undefined || node.source === '');
}

/** What a node is, for "got ..." in messages. */
export function describe(node: unknown): string {
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
