import { attributionOf, ConnectionTracker, type ConnectionSummary } from '../analysis/connection-tracker.js';
import { instanceLabel } from '../analysis/instance-label.js';
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
  readonly #merged: boolean;

  /**
   * `onNote` hears what the user should know beside the lines (the command
   * line overriding the capture's profile); `merged`: several proxies'
   * captures are read as one, so session lines say whose they are too.
   */
  constructor(diagnosis: DiagnosisChoice, unknown: ReadonlyMap<number, readonly string[]> = new Map(), onNote: (message: string) => void = () => {}, merged = false) {
    this.#diagnosis = diagnosis;
    this.#unknown = unknown;
    this.#onNote = onNote;
    this.#merged = merged;
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
    const labelled = instanceLabel(event, summary, this.#merged);
    let text = `${clock(event.t)} ${line.level.toUpperCase().padEnd(5)} ${labelled(line.msg)}`;
    if (event.kind === 'conn.close' && summary) {
      const attribution = attributionOf(summary);
      const who = attribution.orderUnknown ? 'either side (order unknown)' : (attribution.closedBy ?? 'unknown');
      this.#closedBy.set(who, (this.#closedBy.get(who) ?? 0) + 1);
      const missing = this.#unknown.get(event.conn);
      if (missing && missing.length > 0) text += `; not in this file (unknown): ${missing.join(', ')}`;
    }
    const out = [text];
    for (const f of narrateFindings(event, summary, this.#diagnosis.contextOf(summary?.open.instance))) {
      if (f.level !== 'debug') out.push(`${clock(event.t)} ${f.level.toUpperCase().padEnd(5)} ${labelled(f.msg)}`);
    }
    return out;
  }

  /** The closing tally: how many connections closed, and by whom. */
  tally(): string {
    const tally = [...this.#closedBy].map(([who, n]) => `${n} by ${who}`).join(', ');
    return `${[...this.#closedBy.values()].reduce((a, b) => a + b, 0)} connection(s) closed${tally ? `: ${tally}` : ''}`;
  }
}
