import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConnectionTracker } from '../../src/analysis/connection-tracker.js';
import { DiagnosisChoice, type DiagnosisRecord } from '../../src/analysis/diagnosis-record.js';
import { captureHeaderLine } from '../../src/capture/capture-format.js';
import { instanceCapturesOfFiles, readMergedEvents } from '../../src/capture/capture-merge.js';
import type { CaptureEvent, SessionStartEvent } from '../../src/capture/events.js';
import { diagnosisRecordOf, givenDiagnosisRecord } from '../../src/cli/profile-option.js';
import { NarratedLines } from '../../src/cli/view-lines.js';
import { buildHar } from '../../src/har/har-document.js';
import { harToEvents } from '../../src/har/har-reader.js';
import type { HarLog } from '../../src/har/har-types.js';
import { connectionRow } from '../../src/tui/connection-rows.js';
import { closeEvent, finEvent, frameEvent, handshakeRequestEvent, handshakeResponseEvent, openEvent, T0 } from '../support/event-fixtures.js';
import { harSchemaErrors } from '../support/har-schema.js';
import { query } from '../support/tui-fixtures.js';

/**
 * Issue 20 item 3: captures of two proxies that ran with different
 * contexts, read as one. The same 2 s silence before a FIN is a
 * `timeout.match` through the proxy whose hop times out at 2 s and not
 * through the one whose hop waits 30 s: each connection is judged with its
 * own instance's recorded context, in view's lines, in the HAR's findings
 * and in view of that HAR, which also labels each connection with its
 * instance again.
 */

const FAST = diagnosisRecordOf(null, undefined, ['front.idle=2s']);
const SLOW = diagnosisRecordOf(null, undefined, ['front.idle=30s']);

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-judged-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function start(t: number, instance: string, diagnosis: DiagnosisRecord | null): SessionStartEvent {
  return { kind: 'session.start', t, version: '1', mode: 'http', listen: 'l', target: 'http://10.0.0.9:8065', pid: 1, previewLimit: 64, instance, ...(diagnosis ? { diagnosis } : {}) };
}

/** One WebSocket, silent 2 s after its upgrade, then the client's FIN and the upstream's. */
function quietTwoSeconds(conn: number, t: number): CaptureEvent[] {
  return [
    openEvent(conn, { t }),
    handshakeRequestEvent(conn, t + 1, { url: `/ws/${conn}` }),
    handshakeResponseEvent(conn, t + 3),
    finEvent(conn, t + 2003, 'client', { client: 2000, upstream: 2000 }),
    finEvent(conn, t + 2004, 'upstream', { client: 1, upstream: 2001 }),
    closeEvent(conn, t + 2005),
  ];
}

function write(name: string, instance: string, events: CaptureEvent[]): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, captureHeaderLine('test', { session: name, segment: 0 }, instance) + events.map((e) => JSON.stringify(e) + '\n').join(''));
  return file;
}

/** edge-a (2 s hop) and edge-b (30 s hop, or what `bRecord` says), one quiet connection each, interleaved in time. */
async function mergedEvents(bRecord: DiagnosisRecord | null = SLOW): Promise<CaptureEvent[]> {
  const a = write('a.jsonl', 'edge-a', [start(T0, 'edge-a', FAST), ...quietTwoSeconds(7, T0 + 10)]);
  const b = write('b.jsonl', 'edge-b', [start(T0 + 5, 'edge-b', bRecord), ...quietTwoSeconds(3, T0 + 20)]);
  const out: CaptureEvent[] = [];
  for await (const e of readMergedEvents(instanceCapturesOfFiles([a, b]))) out.push(e);
  return out;
}

function viewed(events: readonly CaptureEvent[], given: DiagnosisRecord | null = null, merged = true): { lines: string[]; notes: string[] } {
  const notes: string[] = [];
  const view = new NarratedLines(new DiagnosisChoice(given), new Map(), (n) => notes.push(n), merged);
  return { lines: events.flatMap((e) => view.linesOf(e)), notes };
}

