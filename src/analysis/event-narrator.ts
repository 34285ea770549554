import { GAP_BACKLOG, GAP_MIN_FREE, GAP_PACKETS_DROPPED, GAP_SEGMENT_MISSING, opcodeName, UPSTREAM_CLOSED, type CaptureEvent, type FrameCutEvent } from '../capture/events.js';
import { headerValue } from '../capture/raw-headers.js';
import { describeEvidence, describeOrderUnknown, describeUnread, noAnswerReason, type CloseEvidence } from './close-attribution.js';
import { attributionOf, type ConnectionSummary } from './connection-tracker.js';
import type { DiagnosisContext } from './connection-diagnosis.js';
import { findingsAt } from './connection-findings.js';
import type { Finding } from './finding.js';
import { bodyEvidence, responseBodyFacts } from './handshake-rules.js';
import { printable } from './printable.js';
import { seconds2 } from './timeout-verdict.js';

export type NarrationLevel = 'debug' | 'info' | 'warn' | 'error';

/** One human line about a notable event, plus the fields a JSON log keeps. */
export interface Narration {
  level: NarrationLevel;
  msg: string;
  fields: Record<string, unknown>;
}

const everyLevel = (): boolean => true;

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/**
 * Which events deserve a line in `--no-tui` output and what it says. Frames
 * do not (a busy connection would flood the log); opens, handshakes, HTTP
 * exchanges, errors and closes do. `summary` is the tracker's state after
 * the event was applied. `wanted` says which levels the caller will print:
 * a frequent line below them (an HTTP exchange at debug) is then not built.
 */
