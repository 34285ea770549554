import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

interface Spill {
  file: string | null;
  buffered: string[];
  bufferedBytes: number;
  count: number;
}

/**
 * Lists of JSON items kept per key (a connection's messages or frames) until
 * their entry is written. Past a total budget the largest list goes to a
 * temporary file, so a capture of any size needs bounded memory.
 */
export class SpillStore {
  readonly #dir: string;
  readonly #budget: number;
  readonly #spills = new Map<string, Spill>();
  #bufferedBytes = 0;
  #files = 0;

  constructor(options: { budgetBytes?: number } = {}) {
    this.#budget = options.budgetBytes ?? 8 * 1024 * 1024;
    this.#dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-export-'));
  }

  append(key: string, json: string): void {
    let spill = this.#spills.get(key);
    if (!spill) {
      spill = { file: null, buffered: [], bufferedBytes: 0, count: 0 };
      this.#spills.set(key, spill);
    }
    const item = spill.count === 0 ? json : ',' + json;
    spill.count++;
    spill.buffered.push(item);
    spill.bufferedBytes += item.length;
    this.#bufferedBytes += item.length;
    if (this.#bufferedBytes > this.#budget) this.#spillLargest();
  }

  /** Hands the key's items, comma-separated, to `write` in order, then forgets them. */
  async drain(key: string, write: (text: string) => Promise<void>): Promise<void> {
    const spill = this.#spills.get(key);
    if (!spill) return;
    this.#spills.delete(key);
    if (spill.file) {
      const stream = fs.createReadStream(spill.file, { encoding: 'utf8', highWaterMark: 1024 * 1024 });
      for await (const chunk of stream) await write(chunk as string);
      fs.rmSync(spill.file, { force: true });
    }
    this.#bufferedBytes -= spill.bufferedBytes;
    if (spill.buffered.length > 0) await write(spill.buffered.join(''));
  }

  /** Removes the temporary directory and anything left in it. */
  dispose(): void {
    fs.rmSync(this.#dir, { recursive: true, force: true });
    this.#spills.clear();
    this.#bufferedBytes = 0;
  }

  #spillLargest(): void {
    let largest: Spill | null = null;
    for (const spill of this.#spills.values()) if (!largest || spill.bufferedBytes > largest.bufferedBytes) largest = spill;
    if (!largest || largest.bufferedBytes === 0) return;
    largest.file ??= path.join(this.#dir, `spill-${++this.#files}.json`);
    fs.appendFileSync(largest.file, largest.buffered.join(''), { mode: 0o600 });
    this.#bufferedBytes -= largest.bufferedBytes;
    largest.buffered = [];
    largest.bufferedBytes = 0;
  }
}
