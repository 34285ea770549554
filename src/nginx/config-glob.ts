/**
 * glob(3) patterns as nginx's `include` uses them (ngx_open_glob: glob()
 * with no flags, so results sorted, `*` and `?` never match a `/` or a
 * leading `.`, and a pattern that matches nothing is no error).
 */

/** Whether `include`'s argument is a pattern (nginx checks for any of `*?[`). */
export function isGlobPattern(text: string): boolean {
  return /[*?[]/.test(text);
}

/** One path segment's pattern as an anchored regular expression. */
export function segmentPattern(segment: string): RegExp {
  let source = '';
  for (let i = 0; i < segment.length; i++) {
    const ch = segment[i] as string;
    if (ch === '*') source += '[^/]*';
    else if (ch === '?') source += '[^/]';
    else if (ch === '\\' && i + 1 < segment.length) source += escapeRegExp(segment[++i] as string);
    else if (ch === '[') {
      const close = segment.indexOf(']', i + 2);
      if (close === -1) {
        source += '\\[';
        continue;
      }
      let body = segment.slice(i + 1, close);
      const negated = body.startsWith('!') || body.startsWith('^');
      if (negated) body = body.slice(1);
      source += `[${negated ? '^' : ''}${body.replace(/\\/g, '\\\\').replace(/\]/g, '\\]')}]`;
      i = close;
    } else source += escapeRegExp(ch);
  }
  return new RegExp(`^${source}$`);
}

/** Whether a name matches a segment's pattern; a leading `.` must be matched by a literal `.`. */
export function matchesSegment(name: string, pattern: string): boolean {
  if (name.startsWith('.') && !pattern.startsWith('.')) return false;
  return segmentPattern(pattern).test(name);
}

/** Whether an absolute path matches an absolute pattern, segment by segment. */
export function matchesPath(filePath: string, pattern: string): boolean {
  const names = filePath.split('/');
  const patterns = pattern.split('/');
  if (names.length !== patterns.length) return false;
  return patterns.every((p, i) => (isGlobPattern(p) ? matchesSegment(names[i] as string, p) : p === names[i]));
}

/** glob(3)'s order in the C locale: byte order. */
export function sortPaths(paths: string[]): string[] {
  return [...paths].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
