import type { ProbeConnectionReport, ProbeMode } from '../relay/probe-protocol.js';

/**
 * The probe's variants and what each one's outcome looks like. Each variant
 * is one WebSocket through the path, with one kind of traffic (or none), held
 * until something cuts it or --max passes: which of them are cut, and when,
 * says what the path's timers count. Pure data.
 */

export type VariantName = 'silent' | 'client-messages' | 'client-pings' | 'server-messages' | 'server-pings';

export interface ProbeVariant {
  name: VariantName;
  /** What the probe sends every --interval: nothing, a small text message, or a ping. */
  client: 'nothing' | 'message' | 'ping';
  /** What wstap's end does (asked by header); only with --token, the app's behaviour being unknown otherwise. */
  serverMode: ProbeMode;
  /** Needs wstap's end (--token): the app would not send on request. */
  needsToken: boolean;
  /** In words, for the report: "a message from the client every 5 s". */
  traffic: string;
}

export const VARIANTS: readonly ProbeVariant[] = [
  { name: 'silent', client: 'nothing', serverMode: 'silent', needsToken: false, traffic: 'no traffic' },
  { name: 'client-messages', client: 'message', serverMode: 'silent', needsToken: false, traffic: 'a message from the client' },
  { name: 'client-pings', client: 'ping', serverMode: 'silent', needsToken: false, traffic: 'a ping from the client (answered by a pong)' },
  { name: 'server-messages', client: 'nothing', serverMode: 'server-messages', needsToken: true, traffic: 'a message from the server' },
  { name: 'server-pings', client: 'nothing', serverMode: 'server-pings', needsToken: true, traffic: 'a ping from the server (answered by a pong)' },
];

/** The variants a run uses: the server-* ones only when wstap's end answers (--token). */
export function variantsFor(withToken: boolean): ProbeVariant[] {
  return VARIANTS.filter((v) => withToken || !v.needsToken);
}

/** How a connection ended at one end (the --json `kind`). */
export type EndKind = 'close-frame' | 'fin' | 'rst' | 'http' | 'error' | 'open';

/** How the probe's connection ended, at the probe. */
export interface ClientEnd {
  kind: EndKind;
  /** The close frame's code, or the HTTP status of a refused handshake. */
  code?: number;
  reason?: string;
  /** A socket or handshake error's code (kind `error`). */
  error?: string;
}

/** One variant's run, as the runner hands it to the verdict. */
export interface VariantOutcome {
  name: VariantName;
  /** The handshake completed (101): the connection was held; false: it failed at the handshake (http or error). */
  opened: boolean;
  /** Wall-clock epoch ms when the probe's 101 arrived (or when it gave up on the handshake). */
  openedAt: number;
  /** From the 101 to the end at the probe (the silence a timer saw on the silent variant), in seconds. */
  livedSeconds: number;
  clientEnd: ClientEnd;
  /** What wstap's end saw (with --token, once the report came), or null. */
  proxy: ProbeConnectionReport | null;
}
