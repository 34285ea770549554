/** Reading the connection table off a tmux capture of the UI (100 columns or more). */

export interface TableRow {
  conn: number;
  path: string;
  state: string;
  age: string;
  idleUp: string;
  idleDown: string;
  note: string;
  line: string;
}

/**
 * At 100 columns the table shows '#', path, state, age, idle c→u, idle
 * u→c and 'timeout / closed by'; the heading is checked so a layout change
 * fails here with the screen rather than with a wrong parse.
 */
export function findRow(lines: string[], wantedPath: string): TableRow | null {
  const heading = lines.findIndex((l) => /#\s+path\s+state\s+age\s+idle c→u\s+idle u→c\s+timeout \/ closed by/.test(l));
  if (heading < 0) return null;
  for (const line of lines.slice(heading + 1)) {
    const m = /^\s*(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m || m[2] !== wantedPath) continue;
    return { conn: Number(m[1]), path: m[2], state: m[3]!, age: m[4]!, idleUp: m[5]!, idleDown: m[6]!, note: m[7]!.trim(), line };
  }
  return null;
}

/** "0s", "59s", "1m05s", "2h03m" as seconds. */
export function seconds(compact: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(compact);
  if (!m || compact === '') throw new Error(`not a compact duration: "${compact}"`);
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}
