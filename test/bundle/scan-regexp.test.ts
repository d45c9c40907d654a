/**
 * `.airflowignore` in regexp syntax (Airflow 2's default), on real trees. Besides hand-written
 * expectations, an independent reference walk in Python (os.walk + re, written from the documented
 * algorithm of Airflow's find_path_from_directory) is run on the same trees and must agree with
 * scanDags exactly.
 */
import { readFile } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { scanDags } from '../../src/bundle/index.js';
import { cleanupTemp, makeTree, python } from './helpers.js';
import type { TreeSpec } from './helpers.js';

afterAll(cleanupTemp);

async function airflowView(spec: TreeSpec): Promise<string[]> {
  const root = await makeTree(spec);
  const result = await scanDags(root, { syntax: 'regexp', defaultExcludes: false, hiddenImports: 'off' });
  return result.included.filter((p) => !p.endsWith('.airflowignore'));
}

/** Reference walk: regexp rules, nested files, pruning, followed symlinks, loop detection. */
const REFERENCE_WALK = `
import json, os, re, sys
from pathlib import Path

def walk(base):
    base = Path(base).resolve()
    by_dir = {}
    out = []
    for root, dirs, files in os.walk(base, followlinks=True):
        rules = by_dir.get(Path(root).resolve(), [])
        ignore = Path(root) / ".airflowignore"
        if ignore.is_file():
            for line in ignore.read_text().split("\\n"):
                line = re.sub(r"\\s*#.*", "", line)
                if not line:
                    continue
                try:
                    rules.append(re.compile(line))
                except re.error:
                    pass
        def ignored(p):
            rel = str(p.relative_to(base))
            return any(r.search(rel) for r in rules)
        dirs[:] = [d for d in dirs if not ignored(Path(root) / d)]
        for d in dirs:
            real = (Path(root) / d).resolve()
            if real in by_dir:
                raise RuntimeError("loop")
            by_dir[real] = list(rules)
        for f in files:
            if f != ".airflowignore" and not ignored(Path(root) / f):
                out.append(str((Path(root) / f).relative_to(base)))
    return sorted(out)

result = {}
for name, base in json.load(sys.stdin).items():
    try:
        result[name] = walk(base)
    except RuntimeError as e:
        result[name] = "error"
print(json.dumps(result))
`;

describe('regexp syntax', () => {
  it('searches unanchored in the path relative to the dags folder (a word hides substrings anywhere)', async () => {
    const view = await airflowView({ '.airflowignore': 'test\n', 'latest_prices.py': '', 'contest/entry.py': '', 'attestation.py': '', 'dag.py': '' });
    expect(view).toEqual(['dag.py']);
  });

  it('anchors ^ at the dags folder, also for patterns in nested ignore files', async () => {
    expect(await airflowView({ '.airflowignore': '^etl\n', 'etl_a.py': '', 'sub/etl.py': '' })).toEqual(['sub/etl.py']);
    expect(await airflowView({ 'sub/.airflowignore': '^helper\n', 'sub/helper.py': '', 'helper.py': '' })).toEqual(['helper.py', 'sub/helper.py']);
    expect(await airflowView({ 'sub/.airflowignore': '^sub/helper\n', 'sub/helper.py': '', 'helper.py': '' })).toEqual(['helper.py']);
  });

  it('treats a trailing slash as an ordinary character', async () => {
    // "vendor/" never matches the folder "vendor" itself, only paths below it.
    const root = await makeTree({ '.airflowignore': 'vendor/\n', 'vendor/lib.py': '', 'my_vendor/deep/x.py': '', 'vendor.py': '' });
    const result = await scanDags(root, { syntax: 'regexp', defaultExcludes: false });
    expect(result.included.filter((p) => p !== '.airflowignore')).toEqual(['vendor.py']);
    expect(result.excluded.map((e) => [e.path, e.type])).toEqual([
      ['my_vendor/deep', 'directory'],
      ['vendor/lib.py', 'file'],
    ]);
  });

  it('prunes a folder whose own path matches', async () => {
    const root = await makeTree({ '.airflowignore': '^build$\n', 'build/x.py': '', 'build/.airflowignore': '(\n', 'builder.py': '' });
    const result = await scanDags(root, { syntax: 'regexp', defaultExcludes: false });
    expect(result.included).toEqual(['.airflowignore', 'builder.py']);
    expect(result.warnings).toEqual([]);
  });

  it('skips invalid lines with a warning naming file and line, and applies the others', async () => {
    const root = await makeTree({ 'sub/.airflowignore': 'ok_\n*_test.py\n[\n', 'sub/ok_1.py': '', 'sub/a_test.py': '', 'sub/b.py': '' });
    const result = await scanDags(root, { syntax: 'regexp', defaultExcludes: false });
    expect(result.included).toEqual(['sub/.airflowignore', 'sub/a_test.py', 'sub/b.py']);
    expect(result.warnings).toEqual([
      expect.objectContaining({ code: 'IGNORE_INVALID_PATTERN', file: 'sub/.airflowignore', line: 2, pattern: '*_test.py' }),
      expect.objectContaining({ code: 'IGNORE_INVALID_PATTERN', file: 'sub/.airflowignore', line: 3, pattern: '[' }),
    ]);
  });

  it('translates Python-only syntax: (?i), (?P<name>), \\Z, lookahead', async () => {
    expect(await airflowView({ '.airflowignore': '(?i)readme\n', 'README.md': '', 'a.py': '' })).toEqual(['a.py']);
    expect(await airflowView({ '.airflowignore': '(?P<d>tmp)/(?P=d)\\Z\n', 'tmp/tmp': '', 'tmp/tmp.py': '' })).toEqual(['tmp/tmp.py']);
    expect(await airflowView({ '.airflowignore': '^(?!keep)\n', 'keep_a.py': '', 'drop.py': '', 'keepers/x.py': '' })).toEqual(['keep_a.py', 'keepers/x.py']);
  });

  it('keeps whitespace significant and cuts patterns at #', async () => {
    expect(await airflowView({ '.airflowignore': 'old \n', 'old file.py': '', 'older.py': '' })).toEqual(['older.py']);
    expect(await airflowView({ '.airflowignore': 'meta#1\n', 'metadata.py': '', 'x.py': '' })).toEqual(['x.py']);
  });

  it('warns (and skips) a valid Python line it cannot evaluate', async () => {
    const root = await makeTree({ '.airflowignore': '(?i:x)y\n', 'xy.py': '' });
    const result = await scanDags(root, { syntax: 'regexp' });
    expect(result.included).toEqual(['.airflowignore', 'xy.py']);
    expect(result.warnings).toEqual([expect.objectContaining({ code: 'IGNORE_UNSUPPORTED_PATTERN', line: 1 })]);
  });
});

