import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  compactBytes,
  compactDuration,
  compactLatency,
  displayWidth,
  escapeTags,
  fitCell,
  truncateToWidth,
  wrapToWidth,
} from '../../src/tui/terminal-text.js';

const GRINNING = '\u{1F600}'; // 😀, a surrogate pair, wide
const THINKING = '\u{1F914}'; // 🤔, supplemental symbols, wide
const EXT_B = '\u{20000}'; // CJK extension B, a surrogate pair, wide

describe('displayWidth', () => {
  it('counts ASCII and Latin one column each', () => {
    expect(displayWidth('')).toBe(0);
    expect(displayWidth('hello')).toBe(5);
    expect(displayWidth('café')).toBe(4);
    expect(displayWidth('…')).toBe(1);
  });

  it('counts CJK, Hangul, kana and fullwidth forms two columns each', () => {
    expect(displayWidth('中文')).toBe(4);
    expect(displayWidth('한국어')).toBe(6);
    expect(displayWidth('カタカナ')).toBe(8);
    expect(displayWidth('ＡＢ')).toBe(4); // U+FF21, U+FF22
    expect(displayWidth('\u1100')).toBe(2); // Hangul Jamo
    expect(displayWidth('\u2e80')).toBe(2);
    expect(displayWidth('\ua4cf')).toBe(2);
    expect(displayWidth('\uffe6')).toBe(2);
    expect(displayWidth('\ufe30')).toBe(2);
    expect(displayWidth('\uf900')).toBe(2);
  });

  it('counts U+303F and the neighbours of the wide ranges one column', () => {
    expect(displayWidth('\u303f')).toBe(1);
    expect(displayWidth('\u303e')).toBe(2);
    expect(displayWidth('\u3040')).toBe(2);
    expect(displayWidth('\u10ff')).toBe(1);
    expect(displayWidth('\u1160')).toBe(1);
    expect(displayWidth('\ua4d0')).toBe(1);
    expect(displayWidth('\uff61')).toBe(1); // halfwidth katakana punctuation
    expect(displayWidth('\uffe7')).toBe(1);
    expect(displayWidth('\u{1f650}')).toBe(1);
    expect(displayWidth('\u{1f8ff}')).toBe(1);
    expect(displayWidth('\u{3fffe}')).toBe(1);
  });

  it('counts emoji and astral CJK as one wide character, not two halves', () => {
    expect(GRINNING.length).toBe(2);
    expect(displayWidth(GRINNING)).toBe(2);
    expect(displayWidth(THINKING)).toBe(2);
    expect(displayWidth(EXT_B)).toBe(2);
    expect(displayWidth(`a${GRINNING}b`)).toBe(4);
    expect(displayWidth('\u{1f300}\u{1f64f}\u{1f900}\u{1f9ff}\u{3fffd}')).toBe(10);
  });

  it('counts combining marks, zero-width characters and variation selectors zero', () => {
    expect(displayWidth('e\u0301')).toBe(1); // é decomposed
    expect(displayWidth('a\u0300\u036f')).toBe(1);
    expect(displayWidth('a\u1ab0\u1aff')).toBe(1);
    expect(displayWidth('a\u20d0\u20ff')).toBe(1);
    expect(displayWidth('a\ufe20\ufe2f')).toBe(1);
    expect(displayWidth('a\u200b\u200c\u200d\u200e\u200fb')).toBe(2);
    expect(displayWidth('\u2764\ufe0f')).toBe(1); // heart + emoji presentation selector
    expect(displayWidth('\ufe00')).toBe(0);
    expect(displayWidth('\u0370')).toBe(1); // just past the combining block
  });

  it('counts a lone surrogate as one column', () => {
    expect(displayWidth('\ud83d')).toBe(1);
    expect(displayWidth('a\ude00b')).toBe(3);
  });
});

describe('truncateToWidth', () => {
  it('keeps the longest prefix that fits', () => {
    expect(truncateToWidth('hello', 3)).toBe('hel');
    expect(truncateToWidth('hello', 10)).toBe('hello');
    expect(truncateToWidth('hello', 0)).toBe('');
    expect(truncateToWidth('中文字', 3)).toBe('中');
    expect(truncateToWidth(`${GRINNING}${GRINNING}`, 3)).toBe(GRINNING);
    expect(truncateToWidth(GRINNING, 1)).toBe('');
  });

  it('keeps combining marks with the character they follow', () => {
    expect(truncateToWidth('e\u0301xyz', 1)).toBe('e\u0301');
  });
});

