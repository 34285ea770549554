import { ConfigError, type ConfigArg, type ConfigDirective, type SourcePosition } from './config-ast.js';

/**
 * nginx's configuration language, read the way nginx reads it
 * (src/core/ngx_conf_file.c, ngx_conf_read_token and ngx_conf_parse):
 * - a word ends at whitespace, `;` or `{`; a `}` or `#` inside a word is part of it;
 * - `#` starts a comment only where a word could start;
 * - a word that starts with `"` or `'` runs to the matching quote, which must be
 *   followed by whitespace, `;`, `{` or `)` (as in `if ($a = "b")`);
 * - `\` makes the next character plain; in the value `\"`, `\'`, `\\` lose the
 *   backslash and `\t`, `\r`, `\n` become the control characters;
 * - `${` inside a word does not open a block (`${var}`);
 * - each file's braces balance within that file (an included file is parsed on its own).
 * Errors carry nginx's wording and our exact position.
 */

type Terminator = ';' | '{' | '}' | 'eof';

interface Statement {
  args: ConfigArg[];
  end: Terminator;
  pos: SourcePosition;
}

const isSpace = (ch: string): boolean => ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n';

/** Blocks whose content a module reads itself (map, types...): entries, not directives; nginx refuses a `{` inside them. */
export const HANDLER_BLOCKS = new Set(['map', 'types', 'geo', 'split_clients', 'charset_map']);

/** Every nginx directive's name is made of these; anything else is an "unknown directive" to any nginx. */
const DIRECTIVE_NAME = /^[A-Za-z0-9_]+$/;

class StatementReader {
  private i = 0;
  private line = 1;
  private lineStart = 0;

  constructor(
    private readonly text: string,
    private readonly file: string,
  ) {}

