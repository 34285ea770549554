/** A parsed HTTP/1.x response head (status line and header fields). */
export interface HttpResponseHead {
  kind: 'response';
  /** "1.1" for "HTTP/1.1". */
  httpVersion: string;
  statusCode: number;
  reason: string;
  /** In arrival order, with the original case and duplicates kept. */
  rawHeaders: Array<[string, string]>;
  /** Bytes of the head including the final blank line. */
  headLength: number;
}

/** A parsed HTTP/1.x request head (request line and header fields). */
export interface HttpRequestHead {
  kind: 'request';
  method: string;
  target: string;
  httpVersion: string;
  rawHeaders: Array<[string, string]>;
  headLength: number;
}

export type HeadParseErrorCode = 'HEAD_TOO_LARGE' | 'MALFORMED_START_LINE' | 'MALFORMED_HEADER';

export type HeadParseResult<H> =
  | { state: 'incomplete' }
  | {
      state: 'complete';
      head: H;
      /** Bytes of the last pushed chunk after the head (a subarray, may be empty). */
      rest: Buffer;
    }
  | { state: 'error'; code: HeadParseErrorCode; message: string; /** byte offset in the stream */ offset: number };

export type HeadKind = 'request' | 'response';
export type HeadFor<K extends HeadKind> = K extends 'request' ? HttpRequestHead : HttpResponseHead;

export interface HttpHeadParserOptions {
  /** Largest head accepted, blank line included; default 65536. */
  maxHeadBytes?: number;
}

const DEFAULT_MAX_HEAD_BYTES = 65536;
const LF = 0x0a;
const CR = 0x0d;
const INCOMPLETE = { state: 'incomplete' } as const;
/** A parser starts with no storage: most heads arrive whole in one chunk and need none (a Buffer.alloc(0) per parser was 4 % of observing an exchange). */
const NO_STORAGE = Buffer.alloc(0);

/** RFC 9112 section 4: status-line = HTTP-version SP status-code SP [ reason-phrase ] (the last SP tolerated when missing). */
const STATUS_LINE = /^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/;
/** RFC 9112 section 3: request-line = method SP request-target SP HTTP-version; method = token. */
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^ ]+) HTTP\/(\d\.\d)$/;

type StartLine = { kind: 'response'; httpVersion: string; statusCode: number; reason: string } | { kind: 'request'; method: string; target: string; httpVersion: string };

/**
 * Incremental parser for one HTTP/1.x message head, fed with copies of the
 * relayed bytes. Never throws and never mutates a pushed chunk: it copies the
 * head bytes it needs into its own growing buffer (amortised doubling, so
 * 1-byte pushes stay linear) and searches only the bytes not yet searched.
 */
export class HttpHeadParser<K extends HeadKind> {
  readonly kind: K;
  private readonly maxHeadBytes: number;
  private storage: Buffer = NO_STORAGE;
  /** Bytes of `storage` in use: the head so far (never more than maxHeadBytes). */
  private stored = 0;
  /** `storage[0, searched)` has been searched for line feeds. */
  private searched = 0;
  /** Index of the LF ending the start line, -1 until seen. */
  private startLineEnd = -1;
  private startLine: StartLine | null = null;
  private seen = 0;
  private final: HeadParseResult<HeadFor<K>> | null = null;

  constructor(kind: K, options: HttpHeadParserOptions = {}) {
    this.kind = kind;
    const max = options.maxHeadBytes;
    this.maxHeadBytes = max !== undefined && Number.isFinite(max) && max >= 1 ? Math.floor(max) : DEFAULT_MAX_HEAD_BYTES;
  }

  /** Total bytes passed to push(), including any pushed after the result became final. */
  get bytesSeen(): number {
    return this.seen;
  }

  push(chunk: Buffer): HeadParseResult<HeadFor<K>> {
    this.seen += chunk.length;
    if (this.final !== null) return this.final;
    if (this.stored === 0) {
      const whole = this.wholeHead(chunk);
      if (whole !== null) return whole;
    }
    const storedBefore = this.stored;
    const taken = Math.min(chunk.length, this.maxHeadBytes - storedBefore);
    this.append(chunk.subarray(0, taken));
    const headLength = this.searchForEnd();
    if (this.final !== null) return this.final;
    if (headLength >= 0) {
      const text = this.storage.toString('latin1', 0, headLength);
      // Release the copy; the final result is all that is kept.
      this.storage = NO_STORAGE;
      this.final = this.finish(text, headLength, chunk.subarray(headLength - storedBefore));
      return this.final;
    }
    if (taken < chunk.length) {
      this.final = {
        state: 'error',
        code: 'HEAD_TOO_LARGE',
        message: `${this.kind} head exceeds ${this.maxHeadBytes} bytes without an empty line`,
        offset: this.maxHeadBytes,
      };
      return this.final;
    }
    return INCOMPLETE;
  }

