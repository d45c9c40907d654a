/**
 * Go's matching, as Docker's `.dockerignore` matcher runs it, in JavaScript: `filepath.Match`
 * (which Docker asks of every pattern when it reads the file) and Go regular expressions (into
 * which Docker turns each pattern), read with Go's grammar and written out as the JavaScript
 * expression that matches the same paths. One job: the two languages' differences; what Docker
 * does with the results is build-context.ts's.
 */

/** Go's `filepath.ErrBadPattern`, raised while a pattern is read by {@link goMatch}. */
class GoBadPattern extends Error {}

/**
 * One character of a class in Go's `filepath.Match` (its `getEsc`), possibly escaped; `chunk` is
 * the pattern's characters from `at`. Something must follow it (at least the closing `]`).
 */
function goClassChar(chunk: readonly string[], at: number): { char: number; next: number } {
  let i = at;
  if (i >= chunk.length || chunk[i] === '-' || chunk[i] === ']') throw new GoBadPattern('a character class ([...]) is malformed or not closed');
  if (chunk[i] === '\\' && ++i >= chunk.length) throw new GoBadPattern('a character class ([...]) ends in "\\"');
  const char = chunk[i]!.codePointAt(0)!;
  if (i + 1 >= chunk.length) throw new GoBadPattern('a character class ([...]) is not closed');
  return { char, next: i + 1 };
}

/**
 * Go's `matchChunk`: whether `chunk` (no `*` in it) matches the start of `name`, and what of
 * `name` is left. Once the match failed the chunk is still read to its end, so a malformed
 * chunk throws whatever the name.
 */
function goMatchChunk(chunk: readonly string[], name: readonly string[]): readonly string[] | undefined {
  let failed = false;
  let s = name;
  for (let i = 0; i < chunk.length; ) {
    if (!failed && s.length === 0) failed = true;
    const c = chunk[i]!;
    if (c === '[') {
      const r = failed ? undefined : s[0]!.codePointAt(0)!;
      if (!failed) s = s.slice(1);
      i++;
      const negated = chunk[i] === '^';
      if (negated) i++;
      let matched = false;
      for (let ranges = 0; ; ranges++) {
        if (chunk[i] === ']' && ranges > 0) {
          i++;
          break;
        }
        const lo = goClassChar(chunk, i);
        let hi = lo;
        if (chunk[lo.next] === '-') hi = goClassChar(chunk, lo.next + 1);
        i = hi.next;
        if (r !== undefined && lo.char <= r && r <= hi.char) matched = true;
      }
      if (matched === negated) failed = true;
      continue;
    }
    if (c === '?') {
      if (!failed) {
        if (s[0] === '/') failed = true;
        s = s.slice(1);
      }
      i++;
      continue;
    }
    if (c === '\\' && ++i >= chunk.length) throw new GoBadPattern('a trailing "\\" escapes nothing');
    if (!failed) {
      if (chunk[i] !== s[0]) failed = true;
      s = s.slice(1);
    }
    i++;
  }
  return failed ? undefined : s;
}

/** Go's `scanChunk`: the leading stars of `pattern`, the text up to the next `*` outside a class, and the rest. */
function goScanChunk(pattern: readonly string[]): { star: boolean; chunk: readonly string[]; rest: readonly string[] } {
  let start = 0;
  while (pattern[start] === '*') start++;
  let inClass = false;
  let i = start;
  for (; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      if (i + 1 < pattern.length) i++;
    } else if (c === '[') inClass = true;
    else if (c === ']') inClass = false;
    else if (c === '*' && !inClass) break;
  }
  return { star: start > 0, chunk: pattern.slice(start, i), rest: pattern.slice(i) };
}

/**
 * Go's `filepath.Match(pattern, name)` (Go 1.24, the Docker CLI's), which Docker's matcher calls
 * on each pattern with the name `.` for its error alone. Go reads only what the match needs: a
 * chunk (the text between stars) is read whole, but once one cannot match, the chunks after it
 * are never read, so `a*[b` passes the check and `a[b` does not.
 *
 * @throws GoBadPattern for what it reads malformed
 */
function goMatch(pattern: string, name: string): boolean {
  let rest: readonly string[] = Array.from(pattern);
  let s: readonly string[] = Array.from(name);
  next: while (rest.length > 0) {
    const scanned = goScanChunk(rest);
    rest = scanned.rest;
    if (scanned.star && scanned.chunk.length === 0) return !s.includes('/');
    const here = goMatchChunk(scanned.chunk, s);
    if (here && (here.length === 0 || rest.length > 0)) {
      s = here;
      continue;
    }
    if (scanned.star) {
      for (let i = 0; i < s.length && s[i] !== '/'; i++) {
        const later = goMatchChunk(scanned.chunk, s.slice(i + 1));
        if (!later || (rest.length === 0 && later.length > 0)) continue;
        s = later;
        continue next;
      }
    }
    return false;
  }
  return s.length === 0;
}

