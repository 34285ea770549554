import { describe, expect, it } from 'vitest';
import { captureKeptLine, keepsTemporaryCapture } from '../../src/cli/temporary-capture.js';

describe('the temporary capture of a session without --capture', () => {
  it('is kept with the UI, with or without --har, whatever became of the HAR', () => {
    for (const harWritten of [null, true, false]) expect(keepsTemporaryCapture({ ui: true, harWritten })).toBe(true);
  });

  it('without the UI, is deleted once the HAR is written and kept when it could not be', () => {
    expect(keepsTemporaryCapture({ ui: false, harWritten: true })).toBe(false);
    expect(keepsTemporaryCapture({ ui: false, harWritten: false })).toBe(true);
  });

  it('is announced with its path', () => {
    expect(captureKeptLine('/tmp/wstap-x/capture.jsonl')).toBe('wstap: capture kept at /tmp/wstap-x/capture.jsonl\n');
  });
});
