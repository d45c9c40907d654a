/**
 * gitwildmatch pattern -> JS RegExp, reproducing the regular expressions that Python's
 * `pathspec` 0.12.1 (`GitWildMatchPattern`, the version Airflow 3 pins) builds for a line.
 *
 * Why our own translation: Airflow's glob behaviour IS pathspec's regex behaviour (plus Airflow's
 * own anchoring, see `ignore-rules.ts`), and no JS library produces the same regexes. `ignore`,
 * `minimatch` and `picomatch` follow git or bash and differ from pathspec on the edges that matter
 * here: `**` as the only segment, a trailing `/` (pathspec matches the folder AND everything
 * below it), `dir/` being relative to any depth, bracket expressions (`[!...]`, `[^...]`, a `]`
 * right after the opening bracket), escapes, and whitespace trimming. The algorithm below is
 * re-derived from pathspec's documented behaviour and its test expectations; it emits JS syntax
 * for a `u`-flag RegExp so that `?` and `[...]` consume one code point, as Python's `re` does.
 */
import { pyLstrip, pyStrip } from './python-text.js';

/** A line pathspec cannot compile (Airflow lets this error end the whole walk). */
export class GitWildMatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GitWildMatchError';
  }
}

/** A compiled gitwildmatch line. `regex === null` means the line is a no-op (`include` is null). */
export interface GitWildMatch {
  /** Anchored (`^...$`) expression to test a slash-separated path with; null for no-op lines. */
  regex: RegExp | null;
  /** True: the line excludes what it matches; false: a `!` line that re-includes; null: no-op. */
  include: boolean | null;
  /** The JS source of `regex`, for diagnostics and tests. */
  source: string | null;
}

// Python's `.` (no DOTALL) is "anything but \n"; JS `.` also refuses \r, U+2028 and U+2029.
const ANY = '[^\\n]';
const SYNTAX = new Set('^$\\.*+?()[]{}|/'.split(''));

/** Escape one code point as a literal for a `u`-flag RegExp, outside a character class. */
export function escapeLiteral(ch: string): string {
  return SYNTAX.has(ch) ? `\\${ch}` : ch;
}

/** Escape one code point as a literal inside a `u`-flag character class. */
function classLiteral(ch: string): string {
  return `\\u{${ch.codePointAt(0)!.toString(16)}}`;
}

/**
 * Compile one gitwildmatch line exactly as `GitWildMatchPattern(line)` would (pathspec 0.12.1),
 * throwing {@link GitWildMatchError} where pathspec raises.
 */
