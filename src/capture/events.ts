/**
 * The event model. Everything wstap knows about a session is one of these;
 * the capture file is these, one per line, and every view (log lines, TUI,
 * HAR) is a fold over them. Verdicts (who closed, which timeout) are never
 * stored here: they are derived by `src/analysis`.
 *
 * Conventions:
 * - `t` is wall-clock epoch milliseconds with sub-millisecond precision,
 *   taken from one anchor per session plus monotonic deltas (see clock.ts),
 *   so ordering and durations are exact.
 * - `side` says where bytes or evidence came from: `client` is the
 *   nginx/browser side, `upstream` the app side.
 * - Binary data (previews) is base64 so a capture line is plain JSON.
 *
 * Over 400 lines on purpose: this is the one contract between every source
 * and every view, one interface per event kind; splitting it would scatter
 * the list a reader needs whole.
 */

import type { DiagnosisRecord } from '../analysis/diagnosis-record.js';

export type Side = 'client' | 'upstream';

/** RFC 6455 opcodes by name, for people reading frames; reserved ones read as op3..op15. */
const OPCODE_NAMES: Readonly<Record<number, string>> = { 0: 'cont', 1: 'text', 2: 'binary', 8: 'close', 9: 'ping', 10: 'pong' };

export function opcodeName(opcode: number): string {
  return OPCODE_NAMES[opcode] ?? `op${opcode}`;
}
export type RawHeaders = Array<[string, string]>;

/** Silence of each direction, in ms since its last byte, at the moment of an event. */
export interface Idle {
  client: number;
  upstream: number;
}

interface Base {
  t: number;
}

/**
 * On close evidence (tcp.fin, tcp.rst, tcp.error, close frames): the sides
 * whose reading was behind when it was recorded, and since when (`t` of the
 * pause). The relay stops reading a side while the other side does not take
 * its bytes (backpressure); what that side sent meanwhile, its FIN or RST
 * included, is read only once it caught up. Absent when neither side was
 * behind (almost always).
 */
export interface PausedSince {
  client?: number;
  upstream?: number;
}

interface ConnBase extends Base {
  conn: number;
}

export interface SessionStartEvent extends Base {
  kind: 'session.start';
  version: string;
  mode: 'http' | 'tcp';
  listen: string;
  target: string;
  pid: number;
  previewLimit: number;
  /**
   * The profile and --timeout flags in force and what they resolve to, so a
   * reader judges the capture as the proxy did. Absent in older captures.
   */
  diagnosis?: DiagnosisRecord;
  /** The proxy's --instance name (as in the capture's header). Absent in older captures. */
  instance?: string;
  /** The host the proxy ran on (its host name): a follower on the same host can tell whether `pid` still runs. Absent in older captures. */
  host?: string;
}

export interface SessionEndEvent extends Base {
  kind: 'session.end';
  reason: string;
  /** Events that could not be written to the capture (disk full, ...). */
  droppedEvents: number;
  /** Set by the reader of several instances' captures: whose session ended. */
  instance?: string;
}

/**
 * Written by the capture writer, not seen on the wire: the events before it
 * back to `from` could not be written (the disk filled, the file grew past
 * its size limit, an I/O error, or a disk too slow to keep up) and are
 * missing from the file. `t` is when writing worked again. A torn line (a
 * write cut short) may stand right before it; readers skip that line.
 */
export interface CaptureGapEvent extends Base {
  kind: 'capture.gap';
  /** `t` of the first event lost. */
  from: number;
  lostEvents: number;
  /**
   * The write error's code (ENOSPC, EFBIG, EIO...), GAP_BACKLOG: the disk was
   * too slow and the buffer full, GAP_MIN_FREE: the disk guard,
   * GAP_SEGMENT_MISSING, or GAP_PACKETS_DROPPED (a packet capture).
   */
  code: string;
  /**
   * With GAP_SEGMENT_MISSING: the segments of a rotated set that are missing
   * here. Never written by the writer: the reader of a set puts it in the
   * stream where a file is missing; `lostEvents` is then 0 (unknown).
   */
  missingSegments?: number[];
  /** Set by the reader of several instances' captures: the gap is that instance's, its connections alone may lack events. */
  instance?: string;
}

