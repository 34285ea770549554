import { DiagnosisChoice, type DiagnosisRecord } from '../analysis/diagnosis-record.js';
import { followCapture } from '../capture/capture-follower.js';
import { reportFileError } from './file-errors.js';
import { parseArgsStrict, parsePayloadMode, parseServerPorts } from './option-values.js';
import { givenDiagnosisRecord, profileFromOption } from './profile-option.js';
import { terminalAvailable } from './ui-prerequisites.js';
import { UsageError } from './usage-error.js';
import { NarratedLines } from './view-lines.js';
import { openViewSource, warningText, type ViewSource } from './view-source.js';
import { NGINX_LOG_HELP, nginxLogMerge } from './nginx-log-option.js';
import type { TerminalViewOptions } from './view-terminal.js';

export const VIEW_HELP = `Usage: wstap view FILE [FILE...] [--no-tui] [--profile NAME|FILE] [--timeout NAME=DUR] [--no-redact]
       wstap view --follow CAPTURE [--no-tui] [options]

Reads a wstap capture (.jsonl), a HAR file (wstap's own, or one exported
by Chrome DevTools) or a packet capture (tcpdump's pcap or pcapng of the
leg between nginx and the app; the files of a tcpdump -C/-W ring are read
in the order of their first packets) and shows what happened to each
connection. On a
terminal it opens the same UI as the live proxy, read-only, with the timers
frozen at the end of the recording; otherwise (or with --no-tui) it prints
the lines and verdicts the live proxy logs. What the file cannot tell (a
browser's HAR has no close evidence, for example) is marked unknown.

Closes are judged with the profile and --timeout flags the proxy ran with
(the capture records them, and so does a HAR wstap wrote); when captures of
several proxies are read as one, each connection is judged with its own
proxy's (said when they differ). --profile or --timeout here replace them
all, and say so.

A rotated capture (proxy --rotate) is read whole: CAPTURE and the
CAPTURE.1, .2... of the same session beside it, also when --keep deleted
CAPTURE itself. Several files of one session named are read as that session.

Captures of several proxies (proxy --instance, e.g. one per nginx host),
each maybe rotated, are read as one incident: merged by time, connections
numbered anew in the order they opened (ids stay unique), each labelled with
its instance and its id there ([edge-a#12] in lines and the UI's log pane,
an instance column in the UI, _wstap.instance in an exported HAR, read back
by view of that HAR).

--follow shows a capture another wstap is writing (wstap proxy --capture
CAPTURE), live: new connections, ticking idle timers, closes and verdicts as
they are written, across rotated files, until the session ends or you quit.
Any number of viewers may follow one capture; they only read it. A capture
that does not exist yet is waited for.

Options:
  --follow              follow a capture being written (as tail -f does)
  --no-tui              print lines instead of opening the UI
  --profile NAME|FILE   judge with a profile (wstap profiles) instead of the
                        capture's own
  --timeout NAME=DUR[:MEASURE]
                        a hop's timeout, for verdicts and countdowns, instead
                        of the capture's own (repeatable)
  --no-redact           show Cookie, Authorization and secret query values
  --port N              a packet capture's server port (repeatable): only
                        its connections are read, and one already open when
                        the capture began is told apart by it; without it
                        every TCP connection is read, a SYN tells the server
                        (else the lower port is taken, and said so)
  --payloads MODE       none or preview: message data in the UI's HAR export
                        (e key), as for wstap export                 [preview]
${NGINX_LOG_HELP}`;

function rewriteNotCapture(message: string): string {
  return message.replace(/not a wstap capture/, 'neither a wstap capture nor a HAR file');
}

