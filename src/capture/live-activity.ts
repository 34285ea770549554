import type { Side } from './events.js';

/**
 * What the relay knows right now about one live connection: the exact time
 * of each side's last byte and the bytes so far. Displays read it on their
 * own timer; a recording does not have it (its events are what it knows).
 */
export interface LiveActivity {
  lastByteAt: Readonly<Record<Side, number>>;
  bytes: Readonly<{ fromClient: number; fromUpstream: number }>;
}
