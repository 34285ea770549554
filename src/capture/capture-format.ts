/** The first line of every capture file names the format and its version. */
export const CAPTURE_FORMAT = 'wstap-capture';
export const CAPTURE_VERSION = 1;

export interface CaptureHeader {
  format: typeof CAPTURE_FORMAT;
  version: number;
  createdBy: string;
}

export function captureHeaderLine(createdBy: string): string {
  const header: CaptureHeader = { format: CAPTURE_FORMAT, version: CAPTURE_VERSION, createdBy };
  return JSON.stringify(header) + '\n';
}