export function narrate(event: CaptureEvent, summary: ConnectionSummary | null, wanted: (level: NarrationLevel) => boolean = everyLevel): Narration | null {
  switch (event.kind) {
    case 'session.start':
      return {
        level: 'info',
        msg: event.listen ? `listening on ${event.listen} -> ${event.target} (${event.mode} mode)` : `session -> ${event.target || 'unknown target'}`,
        fields: { listen: event.listen, target: event.target, mode: event.mode },
      };
    case 'conn.open':
      return {
        level: 'info',
        msg: `#${event.conn} open from ${event.remoteAddress ? `${event.remoteAddress}:${event.remotePort}` : 'a peer without an address (a unix socket, or not recorded)'}`,
        fields: { conn: event.conn, remote: event.remoteAddress ? `${event.remoteAddress}:${event.remotePort}` : '' },
      };
    case 'ws.handshake.request':
      return {
        level: 'info',
        msg: `#${event.conn} ${printable(event.method)} ${printable(event.url)} HTTP/${event.httpVersion} upgrade: ${printable(headerValue(event.rawHeaders, 'upgrade') ?? '(none)')}`,
        fields: { conn: event.conn, method: event.method, url: event.url },
      };
    case 'ws.handshake.response': {
      const deflate = event.deflate ? ' permessage-deflate' : '';
      return {
        level: event.upgraded ? 'info' : 'warn',
        msg: `#${event.conn} upstream answered ${event.statusCode} ${printable(event.reason)} after ${event.waitMs.toFixed(1)} ms${event.upgraded ? deflate : ' (not upgraded)'}`,
        fields: { conn: event.conn, status: event.statusCode, waitMs: event.waitMs },
      };
    }
    case 'ws.handshake.interim':
      return {
        level: 'info',
        msg: `#${event.conn} upstream sent ${event.statusCode} ${printable(event.reason)} after ${event.waitMs.toFixed(1)} ms (interim; the final answer follows)`,
        fields: { conn: event.conn, status: event.statusCode, waitMs: event.waitMs },
      };
    case 'ws.handshake.body': {
      // The app's reason for refusing is often only here; the finding that follows quotes it in its fields, not its line.
      const response = summary?.handshakeResponse;
      return {
        level: 'info',
        msg: `#${event.conn} upstream's ${response ? `${response.statusCode} ` : ''}answer ${bodyEvidence(responseBodyFacts(event), response?.rawHeaders ?? [])}`,
        fields: { conn: event.conn, bytes: event.bytes },
      };
    }
    case 'ws.handshake.error':
      return {
        level: 'warn',
        msg: `#${event.conn} upstream's response head is not HTTP: ${printable(event.message)} at byte ${event.offset}`,
        fields: { conn: event.conn, code: event.code, offset: event.offset },
      };
    case 'http.response': {
      // One line per notable event: an answered exchange below 400 is the normal case (an API behind nginx makes
      // thousands a second; the capture, `view` and the HAR list every one); it is logged at debug.
      const level = event.statusCode >= 400 || !event.complete ? 'info' : 'debug';
      if (!wanted(level)) return null;
      return {
        level,
        msg: `#${event.conn} ${exchangeLine(summary, event.exchange)}-> ${event.statusCode} (${event.responseBodyBytes} B, ttfb ${event.ttfbMs.toFixed(1)} ms, total ${event.totalMs.toFixed(1)} ms)${event.complete ? '' : ' incomplete: client went away'}`,
        fields: { conn: event.conn, exchange: event.exchange, status: event.statusCode, bytes: event.responseBodyBytes },
      };
    }
    case 'http.error':
      if (event.code === UPSTREAM_CLOSED) {
        return {
          level: 'warn',
          msg: `#${event.conn} ${exchangeLine(summary, event.exchange)}unanswered: ${printable(event.message)}`,
          fields: { conn: event.conn, exchange: event.exchange, code: event.code },
        };
      }
      return {
        level: 'error',
        msg: `#${event.conn} upstream failed (${event.stage}): ${event.code}: ${printable(event.message)}${event.answeredStatus ? `; answered ${event.answeredStatus}` : ''}`,
        fields: { conn: event.conn, code: event.code, stage: event.stage },
      };
    case 'http.anomaly':
      // Its finding (findingsAt) says it at warning level with the fix; this line is the raw fact.
      return {
        level: 'debug',
        msg: `#${event.conn} ${event.side} HTTP ${event.exchange !== null ? `exchange ${event.exchange} ` : ''}${event.code} at byte ${event.offset}: ${printable(event.message)}${event.parsing === 'stopped' ? `; the rest of the ${event.side}'s bytes are relayed without being parsed` : '; relayed unchanged'}`,
        fields: { conn: event.conn, side: event.side, exchange: event.exchange, code: event.code, offset: event.offset },
      };
    case 'http.rejected':
      return {
        level: 'warn',
        // A head wstap would not read (too large, too slow, not HTTP) may not even have a request line.
        msg: `#${event.conn} rejected ${event.method ? `${printable(event.method)} ${printable(event.url)}` : 'a request'}: ${event.statusCode} ${printable(event.reason)}`,
        fields: { conn: event.conn, status: event.statusCode },
      };
    case 'ws.frame.cut':
      return {
        level: 'warn',
        msg: `#${event.conn} ${describeFrameCut(event)}`,
        fields: { conn: event.conn, side: event.side, offset: event.offset },
      };
    case 'ws.protocol-error':
      return {
        level: 'warn',
        msg: `#${event.conn} ${event.side} sent an invalid frame (${event.code}) at byte ${event.offset}: ${printable(event.message)}; decoding of that direction stopped, relaying continues`,
        fields: { conn: event.conn, side: event.side, code: event.code, offset: event.offset },
      };
    case 'ws.inflate-error':
      return {
        level: 'warn',
        msg: `#${event.conn} could not inflate a ${event.side} message: ${printable(event.message)}`,
        fields: { conn: event.conn, side: event.side },
      };
    case 'tcp.error':
      return {
        level: 'warn',
        msg: `#${event.conn} ${event.side} socket error ${event.code}: ${printable(event.message)}`,
        fields: { conn: event.conn, side: event.side, code: event.code },
      };
    case 'proxy.takeover':
      return {
        level: 'info',
        msg: `#${event.conn} ${printable(event.reason)}`,
        fields: { conn: event.conn, exchange: event.exchange },
      };
    case 'observer.fault':
      return {
        level: 'error',
        msg: `#${event.conn} observation stopped: internal fault in wstap's ${printable(event.where)}${event.side ? ` (${event.side} side)` : ''}: ${printable(event.message)}; relaying continues, only its close is recorded from now on`,
        fields: { conn: event.conn, side: event.side, where: event.where, error: event.message, stack: event.stack },
      };
    case 'conn.close':
      return summary ? closeNarration(summary) : null;
    case 'tcp.gap':
      return {
        level: 'warn',
        msg:
          event.cause === 'capture-began'
            ? `#${event.conn} was open before the packet capture began: its beginning (handshake, earlier frames) is not in it, and its ${event.side} bytes are not decoded; TCP evidence (FIN, RST, bytes) still is`
            : `#${event.conn} ${event.bytes ?? 'some'} ${event.side} bytes at offset ${event.offset} are not in the packet capture (${event.cause === 'snaplen' ? 'cut by the snap length: capture with -s 0' : 'packets the capture lost'}, found at packet ${event.packet}); ${event.decoding === 'resumed' ? "they lie inside one frame's payload, so decoding resumes at the next frame (that frame's preview may hold zeros where bytes are missing)" : `decoding of the ${event.side} side stops there, TCP evidence still counts`}`,
        fields: { conn: event.conn, side: event.side, cause: event.cause, offset: event.offset, bytes: event.bytes, packet: event.packet },
      };
    case 'tcp.zero-window':
      return {
        level: 'warn',
        msg: `#${event.conn} ${event.side} advertised a zero receive window (it was not reading) for ${seconds(event.t - event.since)}${event.reopened ? '' : ', still zero at the end'}; ${event.side === 'client' ? 'upstream' : 'client'} sent ${event.probes} probes meanwhile`,
        fields: { conn: event.conn, side: event.side, since: event.since, reopened: event.reopened, probes: event.probes },
      };
    case 'tcp.rst':
      if (!event.retransmissionsBefore) return null;
      return {
        level: 'warn',
        msg: `#${event.conn} ${event.side} reset the connection after retransmissions in the 30 s before (client ${event.retransmissionsBefore.client}, upstream ${event.retransmissionsBefore.upstream}): data was sent again unacknowledged before the RST`,
        fields: { conn: event.conn, side: event.side, retransmissionsBefore: event.retransmissionsBefore },
      };
    case 'capture.gap':
      if (event.code === GAP_SEGMENT_MISSING) {
        const which = event.missingSegments ?? [];
        return {
          level: 'warn',
          msg: `capture gap: segment${which.length === 1 ? '' : 's'} ${which.join(', ')} of the set ${which.length === 1 ? 'is' : 'are'} missing (${seconds(event.t - event.from)} between the files around it); connections open across it may lack events, and who closed them first is not judged`,
          fields: { code: event.code, missingSegments: which, from: event.from },
        };
      }
      if (event.code === GAP_PACKETS_DROPPED) {
        return {
          level: 'warn',
          msg: `capture gap: the packet capture dropped ${event.lostEvents} packets (kernel or libpcap buffer); connections open then may lack bytes or close evidence, and who closed them first is judged only where the packets allow`,
          fields: { lostEvents: event.lostEvents, code: event.code },
        };
      }
      // Only read back from a file: live, the writer's own log lines say it as it happens.
      if (event.code === GAP_MIN_FREE) {
        // The guard writes its gap even when nothing was lost: the file says it was paused.
        const lost = event.lostEvents > 0 ? `${event.lostEvents} events were not saved; connections of that time may lack events or be missing` : 'no event was lost';
        return {
          level: 'warn',
          msg: `capture gap: the capture was paused for ${seconds(event.t - event.from)} before this, free space being below --min-free (MIN_FREE); ${lost}`,
          fields: { lostEvents: event.lostEvents, code: event.code, from: event.from },
        };
      }
      return {
        level: 'warn',
        msg: `capture gap: ${event.lostEvents} events of the ${seconds(event.t - event.from)} before this were not saved (${event.code === GAP_BACKLOG ? 'the disk did not keep up' : event.code}); connections of that time may lack events or be missing`,
        fields: { lostEvents: event.lostEvents, code: event.code, from: event.from },
      };
    case 'session.end':
      return {
        level: event.droppedEvents > 0 ? 'warn' : 'info',
        msg: `session ended (${event.reason})${event.droppedEvents > 0 ? `; ${event.droppedEvents} events could not be written to the capture` : ''}`,
        fields: { reason: event.reason, droppedEvents: event.droppedEvents },
      };
    case 'nginx.log.source': {
      const before = event.before;
      const quiet = before !== undefined && before.lines > 0 && before.infoLines === 0;
      const level = !before ? '' : before.lines === 0 ? '; it is empty (or not there yet)' : quiet ? `; no info-level line in its last ${before.lines} line(s): its silence proves nothing until one comes (error_log ... info)` : '; it logs at info';
      return {
        level: quiet ? 'warn' : 'info',
        msg: `reading nginx's error log ${printable(event.file)} as evidence, its times in ${event.zone}${level}`,
        fields: { nginxErrorLog: event.file, zone: event.zone },
      };
    }
    default:
      return null;
  }
}

