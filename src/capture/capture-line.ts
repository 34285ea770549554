import type { CaptureEvent, FrameEvent, HttpRequestEvent, HttpResponseEvent, MessageEvent, RawHeaders } from './events.js';

/** An event as one capture line, as text: its JSON and a newline. */
export function captureLine(event: CaptureEvent): string {
  if (event.kind === 'http.request') return httpRequestLine(event);
  if (event.kind === 'http.response') return httpResponseLine(event);
  return JSON.stringify(event) + '\n';
}

/*
 * Plain HTTP makes two events per exchange, and JSON.stringify of them was a
 * quarter of what observing an exchange cost (bench (e)). Those whose strings
 * are all plain are written as bytes (writeFastLine, below); the others' text
 * is built here, field by field in the order HttpTap builds them, the same
 * text as JSON.stringify's (test/unit/capture-line.test.ts): strings of
 * printable ASCII without '"' or '\\' as they are, any other through
 * JSON.stringify.
 */

function jsonString(text: string): string {
  return isPlain(text) ? `"${text}"` : JSON.stringify(text);
}

/** JSON's spelling of a number: non-finite ones are null. */
function jsonNumber(value: number): string {
  return Number.isFinite(value) ? `${value}` : 'null';
}

function jsonHeaders(headers: RawHeaders): string {
  let text = '[';
  for (let i = 0; i < headers.length; i++) {
    const [name, value] = headers[i] as readonly [string, string];
    text += `${i === 0 ? '' : ','}[${jsonString(name)},${jsonString(value)}]`;
  }
  return text + ']';
}

function httpRequestLine(e: HttpRequestEvent): string {
  return `{"kind":"http.request","t":${jsonNumber(e.t)},"conn":${jsonNumber(e.conn)},"method":${jsonString(e.method)},"url":${jsonString(e.url)},"httpVersion":${jsonString(e.httpVersion)},"rawHeaders":${jsonHeaders(e.rawHeaders)},"exchange":${jsonNumber(e.exchange)}}\n`;
}

function httpResponseLine(e: HttpResponseEvent): string {
  return (
    `{"kind":"http.response","t":${jsonNumber(e.t)},"conn":${jsonNumber(e.conn)},"exchange":${jsonNumber(e.exchange)},"statusCode":${jsonNumber(e.statusCode)},` +
    `"statusMessage":${jsonString(e.statusMessage)},"httpVersion":${jsonString(e.httpVersion)},"rawHeaders":${jsonHeaders(e.rawHeaders)},` +
    `"requestBodyBytes":${jsonNumber(e.requestBodyBytes)},"responseBodyBytes":${jsonNumber(e.responseBodyBytes)},"ttfbMs":${jsonNumber(e.ttfbMs)},"totalMs":${jsonNumber(e.totalMs)},"complete":${e.complete}}\n`
  );
}

/*
 * Under load nearly every event is a `ws.frame` or a `ws.message` (each
 * WebSocket message makes one of each), and turning them into text and then
 * into UTF-8 was the proxy's largest single cost (README, Performance). Those
 * two kinds are written here as bytes, straight into the capture writer's
 * buffer, field by field in the order the tap builds them: the bytes of
 * JSON.stringify's text, with no string built per line. Close frames (with
 * their code, reason, idle times and paused sides) are rare and go through `captureLine`.
 * test/unit/capture-line.test.ts holds both paths to the same text with
 * every field, so a field added to either event type cannot be left out
 * unnoticed.
 *
 * Previews are written verbatim: they are base64 by the events' contract
 * (events.ts), which needs no JSON escaping. Checking that per line would
 * cost as much as writing it.
 */

/** Bytes a fast line needs besides its preview: 9 numbers of at most 24 characters, the keys and literals. */
const FIXED_ROOM = 512;

/** Bytes `writeFastLine` may need for `event`, or 0 when it has no fast form (write `captureLine(event)` instead). */
export function fastLineRoom(event: CaptureEvent): number {
  if (event.kind === 'http.request') return httpLineRoom(event.rawHeaders, event.method, event.url, event.httpVersion);
  if (event.kind === 'http.response') return httpLineRoom(event.rawHeaders, event.statusMessage, event.httpVersion, '');
  if (event.kind === 'ws.frame') {
    if (event.closeCode !== undefined || event.closeReason !== undefined || event.idle !== undefined || event.pausedSince !== undefined || event.dataId !== undefined) return 0;
    if ((event.opcode & 15) !== event.opcode) return 0;
  } else if (event.kind !== 'ws.message' || (event.opcode !== 1 && event.opcode !== 2)) {
    return 0;
  }
  return FIXED_ROOM + event.preview.length;
}

