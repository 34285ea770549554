import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CaptureEvent } from '../../src/capture/events.js';
import { SessionClock } from '../../src/capture/session-clock.js';
import { ConnectionContext } from '../../src/relay/connection-context.js';
import { LaterRequestGate, type ClaimedRequest } from '../../src/relay/later-request-gate.js';
import { headerValue } from '../../src/capture/raw-headers.js';

/**
 * The gate on its own (no sockets): fed the client's stream in any
 * chunking and the app's answers, it passes on every byte of ordinary
 * traffic unchanged and in order, never a part of a head while the head is
 * incomplete, and never any byte of a claimed request or what follows it.
 */

const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');

const REQUESTS = [
  'GET /a HTTP/1.1\r\nHost: x\r\n\r\n',
  'POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello',
  'PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n',
  '\r\nDELETE /d HTTP/1.1\r\nX-Dup: 1\r\nX-Dup: 2\r\n\r\n',
];
const PROBE = 'GET /probe HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Wstap-Probe: t\r\n\r\n';
const ANSWER = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';

interface Run {
  gate: LaterRequestGate;
  forwarded: Buffer[];
  /** Stream offsets at which each push's forwarded bytes ended. */
  forwardedEnds: number[];
  claimed: ClaimedRequest[];
  events: CaptureEvent[];
}

function newRun(): Run {
  const events: CaptureEvent[] = [];
  const ctx = new ConnectionContext(1, new SessionClock(), { record: (e) => events.push(e) });
  const claimed: ClaimedRequest[] = [];
  const run: Run = {
    gate: new LaterRequestGate(ctx, (head) => headerValue(head.rawHeaders, 'x-wstap-probe') !== undefined, (c) => claimed.push(c)),
    forwarded: [],
    forwardedEnds: [],
    claimed,
    events,
  };
  return run;
}

function push(run: Run, chunk: Buffer): void {
  for (const piece of run.gate.client(chunk, 0)) run.forwarded.push(piece);
  run.forwardedEnds.push(Buffer.concat(run.forwarded).length);
  run.gate.afterForward();
}

function answer(run: Run, text: string): void {
  run.gate.upstream(bytes(text), 0);
  run.gate.afterForward();
}

/** `data` cut at the given sizes (cycled). */
function chunks(data: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const size = Math.max(1, sizes[i % sizes.length] ?? 1);
    out.push(data.subarray(at, at + size));
    at += size;
  }
  return out;
}

/** Where each request's head begins and ends in the stream `requests.join('')` (a leading empty line is not part of it). */
function headsOf(requests: readonly string[]): Array<{ start: number; end: number }> {
  const out: Array<{ start: number; end: number }> = [];
  let offset = 0;
  for (const r of requests) {
    const start = offset + (r.length - r.replace(/^(\r\n)+/, '').length);
    out.push({ start, end: offset + r.indexOf('\r\n\r\n', start - offset) + 4 });
    offset += r.length;
  }
  return out;
}

describe('LaterRequestGate', () => {
  it('ordinary requests in any chunking: every byte passed on in order, and no head passed on before it is complete', () => {
    const stream = REQUESTS.join('');
    const heads = headsOf(REQUESTS);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 12 }), (sizes) => {
        const run = newRun();
        for (const chunk of chunks(bytes(stream), sizes)) push(run, chunk);
        expect(Buffer.concat(run.forwarded).toString('latin1')).toBe(stream);
        // After each push, what went on ends outside every head, or exactly at a head's end.
        for (const end of run.forwardedEnds) for (const h of heads) expect(end <= h.start || end >= h.end).toBe(true);
        expect(run.claimed).toEqual([]);
        expect(run.gate.holdsClient).toBe(false);
      }),
    );
  });

  it('a claimed request pipelined behind others: what came before goes on, it waits for the earlier answers, then is handed over with the bytes after it', () => {
    const before = REQUESTS.slice(0, 2).join('');
    const early = '\x89\x80abcd';
    const stream = before + PROBE + early;
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 8 }), (sizes) => {
        const run = newRun();
        for (const chunk of chunks(bytes(stream), sizes)) push(run, chunk);
        expect(Buffer.concat(run.forwarded).toString('latin1')).toBe(before);
        expect(run.gate.holdsClient).toBe(true);
        expect(run.claimed).toEqual([]);
        answer(run, ANSWER);
        expect(run.claimed).toEqual([]);
        // The second answer's head, then its body in two pieces: handed over only once it is complete.
        answer(run, 'HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\nab');
        expect(run.claimed).toEqual([]);
        answer(run, 'cd');
        expect(run.claimed).toHaveLength(1);
        expect(run.claimed[0]?.exchange).toBe(3);
        expect(run.claimed[0]?.head.target).toBe('/probe');
        expect(run.claimed[0]?.early.toString('latin1')).toBe(early);
        expect(run.gate.holdsClient).toBe(false);
      }),
    );
  });

  it('the app ends before the earlier answer is complete (an answer read until close): the claimed bytes are dropped, never passed on', () => {
    const run = newRun();
    push(run, bytes(REQUESTS[0] + PROBE));
    answer(run, 'HTTP/1.1 200 OK\r\n\r\nuntil close');
    run.gate.ended('upstream', 'fin', 0);
    expect(run.claimed).toEqual([]);
    expect(run.gate.holdsClient).toBe(false);
    push(run, bytes('more'));
    expect(Buffer.concat(run.forwarded).toString('latin1')).toBe(REQUESTS[0]);
  });

  it('after an upgrade request nothing is held until its answer; after a 101 never again; a refused upgrade brings the holding back', () => {
    const upgrade = 'GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n';
    const refused = newRun();
    push(refused, bytes(upgrade));
    push(refused, bytes('GET /next HTTP/1.1\r\nHo'));
    // Behind an unanswered upgrade request: passed on at once (it may be frames).
    expect(Buffer.concat(refused.forwarded).toString('latin1')).toBe(`${upgrade}GET /next HTTP/1.1\r\nHo`);
    answer(refused, 'HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n');
    push(refused, bytes('st: x\r\n\r\nGET /third HTTP/1.1\r\n'));
    // The head begun before the answer went on already; the next one is held again.
    expect(Buffer.concat(refused.forwarded).toString('latin1')).toBe(`${upgrade}GET /next HTTP/1.1\r\nHost: x\r\n\r\n`);

    const switched = newRun();
    push(switched, bytes(upgrade));
    expect(switched.gate.passesAll).toBe(false);
    answer(switched, 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    // The relay leaves the gate out from here.
    expect(switched.gate.passesAll).toBe(true);
    push(switched, bytes(PROBE.slice(0, 10)));
    push(switched, bytes(PROBE.slice(10)));
    expect(Buffer.concat(switched.forwarded).toString('latin1')).toBe(upgrade + PROBE);
    expect(switched.claimed).toEqual([]);
  });

  it('a head over 64 KiB is passed on unchanged, and from there nothing is held', () => {
    const run = newRun();
    const big = `GET /big HTTP/1.1\r\nX-Big: ${'b'.repeat(70 * 1024)}\r\n\r\n`;
    for (const chunk of chunks(bytes(big), [4096])) push(run, chunk);
    expect(Buffer.concat(run.forwarded).toString('latin1')).toBe(big);
    push(run, bytes('GET /x HTTP/1.1\r\n'));
    expect(Buffer.concat(run.forwarded).toString('latin1')).toBe(`${big}GET /x HTTP/1.1\r\n`);
    expect(run.events).toEqual([]);
  });
});
