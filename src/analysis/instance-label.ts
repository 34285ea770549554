import type { CaptureEvent, ConnOpenEvent } from '../capture/events.js';
import type { ConnectionSummary } from './connection-tracker.js';
import { printable } from './printable.js';

/**
 * Several proxies' captures read as one (capture/capture-merge.ts, or a HAR
 * of them read back): which proxy a connection went through and its id
 * there, said the same way wherever a view names it: `edge-a#3` in the UI's
 * instance column, `[edge-a#3]` in log lines (`view --no-tui` and the UI's
 * log pane), `[edge-a]` on a session's own lines.
 */

/** `edge-a#3`; null for a connection of a single capture (no instance on its conn.open). */
export function instanceTag(open: Pick<ConnOpenEvent, 'instance' | 'instanceConn'>): string | null {
  if (open.instance === undefined) return null;
  return `${printable(open.instance)}${open.instanceConn !== undefined ? `#${open.instanceConn}` : ''}`;
}

/**
 * How a line about `event` is labelled: `#12 [edge-a#3] ...` for a
 * connection (after its own `#id`), `[edge-a] ...` for a session's own lines
 * when `sessions` (a merged read: a single proxy's session.start names its
 * instance too, and its lines stay as they are). Lines of a single capture
 * are left as they are.
 */
export function instanceLabel(event: CaptureEvent, summary: ConnectionSummary | null, sessions: boolean): (msg: string) => string {
  const tag = summary ? instanceTag(summary.open) : null;
  if (tag !== null) return (msg) => msg.replace(/^#(\d+) /, `#$1 [${tag}] `);
  if (sessions && !('conn' in event) && 'instance' in event && typeof event.instance === 'string') {
    const session = `[${printable(event.instance)}]`;
    return (msg) => `${session} ${msg}`;
  }
  return (msg) => msg;
}
