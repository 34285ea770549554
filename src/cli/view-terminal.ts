import pino from 'pino';
import { ConnectionTracker } from '../analysis/connection-tracker.js';
import { DiagnosisChoice, type DiagnosisRecord } from '../analysis/diagnosis-record.js';
import { EMPTY_DIAGNOSIS_CONTEXT } from '../analysis/connection-diagnosis.js';
import { narrate } from '../analysis/event-narrator.js';
import { instanceLabel } from '../analysis/instance-label.js';
import type { CaptureEvent } from '../capture/events.js';
import type { PayloadMode } from '../har/har-types.js';
import { LogTail } from '../log.js';
import type { SessionFacts } from '../tui/screen-frame.js';
import { reportFileError } from './file-errors.js';

export interface TerminalViewOptions {
  /** Judge with this instead of the capture's own context; null: the capture's. */
  diagnosis: DiagnosisRecord | null;
  redact: boolean;
  payloads: PayloadMode;
}

/** What the UI shows: a recording read to its end, or a capture followed as it is written. */
export interface TerminalViewInput {
  /** How the header names the source until the capture's session.start says where it listened. */
  label: string;
  /** Opens the events; called once the UI is up (its warnings and notes go to the log pane). */
  open: (log: (message: string) => void, signal: AbortSignal) => AsyncIterable<CaptureEvent> | Iterable<CaptureEvent>;
  /** Following a live capture: the clock runs (wall clock) until the session ends. */
  live: boolean;
  /** Several proxies' captures read as one: the log pane's session lines say whose they are. */
  merged: boolean;
  /** For the e key; null says why there is nothing to export from. */
  capturePaths: string[] | null;
  unavailable: string;
}

/**
 * The live UI over a capture, read-only. A recording is folded as it is
 * read (the display fills while a big capture loads), with the timers frozen
 * at its last event. A followed capture keeps the clock running (event `t`
 * is wall-clock epoch ms, so `now` is the wall clock) until its session.end,
 * then freezes the timers there; idle timers count from the last frame or
 * head the events show (the live proxy knows the last byte).
 */
export async function viewInTerminal(input: TerminalViewInput, options: TerminalViewOptions): Promise<number> {
  const { exportFromUi, startTerminalUi } = await import('./terminal-ui.js');
  const tail = new LogTail();
  const logger = pino({ level: 'info' }, { write: (line: string) => tail.push(String((JSON.parse(line) as { msg?: unknown }).msg ?? line)) });
  const tracker = new ConnectionTracker();
  // Filled in from the capture's session.start and its events as they are read.
  const judging = new DiagnosisChoice(options.diagnosis);
  const facts: SessionFacts = { listen: input.label, target: 'unknown target', profile: judging.inForce?.profile?.name ?? null, diagnosis: judging.context, frozenAt: input.live ? null : 0, logFile: null };
  const quitting = new AbortController();
  const quit = new Promise<void>((resolve) => quitting.signal.addEventListener('abort', () => resolve(), { once: true }));
  const ui = startTerminalUi({
    tracker,
    facts,
    redact: options.redact,
    now: () => facts.frozenAt ?? Date.now(),
    logTail: tail,
    logger,
    onQuit: () => quitting.abort(),
    onExport: () =>
      exportFromUi({
        capturePath: input.capturePaths,
        unavailable: input.unavailable,
        redact: options.redact,
        payloads: options.payloads,
        diagnosis: options.diagnosis,
        logger,
      }),
  });
  let events = 0;
  let ended: CaptureEvent | null = null;
  let lastT: number | null = null;
  try {
    for await (const event of input.open((message) => tail.push(message), quitting.signal)) {
      if (quitting.signal.aborted) break;
      if (event.kind === 'session.start') {
        // The header names the profile in force: the capture's, unless --profile/--timeout replaced it.
        const note = judging.start(event);
        if (note) tail.push(note);
        if (events === 0) {
          facts.listen = event.listen || input.label;
          facts.target = event.target || 'unknown target';
          facts.profile = judging.inForce?.profile?.name ?? null;
          facts.diagnosis = judging.context;
        }
        // Several instances that ran with different contexts: each connection is judged with its own instance's.
        const perInstance = judging.perInstance;
        if (perInstance) facts.perInstance = new Map([...perInstance].map(([name, r]) => [name, { profile: r?.profile?.name ?? null, diagnosis: r?.context ?? EMPTY_DIAGNOSIS_CONTEXT }]));
      }
      if (event.kind === 'capture.gap' || event.kind === 'session.end') {
        // The table cannot show these; the log pane says them, labelled with their instance as view's lines are.
        const line = narrate(event, null);
        if (line) logger[line.level](line.fields, instanceLabel(event, null, input.merged)(line.msg));
      }
      if (!input.live) facts.frozenAt = Math.max(facts.frozenAt ?? 0, event.t);
      ui.app.record(event, tracker.apply(event));
      events++;
      lastT = event.t;
      if (event.kind === 'session.end') ended = event;
    }
    if (!quitting.signal.aborted) {
      if (input.live && ended) {
        facts.frozenAt = ended.t;
        ui.app.say(`the session ended: ${events} events; timers frozen at its end`);
      } else if (input.live) {
        // The follower gave up on a writer that is gone (killed): its last event is the last word.
        facts.frozenAt = lastT ?? 0;
        ui.app.say(`the capture ends without its session's end: ${events} events; timers frozen at its last event`);
      } else if (!input.live) {
        ui.app.say(`end of recording: ${events} events; timers frozen at its last event`);
      }
    }
    await quit;
  } catch (err) {
    ui.close();
    return reportFileError(err);
  }
  ui.close();
  return 0;
}
