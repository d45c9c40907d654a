/**
 * Files `.airflowignore` hides that Airflow never parses (SQL, templates, YAML, CSV): left out of
 * the bundle with one warning per rule by default, shipped as the Astro CLI ships them with
 * `ignoredNonPython: 'ship'`, left out silently with `'drop'`.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createBundle, scanDags } from '../../src/bundle/index.js';
import type { BundleEvent, BundleResult, ScanOptions } from '../../src/bundle/index.js';
import { cleanupTemp, listTree, makeTree, python, run, tempDir, writeTree } from './helpers.js';
import type { TreeSpec } from './helpers.js';

afterAll(cleanupTemp);

const TEMPLATES = 120;

/** A DAG repository whose `.airflowignore` hides SQL, templates and CSV to speed up parsing. */
function spec(): TreeSpec {
  const tree: TreeSpec = {
    '.airflowignore': 'sql/\ntemplates/\n*.csv\nhelpers/\n',
    'etl.py': 'from airflow import DAG\n',
    'config.yaml': 'shipped: always\n',
    'sql/load.sql': 'INSERT INTO t SELECT 1;\n',
    'sql/nested/merge.sql': 'MERGE INTO t;\n',
    'sql/gen.py': 'print("a script, hidden from the parser")\n',
    'sql/zipped.zip': 'PK\u0005\u0006',
    // Never read (the folder is pruned): a lone `!` would fail the walk if it were.
    'sql/.airflowignore': '!\n',
    'sql/__pycache__/gen.cpython-312.pyc': 'bytecode',
    'data.csv': 'a,b\n1,2\n',
    'out/extract.csv': 'c,d\n3,4\n',
    'helpers/util.py': 'X = 1\n',
  };
  for (let i = 0; i < TEMPLATES; i++) tree[`templates/t${i % 4}/report_${i}.j2`] = `{{ ds }} report ${i}\n`;
  return tree;
}

const DATA = ['data.csv', 'out/extract.csv', 'sql/load.sql', 'sql/nested/merge.sql'];
const TEMPLATE_FILES = Array.from({ length: TEMPLATES }, (_, i) => `templates/t${i % 4}/report_${i}.j2`);
const ALWAYS = ['.airflowignore', 'config.yaml', 'etl.py'];

async function bundleOf(root: string, options: ScanOptions = {}): Promise<{ bundle: BundleResult; events: BundleEvent[] }> {
  const events: BundleEvent[] = [];
  const bundle = await createBundle(root, { ...options, output: { type: 'file', dir: await tempDir('bundle-out-') }, onEvent: (e) => events.push(e) });
  return { bundle, events };
}

