import type { NginxLogEvent } from '../capture/events.js';
import type { NginxErrorLine } from './error-log-line.js';

/**
 * Bytes of an error log as they arrive -> whole lines. A line is complete at
 * its newline (nginx writes each line with one write(2), newline included);
 * what comes after the last newline is held until the rest arrives. Held
 * text is bounded: nginx's lines are at most 2048 bytes (NGX_MAX_ERROR_STR),
 * so more than MAX_PARTIAL without a newline is not an nginx line, and is
 * dropped (counted) rather than grown without end.
 */
export const MAX_PARTIAL = 16 * 1024;

export class ErrorLogLineSplitter {
  #partial = '';
  #dropped = 0;

  /** Complete lines in this chunk (with what was held before it), without their newlines. */
  push(chunk: Buffer | string): string[] {
    const text = this.#partial + (typeof chunk === 'string' ? chunk : chunk.toString('utf8'));
    const lines = text.split('\n');
    this.#partial = lines.pop() ?? '';
    if (this.#partial.length > MAX_PARTIAL) {
      this.#partial = '';
      this.#dropped++;
    }
    return lines.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l)).filter((l) => l !== '');
  }

  /** Text after the last newline (a line being written, or one cut short). */
  get partial(): string {
    return this.#partial;
  }

  /** Hands over the held text as a line (the file ended or was replaced) and forgets it. */
  takePartial(): string {
    const p = this.#partial;
    this.#partial = '';
    return p;
  }

  /** Overlong runs without a newline that were dropped. */
  get dropped(): number {
    return this.#dropped;
  }
}

/** A parsed line as a capture event, read at `t`. */
export function errorLogEvent(line: NginxErrorLine, file: string, t: number): NginxLogEvent {
  return {
    kind: 'nginx.log',
    t,
    file,
    at: line.at,
    time: line.time,
    level: line.level,
    pid: line.pid,
    tid: line.tid,
    ...(line.connection !== undefined ? { connection: line.connection } : {}),
    message: line.message,
    ...(line.errno ? { errno: line.errno } : {}),
    ...(line.action !== undefined ? { action: line.action } : {}),
    fields: line.fields,
  };
}

/** The line as nginx wrote it, rebuilt from the event (for evidence): time, level, *N, message, action, tails. */
export function errorLogText(e: NginxLogEvent): string {
  const errno = e.errno ? ` (${e.errno.code}: ${e.errno.text})` : '';
  const action = e.action !== undefined ? ` while ${e.action}` : '';
  const quoted = new Set(['request', 'subrequest', 'upstream', 'host', 'referrer']);
  const tails = Object.entries(e.fields)
    .map(([k, v]) => `, ${k}: ${quoted.has(k) ? `"${v}"` : v}`)
    .join('');
  return `${e.time} [${e.level}] ${e.pid}#${e.tid}: ${e.connection !== undefined ? `*${e.connection} ` : ''}${e.message}${errno}${action}${tails}`;
}
