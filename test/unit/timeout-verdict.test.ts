import { describe, expect, it } from 'vitest';
import { attributeClose, type CloseEvidence } from '../../src/analysis/close-attribution.js';
import type { HopTimeout } from '../../src/profiles/hop-timeout.js';
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

  it('says nothing without evidence, without timeouts, or when wstap itself ended the connection', () => {
    expect(timeoutVerdict([nginx], attributeClose([]), T0)).toBeNull();
    expect(timeoutVerdict([], attributeClose([fin('client', 60_000, { client: 60_000, upstream: 60_000 })]), T0)).toBeNull();
    const proxy = attributeClose([{ side: 'proxy', kind: 'fin', t: T0 + 60_000, reason: 'shutdown', idle: { client: 60_000, upstream: 60_000 } }]);
    expect(timeoutVerdict([nginx], proxy, T0)).toBeNull();
  });
});

describe('timeoutVerdict: several timeouts near the silence', () => {
  const both = (ms: number) => ({ client: ms, upstream: ms });
  const quietFin = attributeClose([fin('client', 60_400, both(60_400)), fin('upstream', 60_401, { client: 1, upstream: 60_401 })]);

  it('a tie nothing observed breaks is timeout.ambiguous: every candidate named, none as the cause, no single fix', () => {
    const v = timeoutVerdict([alb, nginx], quietFin, T0);
    expect(v?.id).toBe('timeout.ambiguous');
    expect(v?.severity).toBe('warning');
    expect(v?.message).toBe(
      'closed by client side (fin) after client->upstream 60.40 s, upstream->client 60.40 s of silence: ' +
        '2 timeouts fit and nothing observed tells them apart: aws-alb idle_timeout.timeout_seconds 60s, nginx proxy_read_timeout 60s',
    );
    expect(v?.message).not.toMatch(/matches/);
    expect(v?.evidence).toEqual([
      'first close evidence: client fin at +60.40 s',
      'silence before it: client->upstream 60.40 s, upstream->client 60.40 s; connection age 60.40 s',
      'candidate: aws-alb idle_timeout.timeout_seconds 60s, on the client-side of wstap, counts silence both ways (a byte either way re-arms it): 60.40 s at the close (off by 0.40 s); what it sends when it fires is not known (action: unknown)',
      'candidate: nginx proxy_read_timeout 60s, on the client-side of wstap, counts silence both ways (a byte either way re-arms it): 60.40 s at the close (off by 0.40 s); sends a FIN when it fires',
      'not told apart by: side (the close came from the client side; each sits on that side), action (a FIN fits what each sends; an unknown action fits anything), silence (what each timer counts was within tolerance of its timeout)',
    ]);
    // How to find out, then what to change for each: the nginx log line, a setting changed for a while, a probe.
    expect(v?.fix).toContain('find out which fired: ');
    expect(v?.fix).toContain('nginx: nginx writes "upstream timed out (110: Connection timed out) while proxying upgraded connection" to its error log, at info level');
    expect(v?.fix).toContain("aws-alb: aws-alb's own logs");
    expect(v?.fix).toContain('raise one of them for a while (e.g. aws-alb idle_timeout.timeout_seconds 60s to 2m)');
    expect(v?.fix).toContain('probe:');
    expect(v?.fix).toContain('if it was aws-alb, raise aws-alb idle_timeout.timeout_seconds above');
    expect(v?.fix).toContain('if it was nginx, raise nginx proxy_read_timeout above');
    expect(v?.fix).toContain('a heartbeat more often than every 60s keeps a quiet connection open through all of them');
  });

  it('a tie broken by action: the hop that would have sent an RST cannot explain a FIN', () => {
    const albRst: HopTimeout = { ...alb, action: 'rst' };
    const v = timeoutVerdict([albRst, nginx], quietFin, T0);
    expect(v?.id).toBe('timeout.match');
    expect(v?.message).toBe('closed by client side (fin) after 60.40 s without data either way: matches nginx proxy_read_timeout 60s');
    expect(v?.evidence).toContain('ruled out: aws-alb idle_timeout.timeout_seconds 60s sends an RST when it fires and a FIN was seen');
    // And the other way round: an RST picks the ALB.
    const reset = attributeClose([{ side: 'client', kind: 'rst', t: T0 + 60_400, idle: both(60_400) }]);
    const r = timeoutVerdict([albRst, nginx], reset, T0);
    expect(r?.message).toMatch(/matches aws-alb idle_timeout.timeout_seconds 60s$/);
    expect(r?.evidence).toContain('ruled out: nginx proxy_read_timeout 60s sends a FIN when it fires and an RST was seen');
  });

  it('a tie broken by the close code a hop sends', () => {
    const cf: HopTimeout = { hop: 'edge', setting: 'idle', seconds: 60, measures: 'both-idle', where: 'client-side', action: 'close-frame', code: 1001 };
    const frame = (code: number) => attributeClose([{ side: 'client', kind: 'close-frame', code, t: T0 + 60_400, idle: both(60_400) }]);
    expect(timeoutVerdict([cf, nginx], frame(1001), T0)?.message).toMatch(/matches edge idle 60s$/);
    const other = timeoutVerdict([cf, nginx], frame(4000), T0);
    expect(other?.id).toBe('timeout.none');
    expect(other?.evidence).toContain('edge idle 60s: both-idle was 60.40 s, but it sends a close frame 1001 when it fires and a close frame 4000 was seen');
  });

  it('a tie broken by the measured direction: a client-idle timer cannot fire while the client kept sending', () => {
    const clientIdle: HopTimeout = { ...alb, measures: 'client-idle' };
    const upstreamIdle: HopTimeout = { ...nginx, measures: 'upstream-idle' };
    const a = attributeClose([fin('client', 70_000, { client: 200, upstream: 60_300 })]);
    const v = timeoutVerdict([clientIdle, upstreamIdle], a, T0);
    expect(v?.id).toBe('timeout.match');
    expect(v?.message).toBe('closed by client side (fin) after 60.30 s without upstream->client data: matches nginx proxy_read_timeout 60s');
    expect(v?.evidence).toContain('ruled out: aws-alb idle_timeout.timeout_seconds 60s measures client-idle: 0.20 s at the close, not 60s');
  });

  it('a tie broken by side: a hop behind wstap cannot close the client side', () => {
    const behind: HopTimeout = { ...appSide, seconds: 60, measures: 'both-idle', action: 'fin' };
    const v = timeoutVerdict([behind, nginx], quietFin, T0);
    expect(v?.id).toBe('timeout.match');
    expect(v?.message).toMatch(/matches nginx proxy_read_timeout 60s$/);
    expect(v?.evidence).toContain('ruled out: sidecar idle 60s is on the upstream-side of wstap and the close came from the client side');
  });

  it('ambiguity lists the ruled-out hops too, and a none says why each near one did not fit', () => {
    const albRst: HopTimeout = { ...alb, action: 'rst' };
    const third: HopTimeout = { ...nginx, hop: 'haproxy', setting: 'timeout tunnel', action: 'unknown' };
    const v = timeoutVerdict([albRst, nginx, third], quietFin, T0);
    expect(v?.id).toBe('timeout.ambiguous');
    expect(v?.message).toMatch(/2 timeouts fit .*: nginx proxy_read_timeout 60s, haproxy timeout tunnel 60s$/);
    expect(v?.evidence.at(-1)).toBe('ruled out: aws-alb idle_timeout.timeout_seconds 60s sends an RST when it fires and a FIN was seen');
    const reset = attributeClose([{ side: 'client', kind: 'rst', t: T0 + 60_400, idle: both(60_400) }]);
    const none = timeoutVerdict([nginx], reset, T0);
    expect(none?.id).toBe('timeout.none');
    expect(none?.evidence).toContain('nginx proxy_read_timeout 60s: both-idle was 60.40 s, but it sends a FIN when it fires and an RST was seen');
  });

  it('matchingTimeouts keeps only what every observed fact fits, nearest first', () => {
    const a = attributeClose([fin('client', 60_400, both(60_400))]);
    const late: HopTimeout = { ...alb, seconds: 59.5 };
    expect(matchingTimeouts([late, nginx], a, 60_400).map((m) => m.timeout.hop)).toEqual(['nginx', 'aws-alb']);
    expect(matchingTimeouts([{ ...alb, action: 'rst' }, nginx], a, 60_400).map((m) => m.timeout.hop)).toEqual(['nginx']);
  });
});