describe('regexp syntax agrees with a reference walk in Python', () => {
  const trees: Record<string, TreeSpec> = {
    nested: {
      '.airflowignore': 'tmp\n^docs\n\\.sql$ # sql files\n',
      'a.py': '',
      'tmp_a.py': '',
      'docs/x.py': '',
      'sub/docs/x.py': '',
      'sub/.airflowignore': '^sub/b\nc\n',
      'sub/b.py': '',
      'sub/c.py': '',
      'sub/d.py': '',
      'sub/q.sql': '',
      'other/c.py': '',
    },
    invalid: { '.airflowignore': '*.py\n(\nkeep\n', 'keep.py': '', 'x.py': '', 'd/keep/y.py': '' },
    symlinked: { '.airflowignore': '^real\n', 'real/a.py': '', 'real/b_skip.py': '', 'alias': { link: 'real' }, 'alias2/.airflowignore': 'skip\n', 'alias2/x.py': '' },
    twice: { 'real/a.py': '', alias: { link: 'real' } },
    cycle: { 'a/b.py': '', 'a/back': { link: '..' } },
    prunedRoute: { '.airflowignore': 'alias\n', 'real/a.py': '', alias: { link: 'real' } },
    crlf: { '.airflowignore': 'x\r\ny\rz', 'x.py': '', 'y.py': '', 'z.py': '', 'w.py': '' },
  };

  it('yields the same files (and the same failures) on every tree', async () => {
    const roots: Record<string, string> = {};
    for (const [name, spec] of Object.entries(trees)) roots[name] = await makeTree(spec);
    const reference = await python<Record<string, string[] | 'error'>>(REFERENCE_WALK, roots);
    for (const [name, root] of Object.entries(roots)) {
      const ours = await scanDags(root, { syntax: 'regexp', defaultExcludes: false, hiddenImports: 'off' }).then(
        (r) => r.included.filter((p) => !p.endsWith('.airflowignore') && !r.kept.some((k) => k.path === p)),
        () => 'error' as const,
      );
      expect({ name, files: ours }).toEqual({ name, files: reference[name] });
    }
    // Sanity: the reference really ran the interesting cases.
    expect(reference.twice).toBe('error');
    expect(reference.cycle).toBe('error');
    expect(reference.symlinked).toContain('alias/a.py');
  });

  it("is the README's statement: included without the .airflowignore files and the kept paths (not without the ignore files alone)", async () => {
    // The bundle keeps a link's target, a module a DAG imports and, with 'ship', a SQL file, all
    // of which .airflowignore hides from Airflow.
    const root = await makeTree({
      '.airflowignore': '^shared\n^helpers\n^sql\n',
      'dag.py': 'import helpers.util\n',
      'helpers/util.py': '',
      'link.py': { link: 'shared/target.py' },
      'shared/target.py': '',
      'sql/a.sql': '',
    });
    const reference = (await python<Record<string, string[]>>(REFERENCE_WALK, { tree: root })).tree;
    expect(reference).toEqual(['dag.py', 'link.py']);
    for (const ignoredNonPython of ['warn', 'ship'] as const) {
      const r = await scanDags(root, { syntax: 'regexp', defaultExcludes: false, ignoredNonPython });
      const withoutIgnoreFiles = r.included.filter((p) => !p.endsWith('.airflowignore'));
      expect(withoutIgnoreFiles.filter((p) => !r.kept.some((k) => k.path === p))).toEqual(reference);
      expect(withoutIgnoreFiles).not.toEqual(reference);
    }
    const readme = (await readFile(new URL('../../README.md', import.meta.url), 'utf8')).replace(/\s+/g, ' ');
    const exact = '`included` minus the `.airflowignore` files and the paths in `kept` (link targets,';
    const at = readme.indexOf('`included` minus');
    expect(readme.slice(at, at + exact.length)).toBe(exact);
  });
});
