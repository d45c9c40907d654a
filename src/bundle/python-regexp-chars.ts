/**
 * The character level of the Python `re` translator (python-regexp.ts): a cursor over the
 * pattern's code points, its escapes, and character sets `[...]` re-emitted as items of a `u`-flag
 * JS class. The structure (alternation, groups, repeats, back-references) is the parser's.
 */
import { PY_WHITESPACE_CLASS } from './python-text.js';

/** A pattern Python's `re` rejects (`invalid`), or one with no JS equivalent (`unsupported`). */
export class PyReError extends Error {
  constructor(
    readonly kind: 'invalid' | 'unsupported',
    message: string,
  ) {
    super(message);
  }
}

/** The inline flags in force, as `(?imsxa)` sets them. */
export interface Flags {
  i: boolean;
  m: boolean;
  s: boolean;
  x: boolean;
  a: boolean;
}

/** A translated piece with its width bounds (look-behind needs a fixed width). */
export interface Piece {
  src: string;
  lo: number;
  hi: number;
  /** `anchor` and `repeat` pieces cannot be quantified (Python: "nothing to repeat" / "multiple repeat"). */
  kind: 'atom' | 'anchor' | 'repeat';
}

export const DIGITS = '0123456789';
export const OCT = '01234567';
const HEX = /^[0-9a-fA-F]$/;
const ASCII_LETTER = /^[A-Za-z]$/;
const SYNTAX = new Set('^$\\.*+?()[]{}|/'.split(''));

export const UNI_WORD = '\\p{L}\\p{N}_';
export const ASCII_WORD = 'A-Za-z0-9_';
const PY_WS_ITEMS = PY_WHITESPACE_CLASS.slice(1, -1);
const ASCII_WS_ITEMS = ' \\t\\n\\r\\f\\v';

/** A Python character category as JS class items; `negated` ones cannot be class items in JS. */
export interface Category {
  items: string;
  negated: boolean;
}

/** The class items of `\d \D \w \W \s \S`, Unicode-aware unless the `a` flag is set; else undefined. */
export function category(letter: string, ascii: boolean): Category | undefined {
  switch (letter) {
    case 'd':
      return { items: ascii ? '0-9' : '\\p{Nd}', negated: false };
    case 'D':
      return ascii ? { items: '0-9', negated: true } : { items: '\\P{Nd}', negated: false };
    case 'w':
      return { items: ascii ? ASCII_WORD : UNI_WORD, negated: false };
    case 'W':
      return { items: ascii ? ASCII_WORD : UNI_WORD, negated: true };
    case 's':
      return { items: ascii ? ASCII_WS_ITEMS : PY_WS_ITEMS, negated: false };
    case 'S':
      return { items: ascii ? ASCII_WS_ITEMS : PY_WS_ITEMS, negated: true };
    default:
      return undefined;
  }
}

function cp(ch: string): string {
  return `\\u{${ch.codePointAt(0)!.toString(16)}}`;
}

/** One character as a JS pattern literal: syntax characters escaped, control characters as `\u{...}`. */
export function literal(ch: string): string {
  const code = ch.codePointAt(0)!;
  if (SYNTAX.has(ch)) return `\\${ch}`;
  if (code < 0x20 || code === 0x7f || (code >= 0x80 && code < 0xa0) || code === 0x2028 || code === 0x2029) return cp(ch);
  return ch;
}

/** Reads a pattern one code point at a time, and parses its escapes and character sets. */
export class PatternCursor {
  protected readonly s: string[];
  protected pos = 0;

  constructor(pattern: string) {
    this.s = [...pattern];
  }

  protected peek(offset = 0): string | undefined {
    return this.s[this.pos + offset];
  }

  protected get(): string | undefined {
    return this.s[this.pos++];
  }

  protected match(ch: string): boolean {
    if (this.s[this.pos] === ch) {
      this.pos++;
      return true;
    }
    return false;
  }

  protected error(message: string): never {
    throw new PyReError('invalid', `${message} at position ${this.pos}`);
  }

  protected unsupported(message: string): never {
    throw new PyReError('unsupported', `${message} at position ${this.pos}`);
  }