function exchangeLine(summary: ConnectionSummary | null, exchange: number): string {
  const request = summary?.lastAnswered?.exchange === exchange ? summary.lastAnswered : summary?.currentRequest;
  const what = request && request.exchange === exchange ? `${printable(request.method)} ${printable(request.url)} ` : '';
  return summary && summary.httpExchanges > 1 ? `exchange ${exchange} ${what}` : what;
}

/** The verdict line for a closed connection: who closed, from which evidence, after what silence. */
export function closeNarration(s: ConnectionSummary): Narration {
  const attribution = attributionOf(s);
  const lifetime = (s.closedAt ?? s.open.t) - s.open.t;
  const fields: Record<string, unknown> = {
    conn: s.conn,
    closedBy: attribution.closedBy,
    lifetimeMs: Math.round(lifetime),
    evidence: s.evidence.map((e) => evidenceField(e, s.open.t)),
    ...(attribution.orderUnknown
      ? { closeOrder: 'unknown', pausedSide: attribution.orderUnknown.pausedSide, pausedSinceMs: relativeMs(attribution.orderUnknown.pausedSince, s.open.t) }
      : {}),
    ...(s.evidenceDropped > 0 ? { evidenceDropped: s.evidenceDropped } : {}),
    idleBeforeCloseMs: attribution.idleBeforeCloseMs,
    frames: { client: s.directions.client.frames, upstream: s.directions.upstream.frames },
    bytes: s.bytes,
    ...(s.notRelayed ? { notRelayed: s.notRelayed } : {}),
  };
  // A stand-in open (its conn.open is not in the capture): the lifetime seen is a lower bound.
  const after = s.missing?.beginning ? `at least ${seconds(lifetime)} (its beginning is not in the capture)` : seconds(lifetime);
  if (s.evidence.length === 0 || !attribution.first) {
    return { level: 'info', msg: `#${s.conn} closed after ${after} (no close evidence seen)${unobservedText(s)}`, fields };
  }
  const first = attribution.first;
  if (attribution.undecided) {
    const chain = s.evidence.map((e) => describeEvidence(e)).join(', ');
    return { level: 'info', msg: `#${s.conn} closed after ${after}; who closed first is unknown: ${attribution.undecided}; evidence seen: ${printable(chain, 400)}`, fields };
  }
  const idle = attribution.idleBeforeCloseMs;
  const idleText = idle ? `; silent before: client->upstream ${seconds(idle.client)}, upstream->client ${seconds(idle.upstream)}` : '';
  const chain = s.evidence.map((e) => `${describeEvidence(e)} +${(e.t - first.t).toFixed(1)} ms`).join(', ');
  const moreText = s.evidenceDropped > 0 ? ` and ${s.evidenceDropped} more in the capture` : '';
  const neverAnswered = s.handshakeRequest && !s.handshakeResponse && !s.upstreamError ? `; ${noAnswerReason(attribution.closedBy)}` : '';
  const frames = s.directions.client.frames + s.directions.upstream.frames;
  const frameText = frames > 0 ? `; frames client ${s.directions.client.frames}, upstream ${s.directions.upstream.frames}` : '';
  const ping = s.pings.at(-1);
  const pingText = ping ? `; last ping rtt ${ping.rttMs.toFixed(1)} ms` : '';
  const late = s.notRelayed;
  const lateText = late ? `; not relayed, sent after wstap ended the connection: client ${late.fromClient} B, upstream ${late.fromUpstream} B` : '';
  if (attribution.orderUnknown) {
    return {
      level: 'warn',
      msg: `#${s.conn} closed after ${after}, ${printable(describeOrderUnknown(attribution.orderUnknown, s.open.t), 600)}${neverAnswered}; evidence: ${printable(chain, 400)}${moreText}${frameText}${pingText}${lateText}${unobservedText(s)}`,
      fields,
    };
  }
  const unreadText = attribution.unread ? `; ${describeUnread(attribution.unread, s.open.t)}` : '';
  return {
    level: neverAnswered ? 'warn' : 'info',
    msg: `#${s.conn} closed by ${attribution.closedBy} (${printable(describeEvidence(first))}) after ${after}${idleText}${unreadText}${neverAnswered}; evidence: ${printable(chain, 400)}${moreText}${frameText}${pingText}${lateText}${unobservedText(s)}${frontLegText(s, first)}`,
    fields: s.frontLeg ? { ...fields, frontLeg: { conn: s.frontLeg.conn, matchedBy: s.frontLeg.matchedBy, firstEvidence: s.frontLeg.first ? describeEvidence(s.frontLeg.first) : null } } : fields,
  };
}

