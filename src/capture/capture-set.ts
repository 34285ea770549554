import fs from 'node:fs';
import path from 'node:path';
import { GAP_SEGMENT_MISSING, type CaptureEvent, type CaptureGapEvent } from './events.js';
import { headerSessionStart, segmentPath, type CaptureHeader } from './capture-format.js';
import { checkCaptureHeader, readCaptureEvents } from './capture-reader.js';

/** One file of a rotated set (or the single file of an unrotated capture). */
export interface CaptureSegment {
  path: string;
  /** The header's segment number (0 when the header has none: a capture from before rotation). */
  segment: number;
  header: CaptureHeader;
}

/** The files of one proxy session, in the order they were written. */
export interface CaptureSet {
  /** The name segment 0 has (or had, when --keep deleted it): segmentPath(base, n) names the others. */
  base: string;
  /** null for a capture from before rotation (one file). */
  session: string | null;
  segments: CaptureSegment[];
  /** Segments between the first and the last present that are missing, each named by its path. */
  holes: Array<{ segment: number; path: string }>;
  /** What the reader should be told about the set (files read, deleted leading segments); empty for one plain file. */
  notes: string[];
}

export class CaptureSetError extends Error {
  readonly code = 'WSTAP_BAD_CAPTURE_SET';
  constructor(message: string) {
    super(message);
    this.name = 'CaptureSetError';
  }
}

function segmentOf(header: CaptureHeader): number {
  return typeof header.segment === 'number' && Number.isInteger(header.segment) && header.segment >= 0 ? header.segment : 0;
}

function sessionOf(header: CaptureHeader): string | null {
  return typeof header.session === 'string' && header.session !== '' ? header.session : null;
}

/** Files named `base.<digits>` beside `base`, with their segment number from the name. */
export function siblingSegmentPaths(base: string): Array<{ path: string; n: number }> {
  const dir = path.dirname(base);
  const prefix = `${path.basename(base)}.`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const out: Array<{ path: string; n: number }> = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const digits = name.slice(prefix.length);
    if (!/^[1-9][0-9]{0,8}$/.test(digits)) continue;
    const n = Number(digits);
    out.push({ path: segmentPath(base, n), n });
  }
  return out.sort((a, b) => a.n - b.n);
}

/** Headers of the siblings that are readable captures; unreadable ones (being created, not ours) are skipped. */
function siblingSegments(base: string): CaptureSegment[] {
  const out: CaptureSegment[] = [];
  for (const sibling of siblingSegmentPaths(base)) {
    try {
      const header = checkCaptureHeader(sibling.path);
      out.push({ path: sibling.path, segment: segmentOf(header), header });
    } catch {
      // A file named like a segment that is not a capture (or has no complete header yet) is not part of the set.
    }
  }
  return out;
}

/**
 * The set `wstap view FILE` means: FILE and every `FILE.<n>` of the same
 * session, or, when FILE itself was deleted (--keep), the `FILE.<n>` that
 * remain. Throws the fs error for a FILE that is missing with no siblings.
 */
export function discoverCaptureSet(base: string): CaptureSet {
  if (fs.existsSync(base)) {
    const header = checkCaptureHeader(base);
    const first: CaptureSegment = { path: base, segment: segmentOf(header), header };
    const session = sessionOf(header);
    // A later segment named alone is read alone (the set is read from its first file's name).
    if (session === null || first.segment > 0) return finishSet(baseOf(first), session, [first]);
    const same = siblingSegments(base).filter((s) => sessionOf(s.header) === session);
    return finishSet(base, session, [first, ...same]);
  }
  const siblings = siblingSegments(base).filter((s) => sessionOf(s.header) !== null);
  if (siblings.length === 0) {
    checkCaptureHeader(base); // throws ENOENT naming the file, as for any missing file
    throw new CaptureSetError(`${base}: not found`);
  }
  const sessions = new Set(siblings.map((s) => sessionOf(s.header)));
  if (sessions.size > 1) {
    throw new CaptureSetError(
      `${base} is gone and the files beside it belong to ${sessions.size} different sessions (${siblings.map((s) => path.basename(s.path)).join(', ')}); name the files to read`,
    );
  }
  return finishSet(base, sessionOf((siblings[0] as CaptureSegment).header), siblings);
}

/**
 * Several files named on the command line: one session's files, ordered by
 * segment. Files of different sessions are refused (merging several
 * proxies' captures by time is another matter).
 */
export function captureSetOfFiles(paths: readonly string[]): CaptureSet {
  if (paths.length === 1) return discoverCaptureSet(paths[0] as string);
  const segments = paths.map((p) => {
    const header = checkCaptureHeader(p);
    return { path: p, segment: segmentOf(header), header };
  });
  const bySession = new Map<string, string[]>();
  for (const s of segments) {
    // A capture from before rotation is a session of its own.
    const key = sessionOf(s.header) ?? `(no session: ${s.path})`;
    bySession.set(key, [...(bySession.get(key) ?? []), s.path]);
  }
  if (bySession.size > 1) {
    const groups = [...bySession].map(([session, files]) => `${session.startsWith('(') ? session : `session ${session}`}: ${files.join(', ')}`);
    throw new CaptureSetError(`these files are captures of different sessions, which cannot be read as one (${groups.join('; ')})`);
  }
  const ordered = [...segments].sort((a, b) => a.segment - b.segment);
  const first = ordered[0] as CaptureSegment;
  const base = baseOf(first);
  return finishSet(base, sessionOf(first.header), ordered);
}

/** The name segment 0 has, from a segment's path: `cap.jsonl.3` -> `cap.jsonl`. */
function baseOf(s: CaptureSegment): string {
  const suffix = `.${s.segment}`;
  return s.segment > 0 && s.path.endsWith(suffix) ? s.path.slice(0, -suffix.length) : s.path;
}

