import net from 'node:net';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { PayloadMode } from '../har/har-types.js';
import { UsageError } from './usage-error.js';

export interface ListenAddress {
  host: string;
  port: number;
}

/** `PORT`, `HOST:PORT` or `[V6]:PORT`; a bare port means loopback. */
export function parseListen(text: string): ListenAddress {
  const bare = /^\d+$/.test(text);
  const match = bare ? null : /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text);
  const host = bare ? '127.0.0.1' : (match?.[1] ?? match?.[2]);
  const portText = bare ? text : match?.[3];
  const port = Number(portText);
  if (!host || !portText || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`--listen "${text}" is not HOST:PORT (e.g. 127.0.0.1:8066)`);
  }
  return { host, port };
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
