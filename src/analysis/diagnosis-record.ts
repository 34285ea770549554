import type { SessionStartEvent, Side } from '../capture/events.js';
import { EMPTY_DIAGNOSIS_CONTEXT, type DiagnosisContext } from './connection-diagnosis.js';
import { printable } from './printable.js';
import type { Heartbeat } from '../profiles/heartbeat.js';
import { HOP_PLACEMENTS, TIMEOUT_ACTIONS, TIMEOUT_MEASURES, type HopTimeout } from '../profiles/hop-timeout.js';

/**
 * The diagnosis context a session was judged with, as recorded in its
 * `session.start` (and a HAR's `log._wstap.diagnosisContext`): so `wstap view`
 * and `wstap export` judge a capture the way the live proxy did without the
 * user remembering which profile and flags were in force. Plain JSON data;
 * `version` says how to read it (a reader ignores a version it does not know).
 */
export const DIAGNOSIS_RECORD_VERSION = 1;

export interface DiagnosisRecord {
  version: typeof DIAGNOSIS_RECORD_VERSION;
  /** The --profile in force: its name and where it came from (a file path, or "shipped"). */
  profile: { name: string; source: string } | null;
  /** The --timeout flags as given, in order. */
  timeoutFlags: string[];
  /** What they resolve to: the profile's timeouts with the flags applied, heartbeat, required headers. */
  context: DiagnosisContext;
}

