import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { PacketFileParser } from '../../src/pcap/packet-file.js';
import { tcpSegmentOf, type TcpSegment } from '../../src/pcap/tcp-segment.js';
import { waitUntil } from './wait-until.js';

/** A real tcpdump writing what crosses the loopback on some ports, as an admin would run it. */
export interface Tcpdump {
  file: string;
  /** Waits until the file holds segments `done` accepts (tcpdump writes packet by packet with -U), then stops tcpdump; returns its closing statistics ("N packets dropped by kernel"). */
  stop(done?: (segments: TcpSegment[]) => boolean): Promise<string>;
}

export interface TcpdumpOptions {
  /** Nanosecond timestamps (tcpdump --time-stamp-precision=nano: the pcap magic a1b23c4d). */
  nano?: boolean;
  /** -s: bytes kept per packet (default 0: all). */
  snapLength?: number;
  /** -i (default lo). */
  iface?: string;
}

/** The segments of a capture file so far (read with our own parser; tshark is the independent reading). */
export function segmentsIn(file: string): TcpSegment[] {
  const segments: TcpSegment[] = [];
  const parser = new PacketFileParser({
    packet: (p) => {
      const result = tcpSegmentOf(p.linkType, p.data, p.originalLength);
      if (result.kind === 'tcp') segments.push(result.segment);
    },
  });
  parser.push(fs.readFileSync(file));
  return segments;
}

export async function startTcpdump(file: string, ports: readonly number[], options: TcpdumpOptions = {}): Promise<Tcpdump> {
  const filter = ports.map((p) => `tcp port ${p}`).join(' or ');
  // -B 65536: a 64 MiB kernel buffer; with the default 2 MiB, -i any drops packets of a burst (measured: 76 of 690
  // for twenty 70 kB messages), and the reader rightly reports them as holes.
  const args = ['-i', options.iface ?? 'lo', '-n', '--immediate-mode', '-U', '-B', '65536', '-Z', 'root', '-s', String(options.snapLength ?? 0), '-w', file];
  if (options.nano) args.push('--time-stamp-precision=nano');
  const child: ChildProcess = spawn('tcpdump', [...args, filter], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await waitUntil('tcpdump listening', () => /listening on/.test(stderr) || child.exitCode !== null, { timeoutMs: 20_000 });
  if (child.exitCode !== null) throw new Error(`tcpdump did not start: ${stderr}`);
  return {
    file,
    stop: async (done) => {
      if (done) await waitUntil('tcpdump wrote the last packets', () => fs.existsSync(file) && done(segmentsIn(file)), { timeoutMs: 20_000, context: () => stderr });
      child.kill('SIGINT');
      await exited;
      return stderr.split('\n').filter((line) => /packets/.test(line)).join('; ');
    },
  };
}

/** tshark's fields for the packets a display filter selects, one array per packet. */
export function tshark(file: string, filter: string, fields: string[], decodeAs: string[] = []): string[][] {
  const args = ['-r', file, '-n', ...decodeAs.flatMap((d) => ['-d', d]), '-Y', filter, '-T', 'fields', '-E', 'separator=\t', ...fields.flatMap((f) => ['-e', f])];
  const run = spawnSync('tshark', args, { encoding: 'utf8', timeout: 60_000 });
  if (run.status !== 0) throw new Error(`tshark ${args.join(' ')} failed: ${run.stderr}`);
  return run.stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => line.split('\t'));
}