  /**
   * The common case, a head that arrives whole in its first chunk, parsed
   * straight from the chunk: no copy. Null when the chunk does not hold a
   * whole head within the limit; the general path then starts over.
   */
  private wholeHead(chunk: Buffer): HeadParseResult<HeadFor<K>> | null {
    const limit = Math.min(chunk.length, this.maxHeadBytes);
    const startLineEnd = chunk.indexOf(LF);
    if (startLineEnd === -1 || startLineEnd >= limit) return null;
    for (let lf = chunk.indexOf(LF, startLineEnd + 1); lf !== -1 && lf < limit; lf = chunk.indexOf(LF, lf + 1)) {
      if (!(chunk[lf - 1] === LF || (chunk[lf - 1] === CR && chunk[lf - 2] === LF))) continue;
      const headLength = lf + 1;
      this.startLineEnd = startLineEnd;
      this.startLine = this.parseStartLine(chunk.toString('latin1', 0, startLineEnd));
      this.final = this.final ?? this.finish(chunk.toString('latin1', 0, headLength), headLength, chunk.subarray(headLength));
      return this.final;
    }
    return null;
  }

  private append(bytes: Buffer): void {
    if (bytes.length === 0) return;
    const needed = this.stored + bytes.length;
    if (needed > this.storage.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.maxHeadBytes, Math.max(needed, this.storage.length * 2, 1024)));
      this.storage.copy(grown, 0, 0, this.stored);
      this.storage = grown;
    }
    bytes.copy(this.storage, this.stored);
    this.stored = needed;
  }

  /**
   * Looks at each new line feed: the first ends the start line (validated at
   * once so garbage fails fast); a later one ending an empty line ends the head.
   * RFC 9112 section 2.2: "a recipient MAY recognize a single LF as a line
   * terminator and ignore any preceding CR". Returns the head length or -1.
   */
  private searchForEnd(): number {
    const view = this.storage.subarray(0, this.stored);
    for (let lf = view.indexOf(LF, this.searched); lf !== -1; lf = view.indexOf(LF, lf + 1)) {
      if (this.startLineEnd < 0) {
        this.startLineEnd = lf;
        this.startLine = this.parseStartLine(view.toString('latin1', 0, lf));
        if (this.startLine === null) return -1;
        continue;
      }
      const emptyLine = view[lf - 1] === LF || (view[lf - 1] === CR && view[lf - 2] === LF);
      if (emptyLine) return lf + 1;
    }
    this.searched = view.length;
    return -1;
  }

  private parseStartLine(raw: string): StartLine | null {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (this.kind === 'response') {
      const match = STATUS_LINE.exec(line);
      if (match !== null) {
        return { kind: 'response', httpVersion: match[1] ?? '', statusCode: Number(match[2]), reason: match[3] ?? '' };
      }
    } else {
      const match = REQUEST_LINE.exec(line);
      if (match !== null) {
        return { kind: 'request', method: match[1] ?? '', target: match[2] ?? '', httpVersion: match[3] ?? '' };
      }
    }
    const expected = this.kind === 'response' ? 'HTTP/x.y SP 3DIGIT [SP reason]' : 'METHOD SP target SP HTTP/x.y';
    this.final = {
      state: 'error',
      code: 'MALFORMED_START_LINE',
      message: `malformed ${this.kind} start line ${JSON.stringify(truncate(line))}: expected ${expected}`,
      offset: 0,
    };
    return null;
  }

  /** `text`: the whole head as latin1, blank line included. */
  private finish(text: string, headLength: number, rest: Buffer): HeadParseResult<HeadFor<K>> {
    const fields = parseFieldLines(text, this.startLineEnd + 1);
    if (!Array.isArray(fields)) return fields;
    const startLine = this.startLine;
    if (startLine === null) return { state: 'error', code: 'MALFORMED_START_LINE', message: 'start line missing', offset: 0 };
    const head: HttpRequestHead | HttpResponseHead =
      startLine.kind === 'response'
        ? { kind: 'response', httpVersion: startLine.httpVersion, statusCode: startLine.statusCode, reason: startLine.reason, rawHeaders: fields, headLength }
        : { kind: 'request', method: startLine.method, target: startLine.target, httpVersion: startLine.httpVersion, rawHeaders: fields, headLength };
    // The start line was parsed for this.kind, so the head matches K.
    return { state: 'complete', head: head as HeadFor<K>, rest };
  }
}

