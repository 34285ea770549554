import { createHash } from 'node:crypto';

/** One extension from a Sec-WebSocket-Extensions list, with its parameters as written. */
export interface ExtensionOffer {
  name: string;
  /** Parameter values after quoted-string unescaping; `true` for a parameter without "=". */
  params: Record<string, string | true>;
}

/** The permessage-deflate parameters a server accepted (RFC 7692 section 7). */
export interface DeflateParameters {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  /** 8..15; 15 when the server did not send the parameter. */
  serverMaxWindowBits: number;
  /** 8..15; 15 when the server did not send the parameter. */
  clientMaxWindowBits: number;
}

/** RFC 6455 section 1.3: the GUID concatenated with Sec-WebSocket-Key. */
const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** RFC 7692 section 7.1.2: without a *_max_window_bits parameter the window is 2^15 bytes. */
const DEFAULT_WINDOW_BITS = 15;

/**
 * Parse the values of all Sec-WebSocket-Extensions headers.
 *
 * RFC 6455 section 9.1:
 *   extension-list = 1#extension
 *   extension = extension-token *( ";" extension-param )
 *   extension-param = token [ "=" (token | quoted-string) ]
 *     ;When using the quoted-string syntax variant, the value
 *     ;after quoted-string unescaping MUST conform to the 'token' ABNF.
 *
 * Tolerant: a recorder must show what a peer sent even when it is wrong, so
 * every problem is reported and parsing resumes at the next list element.
 */
export function parseExtensions(values: string[]): { extensions: ExtensionOffer[]; problems: string[] } {
  const extensions: ExtensionOffer[] = [];
  const problems: string[] = [];
  values.forEach((value, valueIndex) => {
    const report = (at: number, what: string): void => {
      problems.push(`Sec-WebSocket-Extensions value ${valueIndex + 1}, character ${at}: ${what}`);
    };
    parseExtensionList(value, extensions, report);
  });
  return { extensions, problems };
}

/**
 * The permessage-deflate parameters the server accepted, from the response's
 * extension header values; null when not negotiated.
 *
 * An unusable window-bits value falls back to 15: a 32 KiB window inflates any
 * stream made with a smaller window, so the widest choice is always safe for
 * a recorder that only decodes.
 */
export function negotiatedDeflate(responseValues: string[]): DeflateParameters | null {
  const { extensions } = parseExtensions(responseValues);
  const accepted = extensions.find((extension) => extension.name.toLowerCase() === 'permessage-deflate');
  if (accepted === undefined) return null;
  const result: DeflateParameters = {
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    serverMaxWindowBits: DEFAULT_WINDOW_BITS,
    clientMaxWindowBits: DEFAULT_WINDOW_BITS,
  };
  for (const [key, value] of Object.entries(accepted.params)) {
    switch (key.toLowerCase()) {
      case 'server_no_context_takeover':
        result.serverNoContextTakeover = true;
        break;
      case 'client_no_context_takeover':
        result.clientNoContextTakeover = true;
        break;
      case 'server_max_window_bits':
        result.serverMaxWindowBits = windowBitsOrDefault(value);
        break;
      case 'client_max_window_bits':
        result.clientMaxWindowBits = windowBitsOrDefault(value);
        break;
      default:
        // An unknown parameter makes the client fail the connection (RFC 7692
        // section 5); that is the peers' business, the recorder just decodes.
        break;
    }
  }
  return result;
}

/** RFC 6455 section 4.2.2: base64 of the SHA-1 of the key concatenated with the GUID. */
export function webSocketAccept(key: string): string {
  return createHash('sha1').update(key + WEBSOCKET_GUID, 'latin1').digest('base64');
}

/** RFC 7692 section 7.1.2.1 allows a decimal integer from 8 to 15 inclusive. */
function windowBitsOrDefault(value: string | true): number {
  return value !== true && /^(?:[89]|1[0-5])$/.test(value) ? Number(value) : DEFAULT_WINDOW_BITS;
}

type Report = (at: number, what: string) => void;

