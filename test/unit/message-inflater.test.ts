import { createRequire } from 'node:module';
import { constants, createDeflateRaw, deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { MessageInflater } from '../../src/wire/message-inflater.js';
import type { InflatedMessage, MessageInflaterOptions } from '../../src/wire/message-inflater.js';

const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/** The parts of ws's (untyped) PerMessageDeflate these tests use. */
interface WsPerMessageDeflate {
  accept(offers: Array<Record<string, Array<string | true>>>): unknown;
  compress(data: Buffer, fin: boolean, callback: (error: Error | null, result?: Buffer) => void): void;
  cleanup(): void;
}
// ws exposes the class on its CommonJS export; the ESM wrapper and @types/ws do not.
const WsPerMessageDeflateClass = (createRequire(import.meta.url)('ws') as { PerMessageDeflate: new (options: Record<string, unknown>) => WsPerMessageDeflate })
  .PerMessageDeflate;

function wsCompress(deflate: WsPerMessageDeflate, data: Buffer, fin: boolean): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    deflate.compress(data, fin, (error, result) => (error === null && result !== undefined ? resolve(result) : reject(error ?? new Error('no result')))),
  );
}

/**
 * Compresses messages the way ws's PerMessageDeflate#_compress does: one raw
 * deflate stream, Z_SYNC_FLUSH after each message, the trailing 00 00 ff ff
 * removed, reset() after each message under no_context_takeover.
 */
async function compressMessages(messages: Buffer[], windowBits: number, noContextTakeover: boolean): Promise<Buffer[]> {
  const deflate = createDeflateRaw({ windowBits });
  const output: Buffer[] = [];
  deflate.on('data', (chunk: Buffer) => output.push(chunk));
  const compressed: Buffer[] = [];
  for (const message of messages) {
    deflate.write(message);
    await new Promise<void>((resolve) => deflate.flush(constants.Z_SYNC_FLUSH, () => resolve()));
    const data = Buffer.concat(output.splice(0));
    expect(data.subarray(-4).equals(TRAILER)).toBe(true);
    compressed.push(data.subarray(0, data.length - 4));
    if (noContextTakeover) deflate.reset();
  }
  deflate.close();
  return compressed;
}

type Outcome = { error: Error | null; message: InflatedMessage | null };

/** Ends the current message and resolves with what the callback got. */
function endMessage(inflater: MessageInflater): Promise<Outcome> {
  return new Promise((resolve) => inflater.end((error, message) => resolve({ error, message })));
}

/** Feeds each compressed message in slices of `sliceSize` and ends it; all pipelined, no awaiting in between. */
function inflateAll(inflater: MessageInflater, compressed: Buffer[], sliceSize = Infinity): Promise<Outcome[]> {
  const order: number[] = [];
  const outcomes = compressed.map((data, index) => {
    for (let offset = 0; offset < data.length; offset += Math.min(sliceSize, data.length)) {
      inflater.write(data.subarray(offset, Math.min(offset + sliceSize, data.length)));
    }
    return endMessage(inflater).then((outcome) => {
      order.push(index);
      return outcome;
    });
  });
  return Promise.all(outcomes).then((all) => {
    expect(order).toEqual(compressed.map((_, index) => index));
    return all;
  });
}

function ok(outcome: Outcome | undefined): InflatedMessage {
  if (outcome === undefined || outcome.error !== null || outcome.message === null) {
    throw new Error(`expected an inflated message, got ${String(outcome?.error)}`);
  }
  return outcome.message;
}

function chatMessages(count: number): Buffer[] {
  return Array.from({ length: count }, (_, i) =>
    Buffer.from(JSON.stringify({ type: 'chat.message', room: 'general', user: `user-${i % 3}`, text: `hello number ${i}`, seq: i })),
  );
}

function options(overrides: Partial<MessageInflaterOptions> = {}): MessageInflaterOptions {
  return { windowBits: 15, noContextTakeover: false, ...overrides };
}

