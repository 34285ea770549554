/**
 * The one error every profile problem becomes: a bad key or value in a YAML
 * file, a file that cannot be read, an unknown profile name. It carries the
 * file and the 1-based line and column of the node it is about, so the CLI
 * can print "FILE:LINE:COLUMN: problem" the way editors and compilers do;
 * problems that are not about a place (an unknown NAME) have line 0.
 */

/** A problem with a profile. line/column are 1-based; both are 0 when the problem is not about a place in a file. */
export class ProfileError extends Error {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** The message without the "FILE:LINE:COLUMN: " prefix. */
  readonly problem: string;

  constructor(file: string, line: number, column: number, problem: string) {
    super(line > 0 ? `${file}:${line}:${column}: ${problem}` : problem);
    this.name = 'ProfileError';
    this.file = file;
    this.line = line;
    this.column = column;
    this.problem = problem;
  }
}
