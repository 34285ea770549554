import type { Idle, RawHeaders, Side } from '../capture/events.js';
import { round3 } from './har-entries.js';

/**
 * Typed readers of the loose JSON a HAR is: each takes an `unknown` field and
 * gives the value wstap's events need, or undefined when the field is absent
 * or unusable (the caller then takes a default or skips with a warning).
 * Lenient on purpose: browsers and other tools write numbers as strings,
 * -1 for "not applicable", and seconds or ISO dates for times.
 */

export type Json = Record<string, unknown>;

export function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A finite number from a number or a numeric string; undefined otherwise (the field then takes its default). */
export function num(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'string' && value.trim() !== '') {
    const n = Number(value);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

/** HAR uses -1 for "not applicable": anything below 0 counts as absent. */
export function nonNegative(value: unknown): number | undefined {
  const n = num(value);
  return n !== undefined && n >= 0 ? n : undefined;
}

export function str(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

export function bool(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (value === 'true') return true;
  if (value === 'false') return false;
  return undefined;
}

/** Epoch seconds (with microseconds) -> epoch ms, without float noise beyond the microsecond. */
export function secondsToMs(seconds: number): number {
  return Math.round(seconds * 1e6) / 1000;
}

/**
 * ISO date-time -> epoch ms. Date.parse drops digits past the millisecond;
 * HARs may carry microseconds, which keep ordering exact, so add them back.
 */
export function parseDateTime(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const ms = Date.parse(value);
  if (!Number.isFinite(ms)) return undefined;
  const fraction = /T[^.]*\.(\d{4,})/.exec(value)?.[1];
  if (fraction === undefined) return ms;
  const sub = Number(`0.${fraction.slice(3)}`);
  return Number.isFinite(sub) ? round3(ms + sub) : ms;
}

export function headersOf(value: unknown): RawHeaders {
  if (!Array.isArray(value)) return [];
  const out: RawHeaders = [];
  for (const item of value) {
    if (!isObject(item)) continue;
    const name = str(item['name']);
    if (name === undefined) continue;
    out.push([name, str(item['value']) ?? '']);
  }
  return out;
}

/** "HTTP/1.1" -> "1.1"; other spellings ("h2", "http/2.0") as written minus the prefix. */
export function httpVersionOf(value: unknown): string {
  const text = str(value) ?? '';
  return text.replace(/^HTTP\//i, '');
}

/** The request target as a proxy sees it: path and query of an absolute URL, kept byte for byte (no URL normalising). */
export function pathAndQuery(url: string): string {
  let rest = url;
  const origin = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(rest);
  if (origin) rest = rest.slice(origin[0].length);
  const hash = rest.indexOf('#');
  if (hash >= 0) rest = rest.slice(0, hash);
  if (origin && rest === '') return '/';
  if (origin && rest.startsWith('?')) return `/${rest}`;
  return rest;
}

export function originOf(url: string): string | undefined {
  const match = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)/i.exec(url);
  if (!match) return undefined;
  const scheme = (match[1] ?? '').toLowerCase();
  const mapped = scheme === 'ws' ? 'http' : scheme === 'wss' ? 'https' : scheme;
  return `${mapped}://${(match[2] ?? '').toLowerCase()}`;
}

/** wstap writes `_error` as "CODE: message"; browsers write a bare code such as "net::ERR_CONNECTION_REFUSED". */
export function splitError(error: string | undefined): { code: string; message: string } {
  if (error === undefined || error === '') return { code: 'UNKNOWN', message: '' };
  const match = /^([A-Za-z0-9_.:-]+): ([\s\S]*)$/.exec(error);
  if (match) return { code: match[1] ?? 'UNKNOWN', message: match[2] ?? '' };
  if (!/\s/.test(error)) return { code: error, message: '' };
  return { code: 'UNKNOWN', message: error };
}

function sideOfType(type: unknown): Side | undefined {
  if (type === 'send') return 'client';
  if (type === 'receive') return 'upstream';
  return undefined;
}

export interface TimedItem {
  item: Json;
  side: Side;
  time: number;
}

/**
 * A `_webSocketMessages`-style item: an object whose `type` ("send"/"receive")
 * gives its side and whose `time` is a number; warns and skips otherwise.
 */
function timedItem(value: unknown, at: string, warnings: string[]): TimedItem | undefined {
  if (!isObject(value)) return void warnings.push(`${at}: skipped: not an object`);
  const side = sideOfType(value['type']);
  if (!side) return void warnings.push(`${at}: skipped: type ${JSON.stringify(value['type'] ?? null)} is neither "send" nor "receive"`);
  const time = num(value['time']);
  if (time === undefined) return void warnings.push(`${at}: skipped: time is not a number`);
  return { item: value, side, time };
}

/**
 * Calls `each` with every usable timed item of a list, in file order, and
 * `at` (its place, for warnings); the others are skipped with a warning.
 * Nothing when the value is not a list.
 */
export function forEachTimedItem(value: unknown, where: string, warnings: string[], each: (timed: TimedItem, at: string) => void): void {
  if (!Array.isArray(value)) return;
  value.forEach((raw: unknown, i) => {
    const at = `${where}[${i}]`;
    const timed = timedItem(raw, at, warnings);
    if (timed) each(timed, at);
  });
}

export function idleOf(value: unknown): Idle | undefined {
  if (!isObject(value)) return undefined;
  const client = nonNegative(value['client']);
  const upstream = nonNegative(value['upstream']);
  if (client === undefined || upstream === undefined) return undefined;
  return { client, upstream };
}
