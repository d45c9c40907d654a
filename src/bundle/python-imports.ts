/**
 * Static detection of `import` statements in Python source, without running Python.
 *
 * Good enough to find the modules a DAG file imports: strings (including triple-quoted docstrings)
 * and comments are blanked out first so that `import` inside them does not count, bracketed and
 * backslash-continued lines are joined into logical lines, and simple statements are split on `;`
 * and on the `:` of one-line compound statements (`try: import x`). Imports anywhere count, also
 * inside functions and `if TYPE_CHECKING:` blocks: missing a real import breaks a DAG, shipping an
 * extra module does not. Dynamic imports (`importlib.import_module(name)`, `__import__`) are not
 * detected.
 */

/** One imported module reference. */
export interface PythonImport {
  /** Dotted module path after the leading dots (`''` for `from . import x`). */
  module: string;
  /** Number of leading dots (0 for absolute imports). */
  level: number;
  /** Names after `from ... import` (empty for `import x` and for `import *`). */
  names: string[];
  /** 1-based line where the statement starts. */
  line: number;
}

interface LogicalLine {
  text: string;
  line: number;
}

const IDENT = /^[\p{L}\p{Nl}_][\p{L}\p{Nl}\p{Mn}\p{Mc}\p{Nd}\p{Pc}]*$/u;
const DOTTED = /^[\p{L}\p{Nl}_][\p{L}\p{Nl}\p{Mn}\p{Mc}\p{Nd}\p{Pc}]*(?:\s*\.\s*[\p{L}\p{Nl}_][\p{L}\p{Nl}\p{Mn}\p{Mc}\p{Nd}\p{Pc}]*)*$/u;

/** Characters the logical-line scanner acts on; runs of anything else are copied whole. */
const SPECIAL = /[#"'\\\r\n()[\]{}]/g;
/** Where a comment ends. */
const LINE_END = /[\r\n]/g;
/** Characters a string scan stops at, by opening quote character. */
const STRING_STOPS: Record<string, RegExp> = { '"': /[\\\n"]/g, "'": /[\\\n']/g };

/** Index of the next match of `re` (global) in `src` at or after `from`, or -1. */
function nextMatch(re: RegExp, src: string, from: number): number {
  re.lastIndex = from;
  const m = re.exec(src);
  return m ? m.index : -1;
}

/**
 * Join physical lines into logical lines with strings blanked and comments removed. Runs of
 * ordinary characters are found with one regular-expression search and copied as one slice, and
 * whether the line is still blank is tracked rather than recomputed: the guard runs this over
 * every shipped Python file, and a line built one character at a time (trimmed after each) grew
 * superlinearly with its length: a generated module of 1.5 MB in one bracketed literal took
 * minutes.
 */
function logicalLines(src: string): LogicalLine[] {
  const out: LogicalLine[] = [];
  let buf = '';
  /** `buf.trim() === ''`, kept up to date instead of recomputed. */
  let blank = true;
  let depth = 0;
  let line = 1;
  let start = 1;
  let i = 0;
  const n = src.length;
  const flush = () => {
    if (!blank) out.push({ text: buf, line: start });
    buf = '';
    blank = true;
  };
  /** Append code text; a logical line starts on the line of its first code character. */
  const code = (text: string) => {
    if (blank) {
      start = line;
      if (text.trim() !== '') blank = false;
    }
    buf += text;
  };
  while (i < n) {
    const at = nextMatch(SPECIAL, src, i);
    const to = at === -1 ? n : at;
    if (to > i) code(src.slice(i, to));
    if (at === -1) break;
    i = at;
    const ch = src[i]!;
    if (ch === '#') {
      const end = nextMatch(LINE_END, src, i);
      i = end === -1 ? n : end;
      continue;
    }
    if (ch === '"' || ch === "'") {
      const triple = src.startsWith(ch.repeat(3), i);
      const quote = triple ? ch.repeat(3) : ch;
      const stops = STRING_STOPS[ch]!;
      i += quote.length;
      while (i < n) {
        const k = nextMatch(stops, src, i);
        if (k === -1) {
          i = n;
          break;
        }
        const c = src[k]!;
        if (c === '\\') {
          if (src[k + 1] === '\n') line++;
          i = k + 2;
          continue;
        }
        if (c === '\n') {
          if (!triple) {
            i = k; // unterminated single-quoted string: stop at the end of the line
            break;
          }
          line++;
          i = k + 1;
          continue;
        }
        if (src.startsWith(quote, k)) {
          i = k + quote.length;
          break;
        }
        i = k + 1;
      }
      buf += '""';
      blank = false;
      continue;
    }
    if (ch === '\\' && (src[i + 1] === '\n' || src[i + 1] === '\r')) {
      i += src[i + 1] === '\r' && src[i + 2] === '\n' ? 3 : 2;
      line++;
      buf += ' ';
      continue;
    }
    if (ch === '\r' || ch === '\n') {
      i += ch === '\r' && src[i + 1] === '\n' ? 2 : 1;
      line++;
      if (depth > 0) {
        buf += ' ';
      } else {
        flush();
        start = line;
      }
      continue;
    }
    if (ch === '(' || ch === '[' || ch === '{') depth++;
    else if ((ch === ')' || ch === ']' || ch === '}') && depth > 0) depth--;
    code(ch);
    i++;
  }
  flush();
  return out;
}

/** Split a logical line into simple statements on depth-0 `;` and `:` (not `:=`). */
function statements(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '(' || ch === '[' || ch === '{') depth++;
    else if ((ch === ')' || ch === ']' || ch === '}') && depth > 0) depth--;
    else if (depth === 0 && (ch === ';' || (ch === ':' && text[i + 1] !== '='))) {
      parts.push(text.slice(from, i));
      from = i + 1;
    }
  }
  parts.push(text.slice(from));
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

function dotted(s: string): string | undefined {
  const t = s.trim();
  return DOTTED.test(t) ? t.replace(/\s+/g, '') : undefined;
}

/** Extract every `import` / `from ... import` statement of a Python source text. */
export function extractImports(source: string): PythonImport[] {
  const found: PythonImport[] = [];
  for (const { text, line } of logicalLines(source)) {
    // Both statement forms contain the word: most logical lines need no further look.
    if (!text.includes('import')) continue;
    for (const stmt of statements(text)) {
      let m = /^import\s+(.+)$/su.exec(stmt);
      if (m) {
        for (const part of m[1]!.split(',')) {
          const mod = dotted(part.replace(/\s+as\s+\S+\s*$/u, ''));
          if (mod) found.push({ module: mod, level: 0, names: [], line });
        }
        continue;
      }
      m = /^from(?=[\s.])\s*((?:\.\s*)*)(.*?)\s*\bimport\b(.*)$/su.exec(stmt);
      if (m) {
        const level = m[1]!.replace(/\s+/g, '').length;
        const modText = m[2]!.trim();
        const mod = modText === '' ? '' : dotted(modText);
        if (mod === undefined || (level === 0 && mod === '')) continue;
        const namesText = m[3]!.trim().replace(/^\(/, '').replace(/\)$/, '');
        const names: string[] = [];
        for (const part of namesText.split(',')) {
          const name = part.replace(/\s+as\s+\S+\s*$/u, '').trim();
          if (IDENT.test(name)) names.push(name);
        }
        found.push({ module: mod, level, names, line });
      }
    }
  }
  return found;
}
