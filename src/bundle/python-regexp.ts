/**
 * Python `re` pattern -> JS RegExp, for `.airflowignore` files in `regexp` syntax.
 *
 * Airflow compiles each line with Python's `re.compile` and applies it with `search`. Python and
 * JS regexps differ in syntax (`(?P<name>...)`, `(?P=name)`, `\Z`, leading `(?i)`, `{,n}`, a lone
 * `{`/`]`/`}` as a literal, octal escapes) and in meaning (`\w`, `\d`, `\s`, `\b` are Unicode-aware
 * in Python; `$` also matches before a final newline; `.` excludes only `\n`). So rather than
 * patching strings, this is a small parser of Python's syntax that re-emits an equivalent pattern
 * for a `u`-flag JS RegExp, and that rejects what Python rejects (Airflow skips those lines; so do
 * we, with a warning naming file and line), including the errors JS would not raise itself
 * (variable-width look-behind, reversed ranges, unknown escapes, misplaced global flags).
 *
 * A few valid Python constructs have no JS equivalent (scoped case-insensitivity `(?i:...)` when
 * it differs from the global flag, atomic groups, possessive quantifiers, conditionals,
 * `\N{...}`): those lines are reported as unsupported and skipped, which only ever ships MORE
 * files than Airflow would parse, never fewer (the `.airflowignore` itself is shipped, and Airflow
 * applies it at parse time).
 */
import {
  ASCII_WORD,
  category,
  DIGITS,
  type Flags,
  literal,
  OCT,
  PatternCursor,
  type Piece,
  PyReError,
  UNI_WORD,
} from './python-regexp-chars.js';

/** Result of translating one Python pattern. */
export type PythonRegexResult =
  | { ok: true; regex: RegExp; source: string; flags: string }
  | {
      ok: false;
      /** `invalid`: Python's `re` rejects it too. `unsupported`: valid Python, no JS equivalent. */
      kind: 'invalid' | 'unsupported';
      message: string;
    };

const INF = Number.POSITIVE_INFINITY;
const MAXREPEAT = 4294967295;
const VERBOSE_WS = new Set([' ', '\t', '\n', '\r', '\v', '\f']);

class Parser extends PatternCursor {
  /** Python's `state.groups`: number of groups opened so far plus one. */
  private groups = 1;
  private readonly openGroups = new Set<number>();
  private readonly groupWidths = new Map<number, [number, number]>();
  private readonly names = new Map<string, number>();
  private lookbehindFrom: number | null = null;
  readonly global: Flags = { i: false, m: false, s: false, x: false, a: false };

  parse(): string {
    const body = this.parseSub(this.global, 0);
    if (this.pos < this.s.length) {
      // Only a stray ")" can stop the top level early.
      throw new PyReError('invalid', `unbalanced parenthesis at position ${this.pos}`);
    }
    return body.src;
  }

  private parseSub(flags: Flags, nested: number): Piece {
    const branches: Piece[] = [];
    let first = true;
    for (;;) {
      branches.push(this.parseSeq(flags, nested, nested === 0 && first));
      first = false;
      if (!this.match('|')) break;
    }
    if (branches.length === 1) return branches[0]!;
    return {
      src: branches.map((b) => b.src).join('|'),
      lo: Math.min(...branches.map((b) => b.lo)),
      hi: Math.max(...branches.map((b) => b.hi)),
      kind: 'atom',
    };
  }