/** `capture.gap` code for events dropped because the disk fell too far behind (no write error). */
export const GAP_BACKLOG = 'backlog';

/** `capture.gap` code for a whole file of a rotated set that is missing (deleted, lost): how many events it held is unknown. */
export const GAP_SEGMENT_MISSING = 'segment-missing';

/**
 * `capture.gap` code in events read from a packet capture (pcapng interface
 * statistics): packets the kernel or libpcap dropped, `lostEvents` of them;
 * which connections they belonged to is unknown.
 */
export const GAP_PACKETS_DROPPED = 'packets-dropped';

/** `capture.gap` code for events not written because free space was below --min-free (the disk guard). */
export const GAP_MIN_FREE = 'MIN_FREE';

/**
 * Whether a gap may have cost events. The writer also writes gaps that lost
 * none (the guard paused with nothing to record, a failed write that tore
 * only a newline), so the file says what happened; those hide nothing from
 * a verdict. A missing segment's count is unknown (0 there means unknown).
 */
export function gapLostEvents(gap: CaptureGapEvent): boolean {
  return gap.code === GAP_SEGMENT_MISSING || gap.lostEvents > 0;
}

export interface ConnOpenEvent extends ConnBase {
  kind: 'conn.open';
  mode: 'http' | 'tcp';
  remoteAddress: string;
  remotePort: number;
  localPort: number;
  /**
   * Never written by the proxy: set by the reader of several instances'
   * captures (capture-merge.ts), which renumbers connections so ids stay
   * unique: the instance the connection went through and its id there. (When
   * its conn.open is not in the files, its first event carries the same two
   * fields, for the stand-in open: see standInOpen.)
   */
  instance?: string;
  instanceConn?: number;
}

export interface HttpRequestEvent extends ConnBase {
  kind: 'http.request';
  /** Exchange number on this connection (keep-alive), from 1. */
  exchange: number;
  method: string;
  url: string;
  httpVersion: string;
  rawHeaders: RawHeaders;
}

export interface HttpResponseEvent extends ConnBase {
  kind: 'http.response';
  exchange: number;
  statusCode: number;
  statusMessage: string;
  httpVersion: string;
  rawHeaders: RawHeaders;
  requestBodyBytes: number;
  responseBodyBytes: number;
  /** From the request head's arrival to the upstream's response head. */
  ttfbMs: number;
  /** From the request head's arrival to the last response byte handed to the client. */
  totalMs: number;
  /** false when the client went away before the response was complete. */
  complete: boolean;
}

export interface HttpErrorEvent extends ConnBase {
  kind: 'http.error';
  exchange: number;
  /**
   * Where it failed: reaching the upstream, or while waiting for or relaying
   * the response (`UPSTREAM_CLOSED`: the app's FIN, RST or socket error came
   * with this request unanswered; `CLIENT_ABORTED`: the client left first).
   */
  stage: 'connect' | 'response';
  code: string;
  message: string;
  /** Status wstap answered with itself (502), or null when headers had already gone out. */
  answeredStatus: number | null;
}

/**
 * Something in an HTTP message's framing or head that peers may read
 * differently (both Content-Length and Transfer-Encoding, conflicting
 * lengths, a head the passive parser rejects). Only recorded: the bytes are
 * relayed as they came. When `parsing` is `stopped`, the rest of that side
 * is relayed without being parsed, so its later exchanges are not recorded.
 */
