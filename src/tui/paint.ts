/**
 * Tones for the terminal, as blessed tags. One place decides what a tone
 * looks like, so NO_COLOR (https://no-color.org) is honoured everywhere:
 * without colour, warnings are bold and alarms bold and underlined.
 * Text passed in must already be escaped (see escapeTags).
 */
export type Tone = 'plain' | 'dim' | 'warn' | 'over' | 'bad' | 'good' | 'accent' | 'heading';

const COLOR: Record<Tone, [string, string]> = {
  plain: ['', ''],
  dim: ['{gray-fg}', '{/gray-fg}'],
  warn: ['{yellow-fg}', '{/yellow-fg}'],
  over: ['{red-fg}{bold}', '{/bold}{/red-fg}'],
  bad: ['{red-fg}', '{/red-fg}'],
  good: ['{green-fg}', '{/green-fg}'],
  accent: ['{cyan-fg}', '{/cyan-fg}'],
  heading: ['{bold}', '{/bold}'],
};

const MONO: Record<Tone, [string, string]> = {
  plain: ['', ''],
  dim: ['', ''],
  warn: ['{bold}', '{/bold}'],
  over: ['{bold}{underline}', '{/underline}{/bold}'],
  bad: ['{bold}', '{/bold}'],
  good: ['', ''],
  accent: ['', ''],
  heading: ['{bold}', '{/bold}'],
};

export class Paint {
  readonly #table: Record<Tone, [string, string]>;

  constructor(readonly color: boolean) {
    this.#table = color ? COLOR : MONO;
  }

  tone(text: string, tone: Tone): string {
    if (text === '') return text;
    const [open, close] = this.#table[tone];
    return `${open}${text}${close}`;
  }

  /** The selected line: reverse video works with and without colour. */
  selected(text: string): string {
    return `{inverse}${text}{/inverse}`;
  }
}

/** NO_COLOR set to anything non-empty turns colour off. */
export function colorWanted(env: NodeJS.ProcessEnv): boolean {
  return !env.NO_COLOR;
}
