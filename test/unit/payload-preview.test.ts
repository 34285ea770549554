import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { payloadPreview } from '../../src/tui/payload-preview.js';
import { displayWidth } from '../../src/tui/terminal-text.js';

const b64 = (data: string | number[]): string =>
  (typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data)).toString('base64');

/** Any byte a terminal would act on: C0, DEL, C1. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

describe('payloadPreview, text', () => {
  it('quotes plain text', () => {
    expect(payloadPreview(b64('hello'), 'text', 80)).toBe('"hello"');
    expect(payloadPreview(b64('{"op":"ping"}'), 'text', 80)).toBe('"{"op":"ping"}"');
    expect(payloadPreview(b64('中文 😀'), 'text', 80)).toBe('"中文 😀"');
  });

  it('shows an empty preview as two quotes', () => {
    expect(payloadPreview('', 'text', 80)).toBe('""');
  });

  it('escapes control characters and newlines', () => {
    expect(payloadPreview(b64('a\nb\r\tc\x00\x7f'), 'text', 80)).toBe('"a\\nb\\r\\tc\\x00\\x7f"');
    expect(payloadPreview(b64('\u0085\u009b'), 'text', 80)).toBe('"\\x85\\x9b"');
    expect(payloadPreview(b64('x\u2028y\u202e'), 'text', 80)).toBe('"x\\u2028y\\u202e"');
  });

  it('lets no escape sequence through', () => {
    const out = payloadPreview(b64('\x1b[2J\x1b[31mred'), 'text', 80);
    expect(out).toBe('"\\x1b[2J\\x1b[31mred"');
    expect(out).not.toContain('\x1b');
    expect(out).not.toMatch(CONTROL);
    // Also when cut in the middle of one.
    for (let cols = 1; cols <= 22; cols++) {
      expect(payloadPreview(b64('\x1b]0;title\x07\x1b[2J'), 'text', cols)).not.toMatch(CONTROL);
    }
  });

  it('keeps blessed tags literal (escaping them is the caller’s job)', () => {
    expect(payloadPreview(b64('{red-fg}x{/red-fg}'), 'text', 80)).toBe('"{red-fg}x{/red-fg}"');
  });

  it('turns invalid UTF-8 into U+FFFD without throwing', () => {
    expect(payloadPreview(b64([0x61, 0xff, 0x62]), 'text', 80)).toBe('"a\ufffdb"');
    expect(payloadPreview(b64([0xc0, 0xaf]), 'text', 80)).toBe('"\ufffd\ufffd"');
    // A lead byte followed by something that is not a continuation.
    expect(payloadPreview(b64([0x61, 0xe2, 0x28, 0x62]), 'text', 80)).toBe('"a\ufffd(b"');
  });

  it('drops a multi-byte character cut at the end and marks the cut', () => {
    const euro = [0xe2, 0x82, 0xac]; // €
    expect(payloadPreview(b64([0x61, ...euro]), 'text', 80)).toBe('"a€"');
    expect(payloadPreview(b64([0x61, 0xe2, 0x82]), 'text', 80)).toBe('"a"…');
    expect(payloadPreview(b64([0x61, 0xe2]), 'text', 80)).toBe('"a"…');
    expect(payloadPreview(b64([0x61, 0xf0, 0x9f, 0x98]), 'text', 80, true)).toBe('"a"…');
    expect(payloadPreview(b64([0xf0, 0x9f]), 'text', 80)).toBe('""…');
    for (const out of [payloadPreview(b64([0x61, 0xe2, 0x82]), 'text', 80), payloadPreview(b64([0x61, 0xf0]), 'text', 80)]) {
      expect(out).not.toContain('\ufffd');
    }
  });

  it('adds an ellipsis when the capture was truncated', () => {
    expect(payloadPreview(b64('hello'), 'text', 80, true)).toBe('"hello"…');
    expect(payloadPreview(b64('hello'), 'text', 80, false)).toBe('"hello"');
    expect(payloadPreview('', 'text', 80, true)).toBe('""…');
    // "hello" in quotes is 7 columns: at 7 it fits, but not with the '…'.
    expect(payloadPreview(b64('hello'), 'text', 7)).toBe('"hello"');
    expect(payloadPreview(b64('hello'), 'text', 7, true)).toBe('"hello…');
    expect(payloadPreview(b64('hello'), 'text', 8, true)).toBe('"hello"…');
  });

  it('cuts to maxColumns with a single ellipsis', () => {
    const long = 'x'.repeat(500);
    const out = payloadPreview(b64(long), 'text', 20);
    expect(out).toBe(`"${'x'.repeat(18)}…`);
    expect(displayWidth(out)).toBe(20);
    expect(payloadPreview(b64(long), 'text', 20, true)).toBe(out);
    expect(out.match(/…/g)).toHaveLength(1);
    // printable()'s own 200-character cut must not add a second one.
    const escaped = payloadPreview(b64('\x00'.repeat(300)), 'text', 2000);
    expect(escaped).toBe(`"${'\\x00'.repeat(300)}"`);
    expect(escaped).not.toContain('…');
  });

  it('cuts by columns: wide characters and surrogate pairs stay whole', () => {
    expect(payloadPreview(b64('中文字'), 'text', 5)).toBe('"中…');
    expect(payloadPreview(b64('中文字'), 'text', 6)).toBe('"中文…');
    expect(payloadPreview(b64('😀😀😀'), 'text', 5)).toBe('"😀…');
    expect(payloadPreview(b64('😀😀😀'), 'text', 4)).toBe('"😀…');
    expect(payloadPreview(b64('中文字'), 'text', 8)).toBe('"中文字"');
  });

  it('gives nothing for no columns and just the ellipsis for one', () => {
    expect(payloadPreview(b64('hello'), 'text', 0)).toBe('');
    expect(payloadPreview(b64('hello'), 'text', -1)).toBe('');
    expect(payloadPreview(b64('hello'), 'text', 1)).toBe('…');
    expect(payloadPreview(b64('hello'), 'text', 2)).toBe('"…');
  });

  it('never exceeds maxColumns nor lets a control character through (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 64 }),
        fc.integer({ min: 0, max: 60 }),
        fc.boolean(),
        (bytes, cols, truncated) => {
          const out = payloadPreview(Buffer.from(bytes).toString('base64'), 'text', cols, truncated);
          expect(displayWidth(out)).toBeLessThanOrEqual(cols);
          expect(out).not.toMatch(CONTROL);
          expect(out).not.toContain('……');
          if (truncated && cols > 0) expect(out.endsWith('…')).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('payloadPreview, binary', () => {
  it('shows lowercase hex bytes separated by spaces', () => {
    expect(payloadPreview(b64([0xde, 0xad, 0xbe, 0xef]), 'binary', 80)).toBe('de ad be ef');
    expect(payloadPreview(b64([0x00, 0x0a, 0x1b, 0xff]), 'binary', 80)).toBe('00 0a 1b ff');
  });

  it('shows an empty preview as the empty string', () => {
    expect(payloadPreview('', 'binary', 80)).toBe('');
    expect(payloadPreview('', 'binary', 80, true)).toBe('…');
  });

  it('fits exactly when there is room, and cuts at whole bytes otherwise', () => {
    const bytes = b64([0xde, 0xad, 0xbe, 0xef]);
    expect(payloadPreview(bytes, 'binary', 11)).toBe('de ad be ef');
    expect(payloadPreview(bytes, 'binary', 10)).toBe('de ad be…');
    expect(payloadPreview(bytes, 'binary', 9)).toBe('de ad be…');
    expect(payloadPreview(bytes, 'binary', 8)).toBe('de ad…');
    expect(payloadPreview(bytes, 'binary', 3)).toBe('de…');
    expect(payloadPreview(bytes, 'binary', 2)).toBe('…');
    expect(payloadPreview(bytes, 'binary', 1)).toBe('…');
    expect(payloadPreview(bytes, 'binary', 0)).toBe('');
  });

  it('adds an ellipsis when the capture was truncated', () => {
    expect(payloadPreview(b64([0xde, 0xad]), 'binary', 80, true)).toBe('de ad…');
    expect(payloadPreview(b64([0xde, 0xad]), 'binary', 5, true)).toBe('de…');
    expect(payloadPreview(b64([0xde, 0xad]), 'binary', 6, true)).toBe('de ad…');
  });

  it('never exceeds maxColumns and round-trips the bytes it shows (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 0, max: 200 }), fc.boolean(), (bytes, cols, truncated) => {
        const out = payloadPreview(Buffer.from(bytes).toString('base64'), 'binary', cols, truncated);
        expect(out.length).toBeLessThanOrEqual(cols);
        const hex = out.replace(/…$/, '');
        const shown = hex === '' ? [] : hex.split(' ').map((h) => Number.parseInt(h, 16));
        expect(shown).toStrictEqual(Array.from(bytes.subarray(0, shown.length)));
        // Cut exactly when something is missing.
        expect(out.endsWith('…')).toBe(cols > 0 && (truncated || shown.length < bytes.length));
      }),
      { numRuns: 500 },
    );
  });
});
