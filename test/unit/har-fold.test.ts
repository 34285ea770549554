import { findingsAt } from '../../src/analysis/connection-findings.js';
import { ConnectionTracker } from '../../src/analysis/connection-tracker.js';
import { EMPTY_DIAGNOSIS_CONTEXT } from '../../src/analysis/connection-diagnosis.js';
import { diagnosisRecord } from '../../src/analysis/diagnosis-record.js';
import { redactHandshake } from '../../src/analysis/redaction.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CaptureEvent, CaptureGapEvent, FrameCutEvent, MessageEvent, Side } from '../../src/capture/events.js';
import { buildHar } from '../../src/har/har-document.js';
import { writeHarFile } from '../../src/har/har-file-writer.js';
import { harToEvents } from '../../src/har/har-reader.js';
import type { HarFoldOptions } from '../../src/har/har-fold.js';
import type { HarEntry } from '../../src/har/har-types.js';
import {
  closeEvent,
  finEvent,
  frameEvent,
  handshakeBodyEvent,
  handshakeRequestEvent,
  handshakeResponseEvent,
  httpResponseEvent,
  openEvent,
} from '../support/event-fixtures.js';
import { harSchemaErrors } from '../support/har-schema.js';

const T0 = 1_790_000_000_000;
const PREVIEW = (text: string): string => Buffer.from(text).toString('base64');
const b64 = (bytes: number[]): string => Buffer.from(bytes).toString('base64');

function message(conn: number, t: number, side: Side, text: string, extra: Partial<MessageEvent> = {}): MessageEvent {
  const bytes = Buffer.byteLength(text);
  return {
    kind: 'ws.message', t, tEnd: t, conn, side, opcode: 1, firstFrame: 0, frames: 1,
    wireLength: bytes, compressed: false, size: bytes, preview: PREVIEW(text), previewTruncated: false, ...extra,
  };
}