describe('fitCell', () => {
  it('pads short text with spaces, on the left when right-aligned', () => {
    expect(fitCell('ab', 5)).toBe('ab   ');
    expect(fitCell('ab', 5, 'left')).toBe('ab   ');
    expect(fitCell('ab', 5, 'right')).toBe('   ab');
    expect(fitCell('', 3)).toBe('   ');
    expect(fitCell('abc', 3)).toBe('abc');
    expect(fitCell('abc', 3, 'right')).toBe('abc');
  });

  it('pads by columns, not code units', () => {
    expect(fitCell('中文', 6)).toBe('中文  ');
    expect(fitCell('中文', 6, 'right')).toBe('  中文');
    expect(fitCell(GRINNING, 3)).toBe(`${GRINNING} `);
    expect(fitCell('e\u0301', 3)).toBe('e\u0301  ');
  });

  it('cuts wide text and ends it with an ellipsis', () => {
    expect(fitCell('abcdef', 4)).toBe('abc…');
    expect(fitCell('abcdef', 4, 'right')).toBe('abc…');
    expect(fitCell('abcde', 5)).toBe('abcde');
    expect(fitCell('abcdef', 5)).toBe('abcd…');
    expect(fitCell('abcdef', 1)).toBe('…');
    expect(fitCell('ab', 1)).toBe('…');
  });

  it('fills with a space where a wide character would straddle the edge', () => {
    // 3 columns: room for 2 before the '…', and 中 fits exactly.
    expect(fitCell('中文字', 3)).toBe('中…');
    // 4 columns: room for 3, 中 takes 2, 文 would straddle.
    expect(fitCell('中文字', 4)).toBe('中 …');
    expect(fitCell(`${GRINNING}${GRINNING}${GRINNING}`, 4)).toBe(`${GRINNING} …`);
    expect(fitCell(`a${GRINNING}`, 2)).toBe('a…');
    expect(fitCell(`${GRINNING}a`, 2)).toBe(' …');
    expect(fitCell('中', 1)).toBe('…');
  });

  it('never splits a surrogate pair', () => {
    for (let width = 1; width <= 8; width++) {
      const out = fitCell(`x${GRINNING}${EXT_B}${THINKING}y`, width);
      expect(out).not.toMatch(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/);
      expect(displayWidth(out)).toBe(width);
    }
  });

  it('gives the empty string for width 0 or less', () => {
    expect(fitCell('abc', 0)).toBe('');
    expect(fitCell('', 0)).toBe('');
    expect(fitCell('abc', -3)).toBe('');
    expect(fitCell('abc', 0, 'right')).toBe('');
  });

  it('is always exactly `width` columns (property)', () => {
    const piece = fc.constantFrom('a', 'Z', ' ', '中', '한', 'Ａ', GRINNING, THINKING, EXT_B, '\u0301', '\u200b', '\ufe0f', '…', 'é');
    const text = fc.array(piece, { maxLength: 20 }).map((parts) => parts.join(''));
    fc.assert(
      fc.property(text, fc.integer({ min: 0, max: 30 }), fc.constantFrom<'left' | 'right'>('left', 'right'), (t, width, align) => {
        const out = fitCell(t, width, align);
        expect(displayWidth(out)).toBe(width);
        const pad = ' '.repeat(Math.max(0, width - displayWidth(t)));
        if (width === 0) {
          expect(out).toBe(''); // even zero-width text is dropped
        } else if (displayWidth(t) <= width) {
          // Nothing is lost when it fits.
          expect(out).toBe(align === 'right' ? pad + t : t + pad);
        } else {
          expect(out.endsWith('…')).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('is exactly `width` columns for arbitrary Unicode text (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 30 }), fc.integer({ min: 0, max: 40 }), (t, width) => {
        expect(displayWidth(fitCell(t, width))).toBe(width);
        expect(displayWidth(fitCell(t, width, 'right'))).toBe(width);
      }),
      { numRuns: 500 },
    );
  });
});

describe('escapeTags', () => {
  it('escapes both braces in one pass', () => {
    expect(escapeTags('{red-fg}')).toBe('{open}red-fg{close}');
    expect(escapeTags('{')).toBe('{open}');
    expect(escapeTags('}')).toBe('{close}');
    expect(escapeTags('}{')).toBe('{close}{open}');
    expect(escapeTags('{{}}')).toBe('{open}{open}{close}{close}');
    expect(escapeTags('no braces')).toBe('no braces');
    expect(escapeTags('')).toBe('');
  });

  it('round-trips: undoing {open}/{close} gives the original text back', () => {
    // The inverse of what blessed's tag parser does for these two tags.
    const unescape = (s: string): string => s.replace(/\{(open|close)\}/g, (_m, tag: string) => (tag === 'open' ? '{' : '}'));
    for (const payload of ['{red-fg}alert{/red-fg}', '{"a":{"b":1}}', '{open}', '{close}', '{bold}{/}', 'plain']) {
      const escaped = escapeTags(payload);
      expect(unescape(escaped)).toBe(payload);
      // No tag survives other than the two escapes.
      expect(escaped.replace(/\{(open|close)\}/g, '')).not.toMatch(/[{}]/);
    }
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('{', '}', 'a', '/', '-', 'o', 'p', 'e', 'n') }), (s) => {
        expect(unescape(escapeTags(s))).toBe(s);
      }),
    );
  });
});