/** Why Docker's matcher refuses `pattern` as it reads it (`filepath.Match(pattern, ".")` fails), or undefined. */
export function goMatchDotError(pattern: string): string | undefined {
  try {
    goMatch(pattern, '.');
    return undefined;
  } catch (err) {
    if (err instanceof GoBadPattern) return err.message;
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Go regular expressions. Docker turns each pattern into one and runs it with Go's regexp
// package; the same expression means other things to JavaScript (`[[:upper:]]`, `\s`, `.`, what
// `?` takes of an emoji), so it is read with Go's grammar and written out as the JavaScript
// expression (with the `u` flag: whole characters) that matches the same paths.
// ---------------------------------------------------------------------------------------------

/** Where Go's regexp parser refuses an expression. */
export class GoRegexpError extends Error {}

/** Code point ranges, first and last included. */
type CodeRanges = ReadonlyArray<readonly [number, number]>;

const MAX_CODE_POINT = 0x10ffff;

/** The code points not in `ranges`. */
function complement(ranges: CodeRanges): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let next = 0;
  for (const [first, last] of [...ranges].sort((a, b) => a[0] - b[0])) {
    if (first > next) out.push([next, first - 1]);
    next = Math.max(next, last + 1);
  }
  if (next <= MAX_CODE_POINT) out.push([next, MAX_CODE_POINT]);
  return out;
}

/** One code point in a JavaScript `u` expression: letters and digits as they are, the rest escaped. */
function jsCodePoint(codePoint: number): string {
  const char = String.fromCodePoint(codePoint);
  return /^[A-Za-z0-9]$/.test(char) ? char : `\\u{${codePoint.toString(16)}}`;
}

/** Ranges as the inside of a JavaScript class. */
function jsRanges(ranges: CodeRanges): string {
  return ranges.map(([first, last]) => (first === last ? jsCodePoint(first) : `${jsCodePoint(first)}-${jsCodePoint(last)}`)).join('');
}

/** A named group of Go's (`\d`, `[:alpha:]`, ...) and its negation, as insides of a JavaScript class. */
interface ClassGroup {
  positive: string;
  negative: string;
}

function groupOf(ranges: CodeRanges): ClassGroup {
  return { positive: jsRanges(ranges), negative: jsRanges(complement(ranges)) };
}

/** Go's Perl classes, ASCII only: `\s` leaves out \v and Unicode spaces, which JavaScript's takes. */
const PERL_GROUPS = new Map<string, string>();
for (const [letter, ranges] of Object.entries<CodeRanges>({
  d: [[0x30, 0x39]],
  s: [
    [0x09, 0x0a],
    [0x0c, 0x0d],
    [0x20, 0x20],
  ],
  w: [
    [0x30, 0x39],
    [0x41, 0x5a],
    [0x5f, 0x5f],
    [0x61, 0x7a],
  ],
})) {
  const group = groupOf(ranges);
  PERL_GROUPS.set(letter, group.positive);
  PERL_GROUPS.set(letter.toUpperCase(), group.negative);
}

/** Go's POSIX classes (`[:alpha:]` inside a class), and their `[:^alpha:]` negations. */
const POSIX_GROUPS = new Map<string, string>();
for (const [name, ranges] of Object.entries<CodeRanges>({
  alnum: [
    [0x30, 0x39],
    [0x41, 0x5a],
    [0x61, 0x7a],
  ],
  alpha: [
    [0x41, 0x5a],
    [0x61, 0x7a],
  ],
  ascii: [[0x00, 0x7f]],
  blank: [
    [0x09, 0x09],
    [0x20, 0x20],
  ],
  cntrl: [
    [0x00, 0x1f],
    [0x7f, 0x7f],
  ],
  digit: [[0x30, 0x39]],
  graph: [[0x21, 0x7e]],
  lower: [[0x61, 0x7a]],
  print: [[0x20, 0x7e]],
  punct: [
    [0x21, 0x2f],
    [0x3a, 0x40],
    [0x5b, 0x60],
    [0x7b, 0x7e],
  ],
  space: [
    [0x09, 0x0d],
    [0x20, 0x20],
  ],
  upper: [[0x41, 0x5a]],
  word: [
    [0x30, 0x39],
    [0x41, 0x5a],
    [0x5f, 0x5f],
    [0x61, 0x7a],
  ],
  xdigit: [
    [0x30, 0x39],
    [0x41, 0x46],
    [0x61, 0x66],
  ],
})) {
  const group = groupOf(ranges);
  POSIX_GROUPS.set(`[:${name}:]`, group.positive);
  POSIX_GROUPS.set(`[:^${name}:]`, group.negative);
}

/**
 * The Unicode classes Go names with one letter after `\p` (general categories). Go's C holds no
 * unassigned code point; JavaScript's does.
 */
const UNICODE_GROUPS = new Map<string, ClassGroup>([
  ['C', { positive: '\\p{Cc}\\p{Cf}\\p{Co}\\p{Cs}', negative: '\\P{C}\\p{Cn}' }],
  ...['L', 'M', 'N', 'P', 'S', 'Z'].map((letter): [string, ClassGroup] => [letter, { positive: `\\p{${letter}}`, negative: `\\P{${letter}}` }]),
]);

/** Assertions written after a `\`; wrapped in a group, as Go lets a repetition follow them and JavaScript only a group. */
const ESCAPED_ASSERTIONS = new Map([
  ['A', '(?:^)'],
  ['z', '(?:$)'],
  ['b', '(?:\\b)'],
  ['B', '(?:\\B)'],
]);

const CONTROL_ESCAPES = new Map([
  ['a', 0x07],
  ['f', 0x0c],
  ['n', 0x0a],
  ['r', 0x0d],
  ['t', 0x09],
  ['v', 0x0b],
]);

/** The letters after `\` that name a class (`\pL`, `\d`, ...). */
const GROUP_LETTERS = new Set(['p', 'P', ...PERL_GROUPS.keys()]);

/** A Go expression read a code point at a time. */
class GoRegexpReader {
  private readonly chars: string[];
  private at = 0;

  constructor(source: string) {
    this.chars = Array.from(source);
  }

  get done(): boolean {
    return this.at >= this.chars.length;
  }

  peek(ahead = 0): string | undefined {
    return this.chars[this.at + ahead];
  }

  next(): string | undefined {
    return this.chars[this.at++];
  }

  rest(): string {
    return this.chars.slice(this.at).join('');
  }

  skip(text: string): void {
    this.at += Array.from(text).length;
  }
}

const isOctalDigit = (char: string | undefined) => char !== undefined && /^[0-7]$/.test(char);

/** Up to three octal digits in all, the first already read. */
function octalEscape(reader: GoRegexpReader, first: number): number {
  let value = first;
  for (let digits = 1; digits < 3 && isOctalDigit(reader.peek()); digits++) value = value * 8 + Number(reader.next());
  return value;
}

/** `\xHH`. (The braced form needs a raw `{`, which Docker's translation of a pattern always escapes.) */
function hexEscape(reader: GoRegexpReader): number {
  const digits = `${reader.next() ?? ''}${reader.next() ?? ''}`;
  if (!/^[0-9A-Fa-f]{2}$/.test(digits)) throw new GoRegexpError(`invalid escape sequence \\x${digits}`);
  return parseInt(digits, 16);
}

/** The character an escape stands for, the `\` already read: punctuation as itself, octal, hex and C escapes. */
function escapedCodePoint(reader: GoRegexpReader): number {
  const char = reader.next();
  if (char === undefined) throw new GoRegexpError('trailing backslash at end of expression');
  const codePoint = char.codePointAt(0)!;
  if (codePoint < 0x80 && !/^[A-Za-z0-9]$/.test(char)) return codePoint;
  // A lone digit would be a backreference, which Go does not have.
  if (/^[1-7]$/.test(char) && isOctalDigit(reader.peek())) return octalEscape(reader, codePoint - 0x30);
  if (char === '0') return octalEscape(reader, 0);
  if (char === 'x') return hexEscape(reader);
  const control = CONTROL_ESCAPES.get(char);
  if (control === undefined) throw new GoRegexpError(`invalid escape sequence \\${char}`);
  return control;
}

/** `\pL` or `\PL`, the `\p` already read. */
function unicodeGroup(reader: GoRegexpReader, negated: boolean): string {
  const name = reader.next() ?? '';
  const group = UNICODE_GROUPS.get(name);
  if (!group) throw new GoRegexpError(`invalid character class range \\${negated ? 'P' : 'p'}${name}`);
  return negated ? group.negative : group.positive;
}

/** The class a `\` starts (`\d`, `\pL`, ...) as the inside of a JavaScript class, the `\` already read. */
function escapedGroup(reader: GoRegexpReader): string {
  const letter = reader.next()!;
  if (letter === 'p' || letter === 'P') return unicodeGroup(reader, letter === 'P');
  return PERL_GROUPS.get(letter)!;
}

/** `[:alpha:]` at the reader inside a class, or undefined when no `:]` follows (then `[` is a plain character). */
function posixGroup(reader: GoRegexpReader): string | undefined {
  if (reader.peek() !== '[' || reader.peek(1) !== ':' || reader.peek(2) === undefined) return undefined;
  const rest = reader.rest();
  const end = rest.indexOf(':]', 2);
  if (end < 0) return undefined;
  const name = rest.slice(0, end + 2);
  const group = POSIX_GROUPS.get(name);
  if (group === undefined) throw new GoRegexpError(`invalid character class range ${name}`);
  reader.skip(name);
  return group;
}

/** One character of a class, escaped or not. */
function classCodePoint(reader: GoRegexpReader): number {
  const char = reader.next();
  if (char === undefined) throw new GoRegexpError('missing closing ]');
  return char === '\\' ? escapedCodePoint(reader) : char.codePointAt(0)!;
}

/** One item of a class: a named group, a character or a range. `-` is a plain character where it starts no range. */
function classItem(reader: GoRegexpReader): string {
  const posix = posixGroup(reader);
  if (posix !== undefined) return posix;
  if (reader.peek() === '\\' && GROUP_LETTERS.has(reader.peek(1) ?? '')) {
    reader.next();
    return escapedGroup(reader);
  }
  const first = classCodePoint(reader);
  const after = reader.peek(1);
  if (reader.peek() !== '-' || after === undefined || after === ']') return jsCodePoint(first);
  reader.next();
  const last = classCodePoint(reader);
  if (last < first) throw new GoRegexpError('invalid character class range');
  return `${jsCodePoint(first)}-${jsCodePoint(last)}`;
}

/** A class, the `[` already read. A `]` right after `[` or `[^` is a plain character. */
function translateClass(reader: GoRegexpReader): string {
  const negated = reader.peek() === '^';
  if (negated) reader.next();
  let inside = '';
  for (let first = true; first || reader.peek() !== ']'; first = false) {
    if (reader.done) throw new GoRegexpError('missing closing ]');
    inside += classItem(reader);
  }
  reader.next();
  return `[${negated ? '^' : ''}${inside}]`;
}

/** `\Q...\E`, the `\Q` already read: everything up to `\E` (or the end) is plain text. */
function quotedText(reader: GoRegexpReader): string {
  const rest = reader.rest();
  const end = rest.indexOf('\\E');
  const text = end < 0 ? rest : rest.slice(0, end);
  reader.skip(end < 0 ? rest : `${text}\\E`);
  return Array.from(text, (char) => jsCodePoint(char.codePointAt(0)!)).join('');
}

/** What follows a `\` outside a class. */
function translateEscape(reader: GoRegexpReader): string {
  const letter = reader.peek() ?? '';
  const assertion = ESCAPED_ASSERTIONS.get(letter);
  if (assertion !== undefined) {
    reader.next();
    return assertion;
  }
  if (letter === 'C') throw new GoRegexpError('invalid escape sequence \\C');
  if (letter === 'Q') {
    reader.next();
    return quotedText(reader);
  }
  if (GROUP_LETTERS.has(letter)) return `[${escapedGroup(reader)}]`;
  return jsCodePoint(escapedCodePoint(reader));
}

/** One element outside a class. */
function translateElement(reader: GoRegexpReader): string {
  const char = reader.next()!;
  switch (char) {
    case '^':
      return '(?:^)';
    case '$':
      return '(?:$)';
    // Go's `.` leaves out \n only; JavaScript's also \r, U+2028 and U+2029.
    case '.':
      return '[^\\n]';
    case '(':
      return '(?:';
    // Same meaning in both, and JavaScript refuses the repetitions Go refuses (nothing before
    // them, or one right after another but for the lazy `*?`).
    case ')':
    case '*':
    case '?':
      return char;
    case '[':
      return translateClass(reader);
    case '\\':
      return translateEscape(reader);
    default:
      return jsCodePoint(char.codePointAt(0)!);
  }
}

/**
 * The JavaScript expression matching what the Go expression `source` matches (Go's Perl flags,
 * as Docker compiles its patterns): for what Docker's translation of a pattern can produce, where
 * `+|{}` are always escaped.
 *
 * @throws GoRegexpError where Go refuses the expression
 */
export function compileGoRegexp(source: string): RegExp {
  const reader = new GoRegexpReader(source);
  let js = '';
  while (!reader.done) js += translateElement(reader);
  try {
    return new RegExp(js, 'u');
  } catch (err) {
    throw new GoRegexpError((err as Error).message);
  }
}