describe('ignoredNonPython', () => {
  it("'warn' (the default) leaves them out, with one warning per .airflowignore line naming the line, the folder and the count", async () => {
    const root = await makeTree(spec());
    const result = await scanDags(root);
    expect(result.included).toEqual(ALWAYS);
    expect(result.kept).toEqual([]);
    const dropped = result.warnings.filter((w) => w.code === 'IGNORED_NON_PYTHON_DROPPED');
    expect(dropped).toEqual([
      // Files hidden by name come first (the walk meets them before it lists the pruned folders).
      expect.objectContaining({ file: '.airflowignore', line: 3, pattern: '*.csv', path: 'data.csv', count: 2 }),
      // Not sql/gen.py, the zip, the pruned folder's .airflowignore, nor what a default exclude leaves out.
      expect.objectContaining({ file: '.airflowignore', line: 1, pattern: 'sql/', path: 'sql', count: 2 }),
      expect.objectContaining({ file: '.airflowignore', line: 2, pattern: 'templates/', path: 'templates', count: TEMPLATES }),
    ]);
    // helpers/ holds only Python: nothing to say about it.
    expect(result.warnings).toHaveLength(3);
    expect(dropped[1]!.message).toContain("'sql/' in .airflowignore:1 leaves 2 files out of the bundle that Airflow never parses");
    expect(dropped[1]!.message).toContain("ignoredNonPython: 'ship'");
    expect(dropped[2]!.message).toContain(`${TEMPLATES} files`);
    expect(dropped[0]!.message).toContain("in 'data.csv', 'out/extract.csv'");
    // What is excluded, and why, is as before: the pruned folders and the files hidden by name.
    expect(result.excluded.map((e) => [e.path, e.type, e.reason])).toEqual([
      ['data.csv', 'file', "matched '*.csv' in .airflowignore:3"],
      ['helpers', 'directory', "matched 'helpers/' in .airflowignore:4"],
      ['out/extract.csv', 'file', "matched '*.csv' in .airflowignore:3"],
      ['sql', 'directory', "matched 'sql/' in .airflowignore:1"],
      ['templates', 'directory', "matched 'templates/' in .airflowignore:2"],
    ]);
  });

  it("'warn' reports through the bundle:warning event, as HIDDEN_IMPORT_KEPT does", async () => {
    const root = await makeTree(spec());
    const { bundle, events } = await bundleOf(root);
    const warned = events.flatMap((e) => (e.type === 'bundle:warning' ? [e.warning] : []));
    expect(warned.map((w) => [w.code, w.path, w.count])).toEqual([
      ['IGNORED_NON_PYTHON_DROPPED', 'data.csv', 2],
      ['IGNORED_NON_PYTHON_DROPPED', 'sql', 2],
      ['IGNORED_NON_PYTHON_DROPPED', 'templates', TEMPLATES],
    ]);
    expect(bundle.warnings).toEqual(warned);
    expect(bundle.manifest.files.map((f) => f.path)).toEqual(ALWAYS);
    await bundle.cleanup();
  });

  it("'drop' leaves them out without a word", async () => {
    const root = await makeTree(spec());
    const result = await scanDags(root, { ignoredNonPython: 'drop' });
    expect(result.included).toEqual(ALWAYS);
    expect(result.warnings).toEqual([]);
  });

  it("'ship' ships them as the Astro CLI would, and leaves the hidden Python files out; GNU tar and Python extract them", async () => {
    const root = await makeTree(spec());
    const { bundle, events } = await bundleOf(root, { ignoredNonPython: 'ship' });
    const shipped = [...ALWAYS, ...DATA, ...TEMPLATE_FILES].sort();
    expect(bundle.manifest.files.map((f) => f.path)).toEqual(shipped);
    expect(events.filter((e) => e.type === 'bundle:warning')).toEqual([]);
    // Airflow still never walks the pruned folders: they stay excluded, the files hidden by name
    // are kept instead, and what the default excludes leave out there is listed too.
    expect(bundle.manifest.excluded.map((e) => [e.path, e.type, e.reason])).toEqual([
      ['helpers', 'directory', "matched 'helpers/' in .airflowignore:4"],
      ['sql', 'directory', "matched 'sql/' in .airflowignore:1"],
      ['sql/__pycache__', 'directory', "matched default exclude '__pycache__/'"],
      ['templates', 'directory', "matched 'templates/' in .airflowignore:2"],
    ]);
    expect(bundle.manifest.kept).toHaveLength(DATA.length + TEMPLATES);
    expect(bundle.manifest.kept.find((k) => k.path === 'sql/nested/merge.sql')).toEqual({ path: 'sql/nested/merge.sql', reason: 'non-python', excludedBy: { file: '.airflowignore', line: 1 } });
    expect(bundle.manifest.kept.find((k) => k.path === 'data.csv')).toEqual({ path: 'data.csv', reason: 'non-python', excludedBy: { file: '.airflowignore', line: 3 } });

    const out = await tempDir('bundle-x-');
    await run('tar', ['-xzf', bundle.path!, '-C', out]);
    expect(await listTree(out)).toEqual(shipped.map((p) => `dags/${p}`));
    for (const rel of ['sql/load.sql', 'data.csv', 'templates/t3/report_7.j2']) {
      expect(await readFile(path.join(out, 'dags', rel), 'utf8')).toBe(await readFile(path.join(root, rel), 'utf8'));
    }

    const script = `
import hashlib, json, sys, tarfile
args = json.load(sys.stdin)
with tarfile.open(args["archive"], "r:gz") as t:
    t.extractall(args["out"], filter="data")
    print(json.dumps({m.name: hashlib.sha256(t.extractfile(m).read()).hexdigest() for m in t.getmembers() if m.isfile()}))
`;
    const pyOut = await tempDir('bundle-py-');
    const hashes = await python<Record<string, string>>(script, { archive: bundle.path, out: pyOut });
    expect(Object.keys(hashes).sort()).toEqual(shipped.map((p) => `dags/${p}`));
    for (const rel of DATA) {
      expect(hashes[`dags/${rel}`], rel).toBe(createHash('sha256').update(await readFile(path.join(root, rel))).digest('hex'));
    }
    expect(await listTree(pyOut)).toEqual(shipped.map((p) => `dags/${p}`));
    await bundle.cleanup();
  });

  it("'ship' works with the regexp syntax too", async () => {
    const root = await makeTree({ '.airflowignore': '^sql\n\\.csv$\n', 'etl.py': '', 'sql/a.sql': '', 'sql/b.py': '', 'x/data.csv': '' });
    expect((await scanDags(root, { syntax: 'regexp', ignoredNonPython: 'ship' })).included).toEqual(['.airflowignore', 'etl.py', 'sql/a.sql', 'x/data.csv']);
    const warned = (await scanDags(root, { syntax: 'regexp' })).warnings;
    expect(warned.map((w) => [w.line, w.path, w.count])).toEqual([
      [2, 'x/data.csv', 1],
      [1, 'sql', 1],
    ]);
  });

  it('counts nothing left out by the default excludes or the exclude option', async () => {
    const root = await makeTree({ 'etl.py': '', 'notes/a.md': '', '__pycache__/x.txt': '' });
    const result = await scanDags(root, { exclude: ['notes/'] });
    expect(result.warnings).toEqual([]);
    expect((await scanDags(root, { exclude: ['notes/'], ignoredNonPython: 'ship' })).included).toEqual(['etl.py']);
  });

  it("'ship' applies the bundle filters inside the pruned folders", async () => {
    const root = await makeTree({ '.airflowignore': 'sql/\n', 'etl.py': '', 'sql/a.sql': '', 'sql/scratch/b.sql': '', 'sql/.DS_Store': '' });
    const result = await scanDags(root, { ignoredNonPython: 'ship', exclude: ['.DS_Store', 'scratch/'] });
    expect(result.included).toEqual(['.airflowignore', 'etl.py', 'sql/a.sql']);
    expect(result.excluded.map((e) => [e.path, e.source])).toEqual([
      ['sql', { file: '.airflowignore', line: 1 }],
      ['sql/.DS_Store', 'option'],
      ['sql/scratch', 'option'],
    ]);
    // Counted the same way.
    expect((await scanDags(root, { exclude: ['.DS_Store', 'scratch/'] })).warnings.map((w) => w.count)).toEqual([1]);
  });

  it('refuses a value it does not know', async () => {
    const root = await makeTree({ 'etl.py': '' });
    await expect(scanDags(root, { ignoredNonPython: 'yes' as never })).rejects.toMatchObject({ code: 'ASTRO_CONFIG_INVALID_OPTION' });
  });
});

