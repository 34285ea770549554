import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CaptureEvent, HandshakeBodyEvent, RawHeaders } from '../../src/capture/events.js';
import { SessionClock } from '../../src/capture/session-clock.js';
import { ConnectionContext } from '../../src/relay/connection-context.js';
import { HANDSHAKE_BODY_WAIT_MS, HandshakeBodyTap, MAX_HANDSHAKE_BODY_PREVIEW } from '../../src/relay/handshake-body-tap.js';
import type { HttpResponseHead } from '../../src/wire/http-head-parser.js';

function head(statusCode: number, rawHeaders: RawHeaders): HttpResponseHead {
  return { kind: 'response', httpVersion: '1.1', statusCode, reason: 'x', rawHeaders, headLength: 50 };
}

function tap(statusCode: number, rawHeaders: RawHeaders, previewLimit = 256): { tap: HandshakeBodyTap; events: CaptureEvent[] } {
  const events: CaptureEvent[] = [];
  const ctx = new ConnectionContext(7, new SessionClock(), { record: (e) => events.push(e) });
  return { tap: new HandshakeBodyTap(ctx, head(statusCode, rawHeaders), previewLimit), events };
}

function bodies(events: CaptureEvent[]): HandshakeBodyEvent[] {
  return events.filter((e): e is HandshakeBodyEvent => e.kind === 'ws.handshake.body');
}

const text = (e: HandshakeBodyEvent | undefined): string => Buffer.from(e?.preview ?? '', 'base64').toString('utf8');

