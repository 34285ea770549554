/**
 * HAR 1.2 as wstap writes it, with the extensions Chrome DevTools reads
 * (`_resourceType`, `_webSocketMessages`) and our own `_wstap` block. This
 * is the contract of DESIGN.md section 5: users' scripts rely on it.
 *
 * Times inside `_webSocketMessages`, `_webSocketClose` and `_wstap` are epoch
 * SECONDS with microsecond precision (Chrome's convention for WebSocket
 * messages); `time` and `timings` are milliseconds as HAR 1.2 says.
 */

import type { DiagnosisRecord } from '../analysis/diagnosis-record.js';
import type { Finding } from '../analysis/finding.js';

export interface HarNameValue {
  name: string;
  value: string;
}

export interface HarRequest {
  method: string;
  url: string;
  httpVersion: string;
  cookies: HarNameValue[];
  headers: HarNameValue[];
  queryString: HarNameValue[];
  headersSize: number;
  bodySize: number;
}

export interface HarResponse {
  status: number;
  statusText: string;
  httpVersion: string;
  cookies: HarNameValue[];
  headers: HarNameValue[];
  content: { size: number; mimeType: string; text?: string; encoding?: string };
  redirectURL: string;
  headersSize: number;
  bodySize: number;
  /** Chrome's field for a request that failed without a response. */
  _error?: string;
}

export interface HarTimings {
  blocked: number;
  dns: number;
  connect: number;
  send: number;
  wait: number;
  receive: number;
  ssl: number;
}

export type HarMessageType = 'send' | 'receive';

/** One whole data message; `type` from the client's view ("send" = client to upstream). */
export interface HarWebSocketMessage {
  type: HarMessageType;
  time: number;
  opcode: 1 | 2;
  /** UTF-8 text for opcode 1, base64 for opcode 2. */
  data: string;
  /** Present when `data` is not the whole message: the message's size in bytes. */
  _size?: number;
}

export type HarWebSocketClose = { code: number | null; reason: string; timestamp: number } | 'aborted';

export type HarCloseEventKind = 'close-frame' | 'fin' | 'rst' | 'error' | 'timeout';

export interface HarCloseEvent {
  side: 'client' | 'upstream' | 'proxy';
  kind: HarCloseEventKind;
  time: number;
  code?: number;
  reason?: string;
  error?: string;
  /**
   * The sides whose reading was paused (backpressure: the other side was not
   * taking their bytes) when this was recorded, and since when (epoch seconds,
   * like `time`). Absent when neither was.
   */
  pausedSince?: { client?: number; upstream?: number };
}

/**
 * Why `closedBy` is null although there is close evidence: the order of the
 * two sides' closes cannot be known. `pausedSide`'s evidence was read after
 * the other side's, in a period (since `pausedSince`, epoch seconds) when
 * wstap was not reading it, so it may have been sent first.
 */
export interface HarCloseOrder {
  reason: 'order-unknown';
  pausedSide: 'client' | 'upstream';
  pausedSince: number;
}

/** Every frame, control frames included. */
export interface HarFrame {
  type: HarMessageType;
  time: number;
  opcode: number;
  fin: boolean;
  rsv1: boolean;
  masked: boolean;
  length: number;
  /**
   * Pings and pongs: their application data as the capture holds it
   * (base64). A pong answers the ping whose data it echoes (RFC 6455 5.5.3),
   * so `wstap view FILE.har` pairs them as the live proxy did. Absent when
   * empty, and with --payloads none.
   */
  payload?: string;
  /**
   * With --payloads none, in place of `payload`: pings and pongs of the
   * connection with the same (non-empty) data have the same id, so they still
   * pair without the data in the file.
   */
  payloadId?: number;
}

/** A frame whose first byte arrived but not its last; `opcode`, `length` and `payloadReceived` once its header was complete. */
export interface HarCutFrame {
  type: 'send' | 'receive';
  /** Epoch seconds: when its first byte arrived, and when the connection ended. */
  time: number;
  endTime: number;
  /** Byte offset of the frame in its direction's stream after the handshake. */
  offset: number;
  /** Bytes of it that arrived, header included. */
  received: number;
  opcode?: number;
  length?: number;
  payloadReceived?: number;
}

