import fs from 'node:fs';
import path from 'node:path';
import { headerInstance, headerSessionStart } from './capture-format.js';
import { checkCaptureHeader, readFileHead } from './capture-reader.js';
import { captureSetOfFiles, discoverCaptureSet, readCaptureSetEvents, type CaptureSet, type CaptureSetReadOptions } from './capture-set.js';
import type { CaptureEvent } from './events.js';

/**
 * Captures of several proxies (instances), each maybe a rotated set, read
 * as one session ordered by time: what `wstap view A B` and `wstap export A
 * B` read when A and B come from different proxies.
 *
 * Connection ids stay unique by renumbering on read: the merged stream's
 * connections are numbered 1, 2, 3... in the order their first event comes,
 * and each conn.open says which instance it came through and its id there
 * (`instance`, `instanceConn`), which every view shows. The map from an
 * instance's id to the new one lives only while the connection is open (it
 * is dropped at its conn.close), so memory stays bounded by the connections
 * open at once, as every reader's is.
 */

/** One instance's files. */
export interface InstanceCapture {
  set: CaptureSet;
  /** The header's --instance, else its session.start's, else the first file's name. */
  instance: string;
}

/**
 * The files named, grouped into their sessions: a file named alone brings
 * the rest of its rotated set (as `wstap view FILE` does); files of one
 * session named together are read as that session. One group: a plain
 * single-session read.
 */
export function instanceCapturesOfFiles(paths: readonly string[]): InstanceCapture[] {
  const groups = new Map<string, string[]>();
  for (const file of paths) {
    // A rotated set's first file may be gone (--keep): the set is found from its name.
    const key = fs.existsSync(file) ? (sessionOfFile(file) ?? `(file) ${file}`) : `(set) ${file}`;
    groups.set(key, [...(groups.get(key) ?? []), file]);
  }
  const captures: InstanceCapture[] = [];
  for (const files of groups.values()) {
    const set = files.length === 1 ? discoverCaptureSet(files[0] as string) : captureSetOfFiles(files);
    captures.push({ set, instance: instanceOf(set) });
  }
  return withDistinctNames(captures);
}

/**
 * Sessions of one name (a proxy restarted, maybe with another profile) are
 * told apart as `NAME (session K)`, in the order named: every view keys a
 * connection's instance, and the context it is judged with, by that name.
 */
function withDistinctNames(captures: InstanceCapture[]): InstanceCapture[] {
  const total = new Map<string, number>();
  for (const c of captures) total.set(c.instance, (total.get(c.instance) ?? 0) + 1);
  const seen = new Map<string, number>();
  return captures.map((c) => {
    if ((total.get(c.instance) ?? 0) < 2) return c;
    const k = (seen.get(c.instance) ?? 0) + 1;
    seen.set(c.instance, k);
    return { ...c, instance: `${c.instance} (session ${k})` };
  });
}

function sessionOfFile(file: string): string | null {
  const header = checkCaptureHeader(file);
  return typeof header.session === 'string' && header.session !== '' ? header.session : null;
}

function instanceOf(set: CaptureSet): string {
  const first = set.segments[0];
  if (!first) return path.basename(set.base);
  return headerInstance(first.header) ?? headerSessionStart(first.header)?.instance ?? startInstance(first.path) ?? path.basename(set.base);
}

/** The instance a file's own session.start names (its second line, in a first segment), if any. */
function startInstance(file: string): string | null {
  const lines = readFileHead(file, 64 * 1024).split('\n');
  try {
    const start = JSON.parse(lines[1] ?? '') as { kind?: unknown; instance?: unknown };
    return start.kind === 'session.start' && typeof start.instance === 'string' && start.instance !== '' ? start.instance : null;
  } catch {
    return null;
  }
}

/** Where one instance's stream stands: the next event, once read. */
interface Cursor {
  index: number;
  instance: string;
  events: AsyncGenerator<CaptureEvent>;
  head: CaptureEvent | null;
  /** The instance's connection id -> the merged stream's. */
  ids: Map<number, number>;
}

/**
 * The events of every instance, merged by time (each instance's own order
 * kept; a tie goes to the instance named first), renumbered and labelled
 * (see the top of this file). Warnings name their file, as for one set.
 */
export async function* readMergedEvents(captures: readonly InstanceCapture[], options: CaptureSetReadOptions = {}): AsyncGenerator<CaptureEvent> {
  const cursors: Cursor[] = [];
  try {
    for (const [index, c] of captures.entries()) {
      const cursor: Cursor = { index, instance: c.instance, events: readCaptureSetEvents(c.set, options), head: null, ids: new Map() };
      await advance(cursor);
      cursors.push(cursor);
    }
    let next = 1;
    for (;;) {
      let earliest: Cursor | null = null;
      for (const c of cursors) if (c.head && (!earliest || c.head.t < (earliest.head as CaptureEvent).t)) earliest = c;
      if (!earliest) return;
      const event = earliest.head as CaptureEvent;
      await advance(earliest);
      yield labelled(event, earliest, () => next++);
    }
  } finally {
    for (const c of cursors) await c.events.return(undefined);
  }
}

async function advance(cursor: Cursor): Promise<void> {
  const r = await cursor.events.next();
  cursor.head = r.done ? null : r.value;
}

/** The event with its connection renumbered and its instance named where a view needs it. */
function labelled(event: CaptureEvent, cursor: Cursor, nextId: () => number): CaptureEvent {
  switch (event.kind) {
    case 'session.start':
    case 'session.end':
    case 'capture.gap':
      return { ...event, instance: cursor.instance };
    default:
      break;
  }
  if (!('conn' in event)) return event;
  const original = event.conn;
  let id = cursor.ids.get(original);
  const first = id === undefined;
  if (id === undefined) {
    id = nextId();
    cursor.ids.set(original, id);
  }
  if (event.kind === 'conn.close') cursor.ids.delete(original);
  // The first event says where the connection came from: its conn.open, or (its open not in the files) a stand-in's first event.
  if (first || event.kind === 'conn.open') return { ...event, conn: id, instance: cursor.instance, instanceConn: original } as CaptureEvent;
  return { ...event, conn: id };
}
