import net from 'node:net';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { PayloadMode } from '../har/har-types.js';
import { MAX_UNIX_PATH_BYTES, type ListenEndpoint } from '../relay/listen-endpoint.js';
import { UsageError } from './usage-error.js';

/**
 * `PORT`, `HOST:PORT`, `[V6]:PORT` (a bare port means loopback) or
 * `unix:PATH`, a unix socket file (nginx: `proxy_pass http://unix:PATH:`).
 */
export function parseListen(text: string): ListenEndpoint {
  if (text.startsWith('unix:')) {
    const socketPath = text.slice('unix:'.length);
    if (socketPath === '') throw new UsageError(`--listen "${text}" names no socket file (e.g. unix:/run/wstap/wstap.sock)`);
    const bytes = Buffer.byteLength(socketPath);
    if (bytes > MAX_UNIX_PATH_BYTES) {
      throw new UsageError(`--listen "${text}": a unix socket path may have at most ${MAX_UNIX_PATH_BYTES} bytes, this one has ${bytes}`);
    }
    return { kind: 'unix', path: socketPath };
  }
  const bare = /^\d+$/.test(text);
  const match = bare ? null : /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text);
  const host = bare ? '127.0.0.1' : (match?.[1] ?? match?.[2]);
  const portText = bare ? text : match?.[3];
  const port = Number(portText);
  if (!host || !portText || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`--listen "${text}" is not HOST:PORT or unix:PATH (e.g. 127.0.0.1:8066)`);
  }
  return { kind: 'tcp', host, port };
}

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
LOOPBACK.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (net.isIPv4(host)) return LOOPBACK.check(host, 'ipv4');
  if (net.isIPv6(host)) return LOOPBACK.check(host, 'ipv6');
  return false;
}

/**
 * The one warning for an address other than loopback (--listen, --metrics):
 * `exposes` says what anyone who can reach it gets. Null for loopback.
 */
export function notLoopbackWarning(host: string, exposes: string): string | null {
  return isLoopback(host) ? null : `listening on ${host}, not loopback: anyone who can reach this address can ${exposes}`;
}

export function parseNonNegativeNumber(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0) {
    throw new UsageError(`${flag} "${text}" is not a non-negative number`);
  }
  return value;
}

export function parseNonNegativeInteger(flag: string, text: string): number {
  const value = parseNonNegativeNumber(flag, text);
  if (!Number.isInteger(value)) throw new UsageError(`${flag} "${text}" is not a whole number`);
  return value;
}

/** `--port N` (repeatable): TCP ports 1-65535. */
export function parseServerPorts(values: unknown): number[] {
  const texts = values === undefined ? [] : Array.isArray(values) ? values : [values];
  return texts.map((value) => {
    const text = String(value);
    const port = parseNonNegativeInteger('--port', text);
    if (port < 1 || port > 65535) throw new UsageError(`--port "${text}" is not a TCP port (1-65535)`);
    return port;
  });
}

export function parseChoice<T extends string>(flag: string, text: string, choices: readonly T[]): T {
  if ((choices as readonly string[]).includes(text)) return text as T;
  throw new UsageError(`${flag} "${text}" is not one of ${choices.join(', ')}`);
}

export const PAYLOAD_MODES: readonly PayloadMode[] = ['none', 'preview'];

/** `--payloads MODE`; the removed `full` gets a line saying why and what to do instead. */
export function parsePayloadMode(value: unknown): PayloadMode {
  if (value === 'full') {
    throw new UsageError(
      '--payloads full was removed: a HAR holds what the capture holds, the first --preview-bytes of each message (a longer one is marked with _size); record with a larger --preview-bytes for whole messages',
    );
  }
  return parseChoice('--payloads', typeof value === 'string' ? value : 'preview', PAYLOAD_MODES);
}

export interface ParsedArgs {
  values: Record<string, string | boolean | Array<string | boolean> | undefined>;
  positionals: string[];
}

/** node:util parseArgs, strict, with its errors turned into one-line usage errors. */
export function parseArgsStrict(args: string[], options: NonNullable<ParseArgsConfig['options']>): ParsedArgs {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    // Node's messages are long and suggest "--" tricks; one plain line is enough.
    const message = (err as Error).message.split('\n')[0] ?? 'bad arguments';
    const ambiguous = /^Option '(-[-\w]+)[^']*' argument is ambiguous/.exec(message);
    if (ambiguous) throw new UsageError(`${ambiguous[1]} needs a value; for one that starts with "-", write ${ambiguous[1]}=VALUE`);
    throw new UsageError(message.replace(/\. To specify.*$/, ''));
  }
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/**
 * A byte count: `10M`, `512K`, `1G`, `1.5G`, plain bytes; K, M, G, T are
 * powers of 1024 (an optional `B` or `iB` after them is accepted).
 */
export function parseByteSize(flag: string, text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  const unit = SIZE_UNITS[(match?.[2] ?? '').toLowerCase()];
  if (!match || unit === undefined) {
    throw new UsageError(`${flag} "${text}" is not a size (bytes, or with K, M, G: e.g. 512K, 10M, 1G)`);
  }
  return Math.floor(Number(match[1]) * unit);
}

/** A byte count as people read it: `812 B`, `64.0 KiB`, `1.2 GiB`. */
export function formatByteSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
