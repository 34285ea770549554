import { attributionOf, type ConnectionSummary } from '../analysis/connection-tracker.js';
import type { MissingPart } from '../analysis/missing-part.js';
import { describeEvidence, noAnswerReason } from '../analysis/close-attribution.js';
import { diagnoseConnection, EMPTY_DIAGNOSIS_CONTEXT, factsOf, type DiagnosisContext } from '../analysis/connection-diagnosis.js';
import { closeNarration, describeFrameCut } from '../analysis/event-narrator.js';
import type { Finding } from '../analysis/finding.js';
import { bodyEvidence, responseBodyFacts } from '../analysis/handshake-rules.js';
import type { FrameRecord } from '../analysis/frame-history.js';
import { printable } from '../analysis/printable.js';
import { REDACTED, redactHandshake, redactRawHeaders, redactUrl } from '../analysis/redaction.js';
import { opcodeName, type RawHeaders, type Side } from '../capture/events.js';
import type { ConnectionRow } from './connection-rows.js';
import { noteCell } from './connection-table.js';
import type { Tone } from './paint.js';
import { payloadPreview } from './payload-preview.js';
import { compactBytes, compactDuration, compactLatency, wrapToWidth } from './terminal-text.js';

/** One line of a scrolling text view: printable text and one tone. */
export interface StyledLine {
  text: string;
  tone: Tone;
}

export interface DetailInput {
  summary: ConnectionSummary;
  row: ConnectionRow;
  frames: readonly FrameRecord[];
  /** Frames of this connection no longer held in memory. */
  droppedFrames: number;
  redact: boolean;
  /** Columns available, so previews use the width they have. */
  width: number;
  /** What is known about the path, for the findings section. */
  diagnosis?: DiagnosisContext;
  /** The UI's clock: how long a live connection's pings have waited. */
  now?: number;
}

const ARROW: Record<Side, string> = { client: '→', upstream: '←' };

function line(text: string, tone: Tone = 'plain'): StyledLine {
  return { text, tone };
}

/** "+12.345s" since the connection opened (or since the previous frame). */
export function relativeTime(ms: number): string {
  return ms < 1_000_000 ? `+${(ms / 1000).toFixed(3)}s` : `+${compactDuration(ms)}`;
}

function headerLines(headers: RawHeaders, redact: boolean): StyledLine[] {
  const shown = redact ? redactRawHeaders(headers) : headers;
  return shown.map(([name, value]) => line(`  ${printable(name, 100)}: ${printable(value, 400)}`));
}

function handshake(s: ConnectionSummary, redact: boolean): StyledLine[] {
  const out: StyledLine[] = [];
  const req = s.handshakeRequest;
  if (req) {
    const url = redact ? redactUrl(req.url, REDACTED) : req.url;
    out.push(line(`Handshake request as it reached wstap (${req.headLength} bytes)`, 'heading'));
    out.push(line(`  ${printable(req.method)} ${printable(url, 400)} HTTP/${printable(req.httpVersion)}`));
    out.push(...headerLines(req.rawHeaders, redact));
  }
  const res = s.handshakeResponse;
  if (res) {
    out.push(line(`Handshake response from the upstream (after ${compactLatency(res.waitMs)})`, 'heading'));
    out.push(line(`  HTTP/${printable(res.httpVersion)} ${res.statusCode} ${printable(res.reason)}`, res.upgraded ? 'plain' : 'bad'));
    out.push(...headerLines(res.rawHeaders, redact));
    if (s.handshakeBody) out.push(line(`  ${bodyEvidence(responseBodyFacts(s.handshakeBody), res.rawHeaders)}`));
  } else if (req) {
    const closed = s.state === 'closed';
    const why = noAnswerReason(attributionOf(s).closedBy);
    out.push(line(closed ? why.charAt(0).toUpperCase() + why.slice(1) : 'Waiting for the upstream to answer', closed ? 'bad' : 'dim'));
  }
  if (s.upstreamError) {
    const e = s.upstreamError;
    const answered = e.answeredStatus !== null ? `; wstap answered ${e.answeredStatus}` : '';
    out.push(line(`Upstream failed (${e.stage}): ${printable(e.code)}: ${printable(e.message)}${answered}`, 'bad'));
  }
  return out;
}

function plainHttp(s: ConnectionSummary, redact: boolean): StyledLine[] {
  if (s.httpExchanges === 0) return [];
  const current = s.currentRequest;
  const url = current ? (redact ? redactUrl(current.url, REDACTED) : current.url) : '';
  return [
    line('Plain HTTP', 'heading'),
    line(`  ${s.httpExchanges} exchange(s) on this connection; last status ${s.lastStatus ?? 'none yet'}`),
    ...(current ? [line(`  latest: ${printable(current.method)} ${printable(url, 400)}`)] : []),
  ];
}

