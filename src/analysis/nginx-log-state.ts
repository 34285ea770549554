import type { NginxLogEvent, NginxLogSourceEvent } from '../capture/events.js';

/**
 * What the nginx error log read beside a session has shown so far, for
 * every connection's verdict: whether it logs at `info` (where nginx writes
 * its timeout of an upgraded connection; a log without a single info line
 * cannot be trusted to be silent) and the timeout lines no connection could
 * be tied to (then a timeout line's absence proves nothing). Bounded.
 */
export interface NginxLogState {
  files: string[];
  lines: number;
  infoLines: number;
  /** nginx's time of the last info-level line. */
  lastInfoAt: number | null;
  /** The last info-level line's time as nginx wrote it. */
  lastInfoTime: string | null;
  /** Recent timeout lines of an upgraded connection not tied to one connection (how many fit), newest last. */
  untiedTimeouts: Array<{ event: NginxLogEvent; fits: number }>;
}

const MAX_UNTIED = 32;

export function newNginxLogState(): NginxLogState {
  return { files: [], lines: 0, infoLines: 0, lastInfoAt: null, lastInfoTime: null, untiedTimeouts: [] };
}

/** nginx's timer of an upgraded connection fired: "upstream timed out" (proxy_read/send_timeout) or "client timed out" (send_timeout). */
export function isUpgradedTimeout(e: NginxLogEvent): boolean {
  return e.action === 'proxying upgraded connection' && (e.message === 'upstream timed out' || e.message === 'client timed out');
}

/** A log read beside the session: its file, and what its end held before following began. */
export function noteSource(state: NginxLogState, e: NginxLogSourceEvent): void {
  if (!state.files.includes(e.file)) state.files.push(e.file);
  if (!e.before) return;
  state.lines += e.before.lines;
  state.infoLines += e.before.infoLines;
  state.lastInfoTime = e.before.lastInfoTime ?? state.lastInfoTime;
}

export function noteLine(state: NginxLogState, e: NginxLogEvent): void {
  state.lines++;
  if (!state.files.includes(e.file)) state.files.push(e.file);
  if (e.level === 'info') {
    state.infoLines++;
    state.lastInfoAt = e.at;
    state.lastInfoTime = e.time;
  }
}

export function noteUntied(state: NginxLogState, e: NginxLogEvent, fits: number): void {
  if (!isUpgradedTimeout(e)) return;
  state.untiedTimeouts.push({ event: e, fits });
  if (state.untiedTimeouts.length > MAX_UNTIED) state.untiedTimeouts.shift();
}
