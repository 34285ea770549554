import type { CaptureEvent, ConnCloseEvent, NginxLogEvent, NginxLogSourceEvent } from '../capture/events.js';

/**
 * A recording's events with nginx error-log lines read after the fact
 * (`view`/`export --nginx-error-log`) merged in by time, as the live proxy
 * would have recorded them:
 * - the log's `nginx.log.source` events right after `session.start`;
 * - each line where its time falls (its `t` is the end of its logged second);
 * - each `conn.close` held until the log has passed a second after it, so
 *   every line nginx wrote about the connection (nginx logs whole seconds)
 *   precedes the close's verdict, as the live proxy holds a close until the
 *   log is read past it.
 * Lines and sources the recording itself holds (a proxy that followed a log)
 * are replaced by the ones given. Streams both inputs: bounded by the closes
 * held within one second.
 */
export const CLOSE_HELD_MS = 1000;

export async function* mergeErrorLog(
  events: AsyncIterable<CaptureEvent> | Iterable<CaptureEvent>,
  lines: AsyncIterable<NginxLogEvent>,
  sources: readonly NginxLogSourceEvent[],
): AsyncGenerator<CaptureEvent> {
  const logIt = lines[Symbol.asyncIterator]();
  let next: NginxLogEvent | null = null;
  let logDone = false;
  const peek = async (): Promise<NginxLogEvent | null> => {
    if (next === null && !logDone) {
      const r = await logIt.next();
      if (r.done) logDone = true;
      else next = r.value;
    }
    return next;
  };
  const held: ConnCloseEvent[] = [];
  let sourced = false;

  /** Lines and held closes due by `until`, in time order (a line before a close due at the same moment). */
  async function* release(until: number): AsyncGenerator<CaptureEvent> {
    for (;;) {
      const line = await peek();
      const close = held[0];
      const closeDue = close ? close.t + CLOSE_HELD_MS : Infinity;
      if (line && line.t <= until && line.t <= closeDue) {
        next = null;
        yield line;
      } else if (close && closeDue <= until) {
        held.shift();
        yield close;
      } else {
        return;
      }
    }
  }

  try {
    for await (const event of events) {
      if (event.kind === 'nginx.log' || event.kind === 'nginx.log.source') continue;
      if (!sourced) {
        sourced = true;
        if (event.kind === 'session.start') {
          yield event;
          yield* sources.map((s) => ({ ...s, t: event.t }));
          continue;
        }
        yield* sources.map((s) => ({ ...s, t: event.t }));
      }
      if (event.kind === 'session.end') {
        // Every close out before the end; the log's later lines (after the session) follow it.
        const lastDue = held.length > 0 ? (held[held.length - 1] as ConnCloseEvent).t + CLOSE_HELD_MS : event.t;
        yield* release(Math.max(event.t, lastDue));
        yield* held.splice(0);
        yield event;
        continue;
      }
      yield* release(event.t);
      if (event.kind === 'conn.close') held.push(event);
      else yield event;
    }
    if (!sourced) yield* sources;
    yield* release(Infinity);
  } finally {
    await logIt.return?.();
  }
}
