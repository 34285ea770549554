import type { CaptureEvent, ConnOpenEvent, Side } from '../capture/events.js';
import type { CloseAttribution, CloseEvidence } from './close-attribution.js';

/**
 * What the events cannot tell about a connection: its beginning (its
 * conn.open was in a file of a rotated set that --keep deleted) or a stretch
 * of it (a capture.gap, or a missing segment, while it was open). The first
 * close evidence may be in the missing part, so who closed first is only
 * judged when the events rule that out: each side sent something after the
 * missing part and before the first close evidence seen (a side that sent a
 * close frame, FIN or RST sends no frame after it). The same rule for every
 * fold (live tracker, HAR), so every view says the same.
 */
export interface MissingPart {
  beginning: boolean;
  /** When what is missing ends: the first event seen (beginning), or the gap's end. */
  until: number;
  /** Each side sent frames or HTTP heads after the missing part, before any close evidence. */
  heardFrom: Record<Side, boolean>;
  /** Decided at the first close evidence after the missing part; null before it. */
  closeJudgeable: boolean | null;
}

/** A connection seen first by an event other than its conn.open. */
export function missingBeginning(until: number): MissingPart {
  return { beginning: true, until, heardFrom: { client: false, upstream: false }, closeJudgeable: null };
}

/**
 * A gap while the connection was open. Evidence seen before the gap is
 * earlier than anything the gap lost, so a verdict it already allows stands.
 */
export function missingStretch(previous: MissingPart | null, evidenceSoFar: number, until: number): MissingPart {
  const judged = previous?.closeJudgeable === false ? false : evidenceSoFar > 0 ? true : null;
  return { beginning: previous?.beginning ?? false, until, heardFrom: { client: false, upstream: false }, closeJudgeable: judged };
}

/** The stand-in for a conn.open the events do not have: no address, `t` its first event seen. */
export function standInOpen(event: { conn: number; t: number; instance?: string; instanceConn?: number }): ConnOpenEvent {
  const open: ConnOpenEvent = { kind: 'conn.open', t: event.t, conn: event.conn, mode: 'http', remoteAddress: '', remotePort: 0, localPort: 0 };
  // Several instances read as one (capture-merge.ts): the first event names where the connection came from.
  if (event.instance !== undefined) open.instance = event.instance;
  if (event.instanceConn !== undefined) open.instanceConn = event.instanceConn;
  return open;
}

/** Updates `missing` with one event of its connection (call before its evidence is kept). */
export function noteAfterMissing(missing: MissingPart, event: CaptureEvent, evidence: CloseEvidence | null): void {
  if (missing.closeJudgeable !== null) return;
  if (evidence) {
    missing.closeJudgeable = missing.heardFrom.client && missing.heardFrom.upstream;
    return;
  }
  const side = activeSide(event);
  if (side) missing.heardFrom[side] = true;
}

/** `attribution` as the missing part allows: undecided when the first evidence may be in it. */
export function judgedAttribution(attribution: CloseAttribution, missing: MissingPart | null): CloseAttribution {
  if (!missing || missing.closeJudgeable !== false || !attribution.first) return attribution;
  const what = missing.beginning ? 'its beginning is not in the capture' : 'some of its events are not in the capture';
  return { ...attribution, closedBy: null, undecided: `${what}, and the first close evidence may be there` };
}

/** The side an event shows sending something other than close evidence, if any. */
function activeSide(event: CaptureEvent): Side | null {
  switch (event.kind) {
    case 'ws.frame':
    case 'ws.message':
      return event.side;
    case 'http.request':
    case 'ws.handshake.request':
      return 'client';
    case 'http.response':
    case 'ws.handshake.response':
      return 'upstream';
    default:
      return null;
  }
}
