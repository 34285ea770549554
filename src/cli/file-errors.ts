import { CaptureFormatError } from '../capture/capture-reader.js';
import { CaptureSetError } from '../capture/capture-set.js';
import { HarFormatError } from '../har/har-reader.js';
import { PacketCaptureError } from '../pcap/packet-capture-reader.js';

/**
 * A problem with a file the user named (bad format, missing, exists,
 * unreadable): one line on stderr and exit status 2. Anything else is a bug
 * and is rethrown.
 */
export function reportFileError(err: unknown, rewrite: (message: string) => string = (m) => m): number {
  if (err instanceof CaptureFormatError || err instanceof HarFormatError || err instanceof CaptureSetError || err instanceof PacketCaptureError) {
    process.stderr.write(`wstap: ${rewrite(err.message)}\n`);
    return 2;
  }
  const { code, path } = err as NodeJS.ErrnoException;
  const line =
    code === 'EEXIST' ? `${path ?? 'output'} already exists; pass --force to overwrite it`
    : code === 'ENOENT' ? `${path ?? 'file'}: no such file or directory`
    : code === 'EISDIR' || code === 'EACCES' ? (err as Error).message
    : null;
  if (line === null) throw err;
  process.stderr.write(`wstap: ${line}\n`);
  return 2;
}
