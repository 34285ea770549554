import { attributionOf, ConnectionTracker } from '../analysis/connection-tracker.js';
import type { DiagnosisChoice } from '../analysis/diagnosis-record.js';
import { narrate, narrateFindings } from '../analysis/event-narrator.js';
import type { CaptureEvent } from '../capture/events.js';

function clock(t: number): string {
  return new Date(t).toISOString().slice(11, 23);
}

/**
 * The lines the live proxy logs, from events read back: `view --no-tui`
 * over a recording, and `view --follow --no-tui` as they are written.
 */
export class NarratedLines {
  readonly #tracker = new ConnectionTracker();
  readonly #closedBy = new Map<string, number>();
  readonly #diagnosis: DiagnosisChoice;
  readonly #unknown: ReadonlyMap<number, readonly string[]>;
  readonly #onNote: (message: string) => void;

  /** `onNote` hears what the user should know beside the lines (the command line overriding the capture's profile). */
  constructor(diagnosis: DiagnosisChoice, unknown: ReadonlyMap<number, readonly string[]> = new Map(), onNote: (message: string) => void = () => {}) {
    this.#diagnosis = diagnosis;
    this.#unknown = unknown;
    this.#onNote = onNote;
  }

  /** The lines one event makes (often none: frames have no line). */
  linesOf(event: CaptureEvent): string[] {
    if (event.kind === 'session.start') {
      const note = this.#diagnosis.start(event);
      if (note) this.#onNote(note);
    }
    const summary = this.#tracker.apply(event);
    const line = narrate(event, summary);
    if (!line) return [];
    let text = `${clock(event.t)} ${line.level.toUpperCase().padEnd(5)} ${line.msg}`;
    if (event.kind === 'conn.close' && summary) {
      const attribution = attributionOf(summary);
      const who = attribution.orderUnknown ? 'either side (order unknown)' : (attribution.closedBy ?? 'unknown');
      this.#closedBy.set(who, (this.#closedBy.get(who) ?? 0) + 1);
      const missing = this.#unknown.get(event.conn);
      if (missing && missing.length > 0) text += `; not in this file (unknown): ${missing.join(', ')}`;
    }
    const out = [text];
    for (const f of narrateFindings(event, summary, this.#diagnosis.context)) {
      if (f.level !== 'debug') out.push(`${clock(event.t)} ${f.level.toUpperCase().padEnd(5)} ${f.msg}`);
    }
    return out;
  }

  /** The closing tally: how many connections closed, and by whom. */
  tally(): string {
    const tally = [...this.#closedBy].map(([who, n]) => `${n} by ${who}`).join(', ');
    return `${[...this.#closedBy.values()].reduce((a, b) => a + b, 0)} connection(s) closed${tally ? `: ${tally}` : ''}`;
  }
}
