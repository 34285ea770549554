import fs from 'node:fs';
import { attributionOf, ConnectionTracker } from '../analysis/connection-tracker.js';
import { narrate } from '../analysis/event-narrator.js';
import { checkCaptureHeader, readCaptureEvents, readFileHead } from '../capture/capture-reader.js';
import type { CaptureEvent } from '../capture/events.js';
import { harToEvents, looksLikeHar } from '../har/har-reader.js';
import { reportFileError } from './file-errors.js';
import { parseArgsStrict } from './option-values.js';
import { UsageError } from './usage-error.js';

export const VIEW_HELP = `Usage: wstap view FILE

Reads a wstap capture (.jsonl) or a HAR file (wstap's own, or one exported
by Chrome DevTools) and prints what happened to each connection: the same
lines and verdicts the live proxy logs. What the file cannot tell (a
browser's HAR has no close evidence, for example) is marked unknown.
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
  const { values, positionals } = parseArgsStrict(args, { help: { type: 'boolean', short: 'h' } });
  if (values.help) {
    process.stdout.write(VIEW_HELP);
    return 0;
  }
  const [file, ...extra] = positionals;
  if (!file) throw new UsageError('view needs a file (wstap view CAPTURE.jsonl or wstap view session.har)');
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);

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
      let text = `${clock(event.t)} ${line.level.toUpperCase().padEnd(5)} ${line.msg}`;
      if (event.kind === 'conn.close' && summary) {
        const who = attributionOf(summary).closedBy ?? 'unknown';
        closedBy.set(who, (closedBy.get(who) ?? 0) + 1);
        const missing = source.unknown.get(event.conn);
        if (missing && missing.length > 0) text += `; not in this file (unknown): ${missing.join(', ')}`;
      }
      out.push(text);
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
