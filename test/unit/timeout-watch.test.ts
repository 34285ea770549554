import { describe, expect, it } from 'vitest';
import type { HopTimeout } from '../../src/profiles/hop-timeout.js';
import { TimeoutWatch } from '../../src/analysis/timeout-watch.js';

const nginx60: HopTimeout = { hop: 'nginx', setting: 'proxy_read_timeout', seconds: 60, measures: 'both-idle', where: 'client-side', action: 'fin' };
const alb: HopTimeout = { hop: 'aws-alb', setting: 'idle_timeout.timeout_seconds', seconds: 60, measures: 'client-idle' };
const gcp: HopTimeout = { hop: 'gcp', setting: 'backend timeout', seconds: 30, measures: 'lifetime' };

describe('TimeoutWatch', () => {
  it('is inactive without timeouts', () => {
    expect(new TimeoutWatch([]).active).toBe(false);
    expect(new TimeoutWatch([nginx60]).active).toBe(true);
  });

  it('says nothing below 80 %, then once when the timer passes it, with the numbers', () => {
    const watch = new TimeoutWatch([nginx60]);
    expect(watch.check({ conn: 1, idle: { client: 47_000, upstream: 60_000 }, ageMs: 90_000 })).toEqual([]);
    const found = watch.check({ conn: 1, idle: { client: 48_000, upstream: 50_000 }, ageMs: 90_000 });
    expect(found).toEqual([
      {
        id: 'timeout.approaching',
        severity: 'warning',
        message: 'heading for nginx proxy_read_timeout 60s: 48.00 s without data either way; it fires in 12.00 s unless data flows',
        evidence: ['silence so far: client->upstream 48.00 s, upstream->client 50.00 s; connection age 90.00 s', 'nginx proxy_read_timeout 60s measures both-idle'],
        fix: 'traffic (an app heartbeat) more often than every 60s keeps it open',
      },
    ]);
    // Once per connection and timeout: a heartbeat racing the timeout is not repeated every cycle.
    expect(watch.check({ conn: 1, idle: { client: 59_000, upstream: 59_000 }, ageMs: 150_000 })).toEqual([]);
    expect(watch.check({ conn: 1, idle: { client: 1000, upstream: 1000 }, ageMs: 151_000 })).toEqual([]);
    expect(watch.check({ conn: 1, idle: { client: 55_000, upstream: 55_000 }, ageMs: 210_000 })).toEqual([]);
  });

  it('a timer already past its timeout says it should have fired', () => {
    const watch = new TimeoutWatch([nginx60]);
    expect(watch.check({ conn: 2, idle: { client: 63_500, upstream: 70_000 }, ageMs: 80_000 })[0]?.message).toBe(
      'heading for nginx proxy_read_timeout 60s: 63.50 s without data either way; it should have fired 3.50 s ago',
    );
  });

  it('keeps connections and timeouts apart, and forgets a closed connection', () => {
    const watch = new TimeoutWatch([nginx60, alb, gcp]);
    const quietClient = { idle: { client: 50_000, upstream: 1_000 }, ageMs: 10_000 };
    // both-idle sees the more recent side (1 s): only the client-idle ALB timer is near.
    expect(watch.check({ conn: 3, ...quietClient }).map((f) => f.message)).toEqual([
      'heading for aws-alb idle_timeout.timeout_seconds 60s: 50.00 s without client->upstream data; it fires in 10.00 s unless data flows',
    ]);
    expect(watch.check({ conn: 4, ...quietClient })).toHaveLength(1);
    const old = watch.check({ conn: 3, idle: { client: 50_000, upstream: 1_000 }, ageMs: 25_000 });
    expect(old.map((f) => f.message)).toEqual(['heading for gcp backend timeout 30s: 25.00 s of life; it fires in 5.00 s whatever is sent']);
    expect(old[0]?.fix).toBe('the connection will be ended at 30s of age whatever it sends; clients must reconnect');
    watch.forget(3);
    expect(watch.check({ conn: 3, ...quietClient })).toHaveLength(1);
  });
});
