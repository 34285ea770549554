import type { FrameEvent, MessageEvent, Side } from '../capture/events.js';

const OPCODES = 16;

/** Index of a side in the per-side rows: 0 client, 1 upstream. */
export function sideIndex(side: Side): number {
  return side === 'client' ? 0 : 1;
}

/**
 * The session's WebSocket traffic in totals: frames and their payload bytes
 * by side and opcode, whole data messages and their (inflated) bytes by side
 * and type. Frames and messages are nearly every event, so these are plain
 * numbers moved in the fold's own pass over each event (ConnectionTracker),
 * and read by whoever reports them (the Prometheus view at scrape time).
 */
export class TrafficTotals {
  /** [side][opcode] */
  readonly frames: number[][] = [new Array<number>(OPCODES).fill(0), new Array<number>(OPCODES).fill(0)];
  readonly frameBytes: number[][] = [new Array<number>(OPCODES).fill(0), new Array<number>(OPCODES).fill(0)];
  /** [side][opcode 1 text, 2 binary] */
  readonly messages: number[][] = [[0, 0, 0], [0, 0, 0]];
  readonly messageBytes: number[][] = [[0, 0, 0], [0, 0, 0]];

  frame(event: FrameEvent): void {
    const side = sideIndex(event.side);
    const opcode = event.opcode & 0x0f;
    const frames = this.frames[side] as number[];
    const bytes = this.frameBytes[side] as number[];
    frames[opcode] = (frames[opcode] ?? 0) + 1;
    bytes[opcode] = (bytes[opcode] ?? 0) + event.length;
  }

  message(event: MessageEvent): void {
    const side = sideIndex(event.side);
    const messages = this.messages[side] as number[];
    const bytes = this.messageBytes[side] as number[];
    messages[event.opcode] = (messages[event.opcode] ?? 0) + 1;
    bytes[event.opcode] = (bytes[event.opcode] ?? 0) + (event.size ?? event.wireLength);
  }
}