  private parseSeq(flags: Flags, nested: number, first: boolean): Piece {
    const items: Piece[] = [];
    for (;;) {
      const ch = this.peek();
      if (ch === undefined || ch === '|') break;
      if (ch === ')') {
        if (nested === 0) this.error('unbalanced parenthesis');
        break;
      }
      this.pos++;
      if (flags.x && VERBOSE_WS.has(ch)) continue;
      if (ch === '\\') {
        items.push(this.parseEscape(flags));
      } else if (ch === '[') {
        items.push(this.parseClass(flags));
      } else if (ch === '.') {
        items.push({ src: flags.s ? '[\\s\\S]' : '[^\\n]', lo: 1, hi: 1, kind: 'atom' });
      } else if (ch === '^') {
        items.push({ src: flags.m ? '(?:^|(?<=\\n))' : '^', lo: 0, hi: 0, kind: 'anchor' });
      } else if (ch === '$') {
        // Python: end of string, or just before a final "\n" (or any "\n" in MULTILINE mode).
        items.push({ src: flags.m ? '(?=\\n|$)' : '(?=\\n?$)', lo: 0, hi: 0, kind: 'anchor' });
      } else if (ch === '*' || ch === '+' || ch === '?' || ch === '{') {
        const rep = this.parseRepeat(ch);
        if (rep === null) {
          items.push({ src: '\\{', lo: 1, hi: 1, kind: 'atom' });
          continue;
        }
        const prev = items[items.length - 1];
        if (!prev || prev.kind === 'anchor') this.error('nothing to repeat');
        if (prev.kind === 'repeat') this.error('multiple repeat');
        let lazy = '';
        if (this.match('?')) lazy = '?';
        else if (this.peek() === '+') this.unsupported('possessive quantifiers have no JS equivalent');
        const [min, max] = rep;
        const q =
          min === 0 && max === INF ? '*' : min === 1 && max === INF ? '+' : min === 0 && max === 1 ? '?' : max === INF ? `{${min},}` : min === max ? `{${min}}` : `{${min},${max}}`;
        items[items.length - 1] = {
          src: `(?:${prev.src})${q}${lazy}`,
          lo: prev.lo * min,
          hi: max === 0 ? 0 : prev.hi === 0 ? 0 : prev.hi * max,
          kind: 'repeat',
        };
      } else if (ch === '(') {
        const g = this.parseGroup(flags, nested, first && items.length === 0);
        if (g !== null) items.push(g);
      } else {
        items.push({ src: literal(ch), lo: 1, hi: 1, kind: 'atom' });
      }
    }
    return {
      src: items.map((p) => p.src).join(''),
      lo: items.reduce((n, p) => n + p.lo, 0),
      hi: items.reduce((n, p) => n + p.hi, 0),
      kind: 'atom',
    };
  }

  /** `*`, `+`, `?` or `{m,n}` (already consumed its first char). Null: the `{` is a literal. */
  private parseRepeat(ch: string): [number, number] | null {
    if (ch === '*') return [0, INF];
    if (ch === '+') return [1, INF];
    if (ch === '?') return [0, 1];
    const here = this.pos;
    if (this.peek() === '}') return null;
    let lo = '';
    let hi = '';
    while (this.peek() !== undefined && DIGITS.includes(this.peek()!)) lo += this.get();
    if (this.match(',')) {
      while (this.peek() !== undefined && DIGITS.includes(this.peek()!)) hi += this.get();
    } else {
      hi = lo;
    }
    if (!this.match('}')) {
      this.pos = here;
      return null;
    }
    const min = lo ? Number(lo) : 0;
    const max = hi ? Number(hi) : INF;
    if (min >= MAXREPEAT || (max !== INF && max >= MAXREPEAT)) this.error('the repetition number is too large');
    if (max < min) this.error('min repeat greater than max repeat');
    return [min, max];
  }

