import { describe, expect, it } from 'vitest';
import type { Heartbeat } from '../../src/profiles/heartbeat.js';
import { heartbeatFindings, heartbeatSetupFindings, type HeartbeatFacts } from '../../src/analysis/heartbeat-rules.js';
import type { HopTimeout } from '../../src/profiles/hop-timeout.js';
import { PingPairing } from '../../src/analysis/ping-pairing.js';

const UP = 1_000_000; // the 101, in capture ms
const s = (seconds: number): number => UP + seconds * 1000;

const nginx60: HopTimeout = { hop: 'nginx', setting: 'proxy_read_timeout', seconds: 60, measures: 'both-idle', where: 'client-side', action: 'fin' };
const nginx2: HopTimeout = { ...nginx60, seconds: 2 };
const gcpLifetime: HopTimeout = { hop: 'gcp', setting: 'backend timeout', seconds: 1, measures: 'lifetime' };
const mattermost: Heartbeat = { from: 'upstream', kind: 'ws-ping', interval: 60, timeout: 100 };

function facts(pings: PingPairing, fields: Partial<HeartbeatFacts> = {}): HeartbeatFacts {
  return { pings, upgradedAt: UP, endAt: s(30), closed: true, closedByTimeout: null, ...fields };
}

const none = { timeouts: [] as HopTimeout[], heartbeat: null };
const ids = (list: readonly { id: string }[]): string[] => list.map((f) => f.id);

/** Pings from `from` at the given seconds; each answered after `rttMs` unless listed in `unanswered`. */
function pinging(from: 'client' | 'upstream', at: number[], rttMs: number, unanswered: number[] = []): PingPairing {
  const p = new PingPairing();
  const answerer = from === 'upstream' ? 'client' : 'upstream';
  for (const t of at) {
    p.ping(from, `hb${t}`, s(t));
    if (!unanswered.includes(t)) p.pong(answerer, `hb${t}`, s(t) + rttMs);
  }
  return p;
}

