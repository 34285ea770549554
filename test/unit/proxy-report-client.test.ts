import { describe, expect, it } from 'vitest';
import { parseProbeReport } from '../../src/probe/proxy-report-client.js';
import type { ProbeConnectionReport } from '../../src/relay/probe-protocol.js';

function connection(conn: number, variant = 'silent'): ProbeConnectionReport {
  return { variant, mode: 'silent', conn, upgradedAt: 1000 + conn, ends: [], closedAt: null };
}

describe('parseProbeReport: the report as the probe reads it off the network', () => {
  it('takes a well-formed report and refuses one of another run or with missing fields', () => {
    const good = { run: 'r1', connections: [{ ...connection(5), ends: [{ kind: 'rst', side: 'client', t: 9 }], closedAt: 10 }] };
    expect(parseProbeReport(JSON.stringify(good), 'r1')).toEqual(good);
    expect(() => parseProbeReport(JSON.stringify(good), 'r2')).toThrow('expected {"run": "r2"');
    expect(() => parseProbeReport(JSON.stringify({ run: 'r1', connections: [{ variant: 'x' }] }), 'r1')).toThrow('connection 0 lacks');
    expect(() => parseProbeReport('<html>502</html>', 'r1')).toThrow();
  });
});
