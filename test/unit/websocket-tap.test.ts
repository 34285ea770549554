import { describe, expect, it } from 'vitest';
import type { CaptureEvent, FrameEvent, HandshakeResponseEvent } from '../../src/capture/events.js';
import { SessionClock } from '../../src/capture/session-clock.js';
import { ConnectionContext } from '../../src/relay/connection-context.js';
import { WebSocketTap } from '../../src/relay/websocket-tap.js';

const UPGRADED: HandshakeResponseEvent = {
  kind: 'ws.handshake.response',
  t: 0,
  conn: 3,
  statusCode: 101,
  reason: 'Switching Protocols',
  httpVersion: '1.1',
  rawHeaders: [['Upgrade', 'websocket']],
  headLength: 100,
  upgraded: true,
  deflate: null,
  waitMs: 1,
};

/** A masked close frame (code 1000, reason "bye") as a client sends it: 2 header bytes, 4 mask bytes, 5 payload bytes. */
function maskedClose(): Buffer {
  const mask = Buffer.from([1, 2, 3, 4]);
  const payload = Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from('bye')]);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), mask, masked]);
}

function armedTap(): { tap: WebSocketTap; ctx: ConnectionContext; events: CaptureEvent[] } {
  const events: CaptureEvent[] = [];
  const ctx = new ConnectionContext(3, new SessionClock(), { record: (e) => events.push(e) });
  const tap = new WebSocketTap(ctx, { previewLimit: 256 });
  tap.arm(UPGRADED);
  return { tap, ctx, events };
}

const closeFrames = (events: CaptureEvent[]): FrameEvent[] => events.filter((e): e is FrameEvent => e.kind === 'ws.frame' && e.opcode === 8);

describe('WebSocketTap: silence before a close frame', () => {
  it('is measured to the frame\'s first byte when its header is split across chunks', () => {
    const { tap, ctx, events } = armedTap();
    const frame = maskedClose();
    ctx.lastByteAt.upstream = 900;
    // The client was silent from 400 to 1000, when the close's first byte came; the rest 500 ms later.
    tap.observe('client', frame.subarray(0, 1), 1000, 400);
    tap.observe('client', frame.subarray(1), 1500, 1000);
    const [close] = closeFrames(events);
    expect(close).toMatchObject({ t: 1000, closeCode: 1000, closeReason: 'bye', idle: { client: 600, upstream: 100 } });
  });

  it('is the same when the split falls inside the mask key or the payload', () => {
    for (const at of [2, 4, 6, 9]) {
      const { tap, ctx, events } = armedTap();
      const frame = maskedClose();
      ctx.lastByteAt.upstream = 950;
      tap.observe('client', frame.subarray(0, at), 1000, 250);
      tap.observe('client', frame.subarray(at), 1700, 1000);
      expect(closeFrames(events)[0]?.idle, `split at ${at}`).toEqual({ client: 750, upstream: 50 });
    }
  });

  it('after a split data frame, a split close gets the silence before its own first byte', () => {
    const { tap, ctx, events } = armedTap();
    // Unmasked upstream frames: a 4-byte text frame split in two, then a close split in two.
    const text = Buffer.from([0x81, 0x04, 0x61, 0x62, 0x63, 0x64]);
    const close = Buffer.from([0x88, 0x02, 0x03, 0xe8]);
    ctx.lastByteAt.client = 100;
    tap.observe('upstream', text.subarray(0, 3), 1000, 0);
    tap.observe('upstream', text.subarray(3), 1200, 1000);
    tap.observe('upstream', close.subarray(0, 1), 4200, 1200);
    tap.observe('upstream', close.subarray(1), 5000, 4200);
    expect(closeFrames(events)[0]).toMatchObject({ t: 4200, idle: { client: 4100, upstream: 3000 } });
  });

  it('a close right behind other bytes of its chunk had no silence of its own', () => {
    const { tap, ctx, events } = armedTap();
    const text = Buffer.from([0x81, 0x02, 0x68, 0x69]);
    const close = Buffer.from([0x88, 0x02, 0x03, 0xe8]);
    ctx.lastByteAt.client = 100;
    // One chunk after 3 s of silence: "hi", then at once the close, whose header ends a chunk later.
    tap.observe('upstream', Buffer.concat([text, close.subarray(0, 1)]), 4000, 1000);
    tap.observe('upstream', close.subarray(1), 4300, 4000);
    expect(closeFrames(events)[0]).toMatchObject({ t: 4000, idle: { client: 3900, upstream: 0 } });
  });
});
