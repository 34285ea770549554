import type { Side } from '../capture/events.js';

/**
 * The app's heartbeat as a profile describes it: who pings whom, how often,
 * and how long the pinger waits before giving up (DESIGN.md section 6).
 */
export interface Heartbeat {
  from: Side;
  /** A WebSocket ping frame, or a message of the app's own protocol (Socket.IO "2", Mattermost's JSON ping). */
  kind: 'ws-ping' | 'app-message';
  /** Seconds. */
  interval: number;
  /** Seconds the pinger waits for an answer; absent when the app does not give up. */
  timeout?: number;
}