/** The timeout verdict line of each connection: `#1 [edge-a#7] ...`. */
const verdicts = (lines: readonly string[]): string[] => lines.filter((l) => / matches /.test(l) && /#\d+ \[/.test(l)).map((l) => l.slice(l.indexOf('#')));

const FINDINGS = (har: HarLog): Array<[string | undefined, string[]]> =>
  har.log.entries.map((e) => [e._wstap?.instance, (e._wstap?.diagnosis ?? []).filter((f) => f.id.startsWith('timeout.')).map((f) => f.id)]);

describe('instances that ran with different contexts, read as one', () => {
  it('view: each connection judged with its own instance\'s hops; one note says they differ', async () => {
    const { lines, notes } = viewed(await mergedEvents());
    const judged = verdicts(lines);
    expect(judged.filter((l) => l.startsWith('#1 [edge-a#7]')).join('\n')).toMatch(/matches front idle 2s/);
    expect(judged.filter((l) => l.startsWith('#2 [edge-b#3]')).join('\n')).toMatch(/matches no known timeout/);
    expect(judged.join('\n')).not.toMatch(/\[edge-b#3\].*matches front/);
    expect(notes).toEqual([
      "the instances ran with different contexts, each connection is judged with its own instance's: edge-a: --timeout front.idle=2s; edge-b: --timeout front.idle=30s",
    ]);
  });

  it('two sessions of one instance name (a restart with another profile) are told apart and each judged with its own context', async () => {
    const a = write('first.jsonl', 'edge-a', [start(T0, 'edge-a', FAST), ...quietTwoSeconds(7, T0 + 10)]);
    const b = write('second.jsonl', 'edge-a', [start(T0 + 5, 'edge-a', SLOW), ...quietTwoSeconds(7, T0 + 20)]);
    const events: CaptureEvent[] = [];
    for await (const e of readMergedEvents(instanceCapturesOfFiles([a, b]))) events.push(e);
    const { lines, notes } = viewed(events);
    const judged = verdicts(lines);
    expect(judged.filter((l) => l.startsWith('#1 [edge-a (session 1)#7]')).join('\n')).toMatch(/matches front idle 2s/);
    expect(judged.filter((l) => l.startsWith('#2 [edge-a (session 2)#7]')).join('\n')).toMatch(/matches no known timeout/);
    expect(notes).toEqual([
      "the instances ran with different contexts, each connection is judged with its own instance's: edge-a (session 1): --timeout front.idle=2s; edge-a (session 2): --timeout front.idle=30s",
    ]);
  });

  it('the same contexts say nothing and judge alike', async () => {
    const { lines, notes } = viewed(await mergedEvents(FAST));
    expect(notes).toEqual([]);
    expect(verdicts(lines).filter((l) => /matches front idle 2s/.test(l)).map((l) => l.slice(0, 13))).toEqual(['#1 [edge-a#7]', '#2 [edge-b#3]']);
  });

  it('an instance that recorded nothing is judged with nothing, and that is a difference too', async () => {
    const { lines, notes } = viewed(await mergedEvents(null));
    expect(notes).toEqual([expect.stringContaining('edge-b: no profile and no --timeout')]);
    expect(verdicts(lines).join('\n')).not.toMatch(/\[edge-b#3\]/);
  });

  it('--timeout on the command line judges every instance, and says so for each whose context it replaces', async () => {
    const given = givenDiagnosisRecord(null, undefined, ['front.idle=30s']);
    const { lines, notes } = viewed(await mergedEvents(FAST), given);
    expect(verdicts(lines).filter((l) => /matches front idle 2s/.test(l))).toEqual([]);
    expect(notes).toEqual(["judging with --timeout front.idle=30s instead of the capture's --timeout front.idle=2s"]);
    const differing = viewed(await mergedEvents(diagnosisRecordOf(null, undefined, ['front.idle=9s'])), given);
    expect(differing.notes).toEqual([
      "judging with --timeout front.idle=30s instead of the capture's --timeout front.idle=2s",
      "judging with --timeout front.idle=30s instead of edge-b's capture's --timeout front.idle=9s",
    ]);
  });

  it('export: findings per instance, log._wstap.diagnosisContexts; view of the HAR judges and labels as the captures did', async () => {
    const events = await mergedEvents();
    const notes: string[] = [];
    const har = buildHar(events, { payloads: 'preview', redact: true, onJudging: (n) => notes.push(n) }, '0.1.0');
    expect(harSchemaErrors(har)).toEqual([]);
    expect(notes).toHaveLength(1);
    expect(FINDINGS(har)).toEqual([
      ['edge-a', ['timeout.match']],
      ['edge-b', ['timeout.none']],
    ]);
    // The first's stays where older readers look; each instance's beside it.
    expect(har.log._wstap?.diagnosisContext).toEqual(FAST);
    expect(har.log._wstap?.diagnosisContexts).toEqual({ 'edge-a': FAST, 'edge-b': SLOW });

    const read = harToEvents(JSON.stringify(har), 'both.har');
    expect(read.warnings).toEqual([]);
    expect(read.events.filter((e) => e.kind === 'conn.open').map((e) => (e.kind === 'conn.open' ? [e.conn, e.instance, e.instanceConn] : []))).toEqual([
      [1, 'edge-a', 7],
      [2, 'edge-b', 3],
    ]);
    const fromCaptures = viewed(events);
    const fromHar = viewed(read.events);
    expect(verdicts(fromHar.lines)).toEqual(verdicts(fromCaptures.lines));
    expect(fromHar.notes).toEqual(fromCaptures.notes);
    expect(fromHar.lines.filter((l) => / open from /.test(l)).map((l) => /#\d+ \[[^\]]+\]/.exec(l)?.[0])).toEqual(['#1 [edge-a#7]', '#2 [edge-b#3]']);
    // Exported again, the HAR gives the same findings and contexts.
    const again = buildHar(read.events, { payloads: 'preview', redact: true }, '0.1.0');
    expect(FINDINGS(again)).toEqual(FINDINGS(har));
    expect(again.log._wstap?.diagnosisContexts).toEqual(har.log._wstap?.diagnosisContexts);
  });

  it('export with the same contexts writes one, as before; with --timeout given, only that one', async () => {
    const same = buildHar(await mergedEvents(FAST), { payloads: 'preview', redact: true }, '0.1.0');
    expect(same.log._wstap?.diagnosisContext).toEqual(FAST);
    expect(same.log._wstap?.diagnosisContexts).toBeUndefined();
    const given = givenDiagnosisRecord(null, undefined, ['front.idle=2s']) as DiagnosisRecord;
    const overridden = buildHar(await mergedEvents(), { payloads: 'preview', redact: true, diagnosis: given }, '0.1.0');
    expect(overridden.log._wstap?.diagnosisContext).toEqual(given);
    expect(overridden.log._wstap?.diagnosisContexts).toBeUndefined();
    expect(FINDINGS(overridden)).toEqual([
      ['edge-a', ['timeout.match']],
      ['edge-b', ['timeout.match']],
    ]);
  });

  it('a HAR whose connection lacks its beginning still names its instance; a bad instance context is warned and judged with nothing', async () => {
    const b = write('b.jsonl', 'edge-b', [start(T0, 'edge-b', SLOW), frameEvent({ conn: 5, t: T0 + 10, side: 'client', opcode: 1, length: 2 }), finEvent(5, T0 + 2010, 'client', { client: 2000, upstream: 2000 }), closeEvent(5, T0 + 2011)]);
    const a = write('a.jsonl', 'edge-a', [start(T0, 'edge-a', FAST), ...quietTwoSeconds(7, T0 + 10)]);
    const events: CaptureEvent[] = [];
    for await (const e of readMergedEvents(instanceCapturesOfFiles([a, b]))) events.push(e);
    const har = buildHar(events, { payloads: 'preview', redact: true }, '0.1.0');
    const read = harToEvents(JSON.stringify(har), 'x.har');
    const tracker = new ConnectionTracker();
    for (const e of read.events) tracker.apply(e);
    const standIn = [...tracker.closed].find((s) => s.open.instance === 'edge-b');
    expect([standIn?.open.instanceConn, standIn?.missing?.beginning]).toEqual([5, true]);

    const bad = JSON.parse(JSON.stringify(har)) as HarLog;
    (bad.log._wstap as { diagnosisContexts: Record<string, unknown> }).diagnosisContexts['edge-b'] = { version: 99 };
    const badRead = harToEvents(JSON.stringify(bad), 'bad.har');
    expect(badRead.warnings).toEqual(['log._wstap.diagnosisContexts["edge-b"]: ignored: diagnosis context version 99 is not one this wstap reads (1)']);
    expect(badRead.events.filter((e): e is SessionStartEvent => e.kind === 'session.start').map((e) => [e.instance, e.diagnosis?.timeoutFlags])).toEqual([
      ['edge-a', ['front.idle=2s']],
      ['edge-b', undefined],
    ]);
  });

  it('the UI counts each open connection down toward its own instance\'s timeout', () => {
    const choice = new DiagnosisChoice(null);
    choice.start(start(T0, 'edge-a', FAST));
    choice.start(start(T0, 'edge-b', SLOW));
    const tracker = new ConnectionTracker();
    const a = tracker.apply({ ...openEvent(1, { t: T0 }), instance: 'edge-a', instanceConn: 1 });
    const b = tracker.apply({ ...openEvent(2, { t: T0 }), instance: 'edge-b', instanceConn: 1 });
    const q = { ...query(T0 + 1000), timeoutsOf: (s: { open: { instance?: string } }) => choice.contextOf(s.open.instance).timeouts };
    const countdown = (s: typeof a) => connectionRow(s as NonNullable<typeof a>, q).countdown;
    expect(countdown(a)?.timeout.seconds).toBe(2);
    expect(countdown(b)?.timeout.seconds).toBe(30);
  });
});
