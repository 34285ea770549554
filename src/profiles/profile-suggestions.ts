/**
 * "Did you mean ...?" for profiles: the nearest allowed word to a misspelled
 * key, value or profile name. A case or separator variant (requires_headers,
 * requiresHeaders) wins outright, since it is surely what was meant; otherwise
 * the closest candidate within an edit distance of 3, and nothing when all
 * are further away, so that a suggestion is never a wild guess.
 */

/** The candidate that is a case/underscore variant of `word`, else the closest within edit distance 3. */
export function nearestOf(word: string, candidates: readonly string[]): string | undefined {
  const normalized = normalizeWord(word);
  const variant = candidates.find((c) => normalizeWord(c) === normalized);
  if (variant !== undefined) return variant;
  let best: string | undefined;
  let bestDistance = 4;
  for (const c of candidates) {
    const d = levenshtein(normalized, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/** Lowercase kebab-case: requires_headers, requiresHeaders and Requires Headers all become requires-headers. */
function normalizeWord(s: string): string {
  return s
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .toLowerCase()
    .replace(/[\s_]+/g, '-');
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur.push(Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}
