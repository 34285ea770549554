import { ConfigError, type ConfigDirective, type ConfigFile, type LoadedConfig, type SourcePosition } from './config-ast.js';
import { isGlobPattern } from './config-glob.js';
import { HANDLER_BLOCKS, parseConfigText } from './config-parser.js';

/**
 * Where configuration files come from: the file system (config-files.ts) or
 * a `nginx -T` dump (config-dump-source.ts). Kept behind this interface so
 * include resolution is pure and tested on both.
 */
export interface ConfigSource {
  /** The file's text, or why it cannot be read (e.g. "No such file or directory"). */
  read(path: string): { text: string } | { error: string };
  /** The files matching a glob(3) pattern, sorted as glob(3) sorts them; none is not an error. */
  glob(pattern: string): string[];
}

/** nginx follows includes without a limit (an include loop exhausts it); we stop here. */
const MAX_INCLUDE_DEPTH = 32;

/**
 * The whole configuration from `mainFile` (absolute), every `include`
 * resolved in place the way nginx resolves it (ngx_conf_include): a relative
 * path is joined to the conf prefix, the main file's directory (nginx sets
 * it from the -c path, whatever -p says); a pattern with `*?[` is globbed
 * and may match nothing; a plain path must exist.
 */
export function loadConfig(mainFile: string, source: ConfigSource): LoadedConfig {
  const confPrefix = mainFile.slice(0, mainFile.lastIndexOf('/') + 1) || '/';
  const files = new Map<string, ConfigFile>();
  const readFile = (path: string, from: SourcePosition | null, depth: number, inHandler: boolean): ConfigDirective[] => {
    if (depth > MAX_INCLUDE_DEPTH) {
      throw from ? ConfigError.at(from, `includes nested deeper than ${MAX_INCLUDE_DEPTH} levels (does "${path}" include itself?)`) : new ConfigError(path, 0, 0, 'includes nested too deep');
    }
    const read = source.read(path);
    if ('error' in read) {
      const detail = `open() "${path}" failed (${read.error})`;
      throw from ? ConfigError.at(from, detail) : new ConfigError(path, 0, 0, detail);
    }
    if (!files.has(path)) files.set(path, { path, text: read.text });
    const directives = parseConfigText(read.text, path, inHandler);
    resolveIncludes(directives, depth, inHandler);
    return directives;
  };
  const resolveIncludes = (directives: ConfigDirective[], depth: number, inHandler: boolean): void => {
    for (const d of directives) {
      if (d.name === 'include' && d.block === null) {
        const arg = d.args[0];
        if (d.args.length !== 1 || !arg) throw ConfigError.at(d.pos, 'invalid number of arguments in "include" directive');
        const target = arg.value.startsWith('/') ? arg.value : `${confPrefix}${arg.value}`;
        const paths = isGlobPattern(target) ? source.glob(target) : [target];
        d.included = paths.flatMap((p) => readFile(p, arg.pos, depth + 1, inHandler));
      } else if (d.block) {
        resolveIncludes(d.block, depth, HANDLER_BLOCKS.has(d.name));
      }
    }
  };
  const directives = readFile(mainFile, null, 0, false);
  return { mainFile, confPrefix, directives, files };
}
