import type { CloseAttribution } from '../analysis/close-attribution.js';
import type { Side } from '../capture/events.js';

/**
 * Label values, each from a small fixed set: Prometheus keeps one series
 * per distinct label set for as long as the process lives, so nothing a
 * peer chooses (a path, an address, a close code) may become a label value
 * unbounded.
 */

/** What a connection turned out to be: its first request says (tcp at its open). */
export type ConnectionKind = 'http' | 'websocket' | 'tcp';

/** A path group of --metrics-path-group REGEX=NAME. */
export interface PathGroup {
  pattern: RegExp;
  name: string;
}

/** The label of a path no group matches (and of every path without --metrics-path-group). */
export const OTHER_PATH_GROUP = 'other';

/** At most this many groups: each one multiplies the series of the metrics that carry the label. */
export const MAX_PATH_GROUPS = 50;

export class PathGroupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PathGroupError';
  }
}

/** Label values we write: short, printable, no quotes or backslashes (a NAME is checked the same way). */
const GROUP_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

/** `REGEX=NAME`: the last `=` splits them, so a regex may hold `=` itself. */
export function parsePathGroup(text: string): PathGroup {
  const at = text.lastIndexOf('=');
  if (at <= 0) throw new PathGroupError(`"${text}" is not REGEX=NAME (e.g. ^/api/v4/websocket=websocket)`);
  const source = text.slice(0, at);
  const name = text.slice(at + 1);
  if (!GROUP_NAME.test(name)) throw new PathGroupError(`"${text}": NAME "${name}" must be 1 to 64 letters, digits, _ . : or -`);
  if (name === OTHER_PATH_GROUP) throw new PathGroupError(`"${text}": "${OTHER_PATH_GROUP}" is the group of paths no REGEX matches; choose another NAME`);
  try {
    return { pattern: new RegExp(source), name };
  } catch (err) {
    throw new PathGroupError(`"${text}": REGEX ${(err as Error).message}`);
  }
}

/** The group of a request target: the first group whose REGEX matches its path (the query is never matched: it may hold secrets). */
export function pathGroupOf(url: string, groups: readonly PathGroup[]): string {
  if (groups.length === 0) return OTHER_PATH_GROUP;
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  for (const g of groups) if (g.pattern.test(path)) return g.name;
  return OTHER_PATH_GROUP;
}

/** `1xx`..`5xx`; anything outside 100-599 (a broken upstream) is `invalid`. */
export function statusClass(status: number): string {
  return status >= 100 && status <= 599 ? `${Math.floor(status / 100)}xx` : 'invalid';
}

/** Who closed first, as a label: `unknown` when nothing was seen or the order cannot be told. */
export function closedByLabel(a: CloseAttribution): string {
  return a.closedBy ?? 'unknown';
}

/** The first close evidence's kind as a label: `proxy` when wstap itself ended it (shutdown), `none` without evidence. */
export function evidenceLabel(a: CloseAttribution): string {
  const first = a.first;
  if (!first) return 'none';
  if (first.side === 'proxy') return 'proxy';
  return first.kind === 'close-frame' ? 'close_frame' : first.kind;
}

const OPCODE_LABELS = ['continuation', 'text', 'binary', 'other', 'other', 'other', 'other', 'other', 'close', 'ping', 'pong'];

/** RFC 6455 opcodes by name; the reserved ones are all `other`. */
export function opcodeLabel(opcode: number): string {
  return OPCODE_LABELS[opcode] ?? 'other';
}

/**
 * Close codes as labels. A peer may send any of 65536 codes, so only the
 * first `limit` distinct valid ones get a label of their own, later ones
 * are `other`; a code outside 1000-4999 (not allowed on the wire) is
 * `invalid`, a close frame without a code `none`.
 */
export class CloseCodeLabels {
  readonly #seen = new Set<number>();
  readonly #limit: number;

  constructor(limit = 100) {
    this.#limit = limit;
  }

  of(code: number | undefined): string {
    if (code === undefined) return 'none';
    if (!Number.isInteger(code) || code < 1000 || code > 4999) return 'invalid';
    if (this.#seen.has(code)) return String(code);
    if (this.#seen.size >= this.#limit) return 'other';
    this.#seen.add(code);
    return String(code);
  }
}

/** `client` or `upstream`: the side that sent it. */
export const SIDES: readonly Side[] = ['client', 'upstream'];
