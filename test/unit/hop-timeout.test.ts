import { describe, it, expect } from 'vitest';
import { parseDuration, parseTimeoutSpec, TimeoutSpecError, type HopTimeout } from '../../src/profiles/hop-timeout.js';
import { countdownOf, directionLevel, elapsedFor, formatDuration, levelOf, nearestCountdown } from '../../src/analysis/countdown.js';

const hop = (h: string, seconds: number, measures: HopTimeout['measures'] = 'both-idle', setting = 'x'): HopTimeout => ({
  hop: h,
  setting,
  seconds,
  measures,
});

function errorOf(fn: () => unknown): TimeoutSpecError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TimeoutSpecError);
    return err as TimeoutSpecError;
  }
  throw new Error('expected a TimeoutSpecError');
}

describe('parseDuration', () => {
  it.each([
    ['60', 60],
    ['60s', 60],
    ['1m30s', 90],
    ['250ms', 0.25],
    ['1h', 3600],
    ['1.5s', 1.5],
    ['2m', 120],
    ['1h2m3s', 3723],
    ['1m250ms', 60.25],
    ['1s500ms', 1.5],
    ['0.5', 0.5],
    [' 45s ', 45],
  ])('reads %j as %d seconds', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it.each(['', '   ', 'sixty', '-5', '5x', '1s1m', '1m1h', '1s1s', 's', 'm', '1.s', '.5s', '1 m', '5S', 'Infinity', '1e3'])(
    'rejects %j and names the text',
    (text) => {
      const err = errorOf(() => parseDuration(text));
      expect(err.message).toBe(`invalid duration "${text}" (e.g. 60, 60s, 1m30s, 250ms, 1h, 1.5s; units h, m, s, ms in that order)`);
    },
  );

  it.each(['0', '0s', '0ms', '0h0m0s', '0.0'])('rejects the zero duration %j', (text) => {
    const err = errorOf(() => parseDuration(text));
    expect(err.message).toBe(`duration "${text}" must be greater than zero`);
  });
});

describe('formatDuration', () => {
  it.each([
    [12, '12s'],
    [59, '59s'],
    [60, '60s'],
    [60.5, '1m500ms'],
    [61, '1m1s'],
    [90, '1m30s'],
    [120, '2m'],
    [7200, '2h'],
    [3605, '1h5s'],
    [0.25, '250ms'],
    [1.5, '1s500ms'],
    [0, '0s'],
  ])('writes %d seconds as %j', (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
    if (seconds > 0) expect(parseDuration(text)).toBe(seconds);
  });
});

describe('parseTimeoutSpec', () => {
  it('splits hop.setting and defaults to both-idle', () => {
    expect(parseTimeoutSpec('nginx.proxy_read_timeout=60')).toStrictEqual({
      hop: 'nginx',
      setting: 'proxy_read_timeout',
      seconds: 60,
      measures: 'both-idle',
    });
  });

  it('keeps dots after the first in the setting', () => {
    expect(parseTimeoutSpec('aws-alb.idle_timeout.timeout_seconds=1m')).toStrictEqual({
      hop: 'aws-alb',
      setting: 'idle_timeout.timeout_seconds',
      seconds: 60,
      measures: 'both-idle',
    });
  });

  it('treats a name without a dot as the hop with an empty setting', () => {
    expect(parseTimeoutSpec('cloudflare=100s')).toStrictEqual({ hop: 'cloudflare', setting: '', seconds: 100, measures: 'both-idle' });
  });

  it.each([
    ['both-idle', 'both-idle'],
    ['client-idle', 'client-idle'],
    ['upstream-idle', 'upstream-idle'],
    ['lifetime', 'lifetime'],
  ] as const)('reads the measure %s', (text, measure) => {
    expect(parseTimeoutSpec(`gcp.timeoutSec=30s:${text}`)).toStrictEqual({ hop: 'gcp', setting: 'timeoutSec', seconds: 30, measures: measure });
  });

  it('accepts compound and fractional durations', () => {
    expect(parseTimeoutSpec('haproxy.timeout_tunnel=1m30s:both-idle').seconds).toBe(90);
    expect(parseTimeoutSpec('x.y=1.5s').seconds).toBe(1.5);
  });

  const example = 'expected NAME=DURATION[:MEASURE], e.g. --timeout nginx.proxy_read_timeout=60';

  it.each([
    ['nginx.proxy_read_timeout', 'missing "="'],
    ['=60', 'missing the hop name before "="'],
    ['.proxy_read_timeout=60', 'the name ".proxy_read_timeout" has no hop before the dot'],
    ['nginx.=60', 'the name "nginx." has no setting after the dot'],
    ['ngi nx.x=60', 'the name "ngi nx.x" contains whitespace, "=" or ":"'],
    ['nginx.proxy_read_timeout=', 'missing the duration after "="'],
    ['nginx.proxy_read_timeout=:lifetime', 'missing the duration after "="'],
    ['nginx.proxy_read_timeout=sixty', 'invalid duration "sixty" (e.g. 60, 60s, 1m30s, 250ms, 1h, 1.5s; units h, m, s, ms in that order)'],
    ['nginx.proxy_read_timeout=0', 'duration "0" must be greater than zero'],
    ['nginx.proxy_read_timeout=-5s', 'invalid duration "-5s" (e.g. 60, 60s, 1m30s, 250ms, 1h, 1.5s; units h, m, s, ms in that order)'],
    ['nginx.proxy_read_timeout=60:idle', 'unknown measure "idle" (one of both-idle, client-idle, upstream-idle, lifetime)'],
    ['nginx.proxy_read_timeout=60:', 'unknown measure "" (one of both-idle, client-idle, upstream-idle, lifetime)'],
  ])('rejects %j saying what is wrong, with an example', (spec, what) => {
    const err = errorOf(() => parseTimeoutSpec(spec));
    expect(err.message).toBe(`--timeout "${spec}": ${what}; ${example}`);
    expect(err.name).toBe('TimeoutSpecError');
  });
});

describe('elapsedFor', () => {
  const idle = { client: 4000, upstream: 9000 };
  it('both-idle sees the more recent side', () => {
    expect(elapsedFor('both-idle', idle, 60_000)).toBe(4000);
    expect(elapsedFor('both-idle', { client: 9000, upstream: 250 }, 60_000)).toBe(250);
  });
  it('one-side measures see that side only', () => {
    expect(elapsedFor('client-idle', idle, 60_000)).toBe(4000);
    expect(elapsedFor('upstream-idle', idle, 60_000)).toBe(9000);
  });
  it('lifetime sees the age, however busy', () => {
    expect(elapsedFor('lifetime', { client: 0, upstream: 0 }, 61_500)).toBe(61_500);
  });
});

describe('levelOf', () => {
  it.each([
    [0, 'ok'],
    [0.79, 'ok'],
    [0.7999999, 'ok'],
    [0.8, 'warn'],
    [0.95, 'warn'],
    [1.0, 'warn'],
    [1.0000001, 'over'],
    [3, 'over'],
  ] as const)('ratio %d -> %s', (ratio, level) => {
    expect(levelOf(ratio)).toBe(level);
  });
});

describe('countdownOf', () => {
  const nginx = hop('nginx', 60, 'both-idle', 'proxy_read_timeout');

  it('counts down from the both-way idle time', () => {
    const c = countdownOf(nginx, { client: 48_000, upstream: 50_000 }, 500_000);
    expect(c).toStrictEqual({
      timeout: nginx,
      elapsedMs: 48_000,
      remainingMs: 12_000,
      ratio: 0.8,
      level: 'warn',
      label: 'nginx 60s in 12s',
    });
  });

  it('rounds the remaining time up to whole seconds', () => {
    expect(countdownOf(nginx, { client: 48_500, upstream: 60_000 }, 0).label).toBe('nginx 60s in 12s');
    expect(countdownOf(nginx, { client: 59_800, upstream: 60_000 }, 0).label).toBe('nginx 60s in 1s');
    expect(countdownOf(nginx, { client: 1, upstream: 1 }, 0).label).toBe('nginx 60s in 60s');
  });

  it('is "in 0s" and warn exactly at the deadline', () => {
    const c = countdownOf(nginx, { client: 60_000, upstream: 60_000 }, 0);
    expect(c.remainingMs).toBe(0);
    expect(c.level).toBe('warn');
    expect(c.label).toBe('nginx 60s in 0s');
  });

  it('says how long ago it expired', () => {
    const c = countdownOf(nginx, { client: 63_000, upstream: 70_000 }, 0);
    expect(c.remainingMs).toBe(-3000);
    expect(c.level).toBe('over');
    expect(c.label).toBe('nginx 60s over by 3s');
    // Just past the deadline already reads as over, not "over by 0s".
    expect(countdownOf(nginx, { client: 60_200, upstream: 70_000 }, 0).label).toBe('nginx 60s over by 1s');
  });

  it('writes minutes and hours compactly', () => {
    expect(countdownOf(hop('aws-nlb', 350), { client: 0, upstream: 0 }, 0).label).toBe('aws-nlb 5m50s in 5m50s');
    expect(countdownOf(hop('front-door', 4 * 3600, 'lifetime'), { client: 0, upstream: 0 }, 30 * 60_000).label).toBe(
      'front-door 4h in 3h30m',
    );
    expect(countdownOf(hop('tiny', 0.25), { client: 100, upstream: 100 }, 0).label).toBe('tiny 250ms in 1s');
  });

  it('is ok well before the deadline', () => {
    const c = countdownOf(nginx, { client: 6000, upstream: 0 }, 0);
    expect(c.ratio).toBe(0);
    expect(c.level).toBe('ok');
  });
});

describe('nearestCountdown', () => {
  const nginx = hop('nginx', 60);
  const alb = hop('aws-alb', 300);
  const gcp = hop('gcp', 30, 'lifetime');
  const upstreamOnly = hop('haproxy', 50, 'upstream-idle');

  it('is null with no timeouts', () => {
    expect(nearestCountdown([], { client: 0, upstream: 0 }, 0)).toBeNull();
  });

  it('picks the one that fires first', () => {
    const c = nearestCountdown([alb, nginx, upstreamOnly], { client: 10_000, upstream: 20_000 }, 25_000);
    // nginx: 60-10 = 50s left; haproxy: 50-20 = 30s left; alb: 290s left.
    expect(c?.timeout).toBe(upstreamOnly);
    expect(c?.remainingMs).toBe(30_000);
  });

  it('lets a lifetime timer win on a busy connection', () => {
    const c = nearestCountdown([alb, nginx, gcp], { client: 100, upstream: 200 }, 25_000);
    expect(c?.timeout).toBe(gcp);
    expect(c?.label).toBe('gcp 30s in 5s');
  });

  it('prefers the one that expired longest ago', () => {
    const c = nearestCountdown([alb, nginx, gcp], { client: 70_000, upstream: 80_000 }, 120_000);
    // gcp: 90s over; nginx: 10s over.
    expect(c?.timeout).toBe(gcp);
    expect(c?.level).toBe('over');
    expect(c?.label).toBe('gcp 30s over by 1m30s');
  });

  it('keeps the first listed on a tie', () => {
    const a = hop('a', 60);
    const b = hop('b', 60);
    expect(nearestCountdown([a, b], { client: 1000, upstream: 1000 }, 0)?.timeout).toBe(a);
  });
});

describe('directionLevel', () => {
  const idle = { client: 55_000, upstream: 10_000 };

  it('is ok with no timeouts', () => {
    expect(directionLevel([], 'client', idle, 0)).toBe('ok');
  });

  it('uses only the timeouts that side feeds', () => {
    const clientOnly = hop('haproxy', 60, 'client-idle');
    // Client silent for 55 of 60 s: warn on the client cell, nothing on the upstream cell.
    expect(directionLevel([clientOnly], 'client', idle, 0)).toBe('warn');
    expect(directionLevel([clientOnly], 'upstream', idle, 0)).toBe('ok');
    const upstreamOnly = hop('haproxy', 9, 'upstream-idle');
    expect(directionLevel([upstreamOnly], 'upstream', idle, 0)).toBe('over');
    expect(directionLevel([upstreamOnly], 'client', idle, 0)).toBe('ok');
  });

  it('counts both-idle timers for both sides, measured on the more recent side', () => {
    const nginx = hop('nginx', 12);
    // min(55, 10) = 10 of 12 s -> warn on both cells.
    expect(directionLevel([nginx], 'client', idle, 0)).toBe('warn');
    expect(directionLevel([nginx], 'upstream', idle, 0)).toBe('warn');
  });

  it('ignores lifetime timers', () => {
    expect(directionLevel([hop('gcp', 30, 'lifetime')], 'client', idle, 3_600_000)).toBe('ok');
  });

  it('takes the highest level', () => {
    const timeouts = [hop('a', 600), hop('b', 60, 'client-idle'), hop('c', 50, 'client-idle'), hop('d', 1, 'upstream-idle')];
    expect(directionLevel(timeouts, 'client', idle, 0)).toBe('over');
    expect(directionLevel(timeouts.slice(0, 2), 'client', idle, 0)).toBe('warn');
    expect(directionLevel(timeouts.slice(0, 1), 'client', idle, 0)).toBe('ok');
  });
});
