/**
 * Small pieces of Python's text semantics that `.airflowignore` handling depends on. Airflow reads
 * the file with Python, so "whitespace" and "line" must mean what they mean to Python, not to JS
 * (JS `\s` misses U+001C..U+001F and U+0085, and adds U+FEFF).
 */

/** The characters for which Python's `str.isspace()` is true. */
export const PY_WHITESPACE =
  '\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000';

const WS = new Set(PY_WHITESPACE);

/** True when `ch` is whitespace to Python. */
export function isPyWhitespace(ch: string): boolean {
  return WS.has(ch);
}

/** Python `s.lstrip()`. */
export function pyLstrip(s: string): string {
  let i = 0;
  while (i < s.length && WS.has(s[i]!)) i++;
  return s.slice(i);
}

/** Python `s.rstrip()`. */
export function pyRstrip(s: string): string {
  let j = s.length;
  while (j > 0 && WS.has(s[j - 1]!)) j--;
  return s.slice(0, j);
}

/** Python `s.strip()`. */
export function pyStrip(s: string): string {
  return pyRstrip(pyLstrip(s));
}

/** A JS character class (for a `u`-flag RegExp) equal to Python's `\s` on `str` patterns. */
export const PY_WHITESPACE_CLASS = `[${[...PY_WHITESPACE].map((c) => `\\u{${c.codePointAt(0)!.toString(16)}}`).join('')}]`;

// Airflow deletes every "optional whitespace run, then '#', then the rest of the line".
// `[^\n]` rather than `.`: JS `.` also stops at U+2028/U+2029, Python's only at "\n".
const COMMENT = new RegExp(`${PY_WHITESPACE_CLASS}*#[^\\n]*`, 'gu');

/** One pattern line of an ignore file, after Airflow's comment stripping. */
export interface IgnoreLine {
  /** 1-based line number in the file. */
  line: number;
  /** The line with comments removed; never empty. */
  text: string;
}

/**
 * Split ignore-file text the way Airflow does: Python universal newlines (`\r\n`, `\r` and `\n`
 * all end a line), then `re.sub(r"\s*#.*", "", line)` on every line, then drop lines that became
 * empty. Nothing else is trimmed: whitespace-only lines survive (they are patterns).
 */
export function splitIgnoreLines(text: string): IgnoreLine[] {
  const out: IgnoreLine[] = [];
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const stripped = lines[i]!.replace(COMMENT, '');
    if (stripped !== '') out.push({ line: i + 1, text: stripped });
  }
  return out;
}