export interface HttpAnomalyEvent extends ConnBase {
  kind: 'http.anomaly';
  side: Side;
  /** The exchange it belongs to, null when none (a head that did not parse, an answer nobody asked for). */
  exchange: number | null;
  /** CL_AND_TE, CONFLICTING_CONTENT_LENGTH, DUPLICATE_CONTENT_LENGTH, BAD_CONTENT_LENGTH, UNKNOWN_TRANSFER_CODING, HEAD_REJECTED, BAD_CHUNKED_BODY, RESPONSE_WITHOUT_REQUEST... */
  code: string;
  message: string;
  /** Byte offset in that side's stream on this connection. */
  offset: number;
  parsing: 'continues' | 'stopped';
}

/** `http.error` code: the app's FIN, RST or socket error came while this request waited for its answer. */
export const UPSTREAM_CLOSED = 'UPSTREAM_CLOSED';

/** `http.error` code: the client's connection ended before the app answered. */
export const CLIENT_ABORTED = 'CLIENT_ABORTED';

export interface HttpRejectedEvent extends ConnBase {
  kind: 'http.rejected';
  method: string;
  url: string;
  statusCode: number;
  reason: string;
}

export interface HandshakeRequestEvent extends ConnBase {
  kind: 'ws.handshake.request';
  method: string;
  url: string;
  httpVersion: string;
  rawHeaders: RawHeaders;
  /** Bytes of the head as written to the upstream. */
  headLength: number;
}

export interface HandshakeResponseEvent extends ConnBase {
  kind: 'ws.handshake.response';
  statusCode: number;
  reason: string;
  httpVersion: string;
  rawHeaders: RawHeaders;
  headLength: number;
  /** Upgraded to WebSocket framing: 101 with `Upgrade: websocket`. */
  upgraded: boolean;
  /** permessage-deflate as the upstream accepted it, or null. */
  deflate: {
    serverNoContextTakeover: boolean;
    clientNoContextTakeover: boolean;
    serverMaxWindowBits: number;
    clientMaxWindowBits: number;
  } | null;
  /** Milliseconds from the request head to the response head. */
  waitMs: number;
}

/**
 * An interim response (1xx other than 101: 100 Continue, 103 Early Hints)
 * the upstream sent before its final answer to a handshake; the final one is
 * the `ws.handshake.response`. An event of its own rather than a field of the
 * response: it is on record when it came even if no final answer follows,
 * and every reader that predates it skips it (unknown kinds are ignored), so
 * for them the handshake reads as before.
 */
export interface HandshakeInterimEvent extends ConnBase {
  kind: 'ws.handshake.interim';
  statusCode: number;
  reason: string;
  httpVersion: string;
  rawHeaders: RawHeaders;
  headLength: number;
  /** Milliseconds from the request head to this head. */
  waitMs: number;
}

/**
 * The start of the body the upstream sent with a response that did not
 * upgrade (a 400, 403, 426...): often the only place the app says why.
 * Recorded once per connection, when the preview is full, the body is
 * complete, or the connection ends, whichever comes first; always before
 * the connection's `conn.close`.
 */
export interface HandshakeBodyEvent extends ConnBase {
  kind: 'ws.handshake.body';
  /**
   * First bytes of the body, base64 (at most the session's preview limit, and
   * never more than 1024 bytes); de-chunked when the response is
   * `Transfer-Encoding: chunked`; empty with a preview limit of 0.
   */
  preview: string;
  /** The body has more than `preview` holds (or may have: it was still coming). */
  previewTruncated: boolean;
  /** Body bytes on the wire after the head (chunk framing included) seen when this was recorded. */
  bytes: number;
}

export interface HandshakeErrorEvent extends ConnBase {
  kind: 'ws.handshake.error';
  code: string;
  message: string;
  offset: number;
}