describe('compactDuration', () => {
  const S = 1000;
  const M = 60 * S;
  const H = 60 * M;
  const D = 24 * H;

  it('shows negative and NaN as 0s', () => {
    expect(compactDuration(-1)).toBe('0s');
    expect(compactDuration(-5 * M)).toBe('0s');
    expect(compactDuration(Number.NaN)).toBe('0s');
  });

  it('floors whole seconds below a minute', () => {
    expect(compactDuration(0)).toBe('0s');
    expect(compactDuration(999)).toBe('0s');
    expect(compactDuration(1000)).toBe('1s');
    expect(compactDuration(42_900)).toBe('42s');
    expect(compactDuration(59_999)).toBe('59s');
  });

  it('shows minutes and padded seconds below an hour', () => {
    expect(compactDuration(M)).toBe('1m00s');
    expect(compactDuration(4 * M + 5 * S)).toBe('4m05s');
    expect(compactDuration(H - 1)).toBe('59m59s');
  });

  it('shows hours and padded minutes below a day', () => {
    expect(compactDuration(H)).toBe('1h00m');
    expect(compactDuration(2 * H + 3 * M + 59 * S)).toBe('2h03m');
    expect(compactDuration(D - 1)).toBe('23h59m');
  });

  it('shows days and padded hours beyond', () => {
    expect(compactDuration(D)).toBe('1d00h');
    expect(compactDuration(3 * D + 4 * H + 59 * M)).toBe('3d04h');
    expect(compactDuration(100 * D - 1)).toBe('99d23h');
  });

  it('shows whole days from 100 days on, never more than 6 characters', () => {
    expect(compactDuration(100 * D)).toBe('100d');
    expect(compactDuration(12_345 * D + 5 * H)).toBe('12345d');
    expect(compactDuration(1e15)).toBe('99999d');
    expect(compactDuration(Number.POSITIVE_INFINITY)).toBe('99999d');
    fc.assert(
      fc.property(fc.double({ min: -1e6, max: 1e16, noNaN: true }), (ms) => {
        expect(compactDuration(ms).length).toBeLessThanOrEqual(6);
      }),
    );
  });
});

describe('compactLatency', () => {
  it('shows two decimals below 10 ms', () => {
    expect(compactLatency(0)).toBe('0.00ms');
    expect(compactLatency(0.42)).toBe('0.42ms');
    expect(compactLatency(9.99)).toBe('9.99ms');
    expect(compactLatency(9.994)).toBe('9.99ms');
  });

  it('moves to whole ms when two decimals would round up to 10', () => {
    expect(compactLatency(9.996)).toBe('10ms');
    expect(compactLatency(10)).toBe('10ms');
    expect(compactLatency(123.4)).toBe('123ms');
    expect(compactLatency(999.4)).toBe('999ms');
  });

  it('moves to seconds with one decimal from 1000 ms (rounded)', () => {
    expect(compactLatency(999.5)).toBe('1.0s');
    expect(compactLatency(1000)).toBe('1.0s');
    expect(compactLatency(1234)).toBe('1.2s');
    expect(compactLatency(59_940)).toBe('59.9s');
  });

  it('continues with compactDuration from 60 s', () => {
    expect(compactLatency(59_960)).toBe('1m00s');
    expect(compactLatency(60_000)).toBe('1m00s');
    expect(compactLatency(61_000)).toBe('1m01s');
    expect(compactLatency(2 * 3_600_000)).toBe('2h00m');
  });

  it('treats negative and NaN as 0', () => {
    expect(compactLatency(-3)).toBe('0.00ms');
    expect(compactLatency(Number.NaN)).toBe('0.00ms');
  });

  it('never gets longer than 6 characters', () => {
    fc.assert(
      fc.property(fc.double({ min: -10, max: 1e12, noNaN: true }), (ms) => {
        expect(compactLatency(ms).length).toBeLessThanOrEqual(6);
      }),
    );
  });
});

