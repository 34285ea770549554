import type { ConnectionSummary, ConnectionTracker } from '../analysis/connection-tracker.js';
import type { FrameHistory } from '../analysis/frame-history.js';
import type { CaptureEvent } from '../capture/events.js';
import type { LiveActivity } from '../capture/live-activity.js';
import type { LogTail } from '../log.js';
import { connectionRows, isFailed, type ConnectionRow } from './connection-rows.js';
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
  #rows: ConnectionRow[] = [];
  #rowsAt = -1;
  #rowsQuery = '';
  #detail: StyledLine[] | null = null;
  #message: string | null = null;
  #messageUntil = 0;
  #logVersion = -1;
  readonly #counts = { opened: 0, closed: 0, failed: 0, frames: 0 };
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
      case 'conn.open':
        this.#counts.opened++;
        break;
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

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    this.#o.screen.destroy();
  }

  #tick(): void {
    const now = this.#o.now();
    const seconds = (now - this.#tickAt) / 1000;
    if (seconds > 0) this.#framesPerSecond = Math.round((this.#counts.frames - this.#framesAtTick) / seconds);
    this.#framesAtTick = this.#counts.frames;
    this.#tickAt = now;
    // Idle timers and ages move by themselves while anything is open.
    if (this.#o.facts.frozenAt === null && this.#counts.opened > this.#counts.closed) this.#dirty = true;
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

  #extent(): ViewExtent {
    const regions = screenRegions(this.#o.screen.height);
    return {
      rowIds: this.#rows.map((r) => r.conn),
      tableHeight: regions.bodyHeight,
      detailLines: this.#detail?.length ?? 0,
      detailHeight: regions.bodyHeight + 1,
    };
  }

  #refreshRows(): void {
    // Paused: the rows stay as they were, unless the user re-sorts or re-filters them.
    const query = `${this.#state.filter}\n${this.#state.sort}\n${this.#state.showHttp}`;
    if (this.#state.paused && this.#rowsAt >= 0 && query === this.#rowsQuery) return;
    this.#rowsQuery = query;
    const tracker = this.#o.tracker;
    const summaries = [...tracker.closed, ...tracker.live];
    this.#rows = connectionRows(summaries, {
      now: this.#o.now(),
      filter: this.#state.filter,
      sort: this.#state.sort,
      showHttp: this.#state.showHttp,
      timeouts: this.#o.facts.timeouts,
      redact: this.#o.redact,
      ...(this.#o.activity ? { activity: this.#o.activity } : {}),
    });
    this.#rowsAt = this.#o.now();
  }

  #refreshDetail(): void {
    const conn = this.#state.selected;
    const summary = conn === null ? undefined : this.#o.tracker.get(conn);
    const row = this.#rows.find((r) => r.conn === conn);
    if (this.#state.mode !== 'detail' || conn === null || !summary || !row) {
      this.#detail = null;
      if (this.#state.mode === 'detail') this.#state = { ...this.#state, mode: 'table' };
      return;
    }
    this.#detail = detailLines({
      summary,
      row,
      frames: this.#o.history.framesOf(conn),
      droppedFrames: this.#o.history.droppedOf(conn),
      redact: this.#o.redact,
      width: this.#o.screen.width,
    });
  }

  #render(): void {
    if (this.#stopped) return;
    this.#dirty = false;
    this.#refreshRows();
    this.#state = settle(this.#state, this.#extent());
    this.#refreshDetail();
    this.#state = settle(this.#state, this.#extent());
    const tail = this.#o.logTail;
    this.#logVersion = tail?.version ?? -1;
    const open = this.#counts.opened - this.#counts.closed;
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
      rows: this.#rows,
      detail: this.#detail,
      log: tail ? tail.last(10) : [],
      message: this.#message,
    });
    this.#o.screen.draw(lines);
  }

  #onKey(key: KeyPress): void {
    const result = onKey(this.#state, key, this.#extent());
    const wasPaused = this.#state.paused;
    this.#state = result.state;
    if (wasPaused && !this.#state.paused) this.#rowsAt = -1;
    if (result.command === 'quit') {
      this.say('shutting down…');
      this.#o.onQuit();
    } else if (result.command === 'clear-closed') {
      const ids = this.#o.tracker.clearClosed();
      for (const id of ids) this.#o.history.forget(id);
      this.#rowsAt = -1;
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
