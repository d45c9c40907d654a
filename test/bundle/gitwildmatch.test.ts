import { describe, expect, it } from 'vitest';
import { compileGitWildMatch, GitWildMatchError } from '../../src/bundle/gitwildmatch.js';

/** Which of `paths` the compiled line matches (ignoring include/exclude). */
function matching(pattern: string, paths: string[]): string[] {
  const { regex } = compileGitWildMatch(pattern);
  if (!regex) return [];
  return paths.filter((p) => regex.test(p));
}

describe('gitwildmatch translation (pathspec 0.12.1 semantics)', () => {
  it('anchors a leading slash at the root and matches below it', () => {
    expect(matching('/an/absolute/file/path', ['an/absolute/file/path', 'an/absolute/file/path/foo', 'foo/an/absolute/file/path'])).toEqual([
      'an/absolute/file/path',
      'an/absolute/file/path/foo',
    ]);
  });

  it('matches a single name at any depth, and anything below it', () => {
    expect(matching('spam', ['spam', 'spam/', 'foo/spam', 'spam/foo', 'foo/spam/bar', 'spammy', 'xspam'])).toEqual([
      'spam',
      'spam/',
      'foo/spam',
      'spam/foo',
      'foo/spam/bar',
    ]);
  });

  it('does not let a pattern with an inner slash float to deeper folders', () => {
    expect(matching('foo/spam', ['foo/spam', 'foo/spam/bar', 'bar/foo/spam'])).toEqual(['foo/spam', 'foo/spam/bar']);
  });

  it('handles ** at the start, in the middle, at the end and alone', () => {
    expect(matching('spam/**', ['spam/bar', 'foo/spam/bar', 'spam'])).toEqual(['spam/bar']);
    expect(matching('left/**/right', ['left/right', 'left/bar/right', 'left/foo/bar/right', 'left/bar/right/foo', 'foo/left/bar/right'])).toEqual([
      'left/right',
      'left/bar/right',
      'left/foo/bar/right',
      'left/bar/right/foo',
    ]);
    expect(matching('**/spam', ['spam', 'foo/spam', 'foo/spam/bar', 'spamx'])).toEqual(['spam', 'foo/spam', 'foo/spam/bar']);
    expect(matching('**', ['x', 'A/x', 'A/B/C/y.py'])).toEqual(['x', 'A/x', 'A/B/C/y.py']);
    // Repeated ** collapse.
    expect(compileGitWildMatch('**/**/api').source).toBe(compileGitWildMatch('**/api').source);
    expect(compileGitWildMatch('*').source).toBe(compileGitWildMatch('**/*').source);
  });

  it('treats "**/" as everything with a folder part', () => {
    expect(matching('**/', ['a/b', 'a/', 'file'])).toEqual(['a/b', 'a/']);
  });

  it('matches a trailing-slash pattern only with a slash (folders) and below', () => {
    expect(matching('dir/', ['dir/', 'foo/dir/', 'foo/dir/bar', 'dir'])).toEqual(['dir/', 'foo/dir/', 'foo/dir/bar']);
    expect(matching('dirG/*', ['dirG/fileO', 'dirG/dirH/fileI', 'dirG', 'fileA'])).toEqual(['dirG/fileO', 'dirG/dirH/fileI']);
  });

  it('keeps * and ? inside one segment', () => {
    expect(matching('*.py', ['bar.py', 'bar.py/', 'foo/bar.py', 'foo/bar.py/baz', 'bar.pyc'])).toEqual(['bar.py', 'bar.py/', 'foo/bar.py', 'foo/bar.py/baz']);
    expect(matching('foo-*-bar', ['foo--bar', 'foo-hello-bar', 'a/foo-hello-bar/b', 'foo-a/b-bar'])).toEqual(['foo--bar', 'foo-hello-bar', 'a/foo-hello-bar/b']);
    expect(matching('/a?c', ['abc', 'a/c', 'abbc'])).toEqual(['abc']);
    // ? is one code point, like Python's re (not one UTF-16 unit).
    expect(matching('/a?c', ['a😀c'])).toEqual(['a😀c']);
  });

  it('supports bracket expressions with ! and ^ negation, ranges and a leading ]', () => {
    expect(matching('a[^gy]c', ['agc', 'ayc', 'abc', 'adc'])).toEqual(['abc', 'adc']);
    expect(matching('a[!gy]c', ['agc', 'ayc', 'abc', 'adc'])).toEqual(['abc', 'adc']);
    expect(matching('/x[a-c]', ['xa', 'xb', 'xd'])).toEqual(['xa', 'xb']);
    expect(matching('/x[]a]', ['x]', 'xa', 'xb'])).toEqual(['x]', 'xa']);
    expect(matching('/x[!]a]', ['x]', 'xa', 'xb'])).toEqual(['xb']);
    expect(matching('/x[a-]', ['xa', 'x-', 'xb'])).toEqual(['xa', 'x-']);
    // Backslashes inside a class are literal characters.
    expect(matching('/x[\\]', ['x\\', 'x]'])).toEqual(['x\\']);
    // An unclosed bracket is a literal.
    expect(matching('/x[ab', ['x[ab', 'xa'])).toEqual(['x[ab']);
  });

  it('escapes the next character with a backslash', () => {
    expect(matching('asteris\\*', ['asteris*', 'asterisk'])).toEqual(['asteris*']);
    expect(matching('\\!mark', ['!mark'])).toEqual(['!mark']);
    expect(matching('\\#sign', ['#sign'])).toEqual(['#sign']);
  });

  it('reads ! as negation and strips surrounding whitespace (except an escaped trailing space)', () => {
    expect(compileGitWildMatch('!temp').include).toBe(false);
    expect(compileGitWildMatch('temp').include).toBe(true);
    expect(matching('  temp  ', ['temp', ' temp'])).toEqual(['temp']);
    expect(matching('temp\\ ', ['temp ', 'temp'])).toEqual(['temp ']);
  });

  it('treats blank lines, comments and a lone / as no-ops', () => {
    for (const p of ['', '   ', '# comment', '/']) {
      expect(compileGitWildMatch(p)).toMatchObject({ regex: null, include: null });
    }
  });

  it('rejects what pathspec rejects', () => {
    expect(() => compileGitWildMatch('\\')).toThrow(GitWildMatchError);
    expect(() => compileGitWildMatch('!')).toThrow(GitWildMatchError);
    expect(() => compileGitWildMatch('foo\\')).toThrow(GitWildMatchError);
    // Python's re rejects a reversed range.
    expect(() => compileGitWildMatch('[z-a]')).toThrow(GitWildMatchError);
  });
});
