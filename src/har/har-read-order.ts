import type { CaptureEvent } from '../capture/events.js';
import type { Connection } from './har-read-entries.js';

/**
 * The order of the events read from a HAR, as a capture file has them: by
 * time across all connections and the session's own events, so `wstap view`
 * and the analysis folds read them as they would read a capture.
 */

/** Rank breaks ties at one instant: a connection opens before, and closes after, anything else then. */
function rankOf(event: CaptureEvent): number {
  if (event.kind === 'conn.open') return 0;
  if (event.kind === 'conn.close') return 2;
  return 1;
}

/**
 * All connections' events and the session's own (capture gaps) by time,
 * stable (file order breaks ties). Each connection's conn.open already has
 * its earliest time and conn.close its latest, so they stay first and last
 * for it.
 */
export function orderEvents(connections: Connection[], sessionEvents: CaptureEvent[]): CaptureEvent[] {
  const all = [...connections.flatMap((c) => c.events), ...sessionEvents];
  return all
    .map((event, seq) => ({ event, seq }))
    .sort((a, b) => a.event.t - b.event.t || rankOf(a.event) - rankOf(b.event) || a.seq - b.seq)
    .map((x) => x.event);
}
