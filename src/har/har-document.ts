import type { CaptureEvent } from '../capture/events.js';
import { HarFold, type HarFoldOptions } from './har-fold.js';
import type { HarEntry, HarFrame, HarLog, HarWebSocketMessage } from './har-types.js';

/**
 * The whole HAR in memory, for small sessions and tests. `writeHarFile`
 * produces the same document as a stream.
 */
export function buildHar(events: Iterable<CaptureEvent>, options: HarFoldOptions, creatorVersion: string): HarLog {
  const messages = new Map<number, HarWebSocketMessage[]>();
  const frames = new Map<number, HarFrame[]>();
  const entries: HarEntry[] = [];
  const listOf = <T>(map: Map<number, T[]>, conn: number): T[] => {
    let list = map.get(conn);
    if (!list) map.set(conn, (list = []));
    return list;
  };
  const fold = new HarFold(options, {
    message: (conn, message) => listOf(messages, conn).push(message),
    frame: (conn, frame) => listOf(frames, conn).push(frame),
    entry: (entry, conn) => {
      if (conn !== null && entry._wstap) {
        entry._webSocketMessages = messages.get(conn) ?? [];
        entry._wstap.frames = frames.get(conn) ?? [];
        messages.delete(conn);
        frames.delete(conn);
      }
      entries.push(entry);
    },
  });
  for (const event of events) fold.apply(event);
  fold.finish();
  const log: HarLog['log'] = { version: '1.2', creator: { name: 'wstap', version: creatorVersion }, pages: [], entries };
  const sessionFacts = fold.sessionFacts();
  if (sessionFacts) log._wstap = sessionFacts;
  return { log };
}