describe('heartbeatFindings', () => {
  it('says nothing about a connection that never upgraded, or a healthy heartbeat', () => {
    expect(heartbeatFindings(facts(pinging('upstream', [1, 2, 3], 5), { upgradedAt: null }), none)).toEqual([]);
    expect(heartbeatFindings(facts(pinging('upstream', [1, 2, 3, 4], 5)), { timeouts: [nginx60], heartbeat: null })).toEqual([]);
  });

  it('pings the client never answered: how many, since when, how long they waited, and who should answer', () => {
    const found = heartbeatFindings(facts(pinging('upstream', [1, 2, 3, 4, 5], 0, [1, 2, 3, 4, 5]), { endAt: s(20) }), none);
    expect(ids(found)).toEqual(['heartbeat.unanswered']);
    const f = found[0];
    expect(f?.severity).toBe('warning');
    expect(f?.message).toBe('5 of 5 ping(s) from the upstream got no pong from the client');
    expect(f?.evidence).toEqual([
      'upstream sent 5 ping(s) from +1.00 s to +5.00 s after the upgrade; mean gap 1.00 s, longest 1.00 s',
      '0 answered',
      "5 still waiting at the close, the oldest for 19.00 s (a pong is expected within 10s, wstap's default (no profile heartbeat from the upstream))",
    ]);
    expect(f?.fix).toMatch(/^the client side does not answer the app's pings: browsers answer pings themselves/);
  });

  it('a ping still inside its wait is not unanswered, nor one answered together with a later ping (RFC 6455 5.5.3)', () => {
    expect(heartbeatFindings(facts(pinging('client', [25], 0, [25]), { endAt: s(30) }), none)).toEqual([]);
    expect(heartbeatFindings(facts(pinging('client', [1, 2, 3], 4, [2])), none)).toEqual([]);
  });

  it('pings pushed out by 16 newer ones, and the coalesced ones said apart', () => {
    const p = new PingPairing();
    for (let i = 0; i < 18; i++) p.ping('client', `c${i}`, s(i));
    // c0 and c1 were pushed out; c2..c16 are answered together with c17.
    p.pong('upstream', 'c17', s(17) + 4);
    const found = heartbeatFindings(facts(p), none);
    expect(found[0]?.message).toBe('2 of 18 ping(s) from the client got no pong from the upstream');
    expect(found[0]?.evidence).toEqual([
      'client sent 18 ping(s) from +0.00 s to +17.00 s after the upgrade; mean gap 1.00 s, longest 1.00 s',
      '1 answered, the slowest after 4.0 ms',
      '15 more answered together with a later ping (RFC 6455 5.5.3 allows that; not counted)',
      '2 given up on: more than 16 newer pings were waiting',
    ]);
    expect(found[0]?.fix).toMatch(/^the app \(or a hop between wstap and it\) does not answer the client's pings/);
  });

  it('uses the profile\'s pong wait for the side the profile says pings', () => {
    const waiting = pinging('upstream', [10], 0, [10]);
    expect(heartbeatFindings(facts(waiting, { endAt: s(60) }), { timeouts: [], heartbeat: mattermost })).toEqual([]);
    const found = heartbeatFindings(facts(waiting, { endAt: s(115) }), { timeouts: [], heartbeat: mattermost });
    const f = found.find((x) => x.id === 'heartbeat.unanswered');
    expect(f?.evidence.at(-1)).toBe("1 still waiting at the close, the oldest for 105.00 s (a pong is expected within the profile's heartbeat timeout, 1m40s)");
  });

  it('a pong travelling the same way as its ping (only a non-empty payload shows it)', () => {
    const p = new PingPairing();
    p.ping('client', 'x', s(1));
    p.pong('client', 'x', s(1.5));
    const found = heartbeatFindings(facts(p, { endAt: s(3) }), none);
    expect(ids(found)).toEqual(['heartbeat.same-direction-pong']);
    expect(found[0]?.message).toBe(
      "1 pong(s) from the client carry the data of the client's own ping(s): they travelled the way the ping did, so the upstream, which received the ping, did not send them",
    );
    expect(found[0]?.evidence).toEqual(['1 pong(s) from the client matching an outstanding client ping; first at +1.50 s after the upgrade']);
    // Empty pings and pongs (the libraries' default) say nothing about direction: a one-way heartbeat.
    const empty = new PingPairing();
    empty.ping('client', '', s(1));
    empty.pong('client', '', s(1.5));
    expect(ids(heartbeatFindings(facts(empty, { endAt: s(3) }), none))).toEqual(['heartbeat.unsolicited-pong']);
  });

  it('a pong with other data than the waiting ping is a mismatch; a pong with no ping at all is a one-way heartbeat (info)', () => {
    const p = new PingPairing();
    p.pong('client', 'beat', s(1));
    p.ping('upstream', 'hb', s(2));
    p.pong('client', 'HB', s(2.1));
    const found = heartbeatFindings(facts(p, { endAt: s(3) }), none);
    expect(ids(found)).toEqual(['heartbeat.pong-mismatch', 'heartbeat.unsolicited-pong']);
    expect(found[0]?.severity).toBe('warning');
    expect(found[1]?.severity).toBe('info');
    expect(found[1]?.message).toBe('1 pong(s) from the client answered no ping: a one-way heartbeat, which RFC 6455 5.5.3 allows');
  });

  it('observed pings further apart than an idle timeout (lifetime timeouts do not count)', () => {
    const found = heartbeatFindings(facts(pinging('upstream', [3, 6, 9], 1)), { timeouts: [nginx60, nginx2, gcpLifetime], heartbeat: null });
    expect(ids(found)).toEqual(['heartbeat.slower-than-timeout']);
    expect(found[0]?.message).toBe(
      'pings from the upstream came every 3.00 s on average, not more often than nginx proxy_read_timeout 2s: with nothing else to send, the connection is cut between pings',
    );
    expect(found[0]?.evidence[1]).toBe('nginx proxy_read_timeout 2s measures both-idle');
    expect(found[0]?.fix).toBe('send the heartbeat more often than every 2s, or raise nginx proxy_read_timeout above the heartbeat interval');
  });

  it('the profile\'s heartbeat explains a close by an idle timeout no faster than it', () => {
    const p = pinging('upstream', [], 0);
    const found = heartbeatFindings(facts(p, { endAt: s(60), closedByTimeout: nginx60 }), { timeouts: [nginx60], heartbeat: mattermost });
    expect(ids(found)).toEqual(['heartbeat.slower-than-timeout']);
    expect(found[0]?.message).toBe(
      "the app's heartbeat (per the profile: upstream pings every 60s) is not more frequent than nginx proxy_read_timeout 60s, which closed this connection",
    );
    expect(found[0]?.evidence).toEqual([
      'profile heartbeat: upstream pings every 60s',
      'the close matched nginx proxy_read_timeout 60s (timeout.match)',
      'no ping from the upstream in the 60.00 s after the upgrade',
    ]);
    // A close by a timeout the heartbeat beats says nothing about the heartbeat.
    expect(heartbeatFindings(facts(p, { endAt: s(2), closedByTimeout: nginx2 }), { timeouts: [nginx2], heartbeat: { ...mattermost, interval: 1 } })).toEqual([]);
  });

  it('a heartbeat the profile promises that never came, and one at another pace', () => {
    const every30: Heartbeat = { from: 'upstream', kind: 'ws-ping', interval: 30 };
    const silent = heartbeatFindings(facts(new PingPairing(), { endAt: s(95) }), { timeouts: [], heartbeat: every30 });
    expect(ids(silent)).toEqual(['heartbeat.missing']);
    expect(silent[0]?.message).toBe('no ping from the upstream in 95.00 s; the profile says the upstream pings every 30s');
    expect(heartbeatFindings(facts(new PingPairing(), { endAt: s(25) }), { timeouts: [], heartbeat: every30 })).toEqual([]);
    // Within the tolerance (5 % or 1 s) of one interval: not yet missing.
    expect(heartbeatFindings(facts(new PingPairing(), { endAt: s(31.4) }), { timeouts: [], heartbeat: every30 })).toEqual([]);

    const faster = heartbeatFindings(facts(pinging('upstream', [15, 30, 45, 60], 2), { endAt: s(61) }), { timeouts: [], heartbeat: every30 });
    expect(ids(faster)).toEqual(['heartbeat.interval-differs']);
    expect(faster[0]?.message).toBe('pings from the upstream come every 15.00 s on average; the profile says every 30s');
    // App-level heartbeats are not ping frames: nothing to count.
    expect(heartbeatFindings(facts(new PingPairing(), { endAt: s(95) }), { timeouts: [], heartbeat: { ...every30, kind: 'app-message' } })).toEqual([]);
  });

  it('a pong slower than the profile\'s wait', () => {
    const slow = pinging('upstream', [60, 120], 12_000);
    const found = heartbeatFindings(facts(slow, { endAt: s(140) }), { timeouts: [], heartbeat: { ...mattermost, timeout: 10 } });
    expect(ids(found)).toEqual(['heartbeat.late-pong']);
    expect(found[0]?.message).toBe("the slowest pong to the upstream's pings took 12.00 s, longer than the 10s the pinger waits (per the profile)");
  });
});

describe('heartbeatSetupFindings', () => {
  it('warns when the heartbeat is not more frequent than an idle timeout (the Mattermost 60 s race)', () => {
    const found = heartbeatSetupFindings(mattermost, [nginx60, gcpLifetime]);
    expect(ids(found)).toEqual(['heartbeat.slower-than-timeout']);
    expect(found[0]?.message).toBe(
      'the heartbeat (upstream pings every 60s) is not more frequent than nginx proxy_read_timeout 60s: a connection with nothing else to send is cut before the next heartbeat, or races it',
    );
    expect(found[0]?.evidence).toEqual(['profile heartbeat: upstream pings every 60s', 'nginx proxy_read_timeout 60s measures both-idle']);
  });

  it('names the tightest timeout first and lists the others; a faster heartbeat or none is fine', () => {
    const alb: HopTimeout = { hop: 'aws-alb', setting: 'idle_timeout.timeout_seconds', seconds: 60, measures: 'both-idle', where: 'client-side' };
    const found = heartbeatSetupFindings({ from: 'client', kind: 'app-message', interval: 90 }, [alb, nginx60, { ...nginx2, hop: 'edge' }]);
    expect(found[0]?.message).toMatch(/^the heartbeat \(client app heartbeat messages every 1m30s\) is not more frequent than edge proxy_read_timeout 2s/);
    expect(found[0]?.evidence.slice(2)).toEqual(['also: aws-alb idle_timeout.timeout_seconds 60s (both-idle)', 'also: nginx proxy_read_timeout 60s (both-idle)']);
    expect(heartbeatSetupFindings({ ...mattermost, interval: 25 }, [nginx60])).toEqual([]);
    expect(heartbeatSetupFindings(null, [nginx60])).toEqual([]);
  });
});
