import path from 'node:path';
import type { DiagnosisContext } from '../analysis/connection-diagnosis.js';
import { diagnosisRecord, type DiagnosisRecord } from '../analysis/diagnosis-record.js';
import { heartbeatSetupFindings } from '../analysis/heartbeat-rules.js';
import { parseTimeoutSpec, TimeoutSpecError, type HopTimeout } from '../profiles/hop-timeout.js';
import { formatDuration } from '../analysis/countdown.js';
import { hopTimeouts, type Profile } from '../profiles/profile.js';
import { parseArgsStrict } from './option-values.js';
import { UsageError } from './usage-error.js';

/**
 * `--profile NAME|FILE`: an invalid profile stops everything with its file,
 * line and column (exit 2). The loader (and the YAML parser) is loaded only
 * when a profile is named: a proxy without one keeps a smaller heap.
 */
export async function profileFromOption(value: unknown): Promise<Profile | null> {
  if (typeof value !== 'string') return null;
  const { ProfileError, resolveProfile } = await import('../profiles/profile-loader.js');
  try {
    return resolveProfile(value);
  } catch (err) {
    if (err instanceof ProfileError) throw new UsageError(`--profile: ${err.message}`);
    throw err;
  }
}

/** Repeated `--timeout NAME=DURATION[:MEASURE]` flags. */
export function parseTimeoutFlags(values: unknown): HopTimeout[] {
  const specs = Array.isArray(values) ? values : values === undefined ? [] : [values];
  return specs.map((spec) => {
    try {
      return parseTimeoutSpec(String(spec));
    } catch (err) {
      if (err instanceof TimeoutSpecError) throw new UsageError(err.message);
      throw err;
    }
  });
}

/** The profile's timeouts, then the --timeout flags (a flag for the same hop and setting replaces the profile's). */
export function knownTimeouts(profile: Profile | null, flags: unknown): HopTimeout[] {
  const fromFlags = parseTimeoutFlags(flags);
  const fromProfile = profile ? hopTimeouts(profile) : [];
  const overridden = (t: HopTimeout): boolean => fromFlags.some((f) => f.hop === t.hop && f.setting === t.setting);
  return [...fromProfile.filter((t) => !overridden(t)), ...fromFlags];
}

/** Everything the verdicts and findings are judged against: profile, then flags. */
export function diagnosisContextOf(profile: Profile | null, timeoutFlags: unknown): DiagnosisContext {
  return {
    timeouts: knownTimeouts(profile, timeoutFlags),
    requiredHeaders: profile?.app?.requiresHeaders ?? [],
    heartbeat: profile?.heartbeat ?? null,
    ...(profile?.app?.keepAliveTimeout !== undefined ? { appKeepAliveMs: profile.app.keepAliveTimeout * 1000 } : {}),
  };
}

/**
 * What a session records (session.start) about how it is judged: the
 * profile's name and source (its file, absolute, or "shipped"), the
 * --timeout flags as given, and what they resolve to.
 */
export function diagnosisRecordOf(profile: Profile | null, profileArg: unknown, timeoutFlags: unknown): DiagnosisRecord {
  const flags = (Array.isArray(timeoutFlags) ? timeoutFlags : timeoutFlags === undefined ? [] : [timeoutFlags]).map(String);
  // As resolveProfile tells a file from a shipped name.
  const fromFile = typeof profileArg === 'string' && (/[/\\]/.test(profileArg) || /\.ya?ml$/i.test(profileArg));
  const source = profile ? { name: profile.name, source: fromFile ? path.resolve(profile.source) : 'shipped' } : null;
  return diagnosisRecord(source, flags, diagnosisContextOf(profile, timeoutFlags));
}

/** For view and export: the context the command line gives, or null when it names none (the capture's own is then used). */
export function givenDiagnosisRecord(profile: Profile | null, profileArg: unknown, timeoutFlags: unknown): DiagnosisRecord | null {
  const flags = Array.isArray(timeoutFlags) ? timeoutFlags.length > 0 : timeoutFlags !== undefined;
  return profile || flags ? diagnosisRecordOf(profile, profileArg, timeoutFlags) : null;
}

export const PROFILES_HELP = `Usage: wstap profiles

Lists the profiles shipped with wstap (profiles/*.yaml): the hops in front of
and behind the app, their idle timeouts and the app's heartbeat. Use one with
--profile NAME, or write your own and pass --profile path/to/file.yaml.
`;

function summary(p: Profile): string {
  const timeouts = hopTimeouts(p).map((t) => `${t.hop} ${t.setting} ${formatDuration(t.seconds)}`);
  const heartbeat = p.heartbeat ? `${p.heartbeat.from} pings every ${formatDuration(p.heartbeat.interval)}` : null;
  return [...timeouts, ...(heartbeat ? [heartbeat] : [])].join(', ') || 'no timeouts';
}

export async function runProfiles(args: string[]): Promise<number> {
  const { values, positionals } = parseArgsStrict(args, { help: { type: 'boolean', short: 'h' } });
  if (values.help) {
    process.stdout.write(PROFILES_HELP);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const { listShippedProfiles } = await import('../profiles/profile-loader.js');
  const profiles = listShippedProfiles();
  const width = Math.max(...profiles.map((p) => p.name.length));
  const indent = ' '.repeat(width);
  const lines = profiles.map((p) => {
    const warnings = heartbeatSetupFindings(p.heartbeat ?? null, hopTimeouts(p)).map((f) => `\n${indent}  warning: ${f.message}`);
    return `${p.name.padEnd(width)}  ${p.description}\n${indent}  (${summary(p)})${warnings.join('')}`;
  });
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
