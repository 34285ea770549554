import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/*
 * What a command decides before it loads the terminal UI: whether there is a
 * terminal, and where the UI's log goes. Kept apart from terminal-ui.ts so a
 * headless run (--no-tui, no terminal, CI, systemd) never loads blessed and
 * the UI modules: a smaller heap, on which V8 does not follow every scavenge
 * of a bulk load with a mark-compact (README, Performance).
 */

/** The UI needs a keyboard and a screen: both ends must be terminals. */
export function terminalAvailable(): boolean {
  return process.stdout.isTTY === true && process.stdin.isTTY === true;
}

/** Local time as YYYYMMDD-HHMMSS, for file names. */
export function stamp(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/**
 * Where the UI's log goes unless --log-file says otherwise: a new directory
 * of our own (0700, unpredictable name), never a fixed one under the shared
 * temp dir, where another user could plant the file or a symlink first.
 */
export function defaultLogFile(now = new Date()): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-log-'));
  return path.join(dir, `wstap-${stamp(now)}.log`);
}