  private parseGroup(flags: Flags, nested: number, atStart: boolean): Piece | null {
    let capture = true;
    let name: string | undefined;
    let look: '=' | '!' | '<=' | '<!' | undefined;
    let inner = flags;
    if (this.match('?')) {
      const c = this.get();
      if (c === undefined) this.error('unexpected end of pattern');
      if (c === 'P') {
        if (this.match('<')) {
          name = this.readName('>');
        } else if (this.match('=')) {
          const ref = this.readName(')');
          const group = this.names.get(ref);
          if (group === undefined) this.error(`unknown group name '${ref}'`);
          return this.groupRef(group);
        } else {
          this.error('unknown extension ?P');
        }
      } else if (c === ':') {
        capture = false;
      } else if (c === '=' || c === '!') {
        look = c;
        capture = false;
      } else if (c === '<') {
        const d = this.get();
        if (d === '=' || d === '!') {
          look = d === '=' ? '<=' : '<!';
          capture = false;
        } else {
          this.error('unknown extension ?<');
        }
      } else if (c === '#') {
        // "(?#...)": Airflow deletes "#" and the rest of the line, so this is always unterminated.
        while (this.peek() !== undefined && this.peek() !== ')') this.pos++;
        if (!this.match(')')) this.error('missing ), unterminated comment');
        return null;
      } else if (c === '(') {
        let ref = '';
        while (this.peek() !== undefined && this.peek() !== ')') ref += this.get();
        if (!this.match(')')) this.error('missing ), unterminated name');
        const known = /^\d+$/.test(ref) ? Number(ref) >= 1 && Number(ref) < this.groups : this.names.has(ref);
        if (!known) this.error(`invalid group reference ${ref}`);
        this.unsupported('conditional groups have no JS equivalent');
      } else if (c === '>') {
        this.unsupported('atomic groups have no JS equivalent');
      } else if ('aiLmsux-'.includes(c)) {
        const parsed = this.parseFlags(c, flags);
        if (parsed === 'global') {
          if (!atStart) this.error('global flags not at the start of the expression');
          return null;
        }
        inner = parsed;
        capture = false;
      } else {
        this.error(`unknown extension ?${c}`);
      }
    }
    let group = 0;
    if (capture) {
      group = this.groups++;
      this.openGroups.add(group);
      if (name !== undefined) {
        if (this.names.has(name)) this.error(`redefinition of group name '${name}'`);
        this.names.set(name, group);
      }
    }
    const savedLookbehind = this.lookbehindFrom;
    if (look === '<=' || look === '<!') {
      if (this.lookbehindFrom === null) this.lookbehindFrom = this.groups;
    }
    const body = this.parseSub(inner, nested + 1);
    if (!this.match(')')) this.error('missing ), unterminated subpattern');
    this.lookbehindFrom = savedLookbehind;
    if (capture) {
      this.openGroups.delete(group);
      this.groupWidths.set(group, [body.lo, body.hi]);
      const open = name !== undefined ? `(?<${name}>` : '(';
      return { src: `${open}${body.src})`, lo: body.lo, hi: body.hi, kind: 'atom' };
    }
    if (look !== undefined) {
      if ((look === '<=' || look === '<!') && body.lo !== body.hi) this.error('look-behind requires fixed-width pattern');
      // Wrapped so that a quantifier after it stays valid in JS `u` mode (Python allows it).
      return { src: `(?:(?${look}${body.src}))`, lo: 0, hi: 0, kind: 'atom' };
    }
    return { src: `(?:${body.src})`, lo: body.lo, hi: body.hi, kind: 'atom' };
  }

  private groupRef(group: number): Piece {
    if (this.openGroups.has(group)) this.error('cannot refer to an open group');
    if (this.lookbehindFrom !== null && group >= this.lookbehindFrom) {
      this.error('cannot refer to group defined in the same lookbehind subpattern');
    }
    const [lo, hi] = this.groupWidths.get(group) ?? [0, 0];
    // "(?:\1)" so that a following digit is not read as part of the group number.
    return { src: `(?:\\${group})`, lo, hi, kind: 'atom' };
  }

  private readName(terminator: string): string {
    let name = '';
    for (;;) {
      const c = this.get();
      if (c === undefined) this.error('missing group name terminator');
      if (c === terminator) break;
      name += c;
    }
    if (!/^[\p{L}\p{Nl}_][\p{L}\p{Nl}\p{Mn}\p{Mc}\p{Nd}\p{Pc}]*$/u.test(name)) this.error(`bad character in group name '${name}'`);
    return name;
  }

