/**
 * Without --capture, a session that needs a capture (the UI, --har) writes one
 * into a private temporary directory (0700, the file 0600). What becomes of it
 * at exit:
 * - with the UI it is kept and its path printed: the user watched those
 *   connections and may want them again (`wstap view`, `wstap export`);
 *   deleting them at exit lost the evidence of the incident just watched;
 * - with only --har it is deleted once the HAR is written: the HAR is the
 *   output asked for, and the capture holds what the HAR redacts (cookies,
 *   tokens); if the HAR could not be written it is kept, being then the only
 *   record of the session.
 */
export interface TemporaryCaptureOutcome {
  ui: boolean;
  /** null without --har. */
  harWritten: boolean | null;
}

export function keepsTemporaryCapture(outcome: TemporaryCaptureOutcome): boolean {
  return outcome.ui || outcome.harWritten === false;
}

/** The line that says where a kept capture is (stderr, after the UI has closed). */
export function captureKeptLine(capturePath: string): string {
  return `wstap: capture kept at ${capturePath}\n`;
}
