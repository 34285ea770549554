import type { Readable, Writable } from 'node:stream';
import blessed from 'blessed';
import type { KeyPress } from './ui-state.js';

/**
 * The only module that knows blessed. It draws whole frames of tagged lines
 * (blessed diffs them and writes only the changed cells) and reports keys
 * and resizes. Swapping the terminal library means rewriting this file.
 */
export interface TerminalScreen {
  readonly width: number;
  readonly height: number;
  draw(lines: readonly string[]): void;
  /** The characters on screen now, one string per line (for tests and checks). */
  text(): string[];
  onKey(listener: (key: KeyPress) => void): void;
  onResize(listener: () => void): void;
  /** Leaves the alternate screen and restores the terminal. Idempotent. */
  destroy(): void;
  /**
   * The terminal is gone (hung up): lets go of it without writing another
   * byte to it (a write to a hung-up terminal fails, and to one nobody reads
   * could block). Idempotent; destroy() after it does nothing.
   */
  abandon(): void;
}

export interface TerminalScreenOptions {
  input?: Readable;
  output?: Writable;
  /** blessed's complaints about the terminal description (it cannot parse every terminfo entry). */
  onWarning?: (message: string) => void;
}

/** Keys blessed reports twice ("return" alongside "enter" for CR). */
const DUPLICATE_KEYS = new Set(['return', 'linefeed']);

export function openTerminalScreen(options: TerminalScreenOptions = {}): TerminalScreen {
  const input = options.input ?? process.stdin;
  const output = options.output ?? process.stdout;
  const warn = options.onWarning ?? (() => undefined);
  // blessed's terminfo compiler prints to console.error when it meets a
  // capability it cannot parse (Debian's xterm-256color has one) and then
  // falls back; those lines would land on the screen we are about to draw.
  const consoleError = console.error;
  const complaints: string[] = [];
  console.error = (...args: unknown[]) => {
    complaints.push(args.map(String).join(' '));
  };
  let program: blessed.BlessedProgram;
  try {
    program = blessed.program({ input, output, extended: false } as unknown as Parameters<typeof blessed.program>[0]);
  } finally {
    console.error = consoleError;
  }
  const cap = complaints.find((c) => c.startsWith('Error on'));
  if (cap) warn(`terminal description: ${cap.trim()}; using blessed's fallback for it`);
  program.on('warning', (message: string) => warn(`terminal: ${message}`));
  // Write UTF-8 as it is instead of switching to the line-drawing charset for
  // the few characters it has (blessed would send "~" in ACS mode for "·"):
  // every terminal a proxy admin uses is UTF-8, and copy/paste stays right.
  (program as unknown as { tput: { brokenACS: boolean } }).tput.brokenACS = true;

  const screen = blessed.screen({
    program,
    fullUnicode: true,
    warnings: false,
    autoPadding: false,
    // Ctrl-C arrives as a key in raw mode; the app decides what it means.
    ignoreLocked: ['C-c'],
  } as blessed.Widgets.IScreenOptions);
  const body = blessed.box({ parent: screen, top: 0, left: 0, width: '100%', height: '100%', tags: true, wrap: false });

  let destroyed = false;
  const keyListeners: Array<(key: KeyPress) => void> = [];
  screen.on('keypress', (ch: string | undefined, key: { full?: string; name?: string } | undefined) => {
    const full = key?.full ?? key?.name ?? ch ?? '';
    if (DUPLICATE_KEYS.has(full)) return;
    for (const listener of keyListeners) listener({ full, ch });
  });

  return {
    get width() {
      return Math.max(1, Number(screen.width));
    },
    get height() {
      return Math.max(1, Number(screen.height));
    },
    draw(lines) {
      if (destroyed) return;
      body.setContent(lines.join('\n'));
      screen.render();
    },
    text() {
      // fullUnicode marks the second column of a wide character with U+0003.
      const lines = (screen as unknown as { lines: Array<Array<[number, string]>> }).lines;
      return lines.map((cells) => cells.map((cell) => cell[1]).join('').replace(/\u0003/g, ''));
    },
    onKey(listener) {
      keyListeners.push(listener);
    },
    onResize(listener) {
      screen.on('resize', listener);
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      screen.destroy();
    },
    abandon() {
      if (destroyed) return;
      destroyed = true;
      // blessed writes through these two (the same function on its prototype): silenced, its teardown writes nothing.
      const silent = program as unknown as { write: (text: string) => boolean; _owrite: (text: string) => boolean };
      silent.write = silent._owrite = () => true;
      try {
        // Releases blessed's listeners and handlers; turning raw mode off on a dead terminal may fail, which is fine.
        screen.destroy();
      } catch {
        // Nothing of the terminal is left to restore.
      }
    },
  };
}
