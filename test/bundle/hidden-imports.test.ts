/**
 * The hidden-import guard: modules that .airflowignore hides from the parser but that shipped
 * files import must not vanish from the bundle.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { scanDags } from '../../src/bundle/index.js';
import { candidateFiles, findHiddenImports } from '../../src/bundle/hidden-imports.js';
import { extractImports } from '../../src/bundle/python-imports.js';
import { isAstroError } from '../../src/core/errors.js';
import { holdThread } from '../helpers/hold-thread.js';
import { cleanupTemp, makeTree } from './helpers.js';

afterAll(cleanupTemp);

describe('static import extraction', () => {
  it("finds the import after a generated data module's 1.5 MB literal (linear in the logical line)", () => {
    // One logical line of 24,000 physical lines, as generated modules (_pb2 descriptors, vendored
    // tables) have. Building it one character at a time took minutes at this size.
    const rows = Array.from({ length: 12000 }, (_, i) => `    'key_${i}': 'generated text for row ${i}, with "quotes" and #hashes\\n'\n                'continued on a second physical line',`);
    const src = ['"""A generated data module."""', 'import os', 'TABLE = {', ...rows, '}', 'from helpers.late import thing', ''].join('\n');
    expect(src.length).toBeGreaterThan(1_500_000);
    expect(extractImports(src)).toEqual([
      { module: 'os', level: 0, names: [], line: 2 },
      { module: 'helpers.late', level: 0, names: ['thing'], line: 3 + 2 * 12000 + 2 },
    ]);
  });

  it('finds import statements of every shape, with their line', () => {
    const src = [
      'import os, json as j',
      'import helpers.util as hu',
      'from helpers import (',
      '    a,',
      '    b as c,',
      ')',
      'from . import sibling',
      'from ..pkg.mod import thing',
      'x = 1; import semi',
      'try: import in_try',
      'except ImportError: pass',
      'def f():',
      '    from lazy.mod import *',
      'if True: \\',
      '    import continued',
    ].join('\n');
    expect(extractImports(src)).toEqual([
      { module: 'os', level: 0, names: [], line: 1 },
      { module: 'json', level: 0, names: [], line: 1 },
      { module: 'helpers.util', level: 0, names: [], line: 2 },
      { module: 'helpers', level: 0, names: ['a', 'b'], line: 3 },
      { module: '', level: 1, names: ['sibling'], line: 7 },
      { module: 'pkg.mod', level: 2, names: ['thing'], line: 8 },
      { module: 'semi', level: 0, names: [], line: 9 },
      { module: 'in_try', level: 0, names: [], line: 10 },
      { module: 'lazy.mod', level: 0, names: [], line: 13 },
      { module: 'continued', level: 0, names: [], line: 14 },
    ]);
  });

  it('ignores imports inside strings, docstrings and comments', () => {
    const src = ['"""', 'import in_docstring', '"""', "s = 'import in_string'", '# import in_comment', "t = '''x", 'from nope import y', "'''", 'import real'].join('\n');
    expect(extractImports(src).map((i) => i.module)).toEqual(['real']);
    expect(extractImports(src)[0]!.line).toBe(9);
  });

  it('maps an import to the module files Python would load', () => {
    expect(candidateFiles('dag.py', { module: 'a.b', level: 0, names: [] })).toEqual(['a/__init__.py', 'a.py', 'a/b/__init__.py', 'a/b.py']);
    expect(candidateFiles('pkg/mod.py', { module: '', level: 1, names: ['x'] })).toEqual(['pkg/__init__.py', 'pkg.py', 'pkg/x/__init__.py', 'pkg/x.py']);
    expect(candidateFiles('pkg/sub/mod.py', { module: 'y', level: 2, names: [] })).toEqual(['pkg/__init__.py', 'pkg.py', 'pkg/y/__init__.py', 'pkg/y.py']);
    expect(candidateFiles('mod.py', { module: 'y', level: 3, names: [] })).toEqual([]);
  });
});

describe('hidden-import guard', () => {
  const tree = {
    '.airflowignore': 'helpers/\ncommon_*.py\nunused/\n',
    'dag.py': 'from airflow import DAG\nimport helpers.util\nfrom common_tasks import make\n',
    'helpers/__init__.py': '',
    'helpers/util.py': 'from .fmt import pretty\n',
    'helpers/fmt.py': 'import os\n',
    'helpers/unrelated.py': '',
    'common_tasks.py': 'def make(): pass\n',
    'unused/x.py': '',
  };

  it('keeps an imported module that .airflowignore hides, transitively, and warns with file and line', async () => {
    const root = await makeTree(tree);
    const result = await scanDags(root);
    expect(result.included).toEqual(['.airflowignore', 'common_tasks.py', 'dag.py', 'helpers/__init__.py', 'helpers/fmt.py', 'helpers/util.py']);
    expect(result.kept.map((k) => [k.path, k.importedBy?.file, k.importedBy?.line])).toEqual([
      ['common_tasks.py', 'dag.py', 3],
      ['helpers/__init__.py', 'dag.py', 2],
      ['helpers/fmt.py', 'helpers/util.py', 1],
      ['helpers/util.py', 'dag.py', 2],
    ]);
    expect(result.kept.every((k) => k.reason === 'hidden-import')).toBe(true);
    const warnings = result.warnings.filter((w) => w.code === 'HIDDEN_IMPORT_KEPT');
    expect(warnings).toHaveLength(4);
    expect(warnings).toContainEqual(expect.objectContaining({ file: 'dag.py', line: 2, path: 'helpers/util.py' }));
    // A kept file no longer counts as excluded; the pruned folder still does.
    expect(result.excluded.map((e) => e.path)).toEqual(['helpers', 'unused']);
    expect(result.entries.map((e) => e.path)).toContain('helpers/fmt.py');
    expect(result.entries.map((e) => e.path)).not.toContain('helpers/unrelated.py');
  });

  it('fails instead with hiddenImports: "error"', async () => {
    const root = await makeTree(tree);
    const err = await scanDags(root, { hiddenImports: 'error' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ASTRO_BUNDLE_HIDDEN_IMPORT' });
    expect((err as Error).message).toContain('dag.py:2');
  });

  it('leaves them out with hiddenImports: "off"', async () => {
    const root = await makeTree(tree);
    const result = await scanDags(root, { hiddenImports: 'off' });
    expect(result.included).toEqual(['.airflowignore', 'dag.py']);
    expect(result.kept).toEqual([]);
  });

  it('also guards modules left out by the exclude option, but not by default excludes', async () => {
    const root = await makeTree({ 'dag.py': 'import lib.x\nimport vendor.y\n', 'lib/x.py': '', 'vendor/y.py': '' });
    const result = await scanDags(root, { exclude: ['lib/'], defaultExcludes: ['vendor/'] });
    expect(result.included).toEqual(['dag.py', 'lib/x.py']);
    expect(result.kept).toHaveLength(1);
    expect(result.kept[0]).toMatchObject({ path: 'lib/x.py', excludedBy: 'option' });
  });

  it('does not keep a hidden module nobody imports, nor one imported only in a comment or string', async () => {
    const root = await makeTree({ '.airflowignore': 'helpers.py\n', 'dag.py': '# import helpers\nx = "import helpers"\n', 'helpers.py': '' });
    const result = await scanDags(root);
    expect(result.included).toEqual(['.airflowignore', 'dag.py']);
    expect(result.warnings).toEqual([]);
  });
});

describe('findHiddenImports', () => {
  // 40 shipped DAGs; every third imports a hidden helper, and helpers import further hidden ones.
  const files = new Map<string, string>();
  for (let i = 0; i < 40; i++) files.set(`dag_${String(i).padStart(2, '0')}.py`, i % 3 === 0 ? `import helpers.h${i % 7}\n` : 'import os\n');
  for (let k = 0; k < 7; k++) files.set(`helpers/h${k}.py`, k < 6 ? `from helpers import h${k + 1}\n` : 'X = 1\n');
  files.set('helpers/__init__.py', '');
  const exclusion = { path: 'helpers', type: 'directory' as const, reason: "matched 'helpers/' in .airflowignore:1", source: { file: '.airflowignore', line: 1 }, pattern: 'helpers/' };
  const context = (readText: (rel: string) => string | undefined, signal?: AbortSignal) => ({
    included: new Set([...files.keys()].filter((p) => !p.startsWith('helpers/'))),
    exclusionOf: (rel: string) => (rel.startsWith('helpers/') ? exclusion : undefined),
    isFile: (rel: string) => files.has(rel),
    readText,
    signal,
  });

  it('reports hidden modules in the order of the shipped files, looking at each candidate once', async () => {
    const asked = new Map<string, number>();
    const ctx = context((rel) => files.get(rel));
    const found = await findHiddenImports({
      ...ctx,
      isFile: (rel) => {
        asked.set(rel, (asked.get(rel) ?? 0) + 1);
        return ctx.isFile(rel);
      },
    });
    // dag_00 and dag_21 both import helpers.h0: helpers/h0/__init__.py is not a file, and is stat'ed once.
    expect(asked.get('helpers/h0/__init__.py')).toBe(1);
    expect(Math.max(...asked.values())).toBe(1);
    // dag_00 imports h0 (and with it the package), dag_03 h3, dag_06 h6, dag_09 h2, ...: every
    // helper is found from a DAG before any helper is read.
    expect(found.map((h) => h.path)).toEqual(['helpers/__init__.py', 'helpers/h0.py', 'helpers/h3.py', 'helpers/h6.py', 'helpers/h2.py', 'helpers/h5.py', 'helpers/h1.py', 'helpers/h4.py']);
    expect(found[0]).toMatchObject({ importedBy: 'dag_00.py', line: 1, module: 'helpers.h0' });
    expect(found.find((h) => h.path === 'helpers/h1.py')).toMatchObject({ importedBy: 'dag_15.py', module: 'helpers.h1' });
  });

  it('gives the event loop turns while it reads (the reads are synchronous)', async () => {
    let turns = 0;
    let running = true;
    const spin = () => {
      if (!running) return;
      turns++;
      setImmediate(spin);
    };
    setImmediate(spin);
    // 47 files at 1 ms each: ~12 slices of 4 ms.
    const found = await findHiddenImports(
      context((rel) => {
        holdThread(1);
        return files.get(rel);
      }),
    );
    running = false;
    expect(found).toHaveLength(8);
    expect(turns).toBeGreaterThanOrEqual(5);
  });

  it('stops with ASTRO_ABORTED at the next slice once the signal fired', async () => {
    const controller = new AbortController();
    let reads = 0;
    const err = await findHiddenImports(
      context((rel) => {
        if (++reads === 3) controller.abort();
        holdThread(1);
        return files.get(rel);
      }, controller.signal),
    ).catch((e: unknown) => e);
    expect(isAstroError(err) && err.code).toBe('ASTRO_ABORTED');
    expect(reads).toBeLessThan(20);
  });
});
