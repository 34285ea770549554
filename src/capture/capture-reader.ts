import fs from 'node:fs';
import readline from 'node:readline';
import type { CaptureEvent } from './events.js';
import { CAPTURE_FORMAT, CAPTURE_VERSION, type CaptureHeader } from './capture-format.js';

export class CaptureFormatError extends Error {
  readonly code = 'WSTAP_BAD_CAPTURE';
  constructor(
    readonly path: string,
    readonly line: number,
    message: string,
  ) {
    super(`${path}:${line}: ${message}`);
    this.name = 'CaptureFormatError';
  }
}

export interface CaptureReadWarning {
  line: number;
  message: string;
}

export interface CaptureReadOptions {
  /** Damaged lines skipped: at the end of the file (a crash cut it), or torn before a capture.gap. Damage elsewhere is an error. */
  onWarning?: (warning: CaptureReadWarning) => void;
  /** Updated as the file is read, for progress reports. */
  progress?: { bytesRead: number };
  /** The file already opened (read from its start, closed when done): a set's reader opens before --keep can delete it. */
  fd?: number;
}

/**
 * Checks that a file starts with a capture header we can read, without
 * reading the rest: callers refuse bad input before creating any output.
 */
export function checkCaptureHeader(path: string): CaptureHeader {
  const text = readFileHead(path, 4096);
  if (text.length === 0) throw new CaptureFormatError(path, 1, 'file is empty; not a wstap capture');
  const newline = text.indexOf('\n');
  return parseHeader(path, newline < 0 ? text : text.slice(0, newline));
}

/** The first `bytes` bytes of a file as UTF-8, without reading the rest (files can be gigabytes). */
export function readFileHead(path: string, bytes: number): string {
  const fd = fs.openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(bytes);
    return buffer.subarray(0, fs.readSync(fd, buffer, 0, bytes, 0)).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

function parseHeader(path: string, text: string): CaptureHeader {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CaptureFormatError(path, 1, 'not a wstap capture (first line is not JSON)');
  }
  const header = value as Partial<CaptureHeader> | null;
  if (!header || typeof header !== 'object' || header.format !== CAPTURE_FORMAT) {
    throw new CaptureFormatError(path, 1, `not a wstap capture (first line does not name format "${CAPTURE_FORMAT}")`);
  }
  if (typeof header.version !== 'number' || header.version > CAPTURE_VERSION) {
    throw new CaptureFormatError(
      path,
      1,
      `capture format version ${String(header.version)} is newer than this wstap reads (${CAPTURE_VERSION}); upgrade wstap`,
    );
  }
  return header as CaptureHeader;
}

function isEvent(value: unknown): value is CaptureEvent {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { kind?: unknown }).kind === 'string' &&
    typeof (value as { t?: unknown }).t === 'number'
  );
}

/** Lines that could not be read, waiting for what follows them to say whether that is damage. */
interface DamagedRun {
  line: number;
  message: string;
  count: number;
  /** Every line of the run is unfinished JSON, as a write cut short leaves it. */
  torn: boolean;
}

/**
 * Streams the events of a capture file back, in file order. Memory stays
 * bounded whatever the file size. Damaged lines are skipped with a warning
 * when they end the file (the process was killed mid-write) or when a
 * `capture.gap` follows them (the disk failed mid-write; the gap counts the
 * events lost); damage elsewhere is an error.
 */
export async function* readCaptureEvents(path: string, options: CaptureReadOptions = {}): AsyncGenerator<CaptureEvent> {
  const input = fs.createReadStream(path, { highWaterMark: 1024 * 1024, ...(options.fd === undefined ? {} : { fd: options.fd, start: 0 }) });
  const progress = options.progress;
  if (progress) input.on('data', (chunk) => (progress.bytesRead += chunk.length));
  const lines = readline.createInterface({ input, crlfDelay: Infinity });
  let lineNo = 0;
  let damaged: DamagedRun | null = null;
  try {
    for await (const text of lines) {
      lineNo++;
      if (lineNo === 1) {
        parseHeader(path, text);
        continue;
      }
      if (text.length === 0) continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        damaged = extendRun(damaged, lineNo, 'line is not valid JSON', true);
        continue;
      }
      if (!isEvent(value)) {
        damaged = extendRun(damaged, lineNo, 'line is not a capture event (needs "kind" and "t")', false);
        continue;
      }
      if (damaged) {
        if (value.kind !== 'capture.gap' || !damaged.torn) throw new CaptureFormatError(path, damaged.line, damaged.message);
        options.onWarning?.({
          line: damaged.line,
          message: `${damaged.count === 1 ? 'a line' : `${damaged.count} lines`} torn by a failed write, skipped; the capture.gap on line ${lineNo} counts the events lost`,
        });
        damaged = null;
      }
      yield value;
    }
  } finally {
    lines.close();
    input.destroy();
  }
  if (lineNo === 0) throw new CaptureFormatError(path, 1, 'file is empty; not a wstap capture');
  if (damaged) {
    options.onWarning?.({ line: damaged.line, message: `${damaged.message}; the capture was probably cut short, events up to line ${damaged.line - 1} were read` });
  }
}

function extendRun(run: DamagedRun | null, line: number, message: string, torn: boolean): DamagedRun {
  if (!run) return { line, message, count: 1, torn };
  return { ...run, count: run.count + 1, torn: run.torn && torn };
}

export async function readCaptureFile(path: string, options: CaptureReadOptions = {}): Promise<CaptureEvent[]> {
  const events: CaptureEvent[] = [];
  for await (const event of readCaptureEvents(path, options)) events.push(event);
  return events;
}