export function compileGitWildMatch(line: string): GitWildMatch {
  let pattern = line;
  // pathspec 0.12.1 strips both ends, except that a trailing escaped space ("\ ") is kept.
  pattern = pattern.endsWith('\\ ') ? pyLstrip(pattern) : pyStrip(pattern);
  if (pattern.startsWith('#') || pattern === '/' || pattern === '') {
    return { regex: null, include: null, source: null };
  }
  let include = true;
  if (pattern.startsWith('!')) {
    include = false;
    pattern = pattern.slice(1);
  }
  const segs = pattern.split('/');
  // Collapse runs of "**" segments into one.
  for (let i = segs.length - 1; i > 0; i--) {
    if (segs[i - 1] === '**' && segs[i] === '**') segs.splice(i, 1);
  }
  let override: string | null = null;
  if (segs.length === 2 && segs[0] === '**' && segs[1] === '') {
    // "**/" matches every path that has a folder part, but not a bare file at the root.
    override = `^${ANY}+/${ANY}*$`;
  }
  if (segs[0] === '') {
    // Leading "/": relative to the root only.
    segs.shift();
  } else if (segs.length === 1 || (segs.length === 2 && segs[1] === '')) {
    // A single name (optionally "name/") matches at any depth: same as "**/name".
    if (segs[0] !== '**') segs.unshift('**');
  }
  if (segs.length === 0) throw new GitWildMatchError(`Invalid git pattern: ${JSON.stringify(line)}`);
  if (segs[segs.length - 1] === '' && segs.length > 1) {
    // Trailing "/": the folder itself and everything below it ("name/**").
    segs[segs.length - 1] = '**';
  }
  let source: string;
  if (override !== null) {
    source = override;
  } else {
    const out: string[] = ['^'];
    let needSlash = false;
    const end = segs.length - 1;
    for (let i = 0; i <= end; i++) {
      const seg = segs[i]!;
      if (seg === '**') {
        if (i === 0 && i === end) {
          out.push(`[^/]+(?:/${ANY}*)?`);
        } else if (i === 0) {
          out.push(`(?:${ANY}+/)?`);
          needSlash = false;
        } else if (i === end) {
          out.push(`/${ANY}*`);
        } else {
          out.push(`(?:/${ANY}+)?`);
          needSlash = true;
        }
      } else if (seg === '*') {
        if (needSlash) out.push('/');
        out.push('[^/]+');
        if (i === end) out.push(`(?:/${ANY}*)?`);
        needSlash = true;
      } else {
        if (needSlash) out.push('/');
        out.push(translateSegment(seg, line));
        if (i === end) out.push(`(?:/${ANY}*)?`);
        needSlash = true;
      }
    }
    out.push('$');
    source = out.join('');
  }
  let regex: RegExp;
  try {
    regex = new RegExp(source, 'u');
  } catch (err) {
    throw new GitWildMatchError(`Invalid git pattern: ${JSON.stringify(line)} (${(err as Error).message})`);
  }
  return { regex, include, source };
}

/**
 * One path segment's glob (`*`, `?`, `[...]`, `\x`) -> regex, like pathspec's segment translator.
 * Bracket contents are handed by pathspec to Python's `re` with every backslash doubled, so inside
 * a class each character is literal and only `-` ranges (and a leading `!`/`^`) mean something.
 */
function translateSegment(seg: string, line: string): string {
  const chars = [...seg];
  const end = chars.length;
  let out = '';
  let escape = false;
  let i = 0;
  while (i < end) {
    const ch = chars[i++]!;
    if (escape) {
      escape = false;
      out += escapeLiteral(ch);
    } else if (ch === '\\') {
      escape = true;
    } else if (ch === '*') {
      out += '[^/]*';
    } else if (ch === '?') {
      out += '[^/]';
    } else if (ch === '[') {
      let j = i;
      if (j < end && (chars[j] === '!' || chars[j] === '^')) j++;
      if (j < end && chars[j] === ']') j++;
      while (j < end && chars[j] !== ']') j++;
      if (j < end) {
        let negate = false;
        let k = i;
        if (chars[k] === '!' || chars[k] === '^') {
          negate = true;
          k++;
        }
        out += translateClass(chars.slice(k, j), negate, line);
        i = j + 1;
      } else {
        out += '\\[';
      }
    } else {
      out += escapeLiteral(ch);
    }
  }
  if (escape) throw new GitWildMatchError(`Invalid git pattern: ${JSON.stringify(line)} (escape character with nothing to escape)`);
  return out;
}

/**
 * Python `re` bracket-expression items (all literal, `-` makes ranges) -> a `u`-flag JS class.
 * Mirrors `sre_parse`: the first character may be `]`; `a-` before the closing bracket is two
 * literals; a reversed range is an error (which Airflow does not catch, so neither do we).
 */
function translateClass(items: string[], negate: boolean, line: string): string {
  let out = negate ? '[^' : '[';
  let i = 0;
  while (i < items.length) {
    const lo = items[i++]!;
    if (items[i] === '-' && i + 1 < items.length) {
      const hi = items[i + 1]!;
      i += 2;
      if (hi.codePointAt(0)! < lo.codePointAt(0)!) {
        throw new GitWildMatchError(`Invalid git pattern: ${JSON.stringify(line)} (bad character range ${lo}-${hi})`);
      }
      out += `${classLiteral(lo)}-${classLiteral(hi)}`;
    } else {
      out += classLiteral(lo);
    }
  }
  return `${out}]`;
}
