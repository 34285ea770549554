/**
 * What `wstap probe` and a proxy started with `--probe-token` say to each
 * other: request headers that ask the proxy to answer a WebSocket itself
 * (and how to behave on it), and the report of what the proxy's end saw. Both
 * sides import these names and types from here, so they cannot drift apart.
 * Pure: no sockets.
 */

/** Carries the token; a request with it is answered by wstap, never forwarded. */
export const PROBE_TOKEN_HEADER = 'X-Wstap-Probe';
/** `silent`, `server-messages` or `server-pings`: what wstap's end does on the connection. */
export const PROBE_MODE_HEADER = 'X-Wstap-Probe-Mode';
/** Seconds between wstap's messages or pings in the server-* modes. */
export const PROBE_INTERVAL_HEADER = 'X-Wstap-Probe-Interval';
/** The probe run this connection belongs to (the key of its report). */
export const PROBE_RUN_HEADER = 'X-Wstap-Probe-Run';
/** The variant's name, echoed back in the report. */
export const PROBE_VARIANT_HEADER = 'X-Wstap-Probe-Variant';
/** On a plain GET with the token: "send me the report of this run". */
export const PROBE_REPORT_HEADER = 'X-Wstap-Probe-Report';

export type ProbeMode = 'silent' | 'server-messages' | 'server-pings';
export const PROBE_MODES: readonly ProbeMode[] = ['silent', 'server-messages', 'server-pings'];

/** Run ids and variant names: short and plain, so they are safe in a header, a log line and a map key. */
export const PROBE_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/** The fastest and slowest interval wstap's end accepts (a probe asking for more is refused with 400). */
export const PROBE_INTERVAL_LIMITS = { minSeconds: 0.05, maxSeconds: 3600 };

/** How one end of a connection ended, as the proxy saw it. */
export type ProxyEndKind = 'close-frame' | 'fin' | 'rst' | 'error';

export interface ProxyEndEvent {
  kind: ProxyEndKind;
  /** `client`: it came from the path in front of wstap; `proxy`: wstap's end closed first (a protocol error from the probe's side). */
  side: 'client' | 'proxy';
  /** Wall-clock epoch ms on the proxy's clock. */
  t: number;
  code?: number;
  reason?: string;
  /** A socket error's code (kind `error`). */
  error?: string;
}

/** One probe connection as wstap's end saw it. */
export interface ProbeConnectionReport {
  variant: string;
  mode: ProbeMode;
  /** wstap's connection id: the same connection in the capture. */
  conn: number;
  /** When wstap sent its 101 (epoch ms, proxy's clock). */
  upgradedAt: number;
  /** Close evidence in the order seen; empty while the connection is open. */
  ends: ProxyEndEvent[];
  /** When the connection was gone at wstap's end, or null while open. */
  closedAt: number | null;
}

export interface ProbeRunReport {
  run: string;
  connections: ProbeConnectionReport[];
}
