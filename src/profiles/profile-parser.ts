/**
 * YAML text to a Profile (DESIGN.md section 6). The document is walked node
 * by node rather than through toJS() so that every problem carries the line
 * and column of the node it is about (see yaml-node-checker.ts). All problems
 * are collected and the first one in document order is thrown as a
 * ProfileError; YAML syntax errors come before any validation, since a broken
 * document cannot be checked meaningfully. Aliases are refused: a profile is
 * short, and a value written out is one a reader can find.
 */

import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, visit } from 'yaml';
import type { Profile } from './profile.js';
import { ProfileError } from './profile-error.js';
import { checkProfile } from './profile-sections.js';
import { NodeChecker } from './yaml-node-checker.js';

/** Parses and validates YAML text; `file` is only used for messages and Profile.source. Throws ProfileError with the first problem in document order. */
export function parseProfile(text: string, file: string): Profile {
  // A byte-order mark would shift every column on line 1 by one.
  const source = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const lineCounter = new LineCounter();
  const fail = (offset: number, problem: string): never => {
    const { line, col } = lineCounter.linePos(offset);
    throw new ProfileError(file, line, col, problem);
  };

  const doc = parseDocument(source, { keepSourceTokens: false, lineCounter, prettyErrors: false, uniqueKeys: false });
  const yamlError = firstByOffset([...doc.errors, ...doc.warnings].map((e) => ({ offset: e.pos[0], error: e })));
  if (yamlError) {
    const { error } = yamlError;
    if (error.code === 'MULTIPLE_DOCS') {
      fail(yamlError.offset, 'a profile is a single YAML document; remove this second one (and its "---")');
    }
    fail(yamlError.offset, `YAML syntax error: ${error.message}`);
  }

  const checker = new NodeChecker(lineCounter);
  visit(doc, {
    Alias(_key, node) {
      checker.report(node, 0, `aliases (*${node.source}) are not supported in profiles; write the value out`);
    },
  });
  const profile = checkProfile(checker, doc.contents, file);
  const problem = firstByOffset(checker.problems);
  if (problem) fail(problem.offset, problem.message);
  if (!profile) return fail(0, 'invalid profile');
  return profile;
}

/** Reads a file and parses it (I/O errors are rethrown as ProfileError at 1:1 with the OS message). */
export function loadProfileFile(file: string): Profile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ProfileError(file, 1, 1, `cannot read the profile: ${(err as Error).message}`);
  }
  return parseProfile(text, file);
}

function firstByOffset<T extends { offset: number }>(items: readonly T[]): T | undefined {
  let first: T | undefined;
  // Strictly smaller only: among problems at one offset the first reported wins.
  for (const item of items) if (first === undefined || item.offset < first.offset) first = item;
  return first;
}
