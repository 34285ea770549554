import fs from 'node:fs';
import type { ConfigSource } from './config-load.js';
import { splitConfigDump } from './config-dump.js';
import { isGlobPattern, matchesPath, matchesSegment, sortPaths } from './config-glob.js';

/**
 * The I/O behind ConfigSource: files on disk (read, globbed segment by
 * segment as glob(3) does), or the files of a `nginx -T` dump held in memory.
 */

export function fileSystemSource(): ConfigSource {
  return {
    read(file) {
      try {
        return { text: fs.readFileSync(file, 'utf8') };
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        return { error: e.code === 'ENOENT' ? 'No such file or directory' : e.code === 'EACCES' ? 'Permission denied' : (e.code ?? e.message) };
      }
    },
    glob: globFiles,
  };
}

/** The files of a dump: its first file is the main configuration. */
export function dumpSource(dump: string): { mainFile: string; source: ConfigSource } {
  const files = splitConfigDump(dump);
  const byPath = new Map(files.map((f) => [f.path, f.text]));
  return {
    mainFile: (files[0] as { path: string }).path,
    source: {
      read(file) {
        const text = byPath.get(file);
        return text === undefined ? { error: 'not in the nginx -T output' } : { text };
      },
      glob(pattern) {
        return sortPaths([...byPath.keys()].filter((p) => matchesPath(p, pattern)));
      },
    },
  };
}

/** glob(3) on an absolute pattern: each segment with `*?[` matched against its directory's entries. */
function globFiles(pattern: string): string[] {
  const segments = pattern.split('/');
  let candidates = [segments[0] === '' ? '/' : '.'];
  segments.forEach((segment, i) => {
    if (i === 0 && segment === '') return;
    const last = i === segments.length - 1;
    const next: string[] = [];
    for (const dir of candidates) {
      if (!isGlobPattern(segment)) {
        next.push(joinLiteral(dir, segment));
        continue;
      }
      let names: string[];
      try {
        names = fs.readdirSync(dir);
      } catch {
        continue;
      }
      for (const name of names) if (matchesSegment(name, segment)) next.push(joinLiteral(dir, name));
    }
    candidates = last ? next.filter((p) => exists(p)) : next.filter((p) => isDirectory(p));
  });
  return sortPaths(candidates);
}

/** Joined as nginx joins (no normalising of `..`), so names match what nginx reports. */
function joinLiteral(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

function exists(p: string): boolean {
  return fs.existsSync(p);
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