export interface FrameEvent extends ConnBase {
  kind: 'ws.frame';
  side: Side;
  /** Frame number in this direction, from 0. */
  index: number;
  /** Offset of the frame's first byte in this direction's byte stream after the handshake. */
  offset: number;
  opcode: number;
  fin: boolean;
  rsv1: boolean;
  rsv2: boolean;
  rsv3: boolean;
  masked: boolean;
  length: number;
  /** Unmasked first bytes of the payload (still compressed when rsv1), base64. */
  preview: string;
  previewTruncated: boolean;
  /**
   * Pings and pongs read from a source that knows which carried the same
   * data but not the data (a HAR exported with --payloads none): equal ids,
   * equal data. Pairs them in place of `preview`; never in a capture.
   */
  dataId?: string;
  closeCode?: number;
  closeReason?: string;
  /** On close frames: silence of each direction just before it. */
  idle?: Idle;
  /** On close frames: the sides whose reading was behind (see PausedSince). */
  pausedSince?: PausedSince;
}

export interface MessageEvent extends ConnBase {
  kind: 'ws.message';
  side: Side;
  opcode: 1 | 2;
  /** Time of the first byte of the first frame; `tEnd` of the last frame. */
  tEnd: number;
  firstFrame: number;
  frames: number;
  /** Payload bytes on the wire. */
  wireLength: number;
  compressed: boolean;
  /** Payload bytes after inflating (= wireLength when not compressed); null when it could not be inflated. */
  size: number | null;
  /** First bytes of the (inflated) message, base64; empty when unknown. */
  preview: string;
  previewTruncated: boolean;
}

/**
 * The connection ended in the middle of a frame: the frame's first byte
 * arrived, its last did not (no ws.frame for it). Recorded when the
 * connection ends, before conn.close.
 */
export interface FrameCutEvent extends ConnBase {
  kind: 'ws.frame.cut';
  side: Side;
  index: number;
  offset: number;
  /** When the frame's first byte arrived. */
  started: number;
  /** Bytes of the frame that arrived, header included. */
  received: number;
  /** Known once the header was complete. */
  opcode?: number;
  /** The payload length the header announced. */
  length?: number;
  payloadReceived?: number;
}

export interface ProtocolErrorEvent extends ConnBase {
  kind: 'ws.protocol-error';
  side: Side;
  code: string;
  message: string;
  /** Byte offset, in this direction's stream after the handshake, of the offending frame. */
  offset: number;
  frameIndex: number;
}

export interface InflateErrorEvent extends ConnBase {
  kind: 'ws.inflate-error';
  side: Side;
  message: string;
}

export interface FinEvent extends ConnBase {
  kind: 'tcp.fin';
  side: Side;
  idle: Idle;
  pausedSince?: PausedSince;
}

export interface RstEvent extends ConnBase {
  kind: 'tcp.rst';
  side: Side;
  idle: Idle;
  pausedSince?: PausedSince;
  /**
   * Only from a packet capture: data segments each side sent again
   * (retransmissions) in the 30 s before this RST, e.g. a peer that got no
   * acknowledgement before the reset came. Absent when there were none.
   */
  retransmissionsBefore?: Record<Side, number>;
}

export interface SocketErrorEvent extends ConnBase {
  kind: 'tcp.error';
  side: Side;
  code: string;
  message: string;
  idle: Idle;
  pausedSince?: PausedSince;
}

/**
 * Only from a packet capture (src/pcap/): bytes of one direction that the
 * capture does not hold. Decoding of that direction stops here unless the
 * next frame boundary is certain (`decoding`); its TCP evidence (FIN, RST,
 * byte counts) is still recorded. Who closed first is
 * then judged as after a `capture.gap`: a close frame may be in the hole.
 */
