import type { RawHeaders } from './events.js';

/** Node's flat rawHeaders list as [name, value] pairs: case, order and duplicates survive. */
export function rawHeaderPairs(raw: readonly string[]): RawHeaders {
  const out: RawHeaders = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i] as string, raw[i + 1] as string]);
  return out;
}

/** Every value of a header, names compared case-insensitively, in order. */
export function headerValues(headers: RawHeaders, name: string): string[] {
  const lower = name.toLowerCase();
  return headers.filter(([n]) => n.length === lower.length && n.toLowerCase() === lower).map(([, v]) => v);
}

/** The first value of a header, or undefined. */
export function headerValue(headers: RawHeaders, name: string): string | undefined {
  const lower = name.toLowerCase();
  // Lengths first: the fold looks up several headers of every exchange, and most names differ in length.
  return headers.find(([n]) => n.length === lower.length && n.toLowerCase() === lower)?.[1];
}

/** A list-valued header's items (RFC 9110 5.6.1), every field line of it, trimmed and lower-cased: `Connection: keep-alive, Upgrade` -> keep-alive, upgrade. */
export function headerTokens(headers: RawHeaders, name: string): string[] {
  return headerValues(headers, name).flatMap((v) => v.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== ''));
}
