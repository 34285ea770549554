import fs from 'node:fs';
import { checkCaptureHeader, readCaptureEvents, type CaptureReadWarning } from '../capture/capture-reader.js';
import type { DiagnosisContext } from '../analysis/connection-diagnosis.js';
import type { HarFoldStats } from './har-fold.js';
import { writeHarFile } from './har-file-writer.js';
import type { PayloadMode } from './har-types.js';

export interface ExportCaptureOptions {
  capturePath: string;
  harPath: string;
  overwrite: boolean;
  redact: boolean;
  payloads: PayloadMode;
  /** What is known about the path (profile, --timeout), for `_wstap.diagnosis`. */
  diagnosis?: DiagnosisContext;
  creatorVersion: string;
  onWarning?: (warning: CaptureReadWarning) => void;
  /** About once a second during a long export: fraction of the capture read, entries so far. */
  onProgress?: (done: number, stats: HarFoldStats) => void;
}

/**
 * Capture file -> HAR file. Bad input is refused before the output exists;
 * an export that fails midway removes its partial output.
 */
export async function exportCapture(options: ExportCaptureOptions): Promise<HarFoldStats> {
  checkCaptureHeader(options.capturePath);
  const total = fs.statSync(options.capturePath).size;
  const progress = { bytesRead: 0 };
  let created = false;
  try {
    return await writeHarFile(
      readCaptureEvents(options.capturePath, { ...(options.onWarning ? { onWarning: options.onWarning } : {}), progress }),
      {
        path: options.harPath,
        overwrite: options.overwrite,
        creatorVersion: options.creatorVersion,
        redact: options.redact,
        payloads: options.payloads,
        ...(options.diagnosis ? { diagnosis: options.diagnosis } : {}),
        onOpened: () => (created = true),
        ...(options.onProgress ? { onProgress: (stats: HarFoldStats) => options.onProgress?.(total > 0 ? progress.bytesRead / total : 1, stats) } : {}),
      },
    );
  } catch (err) {
    if (created) fs.rmSync(options.harPath, { force: true });
    throw err;
  }
}
