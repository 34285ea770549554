import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import type { CaptureEvent } from '../capture/events.js';
import { HarFold, type HarFoldOptions, type HarFoldStats } from './har-fold.js';
import type { HarEntry } from './har-types.js';
import { SpillStore } from './spill-store.js';

export interface HarExportOptions extends HarFoldOptions {
  path: string;
  overwrite: boolean;
  creatorVersion: string;
  /** Called about once a second while exporting. */
  onProgress?: (stats: HarFoldStats) => void;
  /** Called once the output file exists (so a failure can remove it). */
  onOpened?: () => void;
  /** Memory for messages and frames of open connections before they go to temporary files. */
  spillBudgetBytes?: number;
}

/**
 * Streams events into a HAR file: entries are written as their connections
 * close, and each WebSocket entry's messages and frames are spliced in from
 * the spill store, so neither the capture nor the HAR is ever held whole.
 */
export async function writeHarFile(events: AsyncIterable<CaptureEvent>, options: HarExportOptions): Promise<HarFoldStats> {
  // Open first: refusing to overwrite must happen before any work.
  const fd = fs.openSync(options.path, options.overwrite ? 'w' : 'wx', 0o600);
  options.onOpened?.();
  const out = fs.createWriteStream('', { fd, autoClose: true });
  const write = (text: string): Promise<void> =>
    out.write(text)
      ? Promise.resolve()
      : new Promise((resolve, reject) => {
          const onDrain = (): void => {
            out.off('error', onError);
            resolve();
          };
          const onError = (err: Error): void => {
            out.off('drain', onDrain);
            reject(err);
          };
          out.once('drain', onDrain);
          out.once('error', onError);
        });
  const spill = new SpillStore(options.spillBudgetBytes !== undefined ? { budgetBytes: options.spillBudgetBytes } : {});
  const marker = `wstap-stream-${randomUUID()}`;
  const pending: Array<{ entry: HarEntry; conn: number | null }> = [];
  const fold = new HarFold(options, {
    message: (conn, message) => spill.append(`${conn}/m`, JSON.stringify(message)),
    frame: (conn, frame) => spill.append(`${conn}/f`, JSON.stringify(frame)),
    entry: (entry, conn) => pending.push({ entry, conn }),
  });
  let written = 0;
  const writePending = async (): Promise<void> => {
    while (pending.length > 0) {
      const { entry, conn } = pending.shift() as { entry: HarEntry; conn: number | null };
      await write(written++ === 0 ? '\n' : ',\n');
      if (conn === null || !entry._wstap) {
        await write(JSON.stringify(entry));
        continue;
      }
      const text = JSON.stringify({ ...entry, _webSocketMessages: `${marker}-m`, _wstap: { ...entry._wstap, frames: `${marker}-f` } });
      const [head = '', rest = ''] = text.split(`"${marker}-m"`);
      const [middle = '', tail = ''] = rest.split(`"${marker}-f"`);
      await write(head + '[');
      await spill.drain(`${conn}/m`, write);
      await write(']' + middle + '[');
      await spill.drain(`${conn}/f`, write);
      await write(']' + tail);
    }
  };

  let lastProgress = Date.now();
  try {
    await write(`{"log":{"version":"1.2","creator":{"name":"wstap","version":${JSON.stringify(options.creatorVersion)}},"pages":[],"entries":[`);
    for await (const event of events) {
      fold.apply(event);
      if (pending.length > 0) await writePending();
      if (options.onProgress && Date.now() - lastProgress >= 1000) {
        lastProgress = Date.now();
        options.onProgress(fold.stats);
      }
    }
    fold.finish();
    await writePending();
    // Known only once every event is read, so after the entries (key order means nothing in JSON).
    const facts = fold.sessionFacts();
    const sessionFacts = facts ? `,"_wstap":${JSON.stringify(facts)}` : '';
    await write(`\n]${sessionFacts}}}\n`);
  } finally {
    spill.dispose();
    await new Promise<void>((resolve) => out.end(resolve));
  }
  return fold.stats;
}
