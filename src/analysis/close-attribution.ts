import type { CaptureEvent, Idle, Side } from '../capture/events.js';

export type CloseEvidenceKind = 'close-frame' | 'fin' | 'rst' | 'error' | 'timeout';
/** `proxy` is wstap itself (shutdown). */
export type CloseActor = Side | 'proxy';

/** One piece of evidence that a connection is ending, as the HAR contract names it. */
export interface CloseEvidence {
  side: CloseActor;
  kind: CloseEvidenceKind;
  t: number;
  code?: number;
  reason?: string;
  error?: string;
  /** Silence of each direction just before this evidence. */
  idle?: Idle;
}

export interface CloseAttribution {
  closedBy: CloseActor | null;
  first: CloseEvidence | null;
  /** Silence of each direction when the first evidence happened. */
  idleBeforeCloseMs: Idle | null;
  /** Set when there is evidence but who closed first cannot be told from it (part of the connection is not in the capture): why. */
  undecided?: string;
}

const OPCODE_CLOSE = 8;

/** The close evidence an event carries, if any. */
export function closeEvidenceOf(event: CaptureEvent): CloseEvidence | null {
  switch (event.kind) {
    case 'ws.frame':
      if (event.opcode !== OPCODE_CLOSE) return null;
      return {
        side: event.side,
        kind: 'close-frame',
        t: event.t,
        ...(event.closeCode !== undefined ? { code: event.closeCode } : {}),
        ...(event.closeReason !== undefined ? { reason: event.closeReason } : {}),
        ...(event.idle ? { idle: event.idle } : {}),
      };
    case 'tcp.fin':
      return { side: event.side, kind: 'fin', t: event.t, idle: event.idle };
    case 'tcp.rst':
      return { side: event.side, kind: 'rst', t: event.t, idle: event.idle };
    case 'tcp.error':
      return { side: event.side, kind: 'error', t: event.t, error: event.code, idle: event.idle };
    case 'proxy.close':
      // wstap ended both sides with a FIN of its own.
      return { side: 'proxy', kind: 'fin', t: event.t, reason: event.reason, idle: event.idle };
    default:
      return null;
  }
}

/**
 * Who closed first: the side of the earliest evidence. Evidence arrives in
 * time order per direction but the two directions' decoders and socket
 * events can interleave, so sort by time (stable: recording order breaks ties).
 */
/**
 * Close evidence kept per connection in memory. A normal close has 2 to 4
 * pieces (a close frame and a FIN per side); a peer that keeps sending close
 * frames would otherwise grow the list (and the close's log line) without
 * bound, about 180 bytes a frame, 8 bytes of wire each. The capture keeps
 * them all.
 */
export const MAX_EVIDENCE_KEPT = 32;

/**
 * Whether `evidence` joins `kept`: below MAX_EVIDENCE_KEPT always, past it
 * only a side's first piece. That keeps attribution exact: each side's
 * evidence is recorded in time order (its frames in stream order, its FIN or
 * error after its last byte), so the earliest of all is some side's first;
 * at most one piece per side (client, upstream, proxy) comes on top of the cap.
 */
export function keepsEvidence(kept: readonly CloseEvidence[], evidence: CloseEvidence): boolean {
  return kept.length < MAX_EVIDENCE_KEPT || !kept.some((e) => e.side === evidence.side);
}

export function attributeClose(evidence: readonly CloseEvidence[]): CloseAttribution {
  if (evidence.length === 0) return { closedBy: null, first: null, idleBeforeCloseMs: null };
  let first = evidence[0] as CloseEvidence;
  for (const e of evidence) if (e.t < first.t) first = e;
  return { closedBy: first.side, first, idleBeforeCloseMs: first.idle ?? null };
}

export function describeEvidence(e: CloseEvidence): string {
  switch (e.kind) {
    case 'close-frame': {
      const code = e.code !== undefined ? ` ${e.code}` : ' (no code)';
      const reason = e.reason ? ` "${e.reason}"` : '';
      return `${e.side} close-frame${code}${reason}`;
    }
    case 'error':
      return `${e.side} error ${e.error ?? ''}`.trimEnd();
    case 'fin':
      return e.side === 'proxy' ? `wstap fin (${e.reason ?? 'shutdown'})` : `${e.side} fin`;
    default:
      return `${e.side} ${e.kind}`;
  }
}

/** Why a handshake got no answer, from who closed first (the client may give up before a slow app answers). */
export function noAnswerReason(closedBy: CloseActor | null): string {
  switch (closedBy) {
    case 'upstream':
      return 'the upstream closed before answering the handshake';
    case 'client':
      return 'the client closed before the upstream answered the handshake';
    case 'proxy':
      return 'wstap stopped before the upstream answered the handshake';
    default:
      return 'the handshake got no answer';
  }
}