export function diagnosisRecord(profile: DiagnosisRecord['profile'], timeoutFlags: readonly string[], context: DiagnosisContext): DiagnosisRecord {
  return { version: DIAGNOSIS_RECORD_VERSION, profile, timeoutFlags: [...timeoutFlags], context };
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === 'string';
const isSide = (v: unknown): v is Side => v === 'client' || v === 'upstream';
const oneOf = <T extends string>(list: readonly T[], v: unknown): v is T => list.includes(v as T);

function timeoutOf(raw: unknown): HopTimeout | null {
  if (!isObject(raw)) return null;
  const { hop, setting, seconds, measures, where, action, code } = raw;
  if (!isString(hop) || !isString(setting) || typeof seconds !== 'number' || !(seconds > 0) || !oneOf(TIMEOUT_MEASURES, measures)) return null;
  if (where !== undefined && !oneOf(HOP_PLACEMENTS, where)) return null;
  if (action !== undefined && !oneOf(TIMEOUT_ACTIONS, action)) return null;
  if (code !== undefined && !Number.isInteger(code)) return null;
  return {
    hop,
    setting,
    seconds,
    measures,
    ...(where !== undefined ? { where } : {}),
    ...(action !== undefined ? { action } : {}),
    ...(code !== undefined ? { code: code as number } : {}),
  };
}

function heartbeatOf(raw: unknown): Heartbeat | null | undefined {
  if (raw === null) return null;
  if (!isObject(raw)) return undefined;
  const { from, kind, interval, timeout } = raw;
  if (!isSide(from) || (kind !== 'ws-ping' && kind !== 'app-message') || typeof interval !== 'number' || !(interval > 0)) return undefined;
  if (timeout !== undefined && !(typeof timeout === 'number' && timeout > 0)) return undefined;
  return { from, kind, interval, ...(timeout !== undefined ? { timeout } : {}) };
}

/**
 * A recorded context read back from untrusted JSON; null when absent. A
 * record that is there but unusable (another version, a bad field) is an
 * Error saying why, so the reader can warn and judge with nothing instead.
 */
export function readDiagnosisRecord(raw: unknown): DiagnosisRecord | null | Error {
  if (raw === undefined || raw === null) return null;
  if (!isObject(raw)) return new Error('the diagnosis context is not an object');
  if (raw['version'] !== DIAGNOSIS_RECORD_VERSION) return new Error(`diagnosis context version ${JSON.stringify(raw['version'] ?? null)} is not one this wstap reads (${DIAGNOSIS_RECORD_VERSION})`);
  const profile = raw['profile'];
  if (profile !== null && !(isObject(profile) && isString(profile['name']) && isString(profile['source']))) return new Error('diagnosis context: profile needs a name and a source');
  const flags = raw['timeoutFlags'];
  if (!Array.isArray(flags) || !flags.every(isString)) return new Error('diagnosis context: timeoutFlags is not a list of strings');
  const context = raw['context'];
  if (!isObject(context)) return new Error('diagnosis context: no context object');
  const rawTimeouts = context['timeouts'];
  const timeouts = Array.isArray(rawTimeouts) ? rawTimeouts.map(timeoutOf) : [null];
  if (timeouts.some((t) => t === null)) return new Error('diagnosis context: a timeout needs hop, setting, seconds > 0 and a known measure');
  const headers = context['requiredHeaders'];
  if (!Array.isArray(headers) || !headers.every(isString)) return new Error('diagnosis context: requiredHeaders is not a list of strings');
  const heartbeat = heartbeatOf(context['heartbeat'] ?? null);
  if (heartbeat === undefined) return new Error('diagnosis context: the heartbeat needs from, kind and interval > 0');
  const keepAlive = context['appKeepAliveMs'];
  if (keepAlive !== undefined && !(typeof keepAlive === 'number' && keepAlive > 0)) return new Error('diagnosis context: appKeepAliveMs must be a number > 0');
  return diagnosisRecord(profile === null ? null : { name: profile['name'] as string, source: profile['source'] as string }, flags, {
    timeouts: timeouts as HopTimeout[],
    requiredHeaders: headers,
    heartbeat,
    ...(keepAlive !== undefined ? { appKeepAliveMs: keepAlive } : {}),
  });
}

/** How a record is named to the user: `--profile fast (shipped) --timeout a=1s`, or `no profile and no --timeout`. */
export function describeRecord(record: DiagnosisRecord): string {
  const parts = [
    ...(record.profile ? [`--profile ${record.profile.name} (${record.profile.source})`] : []),
    ...record.timeoutFlags.map((flag) => `--timeout ${flag}`),
  ];
  return parts.length > 0 ? parts.join(' ') : 'no profile and no --timeout';
}

/** Equal as data: both read the same way first, so key order and fields a reader drops do not count. */
function sameRecord(a: DiagnosisRecord, b: DiagnosisRecord): boolean {
  return JSON.stringify(readDiagnosisRecord(a)) === JSON.stringify(readDiagnosisRecord(b));
}

/** Null (nothing recorded, or unusable) counts as one more context: "no profile and no --timeout". */
function sameOrNone(a: DiagnosisRecord | null, b: DiagnosisRecord | null): boolean {
  return a === null || b === null ? a === b : sameRecord(a, b);
}

function describeOrNone(record: DiagnosisRecord | null): string {
  return record ? describeRecord(record) : 'no profile and no --timeout';
}

/**
 * Which context a reader judges with: the one given on its command line
 * (--profile/--timeout) if any, else the one the session recorded. Starts
 * with the given one (or nothing) and learns the recorded one from the
 * session's first `session.start`.
 *
 * Several proxies' captures read as one (capture-merge.ts) bring one
 * session.start per instance, each naming its instance and the context that
 * proxy ran with: each connection is then judged with its own instance's
 * (`contextOf(open.instance)`), since proxies in front of different hops
 * (or run with different --timeout flags) would otherwise be judged with
 * the wrong hops. The command line still overrides for all.
 */
export class DiagnosisChoice {
  readonly #given: DiagnosisRecord | null;
  #recorded: DiagnosisRecord | null = null;
  #started = false;
  /** Each instance's recorded context (null: none, or unusable), in the order their sessions started; a few entries, one per proxy. */
  readonly #byInstance = new Map<string, DiagnosisRecord | null>();
  #instancesDiffer = false;

  constructor(given: DiagnosisRecord | null) {
    this.#given = given;
  }

  /** The record in force, null when nothing is known (an older capture and no flags); merged: the first instance's. */
  get inForce(): DiagnosisRecord | null {
    return this.#given ?? this.#recorded;
  }

  get context(): DiagnosisContext {
    return this.inForce?.context ?? EMPTY_DIAGNOSIS_CONTEXT;
  }

  /**
   * The context a connection is judged with: the command line's, else the
   * one its instance recorded (a merged read), else the session's.
   */
  contextOf(instance: string | undefined): DiagnosisContext {
    if (this.#given || instance === undefined || !this.#byInstance.has(instance)) return this.context;
    return this.#byInstance.get(instance)?.context ?? EMPTY_DIAGNOSIS_CONTEXT;
  }

  /**
   * Each instance's record, in the order their sessions started, when they
   * differ and no context was given on the command line; null otherwise
   * (one context judges every connection: `inForce`).
   */
  get perInstance(): ReadonlyMap<string, DiagnosisRecord | null> | null {
    return !this.#given && this.#instancesDiffer ? this.#byInstance : null;
  }

  /**
   * Sees a session's start; returns what to tell the user when the command
   * line overrides what the capture recorded, or (several instances read as
   * one) when an instance recorded another context than the first (null
   * when there is nothing to say).
   */
  start(event: SessionStartEvent): string | null {
    // A capture is read back from disk: its record is checked like any input.
    const recorded = readDiagnosisRecord(event.diagnosis);
    const instance = event.instance;
    if (this.#started) return instance === undefined || this.#byInstance.has(instance) ? null : this.#otherInstance(instance, recorded);
    this.#started = true;
    if (instance !== undefined) this.#byInstance.set(instance, recorded instanceof Error ? null : recorded);
    if (recorded instanceof Error) return this.#given ? null : `${recorded.message}: judging with no profile and no --timeout`;
    this.#recorded = recorded;
    if (!this.#given || !this.#recorded || sameRecord(this.#given, this.#recorded)) return null;
    return `judging with ${describeRecord(this.#given)} instead of the capture's ${describeRecord(this.#recorded)}`;
  }

  /** A later instance's session.start in a merged read. */
  #otherInstance(instance: string, recorded: DiagnosisRecord | null | Error): string | null {
    const record = recorded instanceof Error ? null : recorded;
    this.#byInstance.set(instance, record);
    const [firstInstance, first] = [...this.#byInstance][0] as [string, DiagnosisRecord | null];
    const [name, firstName] = [printable(instance), printable(firstInstance)];
    const differs = !sameOrNone(record, first);
    if (this.#given) {
      if (!differs || record === null || sameRecord(this.#given, record)) return null;
      return `judging with ${describeRecord(this.#given)} instead of ${name}'s capture's ${describeRecord(record)}`;
    }
    const notes: string[] = [];
    if (recorded instanceof Error) notes.push(`${name}: ${recorded.message}: judging its connections with no profile and no --timeout`);
    if (differs) {
      this.#instancesDiffer = true;
      notes.push(`the instances ran with different contexts, each connection is judged with its own instance's: ${firstName}: ${describeOrNone(first)}; ${name}: ${describeOrNone(record)}`);
    }
    return notes.length > 0 ? notes.join('; ') : null;
  }
}
