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