/**
 * A packet capture of both legs: which hop cut the connection, from the
 * front leg's first close evidence (client <-> nginx) against this back
 * leg's (nginx <-> app). Said only when one front connection fits.
 */
function frontLegText(s: ConnectionSummary, first: CloseEvidence): string {
  const leg = s.frontLeg;
  if (!leg) return '';
  const how = leg.matchedBy === 'address+port' ? `matched by the client's address and port ${printable(leg.client)}` : `matched by the client's address ${printable(leg.client)} and time`;
  if (leg.conn === null) {
    return `; front leg unknown: ${leg.candidates === 0 ? `no connection from ${printable(leg.client)} open at the request in the capture` : `${leg.candidates} connections from ${printable(leg.client)} were open at the request (name the client's port to nginx's upstream: proxy_set_header X-Real-Port $remote_port)`}`;
  }
  const front = leg.first;
  if (front && front.t < first.t) {
    return `; the front leg (#${leg.conn}, ${how}) closed first: ${printable(describeEvidence(front))} ${(first.t - front.t).toFixed(1)} ms before this leg's first evidence: the client side cut it, nginx followed`;
  }
  const after = front ? `its first evidence (${printable(describeEvidence(front))}) came ${(front.t - first.t).toFixed(1)} ms later` : 'it was still open then';
  return `; this leg closed before the front leg (#${leg.conn}, ${how}): ${after}`;
}