export interface HarWstap {
  connectionId: number;
  /** Captures of several proxies exported as one: the proxy (--instance) the connection went through, and its id there. */
  instance?: string;
  instanceConnectionId?: number;
  closedBy: 'client' | 'upstream' | 'proxy' | null;
  closeEvents: HarCloseEvent[];
  /** Present only when closedBy is null because the close order is unknown. */
  closeOrder?: HarCloseOrder;
  frames: HarFrame[];
  /** Silence of each direction when the first close event happened; null when there was none. */
  idleBeforeCloseMs: { client: number; upstream: number } | null;
  pings: Array<{ from: 'client' | 'upstream'; rttMs: number }>;
  diagnosis: Finding[];
  /** Frames the connection's end cut off in the middle (at most one per direction). */
  cutFrames?: HarCutFrame[];
  /** Protocol errors the decoder recorded, with byte offsets. */
  protocolErrors?: Array<{ side: 'client' | 'upstream'; code: string; message: string; offset: number }>;
  /** wstap stopped observing this connection at `time` (an internal fault): frames and messages after it are missing, close evidence is not. */
  observerFault?: { time: number; side?: 'client' | 'upstream'; where: string; message: string };
  /** The app's answer to the handshake was not an HTTP head (`time` epoch seconds; `offset` the byte it went wrong at). */
  handshakeError?: { time: number; code: string; message: string; offset: number };
  /** Who produced the response: `wstap` when the upstream could not be reached and wstap answered 502. */
  answeredBy?: 'upstream' | 'wstap';
  /** Interim responses (103 Early Hints, 100 Continue) the upstream sent before `response`, in order; `time` in epoch seconds. */
  interimResponses?: Array<{ status: number; statusText: string; headers: HarNameValue[]; time: number }>;
  /**
   * A handshake answer that did not upgrade: when wstap recorded its body
   * (epoch seconds), the body bytes seen then, and whether the preview
   * (`response.content.text`) holds less than the body. The diagnosis quotes
   * that preview; read back, it is quoted the same way.
   */
  handshakeBody?: { time: number; bytes: number; truncated: boolean };
  /** Whether header values and query parameters were redacted in this entry. */
  redacted: boolean;
  /**
   * When wstap accepted the connection (epoch seconds), before its first
   * request arrived: connection ages (and lifetime timeouts) count from here.
   * Absent when the capture does not hold the connection's beginning.
   */
  connectionOpenedAt?: number;
  /** Present when the capture holds only part of the connection. */
  incomplete?: HarIncomplete;
  /** The capture ended with the connection still open (wstap killed, or a capture read while recording): it has no close yet, and no close verdict. */
  openAtEnd?: true;
}

/** What a capture lacks about a connection (a deleted file of a rotated set, a capture gap). */
export interface HarIncomplete {
  /** Its handshake is not in the capture: the entry's request is a stand-in (no headers), its 101 inferred from the frames. */
  beginningMissing: boolean;
  note: string;
  /** Why `closedBy` is null although there are closeEvents: the first close evidence may be in the missing part. */
  closedByUnknown?: string;
}

export interface HarEntry {
  startedDateTime: string;
  time: number;
  request: HarRequest;
  response: HarResponse;
  cache: Record<string, never>;
  timings: HarTimings;
  serverIPAddress?: string;
  connection?: string;
  _resourceType?: string;
  _webSocketMessages?: HarWebSocketMessage[];
  _webSocketClose?: HarWebSocketClose;
  _wstap?: HarWstap;
}

/** Part of the session the capture lost (disk full...): entries of that time may be missing or incomplete. */
export interface HarCaptureGap {
  /** Epoch seconds: the first event lost, and when the capture worked again. */
  from: number;
  to: number;
  lostEvents: number;
  /** ENOSPC, EFBIG, EIO..., or "backlog" (the disk did not keep up). */
  code: string;
  /** Whose capture lost them, when several proxies' captures were exported together (its connections alone may lack events). */
  instance?: string;
}

export interface HarLog {
  log: {
    version: '1.2';
    creator: { name: string; version: string };
    pages: [];
    entries: HarEntry[];
    comment?: string;
    /** Session-level facts; only present when there is something to say. */
    _wstap?: HarSessionFacts;
  };
}

/** The log-level `_wstap`: each field only when there is something to say. */
export interface HarSessionFacts {
  captureGaps?: HarCaptureGap[];
  /** The profile and --timeout flags `_wstap.diagnosis` was judged with (`wstap view` of the HAR judges the same way). */
  diagnosisContext?: DiagnosisRecord;
  /**
   * Several proxies' captures exported as one, whose instances ran with
   * different contexts (and none was given to export): each instance's
   * (null: it recorded none), by its name as in `_wstap.instance`; each
   * entry's `_wstap.diagnosis` was judged with its instance's.
   * `diagnosisContext` is then the first instance's.
   */
  diagnosisContexts?: Record<string, DiagnosisRecord | null>;
}

/**
 * Message data in a HAR: `preview` is what the capture holds of each message,
 * its first --preview-bytes bytes (inflated), with `_size` on one cut short;
 * `none` keeps sizes only. There is no "full": a HAR cannot hold more than
 * was captured (record with a larger --preview-bytes for whole messages).
 */
export type PayloadMode = 'none' | 'preview';

/** `_wstap.diagnosis` items are analysis findings as they are. */
export type HarDiagnosis = Finding;
