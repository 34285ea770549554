/**
 * One thing wstap concluded about a connection, with what it rests on: a
 * timeout verdict, a heartbeat warning, a handshake rule. The HAR's
 * `_wstap.diagnosis`, the log and the UI's detail view all show these.
 */
export type FindingSeverity = 'info' | 'warning' | 'error';

export interface Finding {
  /** Stable, for scripts: e.g. `timeout.match`, `handshake.missing-upgrade`. */
  id: string;
  severity: FindingSeverity;
  message: string;
  /** The observed facts it rests on, each a short line. */
  evidence: string[];
  /** What to change (an nginx directive, a profile value), or '' when there is nothing to change. */
  fix: string;
  /** On `timeout.match` only: the one hop and setting the verdict names (for scripts and metrics labels). */
  timeout?: { hop: string; setting: string };
}
