import { describe, expect, it } from 'vitest';
import { attributeClose, type CloseEvidence } from '../../src/analysis/close-attribution.js';
import type { HopTimeout } from '../../src/analysis/hop-timeout.js';
import { matchingTimeouts, timeoutVerdict } from '../../src/analysis/timeout-verdict.js';

const T0 = 1_700_000_000_000;
const nginx: HopTimeout = { hop: 'nginx', setting: 'proxy_read_timeout', seconds: 60, measures: 'both-idle', where: 'client-side', action: 'fin' };
const alb: HopTimeout = { hop: 'aws-alb', setting: 'idle_timeout.timeout_seconds', seconds: 60, measures: 'both-idle', where: 'client-side', action: 'unknown' };
const appSide: HopTimeout = { hop: 'sidecar', setting: 'idle', seconds: 30, measures: 'upstream-idle', where: 'upstream-side', action: 'rst' };
const gcp: HopTimeout = { hop: 'gcp-lb', setting: 'timeoutSec', seconds: 30, measures: 'lifetime' };

function fin(side: 'client' | 'upstream', atMs: number, idle: { client: number; upstream: number }): CloseEvidence {
  return { side, kind: 'fin', t: T0 + atMs, idle };
}

describe('timeoutVerdict', () => {
  it('names the hop and the setting when the silence matches, with the evidence', () => {
    const a = attributeClose([fin('client', 90_020, { client: 60_020, upstream: 60_050 }), fin('upstream', 90_021, { client: 1, upstream: 60_051 })]);
    const v = timeoutVerdict([nginx], a, T0);
    expect(v?.id).toBe('timeout.match');
    expect(v?.severity).toBe('warning');
    expect(v?.message).toBe('closed by client side (fin) after 60.02 s without data either way: matches nginx proxy_read_timeout 60s');
    expect(v?.evidence[0]).toBe('first close evidence: client fin at +90.02 s');
    expect(v?.evidence[1]).toContain('client->upstream 60.02 s, upstream->client 60.05 s');
    expect(v?.fix).toMatch(/raise nginx proxy_read_timeout/);
  });

  it('tolerates 5 % or 1 s, whichever is larger, and no more', () => {
    const at = (ms: number) => attributeClose([fin('client', ms + 5, { client: ms, upstream: ms })]);
    expect(timeoutVerdict([nginx], at(62_900), T0)?.id).toBe('timeout.match'); // 2.9 s late < 3 s
    expect(timeoutVerdict([nginx], at(63_100), T0)?.id).toBe('timeout.none');
    const short: HopTimeout = { ...nginx, seconds: 2 };
    expect(timeoutVerdict([short], at(2_900), T0)?.id).toBe('timeout.match'); // 1 s floor
    expect(timeoutVerdict([short], at(3_100), T0)?.id).toBe('timeout.none');
  });

  it('a both-way timer is re-armed by either side: a busy direction rules it out', () => {
    const a = attributeClose([fin('client', 70_000, { client: 60_000, upstream: 500 })]);
    const v = timeoutVerdict([nginx], a, T0);
    expect(v?.id).toBe('timeout.none');
    expect(v?.message).toBe('closed by client side (fin) after 0.50 s without data either way: matches no known timeout');
    expect(v?.evidence).toContain('nginx proxy_read_timeout 60s: both-idle was 0.50 s');
  });

  it('only a hop on the closing side can explain the close', () => {
    const fromUpstream = attributeClose([fin('upstream', 60_000, { client: 60_000, upstream: 60_000 })]);
    expect(timeoutVerdict([nginx], fromUpstream, T0)?.id).toBe('timeout.none');
    const upstreamQuiet = attributeClose([{ side: 'upstream', kind: 'rst', t: T0 + 40_000, idle: { client: 10, upstream: 30_000 } }]);
    const v = timeoutVerdict([nginx, appSide], upstreamQuiet, T0);
    expect(v?.message).toBe('closed by upstream side (rst) after 30.00 s without upstream->client data: matches sidecar idle 30s');
  });

  it('a lifetime limit matches the age, however busy the connection was', () => {
    const a = attributeClose([fin('client', 30_200, { client: 5, upstream: 3 })]);
    expect(timeoutVerdict([gcp], a, T0)?.message).toBe('closed by client side (fin) after 30.20 s of life: matches gcp-lb timeoutSec 30s');
  });

  it('lists other timeouts within tolerance, nearest first', () => {
    const a = attributeClose([fin('client', 60_400, { client: 60_400, upstream: 60_400 })]);
    expect(matchingTimeouts([alb, nginx], a, 60_400).map((m) => m.timeout.hop)).toEqual(['aws-alb', 'nginx']);
    expect(timeoutVerdict([alb, nginx], a, T0)?.message).toContain('matches aws-alb idle_timeout.timeout_seconds 60s (also within tolerance: nginx proxy_read_timeout 60s)');
  });

  it('says nothing without evidence, without timeouts, or when wstap itself ended the connection', () => {
    expect(timeoutVerdict([nginx], attributeClose([]), T0)).toBeNull();
    expect(timeoutVerdict([], attributeClose([fin('client', 60_000, { client: 60_000, upstream: 60_000 })]), T0)).toBeNull();
    const proxy = attributeClose([{ side: 'proxy', kind: 'fin', t: T0 + 60_000, reason: 'shutdown', idle: { client: 60_000, upstream: 60_000 } }]);
    expect(timeoutVerdict([nginx], proxy, T0)).toBeNull();
  });
});