  /**
   * The body of a `*_by_lua_block { }` (lua-nginx-module reads it with its
   * own lexer): Lua, skipped to its matching `}` past Lua strings, long
   * brackets and `--` comments. Returns the closing brace's position.
   */
  skipLuaBlock(open: SourcePosition): SourcePosition {
    const { text } = this;
    let depth = 1;
    while (this.i < text.length) {
      const offset = this.i;
      const ch = text[this.i++] as string;
      if (ch === '\n') {
        this.line++;
        this.lineStart = this.i;
      } else if (ch === '{') depth++;
      else if (ch === '}') {
        if (--depth === 0) return this.here(offset);
      } else if (ch === '"' || ch === "'") {
        while (this.i < text.length) {
          const c = text[this.i];
          if (c === ch) {
            this.i++;
            break;
          }
          if (c === '\n') break; // an unclosed Lua string: Lua's error, the line is counted above
          this.i += c === '\\' && text[this.i + 1] !== '\n' ? 2 : 1;
        }
      } else if (ch === '-' && text[this.i] === '-') {
        const long = /^--\[(=*)\[/.exec(text.slice(offset, offset + 40));
        if (long) this.skipTo(text.indexOf(`]${long[1]}]`, offset + long[0].length), (long[1] as string).length + 2);
        else while (this.i < text.length && text[this.i] !== '\n') this.i++;
      } else if (ch === '[') {
        const long = /^\[(=*)\[/.exec(text.slice(offset, offset + 40));
        if (long) this.skipTo(text.indexOf(`]${long[1]}]`, offset + long[0].length), (long[1] as string).length + 2);
      }
    }
    throw ConfigError.at(open, 'unexpected end of file: this Lua block is never closed');
  }

  /** Past a long bracket's end (`at`, -1: never closed), counting lines. */
  private skipTo(at: number, closeLength: number): void {
    const end = at === -1 ? this.text.length : at + closeLength;
    for (; this.i < end; this.i++) {
      if (this.text[this.i] === '\n') {
        this.line++;
        this.lineStart = this.i + 1;
      }
    }
  }

  private here(offset: number): SourcePosition {
    return { file: this.file, line: this.line, col: offset - this.lineStart + 1, offset };
  }

  /** The next statement: its words and what ended it (nginx's ngx_conf_read_token). */
  next(): Statement {
    const { text } = this;
    const args: ConfigArg[] = [];
    let needSpace = false;
    let lastSpace = true;
    let sharpComment = false;
    let variable = false;
    let quoted = false;
    let sQuoted = false;
    let dQuoted = false;
    let start = 0;
    let startPos = this.here(0);
    let wordQuoted = false;
    for (;;) {
      if (this.i >= text.length) {
        const pos = this.here(this.i);
        if (args.length > 0 || !lastSpace) {
          const what = dQuoted ? ' (a " is never closed)' : sQuoted ? " (a ' is never closed)" : '';
          throw ConfigError.at(pos, `unexpected end of file, expecting ";" or "}"${what}`);
        }
        return { args, end: 'eof', pos };
      }
      const offset = this.i;
      const ch = text[this.i++] as string;
      const pos = this.here(offset);
      if (ch === '\n') {
        this.line++;
        this.lineStart = this.i;
        sharpComment = false;
      }
      if (sharpComment) continue;
      if (quoted) {
        quoted = false;
        continue;
      }
      if (needSpace) {
        if (isSpace(ch)) {
          lastSpace = true;
          needSpace = false;
          continue;
        }
        if (ch === ';' || ch === '{') return { args, end: ch, pos };
        if (ch !== ')') throw ConfigError.at(pos, `unexpected "${ch}"`);
        lastSpace = true;
        needSpace = false;
      }
      if (lastSpace) {
        start = offset;
        startPos = pos;
        if (isSpace(ch)) continue;
        switch (ch) {
          case ';':
          case '{':
            if (args.length === 0) throw ConfigError.at(pos, `unexpected "${ch}"`);
            return { args, end: ch, pos };
          case '}':
            if (args.length !== 0) throw ConfigError.at(pos, 'unexpected "}"');
            return { args, end: '}', pos };
          case '#':
            sharpComment = true;
            continue;
          case '\\':
            quoted = true;
            lastSpace = false;
            wordQuoted = false;
            continue;
          case '"':
          case "'":
            start++;
            if (ch === '"') dQuoted = true;
            else sQuoted = true;
            lastSpace = false;
            wordQuoted = true;
            continue;
          case '$':
            variable = true;
            lastSpace = false;
            wordQuoted = false;
            continue;
          default:
            lastSpace = false;
            wordQuoted = false;
            continue;
        }
      }
      if (ch === '{' && variable) continue;
      variable = false;
      if (ch === '\\') {
        quoted = true;
        continue;
      }
      if (ch === '$') {
        variable = true;
        continue;
      }
      let found = false;
      if (dQuoted) {
        if (ch === '"') {
          dQuoted = false;
          needSpace = true;
          found = true;
        }
      } else if (sQuoted) {
        if (ch === "'") {
          sQuoted = false;
          needSpace = true;
          found = true;
        }
      } else if (isSpace(ch) || ch === ';' || ch === '{') {
        lastSpace = true;
        found = true;
      }
      if (!found) continue;
      const body = text.slice(start, offset);
      args.push({
        value: unescapeWord(body),
        raw: wordQuoted ? text.slice(start - 1, offset + 1) : body,
        quoted: wordQuoted,
        pos: startPos,
      });
      if (ch === ';' || ch === '{') return { args, end: ch, pos };
    }
  }
}

/** nginx's copy loop: `\"`, `\'`, `\\` drop the backslash; `\t`, `\r`, `\n` become control characters; anything else stays. */
export function unescapeWord(body: string): string {
  let out = '';
  for (let src = 0; src < body.length; ) {
    if (body[src] === '\\') {
      const next = body[src + 1];
      if (next === '"' || next === "'" || next === '\\') {
        src++;
      } else if (next === 't' || next === 'r' || next === 'n') {
        out += next === 't' ? '\t' : next === 'r' ? '\r' : '\n';
        src += 2;
        continue;
      }
    }
    out += body[src++];
  }
  return out;
}

/**
 * One file's directives (its includes not yet followed). Throws ConfigError
 * where nginx would refuse it: a syntax error, or a name no directive can
 * have (checked as nginx checks names, in order, so the first problem is the
 * one nginx names). `inHandlerBlock`: the file is included inside a `map`,
 * `types`... block, whose entries are not directives.
 */
export function parseConfigText(text: string, file: string, inHandlerBlock = false): ConfigDirective[] {
  const reader = new StatementReader(text, file);
  return parseBlock(reader, null, inHandlerBlock).directives;
}

function parseBlock(reader: StatementReader, parent: ConfigDirective | null, inHandler: boolean): { directives: ConfigDirective[]; close: SourcePosition | null } {
  const directives: ConfigDirective[] = [];
  for (;;) {
    const st = reader.next();
    if (st.end === '}') {
      if (parent === null) throw ConfigError.at(st.pos, 'unexpected "}"');
      return { directives, close: st.pos };
    }
    if (st.end === 'eof') {
      if (parent !== null) throw ConfigError.at(st.pos, `unexpected end of file, expecting "}" (the "${parent.name}" block at line ${parent.pos.line} is never closed)`);
      return { directives, close: null };
    }
    const [first, ...rest] = st.args as [ConfigArg, ...ConfigArg[]];
    if (!inHandler && !DIRECTIVE_NAME.test(first.value)) {
      const hint = /[{}$]/.test(first.value) ? ' (a location regex with { or } must be quoted)' : '';
      throw ConfigError.at(first.pos, `unknown directive "${first.value}"${hint}`);
    }
    const directive: ConfigDirective = { name: first.value, args: rest, pos: first.pos, end: st.pos, block: null };
    if (st.end === '{') {
      if (inHandler) throw ConfigError.at(st.pos, 'unexpected "{"');
      directive.blockOpen = st.pos;
      if (directive.name.endsWith('_by_lua_block')) {
        directive.block = [];
        directive.end = reader.skipLuaBlock(st.pos);
        directives.push(directive);
        continue;
      }
      const inner = parseBlock(reader, directive, HANDLER_BLOCKS.has(directive.name));
      directive.block = inner.directives;
      directive.end = inner.close as SourcePosition;
    }
    directives.push(directive);
  }
}
