import type { FrameEvent, MessageEvent, Side } from '../capture/events.js';
import { bool, forEachTimedItem, nonNegative, num, secondsToMs } from './har-read-values.js';

/**
 * A WebSocket entry's data back into events: `_wstap.frames` into
 * `ws.frame` (numbered per side; no offsets, and payload bytes only of pings
 * and pongs, which pair them) and `_webSocketMessages` into `ws.message`, each message linked to
 * the frames that carried it when the two lists agree.
 */

export interface ParsedFrame {
  side: Side;
  t: number;
  opcode: number;
  fin: boolean;
  rsv1: boolean;
  masked: boolean;
  length: number;
  /** A ping's or pong's data (base64), '' when the HAR has none. */
  payload: string;
  /** With --payloads none: which pings and pongs carried the same data. */
  payloadId: number | undefined;
}

export interface ParsedMessage {
  side: Side;
  t: number;
  opcode: 1 | 2;
  bytes: Buffer;
  size: number | undefined;
}

export function parseMessages(value: unknown, where: string, warnings: string[]): ParsedMessage[] {
  const out: ParsedMessage[] = [];
  forEachTimedItem(value, where, warnings, ({ item, side, time }, at) => {
    const opcode = num(item['opcode']);
    if (opcode !== 1 && opcode !== 2) return void warnings.push(`${at}: skipped: opcode ${JSON.stringify(item['opcode'] ?? null)} is not 1 or 2`);
    const data = item['data'];
    if (typeof data !== 'string') return void warnings.push(`${at}: skipped: data is not a string`);
    const size = nonNegative(item['_size']);
    out.push({ side, t: secondsToMs(time), opcode, bytes: Buffer.from(data, opcode === 1 ? 'utf8' : 'base64'), size });
  });
  return out;
}

export function parseFrames(value: unknown[], where: string, warnings: string[]): ParsedFrame[] {
  const out: ParsedFrame[] = [];
  forEachTimedItem(value, where, warnings, ({ item, side, time }, at) => {
    const opcode = num(item['opcode']);
    if (opcode === undefined || !Number.isInteger(opcode) || opcode < 0 || opcode > 15) {
      return void warnings.push(`${at}: skipped: opcode ${JSON.stringify(item['opcode'] ?? null)} is not 0..15`);
    }
    out.push({
      side,
      t: secondsToMs(time),
      opcode,
      fin: bool(item['fin']) ?? true,
      rsv1: bool(item['rsv1']) ?? false,
      masked: bool(item['masked']) ?? side === 'client',
      length: nonNegative(item['length']) ?? 0,
      payload: payloadOf(item['payload'], opcode, at, warnings),
      payloadId: opcode === 9 || opcode === 10 ? nonNegative(item['payloadId']) : undefined,
    });
  });
  return out;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** `_wstap.frames[i].payload`: only pings and pongs carry one; anything but base64 is dropped with a warning. */
function payloadOf(value: unknown, opcode: number, at: string, warnings: string[]): string {
  if (value === undefined || (opcode !== 9 && opcode !== 10)) return '';
  if (typeof value !== 'string' || value.length % 4 !== 0 || !BASE64.test(value)) {
    warnings.push(`${at}: payload dropped: not base64`);
    return '';
  }
  return value;
}

export function frameEventsOf(frames: ParsedFrame[], conn: number): FrameEvent[] {
  const index: Record<Side, number> = { client: 0, upstream: 0 };
  return frames.map((f) => ({
    kind: 'ws.frame',
    t: f.t,
    conn,
    side: f.side,
    index: index[f.side]++,
    // Unknown: the HAR has no byte offsets, and payload bytes of pings and pongs only.
    offset: 0,
    opcode: f.opcode,
    fin: f.fin,
    rsv1: f.rsv1,
    rsv2: false,
    rsv3: false,
    masked: f.masked,
    length: f.length,
    preview: f.payload,
    previewTruncated: false,
    ...(f.payloadId !== undefined ? { dataId: `${f.payloadId}` } : {}),
  }));
}

interface DataRun {
  firstFrame: number;
  frames: number;
  wireLength: number;
  compressed: boolean;
  opcode: number;
  tEnd: number;
}

/** Each side's data messages as frame runs: a text/binary frame and its continuations up to fin. */
function dataRuns(frameEvents: FrameEvent[], side: Side): DataRun[] {
  const runs: DataRun[] = [];
  let open: DataRun | null = null;
  for (const f of frameEvents) {
    if (f.side !== side) continue;
    if (f.opcode === 1 || f.opcode === 2) {
      open = { firstFrame: f.index, frames: 1, wireLength: f.length, compressed: f.rsv1, opcode: f.opcode, tEnd: f.t };
      runs.push(open);
    } else if (f.opcode === 0 && open) {
      open.frames++;
      open.wireLength += f.length;
      open.tEnd = f.t;
    } else if (f.opcode === 0) {
      continue;
    }
    if (f.fin && f.opcode <= 2) open = null;
  }
  return runs;
}

/**
 * ws.message per HAR message. With frames, the n-th message of a side is
 * linked to that side's n-th data-frame run (frame count, wire length,
 * compression) when the counts and opcodes agree; otherwise one frame each,
 * numbered per side.
 */
export function messageEvents(messages: ParsedMessage[], frameEvents: FrameEvent[], conn: number): MessageEvent[] {
  const linked: Record<Side, DataRun[] | null> = { client: null, upstream: null };
  for (const side of ['client', 'upstream'] as const) {
    const runs = dataRuns(frameEvents, side);
    const own = messages.filter((m) => m.side === side);
    if (runs.length > 0 && runs.length === own.length && own.every((m, i) => runs[i]?.opcode === m.opcode)) linked[side] = runs;
  }
  const counter: Record<Side, number> = { client: 0, upstream: 0 };
  return messages.map((m) => {
    const n = counter[m.side]++;
    const run = linked[m.side]?.[n];
    const size = m.size ?? m.bytes.length;
    return {
      kind: 'ws.message',
      t: m.t,
      conn,
      side: m.side,
      opcode: m.opcode,
      tEnd: run ? Math.max(m.t, run.tEnd) : m.t,
      firstFrame: run ? run.firstFrame : n,
      frames: run ? run.frames : 1,
      wireLength: run ? run.wireLength : size,
      compressed: run ? run.compressed : false,
      size,
      preview: m.bytes.toString('base64'),
      previewTruncated: m.size !== undefined && m.size > m.bytes.length,
    };
  });
}
