/**
 * The output of `nginx -T`: every file nginx read, each under a
 * `# configuration file PATH:` line (src/core/nginx.c writes the header, the
 * file's bytes, then one line feed). A file included twice is dumped once.
 */

export interface DumpedFile {
  path: string;
  text: string;
  /** The line of the dump its first line is on (for messages about the dump itself). */
  dumpLine: number;
}

const HEADER = /^# configuration file (.+):$/;

/** The files of a `nginx -T` dump, in the order nginx read them; throws when there is no header at all. */
export function splitConfigDump(dump: string): DumpedFile[] {
  const lines = dump.split('\n');
  const starts: Array<{ path: string; index: number }> = [];
  lines.forEach((line, index) => {
    const header = HEADER.exec(line);
    if (header) starts.push({ path: header[1] as string, index });
  });
  if (starts.length === 0) {
    throw new Error('no "# configuration file PATH:" line: this is not the output of nginx -T (run: nginx -T 2>/dev/null | wstap nginx-check -)');
  }
  return starts.map((s, k) => {
    const next = starts[k + 1];
    const body = lines.slice(s.index + 1, next ? next.index : lines.length).join('\n');
    // Between two headers: the file, then nginx's line feed (the one before the next header).
    // After the last header: the file, nginx's line feed, and nothing else.
    const text = next || !body.endsWith('\n') ? body : body.slice(0, -1);
    return { path: s.path, text, dumpLine: s.index + 2 };
  });
}
