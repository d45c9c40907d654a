/**
 * Differential test of the Python-regexp translation against the real Python `re` module:
 * every pattern is compiled by python3 and by us, and `re.search` is compared with `RegExp.test`
 * on the same subjects. Lines Python rejects must be rejected by us as `invalid`.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { translatePythonRegex } from '../../src/bundle/python-regexp.js';
import { python } from './helpers.js';

const PATTERNS = [
  // Plain words and anchors (what .airflowignore files usually hold).
  'test', '^etl', 'dag$', '^build$', 'vendor/', '\\.py$', '.py', 'a.c', '^sub/helper', 'data#1',
  '   ', 'old ', '^(?!keep)', '^(?!(foo|bar)).*', '(?i)README', '(?i)^Tmp/', '(?is)a.b', '(?x) a b c',
  '(?P<dir>[a-z]+)/(?P=dir)', '(?P<n>x)\\Z', '\\Aabc', 'abc\\Z', '^a|b$', '(a|b)+c', 'x{2}', 'x{2,}', 'x{,2}y', 'x{}',
  'x{a}', 'x{1,', '{1}', 'x{3,1}', '\\d+', '\\w+\\.py', '\\W', '\\s', '\\S+', '\\bfoo\\b', '\\Bfoo', '[\\d_]+\\.py',
  '[\\W]', '[^\\W\\d]+', '[a-z-]+', '[]a]', '[^]a]', '[a\\]]', '[\\b]', '\\x41', '\\u00e9', '\\U0001F600', '\\101', '\\0',
  '\\n', '\\t', '(a)\\1', '(?:a)*', '(?=a)*b', '(?<=a)b', '(?<!ab)c', '(?<=a|bc)d', '(?<=a+)b', 'a**', 'a*?', 'a{2}?',
  '*_test.py', '+x', '?x', 'a(', 'a)', '[a', '[z-a]', '\\q', '\\k', '\\', '(?P<1a>x)', '(?P<a>x)(?P<a>y)', '(?P=nope)',
  'a(?i)b', '(?i)(?s)x.', '(?L)a', '(?au)a', '(?#c', '(?<n>x)', '\\8', '(a)\\2', '(a\\1)', '\\x4', '\\u12',
  '[\\w-]', '[\\w-a]', '(?m)^b', '(?m)a$', '^$', '$', 'x$', '.', '\\.', 'é', '[é-ë]', '(?a)\\w+', '(?u)\\w+',
  '(?s:a.b)', '(?x:a b)', '(?i:a)b', '(?i)(?-i:a)', 'a++', 'a*+', '(?>a)', '(?(1)a|b)', '(a)(?(1)a|b)', '\\N{DIGIT ONE}',
  'a|', '|a', '()', '(|a)+', 'a{1,2}{3}', '(?=a){2}', '\\b*', '^*',
];

const SUBJECTS = [
  'test.py', 'latest_prices.py', 'contest/entry.py', 'etl/dag.py', 'sub/etl.py', 'build', 'build/x.py', 'mybuild',
  'vendor', 'vendor/lib.py', 'my_vendor/x/y.py', 'a.py', 'apy', 'abc', 'a\nc', 'README.md', 'readme.md', 'docs/ReadMe',
  'tmp/x', 'TMP/x', 'a\nb', 'x/x', 'foo/foo', 'keep/me.py', 'drop/me.py', 'foo.py', 'bar/x', 'data', 'old file.py',
  'has   three', 'xx', 'xxx', 'x{}', 'x{a}', 'x{1,', '{1}', 'xy', 'xxy', '123.py', 'é.py', 'ab.py', 'a_b.py', 'foo bar',
  'afoo', 'foo', 'a-b-c', ']', 'a]', '\b', 'A', 'é', 'ë', '😀', 'A', '\x00', '\n', '\t', 'aa', 'ab', 'ad', 'bcd', 'aab',
  'c', 'abc/', 'x.py\n', 'a\n', '', 'b', 'aaa', 'ac', 'bc', 'é_ü', 'a b c', 'abc', 'Ab', 'aB', 'zz', '_', '١٢٣',
];

interface PyResult {
  valid: boolean;
  error?: string;
  matches?: boolean[];
}

const SCRIPT = `
import json, re, sys, warnings
warnings.simplefilter("ignore")
data = json.load(sys.stdin)
out = []
for p in data["patterns"]:
    try:
        r = re.compile(p)
    except re.error as e:
        out.append({"valid": False, "error": str(e)})
        continue
    except Exception as e:
        out.append({"valid": False, "error": type(e).__name__ + ": " + str(e)})
        continue
    out.append({"valid": True, "matches": [r.search(s) is not None for s in data["subjects"]]})
print(json.dumps(out))
`;

// Valid Python that has no JS equivalent: reported as unsupported (skipped, never mistranslated).
const KNOWN_UNSUPPORTED = new Set(['(?i:a)b', '(?i)(?-i:a)', 'a++', 'a*+', '(?>a)', '(a)(?(1)a|b)', '\\N{DIGIT ONE}']);

describe('Python regexp translation agrees with python3 re', () => {
  let py: PyResult[];
  beforeAll(async () => {
    py = await python<PyResult[]>(SCRIPT, { patterns: PATTERNS, subjects: SUBJECTS });
  });

  it('runs the oracle', () => {
    expect(py).toHaveLength(PATTERNS.length);
    // Sanity: the oracle really rejects glob-looking lines and accepts plain words.
    expect(py[PATTERNS.indexOf('*_test.py')]!.valid).toBe(false);
    expect(py[PATTERNS.indexOf('test')]!.valid).toBe(true);
  });

  it.each(PATTERNS.map((p, i) => [p, i] as const))('pattern %j', (pattern, i) => {
    const expected = py[i]!;
    const ours = translatePythonRegex(pattern);
    if (!expected.valid) {
      expect(ours.ok, `Python rejects it (${expected.error}); we must too`).toBe(false);
      if (!ours.ok) expect(ours.kind).toBe('invalid');
      return;
    }
    if (KNOWN_UNSUPPORTED.has(pattern)) {
      expect(ours).toMatchObject({ ok: false, kind: 'unsupported' });
      return;
    }
    expect(ours.ok, ours.ok ? '' : ours.message).toBe(true);
    if (!ours.ok) return;
    const got = SUBJECTS.map((s) => ours.regex.test(s));
    const diffs = SUBJECTS.filter((_, k) => got[k] !== expected.matches![k]).map((s) => JSON.stringify(s));
    expect(diffs, `subjects where JS and Python disagree for ${JSON.stringify(pattern)} -> /${ours.source}/${ours.flags}`).toEqual([]);
  });
});