describe('HandshakeBodyTap', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('records a Content-Length body as soon as it is complete, once', () => {
    const { tap: t, events } = tap(400, [['Content-Length', '19']]);
    t.observe(Buffer.from('Origin not'), 1);
    expect(bodies(events)).toHaveLength(0);
    t.observe(Buffer.from(' allowed\n'), 2);
    t.observe(Buffer.from('junk'), 3);
    t.finish();
    const [e] = bodies(events);
    expect(bodies(events)).toHaveLength(1);
    expect(e).toMatchObject({ conn: 7, t: 2, bytes: 19, previewTruncated: false });
    expect(text(e)).toBe('Origin not allowed\n');
  });

  it('a status without a body (or Content-Length 0) is recorded at once with 0 bytes', () => {
    for (const [status, headers] of [
      [204, [['Content-Length', '5']]],
      [304, []],
      [403, [['Content-Length', '0']]],
    ] as Array<[number, RawHeaders]>) {
      const { tap: t, events } = tap(status, headers);
      t.observe(Buffer.alloc(0), 1);
      expect(bodies(events), String(status)).toEqual([expect.objectContaining({ bytes: 0, preview: '', previewTruncated: false })]);
    }
  });

  it('a body delimited by the close is recorded at finish()', () => {
    const { tap: t, events } = tap(403, [['Content-Type', 'text/plain']]);
    t.observe(Buffer.from('Forbidden'), 1);
    expect(bodies(events)).toHaveLength(0);
    t.finish();
    t.finish();
    expect(bodies(events)).toHaveLength(1);
    expect(bodies(events)[0]).toMatchObject({ bytes: 9, previewTruncated: false });
    expect(text(bodies(events)[0])).toBe('Forbidden');
  });

  it('stops at the preview limit, and never keeps more than 1024 bytes', () => {
    const { tap: small, events } = tap(500, [], 8);
    small.observe(Buffer.from('0123'), 1);
    expect(bodies(events)).toHaveLength(0);
    small.observe(Buffer.from('456789'), 2);
    expect(bodies(events)).toEqual([expect.objectContaining({ t: 2, bytes: 10, previewTruncated: true })]);
    expect(text(bodies(events)[0])).toBe('01234567');

    const { tap: big, events: bigEvents } = tap(500, [], 1_000_000);
    big.observe(Buffer.alloc(5000, 0x61), 1);
    const [e] = bodies(bigEvents);
    expect(Buffer.from(e?.preview ?? '', 'base64')).toHaveLength(MAX_HANDSHAKE_BODY_PREVIEW);
    expect(e).toMatchObject({ bytes: 5000, previewTruncated: true });
  });

  it('preview limit 0: counts bytes only, recorded when complete or at the end', () => {
    const { tap: t, events } = tap(400, [['Content-Length', '19']], 0);
    t.observe(Buffer.from('Origin not allowed\n'), 1);
    expect(bodies(events)).toEqual([expect.objectContaining({ preview: '', bytes: 19, previewTruncated: true })]);
    const { tap: open, events: openEvents } = tap(400, [], 0);
    open.observe(Buffer.from('abc'), 1);
    open.observe(Buffer.from('def'), 2);
    expect(bodies(openEvents)).toHaveLength(0);
    open.finish();
    expect(bodies(openEvents)).toEqual([expect.objectContaining({ preview: '', bytes: 6 })]);
  });

  it('a body that streams or stays open is recorded at the deadline with what came by then', () => {
    vi.useFakeTimers();
    const { tap: t, events } = tap(200, [['Content-Type', 'text/event-stream']]);
    t.observe(Buffer.alloc(0), 1);
    t.observe(Buffer.from('data: hello\n\n'), 2);
    vi.advanceTimersByTime(HANDSHAKE_BODY_WAIT_MS - 1);
    expect(bodies(events)).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(bodies(events)).toHaveLength(1);
    expect(text(bodies(events)[0])).toBe('data: hello\n\n');
    t.observe(Buffer.from('data: more\n\n'), 3);
    t.finish();
    expect(bodies(events)).toHaveLength(1);
  });

  it('de-chunks a chunked body and records it at the last chunk', () => {
    const { tap: t, events } = tap(400, [['Transfer-Encoding', 'chunked']]);
    const wire = Buffer.from('7\r\nOrigin \r\nc\r\nnot allowed\n\r\n0\r\n\r\n');
    for (let i = 0; i < wire.length; i++) t.observe(wire.subarray(i, i + 1), i);
    const [e] = bodies(events);
    expect(e).toMatchObject({ bytes: wire.length, previewTruncated: false, t: wire.length - 1 });
    expect(text(e)).toBe('Origin not allowed\n');
  });

  it('a chunked body beyond the limit, a cut one, and a malformed one', () => {
    const { tap: t, events } = tap(400, [['Transfer-Encoding', 'gzip, chunked']], 4);
    t.observe(Buffer.from('3\r\nabc\r\n3\r\ndef\r\n'), 1);
    expect(bodies(events)).toEqual([expect.objectContaining({ previewTruncated: true, bytes: 16 })]);
    expect(text(bodies(events)[0])).toBe('abcd');

    const { tap: cut, events: cutEvents } = tap(400, [['Transfer-Encoding', 'chunked']]);
    cut.observe(Buffer.from('a\r\nOrigin'), 1);
    cut.finish();
    expect(text(bodies(cutEvents)[0])).toBe('Origin');
    expect(bodies(cutEvents)[0]).toMatchObject({ bytes: 9, previewTruncated: false });

    // Not chunked after all: the raw bytes are the better evidence.
    const { tap: bad, events: badEvents } = tap(400, [['Transfer-Encoding', 'chunked']]);
    bad.observe(Buffer.from('Origin not allowed'), 1);
    bad.finish();
    expect(text(badEvents.find((e) => e.kind === 'ws.handshake.body') as HandshakeBodyEvent)).toBe('Origin not allowed');
  });

  it('does not keep a reference to the relayed chunk', () => {
    const { tap: t, events } = tap(400, []);
    const chunk = Buffer.from('hello');
    t.observe(chunk, 1);
    chunk.fill(0x21);
    t.finish();
    expect(text(bodies(events)[0])).toBe('hello');
  });
});
