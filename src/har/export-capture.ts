import fs from 'node:fs';
import { instanceCapturesOfFiles, readMergedEvents, type InstanceCapture } from '../capture/capture-merge.js';
import { readCaptureSetEvents, totalBytes, type CaptureSetWarning } from '../capture/capture-set.js';
import type { DiagnosisRecord } from '../analysis/diagnosis-record.js';
import type { CaptureEvent } from '../capture/events.js';
import type { HarFoldStats } from './har-fold.js';
import { writeHarFile } from './har-file-writer.js';
import type { PayloadMode } from './har-types.js';

export interface ExportCaptureOptions {
  /** A capture file (with the rest of its rotated set beside it), or several files: of one session, or of several proxies (merged by time). */
  capturePath: string | readonly string[];
  harPath: string;
  overwrite: boolean;
  redact: boolean;
  payloads: PayloadMode;
  /**
   * Judge with this (profile, --timeout) instead of the context the capture
   * recorded in session.start; `_wstap.diagnosis` and `log._wstap.diagnosisContext` follow it.
   */
  diagnosis?: DiagnosisRecord | null;
  /** Adds evidence read beside the capture (nginx's error log merged by time) to its events. */
  withEvidence?: (events: AsyncIterable<CaptureEvent>) => AsyncIterable<CaptureEvent>;
  /** Said when `diagnosis` overrides the capture's own context. */
  onJudging?: (message: string) => void;
  creatorVersion: string;
  onWarning?: (warning: CaptureSetWarning) => void;
  /** What the reader should know about the set (files read, segments deleted). */
  onNote?: (message: string) => void;
  /** About once a second during a long export: fraction of the capture read, entries so far. */
  onProgress?: (done: number, stats: HarFoldStats) => void;
}

/** What an export needs besides its source. */
export type HarExportOptions = Omit<ExportCaptureOptions, 'capturePath' | 'onWarning' | 'onNote'>;

/**
 * Capture file (or rotated set) -> HAR file. Bad input is refused before the
 * output exists; an export that fails midway removes its partial output.
 */
export async function exportCapture(options: ExportCaptureOptions): Promise<HarFoldStats> {
  const captures = instanceCapturesOfFiles(typeof options.capturePath === 'string' ? [options.capturePath] : options.capturePath);
  const several = captures.length > 1;
  for (const c of captures) for (const note of c.set.notes) options.onNote?.(several ? `${c.instance}: ${note}` : note);
  if (several) options.onNote?.(`${captures.length} captures merged by time (${captures.map((c) => c.instance).join(', ')}); connections renumbered, _wstap.instance and _wstap.instanceConnectionId say where each came from`);
  const total = captures.reduce((sum, c) => sum + totalBytes(c.set), 0);
  const progress = { bytesRead: 0 };
  const read = { ...(options.onWarning ? { onWarning: options.onWarning } : {}), progress };
  const events = several ? readMergedEvents(captures, read) : readCaptureSetEvents((captures[0] as InstanceCapture).set, read);
  return exportEvents(events, { total, progress }, options);
}

/**
 * Events from any source (a packet capture, src/pcap/) -> HAR file, as
 * exportCapture does for a capture; `read` tells the progress. The events'
 * source is the caller's; `capturePath` is not read. Evidence read beside
 * it (`withEvidence`: nginx's log) is merged in here, for every source.
 */
export async function exportEvents(
  events: AsyncIterable<CaptureEvent>,
  read: { total: number; progress: { bytesRead: number } },
  options: HarExportOptions,
): Promise<HarFoldStats> {
  const { total, progress } = read;
  let created = false;
  try {
    return await writeHarFile(
      options.withEvidence ? options.withEvidence(events) : events,
      {
        path: options.harPath,
        overwrite: options.overwrite,
        creatorVersion: options.creatorVersion,
        redact: options.redact,
        payloads: options.payloads,
        ...(options.diagnosis ? { diagnosis: options.diagnosis } : {}),
        ...(options.onJudging ? { onJudging: options.onJudging } : {}),
        onOpened: () => (created = true),
        ...(options.onProgress ? { onProgress: (stats: HarFoldStats) => options.onProgress?.(total > 0 ? progress.bytesRead / total : 1, stats) } : {}),
      },
    );
  } catch (err) {
    if (created) fs.rmSync(options.harPath, { force: true });
    throw err;
  }
}
