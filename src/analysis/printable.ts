/**
 * Makes text from the wire safe to print: C0 and C1 control characters, DEL,
 * and Unicode line/paragraph separators and bidi overrides become visible
 * escapes, so a hostile payload, path or header cannot move the cursor,
 * change colours or reorder what the admin reads.
 */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

export function printable(text: string, maxLength = 200): string {
  const cut = text.length > maxLength ? text.slice(0, maxLength) : text;
  const safe = cut.replace(UNSAFE, (ch) => {
    const code = ch.charCodeAt(0);
    if (ch === '\n') return '\\n';
    if (ch === '\r') return '\\r';
    if (ch === '\t') return '\\t';
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
  return text.length > maxLength ? `${safe}…` : safe;
}
