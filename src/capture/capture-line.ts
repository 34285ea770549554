import type { CaptureEvent, FrameEvent, Idle, MessageEvent } from './events.js';

/**
 * An event as one capture line: its JSON and a newline.
 *
 * Under load nearly every event is a `ws.frame` or a `ws.message` (each
 * WebSocket message makes one of each), and JSON.stringify of them was the
 * proxy's largest single cost (README, Performance). Those two kinds are
 * written by hand here, field by field in the order the tap builds them,
 * which gives JSON.stringify's text about twice as fast; every other kind
 * goes through JSON.stringify. test/unit/capture-line.test.ts holds the two
 * to the same text, with every optional field, so a field added to either
 * event type cannot be left out unnoticed.
 */
export function captureLine(event: CaptureEvent): string {
  if (event.kind === 'ws.frame') return frameLine(event);
  if (event.kind === 'ws.message') return messageLine(event);
  return JSON.stringify(event) + '\n';
}

function frameLine(e: FrameEvent): string {
  let line =
    `{"kind":"ws.frame","t":${num(e.t)},"conn":${num(e.conn)},"side":${side(e.side)},"index":${num(e.index)},"offset":${num(e.offset)}` +
    `,"opcode":${num(e.opcode)},"fin":${e.fin},"rsv1":${e.rsv1},"rsv2":${e.rsv2},"rsv3":${e.rsv3},"masked":${e.masked}` +
    `,"length":${num(e.length)},"preview":${JSON.stringify(e.preview)},"previewTruncated":${e.previewTruncated}`;
  if (e.closeCode !== undefined) line += `,"closeCode":${num(e.closeCode)}`;
  if (e.closeReason !== undefined) line += `,"closeReason":${JSON.stringify(e.closeReason)}`;
  if (e.idle !== undefined) line += `,"idle":${idle(e.idle)}`;
  return line + '}\n';
}

function messageLine(e: MessageEvent): string {
  return (
    `{"kind":"ws.message","t":${num(e.t)},"tEnd":${num(e.tEnd)},"conn":${num(e.conn)},"side":${side(e.side)},"opcode":${num(e.opcode)}` +
    `,"firstFrame":${num(e.firstFrame)},"frames":${num(e.frames)},"wireLength":${num(e.wireLength)},"compressed":${e.compressed}` +
    `,"size":${e.size === null ? 'null' : num(e.size)},"preview":${JSON.stringify(e.preview)},"previewTruncated":${e.previewTruncated}}\n`
  );
}

/** JSON's spelling of a number: non-finite numbers are null. */
function num(value: number): string {
  return Number.isFinite(value) ? String(value) : 'null';
}

function side(value: string): string {
  return value === 'client' ? '"client"' : value === 'upstream' ? '"upstream"' : JSON.stringify(value);
}

function idle(value: Idle): string {
  return `{"client":${num(value.client)},"upstream":${num(value.upstream)}}`;
}
