import { describe, expect, it } from 'vitest';
import { ProbeReports } from '../../src/relay/probe-reports.js';
import type { ProbeConnectionReport } from '../../src/relay/probe-protocol.js';

function connection(conn: number, variant = 'silent'): ProbeConnectionReport {
  return { variant, mode: 'silent', conn, upgradedAt: 1000 + conn, ends: [], closedAt: null };
}

describe('ProbeReports: what wstap keeps for the probe, bounded', () => {
  it('reports a run by its id, with later changes to a connection, as a copy', () => {
    const reports = new ProbeReports();
    const live = reports.add('run1', connection(1));
    reports.add('run2', connection(2));
    live.ends.push({ kind: 'fin', side: 'client', t: 3000 });
    const report = reports.report('run1');
    expect(report).toEqual({ run: 'run1', connections: [{ ...connection(1), ends: [{ kind: 'fin', side: 'client', t: 3000 }] }] });
    report.connections[0]?.ends.pop();
    expect(reports.report('run1').connections[0]?.ends).toHaveLength(1);
    expect(reports.report('unknown')).toEqual({ run: 'unknown', connections: [] });
  });

  it('forgets the oldest runs past its limit, never the run still adding connections', () => {
    const reports = new ProbeReports(3);
    reports.add('old', connection(1));
    reports.add('busy', connection(2));
    reports.add('old2', connection(3));
    reports.add('busy', connection(4));
    expect(reports.report('old').connections).toEqual([]);
    expect(reports.report('busy').connections.map((c) => c.conn)).toEqual([2, 4]);
    expect(reports.report('old2').connections.map((c) => c.conn)).toEqual([3]);
  });
});