function pings(s: ConnectionSummary): StyledLine[] {
  const pairing = s.pingPairing;
  if (s.pings.length === 0 && pairing.unanswered === 0 && pairing.unsolicitedPongs === 0 && pairing.pending === 0) return [];
  const out = [
    line(
      `Ping / pong (last ${s.pings.length} answered; given up ${pairing.unanswered}, waiting ${pairing.pending}, stray pongs ${pairing.unsolicitedPongs})`,
      'heading',
    ),
  ];
  for (const p of s.pings) {
    const answerer = p.from === 'client' ? 'upstream' : 'client';
    out.push(line(`  ${relativeTime(p.pingAt - s.open.t)}  ${p.from} ping → ${answerer} pong  rtt ${compactLatency(p.rttMs)}`));
  }
  return out;
}

function closeEvidence(s: ConnectionSummary): StyledLine[] {
  // Said first: it is why the frames and any close frame after it are missing.
  const fault = s.observerFault;
  const faultLine = fault
    ? [line(`  ${relativeTime(fault.t - s.open.t)}  wstap stopped observing (internal fault in its ${printable(fault.where)}: ${printable(fault.message, 200)}); relayed, not decoded, after this`, 'bad')]
    : [];
  if (s.evidence.length === 0) {
    if (s.state === 'closed') return [line('Close: no close evidence was seen', 'heading'), ...faultLine];
    return fault ? [line('Observation', 'heading'), ...faultLine] : [];
  }
  const out = [line('Close evidence, in the order it was recorded', 'heading'), ...faultLine];
  for (const e of s.evidence) {
    const idle = e.idle ? `  (silent: c→u ${compactDuration(e.idle.client)}, u→c ${compactDuration(e.idle.upstream)})` : '';
    out.push(line(`  ${relativeTime(e.t - s.open.t)}  ${printable(describeEvidence(e), 300)}${idle}`));
  }
  // A frame cut off by the end is what the receiver will miss: said next to the evidence of that end.
  for (const cut of s.cutFrames) out.push(line(`  ${relativeTime(cut.t - s.open.t)}  ${describeFrameCut(cut)}`, 'warn'));
  if (s.state === 'closed') out.push(line(`  verdict: ${closeNarration(s).msg.replace(/^#\d+ /, '')}`, 'accent'));
  return out;
}

const FINDING_TONE: Record<Finding['severity'], Tone> = { info: 'plain', warning: 'warn', error: 'bad' };

/** A finding's text is wrapped, not cut at the screen edge; this bounds one piece of it (a fix naming every candidate is ~800 characters). */
const FINDING_TEXT_MAX = 2000;
const FINDING_CONTINUATION = '      ';

function findings(s: ConnectionSummary, context: DiagnosisContext, redact: boolean, now: number | undefined, width: number): StyledLine[] {
  const facts = factsOf(s, now);
  const shown = redact && facts.handshake ? { ...facts, handshake: redactHandshake(facts.handshake) } : facts;
  const found = diagnoseConnection(shown, context);
  if (found.length === 0) return [];
  const out = [line('Findings', 'heading')];
  const wrapped = (text: string, first: string, tone: Tone = 'plain'): StyledLine[] =>
    wrapToWidth(printable(text, FINDING_TEXT_MAX), width, first, FINDING_CONTINUATION).map((t) => line(t, tone));
  for (const f of found) {
    out.push(...wrapped(f.message, `  [${f.severity}] ${f.id}: `, FINDING_TONE[f.severity]));
    for (const e of f.evidence) out.push(...wrapped(e, '    evidence: '));
    if (f.fix) out.push(...wrapped(f.fix, '    fix: ', 'accent'));
  }
  return out;
}

function framePreview(f: FrameRecord, textMessage: boolean, compressed: boolean, width: number): string {
  if (f.opcode === 8) {
    if (f.closeCode === undefined) return f.length === 0 ? '(no code)' : '';
    return `${f.closeCode}${f.closeReason ? ` "${printable(f.closeReason, width)}"` : ''}`;
  }
  if (f.message) {
    if (f.message.size === null) return '(could not inflate)';
    return `(inflated ${compactBytes(f.message.size)}) ${payloadPreview(f.message.preview, textMessage ? 'text' : 'binary', width, f.message.previewTruncated)}`;
  }
  // RSV1 marks only a compressed message's first frame (RFC 7692); its continuations are deflate bytes too.
  if (f.rsv1 || compressed) return '(compressed)';
  const kind = textMessage || f.opcode === 9 || f.opcode === 10 ? 'text' : 'binary';
  return payloadPreview(f.preview, kind, width, f.previewTruncated);
}

