/**
 * Pure helpers for laying text out in terminal cells. Table columns only line
 * up if every cell is measured in columns, not UTF-16 code units: CJK and
 * emoji take two columns, combining marks none, and a surrogate pair is one
 * character.
 */

/** [first, last] code point ranges, sorted, that take no column. */
const ZERO_WIDTH: ReadonlyArray<readonly [number, number]> = [
  [0x0300, 0x036f], // combining diacritical marks
  [0x1ab0, 0x1aff], // combining diacritical marks extended
  [0x200b, 0x200f], // zero-width space/joiners, LRM/RLM
  [0x20d0, 0x20ff], // combining marks for symbols
  [0xfe00, 0xfe0f], // variation selectors
  [0xfe20, 0xfe2f], // combining half marks
];

/** [first, last] code point ranges, sorted, that take two columns (East Asian Wide/Fullwidth, emoji). */
const WIDE: ReadonlyArray<readonly [number, number]> = [
  [0x1100, 0x115f], // Hangul Jamo initials
  [0x2e80, 0x303e], // CJK radicals .. CJK symbols (U+303F half-fill space is narrow)
  [0x3040, 0xa4cf], // kana .. CJK ideographs .. Yi
  [0xac00, 0xd7a3], // Hangul syllables
  [0xf900, 0xfaff], // CJK compatibility ideographs
  [0xfe30, 0xfe4f], // CJK compatibility forms
  [0xff00, 0xff60], // fullwidth forms
  [0xffe0, 0xffe6], // fullwidth signs
  [0x1f300, 0x1f64f], // pictographs, emoticons
  [0x1f900, 0x1f9ff], // supplemental symbols and pictographs
  [0x20000, 0x3fffd], // CJK extension planes
];

function inRanges(cp: number, ranges: ReadonlyArray<readonly [number, number]>): boolean {
  for (const [first, last] of ranges) {
    if (cp < first) return false; // sorted: nothing later can match
    if (cp <= last) return true;
  }
  return false;
}

/** Columns one code point occupies: 0, 1 or 2. */
function charWidth(cp: number): number {
  // Fast path: nearly all traffic is ASCII/Latin and below the first range.
  if (cp < 0x0300) return 1;
  if (inRanges(cp, ZERO_WIDTH)) return 0;
  if (inRanges(cp, WIDE)) return 2;
  return 1;
}

/**
 * Columns a string occupies: 0 for combining marks and zero-width characters,
 * 2 for East Asian Wide/Fullwidth and emoji, 1 otherwise. Iterates by code
 * point, so a surrogate pair counts as one character.
 */
export function displayWidth(text: string): number {
  let width = 0;
  for (const ch of text) width += charWidth(ch.codePointAt(0) ?? 0);
  return width;
}

/**
 * The longest prefix of `text` that fits in `maxWidth` columns. Never splits a
 * surrogate pair; zero-width characters right after the last kept character
 * stay with it (a combining mark belongs to the character before it).
 */
export function truncateToWidth(text: string, maxWidth: number): string {
  if (maxWidth <= 0) return '';
  let width = 0;
  let end = 0;
  for (const ch of text) {
    const w = charWidth(ch.codePointAt(0) ?? 0);
    if (width + w > maxWidth) break;
    width += w;
    end += ch.length;
  }
  return text.slice(0, end);
}

/**
 * `text` as lines of at most `width` columns: the first starts with `first`,
 * the rest with `rest` (an indent). Breaks at spaces; a word wider than a
 * line is cut at the width. Long findings (an ambiguous timeout verdict names
 * every candidate and how to tell them apart) stay readable in a view that
 * does not wrap by itself.
 */
export function wrapToWidth(text: string, width: number, first: string, rest: string): string[] {
  const lines: string[] = [];
  let current = first;
  let fresh = true;
  for (let word of text.split(' ')) {
    const sep = fresh ? '' : ' ';
    if (displayWidth(current) + sep.length + displayWidth(word) <= width) {
      current += sep + word;
      fresh = false;
      continue;
    }
    if (!fresh) {
      lines.push(current);
      current = rest;
    }
    // Only a prefix in `current` now: cut the word while it does not fit beside it.
    while (word !== '' && displayWidth(current) + displayWidth(word) > width) {
      const part = truncateToWidth(word, width - displayWidth(current)) || (Array.from(word)[0] as string);
      lines.push(current + part);
      current = rest;
      word = word.slice(part.length);
    }
    current += word;
    fresh = word === '';
  }
  lines.push(current);
  return lines;
}