/**
 * Writes the line of an event that has a fast form (`fastLineRoom(event) > 0`)
 * into `target` from `at`, which has at least that many bytes free; returns
 * where the line ends.
 */
export function writeFastLine(event: CaptureEvent, target: Buffer, at: number): number {
  if (event.kind === 'ws.frame') return writeFrame(event, target, at);
  if (event.kind === 'ws.message') return writeMessage(event, target, at);
  if (event.kind === 'http.request') return writeRequest(event, target, at);
  if (event.kind === 'http.response') return writeResponse(event, target, at);
  throw new Error(`capture line: no fast form for a ${event.kind} event`);
}

const ascii = (text: string): Buffer => Buffer.from(text, 'latin1');

const FRAME_START = ascii('{"kind":"ws.frame","t":');
const CONN = ascii(',"conn":');
const FRAME_SIDE = { client: ascii(',"side":"client","index":'), upstream: ascii(',"side":"upstream","index":') };
const OFFSET = ascii(',"offset":');
const PREVIEW = ascii(',"preview":"');
const PREVIEW_END = [ascii('","previewTruncated":false}\n'), ascii('","previewTruncated":true}\n')] as const;
/** `,"opcode":…,"fin":…,…,"masked":…,"length":` for each opcode and flag combination, made when first needed. */
const FRAME_FLAGS: Array<Buffer | undefined> = [];

function writeFrame(e: FrameEvent, target: Buffer, at: number): number {
  at = put(target, at, FRAME_START);
  at = writeTime(target, at, e.t);
  at = put(target, at, CONN);
  at = writeNumber(target, at, e.conn);
  at = put(target, at, FRAME_SIDE[e.side]);
  at = writeNumber(target, at, e.index);
  at = put(target, at, OFFSET);
  at = writeNumber(target, at, e.offset);
  at = put(target, at, frameFlags(e));
  at = writeNumber(target, at, e.length);
  at = put(target, at, PREVIEW);
  at += target.write(e.preview, at, 'latin1');
  return put(target, at, PREVIEW_END[e.previewTruncated ? 1 : 0]);
}

function frameFlags(e: FrameEvent): Buffer {
  const key = (e.opcode << 5) | (e.fin ? 16 : 0) | (e.rsv1 ? 8 : 0) | (e.rsv2 ? 4 : 0) | (e.rsv3 ? 2 : 0) | (e.masked ? 1 : 0);
  return (FRAME_FLAGS[key] ??= ascii(
    `,"opcode":${e.opcode},"fin":${e.fin},"rsv1":${e.rsv1},"rsv2":${e.rsv2},"rsv3":${e.rsv3},"masked":${e.masked},"length":`,
  ));
}

const MESSAGE_START = ascii('{"kind":"ws.message","t":');
const TEND = ascii(',"tEnd":');
/** `,"side":…,"opcode":…,"firstFrame":` by side and opcode. */
const MESSAGE_SIDE = {
  client: [ascii(',"side":"client","opcode":1,"firstFrame":'), ascii(',"side":"client","opcode":2,"firstFrame":')],
  upstream: [ascii(',"side":"upstream","opcode":1,"firstFrame":'), ascii(',"side":"upstream","opcode":2,"firstFrame":')],
} as const;
const FRAMES = ascii(',"frames":');
const WIRE_LENGTH = ascii(',"wireLength":');
const COMPRESSED_SIZE = [ascii(',"compressed":false,"size":'), ascii(',"compressed":true,"size":')] as const;
const NULL = ascii('null');

