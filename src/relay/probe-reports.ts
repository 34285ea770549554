import type { ProbeConnectionReport, ProbeRunReport } from './probe-protocol.js';

/** Connections remembered across all runs; the oldest run goes first past it (bounded memory whatever probes do). */
export const MAX_REMEMBERED_CONNECTIONS = 1000;

/**
 * What wstap's end saw of each probe connection, by run, until the probe asks
 * for it. Bounded: past MAX_REMEMBERED_CONNECTIONS the oldest runs are
 * forgotten (a report asked for later is then empty, not wrong).
 */
export class ProbeReports {
  readonly #runs = new Map<string, ProbeConnectionReport[]>();
  #count = 0;

  constructor(readonly maxConnections = MAX_REMEMBERED_CONNECTIONS) {}

  /** A new connection of `run`: the returned record is filled in as the connection lives. */
  add(run: string, report: ProbeConnectionReport): ProbeConnectionReport {
    const list = this.#runs.get(run);
    if (list) {
      // Map order is insertion order: a run that is still adding moves to the back.
      this.#runs.delete(run);
      list.push(report);
      this.#runs.set(run, list);
    } else {
      this.#runs.set(run, [report]);
    }
    this.#count++;
    while (this.#count > this.maxConnections) {
      const oldest = this.#runs.keys().next();
      if (oldest.done === true) break;
      this.#count -= this.#runs.get(oldest.value)?.length ?? 0;
      this.#runs.delete(oldest.value);
    }
    return report;
  }

  /** A copy of what is known of `run` now (no connections: an unknown or forgotten run). */
  report(run: string): ProbeRunReport {
    const list = this.#runs.get(run) ?? [];
    return { run, connections: list.map((c) => ({ ...c, ends: c.ends.map((e) => ({ ...e })) })) };
  }
}
