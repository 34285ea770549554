import fs from 'node:fs';
import type { CaptureEvent } from '../capture/events.js';
import { PacketCaptureConverter } from './packet-capture-converter.js';
import { PacketFileError, PacketFileParser, packetFileFormat, type PacketFileFormat } from './packet-file.js';

/** Bytes read at a time: memory stays this plus what the connections hold, whatever the file's size. */
const READ_CHUNK_BYTES = 1024 * 1024;

/** A packet capture the user named that cannot be read as one: one line for them, with the file and the offset. */
export class PacketCaptureError extends Error {}

/** pcap or pcapng by the file's magic number, or null (also for a file that cannot be opened: its reader says why). */
export function packetCaptureFormat(path: string): PacketFileFormat | null {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    const head = Buffer.alloc(4);
    return packetFileFormat(head.subarray(0, fs.readSync(fd, head, 0, 4, 0)));
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

export interface PacketCaptureReadOptions {
  /** --port: the servers' ports; empty: every TCP connection. */
  serverPorts: readonly number[];
  previewLimit?: number;
  note: (message: string) => void;
  /** Updated as the file is read (for progress). */
  progress?: { bytesRead: number };
}

/** Bytes of a file read to find its first packet's time. */
const FIRST_PACKET_PROBE_BYTES = 1024 * 1024;

/** The time of a file's first packet (null: none in its first MiB, or unreadable as a capture). */
export function firstPacketTime(path: string): number | null {
  let first: number | null = null;
  const parser = new PacketFileParser({ packet: (p) => void (first ??= p.t) });
  const fd = fs.openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(FIRST_PACKET_PROBE_BYTES);
    parser.push(buffer.subarray(0, fs.readSync(fd, buffer, 0, buffer.length, 0)));
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
  return first;
}

/**
 * The files of a tcpdump ring (-C/-W) in time order, whatever their names
 * (a ring reuses FILE0 after FILE9): by each file's first packet; files
 * without one go last, in the order given.
 */
export function inTimeOrder(paths: readonly string[]): string[] {
  const times = new Map(paths.map((p) => [p, firstPacketTime(p)]));
  return [...paths].sort((a, b) => (times.get(a) ?? Infinity) - (times.get(b) ?? Infinity));
}

/**
 * Packet capture files (one, or the files of a tcpdump -C/-W ring, read in
 * the order of their first packets: a connection may run on from one file
 * into the next) as the events a live wstap would have recorded for the TCP
 * connections in them, read in chunks (bounded memory whatever the size),
 * in packet order.
 */
export async function* readPacketCaptureEvents(given: readonly string[], options: PacketCaptureReadOptions): AsyncGenerator<CaptureEvent> {
  const paths = given.length > 1 ? inTimeOrder(given) : [...given];
  if (paths.some((p, i) => p !== given[i])) options.note(`read in the order of their first packets: ${paths.join(', ')}`);
  let queue: CaptureEvent[] = [];
  const ports = options.serverPorts.length > 0 ? ` (server ports ${options.serverPorts.join(', ')})` : '';
  const converter = new PacketCaptureConverter(
    { label: `packet capture ${paths.join(', ')}${ports}`, serverPorts: options.serverPorts, ...(options.previewLimit !== undefined ? { previewLimit: options.previewLimit } : {}), note: options.note },
    (event) => queue.push(event),
  );
  const take = (): CaptureEvent[] => {
    const batch = queue;
    queue = [];
    return batch;
  };
  for (const path of paths) {
    const parser = new PacketFileParser({ packet: (p) => converter.packet(p), statistics: (s) => converter.statistics(s) });
    const file = await fs.promises.open(path, 'r');
    try {
      for (;;) {
        // A fresh buffer each time: decoders may keep subarrays of the last one.
        const chunk = Buffer.allocUnsafe(READ_CHUNK_BYTES);
        const { bytesRead } = await file.read(chunk, 0, READ_CHUNK_BYTES, null);
        if (bytesRead === 0) break;
        if (options.progress) options.progress.bytesRead += bytesRead;
        try {
          parser.push(chunk.subarray(0, bytesRead));
        } catch (err) {
          throw asCaptureError(err, path);
        }
        // A slow consumer holds at most one chunk's events.
        yield* take();
      }
      let cut: number;
      try {
        cut = parser.end();
      } catch (err) {
        throw asCaptureError(err, path);
      }
      if (cut > 0) options.note(`${path} ends in the middle of a packet record (${cut} bytes): the capture was cut short or is still being written; that packet is not read`);
    } finally {
      await file.close();
    }
  }
  await converter.end();
  yield* take();
}

function asCaptureError(err: unknown, path: string): unknown {
  return err instanceof PacketFileError ? new PacketCaptureError(`${path}: ${err.message}`) : err;
}
