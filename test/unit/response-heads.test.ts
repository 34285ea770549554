import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isInterimStatus, ResponseHeads, type ResponseHeadsStep } from '../../src/wire/response-heads.js';
import { splitAt } from '../support/frame-fixtures.js';

const EARLY_HINTS = 'HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload; as=style\r\n\r\n';
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
const SWITCHING = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n';
const FRAMES = Buffer.from('810548656c6c6f880203e8', 'hex');

/** Feeds every chunk and gathers what the steps said. */
function feed(chunks: Buffer[]): { steps: ResponseHeadsStep[]; rest: Buffer; afterEnd: Buffer } {
  const heads = new ResponseHeads();
  const steps: ResponseHeadsStep[] = [];
  const after: Buffer[] = [];
  for (const chunk of chunks) {
    if (heads.done) {
      after.push(chunk);
      expect(heads.push(chunk)).toEqual({ interim: [], end: null });
      continue;
    }
    steps.push(heads.push(chunk));
  }
  const end = steps.find((s) => s.end !== null)?.end;
  return { steps, rest: end?.state === 'final' ? Buffer.from(end.rest) : Buffer.alloc(0), afterEnd: Buffer.concat(after) };
}

describe('ResponseHeads', () => {
  it('1xx other than 101 are interim; 101 and 2xx-5xx are final', () => {
    expect([100, 102, 103, 199].every(isInterimStatus)).toBe(true);
    expect([101, 200, 204, 400, 502].some(isInterimStatus)).toBe(false);
  });

  it('reads a 103 Early Hints, then the 101 and hands over the frames behind it, in one chunk', () => {
    const { steps, rest } = feed([Buffer.concat([Buffer.from(EARLY_HINTS + SWITCHING, 'latin1'), FRAMES])]);
    expect(steps).toHaveLength(1);
    expect(steps[0]!.interim).toEqual([
      { kind: 'response', httpVersion: '1.1', statusCode: 103, reason: 'Early Hints', rawHeaders: [['Link', '</app.css>; rel=preload; as=style']], headLength: EARLY_HINTS.length },
    ]);
    expect(steps[0]!.end).toMatchObject({ state: 'final', head: { statusCode: 101, headLength: SWITCHING.length } });
    expect(rest).toEqual(FRAMES);
  });

  it('any chunking gives the same interim heads in order, the same final head and the same bytes after it', () => {
    const wire = Buffer.concat([Buffer.from(CONTINUE + EARLY_HINTS + EARLY_HINTS + SWITCHING, 'latin1'), FRAMES]);
    const headsEnd = wire.length - FRAMES.length;
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 12 }), (cuts) => {
        const { chunks } = splitAt(wire, cuts.map((c) => c % (wire.length + 1)));
        const { steps, rest, afterEnd } = feed(chunks);
        expect(steps.flatMap((s) => s.interim).map((h) => h.statusCode)).toEqual([100, 103, 103]);
        const ends = steps.filter((s) => s.end !== null);
        expect(ends).toHaveLength(1);
        expect(ends[0]!.end).toMatchObject({ state: 'final', head: { statusCode: 101 } });
        // The final step's rest plus every later chunk is exactly what followed the heads.
        expect(Buffer.concat([rest, afterEnd])).toEqual(wire.subarray(headsEnd));
      }),
      { numRuns: 200 },
    );
  });

  it('a 400 after a 100 is the final answer', () => {
    const { steps } = feed([Buffer.from(CONTINUE, 'latin1'), Buffer.from('HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nno\n', 'latin1')]);
    expect(steps[0]).toMatchObject({ interim: [{ statusCode: 100 }], end: null });
    expect(steps[1]).toMatchObject({ interim: [], end: { state: 'final', head: { statusCode: 400 } } });
  });

  it('an error in a head after an interim one is placed in the whole stream', () => {
    const { steps } = feed([Buffer.from(EARLY_HINTS + 'garbage\r\n\r\n', 'latin1')]);
    expect(steps[0]).toMatchObject({ interim: [{ statusCode: 103 }], end: { state: 'error', code: 'MALFORMED_START_LINE', offset: EARLY_HINTS.length } });
  });
});