function timeline(input: DetailInput): StyledLine[] {
  const { summary: s, frames, droppedFrames } = input;
  if (frames.length === 0 && droppedFrames === 0) return s.handshakeResponse?.upgraded ? [line('Frames: none yet', 'heading')] : [];
  const seen = frames.length + droppedFrames;
  const out = [
    line(
      droppedFrames > 0
        ? `Frames: the last ${frames.length} of ${seen} (the capture file has every one)`
        : `Frames (${frames.length})`,
      'heading',
    ),
    line('  since open   gap        dir opcode  flags       size  preview', 'dim'),
  ];
  // Continuation frames carry no type: it is the message's first frame's, per direction.
  const textMessage: Record<Side, boolean> = { client: false, upstream: false };
  const compressedMessage: Record<Side, boolean> = { client: false, upstream: false };
  let previous: number | null = null;
  const previewWidth = Math.max(16, input.width - 58);
  for (const f of frames) {
    if (f.opcode === 1 || f.opcode === 2) {
      textMessage[f.side] = f.opcode === 1;
      compressedMessage[f.side] = f.rsv1;
    }
    const gap = previous === null ? '' : relativeTime(f.t - previous);
    previous = f.t;
    const flags = `${f.fin ? 'fin' : '   '} ${f.rsv1 ? 'rsv1' : '    '}`;
    const op = opcodeName(f.opcode);
    const isText = f.opcode === 1 || (f.opcode === 0 && textMessage[f.side]);
    out.push(
      line(
        `  ${relativeTime(f.t - s.open.t).padEnd(12)} ${gap.padEnd(10)} ${ARROW[f.side]}   ${op.padEnd(7)} ${flags} ${String(f.length).padStart(8)}  ${framePreview(f, isText, f.opcode === 0 && compressedMessage[f.side], previewWidth)}`,
        f.opcode === 8 ? 'accent' : f.opcode >= 9 ? 'dim' : 'plain',
      ),
    );
  }
  return out;
}

function missingLine(missing: MissingPart): string {
  const what = missing.beginning
    ? 'its beginning is not in the capture (a deleted file of the set): the handshake and client address are unknown, the age shown is since its first event read'
    : 'some of its events are not in the capture (a capture gap while it was open)';
  const close = missing.closeJudgeable === false ? '; who closed first cannot be told' : '';
  return `incomplete: ${what}${close}`;
}

/** The detail view of one connection: what arrived, what the app answered, pings, close evidence, frames. */
export function detailLines(input: DetailInput): StyledLine[] {
  const { summary: s, row } = input;
  // A unix socket's peer has no address (only nginx's X-Real-IP can name the client then); a connection whose beginning is not in the capture has none either.
  const peer = s.open.remoteAddress ? `${s.open.remoteAddress}:${s.open.remotePort}` : s.missing?.beginning ? 'unknown address' : 'no peer address';
  const client = s.forwardedFor ? `${s.forwardedFor} (${s.open.remoteAddress ? `peer ${peer}` : peer})` : peer;
  const d = s.directions;
  const note = noteCell(row).text;
  const out: StyledLine[] = [
    line(`#${s.conn} ${row.kind}  ${printable(row.path, 400)}  from ${printable(client)}`, 'heading'),
    line(
      `state ${row.state} · age ${compactDuration(row.ageMs)} · idle c→u ${compactDuration(row.idle.client)}, u→c ${compactDuration(row.idle.upstream)}${note ? ` · ${note}` : ''}`,
    ),
  ];
  if (row.kind === 'ws') {
    out.push(
      line(
        `c→u ${d.client.frames} frames, ${d.client.messages} messages, ${compactBytes(d.client.payloadBytes)} payload · u→c ${d.upstream.frames} frames, ${d.upstream.messages} messages, ${compactBytes(d.upstream.payloadBytes)} payload${s.protocolErrors > 0 ? ` · ${s.protocolErrors} protocol error(s)` : ''}`,
      ),
    );
  }
  if (s.bytes) out.push(line(`bytes on the wire: from client ${s.bytes.fromClient}, from upstream ${s.bytes.fromUpstream}`));
  if (s.missing) out.push(line(missingLine(s.missing), 'warn'));
  // What wstap concludes comes first; the observations it rests on follow.
  const sections = [findings(s, input.diagnosis ?? EMPTY_DIAGNOSIS_CONTEXT, input.redact, input.now, input.width), handshake(s, input.redact), plainHttp(s, input.redact), pings(s), closeEvidence(s), timeline(input)];
  for (const section of sections) {
    if (section.length === 0) continue;
    out.push(line(''), ...section);
  }
  return out;
}
