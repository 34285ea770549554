import { describe, expect, it } from 'vitest';
import type { HopTimeout } from '../../src/profiles/hop-timeout.js';
import { probeJson } from '../../src/probe/probe-report.js';
import type { ClientEnd, VariantName, VariantOutcome } from '../../src/probe/probe-variants.js';
import { buildProbeVerdict, type ProbeVerdictInput } from '../../src/probe/probe-verdict.js';

const T0 = 1_700_000_000_000;

function outcome(name: VariantName, livedSeconds: number, clientEnd: ClientEnd, opened = true): VariantOutcome {
  return { name, opened, openedAt: T0, livedSeconds, clientEnd, proxy: null };
}

const open = (name: VariantName, max = 5): VariantOutcome => outcome(name, max, { kind: 'open' });
const fin = (name: VariantName, s: number): VariantOutcome => outcome(name, s, { kind: 'fin' });

function hop(name: string, seconds: number, extra: Partial<HopTimeout> = {}): HopTimeout {
  return { hop: name, setting: 'idle', seconds, measures: 'both-idle', where: 'client-side', action: 'fin', ...extra };
}

/** A silent connection cut with a FIN at 2.0 s, every traffic variant held to --max 5 s. */
function lbCut(): VariantOutcome[] {
  return [fin('silent', 2.01), open('client-messages'), open('client-pings')];
}

function verdict(input: Partial<ProbeVerdictInput> & Pick<ProbeVerdictInput, 'outcomes'>) {
  return buildProbeVerdict({ maxSeconds: 5, intervalSeconds: 0.5, withToken: false, hops: [], ...input });
}

describe('buildProbeVerdict: the idle timeout and the traffic that keeps a connection open', () => {
  it('measures the idle timeout from the silent variant and finds that every tested traffic keeps the connection open', () => {
    const v = verdict({ outcomes: lbCut() });
    expect(v.idleTimeoutSeconds).toBe(2);
    expect(v.traffic.map((t) => [t.variant, t.fate])).toEqual([
      ['client-messages', 'keeps-open'],
      ['client-pings', 'keeps-open'],
    ]);
    expect(v.lines[0]).toBe("The path's effective idle timeout is 2.0 s: the silent connection was cut with a FIN after 2.0 s.");
    expect(v.lines.join('\n')).toContain('An app heartbeat keeps connections open on this path if it is a message from the client, or a ping from the client');
    expect(v.lines.join('\n')).toContain('give --profile');
  });

  it('says that no traffic helps when every variant is cut like the silent one', () => {
    const v = verdict({ outcomes: [fin('silent', 3), fin('client-messages', 3.1), fin('client-pings', 2.9)] });
    expect(v.traffic.map((t) => t.fate)).toEqual(['cut-like-silent', 'cut-like-silent']);
    expect(v.lines.join('\n')).toContain('None of the tested kinds of traffic kept the connection open');
  });

  it('tells a traffic variant cut later than the silent one apart from one that was kept open', () => {
    const v = verdict({ outcomes: [fin('silent', 2), fin('client-messages', 4.5), open('client-pings')], maxSeconds: 10 });
    expect(v.traffic.map((t) => t.fate)).toEqual(['cut-later', 'keeps-open']);
    expect(v.traffic[0]?.text).toContain('later than the silent one');
  });

  it('says the traffic variants tell nothing when the interval is not shorter than the timeout', () => {
    const v = verdict({ outcomes: [fin('silent', 2), fin('client-messages', 2), fin('client-pings', 2)], intervalSeconds: 5 });
    expect(v.lines.join('\n')).toContain('the traffic variants say nothing; run again with --interval below 2.0 s');
  });

  it('reports no idle timeout when the silent connection lived to --max', () => {
    const v = verdict({ outcomes: [open('silent'), open('client-messages'), open('client-pings')] });
    expect(v.idleTimeoutSeconds).toBeNull();
    expect(v.lines[0]).toBe('No idle timeout up to --max (5s): the silent connection was still open.');
  });

  it('cannot measure when the silent handshake failed, and says how it failed', () => {
    const v = verdict({ outcomes: [outcome('silent', 0, { kind: 'http', code: 403 }, false), outcome('client-messages', 0, { kind: 'http', code: 403 }, false)] });
    expect(v.idleTimeoutSeconds).toBeNull();
    expect(v.lines).toEqual(['Could not measure: the silent connection did not open (HTTP 403 at the handshake).']);
  });
});