function writeMessage(e: MessageEvent, target: Buffer, at: number): number {
  at = put(target, at, MESSAGE_START);
  at = writeTime(target, at, e.t);
  at = put(target, at, TEND);
  at = writeTime(target, at, e.tEnd);
  at = put(target, at, CONN);
  at = writeNumber(target, at, e.conn);
  at = put(target, at, MESSAGE_SIDE[e.side][e.opcode - 1] as Buffer);
  at = writeNumber(target, at, e.firstFrame);
  at = put(target, at, FRAMES);
  at = writeNumber(target, at, e.frames);
  at = put(target, at, WIRE_LENGTH);
  at = writeNumber(target, at, e.wireLength);
  at = put(target, at, COMPRESSED_SIZE[e.compressed ? 1 : 0]);
  at = e.size === null ? put(target, at, NULL) : writeNumber(target, at, e.size);
  at = put(target, at, PREVIEW);
  at += target.write(e.preview, at, 'latin1');
  return put(target, at, PREVIEW_END[e.previewTruncated ? 1 : 0]);
}

/*
 * Plain HTTP's two lines per exchange, as bytes too (text first, then
 * UTF-8, was about 9 % of the relay's busy samples in bench (e)). Only when
 * every string is plain (printable ASCII without '"' or '\\', as nearly
 * all of HTTP is): it is then copied byte for byte, needing no escape.
 * Anything else goes through `captureLine`.
 */

/** Bytes besides the strings: the keys, at most 8 numbers of at most 24 characters, literals. */
const HTTP_FIXED_ROOM = 512;
/** `["`, `","`, `"]` and a comma around each header's name and value. */
const HEADER_ROOM = 8;

function httpLineRoom(headers: RawHeaders, a: string, b: string, c: string): number {
  if (!isPlain(a) || !isPlain(b) || !isPlain(c)) return 0;
  let room = HTTP_FIXED_ROOM + a.length + b.length + c.length;
  for (let i = 0; i < headers.length; i++) {
    const [name, value] = headers[i] as readonly [string, string];
    if (!isPlain(name) || !isPlain(value)) return 0;
    room += name.length + value.length + HEADER_ROOM;
  }
  return room;
}

/** Printable ASCII without '"' and '\\': JSON's text of it is the string itself in quotes. */
function isPlain(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}

/** Copies a plain string (see isPlain) as its bytes: for short strings a loop is cheaper than a call into the buffer's encoder. */
function putPlain(target: Buffer, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) target[at + i] = text.charCodeAt(i);
  return at + text.length;
}

const REQUEST_START = ascii('{"kind":"http.request","t":');
const METHOD = ascii(',"method":"');
const URL_KEY = ascii('","url":"');
const HTTP_VERSION_AFTER_STRING = ascii('","httpVersion":"');
const RAW_HEADERS_AFTER_STRING = ascii('","rawHeaders":[');
const EXCHANGE_AFTER_HEADERS = ascii('],"exchange":');
const LINE_END = ascii('}\n');

function writeRequest(e: HttpRequestEvent, target: Buffer, at: number): number {
  at = put(target, at, REQUEST_START);
  at = writeTime(target, at, e.t);
  at = put(target, at, CONN);
  at = writeNumber(target, at, e.conn);
  at = put(target, at, METHOD);
  at = putPlain(target, at, e.method);
  at = put(target, at, URL_KEY);
  at = putPlain(target, at, e.url);
  at = put(target, at, HTTP_VERSION_AFTER_STRING);
  at = putPlain(target, at, e.httpVersion);
  at = put(target, at, RAW_HEADERS_AFTER_STRING);
  at = writeHeaders(target, at, e.rawHeaders);
  at = put(target, at, EXCHANGE_AFTER_HEADERS);
  at = writeNumber(target, at, e.exchange);
  return put(target, at, LINE_END);
}

const RESPONSE_START = ascii('{"kind":"http.response","t":');
const EXCHANGE = ascii(',"exchange":');
const STATUS_CODE = ascii(',"statusCode":');
const STATUS_MESSAGE = ascii(',"statusMessage":"');
const REQUEST_BODY_BYTES_AFTER_HEADERS = ascii('],"requestBodyBytes":');
const RESPONSE_BODY_BYTES = ascii(',"responseBodyBytes":');
const TTFB_MS = ascii(',"ttfbMs":');
const TOTAL_MS = ascii(',"totalMs":');
const COMPLETE_END = [ascii(',"complete":false}\n'), ascii(',"complete":true}\n')] as const;

