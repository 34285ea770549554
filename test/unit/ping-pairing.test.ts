import { describe, it, expect } from 'vitest';
import { PingPairing } from '../../src/analysis/ping-pairing.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('PingPairing', () => {
  it('pairs a pong with the ping it answers and measures the round trip', () => {
    const p = new PingPairing();
    p.ping('upstream', b64('hb-1'), 1000.25);
    expect(p.pending).toBe(1);
    const rtt = p.pong('client', b64('hb-1'), 1012.75);
    expect(rtt).toStrictEqual({ from: 'upstream', rttMs: 12.5, pingAt: 1000.25, pongAt: 1012.75 });
    expect(p.pending).toBe(0);
    expect(p.unanswered).toBe(0);
    expect(p.unsolicitedPongs).toBe(0);
  });

  it('pairs a client ping with an upstream pong', () => {
    const p = new PingPairing();
    p.ping('client', '', 50);
    expect(p.pong('upstream', '', 53.5)).toStrictEqual({ from: 'client', rttMs: 3.5, pingAt: 50, pongAt: 53.5 });
  });

  it('rounds the round trip to microseconds', () => {
    const p = new PingPairing();
    p.ping('client', 'x', 1700000000000.123);
    const rtt = p.pong('upstream', 'x', 1700000000001.456);
    expect(rtt?.rttMs).toBe(1.333);
  });

  it('does not match a pong sent by the same side as the ping (unsolicited)', () => {
    const p = new PingPairing();
    p.ping('client', b64('a'), 1);
    expect(p.pong('client', b64('a'), 2)).toBeNull();
    expect(p.unsolicitedPongs).toBe(1);
    // The ping is still waiting for the other side.
    expect(p.pending).toBe(1);
    expect(p.pong('upstream', b64('a'), 3)).toStrictEqual({ from: 'client', rttMs: 2, pingAt: 1, pongAt: 3 });
  });

  it('does not match a pong with different application data', () => {
    const p = new PingPairing();
    p.ping('upstream', b64('one'), 1);
    expect(p.pong('client', b64('two'), 2)).toBeNull();
    expect(p.unsolicitedPongs).toBe(1);
    expect(p.pending).toBe(1);
  });

  it('counts earlier pings as coalesced (not unanswered) when a later ping is answered: RFC 6455 5.5.3', () => {
    const p = new PingPairing();
    p.ping('upstream', 'p1', 10);
    p.ping('upstream', 'p2', 20);
    p.ping('upstream', 'p3', 30);
    expect(p.pong('client', 'p3', 31)).toStrictEqual({ from: 'upstream', rttMs: 1, pingAt: 30, pongAt: 31 });
    expect(p.cadence.upstream.coalesced).toBe(2);
    expect(p.unanswered).toBe(0);
    expect(p.pending).toBe(0);
    // A late pong for a ping already answered together with p3 matches nothing.
    expect(p.pong('client', 'p1', 32)).toBeNull();
    expect(p.unsolicitedPongs).toBe(1);
    expect(p.unanswered).toBe(0);
  });

  it('keeps later pings outstanding when an earlier one is answered', () => {
    const p = new PingPairing();
    p.ping('client', 'p1', 10);
    p.ping('client', 'p2', 20);
    expect(p.pong('upstream', 'p1', 15)?.rttMs).toBe(5);
    expect(p.pending).toBe(1);
    expect(p.unanswered).toBe(0);
    expect(p.pong('upstream', 'p2', 26)?.rttMs).toBe(6);
    expect(p.pending).toBe(0);
  });

  it('says whether a ping of either side with some data is still waiting', () => {
    const p = new PingPairing();
    p.ping('client', b64('c'), 1);
    p.ping('upstream', b64('u'), 2);
    expect([p.isWaiting(b64('c')), p.isWaiting(b64('u')), p.isWaiting(b64('x'))]).toEqual([true, true, false]);
    p.pong('upstream', b64('c'), 3);
    expect(p.isWaiting(b64('c'))).toBe(false);
  });

  it('pairs identical payloads oldest first', () => {
    const p = new PingPairing();
    p.ping('upstream', '', 100);
    p.ping('upstream', '', 200);
    expect(p.pong('client', '', 210)?.pingAt).toBe(100);
    expect(p.pong('client', '', 220)?.pingAt).toBe(200);
    expect(p.unanswered).toBe(0);
  });

  it('keeps pings of the two sides apart', () => {
    const p = new PingPairing();
    p.ping('client', 'same', 1);
    p.ping('upstream', 'same', 2);
    expect(p.pending).toBe(2);
    expect(p.pong('client', 'same', 5)).toStrictEqual({ from: 'upstream', rttMs: 3, pingAt: 2, pongAt: 5 });
    expect(p.pong('upstream', 'same', 9)).toStrictEqual({ from: 'client', rttMs: 8, pingAt: 1, pongAt: 9 });
    expect(p.pending).toBe(0);
  });

  it('bounds the outstanding pings: the 17th unanswered ping pushes the oldest out as unanswered', () => {
    const p = new PingPairing();
    for (let i = 0; i < 16; i++) p.ping('upstream', `p${i}`, i);
    expect(p.unanswered).toBe(0);
    expect(p.pending).toBe(16);
    p.ping('upstream', 'p16', 16);
    expect(p.unanswered).toBe(1);
    expect(p.pending).toBe(16);
    // The evicted oldest ping can no longer be matched; the newest can.
    expect(p.pong('client', 'p0', 100)).toBeNull();
    expect(p.unsolicitedPongs).toBe(1);
    expect(p.pong('client', 'p1', 101)?.pingAt).toBe(1);
  });

  it('bounds each side separately', () => {
    const p = new PingPairing();
    for (let i = 0; i < 16; i++) {
      p.ping('upstream', `u${i}`, i);
      p.ping('client', `c${i}`, i);
    }
    expect(p.unanswered).toBe(0);
    expect(p.pending).toBe(32);
  });

  it('counts unsolicited pongs (unidirectional heartbeats)', () => {
    const p = new PingPairing();
    expect(p.pong('client', b64('beat'), 1)).toBeNull();
    expect(p.pong('client', b64('beat'), 2)).toBeNull();
    expect(p.pong('upstream', '', 3)).toBeNull();
    expect(p.unsolicitedPongs).toBe(3);
    expect(p.unanswered).toBe(0);
    expect(p.pending).toBe(0);
  });

  it('keeps each side\'s cadence: count, first and last, longest gap, answers and slowest answer', () => {
    const p = new PingPairing();
    p.ping('upstream', 'a', 1000);
    p.pong('client', 'a', 1004);
    p.ping('upstream', 'b', 3000);
    p.ping('upstream', 'c', 8000);
    p.pong('client', 'c', 8010);
    expect(p.cadence.upstream).toStrictEqual({ sent: 3, answered: 2, coalesced: 1, unanswered: 0, firstAt: 1000, lastAt: 8000, maxGapMs: 5000, maxRttMs: 10 });
    expect(p.cadence.client).toStrictEqual({ sent: 0, answered: 0, coalesced: 0, unanswered: 0, firstAt: null, lastAt: null, maxGapMs: 0, maxRttMs: 0 });
    expect(p.unanswered).toBe(0);
  });

  it('sorts stray pongs: same direction as a ping of its own side, mismatched data, unsolicited', () => {
    const p = new PingPairing();
    // No ping anywhere: a one-way heartbeat.
    p.pong('client', 'beat', 5);
    // The client pings; a pong with its data comes from the client too.
    p.ping('client', 'mine', 10);
    p.pong('client', 'mine', 11);
    // The upstream pings; the client's pong carries other data.
    p.ping('upstream', 'u1', 20);
    p.pong('client', 'other', 21);
    expect(p.strays.client).toStrictEqual({ sameDirection: 1, mismatched: 1, unsolicited: 1, firstAt: 5 });
    p.pong('client', 'zzz', 22);
    expect(p.strays.client.mismatched).toBe(2);
    expect(p.strays.upstream).toStrictEqual({ sameDirection: 0, mismatched: 0, unsolicited: 0, firstAt: null });
    expect(p.unsolicitedPongs).toBe(4);
  });

  it('tells which pings are still waiting and since when', () => {
    const p = new PingPairing();
    expect(p.waiting('upstream')).toStrictEqual({ count: 0, oldestAt: null, times: [] });
    p.ping('upstream', 'x', 100);
    p.ping('upstream', 'y', 200);
    expect(p.waiting('upstream')).toStrictEqual({ count: 2, oldestAt: 100, times: [100, 200] });
    expect(p.waiting('client').count).toBe(0);
  });
});