  /** Escapes shared by both contexts (`\b` is handled by the callers). Returns the literal char. */
  protected simpleEscape(c: string): string {
    switch (c) {
      case 'a':
        return '\x07';
      case 'f':
        return '\f';
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case 'v':
        return '\v';
      case '\\':
        return '\\';
      case 'x':
        return this.hexEscape(2, 'x');
      case 'u':
        return this.hexEscape(4, 'u');
      case 'U':
        return this.hexEscape(8, 'U');
      case 'N':
        this.unsupported('named Unicode escapes (\\N{...}) are not supported');
    }
    if (ASCII_LETTER.test(c) || DIGITS.includes(c)) this.error(`bad escape \\${c}`);
    return c;
  }

  protected hexEscape(n: number, letter: string): string {
    let digits = '';
    while (digits.length < n && this.peek() !== undefined && HEX.test(this.peek()!)) digits += this.get();
    if (digits.length !== n) this.error(`incomplete escape \\${letter}${digits}`);
    const code = parseInt(digits, 16);
    if (code > 0x10ffff) this.error(`bad escape \\${letter}${digits}`);
    return String.fromCodePoint(code);
  }

  protected lit(ch: string): Piece {
    return { src: literal(ch), lo: 1, hi: 1, kind: 'atom' };
  }

  /** A class escape: a literal char, or a category. */
  protected classEscape(flags: Flags): { char: string } | { cat: Category } {
    const c = this.get();
    if (c === undefined) this.error('unterminated character set');
    const cat = category(c, flags.a);
    if (cat) return { cat };
    if (c === 'b') return { char: '\b' };
    if (OCT.includes(c)) {
      let digits = c;
      while (digits.length < 3 && this.peek() !== undefined && OCT.includes(this.peek()!)) digits += this.get();
      const code = parseInt(digits, 8);
      if (code > 0o377) this.error(`octal escape value \\${digits} outside of range 0-0o377`);
      return { char: String.fromCodePoint(code) };
    }
    return { char: this.simpleEscape(c) };
  }

  protected parseClass(flags: Flags): Piece {
    const negate = this.match('^');
    const items: string[] = [];
    const negatedCats: Category[] = [];
    let count = 0;
    for (;;) {
      const ch = this.get();
      if (ch === undefined) this.error('unterminated character set');
      if (ch === ']' && count > 0) break;
      const first: { char: string } | { cat: Category } = ch === '\\' ? this.classEscape(flags) : { char: ch };
      if (this.match('-')) {
        const that = this.get();
        if (that === undefined) this.error('unterminated character set');
        if (that === ']') {
          this.addClassItem(first, items, negatedCats);
          items.push(cp('-'));
          count += 2;
          break;
        }
        const second: { char: string } | { cat: Category } = that === '\\' ? this.classEscape(flags) : { char: that };
        if (!('char' in first) || !('char' in second)) this.error('bad character range');
        if (second.char.codePointAt(0)! < first.char.codePointAt(0)!) this.error(`bad character range ${first.char}-${second.char}`);
        items.push(`${cp(first.char)}-${cp(second.char)}`);
      } else {
        this.addClassItem(first, items, negatedCats);
      }
      count++;
    }
    let src: string;
    if (negatedCats.length === 0) {
      src = `[${negate ? '^' : ''}${items.join('')}]`;
    } else {
      // JS classes (without the `v` flag) cannot hold a negated category next to other items:
      // spell the union out as an alternation.
      const branches = negatedCats.map((c) => `[^${c.items}]`);
      if (items.length > 0) branches.unshift(`[${items.join('')}]`);
      const union = `(?:${branches.join('|')})`;
      src = negate ? `(?:(?!${union})[\\s\\S])` : union;
    }
    return { src, lo: 1, hi: 1, kind: 'atom' };
  }

  protected addClassItem(item: { char: string } | { cat: Category }, items: string[], negatedCats: Category[]): void {
    if ('char' in item) items.push(cp(item.char));
    else if (item.cat.negated) negatedCats.push(item.cat);
    else items.push(item.cat.items);
  }
}