/** After an observer fault the record is partial: frames and close frames after it were not seen, so the verdict rests on FIN/RST only. */
function unobservedText(s: ConnectionSummary): string {
  const fault = s.observerFault;
  return fault ? `; not observed after +${seconds(fault.t - s.open.t)} (internal fault): frames and close frames after that are not in the record` : '';
}

function relativeMs(t: number, openedAt: number): number {
  return Math.round((t - openedAt) * 1000) / 1000;
}

/** A piece of evidence for the log's fields: times from the connection's open. */
function evidenceField(e: CloseEvidence, openedAt: number): Record<string, unknown> {
  const out: Record<string, unknown> = { ...e, t: undefined, atMs: relativeMs(e.t, openedAt) };
  if (e.pausedSince) {
    const paused: Record<string, number> = {};
    for (const [side, t] of Object.entries(e.pausedSince)) paused[side] = relativeMs(t, openedAt);
    out['pausedSinceMs'] = paused;
    out['pausedSince'] = undefined;
  }
  return out;
}

const FINDING_LEVEL: Record<Finding['severity'], NarrationLevel> = { info: 'info', warning: 'warn', error: 'error' };

/** Log lines for the findings an event makes known (findingsAt): each once, as soon as it can be known. */
export function narrateFindings(event: CaptureEvent, summary: ConnectionSummary | null, context: DiagnosisContext): readonly Narration[] {
  return narrationOfFindings(findingsAt(event, summary, context), summary);
}

/** Log lines for findings already made known (findingsAt), for a caller that also hands them to another view. */
export function narrationOfFindings(findings: readonly Finding[], summary: ConnectionSummary | null): readonly Narration[] {
  if (findings.length === 0) return [];
  // A finding of the session (an nginx line tied to no connection): said without a connection.
  if (!summary) return findings.map((f) => ({ level: FINDING_LEVEL[f.severity], msg: `${f.message}${f.fix ? `; fix: ${f.fix}` : ''}`, fields: { finding: f } }));
  // "No timeout matched" helps nobody when the close was routine: a keep-alive HTTP connection closing, or
  // a WebSocket ended by a normal close frame (1000, 1001). Its close line has the numbers; the finding goes to debug.
  const tunnel = summary.handshakeRequest !== null || summary.open.mode === 'tcp';
  const routine = !tunnel || endedByNormalCloseFrame(summary);
  return findings.map((f) => ({
    level: f.id === 'timeout.none' && routine ? 'debug' : FINDING_LEVEL[f.severity],
    msg: `#${summary.conn} ${f.message}${f.fix ? `; fix: ${f.fix}` : ''}`,
    fields: { conn: summary.conn, finding: f },
  }));
}

/** Close codes of an orderly end (RFC 6455 7.4.1): normal closure, going away. */
const NORMAL_CLOSE_CODES: ReadonlySet<number> = new Set([1000, 1001]);

/** The first close evidence is a close frame with a normal code: someone ended the WebSocket on purpose. */
function endedByNormalCloseFrame(s: ConnectionSummary): boolean {
  const first = attributionOf(s).first;
  return first?.kind === 'close-frame' && first.code !== undefined && NORMAL_CLOSE_CODES.has(first.code);
}

/**
 * A frame the connection's end cut in two (the receiver got part of a
 * message, or none of it), in words: for the log and the detail view.
 */
export function describeFrameCut(event: FrameCutEvent): string {
  const what = event.opcode !== undefined
    ? `${opcodeName(event.opcode)} frame ${event.index} (${event.length} payload bytes announced) was cut off after ${event.payloadReceived} of them`
    : `frame ${event.index} was cut off inside its header (${event.received} byte${event.received === 1 ? '' : 's'})`;
  return `${event.side}'s ${what}: the connection ended ${seconds2(event.t - event.started)} after its first byte`;
}
