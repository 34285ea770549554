import fs from 'node:fs';
import { attributionOf, ConnectionTracker } from '../analysis/connection-tracker.js';
import { narrate, narrateFindings } from '../analysis/event-narrator.js';
import { checkCaptureHeader, readCaptureEvents, readFileHead } from '../capture/capture-reader.js';
import pino from 'pino';
import type { DiagnosisContext } from '../analysis/connection-diagnosis.js';
import type { CaptureEvent } from '../capture/events.js';
import type { SessionFacts } from '../tui/screen-frame.js';
import type { PayloadMode } from '../har/har-types.js';
import { LogTail } from '../log.js';
import { diagnosisContextOf, profileFromOption } from './profile-option.js';
import { terminalAvailable } from './ui-prerequisites.js';
import { harToEvents, looksLikeHar } from '../har/har-reader.js';
import { reportFileError } from './file-errors.js';
import { PAYLOAD_MODES, parseArgsStrict, parseChoice } from './option-values.js';
import { UsageError } from './usage-error.js';

export const VIEW_HELP = `Usage: wstap view FILE [--no-tui] [--profile NAME|FILE] [--timeout NAME=DUR] [--no-redact]

Reads a wstap capture (.jsonl) or a HAR file (wstap's own, or one exported
by Chrome DevTools) and shows what happened to each connection. On a
terminal it opens the same UI as the live proxy, read-only, with the timers
frozen at the end of the recording; otherwise (or with --no-tui) it prints
the lines and verdicts the live proxy logs. What the file cannot tell (a
browser's HAR has no close evidence, for example) is marked unknown.

Options:
  --no-tui              print lines instead of opening the UI
  --profile NAME|FILE   match closes against a profile's timeouts (wstap profiles)
  --timeout NAME=DUR[:MEASURE]
                        a hop's timeout, for verdicts and countdowns (repeatable)
  --no-redact           show Cookie, Authorization and secret query values
  --payloads MODE       for the UI's HAR export (e key): none, preview, full
`;

interface Source {
  events: AsyncIterable<CaptureEvent> | Iterable<CaptureEvent>;
  unknown: Map<number, string[]>;
  describe: string;
}

function openSource(file: string, onWarning: (message: string) => void): Source {
  if (looksLikeHar(readFileHead(file, 4096))) {
    const result = harToEvents(fs.readFileSync(file, 'utf8'), file);
    for (const warning of result.warnings) onWarning(warning);
    return { events: result.events, unknown: result.unknown, describe: `HAR by ${result.creator}` };
  }
  const header = checkCaptureHeader(file);
  return {
    events: readCaptureEvents(file, { onWarning: (w) => onWarning(`${file}:${w.line}: ${w.message}`) }),
    unknown: new Map(),
    describe: `wstap capture (format ${header.version}, ${header.createdBy})`,
  };
}

function clock(t: number): string {
  return new Date(t).toISOString().slice(11, 23);
}