  /** After "(?" and the first flag char: global "(?ims)" or scoped "(?i-s:". */
  private parseFlags(firstChar: string, flags: Flags): Flags | 'global' {
    const add = new Set<string>();
    const del = new Set<string>();
    let c: string | undefined = firstChar;
    while (c !== undefined && 'aiLmsux'.includes(c)) {
      add.add(c);
      c = this.get();
    }
    if (add.has('L')) this.error('bad inline flags: cannot use \'L\' flag with a str pattern');
    if (add.has('a') && add.has('u')) this.error('bad inline flags: flags \'a\', \'u\' and \'L\' are incompatible');
    if (c === ')') {
      if (add.has('a')) this.global.a = true;
      if (add.has('i')) this.global.i = true;
      if (add.has('m')) this.global.m = true;
      if (add.has('s')) this.global.s = true;
      if (add.has('x')) this.global.x = true;
      return 'global';
    }
    if (c === '-') {
      c = this.get();
      if (c === undefined) this.error('missing flag');
      if (!'imsx'.includes(c)) this.error('bad inline flags: cannot turn off flags \'a\', \'u\' and \'L\'');
      while (c !== undefined && 'imsx'.includes(c)) {
        del.add(c);
        c = this.get();
      }
      if (c !== ':') this.error('missing :');
    } else if (c !== ':') {
      this.error('missing -, : or )');
    }
    for (const f of add) if (del.has(f)) this.error('bad inline flags: flag turned on and off');
    const inner: Flags = { ...flags };
    for (const f of add) if (f in inner) (inner as unknown as Record<string, boolean>)[f] = true;
    if (add.has('u')) inner.a = false;
    for (const f of del) (inner as unknown as Record<string, boolean>)[f] = false;
    // Everything but case-insensitivity is translated by hand; "i" needs the JS flag.
    if (inner.i !== this.global.i) this.unsupported('scoped case-insensitivity (?i:...) differs from the whole pattern');
    return inner;
  }

  private parseEscape(flags: Flags): Piece {
    const c = this.get();
    if (c === undefined) this.error('bad escape (end of pattern)');
    const cat = category(c, flags.a);
    if (cat) return { src: cat.negated ? `[^${cat.items}]` : `[${cat.items}]`, lo: 1, hi: 1, kind: 'atom' };
    const word = `[${flags.a ? ASCII_WORD : UNI_WORD}]`;
    switch (c) {
      case 'A':
        return { src: '^', lo: 0, hi: 0, kind: 'anchor' };
      case 'Z':
        return { src: '$', lo: 0, hi: 0, kind: 'anchor' };
      case 'b':
        return { src: `(?:(?<=${word})(?!${word})|(?<!${word})(?=${word}))`, lo: 0, hi: 0, kind: 'anchor' };
      case 'B':
        return { src: `(?:(?<=${word})(?=${word})|(?<!${word})(?!${word}))`, lo: 0, hi: 0, kind: 'anchor' };
    }
    if (c === '0') {
      let digits = '';
      while (digits.length < 2 && this.peek() !== undefined && OCT.includes(this.peek()!)) digits += this.get();
      return this.lit(String.fromCodePoint(parseInt(`0${digits}`, 8)));
    }
    if (DIGITS.includes(c)) {
      let esc = c;
      if (this.peek() !== undefined && DIGITS.includes(this.peek()!)) {
        esc += this.get();
        if (OCT.includes(esc[0]!) && OCT.includes(esc[1]!) && this.peek() !== undefined && OCT.includes(this.peek()!)) {
          esc += this.get();
          const code = parseInt(esc, 8);
          if (code > 0o377) this.error(`octal escape value \\${esc} outside of range 0-0o377`);
          return this.lit(String.fromCodePoint(code));
        }
      }
      const group = Number(esc);
      if (group < this.groups) return this.groupRef(group);
      this.error(`invalid group reference ${group}`);
    }
    const simple = this.simpleEscape(c);
    return this.lit(simple);
  }
}

/**
 * Translate a Python `re` pattern (as Airflow compiles an `.airflowignore` line) to a JS RegExp
 * whose `test()` behaves like Python's `re.search()` on the same string.
 */
export function translatePythonRegex(pattern: string): PythonRegexResult {
  const parser = new Parser(pattern);
  let source: string;
  try {
    source = parser.parse();
  } catch (err) {
    if (err instanceof PyReError) return { ok: false, kind: err.kind, message: err.message };
    throw err;
  }
  const flags = parser.global.i ? 'iu' : 'u';
  try {
    return { ok: true, regex: new RegExp(source, flags), source, flags };
  } catch (err) {
    return { ok: false, kind: 'unsupported', message: `no JS equivalent (${(err as Error).message})` };
  }
}