function finishSet(base: string, session: string | null, found: CaptureSegment[]): CaptureSet {
  const segments = [...found].sort((a, b) => a.segment - b.segment);
  for (let i = 1; i < segments.length; i++) {
    const a = segments[i - 1] as CaptureSegment;
    const b = segments[i] as CaptureSegment;
    if (a.segment === b.segment) throw new CaptureSetError(`${a.path} and ${b.path} both say they are segment ${a.segment} of session ${session ?? '(none)'}`);
  }
  const holes: CaptureSet['holes'] = [];
  for (let i = 1; i < segments.length; i++) {
    for (let n = (segments[i - 1] as CaptureSegment).segment + 1; n < (segments[i] as CaptureSegment).segment; n++) holes.push({ segment: n, path: segmentPath(base, n) });
  }
  const notes: string[] = [];
  const first = (segments[0] as CaptureSegment).segment;
  const last = (segments.at(-1) as CaptureSegment).segment;
  if (segments.length > 1 || first > 0) {
    const range = first === last ? `segment ${first}` : `segments ${first}-${last}`;
    const deleted = first === 0 ? '' : earlierSegmentsExist(base, first) ? `; segments before ${first} are there but not read (name the first file to read the whole set)` : `; segments before ${first} were deleted (--keep)`;
    notes.push(`reading ${segments.length} file${segments.length === 1 ? '' : 's'} of the set, ${range}${deleted}`);
  }
  return { base, session, segments, holes, notes };
}

/** Warnings name the file: a set has several. */
export interface CaptureSetWarning {
  path: string;
  /** null for a warning about the set (a missing segment), not a line. */
  line: number | null;
  message: string;
}

export interface CaptureSetReadOptions {
  onWarning?: (warning: CaptureSetWarning) => void;
  /** Bytes read over all the files, for progress against totalBytes(set). */
  progress?: { bytesRead: number };
}

export function totalBytes(set: CaptureSet): number {
  let total = 0;
  for (const s of set.segments) {
    try {
      total += fs.statSync(s.path).size;
    } catch {
      // Deleted since discovery: it will fail when read, with its name.
    }
  }
  return total;
}

/** Whether any segment before `first` is still on disk (then it was not deleted, only not named). */
function earlierSegmentsExist(base: string, first: number): boolean {
  for (let n = 0; n < first; n++) if (fs.existsSync(segmentPath(base, n))) return true;
  return false;
}

/** Warns about each missing middle segment; the events say it too, as a capture.gap. */
export function missingSegmentWarning(hole: { segment: number; path: string }): string {
  return `segment ${hole.segment} (${hole.path}) is missing: its events are not in what follows, and connections open across it may lack events`;
}

/**
 * The gap a missing segment leaves, as an event: the fold then knows that
 * connections open across it may have lost events (close evidence included)
 * and does not rank what follows against what it never saw.
 */
export function missingSegmentGap(from: number, t: number, segments: readonly number[]): CaptureGapEvent {
  return { kind: 'capture.gap', t, from, lostEvents: 0, code: GAP_SEGMENT_MISSING, missingSegments: [...segments] };
}

/**
 * Streams the events of a set's files in segment order, one file at a time
 * (memory bounded as readCaptureEvents is). A missing segment is warned
 * about and stands in the stream as a capture.gap before the next file's
 * first event. A set read while its proxy still writes it (the UI's export)
 * may lose a file to --keep between discovery and reading: that file is
 * missing the same way (a gap when events were read before it), never an
 * error that ends the read. A set whose first file is a later segment starts
 * with the session.start that file's header repeats.
 */
export async function* readCaptureSetEvents(set: CaptureSet, options: CaptureSetReadOptions = {}): AsyncGenerator<CaptureEvent> {
  let lastT: number | null = null;
  let previous: number | null = null;
  let missing: number[] = [];
  for (const segment of set.segments) {
    const holes = previous === null ? [] : set.holes.filter((h) => h.segment > (previous as number) && h.segment < segment.segment);
    for (const hole of holes) options.onWarning?.({ path: hole.path, line: null, message: missingSegmentWarning(hole) });
    missing.push(...holes.map((h) => h.segment));
    const fd = openSegment(segment.path);
    if (fd === null) {
      options.onWarning?.({ path: segment.path, line: null, message: DELETED_WHILE_READ });
      // Before anything was read it is part of the deleted beginning, not a gap.
      if (previous !== null) missing.push(segment.segment);
      continue;
    }
    // The first file read is a later one (--keep deleted the start): its header still says how the session started.
    const start = previous === null && segment.segment > 0 ? headerSessionStart(segment.header) : null;
    if (start) {
      lastT = start.t;
      yield start;
    }
    const fileOptions = {
      fd,
      ...(options.onWarning ? { onWarning: (w: { line: number; message: string }) => options.onWarning?.({ path: segment.path, line: w.line, message: w.message }) } : {}),
      ...(options.progress ? { progress: options.progress } : {}),
    };
    for await (const event of readCaptureEvents(segment.path, fileOptions)) {
      if (missing.length > 0) {
        yield missingSegmentGap(lastT ?? event.t, event.t, missing);
        missing = [];
      }
      lastT = event.t;
      yield event;
    }
    previous = segment.segment;
  }
}

const DELETED_WHILE_READ = 'deleted while the set was read (--keep rotated the capture meanwhile): its events are not in what follows';

/** The segment opened for reading, or null when it is gone since discovery (--keep); an open fd reads it even once deleted. */
function openSegment(file: string): number | null {
  try {
    return fs.openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}
