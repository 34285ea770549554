/**
 * The nginx configuration as parsed: directives and blocks, every node with
 * the file, line and column it came from. Offsets (UTF-16 code units into
 * the file's text) let the re-pointing plan edit the real file in place.
 */

export interface SourcePosition {
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based, in characters of the line. */
  col: number;
  /** 0-based index into the file's text. */
  offset: number;
}

export interface ConfigArg {
  /** The word as nginx sees it: quotes removed, escapes resolved. */
  value: string;
  /** The word as written, quotes included. */
  raw: string;
  quoted: boolean;
  pos: SourcePosition;
}

export interface ConfigDirective {
  name: string;
  args: ConfigArg[];
  pos: SourcePosition;
  /** The `;` that ends a simple directive, or the `}` that closes a block. */
  end: SourcePosition;
  /** The directives inside `{ }`, or null for a simple directive. */
  block: ConfigDirective[] | null;
  /** The `{` of a block. */
  blockOpen?: SourcePosition;
  /** For `include`: what it brought in, in nginx's order (files sorted, each file's directives). */
  included?: ConfigDirective[];
}

/** One configuration file as read: its path and text (the plan diffs against it). */
export interface ConfigFile {
  path: string;
  text: string;
}

/** A whole configuration: the main file's directives (includes resolved in place) and every file read. */
export interface LoadedConfig {
  mainFile: string;
  /** The directory includes are relative to (nginx's conf prefix: the main file's directory). */
  confPrefix: string;
  directives: ConfigDirective[];
  files: Map<string, ConfigFile>;
}

/** A problem nginx would refuse the configuration for, at its position. */
export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly col: number,
    readonly detail: string,
  ) {
    super(`${file}:${line}:${col}: ${detail}`);
    this.name = 'ConfigError';
  }

  static at(pos: SourcePosition, detail: string): ConfigError {
    return new ConfigError(pos.file, pos.line, pos.col, detail);
  }
}

/** The directives of a block with every `include` replaced by what it brought in (recursively). */
export function expandIncludes(directives: readonly ConfigDirective[]): ConfigDirective[] {
  const out: ConfigDirective[] = [];
  for (const d of directives) {
    if (d.name === 'include' && d.included) out.push(...expandIncludes(d.included));
    else out.push(d);
  }
  return out;
}

/** `file:line:col` of a node, as linters print it. */
export function positionText(pos: SourcePosition): string {
  return `${pos.file}:${pos.line}:${pos.col}`;
}
