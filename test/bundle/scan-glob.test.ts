/**
 * `.airflowignore` in glob syntax (Airflow 3's default), on real trees built in temp folders.
 * Expected sets follow Airflow's rules as documented in shared/docs/airflowignore-semantics.md.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { scanDags, IgnorePatternError } from '../../src/bundle/index.js';
import type { ScanOptions } from '../../src/bundle/index.js';
import { cleanupTemp, makeTree } from './helpers.js';
import type { TreeSpec } from './helpers.js';

afterAll(cleanupTemp);

/** Files Airflow would parse-walk (included minus the ignore files), with no SDK filters. */
async function airflowView(spec: TreeSpec, options: ScanOptions = {}): Promise<string[]> {
  const root = await makeTree(spec);
  const result = await scanDags(root, { syntax: 'glob', defaultExcludes: false, hiddenImports: 'off', ...options });
  return result.included.filter((p) => !p.endsWith('.airflowignore'));
}

describe('glob syntax: what a pattern is matched against', () => {
  it('matches a slash-free pattern against the bare name, at every depth', async () => {
    expect(await airflowView({ '.airflowignore': 'helper.py\n', 'helper.py': '', 'sub/helper.py': '', 'sub/deep/helper.py': '', 'x_helper.py': '' })).toEqual([
      'x_helper.py',
    ]);
  });

  it('anchors a leading slash to the folder of the ignore file', async () => {
    expect(await airflowView({ '.airflowignore': '/top.py\n', 'top.py': '', 'sub/top.py': '' })).toEqual(['sub/top.py']);
  });

  it('anchors a pattern with an inner slash to the folder holding the ignore file', async () => {
    const view = await airflowView({
      '.airflowignore': 'sub/x.py\n',
      'sub/.airflowignore': 'deep/y.py\n',
      'sub/x.py': '',
      'sub/deep/y.py': '',
      'sub/other/deep/y.py': '',
      'other/sub/x.py': '',
    });
    expect(view).toEqual(['other/sub/x.py', 'sub/other/deep/y.py']);
  });

  it('applies a trailing-slash pattern to folders only', async () => {
    const view = await airflowView({ '.airflowignore': 'build/\n', 'build/x.py': '', 'sub/build/y.py': '', 'other/build': 'a file named build' });
    expect(view).toEqual(['other/build']);
    // Without the slash the name matches files and folders alike.
    expect(await airflowView({ '.airflowignore': 'build\n', 'build/x.py': '', 'other/build': '' })).toEqual([]);
  });

  it('supports ?, [...] classes, ** and escapes', async () => {
    const view = await airflowView({
      '.airflowignore': 'test_[0-9].py\n**/gen/*.py\na/**/b.py\nv?.py\n\\!bang.py\n',
      'test_1.py': '',
      'test_x.py': '',
      'x/gen/g.py': '',
      'gen/h.py': '',
      'gen/keep.txt': '',
      'a/b.py': '',
      'a/q/r/b.py': '',
      'v1.py': '',
      'v10.py': '',
      '!bang.py': '',
    });
    expect(view).toEqual(['gen/keep.txt', 'test_x.py', 'v10.py']);
  });
});

