/**
 * Text edits on a file and the unified diff they make (the format `patch
 * -p0` applies and `patch -R` reverses): three lines of context, hunks
 * merged when their context touches, `\ No newline at end of file` where a
 * last line has none.
 */

export interface TextEdit {
  /** Where in the original text (UTF-16 offset). */
  offset: number;
  /** How many characters of the original to replace. */
  remove: number;
  insert: string;
}

export function applyEdits(text: string, edits: readonly TextEdit[]): string {
  let out = '';
  let at = 0;
  for (const e of sortEdits(edits)) {
    out += text.slice(at, e.offset) + e.insert;
    at = e.offset + e.remove;
  }
  return out + text.slice(at);
}

/** By offset; edits at one offset keep the order they were made in. */
function sortEdits(edits: readonly TextEdit[]): TextEdit[] {
  return edits
    .map((e, i) => ({ e, i }))
    .sort((a, b) => a.e.offset - b.e.offset || a.i - b.i)
    .map(({ e }) => e);
}

/** Lines with their line feeds (the last may have none). */
export function splitLines(text: string): string[] {
  return text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
}

interface Change {
  /** 0-based first old line replaced, and how many. */
  oldStart: number;
  oldCount: number;
  lines: string[];
}

const CONTEXT = 3;

/** The unified diff of `edits` on `text`, both sides named `name` (empty when the edits change nothing). */
export function unifiedDiff(name: string, text: string, edits: readonly TextEdit[]): string {
  const oldLines = splitLines(text);
  const changes = changesOf(text, oldLines, edits);
  if (changes.length === 0) return '';
  let out = `--- ${name}\n+++ ${name}\n`;
  let delta = 0;
  for (let i = 0; i < changes.length; ) {
    let j = i;
    while (j + 1 < changes.length && (changes[j + 1] as Change).oldStart - end(changes[j] as Change) <= 2 * CONTEXT) j++;
    const group = changes.slice(i, j + 1);
    const first = group[0] as Change;
    const from = Math.max(0, first.oldStart - CONTEXT);
    const to = Math.min(oldLines.length, end(group[group.length - 1] as Change) + CONTEXT);
    const body: string[] = [];
    let newCount = 0;
    let line = from;
    for (const c of group) {
      for (; line < c.oldStart; line++, newCount++) body.push(diffLine(' ', oldLines[line] as string));
      for (; line < end(c); line++) body.push(diffLine('-', oldLines[line] as string));
      for (const l of c.lines) body.push(diffLine('+', l));
      newCount += c.lines.length;
    }
    for (; line < to; line++, newCount++) body.push(diffLine(' ', oldLines[line] as string));
    const oldCount = to - from;
    out += `@@ -${range(from, oldCount)} +${range(from + delta, newCount)} @@\n${body.join('')}`;
    delta += newCount - oldCount;
    i = j + 1;
  }
  return out;
}

function end(c: Change): number {
  return c.oldStart + c.oldCount;
}

function range(start0: number, count: number): string {
  // GNU diff: an empty range names the line before it.
  const start = count === 0 ? start0 : start0 + 1;
  return count === 1 ? `${start}` : `${start},${count}`;
}

function diffLine(mark: string, line: string): string {
  return line.endsWith('\n') ? `${mark}${line}` : `${mark}${line}\n\\ No newline at end of file\n`;
}

/** Edits grouped by the old lines they touch, each group's old and new lines trimmed of what they share. */
function changesOf(text: string, oldLines: string[], edits: readonly TextEdit[]): Change[] {
  const lineStarts: number[] = [];
  let at = 0;
  for (const l of oldLines) {
    lineStarts.push(at);
    at += l.length;
  }
  const lineOf = (offset: number): number => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((lineStarts[mid] as number) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  const groups: Array<{ first: number; last: number; edits: TextEdit[] }> = [];
  for (const e of sortEdits(edits)) {
    const first = oldLines.length === 0 ? 0 : lineOf(e.offset);
    const last = oldLines.length === 0 ? 0 : lineOf(Math.max(e.offset, e.offset + e.remove - 1));
    const g = groups[groups.length - 1];
    if (g && first <= g.last) {
      g.last = Math.max(g.last, last);
      g.edits.push(e);
    } else groups.push({ first, last, edits: [e] });
  }
  const changes: Change[] = [];
  for (const g of groups) {
    const start = lineStarts[g.first] ?? text.length;
    const stop = g.last + 1 < lineStarts.length ? (lineStarts[g.last + 1] as number) : text.length;
    const oldChunk = oldLines.slice(g.first, g.last + 1);
    const newChunk = splitLines(applyEdits(text.slice(start, stop), g.edits.map((e) => ({ ...e, offset: e.offset - start }))));
    let head = 0;
    while (head < oldChunk.length && head < newChunk.length && oldChunk[head] === newChunk[head]) head++;
    let tail = 0;
    while (tail < oldChunk.length - head && tail < newChunk.length - head && oldChunk[oldChunk.length - 1 - tail] === newChunk[newChunk.length - 1 - tail]) tail++;
    if (oldChunk.length - head - tail === 0 && newChunk.length - head - tail === 0) continue;
    changes.push({ oldStart: g.first + head, oldCount: oldChunk.length - head - tail, lines: newChunk.slice(head, newChunk.length - tail) });
  }
  return changes;
}
