import { describe, expect, it } from 'vitest';
import type { NginxLogEvent } from '../../src/capture/events.js';
import type { HopTimeout } from '../../src/profiles/hop-timeout.js';
import { probeNginxEvidence } from '../../src/probe/probe-nginx-evidence.js';
import type { VariantOutcome } from '../../src/probe/probe-variants.js';

const OPENED = Date.UTC(2026, 11, 2, 8, 0, 0);
const silent: VariantOutcome = { name: 'silent', opened: true, openedAt: OPENED, livedSeconds: 4.02, clientEnd: { kind: 'fin' }, proxy: null };
const hops: HopTimeout[] = [
  { hop: 'lb', setting: 'idle_timeout', seconds: 4, measures: 'both-idle', where: 'client-side', action: 'fin' },
  { hop: 'nginx', setting: 'proxy_read_timeout', seconds: 4, measures: 'both-idle', where: 'client-side', action: 'fin' },
];

function line(atMs: number, fields: Partial<NginxLogEvent> = {}): NginxLogEvent {
  const at = Math.floor(atMs / 1000) * 1000;
  return {
    kind: 'nginx.log',
    t: at + 999,
    file: 'error.log',
    at,
    time: '2026/12/02 08:00:04',
    level: 'info',
    pid: 10,
    tid: 0,
    connection: 7,
    message: 'client closed connection while waiting for request',
    fields: { client: '127.0.0.1' },
    ...fields,
  };
}

const timeoutLine = (atMs: number, request: string): NginxLogEvent =>
  line(atMs, {
    message: 'upstream timed out',
    errno: { code: 110, text: 'Connection timed out' },
    action: 'proxying upgraded connection',
    fields: { client: '127.0.0.1', server: 'localhost', request: `${request} HTTP/1.1`, upstream: 'http://127.0.0.1:9/probe' },
  });

describe('nginx error log as evidence about the probe\'s silent connection', () => {
  it('a timeout line for the probe\'s request at the cut: nginx fired, quoted', () => {
    const facts = probeNginxEvidence([line(OPENED - 5000), timeoutLine(OPENED + 4000, 'GET /probe')], silent, 'GET /probe', hops);
    expect(facts.note).toBeNull();
    expect(facts.evidence).toEqual([{ hop: 'nginx', fired: true, text: expect.stringMatching(/^nginx's error log: ".*upstream timed out \(110: Connection timed out\) while proxying upgraded connection.*GET \/probe HTTP\/1\.1/) as unknown }]);
  });

  it('a timeout line for another request, or far from the cut, proves nothing; info lines around it rule nginx out', () => {
    const lines = [timeoutLine(OPENED + 4000, 'GET /other'), timeoutLine(OPENED + 60_000, 'GET /probe'), line(OPENED + 1000)];
    const facts = probeNginxEvidence(lines, silent, 'GET /probe', hops);
    expect(facts.evidence).toEqual([{ hop: 'nginx', fired: false, text: expect.stringContaining('no timeout line for "GET /probe": nginx\'s timer did not fire') as unknown }]);
  });

  it('a log without info lines cannot tell: no evidence, a note saying how to make it tell', () => {
    const facts = probeNginxEvidence([line(OPENED + 1000, { level: 'error', message: 'connect() failed' })], silent, 'GET /probe', hops);
    expect(facts.evidence).toEqual([]);
    expect(facts.note).toContain('error_log FILE info;');
  });

  it('no nginx hop in the profile, or no cut: nothing to say', () => {
    expect(probeNginxEvidence([timeoutLine(OPENED + 4000, 'GET /probe')], silent, 'GET /probe', [hops[0] as HopTimeout])).toEqual({ evidence: [], note: null });
    const open: VariantOutcome = { ...silent, clientEnd: { kind: 'open' } };
    expect(probeNginxEvidence([timeoutLine(OPENED + 4000, 'GET /probe')], open, 'GET /probe', hops)).toEqual({ evidence: [], note: null });
  });
});
