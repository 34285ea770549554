import type { CaptureEvent, Idle, PausedSince, Side } from '../capture/events.js';

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
  /** The sides whose reading was behind (backpressure) when this was recorded, and since when. */
  pausedSince?: PausedSince;
}

/**
 * Why the order of the two sides' closes cannot be known: `other`'s evidence
 * came while wstap was not reading `pausedSide` (paused since `pausedSince`
 * because `other` did not take its bytes), and `pausedSide`'s own evidence
 * (`paused`) was read in the same paused period, after it. It may have been
 * sent before `other`'s.
 */
export interface CloseOrderUnknown {
  reason: 'order-unknown';
  pausedSide: Side;
  pausedSince: number;
  /** The paused side's first evidence, read late. */
  paused: CloseEvidence;
  /** The other side's first evidence, recorded while the paused side was not read. */
  other: CloseEvidence;
}

/**
 * The first evidence came while the other side's reading was behind and that
 * side gave no evidence of its own in that period: if it had closed, its FIN
 * or RST was never read (the connection ended first). Who closed stands; the
 * verdict says what could not be seen.
 */
export interface CloseUnreadSide {
  side: Side;
  pausedSince: number;
}

export interface CloseAttribution {
  /** Null when there is no evidence, or when the order is unknown (`orderUnknown` says why). */
  closedBy: CloseActor | null;
  /** The evidence recorded first (even when the order is unknown: the time the close began to be seen). */
  first: CloseEvidence | null;
  /** Silence of each direction when the first evidence happened. */
  idleBeforeCloseMs: Idle | null;
  /** Set when there is evidence but who closed first cannot be told from it (part of the connection is not in the capture): why. */
  undecided?: string;
  orderUnknown?: CloseOrderUnknown;
  unread?: CloseUnreadSide;
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
        ...(event.pausedSince ? { pausedSince: event.pausedSince } : {}),
      };
    case 'tcp.fin':
      return withPaused({ side: event.side, kind: 'fin', t: event.t, idle: event.idle }, event.pausedSince);
    case 'tcp.rst':
      return withPaused({ side: event.side, kind: 'rst', t: event.t, idle: event.idle }, event.pausedSince);
    case 'tcp.error':
      return withPaused({ side: event.side, kind: 'error', t: event.t, error: event.code, idle: event.idle }, event.pausedSince);
    case 'proxy.close':
      // wstap ended both sides with a FIN of its own.
      return { side: 'proxy', kind: 'fin', t: event.t, reason: event.reason, idle: event.idle };
    default:
      return null;
  }
}

function withPaused(e: CloseEvidence, pausedSince: PausedSince | undefined): CloseEvidence {
  if (pausedSince) e.pausedSince = pausedSince;
  return e;
}

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

/**
 * Who closed first: the side of the earliest evidence. Evidence arrives in
 * time order per direction but the two directions' decoders and socket
 * events can interleave, so take the earliest by time (recording order
 * breaks ties).
 *
 * Unless that order is not known: the first evidence came while the other
 * side's reading was paused (backpressure), and the other side's own
 * evidence was read later in the same paused period. Then it may have been
 * sent first, and no side is named (see CloseOrderUnknown). When the paused
 * side caught up before its evidence came, or gave evidence before the
 * other side did anything, the order is certain and nothing changes.
 */
export function attributeClose(evidence: readonly CloseEvidence[]): CloseAttribution {
  if (evidence.length === 0) return { closedBy: null, first: null, idleBeforeCloseMs: null };
  let first = evidence[0] as CloseEvidence;
  for (const e of evidence) if (e.t < first.t) first = e;
  const idleBeforeCloseMs = first.idle ?? null;
  const pausedSide: Side = first.side === 'client' ? 'upstream' : 'client';
  const pausedSince = first.pausedSince?.[pausedSide];
  if (first.side === 'proxy' || pausedSince === undefined) return { closedBy: first.side, first, idleBeforeCloseMs };
  let paused: CloseEvidence | null = null;
  for (const e of evidence) if (e.side === pausedSide && (paused === null || e.t < paused.t)) paused = e;
  if (paused && paused.pausedSince?.[pausedSide] === pausedSince) {
    return { closedBy: null, first, idleBeforeCloseMs, orderUnknown: { reason: 'order-unknown', pausedSide, pausedSince, paused, other: first } };
  }
  return { closedBy: first.side, first, idleBeforeCloseMs, ...(paused ? {} : { unread: { side: pausedSide, pausedSince } }) };
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

/** "+1.234 s": a moment of the connection, from its open. */
function at(t: number, openedAt: number): string {
  return `+${((t - openedAt) / 1000).toFixed(3)} s`;
}

function otherSide(side: Side): Side {
  return side === 'client' ? 'upstream' : 'client';
}

/**
 * Why no side is named, in words: both pieces of evidence, the paused period
 * they rest on, and where the real order can be found.
 */
export function describeOrderUnknown(o: CloseOrderUnknown, openedAt: number): string {
  const late = o.pausedSide;
  const other = otherSide(late);
  return (
    `order unknown: ${describeEvidence(o.paused)} was read at ${at(o.paused.t, openedAt)} after reading ${late} had been paused since ${at(o.pausedSince, openedAt)} ` +
    `(${other} was not reading, so ${late}'s bytes waited); ${describeEvidence(o.other)} came at ${at(o.other.t, openedAt)} in between, ` +
    `and ${late}'s may have been sent before it; to tell them apart: a packet capture of the ${late} leg has when it reached this host, ${late}'s own log when it closed`
  );
}

/** The caveat on a verdict whose other side was not being read when it came. */
export function describeUnread(u: CloseUnreadSide, openedAt: number): string {
  return `${u.side}'s reading had been paused since ${at(u.pausedSince, openedAt)} (${otherSide(u.side)} was not reading): what ${u.side} sent after that, a FIN or RST included, was never read`;
}
