import type { CaptureEvent, NginxLogEvent } from '../capture/events.js';
import { checkErrorLogFiles, errorLogSourceEvent, readErrorLogFiles } from '../nginx/error-log-file.js';
import { LOCAL_TIME } from '../nginx/error-log-line.js';
import { mergeErrorLog } from '../nginx/error-log-merge.js';
import { UsageError } from './usage-error.js';

/** The text of --nginx-error-log for view and export. */
export const NGINX_LOG_HELP = `  --nginx-error-log FILE
                        nginx's error log as evidence, merged by time: its lines
                        about each connection name the hop that cut it (repeat
                        for a rotated log, oldest first: error.log.1 error.log);
                        replaces the lines the capture recorded. nginx's times
                        are read in this process's time zone (set TZ to nginx's)
`;

/**
 * `view`/`export --nginx-error-log FILE...`: the files checked now (bad input
 * fails before any output), and the recording's events with their lines
 * merged in. Null without the option.
 */
/** The files of --nginx-error-log, checked now: bad input fails before anything runs. */
function errorLogFiles(option: unknown): string[] {
  const files = (Array.isArray(option) ? option : option === undefined ? [] : [option]).filter((f): f is string => typeof f === 'string');
  try {
    checkErrorLogFiles(files);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new UsageError(`--nginx-error-log ${e.path ?? files.join(', ')}: cannot be read (${e.code ?? e.message})`);
  }
  return files;
}

/**
 * `probe --nginx-error-log FILE...`: the files checked now; `read` gives the
 * lines from `from` (epoch ms) on, read after the run, at most `limit` of them
 * (the newest kept): a probe needs minutes of log, not the whole file.
 */
export function nginxLogLines(option: unknown, onNote: (message: string) => void): ((from: number, limit?: number) => Promise<NginxLogEvent[]>) | null {
  const files = errorLogFiles(option);
  if (files.length === 0) return null;
  return async (from, limit = 100_000) => {
    const out: NginxLogEvent[] = [];
    for await (const e of readErrorLogFiles(files, LOCAL_TIME, (n) => onNote(`${n.file}: ${n.message}`))) {
      if (e.at < from) continue;
      out.push(e);
      if (out.length > limit) out.shift();
    }
    return out;
  };
}

export function nginxLogMerge(
  option: unknown,
  onNote: (message: string) => void,
): ((events: AsyncIterable<CaptureEvent> | Iterable<CaptureEvent>) => AsyncIterable<CaptureEvent>) | null {
  const files = errorLogFiles(option);
  if (files.length === 0) return null;
  return (events) =>
    mergeErrorLog(
      events,
      readErrorLogFiles(files, LOCAL_TIME, (n) => onNote(`${n.file}: ${n.message}`)),
      files.map((file) => errorLogSourceEvent(file, LOCAL_TIME, 0)),
    );
}
