import fs from 'node:fs';
import { printable } from '../analysis/printable.js';
import { readFileHead } from '../capture/capture-reader.js';
import { instanceCapturesOfFiles, readMergedEvents, type InstanceCapture } from '../capture/capture-merge.js';
import { readCaptureSetEvents, type CaptureSetWarning } from '../capture/capture-set.js';
import type { CaptureEvent } from '../capture/events.js';
import { harToEvents, looksLikeHar } from '../har/har-reader.js';
import { packetCaptureFormat, readPacketCaptureEvents } from '../pcap/packet-capture-reader.js';
import { UsageError } from './usage-error.js';

/** What `wstap view` reads: a HAR file, or a capture (one file, a rotated set, several files of one session). */
export interface ViewSource {
  events: AsyncIterable<CaptureEvent> | Iterable<CaptureEvent>;
  /** Per connection, what the file cannot tell (a browser's HAR has no close evidence). */
  unknown: Map<number, string[]>;
  describe: string;
  /** The capture files, for the UI's HAR export; null for a HAR or a packet capture. */
  capturePaths: string[] | null;
  /** About the set: files read, deleted segments. */
  notes: string[];
  /** Several proxies' captures read as one (capture-merge.ts). */
  merged: boolean;
}

export function warningText(w: CaptureSetWarning): string {
  return `${w.path}${w.line === null ? '' : `:${w.line}`}: ${w.message}`;
}

export interface ViewSourceOptions {
  /** --port: a packet capture's server ports. */
  serverPorts: readonly number[];
  /** What a packet capture's reader has to say while it reads (drops, guesses, decoding stopped). */
  onNote: (message: string) => void;
}

/** Opens what the user named; bad input throws before anything is shown. */
export function openViewSource(files: readonly string[], onWarning: (message: string) => void, options: ViewSourceOptions = { serverPorts: [], onNote: () => undefined }): ViewSource {
  const formats = files.map((file) => packetCaptureFormat(file));
  if (formats.some((format) => format !== null)) {
    const other = files.find((_, i) => formats[i] === null);
    if (other !== undefined) throw new UsageError(`${other} is not a pcap or pcapng file: packet captures are read alone (the files of one tcpdump ring, in order)`);
    return {
      events: readPacketCaptureEvents(files, { serverPorts: options.serverPorts, note: options.onNote }),
      unknown: new Map(),
      describe: `packet capture (${[...new Set(formats)].join(', ')}), decoded by wstap`,
      capturePaths: null,
      notes: [],
      merged: false,
    };
  }
  if (options.serverPorts.length > 0) throw new UsageError('--port is for packet captures (pcap, pcapng); a wstap capture or HAR names its connections already');
  // A rotated capture's first file may be gone (--keep): only a file that is there can be a HAR.
  const har = files.find((file) => fs.existsSync(file) && looksLikeHar(readFileHead(file, 4096)));
  if (har !== undefined) {
    if (files.length > 1) throw new UsageError(`${har} is a HAR file: view reads a HAR file alone`);
    const result = harToEvents(fs.readFileSync(har, 'utf8'), har);
    for (const warning of result.warnings) onWarning(warning);
    // A HAR of several proxies' captures: its connections name their instance again, so session lines do too.
    const instances = instancesOf(result.events);
    const merged = instances.length > 1 || result.events.some((e) => e.kind === 'session.start' && e !== result.events[0]);
    const describe = `HAR by ${result.creator}${merged ? ` of ${instances.length} instances (${instances.map((i) => printable(i)).join(', ')}); each connection labelled with its instance` : ''}`;
    return { events: result.events, unknown: result.unknown, describe, capturePaths: null, notes: [], merged };
  }
  const captures = instanceCapturesOfFiles(files);
  if (captures.length > 1) return mergedSource(captures, onWarning);
  const set = (captures[0] as InstanceCapture).set;
  const header = (set.segments[0] as (typeof set.segments)[number]).header;
  return {
    events: readCaptureSetEvents(set, { onWarning: (w) => onWarning(warningText(w)) }),
    unknown: new Map(),
    describe: `wstap capture (format ${header.version}, ${header.createdBy})`,
    capturePaths: set.segments.map((s) => s.path),
    notes: set.notes,
    merged: false,
  };
}

/** Captures of several proxies (or several sessions), read as one by time; connections renumbered (capture-merge.ts). */
function mergedSource(captures: readonly InstanceCapture[], onWarning: (message: string) => void): ViewSource {
  return {
    events: readMergedEvents(captures, { onWarning: (w) => onWarning(warningText(w)) }),
    unknown: new Map(),
    describe: `${captures.length} wstap captures merged by time (${captures.map((c) => c.instance).join(', ')}); connections renumbered, each labelled with its instance`,
    capturePaths: captures.flatMap((c) => c.set.segments.map((s) => s.path)),
    notes: captures.flatMap((c) => c.set.notes.map((note) => `${c.instance}: ${note}`)),
    merged: true,
  };
}

/** The instances a HAR's connections name (its reader puts them on each connection's first event), in order. */
function instancesOf(events: readonly CaptureEvent[]): string[] {
  const names = new Set<string>();
  for (const e of events) if ('conn' in e && 'instance' in e && typeof e.instance === 'string') names.add(e.instance);
  return [...names];
}