function writeResponse(e: HttpResponseEvent, target: Buffer, at: number): number {
  at = put(target, at, RESPONSE_START);
  at = writeTime(target, at, e.t);
  at = put(target, at, CONN);
  at = writeNumber(target, at, e.conn);
  at = put(target, at, EXCHANGE);
  at = writeNumber(target, at, e.exchange);
  at = put(target, at, STATUS_CODE);
  at = writeNumber(target, at, e.statusCode);
  at = put(target, at, STATUS_MESSAGE);
  at = putPlain(target, at, e.statusMessage);
  at = put(target, at, HTTP_VERSION_AFTER_STRING);
  at = putPlain(target, at, e.httpVersion);
  at = put(target, at, RAW_HEADERS_AFTER_STRING);
  at = writeHeaders(target, at, e.rawHeaders);
  at = put(target, at, REQUEST_BODY_BYTES_AFTER_HEADERS);
  at = writeNumber(target, at, e.requestBodyBytes);
  at = put(target, at, RESPONSE_BODY_BYTES);
  at = writeNumber(target, at, e.responseBodyBytes);
  at = put(target, at, TTFB_MS);
  at = writeNumber(target, at, e.ttfbMs);
  at = put(target, at, TOTAL_MS);
  at = writeNumber(target, at, e.totalMs);
  return put(target, at, COMPLETE_END[e.complete ? 1 : 0]);
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COLON_BETWEEN = ascii('","');

function writeHeaders(target: Buffer, at: number, headers: RawHeaders): number {
  for (let i = 0; i < headers.length; i++) {
    const [name, value] = headers[i] as readonly [string, string];
    if (i > 0) target[at++] = COMMA;
    target[at++] = OPEN_BRACKET;
    target[at++] = QUOTE;
    at = putPlain(target, at, name);
    at = put(target, at, COLON_BETWEEN);
    at = putPlain(target, at, value);
    target[at++] = QUOTE;
    target[at++] = CLOSE_BRACKET;
  }
  return at;
}

function put(target: Buffer, at: number, bytes: Buffer): number {
  target.set(bytes, at);
  return at + bytes.length;
}

const ZERO = 0x30;

/** JSON's spelling of a number (non-finite: null), with a fast path for the small whole numbers counts and offsets are. */
function writeNumber(target: Buffer, at: number, value: number): number {
  if (value >= 0 && value <= 0x7fffffff && (value | 0) === value) return writeDigits(target, at, value);
  return at + target.write(Number.isFinite(value) ? String(value) : 'null', at, 'latin1');
}

/** A whole number from 0 to 2^31 - 1 in decimal. */
function writeDigits(target: Buffer, at: number, value: number): number {
  let end = at + 1;
  for (let rest = (value / 10) | 0; rest > 0; rest = (rest / 10) | 0) end++;
  for (let i = end - 1, rest = value; i >= at; i--) {
    const next = (rest / 10) | 0;
    target[i] = ZERO + rest - next * 10;
    rest = next;
  }
  return end;
}

/** Below 2^42 a double is exact to well under half a millisecond's thousandth, so a value on the µs grid prints as ms, '.', 3 digits. */
const TIME_FAST_LIMIT = 2 ** 42;
let lastMs = -1;
let lastMsDigits: Buffer = ascii('');

/**
 * JSON's spelling of a time: event times are epoch ms rounded to the µs
 * (session-clock.ts), whose shortest spelling is the whole ms, and the
 * thousandths without trailing zeros. The whole ms change once a
 * millisecond, so their digits are kept. Anything else: `writeNumber`.
 */
function writeTime(target: Buffer, at: number, value: number): number {
  if (!(value >= 0 && value < TIME_FAST_LIMIT)) return writeNumber(target, at, value);
  const thousandths = Math.round(value * 1000);
  if (thousandths / 1000 !== value) return writeNumber(target, at, value);
  const ms = Math.floor(value);
  if (ms !== lastMs) {
    lastMs = ms;
    lastMsDigits = ascii(String(ms));
  }
  at = put(target, at, lastMsDigits);
  let fraction = thousandths - ms * 1000;
  if (fraction === 0) return at;
  target[at++] = 0x2e;
  target[at++] = ZERO + ((fraction / 100) | 0);
  fraction %= 100;
  if (fraction === 0) return at;
  target[at++] = ZERO + ((fraction / 10) | 0);
  fraction %= 10;
  if (fraction === 0) return at;
  target[at++] = ZERO + fraction;
  return at;
}
