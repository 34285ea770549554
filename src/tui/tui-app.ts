import type { DiagnosisContext } from '../analysis/connection-diagnosis.js';
import type { ConnectionSummary, ConnectionTracker } from '../analysis/connection-tracker.js';
import type { FrameHistory } from '../analysis/frame-history.js';
import type { CaptureHealth } from '../capture/capture-writer.js';
import type { CaptureEvent } from '../capture/events.js';
import type { LiveActivity } from '../capture/live-activity.js';
import type { LogTail } from '../log.js';
import { connectionRow, isFailed, orderConnections, type ConnectionRow, type RowQuery } from './connection-rows.js';
import { detailLines, type StyledLine } from './detail-lines.js';
import type { Paint } from './paint.js';
import { composeScreen, screenRegions, type SessionFacts } from './screen-frame.js';
import type { TerminalScreen } from './terminal-screen.js';
import { INITIAL_UI_STATE, onKey, settle, type KeyPress, type UiState, type ViewExtent } from './ui-state.js';

export interface TuiAppOptions {
  screen: TerminalScreen;
  /** The connection fold the events go through (the session's, or a replay's). */
  tracker: ConnectionTracker;
  history: FrameHistory;
  facts: SessionFacts;
  paint: Paint;
  redact: boolean;
  /** The display clock: the session clock live, a constant when replaying. */
  now: () => number;
  activity?: (conn: number) => LiveActivity | null;
  /** The live capture file's losses and state (read once a second). */
  captureHealth?: () => CaptureHealth | null;
  logTail: LogTail | null;
  onQuit: () => void;
  /** Writes a HAR and says where, or explains why it cannot. */
  onExport: () => Promise<string>;
  /** Redraws at most this often (ms). */
  frameInterval?: number;
}

/**
 * The live terminal UI. Events only update counters and the frame history
 * (O(1), safe inside socket handlers); everything visible is computed on a
 * timer, at most ten times a second and only when something changed.
 */
export class TuiApp {
  readonly #o: TuiAppOptions;
  #state: UiState = INITIAL_UI_STATE;
  #dirty = true;
  /** Connections in table order; rows are built only for the visible ones. */
  #order: ConnectionSummary[] = [];
  #orderQuery = '';
  /** The display clock while paused. */
  #pausedAt: number | null = null;
  #detail: StyledLine[] | null = null;
  #message: string | null = null;
  #messageUntil = 0;
  #capture: CaptureHealth | null = null;
  #logVersion = -1;
  readonly #counts = { closed: 0, failed: 0, frames: 0 };
  #framesPerSecond = 0;
  #framesAtTick = 0;
  #tickAt = 0;
  readonly #timers: NodeJS.Timeout[] = [];
  #stopped = false;

