import fs from 'node:fs';

/** Free and total bytes of the filesystem holding a path, as an unprivileged writer sees them. */
export interface FreeSpace {
  freeBytes: number;
  totalBytes: number;
}

/** Where free space is read from: statfs by default; tests stand in a disk that fills and empties. */
export interface FreeSpaceSource {
  /** The timer's reading: asynchronous, never on the relay path. */
  read(path: string): Promise<FreeSpace>;
  /** The reading at start (the default limit, a disk already low), where blocking is fine. */
  readSync(path: string): FreeSpace;
}

/** bavail, not bfree: the blocks reserved for root are no room for us. */
function freeSpaceOf(stats: fs.StatsFs): FreeSpace {
  return { freeBytes: stats.bavail * stats.bsize, totalBytes: stats.blocks * stats.bsize };
}

export const STATFS_SOURCE: FreeSpaceSource = {
  read: async (path) => freeSpaceOf(await fs.promises.statfs(path)),
  readSync: (path) => freeSpaceOf(fs.statfsSync(path)),
};

const GIB = 1024 ** 3;

/** --min-free's default: the smaller of 1 GiB and 5 % of the filesystem. */
export function defaultMinFree(totalBytes: number): number {
  return Math.min(GIB, Math.floor(totalBytes * 0.05));
}

/**
 * Free space needed before a paused capture resumes: the limit plus 5 % of
 * it (at least 64 KiB), so a disk hovering at the limit does not switch the
 * capture on and off every second, each time with a gap line.
 */
export function resumeAbove(minFreeBytes: number): number {
  return minFreeBytes + Math.max(64 * 1024, Math.ceil(minFreeBytes / 20));
}

/** Whether the capture is paused after a reading of `freeBytes`. */
export function pausedAfter(paused: boolean, freeBytes: number, minFreeBytes: number): boolean {
  return paused ? freeBytes < resumeAbove(minFreeBytes) : freeBytes < minFreeBytes;
}

export interface DiskGuardOptions {
  /** A directory on the filesystem to watch (the capture's). */
  path: string;
  /** Pause below this many free bytes; absent: `defaultMinFree` of the filesystem. */
  minFreeBytes?: number;
  source?: FreeSpaceSource;
  /** How often free space is read (default 1 s). */
  intervalMs?: number;
  /** Told on each change: paused (free space fell below the limit) or not (back above `resumeAbove`). */
  onChange: (paused: boolean) => void;
}

/**
 * Reads free space on a timer, never per event, and says when it crosses
 * --min-free. Between readings the capture's own writes are taken off the
 * last reading (`wrote`), so a burst of them stops at the limit; what other
 * processes write is seen at the next reading, so the limit is a margin,
 * not the last byte. A reading that fails (the directory removed, a hung
 * network filesystem) changes nothing: the writer's own write errors still
 * apply, and the next reading may work.
 */
export class DiskGuard {
  readonly path: string;
  readonly minFreeBytes: number;
  #freeBytes: number;
  #paused: boolean;
  #reading = false;
  #stopped = false;
  readonly #source: FreeSpaceSource;
  readonly #timer: NodeJS.Timeout;
  readonly #onChange: (paused: boolean) => void;

  constructor(options: DiskGuardOptions) {
    this.path = options.path;
    this.#source = options.source ?? STATFS_SOURCE;
    this.#onChange = options.onChange;
    const first = this.#source.readSync(options.path);
    this.minFreeBytes = options.minFreeBytes ?? defaultMinFree(first.totalBytes);
    this.#freeBytes = first.freeBytes;
    // The caller asks `paused` after construction: no change to tell yet.
    this.#paused = pausedAfter(false, first.freeBytes, this.minFreeBytes);
    this.#timer = setInterval(() => this.check(), options.intervalMs ?? 1000);
    this.#timer.unref();
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** Free bytes at the last reading. */
  get freeBytes(): number {
    return this.#freeBytes;
  }

  /** Reads free space now (the timer calls this); resolves once the reading is applied. */
  async check(): Promise<void> {
    if (this.#reading || this.#stopped) return;
    this.#reading = true;
    try {
      const { freeBytes } = await this.#source.read(this.path);
      if (this.#stopped) return;
      this.#freeBytes = freeBytes;
      const paused = pausedAfter(this.#paused, freeBytes, this.minFreeBytes);
      if (paused !== this.#paused) {
        this.#paused = paused;
        this.#onChange(paused);
      }
    } catch {
      // See the class comment: a failed reading changes nothing.
    } finally {
      this.#reading = false;
    }
  }

  /**
   * The capture put `bytes` on the disk: taken off the last reading, so a
   * burst of our own writes between two readings pauses the capture at the
   * limit rather than running past it for up to a second. The next reading
   * corrects the estimate (other writers on the disk are seen only then).
   */
  wrote(bytes: number): void {
    this.#freeBytes -= bytes;
    if (!this.#paused && this.#freeBytes < this.minFreeBytes) {
      this.#paused = true;
      this.#onChange(true);
    }
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }
}