function parseExtensionList(text: string, into: ExtensionOffer[], report: Report): void {
  let pos = 0;
  while (pos < text.length) {
    pos = skipWhitespace(text, pos);
    if (pos >= text.length) break;
    // RFC 9110 section 5.6.1: "A recipient MUST parse and ignore a reasonable
    // number of empty list elements".
    if (text[pos] === ',') {
      pos += 1;
      continue;
    }
    const nameEnd = scanToken(text, pos);
    if (nameEnd === pos) {
      report(pos, `expected an extension name, found ${JSON.stringify(text[pos])}`);
      pos = skipToNextElement(text, pos);
      continue;
    }
    const offer: ExtensionOffer = { name: text.slice(pos, nameEnd), params: Object.create(null) as Record<string, string | true> };
    into.push(offer);
    pos = parseParams(text, nameEnd, offer.params, report);
  }
}

/** Parses `*( ";" extension-param )`; returns the position of the "," ending the element, or the end. */
function parseParams(text: string, start: number, params: Record<string, string | true>, report: Report): number {
  let pos = start;
  for (;;) {
    pos = skipWhitespace(text, pos);
    if (pos >= text.length || text[pos] === ',') return pos;
    if (text[pos] !== ';') {
      report(pos, `expected ";" or "," but found ${JSON.stringify(text[pos])}`);
      return skipToNextElement(text, pos);
    }
    pos = skipWhitespace(text, pos + 1);
    const nameEnd = scanToken(text, pos);
    if (nameEnd === pos) {
      report(pos, 'expected a parameter name');
      return skipToNextElement(text, pos);
    }
    const name = text.slice(pos, nameEnd);
    let value: string | true = true;
    pos = skipWhitespace(text, nameEnd);
    if (text[pos] === '=') {
      pos = skipWhitespace(text, pos + 1);
      if (text[pos] === '"') {
        const quoted = readQuotedString(text, pos);
        if (quoted === null) {
          report(pos, `unterminated quoted value for parameter "${name}"`);
          return text.length;
        }
        value = quoted.value;
        if (scanToken(value, 0) !== value.length || value.length === 0) {
          report(pos, `quoted value of parameter "${name}" is not a token after unescaping`);
        }
        pos = quoted.end;
      } else {
        const valueEnd = scanToken(text, pos);
        if (valueEnd === pos) {
          report(pos, `expected a value for parameter "${name}"`);
          return skipToNextElement(text, pos);
        }
        value = text.slice(pos, valueEnd);
        pos = valueEnd;
      }
    }
    // RFC 7692 section 5 declines an offer that repeats a parameter name; record it and go on.
    if (Object.prototype.hasOwnProperty.call(params, name)) {
      report(pos, `parameter "${name}" repeated; keeping the first value`);
    } else {
      params[name] = value;
    }
  }
}

/** Reads a quoted-string starting at the opening quote; null when it never closes. */
function readQuotedString(text: string, start: number): { value: string; end: number } | null {
  let value = '';
  for (let pos = start + 1; pos < text.length; pos += 1) {
    const char = text[pos];
    if (char === '"') return { value, end: pos + 1 };
    // RFC 9110 section 5.6.4: quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
    if (char === '\\' && pos + 1 < text.length) pos += 1;
    value += text[pos];
  }
  return null;
}

/** Skips to the next "," that is not inside a quoted-string (or to the end). */
function skipToNextElement(text: string, start: number): number {
  let inQuotes = false;
  for (let pos = start; pos < text.length; pos += 1) {
    const char = text[pos];
    if (inQuotes && char === '\\') pos += 1;
    else if (char === '"') inQuotes = !inQuotes;
    else if (char === ',' && !inQuotes) return pos;
  }
  return text.length;
}

function skipWhitespace(text: string, start: number): number {
  let pos = start;
  while (pos < text.length && (text[pos] === ' ' || text[pos] === '\t')) pos += 1;
  return pos;
}

/** RFC 9110 section 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
const TOKEN_CHAR = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]$/;

function scanToken(text: string, start: number): number {
  let pos = start;
  while (pos < text.length && TOKEN_CHAR.test(text[pos] ?? '')) pos += 1;
  return pos;
}
