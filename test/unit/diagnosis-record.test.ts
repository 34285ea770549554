import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EMPTY_DIAGNOSIS_CONTEXT } from '../../src/analysis/connection-diagnosis.js';
import { DiagnosisChoice, readDiagnosisRecord, type DiagnosisRecord } from '../../src/analysis/diagnosis-record.js';
import { parseTimeoutSpec } from '../../src/profiles/hop-timeout.js';
import { captureHeaderLine, headerSessionStart, type CaptureHeader } from '../../src/capture/capture-format.js';
import type { CaptureEvent, SessionStartEvent } from '../../src/capture/events.js';
import { diagnosisRecordOf, givenDiagnosisRecord } from '../../src/cli/profile-option.js';
import { NarratedLines } from '../../src/cli/view-lines.js';
import { buildHar } from '../../src/har/har-document.js';
import { writeHarFile } from '../../src/har/har-file-writer.js';
import { harToEvents } from '../../src/har/har-reader.js';
import type { Profile } from '../../src/profiles/profile.js';
import { closeEvent, finEvent, handshakeRequestEvent, handshakeResponseEvent, openEvent, T0 } from '../support/event-fixtures.js';
import { harSchemaErrors } from '../support/har-schema.js';

const PROFILE: Profile = {
  name: 'fast',
  description: 'a test profile',
  hops: [{ name: 'nginx', where: 'client-side', timeouts: [] }] as unknown as Profile['hops'],
  heartbeat: { from: 'client', kind: 'ws-ping', interval: 30, timeout: 10 },
  app: { requiresHeaders: ['X-Forwarded-For'], keepAliveTimeout: 5 },
  source: '/tmp/profiles/fast.yaml',
};

/** What `wstap proxy --timeout nginx.proxy_read_timeout=1s` records. */
const FLAGS_ONLY = diagnosisRecordOf(null, undefined, ['nginx.proxy_read_timeout=1s']);

function start(diagnosis?: DiagnosisRecord): SessionStartEvent {
  return {
    kind: 'session.start', t: T0, version: '0.1.0', mode: 'http', listen: '127.0.0.1:8066', target: 'http://127.0.0.1:8065', pid: 1, previewLimit: 256,
    ...(diagnosis ? { diagnosis } : {}),
  };
}

/** One WebSocket, quiet for a second after its upgrade, then the client side's hop sends FIN. */
function idleSession(diagnosis?: DiagnosisRecord): CaptureEvent[] {
  return [
    start(diagnosis),
    openEvent(1, { t: T0 }),
    handshakeRequestEvent(1, T0 + 1),
    handshakeResponseEvent(1, T0 + 3),
    finEvent(1, T0 + 1003, 'client', { client: 1000, upstream: 1000 }),
    finEvent(1, T0 + 1004, 'upstream', { client: 1, upstream: 1001 }),
    closeEvent(1, T0 + 1005),
  ];
}

/** Each event through JSON, as a capture file holds it. */
const throughJson = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

function narrated(events: CaptureEvent[], given: DiagnosisRecord | null): { lines: string[]; notes: string[] } {
  const notes: string[] = [];
  const lines = new NarratedLines(new DiagnosisChoice(given), new Map(), (n) => notes.push(n));
  return { lines: events.flatMap((e) => lines.linesOf(e)), notes };
}

describe('the diagnosis context a session records', () => {
  it('names the profile (file or shipped), the flags as given and what they resolve to', () => {
    const record = diagnosisRecordOf(PROFILE, 'profiles/fast.yaml', ['nginx.proxy_read_timeout=1s']);
    expect(record.version).toBe(1);
    expect(record.profile).toEqual({ name: 'fast', source: '/tmp/profiles/fast.yaml' });
    expect(record.timeoutFlags).toEqual(['nginx.proxy_read_timeout=1s']);
    expect(record.context.timeouts).toEqual([parseTimeoutSpec('nginx.proxy_read_timeout=1s')]);
    expect(record.context.heartbeat).toEqual(PROFILE.heartbeat);
    expect(record.context.requiredHeaders).toEqual(['X-Forwarded-For']);
    expect(record.context.appKeepAliveMs).toBe(5000);
    expect(diagnosisRecordOf({ ...PROFILE, source: 'fast' }, 'fast', undefined).profile).toEqual({ name: 'fast', source: 'shipped' });
    expect(givenDiagnosisRecord(null, undefined, undefined)).toBeNull();
    expect(givenDiagnosisRecord(null, undefined, [])).toBeNull();
  });

  it('round-trips through session.start JSON, and through a later segment header', () => {
    const record = diagnosisRecordOf(PROFILE, 'profiles/fast.yaml', ['nginx.proxy_read_timeout=1s', 'alb.idle_timeout=60s']);
    const back = throughJson(start(record));
    expect(readDiagnosisRecord(back.diagnosis)).toEqual(record);
    const header = JSON.parse(captureHeaderLine('wstap 0.1.0', { session: 's', segment: 1, start: start(record) })) as CaptureHeader;
    expect(readDiagnosisRecord(headerSessionStart(header)?.diagnosis)).toEqual(record);
  });

  it('refuses a record it cannot read, saying why', () => {
    expect(readDiagnosisRecord(undefined)).toBeNull();
    expect(String(readDiagnosisRecord({ ...FLAGS_ONLY, version: 2 }))).toMatch(/version 2 is not one this wstap reads/);
    const badTimeout = throughJson(FLAGS_ONLY) as unknown as { context: { timeouts: Array<Record<string, unknown>> } };
    (badTimeout.context.timeouts[0] as Record<string, unknown>)['measures'] = 'sometimes';
    expect(String(readDiagnosisRecord(badTimeout))).toMatch(/known measure/);
    expect(String(readDiagnosisRecord({ ...FLAGS_ONLY, context: { ...FLAGS_ONLY.context, appKeepAliveMs: -1 } }))).toMatch(/appKeepAliveMs must be a number > 0/);
    const choice = new DiagnosisChoice(null);
    expect(choice.start({ ...start(), diagnosis: { ...FLAGS_ONLY, version: 7 } as unknown as DiagnosisRecord })).toMatch(/version 7 .*judging with no profile and no --timeout/);
    expect(choice.context).toBe(EMPTY_DIAGNOSIS_CONTEXT);
  });
});

