import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { ConnectionTracker } from '../analysis/connection-tracker.js';
import { FrameHistory } from '../analysis/frame-history.js';
import type { DiagnosisContext } from '../analysis/connection-diagnosis.js';
import type { DiagnosisRecord } from '../analysis/diagnosis-record.js';
import type { CaptureHealth } from '../capture/capture-writer.js';
import type { LiveActivity } from '../capture/live-activity.js';
import { exportCapture } from '../har/export-capture.js';
import type { PayloadMode } from '../har/har-types.js';
import type { LogTail, ScreenLogger } from '../log.js';
import { colorWanted, Paint } from '../tui/paint.js';
import type { SessionFacts } from '../tui/screen-frame.js';
import { openTerminalScreen } from '../tui/terminal-screen.js';
import { TuiApp } from '../tui/tui-app.js';
import type { ProxySession } from './proxy-session.js';
import { stamp } from './ui-prerequisites.js';
import { VERSION } from './version.js';

export interface HarExportSettings {
  capturePath: string | readonly string[] | null;
  redact: boolean;
  payloads: PayloadMode;
  /** Judge with this instead of the context the capture recorded (view's --profile/--timeout). */
  diagnosis?: DiagnosisRecord | null;
  logger: Logger;
  /** Makes everything recorded so far readable in the capture file. */
  flush?: () => void | Promise<void>;
  /** Why there is nothing to export from, when capturePath is null. */
  unavailable?: string;
}

/** The `e` key: the capture so far as a HAR in the working directory, named by the time. */
export async function exportFromUi(settings: HarExportSettings): Promise<string> {
  if (!settings.capturePath) return settings.unavailable ?? 'nothing to export: no capture file';
  await settings.flush?.();
  // Two exports within a second get -2, -3...: an earlier export is never overwritten.
  const base = path.resolve(`wstap-${stamp(new Date())}`);
  let harPath = `${base}.har`;
  for (let n = 2; fs.existsSync(harPath); n++) harPath = `${base}-${n}.har`;
  const stats = await exportCapture({
    capturePath: settings.capturePath,
    harPath,
    overwrite: false,
    redact: settings.redact,
    payloads: settings.payloads,
    diagnosis: settings.diagnosis ?? null,
    creatorVersion: VERSION,
    // A live capture's last line may be half-written while we read: skip it quietly.
    onWarning: (w) => settings.logger.debug(`export: ${w.path}${w.line === null ? '' : `:${w.line}`}: ${w.message}`),
  });
  const message = `wrote ${harPath}: ${stats.entries} entries, ${stats.messages} messages${settings.redact ? ', secrets redacted' : ', NOT redacted'}`;
  settings.logger.info({ har: harPath, entries: stats.entries }, message);
  return message;
}

export interface UiStart {
  tracker: ConnectionTracker;
  facts: SessionFacts;
  redact: boolean;
  now: () => number;
  activity?: (conn: number) => LiveActivity | null;
  captureHealth?: () => CaptureHealth | null;
  logTail: LogTail | null;
  logger: Logger;
  onQuit: () => void;
  onExport: () => Promise<string>;
}

export interface RunningUi {
  app: TuiApp;
  /** Restores the terminal; later warnings go back to stderr. */
  close(): void;
  /** The terminal is gone: stops without writing to it; process warnings keep going to the log. */
  abandon(): void;
}

/**
 * Opens the terminal UI. While it is up nothing else may write to the
 * terminal: process warnings are sent to the log instead.
 */
export function startTerminalUi(start: UiStart): RunningUi {
  const warningListeners = process.listeners('warning');
  process.removeAllListeners('warning');
  const onWarning = (w: Error): void => start.logger.warn(`process warning: ${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  const screen = openTerminalScreen({ onWarning: (m) => start.logger.debug(m) });
  const app = new TuiApp({
    screen,
    tracker: start.tracker,
    history: new FrameHistory(),
    facts: start.facts,
    paint: new Paint(colorWanted(process.env)),
    redact: start.redact,
    now: start.now,
    ...(start.activity ? { activity: start.activity } : {}),
    ...(start.captureHealth ? { captureHealth: start.captureHealth } : {}),
    logTail: start.logTail,
    onQuit: start.onQuit,
    onExport: start.onExport,
  });
  let closed = false;
  return {
    app,
    close() {
      if (closed) return;
      closed = true;
      app.stop();
      process.removeListener('warning', onWarning);
      for (const l of warningListeners) process.on('warning', l as (w: Error) => void);
    },
    abandon() {
      if (closed) return;
      closed = true;
      app.stop('abandon');
    },
  };
}

export interface LiveUiOptions {
  /** How the header names the target. */
  target: string;
  profile: string | null;
  diagnosis: DiagnosisContext;
  redact: boolean;
  payloads: PayloadMode;
  screenLog: ScreenLogger;
  onQuit: () => void;
}

/** The UI over a running proxy session: its events, its exact live byte times, export from its capture. */
export function startLiveUi(session: ProxySession, options: LiveUiOptions): RunningUi {
  const logger = options.screenLog.logger;
  const ui = startTerminalUi({
    tracker: session.tracker,
    facts: { listen: session.address, target: options.target, profile: options.profile, diagnosis: options.diagnosis, frozenAt: null, logFile: options.screenLog.file },
    redact: options.redact,
    now: () => session.clock.now(),
    activity: (conn) => session.activity(conn),
    captureHealth: () => session.captureHealth(),
    logTail: options.screenLog.tail,
    logger,
    onQuit: options.onQuit,
    onExport: () =>
      exportFromUi({
        capturePath: session.capturePath,
        redact: options.redact,
        payloads: options.payloads,
        // The capture records this session's context (session.start): the export judges with it.
        logger,
        // Not flushSync: with --rotate a write in flight may be rotating the files.
        flush: () => session.flush(),
      }),
  });
  session.onEvent((event, summary) => ui.app.record(event, summary));
  return ui;
}