/** A session: one WebSocket connection closed by the client, one HTTP exchange, one 502, one CONNECT, one left open. */
function session(): CaptureEvent[] {
  const idle = { client: 0, upstream: 0 };
  return [
    { kind: 'session.start', t: T0, version: '0.1.0', mode: 'http', listen: '127.0.0.1:8066', target: 'http://127.0.0.1:8065', pid: 1, previewLimit: 256 },
    { kind: 'conn.open', t: T0 + 1, conn: 1, mode: 'http', remoteAddress: '127.0.0.1', remotePort: 5000, localPort: 8066 },
    {
      kind: 'ws.handshake.request', t: T0 + 2, conn: 1, method: 'GET', url: '/api/v4/websocket?access_token=SECRET1&x=1', httpVersion: '1.1', headLength: 300,
      rawHeaders: [['Host', 'chat.example.com'], ['Upgrade', 'websocket'], ['Connection', 'upgrade'], ['Cookie', 'MMAUTHTOKEN=SECRET2'], ['Authorization', 'Bearer SECRET3'], ['X-Forwarded-Proto', 'https'], ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ==']],
    },
    {
      kind: 'ws.handshake.response', t: T0 + 7.5, conn: 1, statusCode: 101, reason: 'Switching Protocols', httpVersion: '1.1', headLength: 129,
      rawHeaders: [['Upgrade', 'websocket'], ['Connection', 'Upgrade'], ['Sec-WebSocket-Accept', 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=']], upgraded: true, deflate: null, waitMs: 5.5,
    },
    frameEvent({ conn: 1, t: T0 + 10, side: 'client', opcode: 1, length: 5, preview: PREVIEW('hello') }),
    // Recorded out of time order (an inflate finished late): the export sorts it.
    message(1, T0 + 30, 'upstream', 'late-recorded but later'),
    message(1, T0 + 10, 'client', 'hello'),
    message(1, T0 + 20, 'upstream', 'é binary?', { opcode: 2 }),
    message(1, T0 + 40, 'client', 'a long message cut', { size: 5000, wireLength: 5000, previewTruncated: true }),
    message(1, T0 + 50, 'client', '', { compressed: true, size: null, preview: '', wireLength: 77 }),
    frameEvent({ conn: 1, t: T0 + 60, side: 'upstream', opcode: 9, length: 4, preview: PREVIEW('ping') }),
    frameEvent({ conn: 1, t: T0 + 61.25, side: 'client', opcode: 10, length: 4, preview: PREVIEW('ping') }),
    frameEvent({ conn: 1, t: T0 + 100, side: 'client', opcode: 8, length: 5, closeCode: 1000, closeReason: 'bye', idle: { client: 38.75, upstream: 38.75 } }),
    frameEvent({ conn: 1, t: T0 + 101, side: 'upstream', opcode: 8, length: 5, closeCode: 1000, closeReason: 'bye' }),
    { kind: 'tcp.fin', t: T0 + 102, conn: 1, side: 'upstream', idle },
    { kind: 'tcp.fin', t: T0 + 103, conn: 1, side: 'client', idle },
    { kind: 'conn.close', t: T0 + 104, conn: 1, bytes: { fromClient: 100, fromUpstream: 200 } },
    { kind: 'conn.open', t: T0 + 200, conn: 2, mode: 'http', remoteAddress: '127.0.0.1', remotePort: 5001, localPort: 8066 },
    { kind: 'http.request', t: T0 + 201, conn: 2, exchange: 1, method: 'POST', url: '/api/v4/users/login?password=SECRET4', httpVersion: '1.1', rawHeaders: [['Host', 'chat.example.com'], ['Content-Type', 'application/json']] },
    httpResponseEvent({ conn: 2, t: T0 + 212, exchange: 1, requestBodyBytes: 40, responseBodyBytes: 120, ttfbMs: 9, totalMs: 11, rawHeaders: [['Content-Type', 'application/json'], ['Set-Cookie', 'MMAUTHTOKEN=SECRET5']] }),
    { kind: 'http.request', t: T0 + 300, conn: 2, exchange: 2, method: 'GET', url: '/api/v4/users/me', httpVersion: '1.1', rawHeaders: [['Host', 'chat.example.com']] },
    { kind: 'http.error', t: T0 + 303, conn: 2, exchange: 2, stage: 'connect', code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:8065', answeredStatus: 502 },
    { kind: 'http.rejected', t: T0 + 400, conn: 3, method: 'CONNECT', url: 'example.com:443', statusCode: 405, reason: 'CONNECT is not supported' },
    { kind: 'conn.open', t: T0 + 500, conn: 4, mode: 'http', remoteAddress: '127.0.0.1', remotePort: 5002, localPort: 8066 },
    { kind: 'ws.handshake.request', t: T0 + 501, conn: 4, method: 'GET', url: '/ws', httpVersion: '1.1', headLength: 100, rawHeaders: [['Host', 'chat.example.com']] },
    { kind: 'ws.handshake.response', t: T0 + 502, conn: 4, statusCode: 101, reason: 'Switching Protocols', httpVersion: '1.1', headLength: 90, rawHeaders: [], upgraded: true, deflate: null, waitMs: 1 },
    message(4, T0 + 600, 'client', 'still open when the capture ended'),
  ];
}

const DEFAULTS: HarFoldOptions = { payloads: 'preview', redact: true };

function wsEntry(entries: HarEntry[], conn: number): HarEntry {
  const entry = entries.find((e) => e._resourceType === 'websocket' && e._wstap?.connectionId === conn);
  if (!entry) throw new Error(`no websocket entry for ${conn}`);
  return entry;
}

describe('HAR from capture events', () => {
  const har = buildHar(session(), DEFAULTS, '0.1.0');
  const entries = har.log.entries;

  it('is valid HAR 1.2 with the header the contract names', () => {
    expect(harSchemaErrors(har)).toEqual([]);
    expect(har.log.version).toBe('1.2');
    expect(har.log.creator).toEqual({ name: 'wstap', version: '0.1.0' });
    expect(har.log.pages).toEqual([]);
    expect(entries).toHaveLength(5);
  });

  it('every entry: timings sum to time, integer sizes, empty cache, serverIPAddress for an IP target', () => {
    for (const e of entries) {
      expect(e.timings.send + e.timings.wait + e.timings.receive).toBe(e.time);
      for (const n of [e.request.headersSize, e.request.bodySize, e.response.headersSize, e.response.bodySize, e.response.content.size]) {
        expect(Number.isInteger(n)).toBe(true);
      }
      expect(e.cache).toEqual({});
      expect(e.serverIPAddress).toBe('127.0.0.1');
    }
  });

  it('a WebSocket connection is one entry DevTools can import', () => {
    const ws = wsEntry(entries, 1);
    expect(ws.response.status).toBe(101);
    expect(ws.request.url).toBe('wss://chat.example.com/api/v4/websocket?access_token=%5Bredacted%5D&x=1');
    expect(ws.startedDateTime).toBe(new Date(T0 + 2).toISOString());
    expect(ws.timings.wait).toBe(5.5);
    expect(ws.time).toBe(102);
    expect(ws.request.headersSize).toBe(300);
    expect(ws.response.headersSize).toBe(129);
    // Whole messages, sorted by time, seconds with microseconds, client view.
    expect(ws._webSocketMessages?.map((m) => [m.type, m.time, m.opcode])).toEqual([
      ['send', (T0 + 10) / 1000, 1],
      ['receive', (T0 + 20) / 1000, 2],
      ['receive', (T0 + 30) / 1000, 1],
      ['send', (T0 + 40) / 1000, 1],
      ['send', (T0 + 50) / 1000, 1],
    ]);
    const [hello, binary, , cut, notInflated] = ws._webSocketMessages ?? [];
    expect(hello).toEqual({ type: 'send', time: (T0 + 10) / 1000, opcode: 1, data: 'hello' });
    expect(Buffer.from(binary?.data ?? '', 'base64').toString()).toBe('é binary?');
    expect(cut).toMatchObject({ data: 'a long message cut', _size: 5000 });
    expect(notInflated).toMatchObject({ data: '', _size: 77 });
    expect(ws._webSocketClose).toEqual({ code: 1000, reason: 'bye', timestamp: (T0 + 100) / 1000 });
  });

  it('_wstap says who closed, from which evidence, with frames and pings', () => {
    const w = wsEntry(entries, 1)._wstap;
    expect(w?.connectionId).toBe(1);
    expect(w?.closedBy).toBe('client');
    expect(w?.closeEvents.map((e) => `${e.side} ${e.kind}`)).toEqual(['client close-frame', 'upstream close-frame', 'upstream fin', 'client fin']);
    expect(w?.closeEvents[0]).toMatchObject({ code: 1000, reason: 'bye', time: (T0 + 100) / 1000 });
    expect(w?.idleBeforeCloseMs).toEqual({ client: 38.75, upstream: 38.75 });
    expect(w?.frames.map((f) => f.opcode)).toEqual([1, 9, 10, 8, 8]);
    expect(w?.frames[0]).toEqual({ type: 'send', time: (T0 + 10) / 1000, opcode: 1, fin: true, rsv1: false, masked: true, length: 5 });
    expect(w?.pings).toEqual([{ from: 'upstream', rttMs: 1.25 }]);
    expect(w?.diagnosis).toEqual([]);
    expect(w?.redacted).toBe(true);
  });

  it('plain HTTP exchanges, a 502 wstap answered and a rejected CONNECT are entries too', () => {
    const post = entries.find((e) => e.request.method === 'POST');
    expect(post?.request.url).toBe('http://chat.example.com/api/v4/users/login?password=%5Bredacted%5D');
    expect(post?.response).toMatchObject({ status: 200, bodySize: 120, content: { size: 120, mimeType: 'application/json' } });
    expect(post?.request.bodySize).toBe(40);
    expect(post?.timings).toMatchObject({ wait: 9, receive: 2 });
    const failed = entries.find((e) => e.request.url.endsWith('/users/me'));
    expect(failed?.response).toMatchObject({ status: 502, statusText: 'Bad Gateway', _error: 'ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:8065' });
    expect(failed?._wstap?.answeredBy).toBe('wstap');
    expect(entries.find((e) => e.request.method === 'CONNECT')?.response.status).toBe(405);
  });

  it('a connection still open at the end of the capture is exported, closed "aborted"', () => {
    const open = wsEntry(entries, 4);
    expect(open._webSocketClose).toBe('aborted');
    expect(open._wstap?.closedBy).toBeNull();
    expect(open._webSocketMessages).toHaveLength(1);
  });

  it('redacts by default and keeps everything with redaction off', () => {
    const redacted = JSON.stringify(har);
    for (const secret of ['SECRET1', 'SECRET2', 'SECRET3', 'SECRET4', 'SECRET5']) expect(redacted).not.toContain(secret);
    const plain = JSON.stringify(buildHar(session(), { ...DEFAULTS, redact: false }, '0.1.0'));
    for (const secret of ['SECRET1', 'SECRET2', 'SECRET3', 'SECRET4', 'SECRET5']) expect(plain).toContain(secret);
  });

  it('--payloads none keeps sizes but no data', () => {
    const none = buildHar(session(), { ...DEFAULTS, payloads: 'none' }, '0.1.0');
    const messages = wsEntry(none.log.entries, 1)._webSocketMessages ?? [];
    expect(messages.every((m) => m.data === '' && typeof m._size === 'number')).toBe(true);
    expect(messages[0]?._size).toBe(5);
    expect(wsEntry(none.log.entries, 1)._wstap?.frames.some((f) => 'payload' in f)).toBe(false);
    expect(harSchemaErrors(none)).toEqual([]);
  });

  it('--payloads none: pings and pongs carry an id per distinct data instead, equal data, equal id', () => {
    const none = buildHar(session(), { ...DEFAULTS, payloads: 'none' }, '0.1.0');
    expect(wsEntry(none.log.entries, 1)._wstap?.frames.filter((f) => f.opcode === 9 || f.opcode === 10).map((f) => f.payloadId)).toEqual([0, 0]);
  });

  it('pings and pongs carry their data, which pairs them when the HAR is read back; other frames carry none', () => {
    const frames = wsEntry(entries, 1)._wstap?.frames ?? [];
    expect(frames.map((f) => [f.opcode, f.payload])).toEqual([
      [1, undefined],
      [9, PREVIEW('ping')],
      [10, PREVIEW('ping')],
      [8, undefined],
      [8, undefined],
    ]);
  });
});

describe('HAR: the body of a refused handshake', () => {
  /** The app's answer (head 129 bytes, as the fixture says) and `bodyOnWire` more bytes, all counted in conn.close. */
  function refusal(
    body: CaptureEvent | null,
    rawHeaders: Array<[string, string]> = [['Content-Type', 'text/plain; charset=utf-8'], ['Set-Cookie', 'sid=SECRET']],
    bodyOnWire = body?.kind === 'ws.handshake.body' ? body.bytes : 0,
  ): CaptureEvent[] {
    return [
      { kind: 'session.start', t: T0, version: '0.1.0', mode: 'http', listen: '127.0.0.1:8066', target: 'http://127.0.0.1:8065', pid: 1, previewLimit: 256 },
      openEvent(1, { t: T0 + 1 }),
      handshakeRequestEvent(1, T0 + 2),
      handshakeResponseEvent(1, T0 + 4, { statusCode: 400, reason: 'Bad Request', upgraded: false, rawHeaders }),
      ...(body ? [body] : []),
      finEvent(1, T0 + 6, 'upstream'),
      closeEvent(1, T0 + 7, { fromClient: 200, fromUpstream: 129 + bodyOnWire }),
    ];
  }
  const notUpgraded = (entry: HarEntry): string[] => entry._wstap?.diagnosis.find((f) => f.id === 'handshake.not-upgraded')?.evidence ?? [];

  it('response.content carries the size, the text and the media type; the diagnosis quotes it', () => {
    const har = buildHar(refusal(handshakeBodyEvent(1, T0 + 5, 'Origin not allowed\n')), DEFAULTS, '0.1.0');
    expect(harSchemaErrors(har)).toEqual([]);
    const entry = wsEntry(har.log.entries, 1);
    expect(entry.response.status).toBe(400);
    expect(entry.response.bodySize).toBe(19);
    expect(entry.response.content).toEqual({ size: 19, mimeType: 'text/plain; charset=utf-8', text: 'Origin not allowed\n' });
    expect(notUpgraded(entry)).toContain('body (19 bytes): Origin not allowed\\n');
    // The header is redacted; the body is not a header.
    expect(JSON.stringify(entry.response.headers)).not.toContain('SECRET');
  });

  it('--payloads none: size only; a cut preview says so; binary is base64', () => {
    const none = wsEntry(buildHar(refusal(handshakeBodyEvent(1, T0 + 5, 'Origin not allowed\n')), { ...DEFAULTS, payloads: 'none' }, '0.1.0').log.entries, 1);
    expect(none.response.content).toEqual({ size: 19, mimeType: 'text/plain; charset=utf-8' });
    expect(notUpgraded(none)).toContain('body (19 bytes): Origin not allowed\\n');

    // The preview filled at 5000 bytes; the body went on to 9000: the close's byte count says so.
    const cut = wsEntry(buildHar(refusal(handshakeBodyEvent(1, T0 + 5, 'Origin', { bytes: 5000, previewTruncated: true }), undefined, 9000), DEFAULTS, '0.1.0').log.entries, 1);
    expect(cut.response.bodySize).toBe(9000);
    expect(cut.response.content).toEqual({ size: 9000, mimeType: 'text/plain; charset=utf-8', text: 'Origin', comment: 'first 6 bytes of the body' });

    const binary = { ...handshakeBodyEvent(1, T0 + 5), preview: b64([0xff, 0x00, 0xfe]), bytes: 3 };
    const bin = buildHar(refusal(binary, [['Content-Type', 'application/octet-stream']]), DEFAULTS, '0.1.0');
    expect(harSchemaErrors(bin)).toEqual([]);
    expect(wsEntry(bin.log.entries, 1).response.content).toEqual({ size: 3, mimeType: 'application/octet-stream', text: '/wD+', encoding: 'base64' });
  });

  it('_wstap.handshakeBody keeps when and how much, so the HAR read back quotes the body as the live fold did', () => {
    // The preview filled at 5000 bytes and the body went on to 9000: the quote says 5000, as it did live.
    const events = refusal(handshakeBodyEvent(1, T0 + 5, 'Origin', { bytes: 5000, previewTruncated: true }), undefined, 9000);
    const har = buildHar(events, DEFAULTS, '0.1.0');
    const entry = wsEntry(har.log.entries, 1);
    expect(entry._wstap?.handshakeBody).toEqual({ time: (T0 + 5) / 1000, bytes: 5000, truncated: true });
    const read = harToEvents(JSON.stringify(har), 'refusal.har');
    expect(read.warnings).toEqual([]);
    expect(read.events.find((e) => e.kind === 'ws.handshake.body')).toEqual(events.find((e) => e.kind === 'ws.handshake.body'));
    const tracker = new ConnectionTracker();
    const found = read.events.flatMap((e) => findingsAt(e, tracker.apply(e), EMPTY_DIAGNOSIS_CONTEXT, redactHandshake));
    expect(found).toEqual(entry._wstap?.diagnosis);
    expect(notUpgraded(entry)).toContain('body (5000 bytes): Origin…');
  });

  it('no body event (an older capture): content as before, no body line', () => {
    const entry = wsEntry(buildHar(refusal(null), DEFAULTS, '0.1.0').log.entries, 1);
    expect(entry.response.content).toEqual({ size: 0, mimeType: 'text/plain; charset=utf-8' });
    expect(notUpgraded(entry).some((l) => l.startsWith('body'))).toBe(false);
    const empty = wsEntry(buildHar(refusal(handshakeBodyEvent(1, T0 + 5, '')), DEFAULTS, '0.1.0').log.entries, 1);
    expect(notUpgraded(empty)).toContain('body: (no body)');
  });
});

describe('streamed HAR file', () => {
  async function* events(list: CaptureEvent[]): AsyncGenerator<CaptureEvent> {
    yield* list;
  }

  it('is the same document as the in-memory one, even when everything spills to disk', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-har-'));
    const file = path.join(dir, 'out.har');
    // Many messages on two interleaved connections, with a budget so small every item spills.
    const list = session();
    const extra: CaptureEvent[] = [];
    for (let i = 0; i < 2000; i++) extra.push(message(4, T0 + 700 + i, i % 2 ? 'client' : 'upstream', `m${i} "quoted" \\ ${'x'.repeat(i % 50)}`));
    list.push(...extra);
    const stats = await writeHarFile(events(list), { ...DEFAULTS, path: file, overwrite: false, creatorVersion: '0.1.0', spillBudgetBytes: 64 });
    const streamed = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    expect(streamed).toEqual(buildHar(list, DEFAULTS, '0.1.0'));
    expect(harSchemaErrors(streamed)).toEqual([]);
    expect(stats.entries).toBe(5);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    // Never overwrites without being told to.
    await expect(writeHarFile(events(list), { ...DEFAULTS, path: file, overwrite: false, creatorVersion: '0.1.0' })).rejects.toMatchObject({ code: 'EEXIST' });
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('HAR: where the capture lost events', () => {
  const gap: CaptureGapEvent = { kind: 'capture.gap', t: T0 + 5000.5, from: T0 + 200.25, lostEvents: 42, code: 'ENOSPC' };

  it('log._wstap.captureGaps lists them, in epoch seconds like the other _wstap times; without gaps there is no log._wstap', async () => {
    const list = [...session(), gap];
    const har = buildHar(list, DEFAULTS, '0.1.0');
    expect(har.log._wstap).toStrictEqual({ captureGaps: [{ from: (T0 + 200.25) / 1000, to: (T0 + 5000.5) / 1000, lostEvents: 42, code: 'ENOSPC' }] });
    expect(harSchemaErrors(har)).toEqual([]);
    expect(buildHar(session(), DEFAULTS, '0.1.0').log._wstap).toBeUndefined();

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-har-'));
    const file = path.join(dir, 'out.har');
    await writeHarFile((async function* () { yield* list; })(), { ...DEFAULTS, path: file, overwrite: false, creatorVersion: '0.1.0' });
    const streamed = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    expect(streamed).toEqual(har);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('says whose capture lost them when several instances were exported together, and reads that back', () => {
    const mine: CaptureGapEvent = { ...gap, instance: 'edge-1/127.0.0.1:8066' };
    const har = buildHar([...session(), mine], DEFAULTS, '0.1.0');
    expect(har.log._wstap?.captureGaps).toStrictEqual([{ from: (T0 + 200.25) / 1000, to: (T0 + 5000.5) / 1000, lostEvents: 42, code: 'ENOSPC', instance: 'edge-1/127.0.0.1:8066' }]);
    expect(harSchemaErrors(har)).toEqual([]);
    const back = harToEvents(JSON.stringify(har), 'gap.har');
    expect(back.events.filter((e) => e.kind === 'capture.gap')).toStrictEqual([mine]);
  });

  it('reads back from the HAR as the same capture.gap, counted in the session end', () => {
    const back = harToEvents(JSON.stringify(buildHar([...session(), gap], DEFAULTS, '0.1.0')), 'gap.har');
    expect(back.warnings).toEqual([]);
    expect(back.events.filter((e) => e.kind === 'capture.gap')).toStrictEqual([gap]);
    expect(back.events.at(-1)).toMatchObject({ kind: 'session.end', droppedEvents: 42 });
  });
});

describe('HAR: a frame the connection ended in the middle of', () => {
  const cut: FrameCutEvent = {
    kind: 'ws.frame.cut', t: T0 + 101.5, conn: 1, side: 'upstream', index: 3, offset: 5000, started: T0 + 90.25,
    received: 102_410, opcode: 2, length: 1_048_576, payloadReceived: 102_400,
  };
  const headerOnly: FrameCutEvent = { kind: 'ws.frame.cut', t: T0 + 101.5, conn: 1, side: 'client', index: 4, offset: 61, started: T0 + 101, received: 2 };
  const withCuts = (): CaptureEvent[] => {
    const list = session();
    const close = list.findIndex((e) => e.kind === 'conn.close' && e.conn === 1);
    list.splice(close, 0, cut, headerOnly);
    return list;
  };

  it('_wstap.cutFrames says how much of it came, in the entry of its connection', () => {
    const har = buildHar(withCuts(), DEFAULTS, '0.1.0');
    expect(wsEntry(har.log.entries, 1)._wstap?.cutFrames).toStrictEqual([
      { type: 'receive', time: (T0 + 90.25) / 1000, endTime: (T0 + 101.5) / 1000, offset: 5000, received: 102_410, opcode: 2, length: 1_048_576, payloadReceived: 102_400 },
      { type: 'send', time: (T0 + 101) / 1000, endTime: (T0 + 101.5) / 1000, offset: 61, received: 2 },
    ]);
    expect(harSchemaErrors(har)).toEqual([]);
    expect(wsEntry(buildHar(session(), DEFAULTS, '0.1.0').log.entries, 1)._wstap?.cutFrames).toBeUndefined();
  });

  it('reads back as the same ws.frame.cut events, numbered after each side\'s whole frames', () => {
    const back = harToEvents(JSON.stringify(buildHar(withCuts(), DEFAULTS, '0.1.0')), 'cut.har');
    expect(back.warnings).toEqual([]);
    const cuts = back.events.filter((e) => e.kind === 'ws.frame.cut');
    // The HAR keeps the frame's offset; indexes are recounted from the frames it lists (2 upstream, 3 client).
    expect(cuts).toStrictEqual([{ ...cut, index: 2 }, { ...headerOnly, index: 3 }]);
  });
});

describe('HAR: a peer sending close frame after close frame', () => {
  it('keeps the close evidence bounded and the attribution exact', () => {
    const list = session().filter((e) => !('conn' in e) || e.conn !== 1 || e.kind === 'conn.open' || e.kind.startsWith('ws.handshake'));
    for (let i = 0; i < 1000; i++) list.push(frameEvent({ conn: 1, t: T0 + 10 + i, side: 'client', opcode: 8, length: 2, closeCode: 1000 }));
    list.push({ kind: 'tcp.fin', t: T0 + 2000, conn: 1, side: 'upstream', idle: { client: 0, upstream: 0 } });
    list.push({ kind: 'conn.close', t: T0 + 2001, conn: 1, bytes: { fromClient: 8000, fromUpstream: 0 } });
    const w = wsEntry(buildHar(list, DEFAULTS, '0.1.0').log.entries, 1)._wstap;
    expect(w?.closedBy).toBe('client');
    // The first 32, and the upstream's first piece on top.
    expect(w?.closeEvents).toHaveLength(33);
    expect(w?.closeEvents.at(-1)).toMatchObject({ side: 'upstream', kind: 'fin' });
  });
});

describe('HAR: a gap that lost no event', () => {
  it('(the disk guard paused with nothing to record) is listed, but marks no entry incomplete and leaves closedBy judged', () => {
    const events = session();
    // Between connection 1's handshake and its frames.
    events.splice(4, 0, { kind: 'capture.gap', t: T0 + 8, from: T0 + 7.6, lostEvents: 0, code: 'MIN_FREE' });
    const har = buildHar(events, DEFAULTS, '0.1.0');
    const w = wsEntry(har.log.entries, 1)._wstap;
    expect(w?.incomplete).toBeUndefined();
    expect(w?.closedBy).toBe('client');
  });
});

describe('HAR: a connection whose beginning is not in the capture (segment deleted by --keep)', () => {
  // What segment 1 holds when segment 0 (session.start, conn.open, the handshake) was deleted.
  const tail: CaptureEvent[] = [
    message(7, T0 + 10, 'client', 'hello again'),
    frameEvent({ conn: 7, t: T0 + 10, side: 'client', opcode: 1, length: 11, preview: PREVIEW('hello again') }),
    frameEvent({ conn: 7, t: T0 + 20, side: 'upstream', opcode: 8, length: 2, closeCode: 1001, idle: { client: 10, upstream: 5000 } }),
    { kind: 'tcp.fin', t: T0 + 21, conn: 7, side: 'upstream', idle: { client: 11, upstream: 1 } },
    closeEvent(7, T0 + 22),
    // An HTTP keep-alive connection's end: nothing a HAR entry can be made of.
    { kind: 'tcp.fin', t: T0 + 30, conn: 8, side: 'client', idle: { client: 0, upstream: 0 } },
    closeEvent(8, T0 + 31),
  ];
  const har = buildHar(tail, DEFAULTS, '0.1.0');

  it('is kept as a WebSocket entry with what is known, marked incomplete, and stays valid HAR', () => {
    expect(harSchemaErrors(har)).toEqual([]);
    expect(har.log.entries).toHaveLength(1);
    const entry = wsEntry(har.log.entries, 7);
    expect(entry.startedDateTime).toBe(new Date(T0 + 10).toISOString());
    expect(entry.request.headers).toEqual([]);
    expect(entry._webSocketMessages?.map((m) => m.data)).toEqual(['hello again']);
    expect(entry._webSocketClose).toMatchObject({ code: 1001 });
    expect(entry._wstap?.incomplete).toMatchObject({ beginningMissing: true });
    // No handshake rules run on a request that is not there.
    expect(entry._wstap?.diagnosis.filter((f) => f.id.startsWith('handshake.'))).toEqual([]);
  });

  it('says who closed only when the events rule out earlier evidence in the missing part', () => {
    // Only the client spoke after the missing part: the upstream's close frame may not be the first evidence.
    const u = wsEntry(har.log.entries, 7)._wstap;
    expect(u?.closedBy).toBeNull();
    expect(u?.closeEvents).toHaveLength(2);
    expect(u?.incomplete?.closedByUnknown).toMatch(/first close evidence may be there/);
    // The upstream sent a frame after the missing part: it had sent no close frame, FIN or RST before it; nor had the client.
    const bothSpoke = [...tail];
    bothSpoke.splice(2, 0, frameEvent({ conn: 7, t: T0 + 15, side: 'upstream', opcode: 1, length: 2, preview: PREVIEW('ok') }));
    expect(wsEntry(buildHar(bothSpoke, DEFAULTS, '0.1.0').log.entries, 7)._wstap?.closedBy).toBe('upstream');
  });
});

describe('HAR: close order under backpressure', () => {
  // wstap paused reading the upstream at +540 ms (the client did not read); the client's FIN came at +1520, the upstream's was read at +2070.
  const pausedSince = { upstream: T0 + 540 };
  function backpressured(upstreamPaused: boolean): CaptureEvent[] {
    return [
      openEvent(1, { t: T0 }),
      handshakeRequestEvent(1, T0 + 1),
      handshakeResponseEvent(1, T0 + 3),
      finEvent(1, T0 + 1520, 'client', { client: 1500, upstream: 980 }, pausedSince),
      finEvent(1, T0 + 2070, 'upstream', { client: 2050, upstream: 0.5 }, upstreamPaused ? pausedSince : undefined),
      closeEvent(1, T0 + 2100),
    ];
  }

  it('closedBy is null, closeOrder says why, and each close event keeps its paused sides in epoch seconds', () => {
    const har = buildHar(backpressured(true), DEFAULTS, '0.1.0');
    const w = wsEntry(har.log.entries, 1)._wstap;
    expect(w?.closedBy).toBeNull();
    expect(w?.closeOrder).toStrictEqual({ reason: 'order-unknown', pausedSide: 'upstream', pausedSince: (T0 + 540) / 1000 });
    expect(w?.closeEvents).toStrictEqual([
      { side: 'client', kind: 'fin', time: (T0 + 1520) / 1000, pausedSince: { upstream: (T0 + 540) / 1000 } },
      { side: 'upstream', kind: 'fin', time: (T0 + 2070) / 1000, pausedSince: { upstream: (T0 + 540) / 1000 } },
    ]);
    expect(harSchemaErrors(har)).toEqual([]);
  });

  it('names the closer and has no closeOrder when the paused side had caught up', () => {
    const w = wsEntry(buildHar(backpressured(false), DEFAULTS, '0.1.0').log.entries, 1)._wstap;
    expect(w?.closedBy).toBe('client');
    expect(w?.closeOrder).toBeUndefined();
    expect(w?.closeEvents[1]).toStrictEqual({ side: 'upstream', kind: 'fin', time: (T0 + 2070) / 1000 });
  });

  it('reads back to the same verdict', () => {
    const back = harToEvents(JSON.stringify(buildHar(backpressured(true), DEFAULTS, '0.1.0')), 'order.har');
    expect(back.warnings).toEqual([]);
    const fins = back.events.filter((e) => e.kind === 'tcp.fin');
    expect(fins.map((e) => (e.kind === 'tcp.fin' ? [e.side, e.pausedSince] : []))).toStrictEqual([
      ['client', pausedSince],
      ['upstream', pausedSince],
    ]);
    const again = wsEntry(buildHar(back.events, DEFAULTS, '0.1.0').log.entries, 1)._wstap;
    expect(again?.closedBy).toBeNull();
    expect(again?.closeOrder?.pausedSide).toBe('upstream');
  });
});

describe('_wstap.diagnosis with two hops whose timers both fit', () => {
  it('carries timeout.ambiguous naming both, no timeout.match', () => {
    const events: CaptureEvent[] = [
      openEvent(1, { t: T0 }),
      handshakeRequestEvent(1, T0 + 1),
      handshakeResponseEvent(1, T0 + 2),
      finEvent(1, T0 + 2_050, 'client', { client: 2_040, upstream: 2_040 }),
      finEvent(1, T0 + 2_051, 'upstream', { client: 1, upstream: 2_041 }),
      closeEvent(1, T0 + 2_052),
    ];
    const hop = (name: string, setting: string) => ({ hop: name, setting, seconds: 2, measures: 'both-idle' as const, where: 'client-side' as const, action: 'fin' as const });
    const diagnosis = diagnosisRecord(null, [], { timeouts: [hop('front-lb', 'idle_timeout'), hop('nginx', 'proxy_read_timeout')], requiredHeaders: [], heartbeat: null });
    const found = wsEntry(buildHar(events, { ...DEFAULTS, diagnosis }, '0.1.0').log.entries, 1)._wstap?.diagnosis ?? [];
    expect(found.map((f) => f.id)).toEqual(['timeout.ambiguous']);
    expect(found[0]?.message).toMatch(/nothing observed tells them apart: front-lb idle_timeout 2s, nginx proxy_read_timeout 2s$/);
  });
});

describe('HAR: when the connection was accepted, before its first request', () => {
  // A slow client: accepted at T0, its handshake head complete 5 s later; a 30 s lifetime timer counts from the accept.
  const lifetime = { hop: 'gcp-lb', setting: 'timeoutSec', seconds: 30, measures: 'lifetime' as const, where: 'client-side' as const };
  const diagnosis = diagnosisRecord(null, [], { timeouts: [lifetime], requiredHeaders: [], heartbeat: null });
  const events: CaptureEvent[] = [
    openEvent(1, { t: T0 }),
    handshakeRequestEvent(1, T0 + 5_000),
    handshakeResponseEvent(1, T0 + 5_003),
    finEvent(1, T0 + 30_000, 'client', { client: 10_000, upstream: 10_000 }),
    finEvent(1, T0 + 30_001, 'upstream'),
    closeEvent(1, T0 + 30_002),
  ];
  const har = buildHar(events, { ...DEFAULTS, diagnosis }, '0.1.0');

  it('says when in _wstap.connectionOpenedAt; a stand-in (no conn.open in the capture) says nothing', () => {
    expect(wsEntry(har.log.entries, 1)._wstap?.connectionOpenedAt).toBe(T0 / 1000);
    expect(wsEntry(har.log.entries, 1)._wstap?.diagnosis.map((f) => f.id)).toEqual(['timeout.match']);
    const standIn = buildHar(events.filter((e) => e.kind !== 'conn.open' && e.kind !== 'ws.handshake.request' && e.kind !== 'ws.handshake.response').concat(frameEvent({ conn: 1, t: T0 + 6_000, side: 'client', opcode: 1, length: 2 })).sort((a, b) => a.t - b.t), DEFAULTS, '0.1.0');
    expect(wsEntry(standIn.log.entries, 1)._wstap).not.toHaveProperty('connectionOpenedAt');
  });

  it('read back, the connection opens then, so its age (and the lifetime verdict) is the live one', () => {
    const read = harToEvents(JSON.stringify(har), 'slow.har');
    expect(read.events.find((e) => e.kind === 'conn.open')?.t).toBe(T0);
    const tracker = new ConnectionTracker();
    const found = read.events.flatMap((e) => findingsAt(e, tracker.apply(e), diagnosis.context));
    expect(found.map((f) => [f.id, f.message])).toEqual(wsEntry(har.log.entries, 1)._wstap?.diagnosis.map((f) => [f.id, f.message]));
  });
});

describe('HAR --payloads none: payload ids stay bounded and still pair', () => {
  it('forgets ids of data no waiting ping carries, never those of a waiting one, and never reuses an id', () => {
    const control = (t: number, side: Side, opcode: 9 | 10, data: string) => frameEvent({ conn: 1, t, side, opcode, length: data.length, preview: PREVIEW(data) });
    const events: CaptureEvent[] = [
      openEvent(1, { t: T0 }),
      handshakeRequestEvent(1, T0 + 1),
      handshakeResponseEvent(1, T0 + 2),
      control(T0 + 10, 'client', 9, 'waiting'),
      control(T0 + 11, 'upstream', 10, 'gone'),
      // 100 pongs of the app's one-way heartbeat, each with new data: far past what is kept.
      ...Array.from({ length: 100 }, (_, i) => control(T0 + 20 + i, 'upstream', 10, `beat-${i}`)),
      control(T0 + 200, 'upstream', 10, 'gone'),
      control(T0 + 201, 'upstream', 10, 'waiting'),
    ];
    const frames = wsEntry(buildHar(events, { ...DEFAULTS, payloads: 'none' }, '0.1.0').log.entries, 1)._wstap?.frames ?? [];
    const ids = frames.map((f) => f.payloadId);
    expect(ids.slice(0, 2)).toEqual([0, 1]);
    // 'gone' was forgotten (no ping waits with it): a new id, not 1. 'waiting' still waits: its id is kept.
    expect(ids.slice(-2)).toEqual([102, 0]);
    expect(new Set(ids.slice(1, -1)).size).toBe(102);
    const read = harToEvents(JSON.stringify(buildHar(events, { ...DEFAULTS, payloads: 'none' }, '0.1.0')), 'none.har');
    const tracker = new ConnectionTracker();
    for (const e of read.events) tracker.apply(e);
    expect(tracker.get(1)?.pingPairing.cadence.client).toMatchObject({ sent: 1, answered: 1 });
    expect(tracker.get(1)?.pingPairing.strays.upstream).toMatchObject({ mismatched: 102, unsolicited: 0 });
  });
});

describe('HAR: a handshake answered with something that is not HTTP', () => {
  const events: CaptureEvent[] = [
    openEvent(1, { t: T0 }),
    handshakeRequestEvent(1, T0 + 1),
    { kind: 'ws.handshake.error', t: T0 + 3, conn: 1, code: 'HPE_INVALID_CONSTANT', message: 'Expected HTTP/', offset: 0 },
    finEvent(1, T0 + 4, 'upstream'),
    finEvent(1, T0 + 5, 'client'),
    closeEvent(1, T0 + 6),
  ];
  const har = buildHar(events, DEFAULTS, '0.1.0');

  it('keeps what went wrong in _wstap.handshakeError; the response says no answer came', () => {
    const entry = wsEntry(har.log.entries, 1);
    expect(entry._wstap?.handshakeError).toEqual({ time: (T0 + 3) / 1000, code: 'HPE_INVALID_CONSTANT', message: 'Expected HTTP/', offset: 0 });
    expect(entry.response).toMatchObject({ status: 0, _error: 'the upstream closed before answering the handshake' });
    expect(entry._wstap?.diagnosis.map((f) => f.id)).toEqual(['handshake.no-answer']);
  });

  it('read back, it is the ws.handshake.error the capture had, and the verdict is the same', () => {
    const read = harToEvents(JSON.stringify(har), 'garbage.har');
    expect(read.warnings).toEqual([]);
    expect(read.events.find((e) => e.kind === 'ws.handshake.error')).toEqual(events[2]);
    expect(read.events.some((e) => e.kind === 'http.error')).toBe(false);
    const tracker = new ConnectionTracker();
    const found = read.events.flatMap((e) => findingsAt(e, tracker.apply(e), EMPTY_DIAGNOSIS_CONTEXT, redactHandshake));
    expect(found).toEqual(wsEntry(har.log.entries, 1)._wstap?.diagnosis);
  });
});