describe('glob syntax: negation and order', () => {
  it('lets the last matching rule decide', async () => {
    expect(await airflowView({ '.airflowignore': '*.py\n!keep.py\n', 'keep.py': '', 'drop.py': '' })).toEqual(['keep.py']);
    expect(await airflowView({ '.airflowignore': '!keep.py\n*.py\n', 'keep.py': '', 'drop.py': '' })).toEqual([]);
  });

  it('"*" then "!*.py" keeps only top-level .py files (folders are pruned by "*")', async () => {
    expect(await airflowView({ '.airflowignore': '*\n!*.py\n', 'a.py': '', 'b.txt': '', 'sub/c.py': '' })).toEqual(['a.py']);
  });

  it('re-includes a file below an excluded folder only after re-including the folder', async () => {
    const spec = { 'sub/keep.py': '', 'sub/drop.py': '', 'top.py': '' };
    expect(await airflowView({ ...spec, '.airflowignore': '*\n!sub/keep.py\n' })).toEqual([]);
    expect(await airflowView({ ...spec, '.airflowignore': '*\n!sub/\n!sub/keep.py\n' })).toEqual(['sub/keep.py']);
  });

  it('"data/*" excludes the children but not the folder, so "!data/keep.py" works', async () => {
    expect(await airflowView({ '.airflowignore': 'data/*\n!data/keep.py\n', 'data/keep.py': '', 'data/drop.py': '' })).toEqual(['data/keep.py']);
  });

  it('does not let a re-included "dir/" re-include the files directly in it (apache/airflow#62716, fixed by #62860)', async () => {
    const view = await airflowView({
      '.airflowignore': '*\n!abc/\n!abc/def/\n!abc/def/xyz/\n!abc/def/xyz/*\n',
      'abc/a.py': '',
      'abc/def/b.py': '',
      'abc/def/xyz/c.py': '',
      'abc/def/xyz/d.py': '',
    });
    expect(view).toEqual(['abc/def/xyz/c.py', 'abc/def/xyz/d.py']);
  });
});

describe('glob syntax: nested ignore files', () => {
  it('inherits parent rules downwards only, and lets a nested file re-include', async () => {
    const view = await airflowView({
      '.airflowignore': '*.sql\n',
      'sub/.airflowignore': '!special.sql\n',
      'special.sql': '',
      'sub/special.sql': '',
      'sub/other.sql': '',
      'sub/deeper/special.sql': '',
      'sibling/special.sql': '',
    });
    expect(view).toEqual(['sub/deeper/special.sql', 'sub/special.sql']);
  });

  it('prunes ignored folders: nothing below is walked and their ignore files are never read', async () => {
    const root = await makeTree({
      '.airflowignore': 'hidden/\n',
      // An invalid line that would fail the walk if this file were read.
      'hidden/.airflowignore': '!\n',
      'hidden/x.py': '',
      'kept.py': '',
    });
    const result = await scanDags(root, { syntax: 'glob', defaultExcludes: false });
    expect(result.included).toEqual(['.airflowignore', 'kept.py']);
    expect(result.excluded).toEqual([
      { path: 'hidden', type: 'directory', reason: "matched 'hidden/' in .airflowignore:1", source: { file: '.airflowignore', line: 1 }, pattern: 'hidden/' },
    ]);
  });

  it('always ships .airflowignore files, even when a rule matches them', async () => {
    const root = await makeTree({ '.airflowignore': '.*\n', 'sub/.airflowignore': 'x\n', '.hidden.py': '', 'a.py': '' });
    const result = await scanDags(root, { syntax: 'glob', defaultExcludes: false });
    expect(result.included).toEqual(['.airflowignore', 'a.py', 'sub/.airflowignore']);
  });
});

