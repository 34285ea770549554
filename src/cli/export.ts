import fs from 'node:fs';
import { exportCapture, exportEvents, type HarExportOptions } from '../har/export-capture.js';
import { packetCaptureFormat, readPacketCaptureEvents } from '../pcap/packet-capture-reader.js';
import { reportFileError } from './file-errors.js';
import { parseArgsStrict, parsePayloadMode, parseServerPorts } from './option-values.js';
import { givenDiagnosisRecord, profileFromOption } from './profile-option.js';
import { UsageError } from './usage-error.js';
import { VERSION } from './version.js';
import { NGINX_LOG_HELP, nginxLogMerge } from './nginx-log-option.js';

export const EXPORT_HELP = `Usage: wstap export CAPTURE.jsonl [MORE.jsonl...] [-o FILE.har] [options]
       wstap export FILE.pcap|FILE.pcapng [MORE...] [--port N] [-o FILE.har] [options]

Writes a capture as a HAR 1.2 file that Chrome DevTools and other HAR
readers open: plain HTTP exchanges as entries, each WebSocket connection as
one entry with its messages, close and wstap's own findings (_wstap).
A rotated capture (--rotate) is read whole: CAPTURE.jsonl and the
CAPTURE.jsonl.1, .2... of the same session beside it (also when --keep
deleted CAPTURE.jsonl itself); several files of one session named are read
as that session. Captures of several proxies (proxy --instance) are merged by
time into one HAR: connections numbered anew (unique), each entry's
_wstap.instance and _wstap.instanceConnectionId say which proxy and its id
there.
A packet capture (tcpdump -w, pcap or pcapng, of the leg between nginx and
the app; the files of a -C/-W ring in order) is decoded as the live proxy
would have recorded it.
Findings are judged with the profile and --timeout flags the proxy ran with
(recorded in the capture; the HAR keeps them in log._wstap.diagnosisContext);
when captures of proxies that ran with different ones are merged, each
connection is judged with its own proxy's (said once; the HAR keeps each in
log._wstap.diagnosisContexts). --profile or --timeout here replace them all,
and say so.

Options:
  -o, --output FILE     where to write                     [CAPTURE.har]
  --force               overwrite FILE if it exists
  --payloads MODE       none or preview: each message's data as the capture
                        holds it, its first --preview-bytes bytes (inflated; a
                        longer message is marked with its size in _size), or
                        sizes only                                   [preview]
  --profile NAME|FILE   judge _wstap.diagnosis with a profile instead of the
                        one the capture recorded (the proxy's --profile)
  --timeout NAME=DUR[:MEASURE]  ... or with a hop's timeout (repeatable)
  --port N              a packet capture's server port (repeatable; see
                        wstap view --help)
  --no-redact           keep Cookie, Authorization, token-like subprotocols and
                        secret query parameters (redacted by default)
${NGINX_LOG_HELP}  -h, --help            this help
`;

export async function runExport(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsStrict(args, {
    output: { type: 'string', short: 'o' },
    force: { type: 'boolean' },
    payloads: { type: 'string' },
    'no-redact': { type: 'boolean' },
    profile: { type: 'string' },
    timeout: { type: 'string', multiple: true },
    'nginx-error-log': { type: 'string', multiple: true },
    port: { type: 'string', multiple: true },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(EXPORT_HELP);
    return 0;
  }
  const [input] = positionals;
  if (!input) throw new UsageError('export needs a capture file (wstap export CAPTURE.jsonl -o session.har)');
  const output = typeof values.output === 'string' ? values.output : input.replace(/\.(jsonl?|pcap|pcapng|cap)$/i, '') + '.har';
  const serverPorts = parseServerPorts(values.port);
  const packetCapture = positionals.some((file) => packetCaptureFormat(file) !== null);
  if (!packetCapture && serverPorts.length > 0) throw new UsageError('--port is for packet captures (pcap, pcapng)');
  const profile = await profileFromOption(values.profile);
  // Null: the capture's own context (recorded by the proxy) is used.
  const diagnosis = givenDiagnosisRecord(profile, values.profile, values.timeout);
  const payloads = parsePayloadMode(values.payloads);
  const merge = nginxLogMerge(values['nginx-error-log'], (note) => process.stderr.write(`wstap: ${note}\n`));
  const started = Date.now();
  const common: HarExportOptions = {
    harPath: output,
    overwrite: values.force === true,
    redact: values['no-redact'] !== true,
    payloads,
    diagnosis,
    ...(merge ? { withEvidence: merge } : {}),
    onJudging: (note) => process.stderr.write(`wstap: ${note}\n`),
    creatorVersion: VERSION,
    onProgress: (done, s) => process.stderr.write(`wstap: exporting ${input}: ${(done * 100).toFixed(0)}% read, ${s.entries} entries, ${s.messages} messages\n`),
  };
  try {
    const stats = packetCapture
      ? await exportPacketCapture(positionals, serverPorts, common)
      : await exportCapture({
      ...common,
      capturePath: positionals,
      onWarning: (w) => process.stderr.write(`wstap: warning: ${w.path}${w.line === null ? '' : `:${w.line}`}: ${w.message}\n`),
      onNote: (note) => process.stderr.write(`wstap: ${input}: ${note}\n`),
    });
    const partial = stats.partialMessages > 0 ? ` (${stats.partialMessages} with partial data, marked with _size)` : '';
    process.stderr.write(
      `wstap: wrote ${output}: ${stats.entries} entries, ${stats.messages} messages${partial}, ${values['no-redact'] ? 'NOT redacted' : 'secrets redacted'}, in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
    );
    return 0;
  } catch (err) {
    return reportFileError(err);
  }
}

/** pcap/pcapng -> HAR: every file must be one (refused before the output exists otherwise). */
function exportPacketCapture(files: string[], serverPorts: number[], options: HarExportOptions): ReturnType<typeof exportEvents> {
  const other = files.find((file) => packetCaptureFormat(file) === null);
  if (other !== undefined) throw new UsageError(`${other} is not a pcap or pcapng file: packet captures are exported alone (the files of one tcpdump ring, in order)`);
  const progress = { bytesRead: 0 };
  const total = files.reduce((sum, file) => sum + fs.statSync(file).size, 0);
  const events = readPacketCaptureEvents(files, { serverPorts, note: (note) => process.stderr.write(`wstap: ${note}\n`), progress });
  return exportEvents(events, { total, progress }, options);
}