describe('view judges with the capture\'s context', () => {
  it('by default: the same timeout.match the live proxy logged', () => {
    const { lines, notes } = narrated(idleSession(FLAGS_ONLY).map(throughJson), null);
    expect(lines.join('\n')).toMatch(/matches nginx proxy_read_timeout 1s/);
    expect(notes).toEqual([]);
  });

  it('--timeout given there replaces it and says so', () => {
    const other = givenDiagnosisRecord(null, undefined, ['other=5s']);
    const { lines, notes } = narrated(idleSession(FLAGS_ONLY), other);
    expect(lines.join('\n')).not.toMatch(/proxy_read_timeout/);
    expect(lines.join('\n')).toMatch(/matches no known timeout/);
    expect(notes).toEqual(["judging with --timeout other=5s instead of the capture's --timeout nginx.proxy_read_timeout=1s"]);
  });

  it('the same profile and flags given again: nothing to say, whatever order the keys were written in', () => {
    const given = diagnosisRecordOf(PROFILE, 'profiles/fast.yaml', ['nginx.proxy_read_timeout=1s']);
    const reordered = { timeoutFlags: given.timeoutFlags, context: { appKeepAliveMs: 5000, heartbeat: { interval: 30, timeout: 10, kind: 'ws-ping', from: 'client' }, requiredHeaders: ['X-Forwarded-For'], timeouts: given.context.timeouts.map((t) => ({ measures: t.measures, seconds: t.seconds, setting: t.setting, hop: t.hop })) }, profile: given.profile, version: 1 };
    expect(new DiagnosisChoice(given).start(start(reordered as DiagnosisRecord))).toBeNull();
  });

  it('an older capture (no context) reads as before: nothing to judge timeouts with, nothing said', () => {
    const { lines, notes } = narrated(idleSession(), null);
    expect(lines.join('\n')).not.toMatch(/timeout/);
    expect(notes).toEqual([]);
  });
});

describe('a HAR carries the context', () => {
  it('in log._wstap.diagnosisContext, and view of the HAR judges the same way', () => {
    const har = buildHar(idleSession(FLAGS_ONLY), { payloads: 'preview', redact: true }, '0.1.0');
    expect(harSchemaErrors(har)).toEqual([]);
    expect(har.log._wstap?.diagnosisContext).toEqual(FLAGS_ONLY);
    expect(JSON.stringify(har.log.entries[0]?._wstap?.diagnosis)).toMatch(/timeout\.match/);
    const read = harToEvents(JSON.stringify(har), 'x.har');
    expect(read.warnings).toEqual([]);
    const readStart = read.events[0] as SessionStartEvent;
    expect(readStart.diagnosis).toEqual(FLAGS_ONLY);
    expect(narrated(read.events, null).lines.join('\n')).toMatch(/matches nginx proxy_read_timeout 1s/);
  });

  it('the streamed HAR file the same', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wstap-ctx-'));
    try {
      const file = path.join(dir, 'x.har');
      async function* events(): AsyncIterable<CaptureEvent> {
        yield* idleSession(FLAGS_ONLY);
      }
      await writeHarFile(events(), { path: file, overwrite: false, creatorVersion: '0.1.0', payloads: 'preview', redact: true });
      const read = harToEvents(fs.readFileSync(file, 'utf8'), file);
      expect((read.events[0] as SessionStartEvent).diagnosis).toEqual(FLAGS_ONLY);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an override is what the HAR is judged with and carries, and is said', () => {
    const notes: string[] = [];
    const other = givenDiagnosisRecord(null, undefined, ['other=5s']);
    const har = buildHar(idleSession(FLAGS_ONLY), { payloads: 'preview', redact: true, diagnosis: other, onJudging: (n) => notes.push(n) }, '0.1.0');
    expect(har.log._wstap?.diagnosisContext).toEqual(other);
    expect(JSON.stringify(har.log.entries[0]?._wstap?.diagnosis)).not.toMatch(/timeout\.match/);
    expect(notes).toEqual(["judging with --timeout other=5s instead of the capture's --timeout nginx.proxy_read_timeout=1s"]);
  });

  it('an older capture gives the HAR it gave before (no log._wstap), and an older HAR reads without a context', () => {
    const har = buildHar(idleSession(), { payloads: 'preview', redact: true }, '0.1.0');
    expect(har.log._wstap).toBeUndefined();
    const read = harToEvents(JSON.stringify(har), 'old.har');
    expect(read.warnings).toEqual([]);
    expect('diagnosis' in (read.events[0] as SessionStartEvent)).toBe(false);
  });

  it('a HAR whose context is unusable is read with a warning and judged with nothing', () => {
    const har = buildHar(idleSession(FLAGS_ONLY), { payloads: 'preview', redact: true }, '0.1.0');
    const text = JSON.stringify({ log: { ...har.log, _wstap: { diagnosisContext: { version: 99 } } } });
    const read = harToEvents(text, 'future.har');
    expect(read.warnings).toEqual(['log._wstap.diagnosisContext: ignored: diagnosis context version 99 is not one this wstap reads (1)']);
    expect('diagnosis' in (read.events[0] as SessionStartEvent)).toBe(false);
  });
});