describe('ignoredNonPython and symlinks in the pruned folders', () => {
  it("'ship' keeps links inside as links and refuses one that leaves the dags folder; 'warn' only counts", async () => {
    const outside = await tempDir('bundle-outside-');
    await writeTree(outside, { 'secret.txt': 'not yours' });
    const root = await makeTree({ '.airflowignore': 'sql/\n', 'etl.py': '', 'sql/a.sql': 'a', 'sql/latest.sql': { link: 'a.sql' } });
    const shipped = await scanDags(root, { ignoredNonPython: 'ship' });
    expect(shipped.entries).toEqual([
      { path: '.airflowignore', type: 'file' },
      { path: 'etl.py', type: 'file' },
      { path: 'sql/a.sql', type: 'file' },
      { path: 'sql/latest.sql', type: 'symlink', linkTarget: 'a.sql' },
    ]);

    await writeTree(root, { 'sql/escape.txt': { link: path.join(outside, 'secret.txt') }, 'sql/ext': { link: outside } });
    // Airflow never looks into sql/: warn and drop do not either, beyond counting.
    const warned = await scanDags(root);
    expect(warned.warnings.map((w) => [w.code, w.count])).toEqual([['IGNORED_NON_PYTHON_DROPPED', 3]]);
    expect((await scanDags(root, { ignoredNonPython: 'drop' })).warnings).toEqual([]);
    const folderErr = await scanDags(root, { ignoredNonPython: 'ship' }).catch((e: unknown) => e);
    expect(folderErr).toMatchObject({ code: 'ASTRO_BUNDLE_SYMLINK_ESCAPE', path: 'sql/ext' });
    expect((folderErr as Error).message).toContain("leave it out with the exclude option (.airflowignore hides 'sql' from Airflow");
    const err = await scanDags(root, { ignoredNonPython: 'ship', exclude: ['sql/ext'] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ASTRO_BUNDLE_SYMLINK_ESCAPE', path: 'sql/escape.txt' });
    expect((err as Error).message).toContain("leave it out with the exclude option (.airflowignore hides 'sql' from Airflow");
    // The exclude option is the way out.
    const fixed = await scanDags(root, { ignoredNonPython: 'ship', exclude: ['escape.txt', 'sql/ext'] });
    expect(fixed.included).toEqual(['.airflowignore', 'etl.py', 'sql/a.sql', 'sql/latest.sql']);
  });

  it("'ship' refuses a loop or a second route through a pruned folder; 'warn' does not", async () => {
    const root = await makeTree({ '.airflowignore': 'data/\n', 'etl.py': '', 'data/2024/a.csv': '', 'data/current': { link: '2024' } });
    expect((await scanDags(root)).warnings.map((w) => w.count)).toEqual([1]);
    const twice = await scanDags(root, { ignoredNonPython: 'ship' }).catch((e: unknown) => e);
    expect(twice).toMatchObject({ code: 'ASTRO_BUNDLE_DIR_REACHED_TWICE', path: 'data/current' });
    expect((twice as Error).message).toContain('leave it out with the exclude option');

    const loop = await makeTree({ '.airflowignore': 'data/\n', 'etl.py': '', 'data/a.csv': '', 'data/back': { link: '.' } });
    expect((await scanDags(loop)).warnings.map((w) => w.count)).toEqual([1]);
    expect(await scanDags(loop, { ignoredNonPython: 'ship' }).catch((e: unknown) => e)).toMatchObject({ code: 'ASTRO_BUNDLE_SYMLINK_LOOP', path: 'data/back' });
    expect((await scanDags(loop, { ignoredNonPython: 'ship', exclude: ['data/back'] })).included).toEqual(['.airflowignore', 'data/a.csv', 'etl.py']);
  });
});
