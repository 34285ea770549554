/**
 * The schema of a profile (DESIGN.md section 6), one function per section:
 * the top-level map, hops, their timeouts, heartbeat, app and proxy. Each
 * says which keys a section allows and requires and what each value must be,
 * using the node checks of yaml-node-checker.ts, and builds its part of the
 * Profile from what is valid. A section with problems still yields a value
 * with stand-ins (empty names, zero durations) so that checking goes on and
 * every problem is found; the parser throws before such a value is returned.
 */

import { isMap } from 'yaml';
import { TIMEOUT_MEASURES, type TimeoutMeasure } from './hop-timeout.js';
import type { Side } from '../capture/events.js';
import {
  HOP_PLACEMENTS,
  TIMEOUT_ACTIONS,
  type Heartbeat,
  type Hop,
  type HopPlacement,
  type Profile,
  type ProfileTimeout,
  type TimeoutAction,
} from './profile.js';
import {
  describe,
  isEmptyScalar,
  offsetOf,
  type Entries,
  type Entry,
  type MapContext,
  type NodeChecker,
} from './yaml-node-checker.js';

const PROFILE_NAME_RE = /^[a-z0-9][a-z0-9-]*$/;
const SIDES: readonly Side[] = ['client', 'upstream'];
const HEARTBEAT_KINDS: readonly Heartbeat['kind'][] = ['ws-ping', 'app-message'];

const TOP_KEYS = ['name', 'description', 'hops', 'heartbeat', 'app', 'proxy'] as const;
const HOP_KEYS = ['name', 'where', 'timeouts'] as const;
const TIMEOUT_KEYS = ['setting', 'after', 'measures', 'action', 'code'] as const;
const HEARTBEAT_KEYS = ['from', 'kind', 'interval', 'timeout'] as const;
const APP_KEYS = ['requires-headers', 'keepalive-timeout'] as const;
const PROXY_KEYS = ['listen', 'target'] as const;

/** The whole profile from the document's root node; undefined when the root is not a map. `file` becomes Profile.source. */
export function checkProfile(check: NodeChecker, root: unknown, file: string): Profile | undefined {
  if (!isMap(root)) {
    const what = root === null || root === undefined || isEmptyScalar(root) ? 'an empty file' : describe(root);
    check.report(root, 0, `a profile must be a map with name, description and hops, got ${what}`);
    return undefined;
  }
  const ctx: MapContext = { unknownIn: 'at the top level', missingIn: '' };
  const e = check.entries(root, TOP_KEYS, ['name', 'description', 'hops'], ctx);

  const name = check.string(e.name);
  // The name need not match the file's: users copy nginx.yaml to my-site.yaml and edit it.
  // Shipped profiles do match (test/unit/profile-loader.test.ts), since --profile NAME finds them by file name.
  if (name !== undefined && e.name && !PROFILE_NAME_RE.test(name)) {
    check.reportAt(
      e.name,
      `"name" must be lowercase letters, digits and dashes, starting with a letter or digit, got ${JSON.stringify(name)}`,
    );
  }

  const description = check.string(e.description);
  if (description !== undefined && e.description && description.includes('\n')) {
    check.reportAt(e.description, '"description" must be one line');
  }

  const hops = checkHops(check, e.hops);
  const profile: Profile = { name: name ?? '', description: description ?? '', hops: hops ?? [], source: file };

  const heartbeat = checkHeartbeat(check, e.heartbeat);
  if (heartbeat) profile.heartbeat = heartbeat;

  const app = checkApp(check, e.app);
  if (app) profile.app = app;

  const proxy = checkProxy(check, e.proxy);
  if (proxy) profile.proxy = proxy;
  return profile;
}

