import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { waitUntil } from './wait-until.js';

/** A file a pane writes (its exit status, a log), or null while it is not there. */
export function readIfThere(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/**
 * The exit status a pane's script wrote to `file` (`echo $? > file`), once it
 * is there; past `timeoutMs` the error shows the screen and `context`.
 */
export async function paneExitStatus(file: string, screen: TmuxServer, options: { timeoutMs?: number; context?: () => string } = {}): Promise<string> {
  const screenNow = (): string => {
    try {
      return screen.capture().join('\n');
    } catch (err) {
      return `(none: ${(err as Error).message})`; // the terminal may be the thing the test took away
    }
  };
  const status = await waitUntil(`an exit status in ${file}`, () => readIfThere(file), {
    timeoutMs: options.timeoutMs ?? 10_000,
    context: () => `Screen:\n${screenNow()}${options.context ? `\n${options.context()}` : ''}`,
  });
  return status.trim();
}

/** Single-quotes a word for sh. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * Fails (never skips) when tmux cannot be run: the terminal UI is only
 * tested for real inside tmux, and CI installs it (.ci/run).
 */
export function requireTmux(): string {
  const r = spawnSync('tmux', ['-V'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : `exit status ${r.status}: ${r.stderr.trim()}`;
    throw new Error(
      `tmux is required by this test but cannot be run (${why}). ` +
        'Install it (Debian: apt-get install tmux; .ci/run does this on CI).',
    );
  }
  return r.stdout.trim();
}

/**
 * requireTmux's error, or null: for a beforeAll that keeps it for the test
 * to throw, so a missing tmux counts as a failure, not a skip.
 */
export function tmuxMissing(): Error | null {
  try {
    requireTmux();
    return null;
  } catch (err) {
    return err as Error;
  }
}

/** Environment for the tmux client and server: no link to an outer tmux, a UTF-8 locale. */
function tmuxEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.TMUX;
  delete env.TMUX_PANE;
  if (!env.LC_ALL && !env.LC_CTYPE && !env.LANG) env.LANG = 'C.UTF-8';
  return env;
}

export interface PaneOptions {
  width: number;
  height: number;
  /** Run with `sh` in the pane. */
  script: string;
}

/**
 * A private tmux server (its own socket in a temp dir, no user config) with
 * one detached session, for reading what a full-screen program draws.
 */
export class TmuxServer {
  readonly socket: string;
  readonly session = 'wstap-e2e';
  #panePid: number | null = null;

  constructor(dir: string) {
    this.socket = path.join(dir, 'tmux.sock');
  }

  run(args: string[]): string {
    return execFileSync('tmux', ['-S', this.socket, '-f', '/dev/null', ...args], {
      encoding: 'utf8',
      env: tmuxEnv(),
      timeout: 10_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  /** Starts the server with a detached session of the given size running `sh scriptFile`. */
  start(options: PaneOptions & { scriptFile: string }): void {
    fs.writeFileSync(options.scriptFile, options.script, { mode: 0o700 });
    this.run([
      'new-session',
      '-d',
      '-s',
      this.session,
      '-x',
      String(options.width),
      '-y',
      String(options.height),
      `sh ${shellQuote(options.scriptFile)}`,
    ]);
    // Belt and braces: the script ends in a sleep, but keep a dead pane readable too.
    this.run(['set-option', '-t', this.session, 'remain-on-exit', 'on']);
    this.#panePid = Number(this.display('#{pane_pid}'));
  }

  /** The visible pane, one string per line, trailing spaces trimmed (colours dropped). */
  capture(): string[] {
    return this.run(['capture-pane', '-p', '-t', this.session]).replace(/\n$/, '').split('\n');
  }

  /** A tmux format evaluated for the pane, e.g. '#{alternate_on}'. */
  display(format: string): string {
    return this.run(['display-message', '-p', '-t', this.session, format]).trim();
  }

  sendKeys(...keys: string[]): void {
    this.run(['send-keys', '-t', this.session, ...keys]);
  }

  /**
   * Polls the screen until `probe` returns something other than
   * undefined/null/false, and returns that. On timeout the error shows the
   * last screen and whatever `context` adds.
   */
  async waitForScreen<T>(
    what: string,
    probe: (lines: string[]) => T | undefined | null | false,
    { timeoutMs = 5000, context }: { timeoutMs?: number; context?: () => string } = {},
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines = this.capture();
      const found = probe(lines);
      if (found !== undefined && found !== null && found !== false) return found;
      if (Date.now() > deadline) {
        const extra = context ? `\n${context()}` : '';
        throw new Error(`${what}: not on screen within ${timeoutMs} ms. Screen:\n${lines.join('\n')}${extra}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Kills the server (its panes get SIGHUP); then makes sure the given processes are gone. */
  async kill(otherPids: number[] = []): Promise<void> {
    try {
      this.run(['kill-server']);
    } catch {
      // Not running (never started, or already gone).
    }
    const pids = [...otherPids, ...(this.#panePid ? [this.#panePid] : [])];
    const alive = (pid: number): boolean => {
      try {
        // A zombie has exited; it only waits for whoever inherited it to reap it.
        if (/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))) return false;
      } catch {
        // No /proc, or the process is gone: ask the kernel below.
      }
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    const deadline = Date.now() + 3000;
    while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const pid of pids.filter(alive)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Exited meanwhile.
      }
    }
  }
}