type HeaderError = { state: 'error'; code: 'MALFORMED_HEADER'; message: string; offset: number };

/** Parses the field lines from `start` up to the empty line that ends `text`. */
function parseFieldLines(text: string, start: number): Array<[string, string]> | HeaderError {
  const fields: Array<[string, string]> = [];
  let lineStart = start;
  for (;;) {
    const lf = text.indexOf('\n', lineStart);
    if (lf === -1) return fields;
    const lineEnd = text.charCodeAt(lf - 1) === CR ? lf - 1 : lf;
    if (lineEnd <= lineStart) return fields;
    const problem = addFieldLine(fields, text, lineStart, lineEnd);
    if (problem !== null) {
      const line = text.slice(lineStart, lineEnd);
      return { state: 'error', code: 'MALFORMED_HEADER', message: `${problem}: ${JSON.stringify(truncate(line))}`, offset: lineStart };
    }
    lineStart = lf + 1;
  }
}

const SP_CODE = 0x20;
const HTAB_CODE = 0x09;
const COLON_CODE = 0x3a;

/**
 * Adds the field line `text[start, end)` to `fields`; returns what is wrong
 * with it, or null. Works on indices into the head's text: only the name and
 * the value are cut out (every header of every exchange passes here).
 */
function addFieldLine(fields: Array<[string, string]>, text: string, start: number, end: number): string | null {
  const first = text.charCodeAt(start);
  if (first === SP_CODE || first === HTAB_CODE) {
    // RFC 9112 section 5.2: a recipient of obs-fold "MUST replace each
    // received obs-fold with one or more SP octets prior to interpreting the
    // field value".
    const previous = fields[fields.length - 1];
    if (previous === undefined) return 'continuation line before any header field';
    const continuation = trimmed(text, start, end);
    if (continuation !== '') previous[1] = previous[1] === '' ? continuation : `${previous[1]} ${continuation}`;
    return null;
  }
  let colon = -1;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === COLON_CODE) {
      colon = i;
      break;
    }
    // RFC 9112 section 5.1: "No whitespace is allowed between the field name and colon."
    if (c === SP_CODE || c === HTAB_CODE) {
      const later = text.indexOf(':', i);
      return later !== -1 && later < end ? 'whitespace in a header field name' : 'header line without a colon';
    }
  }
  if (colon === -1) return 'header line without a colon';
  if (colon === start) return 'header line with an empty field name';
  // RFC 9112 section 5.1: optional whitespace before and after the value is excluded from it.
  fields.push([text.slice(start, colon), trimmed(text, colon + 1, end)]);
  return null;
}

/** `text[start, end)` without OWS (SP / HTAB) at either end; other bytes are part of the value. */
function trimmed(text: string, start: number, end: number): string {
  while (start < end && (text.charCodeAt(start) === SP_CODE || text.charCodeAt(start) === HTAB_CODE)) start += 1;
  while (end > start && (text.charCodeAt(end - 1) === SP_CODE || text.charCodeAt(end - 1) === HTAB_CODE)) end -= 1;
  return text.slice(start, end);
}

function truncate(text: string): string {
  return text.length > 80 ? `${text.slice(0, 80)}...` : text;
}

const VISIBLE_ASCII = /^[\x21-\x7e]+$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

/**
 * What a strict HTTP/1.1 server (nginx, Node's llhttp) refuses in a request
 * head that the tolerant parser above reads: a request target that is not
 * visible ASCII (RFC 9112 3.2, RFC 3986: no raw control or non-ASCII bytes),
 * a field name that is not a token, a control character in a field value
 * (RFC 9110 5.5). Null when the head is clean.
 */
export function strictRequestHeadProblem(head: HttpRequestHead): string | null {
  if (!VISIBLE_ASCII.test(head.target)) return `request target ${JSON.stringify(truncate(head.target))} has bytes outside visible ASCII`;
  for (const [name, value] of head.rawHeaders) {
    if (!TOKEN.test(name)) return `header name ${JSON.stringify(truncate(name))} is not a token`;
    if (CONTROL.test(value)) return `header ${JSON.stringify(truncate(name))} has a control character in its value`;
  }
  return null;
}