describe('ignore file parsing', () => {
  it('strips comments anywhere in a line, honours CRLF and lone CR, and skips blank lines', async () => {
    const view = await airflowView({
      '.airflowignore': '# a comment\r\nfoo.py   # trailing comment\rbar.py#glued\n\n   \nbaz.py',
      'foo.py': '',
      'bar.py': '',
      'baz.py': '',
      'qux.py': '',
    });
    expect(view).toEqual(['qux.py']);
  });

  it('reports the line number of excluded files', async () => {
    const root = await makeTree({ '.airflowignore': '# c\n\n*.tmp\n', 'sub/.airflowignore': '\n\nold_*\n', 'a.tmp': '', 'sub/old_x.py': '', 'b.py': '' });
    const result = await scanDags(root, { syntax: 'glob', defaultExcludes: false });
    expect(result.excluded).toEqual([
      { path: 'a.tmp', type: 'file', reason: "matched '*.tmp' in .airflowignore:3", source: { file: '.airflowignore', line: 3 }, pattern: '*.tmp' },
      { path: 'sub/old_x.py', type: 'file', reason: "matched 'old_*' in sub/.airflowignore:3", source: { file: 'sub/.airflowignore', line: 3 }, pattern: 'old_*' },
    ]);
  });

  it('fails with a typed error naming file and line on a line pathspec rejects', async () => {
    const root = await makeTree({ 'sub/.airflowignore': 'ok.py\n\n!\n', 'sub/x.py': '' });
    const err = await scanDags(root, { syntax: 'glob' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IgnorePatternError);
    expect(err).toMatchObject({ code: 'ASTRO_BUNDLE_IGNORE_INVALID', path: 'sub/.airflowignore', line: 3, pattern: '!' });
    expect((err as Error).message).toContain('sub/.airflowignore line 3');
  });

  it('fails on an escaped "#" (the comment stripper leaves a lone backslash)', async () => {
    const root = await makeTree({ '.airflowignore': 'a.py\n\\#literal\n', 'a.py': '' });
    await expect(scanDags(root, { syntax: 'glob' })).rejects.toMatchObject({ code: 'ASTRO_BUNDLE_IGNORE_INVALID', line: 2, pattern: '\\' });
  });

  it('warns about a no-op "/" line and goes on', async () => {
    const root = await makeTree({ '.airflowignore': '/\nx.py\n', 'x.py': '', 'y.py': '' });
    const result = await scanDags(root, { syntax: 'glob' });
    expect(result.included).toEqual(['.airflowignore', 'y.py']);
    expect(result.warnings).toEqual([expect.objectContaining({ code: 'IGNORE_NOOP_PATTERN', file: '.airflowignore', line: 1, pattern: '/' })]);
  });

  it('keeps a UTF-8 BOM as part of the first pattern (as Python does) and warns', async () => {
    const root = await makeTree({ '.airflowignore': '\ufeffa.py\nb.py\n', 'a.py': '', 'b.py': '' });
    const result = await scanDags(root, { syntax: 'glob' });
    expect(result.included).toEqual(['.airflowignore', 'a.py']);
    expect(result.warnings.map((w) => w.code)).toEqual(['IGNORE_FILE_BOM']);
  });
});

describe('default excludes and the exclude option', () => {
  const spec: TreeSpec = {
    'a.py': '',
    '__pycache__/a.cpython-311.pyc': '',
    'sub/__pycache__/b.pyc': '',
    'stray.pyc': '',
    '.git/HEAD': 'ref: refs/heads/main\n',
    'docs/readme.md': '',
    'keep.pyc': '',
  };

  it('leaves out .git/, __pycache__/ and *.pyc by default, naming the default as the reason', async () => {
    const root = await makeTree(spec);
    const result = await scanDags(root);
    expect(result.included).toEqual(['a.py', 'docs/readme.md']);
    expect(result.excluded.map((e) => [e.path, e.source, e.pattern])).toEqual([
      ['.git', 'default', '.git/'],
      ['__pycache__', 'default', '__pycache__/'],
      ['keep.pyc', 'default', '*.pyc'],
      ['stray.pyc', 'default', '*.pyc'],
      ['sub/__pycache__', 'default', '__pycache__/'],
    ]);
  });

  it('can be turned off, replaced, extended and overridden', async () => {
    const root = await makeTree(spec);
    expect((await scanDags(root, { defaultExcludes: false })).included).toHaveLength(Object.keys(spec).length);
    expect((await scanDags(root, { defaultExcludes: ['docs/'] })).included).toEqual(
      Object.keys(spec).filter((p) => !p.startsWith('docs/')).sort(),
    );
    const extended = await scanDags(root, { exclude: ['docs/', '!keep.pyc'] });
    expect(extended.included).toEqual(['a.py', 'keep.pyc']);
    expect(extended.excluded.find((e) => e.path === 'docs')).toMatchObject({ source: 'option', pattern: 'docs/' });
  });

  it('rejects an invalid exclude pattern as a configuration error', async () => {
    const root = await makeTree({ 'a.py': '' });
    await expect(scanDags(root, { exclude: ['!'] })).rejects.toMatchObject({ code: 'ASTRO_CONFIG_INVALID_OPTION' });
  });

  it('fails clearly when the dags folder does not exist', async () => {
    await expect(scanDags('/nonexistent/dags/folder')).rejects.toMatchObject({ code: 'ASTRO_BUNDLE_DIR_NOT_FOUND' });
  });
});
