/**
 * One-line, terminal-safe rendering of a captured payload preview for the TUI.
 * The bytes come off the wire, so nothing in them may reach the terminal as a
 * control sequence; the result is plain text (callers using blessed tags still
 * pass it through escapeTags).
 */
import { printable } from '../analysis/printable.js';
import { displayWidth, truncateToWidth } from './terminal-text.js';

/**
 * Decodes UTF-8 leniently: invalid bytes become U+FFFD, and an incomplete
 * multi-byte character at the very end (the capture cut it) is left out.
 * `stream: true` makes the decoder hold such a tail back instead of emitting
 * U+FFFD for it.
 */
function decodeUtf8(bytes: Uint8Array): { text: string; droppedTail: boolean } {
  const decoder = new TextDecoder('utf-8', { fatal: false });
  const text = decoder.decode(bytes, { stream: true });
  // Flushing yields U+FFFD exactly when a tail was held back; it is discarded.
  const droppedTail = decoder.decode() !== '';
  return { text, droppedTail };
}

function hexBytes(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/**
 * A one-line, terminal-safe rendering of a payload preview captured as base64.
 * 'text': lenient UTF-8, control characters escaped by printable(), in double
 * quotes. 'binary': lowercase hex bytes separated by spaces. At most
 * `maxColumns` display columns; ends with '…' when cut here, when `truncated`
 * says the capture kept only the first bytes, or when the capture visibly cut
 * a multi-byte character. Empty preview: '""' for text, '' for binary.
 */
export function payloadPreview(base64: string, kind: 'text' | 'binary', maxColumns: number, truncated = false): string {
  const columns = Math.floor(maxColumns);
  if (!(columns > 0)) return '';
  const bytes = Buffer.from(base64, 'base64');

  if (kind === 'binary') {
    // n bytes take 3n-1 columns. Cut at whole bytes so a lone nibble is never
    // mistaken for a byte value, and leave one column for the '…'.
    const fitsAll = Math.floor((columns + 1) / 3);
    if (!truncated && bytes.length <= fitsAll) return hexBytes(bytes);
    const fitsCut = Math.floor(columns / 3);
    return `${hexBytes(bytes.subarray(0, fitsCut))}…`;
  }

  const { text, droppedTail } = decodeUtf8(bytes);
  // No limit here: printable() cuts by UTF-16 units (possibly inside a
  // surrogate pair) and adds its own '…'; cutting is done below, by columns.
  const rendered = `"${printable(text, Number.POSITIVE_INFINITY)}"`;
  const width = displayWidth(rendered);
  if (!truncated && !droppedTail && width <= columns) return rendered;
  // Leave one column for the '…'.
  const kept = width <= columns - 1 ? rendered : truncateToWidth(rendered, columns - 1);
  return `${kept}…`;
}