  constructor(options: TuiAppOptions) {
    this.#o = options;
    this.#tickAt = options.now();
    options.screen.onKey((key) => this.#onKey(key));
    options.screen.onResize(() => this.#render());
    const interval = options.frameInterval ?? 100;
    this.#timers.push(setInterval(() => this.#frame(), interval));
    this.#timers.push(setInterval(() => this.#tick(), 1000));
    for (const t of this.#timers) t.unref();
    this.#render();
  }

  /** One event, called where the event is recorded: counters only. */
  record(event: CaptureEvent, summary: ConnectionSummary | null): void {
    this.#o.history.apply(event);
    switch (event.kind) {
      case 'conn.close':
        this.#counts.closed++;
        if (summary && isFailed(summary)) this.#counts.failed++;
        break;
      case 'ws.frame':
        this.#counts.frames++;
        break;
      default:
        break;
    }
    this.#dirty = true;
  }

  get state(): UiState {
    return this.#state;
  }

  /** Shows a line in the footer for a few seconds. */
  say(message: string): void {
    this.#message = message;
    this.#messageUntil = Date.now() + 8000;
    this.#dirty = true;
  }

  /** `abandon`: the terminal is gone, let go of it without writing to it (TerminalScreen.abandon). */
  stop(how: 'restore' | 'abandon' = 'restore'): void {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    if (how === 'abandon') this.#o.screen.abandon();
    else this.#o.screen.destroy();
  }

  #tick(): void {
    const now = this.#o.now();
    const seconds = (now - this.#tickAt) / 1000;
    if (seconds > 0) this.#framesPerSecond = Math.round((this.#counts.frames - this.#framesAtTick) / seconds);
    this.#framesAtTick = this.#counts.frames;
    this.#tickAt = now;
    // Idle timers and ages move by themselves while anything is open.
    if (this.#o.facts.frozenAt === null && this.#o.tracker.liveCount > 0) this.#dirty = true;
    const capture = this.#o.captureHealth?.() ?? null;
    if (capture?.lostEvents !== this.#capture?.lostEvents || capture?.refusing !== this.#capture?.refusing || !capture?.paused !== !this.#capture?.paused) {
      this.#capture = capture;
      this.#dirty = true;
    }
    if (this.#message && Date.now() > this.#messageUntil) {
      this.#message = null;
      this.#dirty = true;
    }
  }

  #frame(): void {
    const tail = this.#o.logTail;
    if (tail && tail.version !== this.#logVersion) this.#dirty = true;
    if (this.#dirty) this.#render();
  }

  #now(): number {
    return this.#pausedAt ?? this.#o.now();
  }

  #query(): RowQuery {
    return {
      now: this.#now(),
      filter: this.#state.filter,
      sort: this.#state.sort,
      showHttp: this.#state.showHttp,
      timeouts: this.#o.facts.diagnosis.timeouts,
      ...(this.#o.facts.perInstance ? { timeoutsOf: (s: ConnectionSummary) => this.#diagnosisOf(s).timeouts } : {}),
      redact: this.#o.redact,
      ...(this.#o.activity ? { activity: this.#o.activity } : {}),
    };
  }

  /** The context a connection is judged with: its instance's when instances differ (SessionFacts.perInstance). */
  #diagnosisOf(s: ConnectionSummary): DiagnosisContext {
    const instance = s.open.instance;
    return (instance !== undefined ? this.#o.facts.perInstance?.get(instance)?.diagnosis : undefined) ?? this.#o.facts.diagnosis;
  }

  #extent(): ViewExtent {
    const regions = screenRegions(this.#o.screen.height);
    return {
      rowIds: this.#order.map((summary) => summary.conn),
      tableHeight: regions.bodyHeight,
      detailLines: this.#detail?.length ?? 0,
      detailHeight: regions.bodyHeight + 1,
    };
  }

  #refreshOrder(): void {
    // Paused: the order stays as it was, unless the user re-sorts or re-filters.
    const query = `${this.#state.filter}\n${this.#state.sort}\n${this.#state.showHttp}`;
    if (this.#state.paused && query === this.#orderQuery) return;
    this.#orderQuery = query;
    const tracker = this.#o.tracker;
    this.#order = orderConnections([...tracker.closed, ...tracker.live], this.#query());
  }

  #refreshDetail(): void {
    const conn = this.#state.selected;
    const summary = conn === null ? undefined : this.#o.tracker.get(conn);
    if (this.#state.mode !== 'detail' || conn === null || !summary) {
      this.#detail = null;
      if (this.#state.mode === 'detail') this.#state = { ...this.#state, mode: 'table' };
      return;
    }
    this.#detail = detailLines({
      summary,
      row: connectionRow(summary, this.#query()),
      frames: this.#o.history.framesOf(conn),
      droppedFrames: this.#o.history.droppedOf(conn),
      redact: this.#o.redact,
      width: this.#o.screen.width,
      diagnosis: this.#diagnosisOf(summary),
      now: this.#now(),
    });
  }

  #render(): void {
    if (this.#stopped) return;
    this.#dirty = false;
    this.#refreshOrder();
    const extent = this.#extent();
    this.#state = settle(this.#state, extent);
    this.#refreshDetail();
    this.#state = settle(this.#state, { ...extent, detailLines: this.#detail?.length ?? 0 });
    const tail = this.#o.logTail;
    this.#logVersion = tail?.version ?? -1;
    // From the fold, not the counters: a connection whose conn.open is not in the capture is open too.
    const open = this.#o.tracker.liveCount;
    const lines = composeScreen({
      width: this.#o.screen.width,
      height: this.#o.screen.height,
      paint: this.#o.paint,
      facts: this.#o.facts,
      counts: {
        open,
        closed: this.#counts.closed,
        failed: this.#counts.failed,
        framesPerSecond: this.#o.facts.frozenAt === null ? this.#framesPerSecond : null,
      },
      state: this.#state,
      rows: this.#visibleRows(),
      rowCount: this.#order.length,
      detail: this.#detail,
      log: tail ? tail.last(10) : [],
      capture: this.#capture,
      message: this.#message,
    });
    this.#o.screen.draw(lines);
  }

  #visibleRows(): ConnectionRow[] {
    if (this.#state.mode === 'detail') return [];
    const height = screenRegions(this.#o.screen.height).bodyHeight;
    const q = this.#query();
    return this.#order.slice(this.#state.top, this.#state.top + height).map((summary) => connectionRow(summary, q));
  }

  #onKey(key: KeyPress): void {
    const result = onKey(this.#state, key, this.#extent());
    const wasPaused = this.#state.paused;
    this.#state = result.state;
    if (!wasPaused && this.#state.paused) this.#pausedAt = this.#o.now();
    if (wasPaused && !this.#state.paused) this.#pausedAt = null;
    if (result.command === 'quit') {
      this.say('shutting down…');
      this.#o.onQuit();
    } else if (result.command === 'clear-closed') {
      const ids = this.#o.tracker.clearClosed();
      for (const id of ids) this.#o.history.forget(id);
      this.#orderQuery = ''; // the order must drop them, paused or not
      this.say(ids.length > 0 ? `cleared ${ids.length} closed connection(s); the capture file keeps them` : 'no closed connections to clear');
    } else if (result.command === 'export') {
      this.say('exporting HAR…');
      this.#o.onExport().then(
        (message) => this.say(message),
        (err: unknown) => this.say(`export failed: ${err instanceof Error ? err.message : String(err)}`),
      );
    }
    this.#render();
  }
}
