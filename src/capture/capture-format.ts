import type { SessionStartEvent } from './events.js';

/** The first line of every capture file names the format and its version. */
export const CAPTURE_FORMAT = 'wstap-capture';
export const CAPTURE_VERSION = 1;

export interface CaptureHeader {
  format: typeof CAPTURE_FORMAT;
  version: number;
  createdBy: string;
  /**
   * Random id shared by every file one proxy session writes (rotation, --rotate),
   * so a reader can tell a set's files from another session's. Absent in
   * captures written before rotation existed.
   */
  session?: string;
  /** 0 for a session's first file, then 1, 2, ... in the order written. Absent means 0. */
  segment?: number;
  /**
   * The session's `session.start`, repeated in the header of every later
   * segment: once --keep has deleted segment 0 (whose first event it is),
   * where the proxy listened, its target and mode are still known. A reader
   * whose first file is a later segment yields it first. Absent in segment 0
   * and in older captures.
   */
  start?: SessionStartEvent;
  /**
   * The proxy's --instance name (host name and listen address by default),
   * so captures from several hosts read together say which connection came
   * from where. Absent in captures written before it existed.
   */
  instance?: string;
}

/**
 * Where segment `segment` of the capture named `base` lives: the first file
 * keeps the name the user gave, later ones get `.1`, `.2`, ... appended, as
 * tcpdump -C numbers its files. Names never shift, so a reader that follows
 * the set (view --follow) never sees a file renamed under it.
 */
export function segmentPath(base: string, segment: number): string {
  return segment === 0 ? base : `${base}.${segment}`;
}

export function captureHeaderLine(createdBy: string, set?: { session: string; segment: number; start?: SessionStartEvent }, instance?: string): string {
  const header: CaptureHeader = { format: CAPTURE_FORMAT, version: CAPTURE_VERSION, createdBy, ...set, ...(instance !== undefined ? { instance } : {}) };
  return JSON.stringify(header) + '\n';
}

/** The `start` a later segment's header repeats, if it is one (a reader trusts no field unchecked). */
export function headerSessionStart(header: CaptureHeader): SessionStartEvent | null {
  const start = header.start as Partial<SessionStartEvent> | undefined;
  return start && typeof start === 'object' && start.kind === 'session.start' && typeof start.t === 'number' ? (start as SessionStartEvent) : null;
}

/** The instance a header names, if it names one as a non-empty string (a reader trusts no field unchecked). */
export function headerInstance(header: CaptureHeader): string | null {
  return typeof header.instance === 'string' && header.instance !== '' ? header.instance : null;
}
