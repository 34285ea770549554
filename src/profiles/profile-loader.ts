/**
 * Finding profiles (DESIGN.md section 6): `--profile NAME|FILE` resolved to a
 * shipped profile (profiles/NAME.yaml in the package) or a YAML file, and the
 * list of shipped profiles for `wstap profiles`. This is the entry point the
 * CLI imports; it re-exports the parser and the error so callers need one
 * module. Parsing and the schema live in profile-parser.ts,
 * profile-sections.ts and yaml-node-checker.ts; "did you mean" in
 * profile-suggestions.ts.
 */

import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Profile } from './profile.js';
import { ProfileError } from './profile-error.js';
import { loadProfileFile } from './profile-parser.js';
import { nearestOf } from './profile-suggestions.js';

export { ProfileError } from './profile-error.js';
export { loadProfileFile, parseProfile } from './profile-parser.js';

/** The directory of shipped profiles: <package root>/profiles (the same ../../profiles from src/profiles and dist/profiles). */
export function shippedProfilesDir(): string {
  return resolve(fileURLToPath(new URL('../../profiles', import.meta.url)));
}

/**
 * A NAME of a shipped profile (DIR/NAME.yaml) or a path to a file (anything
 * containing "/" or "\" or ending in .yaml/.yml). A shipped profile's source
 * is its name; a file's is the path as given. Unknown names throw a
 * ProfileError (line 0) listing the shipped names and the nearest one.
 */
export function resolveProfile(nameOrFile: string, dir: string = shippedProfilesDir()): Profile {
  if (/[/\\]/.test(nameOrFile) || /\.ya?ml$/i.test(nameOrFile)) return loadProfileFile(nameOrFile);
  const names = shippedProfileNames(dir);
  if (!names.includes(nameOrFile)) {
    const nearest = nearestOf(nameOrFile, names);
    const hint = nearest === undefined ? '' : ` (did you mean "${nearest}"?)`;
    const shipped =
      names.length === 0 ? `no shipped profiles were found in ${dir}` : `shipped profiles: ${names.join(', ')}`;
    throw new ProfileError(dir, 0, 0, `unknown profile "${nameOrFile}"${hint}; ${shipped}; or give the path of a YAML file`);
  }
  return { ...loadProfileFile(join(dir, `${nameOrFile}.yaml`)), source: nameOrFile };
}

/** Every shipped profile, sorted by name (for `wstap profiles`). */
export function listShippedProfiles(dir: string = shippedProfilesDir()): Profile[] {
  return shippedProfileNames(dir).map((name) => ({ ...loadProfileFile(join(dir, `${name}.yaml`)), source: name }));
}

function shippedProfileNames(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.slice(0, -'.yaml'.length))
    .sort();
}
