import type { CaptureEvent, FrameEvent } from '../capture/events.js';
import { addUnknown, UNKNOWN, type Connection } from './har-read-entries.js';
import { forEachTimedItem, isObject, nonNegative, num, secondsToMs, str, type Json } from './har-read-values.js';

/**
 * What went wrong on a WebSocket connection, from wstap's own HAR back into
 * events: `_wstap.protocolErrors` (the decoder gave up on a side),
 * `_wstap.cutFrames` (a frame the connection ended in the middle of) and
 * `_wstap.observerFault` (wstap's own observer failed while the relay went
 * on). Protocol errors and cut frames are numbered after the side's last
 * whole frame.
 */

/**
 * `_wstap.protocolErrors` carry no time: the decoder stopped at the offending
 * frame, so it is placed at that side's last recorded frame (or the handshake)
 * and numbered as the frame after it.
 */
export function protocolErrorEvents(
  wstap: Json | undefined,
  frameEvents: FrameEvent[],
  conn: number,
  connection: Connection,
  handshake: CaptureEvent[],
  where: string,
  warnings: string[],
): CaptureEvent[] {
  const list = wstap?.['protocolErrors'];
  if (!Array.isArray(list) || list.length === 0) return [];
  addUnknown(connection, UNKNOWN.protocolErrorTimes);
  const handshakeT = handshake.reduce((max, e) => Math.max(max, e.t), 0);
  const out: CaptureEvent[] = [];
  list.forEach((item, i) => {
    if (!isObject(item)) return void warnings.push(`${where}[${i}]: skipped: not an object`);
    const side = item['side'];
    if (side !== 'client' && side !== 'upstream') return void warnings.push(`${where}[${i}]: skipped: side is not client or upstream`);
    const own = frameEvents.filter((f) => f.side === side);
    const last = own[own.length - 1];
    out.push({
      kind: 'ws.protocol-error',
      t: last ? last.t : handshakeT,
      conn,
      side,
      code: str(item['code']) ?? 'UNKNOWN',
      message: str(item['message']) ?? '',
      offset: nonNegative(item['offset']) ?? 0,
      frameIndex: own.length,
    });
  });
  return out;
}

/** `_wstap.cutFrames` back into `ws.frame.cut`, numbered after that side's last whole frame. */
export function cutFrameEvents(value: unknown, frameEvents: FrameEvent[], conn: number, where: string, warnings: string[]): CaptureEvent[] {
  const out: CaptureEvent[] = [];
  forEachTimedItem(value, where, warnings, ({ item, side, time }, at) => {
    const received = nonNegative(item['received']);
    if (received === undefined) return void warnings.push(`${at}: skipped: received is not a number`);
    const started = secondsToMs(time);
    const end = num(item['endTime']);
    const opcode = nonNegative(item['opcode']);
    out.push({
      kind: 'ws.frame.cut',
      t: end !== undefined ? Math.max(started, secondsToMs(end)) : started,
      conn,
      side,
      index: frameEvents.filter((f) => f.side === side).length,
      offset: nonNegative(item['offset']) ?? 0,
      started,
      received,
      ...(opcode !== undefined ? { opcode, length: nonNegative(item['length']) ?? 0, payloadReceived: nonNegative(item['payloadReceived']) ?? 0 } : {}),
    });
  });
  return out;
}

/** `_wstap.handshakeError` back into `ws.handshake.error`: the app's answer was not an HTTP head (wstap's own HAR only). */
export function handshakeErrorEvents(value: unknown, conn: number, where: string, warnings: string[]): CaptureEvent[] {
  if (value === undefined) return [];
  const time = isObject(value) ? num(value['time']) : undefined;
  if (!isObject(value) || time === undefined) {
    warnings.push(`${where}: skipped: not an object with a numeric time`);
    return [];
  }
  return [
    {
      kind: 'ws.handshake.error',
      t: secondsToMs(time),
      conn,
      code: str(value['code']) ?? 'UNKNOWN',
      message: str(value['message']) ?? '',
      offset: nonNegative(value['offset']) ?? 0,
    },
  ];
}

/** `_wstap.observerFault` back into `observer.fault` (wstap's own HAR only). */
export function observerFaultEvents(value: unknown, conn: number, where: string, warnings: string[]): CaptureEvent[] {
  if (value === undefined) return [];
  const time = isObject(value) ? num(value['time']) : undefined;
  if (!isObject(value) || time === undefined) {
    warnings.push(`${where}: skipped: not an object with a numeric time`);
    return [];
  }
  const side = value['side'];
  return [
    {
      kind: 'observer.fault',
      t: secondsToMs(time),
      conn,
      ...(side === 'client' || side === 'upstream' ? { side } : {}),
      where: str(value['where']) ?? 'unknown',
      message: str(value['message']) ?? '',
    },
  ];
}
