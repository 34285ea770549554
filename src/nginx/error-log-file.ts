import fs from 'node:fs';
import type { NginxLogEvent, NginxLogSourceEvent } from '../capture/events.js';
import { describeZone, parseErrorLogLine, type LogTimeZone } from './error-log-line.js';
import { errorLogEvent, ErrorLogLineSplitter } from './error-log-lines.js';

/**
 * nginx error logs read after the fact (`view`/`export --nginx-error-log`):
 * each file's lines as events, files in the order given (a rotated log:
 * oldest first, error.log.1 then error.log). `t` is the end of the line's
 * logged second, so a merge by time puts a line after every event of the
 * second nginx wrote it in (it may have been written at any moment of it).
 * Lines that are not nginx's format are skipped and counted; a last line
 * without its newline is parsed as it is (nginx was cut off, or is still
 * writing). Never throws for content; a file that cannot be opened throws
 * before anything is read (openErrorLogFiles).
 */

export interface ErrorLogReadNote {
  file: string;
  message: string;
}

/** Checks every file can be read, so bad input fails before any output. */
export function checkErrorLogFiles(files: readonly string[]): void {
  for (const file of files) fs.closeSync(fs.openSync(file, 'r'));
}

export function errorLogSourceEvent(file: string, zone: LogTimeZone, t: number): NginxLogSourceEvent {
  return { kind: 'nginx.log.source', t, file, zone: describeZone(zone) };
}

export async function* readErrorLogFiles(
  files: readonly string[],
  zone: LogTimeZone,
  onNote: (note: ErrorLogReadNote) => void = () => {},
): AsyncGenerator<NginxLogEvent> {
  for (const file of files) {
    const splitter = new ErrorLogLineSplitter();
    let skipped = 0;
    const parse = (text: string): NginxLogEvent | null => {
      const line = parseErrorLogLine(text, zone);
      if (!line) {
        skipped++;
        return null;
      }
      return errorLogEvent(line, file, line.at + 999);
    };
    for await (const chunk of fs.createReadStream(file, { highWaterMark: 64 * 1024 })) {
      for (const text of splitter.push(chunk as Buffer)) {
        const event = parse(text);
        if (event) yield event;
      }
    }
    const last = splitter.takePartial();
    if (last !== '') {
      const event = parse(last);
      if (event) yield event;
      onNote({ file, message: `the last line has no newline (cut short, or being written)${event ? '; read as it is' : '; skipped'}` });
    }
    if (skipped > 0) onNote({ file, message: `${skipped} line(s) not in nginx's error-log format skipped` });
    if (splitter.dropped > 0) onNote({ file, message: `${splitter.dropped} overlong run(s) without a newline skipped` });
  }
}