export interface TcpGapEvent extends ConnBase {
  kind: 'tcp.gap';
  side: Side;
  /**
   * Why the bytes are missing: `not-captured` (a hole in the sequence
   * numbers: a packet the capture dropped or never saw), `snaplen` (packets
   * cut at the capture's snap length), `capture-began` (the connection was
   * already open when the capture started: its beginning is missing).
   */
  cause: 'not-captured' | 'snaplen' | 'capture-began';
  /** Offset in this direction's byte stream (from the first byte the capture holds) where the hole starts. */
  offset: number;
  /** Bytes missing; null when unknown (the capture began mid-connection). */
  bytes: number | null;
  /** The packet (1-based, as tshark numbers them) where the hole was found. */
  packet: number;
  /**
   * `resumed`: the hole lies inside one frame's payload whose length its
   * header gave, so the next frame starts where that one ends, for certain:
   * decoding goes on there (the frame is recorded, its missing bytes read as
   * zeros in the preview; a compressed message's size is then unknown). A
   * close frame cannot be in such a hole. `stopped`: anything else.
   */
  decoding: 'resumed' | 'stopped';
  /**
   * The missing bytes were sent after this: the time of this direction's
   * last byte before the hole (the connection's open when none). The hole is
   * often found later (`t`), once the receiver acknowledged past it, so
   * evidence recorded between the two may be later than what is missing.
   */
  from: number;
}

/**
 * Only from a packet capture: a side advertised a zero receive window from
 * `since` (it was not reading; its peer had to stop sending), recorded at
 * `t` when the window opened again (`reopened`) or when the connection or
 * the capture ended with it still closed. A proxy sees this only as
 * backpressure on its own sockets; the packets show it on the wire.
 */
export interface TcpZeroWindowEvent extends ConnBase {
  kind: 'tcp.zero-window';
  /** The side whose receive window was zero (the one not reading). */
  side: Side;
  since: number;
  reopened: boolean;
  /** Data segments (window probes) its peer sent meanwhile. */
  probes: number;
}

/**
 * Only from a packet capture holding both legs (client -> nginx, nginx ->
 * app): the front-leg connection that carried this back-leg one, found by
 * the client address nginx names in its request (X-Real-IP, else the first
 * X-Forwarded-For hop) and time, exactly when a header also names the
 * client's port (X-Real-Port, X-Client-Port: nginx's `$remote_port`).
 * Recorded right after the connection's first request; `front` is null when
 * no connection, or more than one, fits.
 */
export interface ConnFrontEvent extends ConnBase {
  kind: 'conn.front';
  front: number | null;
  matchedBy: 'address+port' | 'address+time' | null;
  /** Connections from that address (and port, when named) open at the request: 1 when matched. */
  candidates: number;
  /** The client as the request names it: `address` or `address:port`. */
  client: string;
}

/**
 * With --probe-token: request `exchange`, not its connection's first,
 * carries X-Wstap-Probe, so wstap answers it itself. Every earlier exchange
 * was complete; wstap ended the app's connection with a FIN, and from here
 * wstap's own end is the connection's upstream side (its answer, a probe
 * WebSocket's frames, recorded as on a connection whose first request was a
 * probe). Not close evidence: the client's connection lives on, and who
 * closes it is judged from what follows; the app's answer to that FIN
 * concerns no one and is not recorded.
 */
export interface ProxyTakeoverEvent extends ConnBase {
  kind: 'proxy.takeover';
  exchange: number;
  reason: string;
  idle: Idle;
}

/** wstap itself ended the connection (shutdown, or a limit); `side` is absent: it is the proxy. */
export interface ProxyCloseEvent extends ConnBase {
  kind: 'proxy.close';
  reason: string;
  idle: Idle;
}

/**
 * A fault of wstap's own observer (decoder, inflater, recording, the fold):
 * from here on the connection is only relayed and counted. Its frames,
 * messages and HTTP exchanges after `t` are not recorded; its close
 * evidence (FIN, RST, socket error, proxy close) and `conn.close` still are.
 * At most one per connection.
 */
export interface ObserverFaultEvent extends ConnBase {
  kind: 'observer.fault';
  /** The direction whose chunk was being observed, when the fault came from one. */
  side?: Side;
  /** Which part of the observer failed, e.g. `observe`, `settle`, `record ws.frame`, `http.response`. */
  where: string;
  message: string;
  /** The first lines of the stack, for a bug report. */
  stack?: string;
}

