/**
 * `.airflowignore` rules: compiling a line of either syntax into a rule, and deciding whether a
 * path is ignored by a folder's rule list, the way Airflow's `find_path_from_directory` does.
 *
 * Glob (Airflow 3 default): Airflow decides the anchoring itself on the raw line — a line that
 * starts with `/` or has a `/` anywhere but at its end is matched against the path relative to the
 * folder holding the ignore file, any other line against the bare name of the candidate. Folders
 * get a trailing `/`. All rules (inherited first) are evaluated and the last one that matches
 * decides; `!` lines re-include. Rules ending in `/` only apply to folders (apache/airflow#62860,
 * the current Airflow 3 behaviour; before it, `!abc/def/` also re-included files in `abc/def/`).
 *
 * Regexp (Airflow 2 default): Python `re.search` against the path relative to the BASE folder (the
 * dags folder), without a trailing slash; any match ignores; order does not matter.
 *
 * Where Airflow versions differ, this follows current Airflow 3 (with pathspec 0.12.1, the version
 * Airflow 3 pins):
 * - `dir/` rules only apply to folders (PR #62860, 2026); before it, `!abc/def/` also re-included
 *   the files directly inside `abc/def/` (issue #62716).
 * - Folders are always matched with a trailing `/`; 2.x and 3.0 added it only for patterns ending
 *   in `/` (no observed difference in practice).
 * - Repeated lines are all kept (the last one wins); 2.x and 3.0 de-duplicated the rule list and
 *   kept the FIRST occurrence, which only matters for glob negation.
 * - 3.1.0 to 3.1.x had bugs in glob negation order and `dir/` patterns (#56126, #56299, #58636),
 *   not reproduced here.
 * - Regexp lines use Python's `re`; Airflow 2.6.3+ used google-re2, which rejects look-around
 *   (`^(?!keep)`) and skips such lines, whereas we (like Airflow 3) apply them.
 * - pathspec >= 1.0 keeps leading spaces of a glob line; 0.12.1 (followed here) strips them.
 */
import { compileGitWildMatch, GitWildMatchError } from './gitwildmatch.js';
import { translatePythonRegex } from './python-regexp.js';
import { pyRstrip, pyStrip } from './python-text.js';
import type { IgnoreSyntax, RuleSource } from './types.js';

/** Where a rule comes from: an ignore file line, the default excludes, or the `exclude` option. */
export type RuleOrigin = RuleSource | 'default' | 'option';

/** A compiled glob rule. */
export interface GlobRule {
  readonly syntax: 'glob';
  /** The line as written (after comment stripping). */
  readonly pattern: string;
  readonly regex: RegExp;
  /** True: matching paths are ignored; false: a `!` rule that re-includes. */
  readonly ignores: boolean;
  /** Only applies to folders (the pattern ends in `/`). */
  readonly dirOnly: boolean;
  /** Folder (relative to the dags folder, '' for the root) the rule is anchored to; null: bare-name rule. */
  readonly anchor: string | null;
  readonly source: RuleOrigin;
}

/** A compiled regexp rule. */
export interface RegexpRule {
  readonly syntax: 'regexp';
  readonly pattern: string;
  readonly regex: RegExp;
  readonly source: RuleSource;
}

/** A compiled rule of either syntax. */
export type IgnoreRule = GlobRule | RegexpRule;

/** Why a line was not turned into a rule. */
export type CompileProblem =
  | { kind: 'noop'; message: string }
  | { kind: 'invalid'; message: string; fatal: boolean }
  | { kind: 'unsupported'; message: string };

/**
 * Compile one glob line. `folder` is the logical folder (relative to the dags folder, '' for the
 * root) whose ignore file holds the line. Throws {@link GitWildMatchError} where Airflow's walk
 * would fail (pathspec rejects the line).
 */
export function compileGlobRule(pattern: string, folder: string, source: RuleOrigin): GlobRule | CompileProblem {
  if (pyStrip(pattern) === '/') return { kind: 'noop', message: "the pattern '/' matches nothing; Airflow skips it" };
  const anchored = pattern.startsWith('/') || pattern.replace(/\/+$/, '').includes('/');
  let compiled;
  try {
    compiled = compileGitWildMatch(pattern);
  } catch (err) {
    if (err instanceof GitWildMatchError) return { kind: 'invalid', message: err.message, fatal: true };
    throw err;
  }
  if (compiled.regex === null || compiled.include === null) {
    return { kind: 'noop', message: 'the pattern matches nothing' };
  }
  const body = pyRstrip(pattern).replace(/^!/, '');
  return {
    syntax: 'glob',
    pattern,
    regex: compiled.regex,
    ignores: compiled.include,
    dirOnly: body.endsWith('/'),
    anchor: anchored ? folder : null,
    source,
  };
}

/** Compile one regexp line; bad lines are skipped by Airflow (and reported by us). */
export function compileRegexpRule(pattern: string, source: RuleSource): RegexpRule | CompileProblem {
  const result = translatePythonRegex(pattern);
  if (result.ok) return { syntax: 'regexp', pattern, regex: result.regex, source };
  if (result.kind === 'invalid') return { kind: 'invalid', message: result.message, fatal: false };
  return { kind: 'unsupported', message: result.message };
}

/** Compile a line of the given syntax. */
export function compileRule(syntax: IgnoreSyntax, pattern: string, folder: string, source: RuleSource): IgnoreRule | CompileProblem {
  return syntax === 'glob' ? compileGlobRule(pattern, folder, source) : compileRegexpRule(pattern, source);
}

/** True when `x` is a compiled rule rather than a problem. */
export function isRule(x: IgnoreRule | CompileProblem): x is IgnoreRule {
  return 'syntax' in x;
}

/**
 * The rule that decides whether `relPath` (relative to the dags folder, forward slashes) is
 * ignored, or undefined when no rule matches (the path is kept). The returned rule ignores the
 * path when it is a regexp rule, or a glob rule with `ignores === true`.
 */
export function decidingRule(rules: readonly IgnoreRule[], relPath: string, isDir: boolean): IgnoreRule | undefined {
  if (rules.length === 0) return undefined;
  if (rules[0]!.syntax === 'regexp') {
    for (const rule of rules) if (rule.regex.test(relPath)) return rule;
    return undefined;
  }
  let decided: GlobRule | undefined;
  let name: string | undefined;
  for (const rule of rules as readonly GlobRule[]) {
    if (rule.dirOnly && !isDir) continue;
    let subject: string;
    if (rule.anchor === null) {
      name ??= relPath.slice(relPath.lastIndexOf('/') + 1);
      subject = name;
    } else {
      subject = rule.anchor === '' ? relPath : relPath.slice(rule.anchor.length + 1);
    }
    if (isDir) subject += '/';
    if (rule.regex.test(subject)) decided = rule;
  }
  return decided;
}

/** True when the deciding rule ignores the path. */
export function ruleIgnores(rule: IgnoreRule | undefined): boolean {
  return rule !== undefined && (rule.syntax === 'regexp' || rule.ignores);
}