function checkHops(check: NodeChecker, entry: Entry | undefined): Hop[] | undefined {
  const seq = check.seq(entry);
  if (!seq) return undefined;
  const hops: Hop[] = [];
  const firstLine = new Map<string, number>();
  for (const item of seq.items) {
    if (!isMap(item)) {
      check.report(item, offsetOf(seq, 0), `each hop must be a map with name, where and timeouts, got ${describe(item)}`);
      continue;
    }
    const e = check.entries(item, HOP_KEYS, ['name', 'where'], { unknownIn: 'in a hop', missingIn: ' in a hop' });
    const name = check.string(e.name);
    if (name !== undefined && e.name) {
      const line = check.lineAt(check.valueOffset(e.name));
      const first = firstLine.get(name);
      if (first !== undefined) check.reportAt(e.name, `hop name ${JSON.stringify(name)} is used twice (first on line ${first})`);
      else firstLine.set(name, line);
    }
    const where = check.oneOf<HopPlacement>(e.where, HOP_PLACEMENTS);
    const timeouts = e.timeouts ? checkTimeouts(check, e.timeouts) : [];
    hops.push({ name: name ?? '', where: where ?? 'client-side', timeouts: timeouts ?? [] });
  }
  return hops;
}

function checkTimeouts(check: NodeChecker, entry: Entry): ProfileTimeout[] | undefined {
  const seq = check.seq(entry);
  if (!seq) return undefined;
  const timeouts: ProfileTimeout[] = [];
  for (const item of seq.items) {
    if (!isMap(item)) {
      check.report(
        item,
        offsetOf(seq, 0),
        `each timeout must be a map with setting, after, measures and action, got ${describe(item)}`,
      );
      continue;
    }
    const ctx: MapContext = { unknownIn: 'in a timeout', missingIn: ' in a timeout' };
    const e = check.entries(item, TIMEOUT_KEYS, ['setting', 'after', 'measures', 'action'], ctx);
    const timeout: ProfileTimeout = {
      setting: check.string(e.setting) ?? '',
      after: check.duration(e.after) ?? 0,
      measures: check.oneOf<TimeoutMeasure>(e.measures, TIMEOUT_MEASURES) ?? 'both-idle',
      action: check.oneOf<TimeoutAction>(e.action, TIMEOUT_ACTIONS) ?? 'unknown',
    };
    const code = check.code(e.code);
    if (code !== undefined) timeout.code = code;
    timeouts.push(timeout);
  }
  return timeouts;
}

function checkHeartbeat(check: NodeChecker, entry: Entry | undefined): Heartbeat | undefined {
  const e = sectionEntries(check, entry, HEARTBEAT_KEYS, ['from', 'kind', 'interval']);
  if (!e) return undefined;
  const heartbeat: Heartbeat = {
    from: check.oneOf<Side>(e.from, SIDES) ?? 'upstream',
    kind: check.oneOf<Heartbeat['kind']>(e.kind, HEARTBEAT_KINDS) ?? 'ws-ping',
    interval: check.duration(e.interval) ?? 0,
  };
  const timeout = check.duration(e.timeout);
  if (timeout !== undefined) heartbeat.timeout = timeout;
  return heartbeat;
}

function checkApp(check: NodeChecker, entry: Entry | undefined): NonNullable<Profile['app']> | undefined {
  const a = sectionEntries(check, entry, APP_KEYS, []);
  if (!a) return undefined;
  const app: NonNullable<Profile['app']> = {};
  const headers = check.headerList(a['requires-headers']);
  if (headers) app.requiresHeaders = headers;
  const keepAlive = check.duration(a['keepalive-timeout']);
  if (keepAlive !== undefined) app.keepAliveTimeout = keepAlive;
  return app;
}

function checkProxy(check: NodeChecker, entry: Entry | undefined): NonNullable<Profile['proxy']> | undefined {
  const p = sectionEntries(check, entry, PROXY_KEYS, []);
  if (!p) return undefined;
  const proxy: NonNullable<Profile['proxy']> = {};
  const listen = check.string(p.listen);
  if (listen !== undefined) proxy.listen = listen;
  const target = check.string(p.target);
  if (target !== undefined) proxy.target = target;
  return proxy;
}

/** The keys of a top-level section that must be a map (heartbeat, app, proxy); messages name it by its key. */
function sectionEntries<K extends string>(
  check: NodeChecker,
  entry: Entry | undefined,
  allowed: readonly K[],
  required: readonly K[],
): Entries<K> | undefined {
  const map = check.map(entry);
  if (!map || !entry) return undefined;
  return check.entries(map, allowed, required, { unknownIn: `in "${entry.key}"`, missingIn: ` in "${entry.key}"` });
}