export async function runView(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsStrict(args, {
    'no-tui': { type: 'boolean' },
    follow: { type: 'boolean', short: 'f' },
    timeout: { type: 'string', multiple: true },
    profile: { type: 'string' },
    'no-redact': { type: 'boolean' },
    payloads: { type: 'string' },
    'nginx-error-log': { type: 'string', multiple: true },
    port: { type: 'string', multiple: true },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(VIEW_HELP);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('view needs a file (wstap view CAPTURE.jsonl or wstap view session.har)');
  const follow = values.follow === true;
  if (follow && positionals.length > 1) throw new UsageError(`--follow follows one capture (the first file of its set); unexpected argument "${positionals[1]}"`);
  const profile = await profileFromOption(values.profile);
  // Null: the capture's own context (recorded by the proxy) is used.
  const diagnosis = givenDiagnosisRecord(profile, values.profile, values.timeout);
  const payloads = parsePayloadMode(values.payloads);
  const terminal: TerminalViewOptions = { diagnosis, redact: values['no-redact'] !== true, payloads };
  const tui = values['no-tui'] !== true && terminalAvailable();
  const serverPorts = parseServerPorts(values.port);
  const base = positionals[0] as string;
  const nginxLogs = values['nginx-error-log'];
  if (follow && nginxLogs) throw new UsageError('--nginx-error-log reads a log after the fact; to follow one live, give it to wstap proxy (its lines are then in the capture --follow reads)');
  if (follow && serverPorts.length > 0) throw new UsageError('--follow follows a wstap capture; --port is for packet captures');
  const merge = nginxLogMerge(nginxLogs, (note) => process.stderr.write(`wstap: ${note}\n`));
  if (follow) return tui ? followInTerminal(base, terminal) : followLines(base, diagnosis);
  if (tui) return recordingInTerminal(positionals, terminal, serverPorts, merge);
  return recordingLines(positionals, diagnosis, serverPorts, merge);
}

type EvidenceMerge = ReturnType<typeof nginxLogMerge>;

/** The source with the nginx log's lines merged in, when --nginx-error-log was given. */
function merged(source: ViewSource, merge: EvidenceMerge): ViewSource {
  return merge ? { ...source, events: merge(source.events) } : source;
}

/** The lines of a recording, to its end, then the tally. */
async function recordingLines(files: readonly string[], diagnosis: DiagnosisRecord | null, serverPorts: readonly number[], merge: EvidenceMerge): Promise<number> {
  let source: ViewSource;
  try {
    source = merged(
      openViewSource(files, (message) => process.stderr.write(`wstap: warning: ${message}\n`), {
        serverPorts,
        onNote: (note) => process.stderr.write(`wstap: ${note}\n`),
      }),
      merge,
    );
  } catch (err) {
    return reportFileError(err, rewriteNotCapture);
  }
  for (const note of source.notes) process.stderr.write(`wstap: ${files[0]}: ${note}\n`);
  const lines = new NarratedLines(new DiagnosisChoice(diagnosis), source.unknown, (note) => process.stderr.write(`wstap: ${note}\n`), source.merged);
  const out: string[] = [`${files.join(', ')}: ${source.describe}`];
  const flush = (): void => {
    process.stdout.write(out.join('\n') + '\n');
    out.length = 0;
  };
  try {
    for await (const event of source.events) {
      out.push(...lines.linesOf(event));
      if (out.length >= 200) flush();
    }
  } catch (err) {
    flush();
    return reportFileError(err);
  }
  out.push(lines.tally());
  flush();
  return 0;
}

/**
 * A capture being written, as lines (tail -f): each event's lines as it
 * arrives, until the session's end or SIGINT. Lines are written once the
 * follower waits for more, so catching up on a long capture is not a write
 * per line.
 */
async function followLines(base: string, diagnosis: DiagnosisRecord | null): Promise<number> {
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const lines = new NarratedLines(new DiagnosisChoice(diagnosis), new Map(), (note) => process.stderr.write(`wstap: ${note}\n`));
  const out: string[] = [];
  let flushing = false;
  const flush = (): void => {
    flushing = false;
    if (out.length === 0) return;
    process.stdout.write(out.join('\n') + '\n');
    out.length = 0;
  };
  try {
    const events = followCapture(base, {
      signal: stop.signal,
      onWarning: (w) => process.stderr.write(`wstap: warning: ${warningText(w)}\n`),
      onNote: (note) => process.stderr.write(`wstap: ${note}\n`),
    });
    for await (const event of events) {
      out.push(...lines.linesOf(event));
      if (!flushing) {
        flushing = true;
        setImmediate(flush);
      }
    }
  } catch (err) {
    flush();
    return reportFileError(err);
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  out.push(lines.tally());
  flush();
  return 0;
}

async function recordingInTerminal(files: readonly string[], options: TerminalViewOptions, serverPorts: readonly number[], merge: EvidenceMerge): Promise<number> {
  let source: ViewSource;
  // Warnings before the UI is up wait for its log pane; later ones go straight there.
  const early: string[] = [];
  let warn = (message: string): void => void early.push(`warning: ${message}`);
  let note = (message: string): void => void early.push(message);
  try {
    source = merged(openViewSource(files, (message) => warn(message), { serverPorts, onNote: (message) => note(message) }), merge);
  } catch (err) {
    return reportFileError(err, rewriteNotCapture);
  }
  const { viewInTerminal } = await import('./view-terminal.js');
  const label = files.join(', ');
  return viewInTerminal(
    {
      label,
      live: false,
      merged: source.merged,
      capturePaths: source.capturePaths,
      unavailable: source.describe.startsWith('packet capture') ? `export a packet capture with: wstap export ${label} -o FILE.har` : `${label} is already a HAR file`,
      open: (log) => {
        for (const line of [`${label}: ${source.describe}`, ...source.notes, ...early]) log(line);
        warn = (message) => log(`warning: ${message}`);
        note = log;
        return source.events;
      },
    },
    options,
  );
}

async function followInTerminal(base: string, options: TerminalViewOptions): Promise<number> {
  const { viewInTerminal } = await import('./view-terminal.js');
  return viewInTerminal(
    {
      label: base,
      live: true,
      merged: false,
      capturePaths: [base],
      unavailable: '',
      open: (log, signal) => {
        log(`following ${base}`);
        return followCapture(base, { signal, onWarning: (w) => log(`warning: ${warningText(w)}`), onNote: log });
      },
    },
    options,
  );
}