/**
 * Exactly `width` columns: pads with spaces, or cuts and ends with '…' (one
 * column) when the text is wider. When a wide character would straddle the
 * edge a space fills in, so the cell is never a column short. width 0 -> ''.
 * 'right' pads on the left.
 */
export function fitCell(text: string, width: number, align: 'left' | 'right' = 'left'): string {
  const cells = Math.floor(width);
  if (!(cells > 0)) return ''; // also covers NaN
  const textWidth = displayWidth(text);
  if (textWidth <= cells) {
    const pad = ' '.repeat(cells - textWidth);
    return align === 'right' ? pad + text : text + pad;
  }
  const kept = truncateToWidth(text, cells - 1);
  return `${kept}${' '.repeat(cells - 1 - displayWidth(kept))}…`;
}

/**
 * Escapes blessed's tag syntax for a box with `tags: true`, so a payload such
 * as "{red-fg}" shows literally instead of colouring the screen. One pass, so
 * the braces of the inserted "{open}"/"{close}" are not escaped again.
 */
export function escapeTags(text: string): string {
  return text.replace(/[{}]/g, (brace) => (brace === '{' ? '{open}' : '{close}'));
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** Largest day count shown; keeps the cell within 6 characters ("99999d"). */
const MAX_DAYS = 99_999;

/**
 * Idle/age durations in at most 6 characters: "0s", "42s", "4m05s", "2h03m",
 * "3d04h"; from 100 days on only whole days ("123d"). Negative (clock steps)
 * and NaN show as "0s". Always floored, so a value never shows as the next unit
 * early.
 */
export function compactDuration(ms: number): string {
  if (!(ms > 0)) return '0s';
  const totalSeconds = Math.floor(ms / 1000);
  if (totalSeconds < 60) return `${totalSeconds}s`;
  const totalMinutes = Math.floor(totalSeconds / 60);
  if (totalMinutes < 60) return `${totalMinutes}m${pad2(totalSeconds % 60)}s`;
  const totalHours = Math.floor(totalMinutes / 60);
  if (totalHours < 24) return `${totalHours}h${pad2(totalMinutes % 60)}m`;
  const days = Math.floor(totalHours / 24);
  if (days < 100) return `${days}d${pad2(totalHours % 24)}h`;
  return `${Math.min(days, MAX_DAYS)}d`;
}

/**
 * Round-trip times: "0.42ms" below 10 ms, "123ms" below 1 s, "1.2s" up to
 * 60 s, then compactDuration. A value that rounds up to a tier's limit moves
 * to the next tier ("10ms", not "10.00ms"). Negative and NaN count as 0.
 */
export function compactLatency(ms: number): string {
  const value = ms > 0 ? ms : 0;
  const hundredths = value.toFixed(2);
  if (Number(hundredths) < 10) return `${hundredths}ms`;
  const whole = Math.round(value);
  if (whole < 1000) return `${whole}ms`;
  const seconds = (value / 1000).toFixed(1);
  if (Number(seconds) < 60) return `${seconds}s`;
  // Rounded to the tenth shown above, so 59.96 s continues as "1m00s", not "59s".
  return compactDuration(Math.round(value / 100) * 100);
}

const BYTE_UNITS = ['K', 'M', 'G', 'T'] as const;

/** Largest number shown with the last unit; keeps the cell within 5 characters. */
const MAX_LAST_UNIT = 9999;

/**
 * Byte counts in at most 5 characters, 1024-based: "999", "1.0K".."9.9K",
 * "10K".."999K", "1.0M", ..., "T". Each tier is chosen by the rounded value
 * shown, so 999.5..1023 bytes read "1.0K" and 1023.9 K reads "1.0M", never
 * "1000K" or "10.0K". Negative and NaN count as 0; beyond 9999T it stays at
 * "9999T" (already past Number.MAX_SAFE_INTEGER).
 */
export function compactBytes(n: number): string {
  const value = n > 0 ? n : 0;
  if (value < 999.5) return String(Math.round(value));
  let scaled = value;
  for (let i = 0; i < BYTE_UNITS.length; i++) {
    const unit = BYTE_UNITS[i] ?? 'T';
    scaled /= 1024;
    const tenths = scaled.toFixed(1);
    if (Number(tenths) < 10) return `${tenths}${unit}`;
    const whole = Math.round(scaled);
    if (whole < 1000) return `${whole}${unit}`;
    if (i === BYTE_UNITS.length - 1) return `${Math.min(whole, MAX_LAST_UNIT)}${unit}`;
  }
  return `${MAX_LAST_UNIT}T`; // not reached: the last unit returns above
}
