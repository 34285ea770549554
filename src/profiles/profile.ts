import type { HopPlacement, HopTimeout, TimeoutAction, TimeoutMeasure } from './hop-timeout.js';
import type { Heartbeat } from './heartbeat.js';

/**
 * A profile: the hops in front of and behind wstap, what each does to quiet
 * connections, and the app's heartbeat (DESIGN.md section 6). Loaded from
 * YAML in profiles/ (see profile-loader.ts), validated before anything starts.
 */

export { HOP_PLACEMENTS, TIMEOUT_ACTIONS, type HopPlacement, type TimeoutAction } from './hop-timeout.js';

export interface ProfileTimeout {
  /** The hop's own name for the setting, e.g. `proxy_read_timeout`. */
  setting: string;
  /** Seconds (profiles write durations: 60, 60s, 1m30s, 250ms). */
  after: number;
  measures: TimeoutMeasure;
  action: TimeoutAction;
  /** The close code of a close-frame action, or the HTTP status of an http-status action. */
  code?: number;
}

export interface Hop {
  name: string;
  where: HopPlacement;
  timeouts: ProfileTimeout[];
}

export type { Heartbeat } from './heartbeat.js';

export interface Profile {
  name: string;
  description: string;
  hops: Hop[];
  heartbeat?: Heartbeat;
  app?: {
    /** Request headers the app needs from the proxy in front (X-Forwarded-For, X-Forwarded-Proto, Host). */
    requiresHeaders?: string[];
    /** Seconds the app keeps an idle keep-alive connection open (Node's server.keepAliveTimeout, 5 s by default): http.keepalive-race checks against it. */
    keepAliveTimeout?: number;
  };
  /** Defaults for `wstap proxy`; command-line flags override them. */
  proxy?: { listen?: string; target?: string };
  /** Where it was loaded from (a shipped profile's name or a file path). */
  source: string;
}

/** The profile's timeouts as the countdowns and verdicts use them. */
export function hopTimeouts(profile: Profile): HopTimeout[] {
  return profile.hops.flatMap((hop) =>
    hop.timeouts.map((t) => ({
      hop: hop.name,
      setting: t.setting,
      seconds: t.after,
      measures: t.measures,
      where: hop.where,
      action: t.action,
      ...(t.code !== undefined ? { code: t.code } : {}),
    })),
  );
}