describe('buildProbeVerdict: naming the hop that cut it', () => {
  it('names the one hop whose timeout, measure and action fit, and says why the other does not', () => {
    const v = verdict({ outcomes: lbCut(), hops: [hop('lb', 2), hop('nginx', 4, { setting: 'proxy_read_timeout' })] });
    expect(v.hops.fitting.map((t) => t.hop)).toEqual(['lb']);
    expect(v.hops.ruledOut.map((r) => [r.timeout.hop, r.reason])).toEqual([['nginx', 'fires after 4s, and the silent connection was cut after 2.0 s']]);
    const text = v.lines.join('\n');
    expect(text).toContain('Cut by lb idle 2s (client-side), which sends a FIN when it fires; the probe saw a FIN.');
    expect(text).toContain('Not nginx proxy_read_timeout 4s: it fires after 4s');
  });

  it('names both hops that fit equally and promotes neither', () => {
    const v = verdict({ outcomes: lbCut(), hops: [hop('lb', 2, { action: 'unknown' }), hop('nginx', 2, { setting: 'proxy_read_timeout' })] });
    expect(v.hops.fitting.map((t) => t.hop)).toEqual(['lb', 'nginx']);
    const text = v.lines.join('\n');
    expect(text).toContain('Cut by lb idle 2s or nginx proxy_read_timeout 2s: each fits what was seen');
    expect(text).toContain('the probe cannot tell them apart');
    expect(text).not.toMatch(/^Cut by lb idle 2s \(/m);
  });

  it('does not name a hop whose action does not fit what the probe saw', () => {
    const v = verdict({ outcomes: lbCut(), hops: [hop('lb', 2, { action: 'rst' })] });
    expect(v.hops.fitting).toEqual([]);
    expect(v.hops.ruledOut[0]?.reason).toBe('sends an RST when it fires, and the probe saw a FIN');
    expect(v.lines.join('\n')).toContain('No hop of the profile fits: a timer the profile does not list cut it after 2.0 s with a FIN.');
  });

  it('matches a close-frame action by its code', () => {
    const outcomes = [outcome('silent', 2, { kind: 'close-frame', code: 1001 }), open('client-messages')];
    expect(verdict({ outcomes, hops: [hop('edge', 2, { action: 'close-frame', code: 1001 })] }).hops.fitting).toHaveLength(1);
    expect(verdict({ outcomes, hops: [hop('edge', 2, { action: 'close-frame', code: 1006 })] }).hops.fitting).toHaveLength(0);
    expect(verdict({ outcomes, hops: [hop('edge', 2, { action: 'http-status', code: 504 })] }).hops.fitting).toHaveLength(0);
  });

  it('rules out a lifetime limit when a traffic variant outlived it, and a client-idle timer when server messages kept one open', () => {
    const lifetime = verdict({ outcomes: lbCut(), hops: [hop('lb', 2, { measures: 'lifetime' })] });
    expect(lifetime.hops.ruledOut[0]?.reason).toBe('measures lifetime, so it would have cut client-messages after 2s too, which lived 5.0 s');
    const outcomes = [fin('silent', 2), open('client-messages'), open('client-pings'), open('server-messages'), open('server-pings')];
    const clientIdle = verdict({ outcomes, withToken: true, hops: [hop('lb', 2, { measures: 'client-idle' })] });
    expect(clientIdle.hops.ruledOut[0]?.reason).toContain('measures client-idle, so it would have cut server-messages');
    const cutServerMessages = [fin('silent', 2), open('client-messages'), open('client-pings'), fin('server-messages', 2), open('server-pings')];
    expect(verdict({ outcomes: cutServerMessages, withToken: true, hops: [hop('lb', 2, { measures: 'client-idle' })] }).hops.fitting).toHaveLength(1);
  });

  it('with --token, rules out hops between wstap and the app: the probe ended at wstap', () => {
    const v = verdict({ outcomes: lbCut(), withToken: true, hops: [hop('app-lb', 2, { where: 'upstream-side' })] });
    expect(v.hops.ruledOut[0]?.reason).toBe('sits between wstap and the app, and with --token the probe ended at wstap');
    expect(verdict({ outcomes: lbCut(), withToken: false, hops: [hop('app-lb', 2, { where: 'upstream-side' })] }).hops.fitting).toHaveLength(1);
  });

  it('takes extra evidence about hops (the nginx log seam): a hop that fired is named over one that only fits the timing', () => {
    const hops = [hop('lb', 2, { action: 'unknown' }), hop('nginx', 2, { setting: 'proxy_read_timeout' })];
    const fired = verdict({ outcomes: lbCut(), hops, evidence: [{ hop: 'nginx', fired: true, text: 'nginx error log: upstream timed out while proxying upgraded connection' }] });
    expect(fired.hops.fitting.map((t) => t.hop)).toEqual(['nginx']);
    expect(fired.hops.ruledOut.map((r) => [r.timeout.hop, r.reason])).toEqual([['lb', "fits the timing, but nginx's own log shows it fired"]]);
    expect(fired.lines.join('\n')).toContain('(nginx error log: upstream timed out while proxying upgraded connection)');
    const silentLog = verdict({ outcomes: lbCut(), hops, evidence: [{ hop: 'nginx', fired: false, text: 'no timeout line at info level' }] });
    expect(silentLog.hops.fitting.map((t) => t.hop)).toEqual(['lb']);
    expect(silentLog.hops.ruledOut[0]?.reason).toBe('its own log says it did not fire: no timeout line at info level');
  });
});

describe("buildProbeVerdict: wstap's end (--token) as evidence", () => {
  const atWstap = (kind: 'fin' | 'rst' | 'close-frame', afterMs: number): VariantOutcome['proxy'] => ({
    variant: 'silent',
    mode: 'silent',
    conn: 7,
    upgradedAt: T0,
    ends: [{ kind, side: 'client', t: T0 + afterMs }],
    closedAt: T0 + afterMs + 1,
  });

  it("says where the cut came from when wstap's end saw it from the client side", () => {
    const outcomes = [{ ...fin('silent', 2), proxy: atWstap('fin', 2003) }, open('client-messages')];
    const v = verdict({ outcomes, withToken: true });
    expect(v.lines[1]).toBe("wstap's end saw a FIN from the client side 2.0 s after the probe's 101 (wstap's clock, assumed the probe's: same host): the cut came from the path in front of wstap.");
  });

  it("says so when the cut never reached wstap's end", () => {
    const outcomes = [{ ...fin('silent', 2), proxy: { ...(atWstap('fin', 0) as NonNullable<VariantOutcome['proxy']>), ends: [], closedAt: null } }, open('client-messages')];
    expect(verdict({ outcomes, withToken: true }).lines[1]).toContain("wstap's end still had the silent connection open when asked");
  });

  it("rules out the hop next to wstap when its action does not fit what wstap's end saw, though the probe's end fits", () => {
    // The probe saw an RST (the front balancer's own action), wstap a FIN (nginx passing the cut on): had nginx, next to wstap, fired, wstap would have seen its RST.
    const outcomes = [{ ...outcome('silent', 2, { kind: 'rst' }), proxy: atWstap('fin', 2000) }, open('client-messages')];
    const hops = [hop('lb', 2, { action: 'rst' }), hop('nginx', 2, { setting: 'proxy_read_timeout', action: 'rst' })];
    const v = verdict({ outcomes, withToken: true, hops });
    expect(v.hops.fitting.map((t) => t.hop)).toEqual(['lb']);
    expect(v.hops.ruledOut[0]?.reason).toBe("is the hop next to wstap and sends an RST when it fires, and wstap's end saw a FIN");
  });

  it('words a run stopped by Ctrl-C as stopped, not as --max', () => {
    const v = verdict({ outcomes: [open('silent', 1.2), open('client-messages', 1.2)], maxSeconds: 1.2, stopped: true });
    expect(v.lines[0]).toBe('No idle timeout in the 1.2 s the probe ran (stopped before --max): the silent connection was still open.');
    expect(v.lines[1]).toContain('kept the connection open until the probe was stopped (1.2 s)');
  });
});

describe('probeJson: the --json shape', () => {
  it('has exactly the fields the issue gives, with the proxy end on the probe clock', () => {
    const outcomes: VariantOutcome[] = [
      { ...fin('silent', 2.0004), proxy: { variant: 'silent', mode: 'silent', conn: 3, upgradedAt: T0, ends: [{ kind: 'fin', side: 'client', t: T0 + 2010 }], closedAt: T0 + 2012 } },
      { ...outcome('client-messages', 5, { kind: 'open' }), proxy: { variant: 'client-messages', mode: 'silent', conn: 4, upgradedAt: T0, ends: [], closedAt: null } },
      outcome('client-pings', 0, { kind: 'http', code: 502 }, false),
    ];
    const json = probeJson(outcomes, verdict({ outcomes }));
    expect(json).toEqual({
      idleTimeoutSeconds: 2,
      variants: [
        { name: 'silent', livedSeconds: 2, clientEnd: { kind: 'fin' }, proxyEnd: { kind: 'fin', side: 'client', afterSeconds: 2.01 } },
        { name: 'client-messages', livedSeconds: 5, clientEnd: { kind: 'open' }, proxyEnd: { kind: 'open', side: null, afterSeconds: null } },
        { name: 'client-pings', livedSeconds: 0, clientEnd: { kind: 'http', code: 502 }, proxyEnd: null },
      ],
      verdict: expect.stringContaining("The path's effective idle timeout is 2.0 s") as unknown as string,
    });
    expect(probeJson(outcomes, verdict({ outcomes }), 'no report within 10 s').verdict).toMatch(/\nwstap's end could not be asked: no report within 10 s$/);
  });
});