export interface ConnCloseEvent extends ConnBase {
  kind: 'conn.close';
  /** Bytes received from each side. */
  bytes: { fromClient: number; fromUpstream: number };
  /**
   * Of those, bytes that arrived after wstap had ended or destroyed the other
   * side (its own shutdown) and so were not passed on; present only then.
   */
  notRelayed?: { fromClient: number; fromUpstream: number };
}

/**
 * A line of nginx's error log (--nginx-error-log), as parsed: evidence from
 * the hop in front of wstap. It carries no `conn`: which connection it is
 * about is derived by the fold (analysis/nginx-log-join.ts), never stored.
 * `t` is when wstap read it (live) or the end of its logged second (read
 * after the fact, merged by time); `at` is nginx's own time.
 */
/** One line of nginx's error log as nginx wrote it (parsed by src/nginx/error-log-line.ts). */
export interface NginxLogLine {
  /** nginx's time of the line, epoch ms of its whole second (see `time` for what it wrote). */
  at: number;
  /** The time as nginx wrote it, e.g. "2026/12/02 06:44:31" (its local time). */
  time: string;
  level: string;
  pid: number;
  tid: number;
  /** nginx's connection number (*N, the `$connection` variable); absent when the line names none. */
  connection?: number;
  /** The message, without its errno part: "upstream timed out". */
  message: string;
  /** The failed system call's errno and text: "(110: Connection timed out)". */
  errno?: { code: number; text: string };
  /** What nginx was doing: "proxying upgraded connection". */
  action?: string;
  /** The `, key: value` tails in the order written (client, server, request, upstream, host...), quotes removed. */
  fields: Record<string, string>;
}

export interface NginxLogEvent extends Base, NginxLogLine {
  kind: 'nginx.log';
  /** The error log file it was read from. */
  file: string;
}

/**
 * An nginx error log is read beside this session (--nginx-error-log): from
 * here on its absence of a line is evidence too. Recorded once per file,
 * before its lines.
 */
export interface NginxLogSourceEvent extends Base {
  kind: 'nginx.log.source';
  file: string;
  /** How nginx's zone-less times were read: "local time (Europe/Paris)", "UTC+01:00". */
  zone: string;
  /**
   * Live: what the end of the file held when following began (its lines are
   * not recorded, only whether it logs at info). Absent when read after the fact.
   */
  before?: { lines: number; infoLines: number; lastInfoTime: string | null };
}

export type CaptureEvent =
  | SessionStartEvent
  | SessionEndEvent
  | CaptureGapEvent
  | ConnOpenEvent
  | HttpRequestEvent
  | HttpResponseEvent
  | HttpErrorEvent
  | HttpRejectedEvent
  | HttpAnomalyEvent
  | HandshakeRequestEvent
  | HandshakeInterimEvent
  | HandshakeResponseEvent
  | HandshakeBodyEvent
  | HandshakeErrorEvent
  | FrameEvent
  | MessageEvent
  | FrameCutEvent
  | ProtocolErrorEvent
  | InflateErrorEvent
  | FinEvent
  | RstEvent
  | SocketErrorEvent
  | TcpGapEvent
  | TcpZeroWindowEvent
  | ConnFrontEvent
  | ProxyTakeoverEvent
  | ProxyCloseEvent
  | ObserverFaultEvent
  | ConnCloseEvent
  | NginxLogEvent
  | NginxLogSourceEvent;

export type CaptureEventKind = CaptureEvent['kind'];

/** The events that say a connection is ending, in the order they happened. */
export type CloseEvidenceEvent = FinEvent | RstEvent | SocketErrorEvent | ProxyCloseEvent | FrameEvent;

export const OPCODE = {
  continuation: 0,
  text: 1,
  binary: 2,
  close: 8,
  ping: 9,
  pong: 10,
} as const;

/** Receives events as they happen (the store, the capture file, the log). */
export interface EventSink {
  record(event: CaptureEvent): void;
}