describe('MessageInflater', () => {
  it('inflates with context takeover, later messages referencing earlier ones', async () => {
    const messages = chatMessages(20);
    const compressed = await compressMessages(messages, 15, false);
    // Proof that the later messages depend on the shared window.
    const standalone = await compressMessages([messages[10] ?? Buffer.alloc(0)], 15, false);
    expect(compressed[10]?.length).toBeLessThan((standalone[0]?.length ?? 0) / 2);
    const inflater = new MessageInflater(options());
    const outcomes = await inflateAll(inflater, compressed);
    outcomes.forEach((outcome, i) => {
      const message = ok(outcome);
      expect(message.preview.equals(messages[i] ?? Buffer.alloc(0))).toBe(true);
      expect(message.size).toBe(messages[i]?.length);
      expect(message.previewTruncated).toBe(false);
    });
    inflater.close();
  });

  it('inflates no_context_takeover messages and resets between them', async () => {
    const messages = chatMessages(10);
    const compressed = await compressMessages(messages, 15, true);
    const inflater = new MessageInflater(options({ noContextTakeover: true }));
    const outcomes = await inflateAll(inflater, compressed);
    outcomes.forEach((outcome, i) => expect(ok(outcome).preview.toString()).toBe(messages[i]?.toString()));
    inflater.close();
  });

  it('a context-takeover stream misread as no_context_takeover fails only the dependent messages', async () => {
    const messages = chatMessages(4);
    const compressed = await compressMessages(messages, 15, false);
    const inflater = new MessageInflater(options({ noContextTakeover: true }));
    const outcomes = await inflateAll(inflater, compressed);
    expect(ok(outcomes[0]).preview.toString()).toBe(messages[0]?.toString());
    for (const [i, outcome] of outcomes.slice(1).entries()) {
      expect(outcome.error?.message).toMatch(new RegExp(`^message ${i + 1}: inflate failed: invalid distance too far back`));
    }
    expect(inflater.outOfSync).toBe(false);
    inflater.close();
  });

  it.each([8, 9, 10, 11, 12, 13, 14, 15])('round-trips with windowBits %i, with and without context takeover', async (windowBits) => {
    const messages = [...chatMessages(6), Buffer.from('x'.repeat(3000) + 'y'.repeat(3000))];
    for (const noContextTakeover of [false, true]) {
      const compressed = await compressMessages(messages, windowBits, noContextTakeover);
      const inflater = new MessageInflater(options({ windowBits, noContextTakeover, previewLimit: 10_000 }));
      const outcomes = await inflateAll(inflater, compressed);
      outcomes.forEach((outcome, i) => expect(ok(outcome).preview.equals(messages[i] ?? Buffer.alloc(0))).toBe(true));
      inflater.close();
    }
  });

  it('inflates what ws itself compresses, including a fragmented message', async () => {
    for (const serverNoContextTakeover of [false, true]) {
      const server = new WsPerMessageDeflateClass({ isServer: true, threshold: 0, serverMaxWindowBits: 10, serverNoContextTakeover });
      server.accept([{ server_max_window_bits: ['10'], client_max_window_bits: [true] }]);
      const messages = chatMessages(5);
      const payloads: Buffer[] = [];
      for (const message of messages) payloads.push(await wsCompress(server, message, true));
      // A message sent as two frames: the first fragment keeps its 00 00 ff ff.
      const fragmented = Buffer.from('fragmented '.repeat(50));
      payloads.push(Buffer.concat([await wsCompress(server, fragmented.subarray(0, 200), false), await wsCompress(server, fragmented.subarray(200), true)]));
      server.cleanup();
      const inflater = new MessageInflater(options({ windowBits: 10, noContextTakeover: serverNoContextTakeover, previewLimit: 1024 }));
      const outcomes = await inflateAll(inflater, payloads, 5);
      outcomes.forEach((outcome, i) => expect(ok(outcome).preview.equals(messages[i] ?? fragmented)).toBe(true));
      inflater.close();
    }
  });

  it('accepts a message split into many write() calls, including one-byte slices', async () => {
    const messages = chatMessages(8);
    const compressed = await compressMessages(messages, 15, false);
    for (const sliceSize of [1, 3, 7]) {
      const inflater = new MessageInflater(options());
      const outcomes = await inflateAll(inflater, compressed, sliceSize);
      outcomes.forEach((outcome, i) => expect(ok(outcome).preview.toString()).toBe(messages[i]?.toString()));
      inflater.close();
    }
  });

  it('counts a 5 MB message exactly while keeping only the preview', async () => {
    const line = 'the quick brown fox jumps over the lazy dog 0123456789\n';
    const text = Buffer.from(line.repeat(Math.ceil((5 * 1024 * 1024) / line.length)));
    const [compressed] = await compressMessages([text], 15, false);
    if (compressed === undefined) throw new Error('no compressed message');
    const inflater = new MessageInflater(options());
    for (let offset = 0; offset < compressed.length; offset += 4096) inflater.write(compressed.subarray(offset, offset + 4096));
    const message = ok(await endMessage(inflater));
    expect(message.size).toBe(text.length);
    expect(message.preview.length).toBe(256);
    expect(message.preview.equals(text.subarray(0, 256))).toBe(true);
    expect(message.previewTruncated).toBe(true);
    inflater.close();
  });

  it('honours previewLimit, and inflates an empty message', async () => {
    const compressed = await compressMessages([Buffer.from('0123456789'), Buffer.alloc(0)], 15, false);
    const inflater = new MessageInflater(options({ previewLimit: 4 }));
    const [first, empty] = await inflateAll(inflater, compressed);
    expect(ok(first)).toEqual({ size: 10, preview: Buffer.from('0123'), previewTruncated: true });
    expect(ok(empty)).toEqual({ size: 0, preview: Buffer.alloc(0), previewTruncated: false });
    inflater.close();
  });

  it('starts a new zlib stream after a message that ends with a final (BFINAL) block', async () => {
    const messages = [Buffer.from('first final block message'), Buffer.from('second final block message')];
    const compressed = messages.map((message) => deflateRawSync(message));
    const inflater = new MessageInflater(options());
    const outcomes = await inflateAll(inflater, compressed);
    outcomes.forEach((outcome, i) => expect(ok(outcome).preview.toString()).toBe(messages[i]?.toString()));
    inflater.close();
  });

  it('reports corrupt input with zlib’s words and goes out of sync under context takeover', async () => {
    const good = await compressMessages(chatMessages(3), 15, false);
    const inflater = new MessageInflater(options());
    const outcomes = await inflateAll(inflater, [good[0] ?? Buffer.alloc(0), Buffer.from([0xff, 0xff, 0xff]), good[1] ?? Buffer.alloc(0)]);
    ok(outcomes[0]);
    expect(outcomes[1]?.error?.message).toBe('message 1: inflate failed: invalid block type (Z_DATA_ERROR)');
    expect(outcomes[2]?.error?.message).toMatch(/^message 2: not inflated, this direction is out of sync \(message 1 could not be inflated/);
    expect(inflater.outOfSync).toBe(true);
    const later = await endMessage(inflater);
    expect(later.error?.message).toMatch(/^message 3: .*out of sync/);
    inflater.close();
  });

  it('under no_context_takeover a corrupt message fails alone and inflating continues', async () => {
    const good = await compressMessages(chatMessages(2), 15, true);
    const inflater = new MessageInflater(options({ noContextTakeover: true }));
    inflater.write(Buffer.from([0xff, 0xff]));
    const failed = endMessage(inflater);
    const rest = inflateAll(inflater, good);
    expect((await failed).error?.message).toMatch(/^message 0: inflate failed: invalid block type/);
    expect((await rest).map((outcome) => ok(outcome).size)).toEqual(chatMessages(2).map((m) => m.length));
    expect(inflater.outOfSync).toBe(false);
    inflater.close();
  });

  it('drops the rest of a message that failed while still open', async () => {
    const good = await compressMessages(chatMessages(1), 15, true);
    for (const noContextTakeover of [true, false]) {
      const inflater = new MessageInflater(options({ noContextTakeover }));
      inflater.write(Buffer.from([0xff, 0xff]));
      await new Promise((resolve) => setTimeout(resolve, 20)); // let zlib report the error
      inflater.write(Buffer.from([0x00, 0x01])); // still part of the failed message
      const failed = await endMessage(inflater);
      expect(failed.error?.message).toMatch(/^message 0: inflate failed: invalid block type/);
      const next = (await inflateAll(inflater, good))[0];
      if (noContextTakeover) expect(ok(next).size).toBe(chatMessages(1)[0]?.length);
      else expect(next?.error?.message).toMatch(/^message 1: not inflated, this direction is out of sync/);
      inflater.close();
    }
  });

  it('desync(): messages ended before it complete, the open one and later ones fail', async () => {
    const compressed = await compressMessages(chatMessages(3), 15, false);
    const inflater = new MessageInflater(options());
    inflater.write(compressed[0] ?? Buffer.alloc(0));
    const first = endMessage(inflater);
    inflater.write(compressed[1] ?? Buffer.alloc(0));
    inflater.desync('frame decoder stopped at byte 1234');
    expect(inflater.outOfSync).toBe(true);
    const second = endMessage(inflater);
    inflater.write(compressed[2] ?? Buffer.alloc(0));
    const third = endMessage(inflater);
    expect(ok(await first).size).toBe(chatMessages(1)[0]?.length);
    expect((await second).error?.message).toBe('message 1: not inflated, this direction is out of sync (frame decoder stopped at byte 1234)');
    expect((await third).error?.message).toMatch(/^message 2: not inflated, this direction is out of sync/);
    inflater.close();
  });

  it('never calls back synchronously from end()', async () => {
    const inflater = new MessageInflater(options());
    inflater.desync('test');
    let called = false;
    const done = new Promise<void>((resolve) =>
      inflater.end(() => {
        called = true;
        resolve();
      }),
    );
    expect(called).toBe(false);
    await done;
    inflater.close();
  });

  it('goes out of sync instead of queuing more than maxBacklogBytes', async () => {
    const inflater = new MessageInflater(options({ maxBacklogBytes: 1000 }));
    inflater.write(Buffer.alloc(600, 0x01));
    expect(inflater.outOfSync).toBe(false);
    inflater.write(Buffer.alloc(600, 0x01));
    expect(inflater.outOfSync).toBe(true);
    const outcome = await endMessage(inflater);
    expect(outcome.error?.message).toBe('message 0: not inflated, this direction is out of sync (inflater backlog over 1000 bytes)');
    inflater.close();
  });

  it('counts bytes queued behind a busy message in the backlog', async () => {
    const [big] = await compressMessages([Buffer.from('a'.repeat(10_000))], 15, false);
    const inflater = new MessageInflater(options({ maxBacklogBytes: 200 }));
    inflater.write(big ?? Buffer.alloc(0));
    const first = endMessage(inflater);
    inflater.write(Buffer.alloc(150)); // next message waits for the first one
    inflater.write(Buffer.alloc(150));
    expect(inflater.outOfSync).toBe(true);
    const second = endMessage(inflater);
    expect(ok(await first).size).toBe(10_000);
    expect((await second).error?.message).toMatch(/backlog over 200 bytes/);
    inflater.close();
  });

  it('close() fails pending messages and later ones without zlib errors', async () => {
    const compressed = await compressMessages(chatMessages(2), 15, false);
    const inflater = new MessageInflater(options());
    const outcomes = inflateAll(inflater, compressed);
    inflater.close();
    for (const outcome of await outcomes) expect(outcome.error?.message).toMatch(/the inflater was closed/);
    inflater.write(Buffer.from([1, 2, 3]));
    expect((await endMessage(inflater)).error?.message).toBe('message 2: not inflated, the inflater was closed');
  });

  it('finish(): ended messages still complete, the unfinished one is dropped, then zlib is released', async () => {
    // The connection closes right after a large message ended: its evidence must not be lost to the race.
    const big = Buffer.from('incident '.repeat(200_000));
    const compressed = await compressMessages([big, Buffer.from('never finished')], 15, false);
    const inflater = new MessageInflater(options());
    inflater.write(compressed[0] as Buffer);
    const order: string[] = [];
    const ended = new Promise<Outcome>((resolve) =>
      inflater.end((error, message) => {
        order.push('message');
        resolve({ error, message });
      }),
    );
    inflater.write((compressed[1] as Buffer).subarray(0, 3));
    const released = new Promise<void>((resolve) => inflater.finish(() => {
      order.push('released');
      resolve();
    }));
    const result = await ended;
    await released;
    // The owner learns of the release only after the last report.
    expect(order).toEqual(['message', 'released']);
    expect(result.error).toBeNull();
    expect(result.message?.size).toBe(big.length);
    // Afterwards nothing more is accepted.
    inflater.write(Buffer.from([1, 2, 3]));
    const late = await endMessage(inflater);
    expect(late.error?.message).toMatch(/the inflater was closed/);
  });

  it('rejects a window size outside 8..15', () => {
    expect(() => new MessageInflater(options({ windowBits: 7 }))).toThrow(RangeError);
    expect(() => new MessageInflater(options({ windowBits: 16 }))).toThrow(RangeError);
  });
});