export async function runView(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsStrict(args, {
    'no-tui': { type: 'boolean' },
    timeout: { type: 'string', multiple: true },
    profile: { type: 'string' },
    'no-redact': { type: 'boolean' },
    payloads: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(VIEW_HELP);
    return 0;
  }
  const [file, ...extra] = positionals;
  if (!file) throw new UsageError('view needs a file (wstap view CAPTURE.jsonl or wstap view session.har)');
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  const profile = await profileFromOption(values.profile);
  const diagnosis = diagnosisContextOf(profile, values.timeout);
  const payloads = parseChoice('--payloads', typeof values.payloads === 'string' ? values.payloads : 'preview', PAYLOAD_MODES);
  if (values['no-tui'] !== true && terminalAvailable()) {
    return viewInTerminal(file, { diagnosis, profile: profile?.name ?? null, redact: values['no-redact'] !== true, payloads });
  }

  let source: Source;
  try {
    source = openSource(file, (message) => process.stderr.write(`wstap: warning: ${message}\n`));
  } catch (err) {
    return reportFileError(err, (m) => m.replace(/not a wstap capture/, 'neither a wstap capture nor a HAR file'));
  }

  const out: string[] = [`${file}: ${source.describe}`];
  const flush = (): void => {
    process.stdout.write(out.join('\n') + '\n');
    out.length = 0;
  };
  const tracker = new ConnectionTracker();
  const closedBy = new Map<string, number>();
  try {
    for await (const event of source.events) {
      const summary = tracker.apply(event);
      const line = narrate(event, summary);
      if (!line) continue;
      const findings = narrateFindings(event, summary, diagnosis);
      let text = `${clock(event.t)} ${line.level.toUpperCase().padEnd(5)} ${line.msg}`;
      if (event.kind === 'conn.close' && summary) {
        const attribution = attributionOf(summary);
        const who = attribution.orderUnknown ? 'either side (order unknown)' : (attribution.closedBy ?? 'unknown');
        closedBy.set(who, (closedBy.get(who) ?? 0) + 1);
        const missing = source.unknown.get(event.conn);
        if (missing && missing.length > 0) text += `; not in this file (unknown): ${missing.join(', ')}`;
      }
      out.push(text);
      for (const f of findings) if (f.level !== 'debug') out.push(`${clock(event.t)} ${f.level.toUpperCase().padEnd(5)} ${f.msg}`);
      if (out.length >= 200) flush();
    }
  } catch (err) {
    flush();
    return reportFileError(err);
  }
  const tally = [...closedBy].map(([who, n]) => `${n} by ${who}`).join(', ');
  out.push(`${[...closedBy.values()].reduce((a, b) => a + b, 0)} connection(s) closed${tally ? `: ${tally}` : ''}`);
  flush();
  return 0;
}

interface TerminalViewOptions {
  diagnosis: DiagnosisContext;
  profile: string | null;
  redact: boolean;
  payloads: PayloadMode;
}

/**
 * The live UI over a recording, read-only: events are folded as they are
 * read (the display fills while a big capture loads), with the timers frozen
 * at the last event read.
 */
async function viewInTerminal(file: string, options: TerminalViewOptions): Promise<number> {
  const { exportFromUi, startTerminalUi } = await import('./terminal-ui.js');
  const tail = new LogTail();
  let source: Source;
  try {
    source = openSource(file, (message) => tail.push(`warning: ${message}`));
  } catch (err) {
    return reportFileError(err, (m) => m.replace(/not a wstap capture/, 'neither a wstap capture nor a HAR file'));
  }
  tail.push(`${file}: ${source.describe}`);
  const logger = pino({ level: 'info' }, { write: (line: string) => tail.push(String((JSON.parse(line) as { msg?: unknown }).msg ?? line)) });
  const isCapture = !looksLikeHar(readFileHead(file, 4096));
  const tracker = new ConnectionTracker();
  // Filled in from the recording's session.start and last event as they are read.
  const facts: SessionFacts = { listen: file, target: 'unknown target', profile: options.profile, diagnosis: options.diagnosis, frozenAt: 0, logFile: null };
  let quit = false;
  let resolveQuit: () => void = () => undefined;
  const quitting = new Promise<void>((resolve) => (resolveQuit = resolve));
  const ui = startTerminalUi({
    tracker,
    facts,
    redact: options.redact,
    now: () => facts.frozenAt ?? 0,
    logTail: tail,
    logger,
    onQuit: () => {
      quit = true;
      resolveQuit();
    },
    onExport: () =>
      exportFromUi({
        capturePath: isCapture ? file : null,
        unavailable: `${file} is already a HAR file`,
        redact: options.redact,
        payloads: options.payloads,
        diagnosis: options.diagnosis,
        logger,
      }),
  });
  try {
    let events = 0;
    for await (const event of source.events) {
      if (quit) break;
      if (event.kind === 'session.start' && events === 0) {
        facts.listen = event.listen || file;
        facts.target = event.target || 'unknown target';
      }
      if (event.kind === 'capture.gap') {
        // The table cannot show what is missing; the log pane says so.
        const line = narrate(event, null);
        if (line) logger[line.level](line.fields, line.msg);
      }
      facts.frozenAt = Math.max(facts.frozenAt ?? 0, event.t);
      ui.app.record(event, tracker.apply(event));
      events++;
    }
    if (!quit) ui.app.say(`end of recording: ${events} events; timers frozen at its last event`);
    await quitting;
  } catch (err) {
    ui.close();
    return reportFileError(err);
  }
  ui.close();
  return 0;
}