describe('compactBytes', () => {
  const K = 1024;
  const M = K * K;
  const G = M * K;
  const T = G * K;

  it('shows 0..999 as is', () => {
    expect(compactBytes(0)).toBe('0');
    expect(compactBytes(1)).toBe('1');
    expect(compactBytes(999)).toBe('999');
    expect(compactBytes(999.4)).toBe('999');
  });

  it('shows 999.5..1023 as 1.0K', () => {
    expect(compactBytes(999.5)).toBe('1.0K');
    expect(compactBytes(1000)).toBe('1.0K');
    expect(compactBytes(1023)).toBe('1.0K');
    expect(compactBytes(1024)).toBe('1.0K');
  });

  it('shows one decimal below 10 (rounded), then whole units', () => {
    expect(compactBytes(1536)).toBe('1.5K');
    expect(compactBytes(9.9 * K)).toBe('9.9K');
    expect(compactBytes(9.94 * K)).toBe('9.9K');
    expect(compactBytes(9.96 * K)).toBe('10K');
    expect(compactBytes(10 * K)).toBe('10K');
    expect(compactBytes(999 * K)).toBe('999K');
    expect(compactBytes(999.4 * K)).toBe('999K');
  });

  it('moves to the next unit instead of showing 1000', () => {
    expect(compactBytes(999.5 * K)).toBe('1.0M');
    expect(compactBytes(1023 * K)).toBe('1.0M');
    expect(compactBytes(M)).toBe('1.0M');
    expect(compactBytes(M - 1)).toBe('1.0M');
    expect(compactBytes(12.3 * M)).toBe('12M');
    expect(compactBytes(G - 1)).toBe('1.0G');
    expect(compactBytes(G)).toBe('1.0G');
    expect(compactBytes(2.5 * G)).toBe('2.5G');
    expect(compactBytes(T)).toBe('1.0T');
    expect(compactBytes(512 * T)).toBe('512T');
  });

  it('keeps counting terabytes past 999T and stops at 9999T', () => {
    expect(compactBytes(1000 * T)).toBe('1000T');
    expect(compactBytes(8192 * T)).toBe('8192T');
    expect(compactBytes(1e20)).toBe('9999T');
    expect(compactBytes(Number.POSITIVE_INFINITY)).toBe('9999T');
  });

  it('treats negative and NaN as 0', () => {
    expect(compactBytes(-1)).toBe('0');
    expect(compactBytes(Number.NaN)).toBe('0');
  });

  it('never gets longer than 5 characters', () => {
    fc.assert(
      fc.property(fc.double({ min: -10, max: 1e22, noNaN: true }), (n) => {
        expect(compactBytes(n).length).toBeLessThanOrEqual(5);
      }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (n) => {
        expect(compactBytes(n)).toMatch(/^(\d{1,3}|\d\.\d[KMGT]|\d{2,3}[KMGT]|\d{4}T)$/);
      }),
    );
  });
});

describe('wrapToWidth', () => {
  it('breaks at spaces, the first line after its prefix, the rest after the indent', () => {
    expect(wrapToWidth('one two three four', 12, 'fix: ', '  ')).toEqual(['fix: one two', '  three four']);
    expect(wrapToWidth('short', 40, 'fix: ', '  ')).toEqual(['fix: short']);
  });

  it('cuts a word wider than a line, never a wide character in two', () => {
    expect(wrapToWidth('abcdefghij', 6, '> ', '  ')).toEqual(['> abcd', '  efgh', '  ij']);
    expect(wrapToWidth(`${GRINNING}${GRINNING}${GRINNING}`, 5, '> ', '  ')).toEqual([`> ${GRINNING}`, `  ${GRINNING}`, `  ${GRINNING}`]);
  });

  it('every line fits and the words come back in order', () => {
    const word = fc.stringMatching(/^[a-z\u{1F600}]{0,30}$/u);
    fc.assert(
      fc.property(fc.array(word, { maxLength: 40 }), fc.integer({ min: 6, max: 100 }), (words, width) => {
        const text = words.join(' ');
        const lines = wrapToWidth(text, width, '> ', '  ');
        for (const l of lines) expect(displayWidth(l)).toBeLessThanOrEqual(width);
        expect(lines.map((l) => l.slice(2)).join('').replace(/ /g, '')).toBe(text.replace(/ /g, ''));
      }),
    );
  });
});
