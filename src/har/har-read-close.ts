import type { CaptureEvent, FinEvent, FrameEvent, Idle, PausedSince, RstEvent, Side, SocketErrorEvent } from '../capture/events.js';
import { addUnknown, UNKNOWN, type Connection } from './har-read-entries.js';
import { idleOf, isObject, num, secondsToMs, str, type Json } from './har-read-values.js';

/**
 * A WebSocket entry's close evidence back into events: wstap's
 * `_wstap.closeEvents` (close frame, FIN, RST, socket error, timeout, the
 * proxy's own close, each with the sides paused at that moment) become the
 * close frames and `tcp.*` / `proxy.close` events the capture held. Only
 * what the file says: a browser's HAR has no close evidence and gets none.
 */

const ZERO_IDLE: Idle = { client: 0, upstream: 0 };

export interface ParsedCloseEvent {
  side: Side | 'proxy';
  kind: string;
  t: number;
  code: number | undefined;
  reason: string | undefined;
  error: string | undefined;
  pausedSince: PausedSince | undefined;
}

export function parseCloseEvents(value: unknown[], where: string, warnings: string[]): ParsedCloseEvent[] {
  const out: ParsedCloseEvent[] = [];
  value.forEach((item, i) => {
    const at = `${where}[${i}]`;
    if (!isObject(item)) return void warnings.push(`${at}: skipped: not an object`);
    const side = item['side'];
    if (side !== 'client' && side !== 'upstream' && side !== 'proxy') {
      return void warnings.push(`${at}: skipped: side ${JSON.stringify(side ?? null)} is not client, upstream or proxy`);
    }
    const kind = str(item['kind']);
    if (kind !== 'close-frame' && kind !== 'fin' && kind !== 'rst' && kind !== 'error' && kind !== 'timeout') {
      return void warnings.push(`${at}: skipped: kind ${JSON.stringify(item['kind'] ?? null)} is not a close event kind`);
    }
    const time = num(item['time']);
    if (time === undefined) return void warnings.push(`${at}: skipped: time is not a number`);
    out.push({
      side,
      kind,
      t: secondsToMs(time),
      code: num(item['code']),
      reason: str(item['reason']),
      error: str(item['error']),
      pausedSince: pausedSinceOf(item['pausedSince'], `${at}.pausedSince`, warnings),
    });
  });
  return out;
}

/** A close event's paused sides (epoch seconds in the HAR); a malformed one is dropped with a warning. */
function pausedSinceOf(value: unknown, where: string, warnings: string[]): PausedSince | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value)) return void warnings.push(`${where}: ignored: not an object`);
  const out: PausedSince = {};
  for (const side of ['client', 'upstream'] as const) {
    if (value[side] === undefined) continue;
    const seconds = num(value[side]);
    if (seconds === undefined) warnings.push(`${where}.${side}: ignored: not a number`);
    else out[side] = secondsToMs(seconds);
  }
  return out.client !== undefined || out.upstream !== undefined ? out : undefined;
}

/**
 * Close evidence from `_wstap.closeEvents`. A close-frame event annotates the
 * matching close frame (n-th of its side) with code and reason; without such
 * a frame a close frame is made from it so attribution still sees it. Idle:
 * the HAR keeps it only for the first evidence (idleBeforeCloseMs); later
 * evidence gets no idle on frames and 0 on socket events (the field is required).
 */
export function closeEvidenceEvents(
  closeEvents: ParsedCloseEvent[],
  frameEvents: FrameEvent[],
  wstap: Json | undefined,
  conn: number,
  connection: Connection,
): CaptureEvent[] {
  if (closeEvents.length === 0) return [];
  let firstAt = 0;
  closeEvents.forEach((e, i) => {
    if (e.t < (closeEvents[firstAt] as ParsedCloseEvent).t) firstAt = i;
  });
  const firstIdle = idleOf(wstap?.['idleBeforeCloseMs']);
  if (closeEvents.length > 1) addUnknown(connection, UNKNOWN.laterIdle);

  const closeFrames: Record<Side, FrameEvent[]> = {
    client: frameEvents.filter((f) => f.side === 'client' && f.opcode === 8),
    upstream: frameEvents.filter((f) => f.side === 'upstream' && f.opcode === 8),
  };
  const used: Record<Side, number> = { client: 0, upstream: 0 };
  const nextIndex: Record<Side, number> = {
    client: frameEvents.filter((f) => f.side === 'client').length,
    upstream: frameEvents.filter((f) => f.side === 'upstream').length,
  };
  const out: CaptureEvent[] = [];
  closeEvents.forEach((e, i) => {
    const idle = i === firstAt ? firstIdle : undefined;
    if (e.side === 'proxy') {
      out.push({ kind: 'proxy.close', t: e.t, conn, reason: e.reason ?? e.kind, idle: idle ?? ZERO_IDLE });
      return;
    }
    const side = e.side;
    switch (e.kind) {
      case 'close-frame': {
        const matched = closeFrames[side][used[side]++];
        const annotate = (frame: FrameEvent): void => {
          if (e.code !== undefined) frame.closeCode = e.code;
          if (e.reason !== undefined) frame.closeReason = e.reason;
          if (idle) frame.idle = idle;
          if (e.pausedSince) frame.pausedSince = e.pausedSince;
        };
        if (matched) {
          annotate(matched);
          return;
        }
        const length = e.code !== undefined ? 2 + Buffer.byteLength(e.reason ?? '', 'utf8') : 0;
        const frame: FrameEvent = {
          kind: 'ws.frame',
          t: e.t,
          conn,
          side,
          index: nextIndex[side]++,
          offset: 0,
          opcode: 8,
          fin: true,
          rsv1: false,
          rsv2: false,
          rsv3: false,
          masked: side === 'client',
          length,
          preview: '',
          previewTruncated: false,
        };
        annotate(frame);
        out.push(frame);
        return;
      }
      case 'fin':
        out.push(withPausedSince({ kind: 'tcp.fin', t: e.t, conn, side, idle: idle ?? ZERO_IDLE }, e));
        return;
      case 'rst':
        out.push(withPausedSince({ kind: 'tcp.rst', t: e.t, conn, side, idle: idle ?? ZERO_IDLE }, e));
        return;
      case 'error': {
        const code = e.error ?? 'UNKNOWN';
        out.push(withPausedSince({ kind: 'tcp.error', t: e.t, conn, side, code, message: e.error ?? '', idle: idle ?? ZERO_IDLE }, e));
        return;
      }
      default:
        // The event model has no timeout kind; a side's timeout is a socket error as Node reports it.
        out.push(
          withPausedSince(
            { kind: 'tcp.error', t: e.t, conn, side, code: 'ETIMEDOUT', message: 'timeout (a close event of kind "timeout" in the HAR)', idle: idle ?? ZERO_IDLE },
            e,
          ),
        );
        return;
    }
  });
  return out;
}

function withPausedSince<E extends FinEvent | RstEvent | SocketErrorEvent>(event: E, e: ParsedCloseEvent): E {
  if (e.pausedSince) event.pausedSince = e.pausedSince;
  return event;
}
