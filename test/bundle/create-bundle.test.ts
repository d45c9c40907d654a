/**
 * createBundle: the archive itself, checked with the real consumers (GNU tar, Python's tarfile),
 * determinism, the fingerprint, prefixes, outputs, events, errors.
 */
import { createHash } from 'node:crypto';
import { link, readdir, readFile, readlink, lstat, stat, chmod } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { isAstroError, type BundleError } from '../../src/core/errors.js';
import { createBundle, fingerprint } from '../../src/bundle/index.js';
import type { BundleEvent, BundleManifest, BundleManifestFile, BundleResult } from '../../src/bundle/index.js';
import { DEFAULT_COMPRESSION_LEVEL } from '../../src/bundle/create-bundle.js';
import { looksIncompressible, storedBlocks } from '../../src/bundle/stored-pieces.js';
import { cleanupTemp, listTree, makeTree, python, referenceGzip, run, tempDir, touch, writeTree } from './helpers.js';
import type { TreeSpec } from './helpers.js';

afterAll(cleanupTemp);

const LONG_DIR = `very/${'long-folder-name-'.repeat(6)}x`;
const BIG = Buffer.alloc(3 * 1024 * 1024 + 123);
for (let i = 0; i < BIG.length; i++) BIG[i] = (i * 2654435761) >>> 24;

const SPEC: TreeSpec = {
  '.airflowignore': 'ignored_*\n',
  'dag_a.py': 'from airflow import DAG\n',
  'ignored_b.py': 'never shipped',
  'sub/dag_c.py': { content: '#!/usr/bin/env python\n', mode: 0o700 },
  'sub/private.py': { content: 'p', mode: 0o600 },
  'sub/group.py': { content: 'g', mode: 0o664 },
  'empty.txt': '',
  'data/big.bin': BIG,
  'données/été.py': 'unicode names',
  [`${LONG_DIR}/${'f'.repeat(120)}.py`]: 'a long name',
  'alias.py': { link: 'dag_a.py' },
  'lien.py': { link: 'données/été.py' },
  '__pycache__/dag_a.cpython-311.pyc': 'bytecode',
};

async function sha256File(p: string): Promise<string> {
  return createHash('sha256').update(await readFile(p)).digest('hex');
}

const archiveName = (m: BundleManifest, p: string) => (m.prefix ? `${m.prefix}/${p}` : p);

async function bundleOf(root: string, options: Parameters<typeof createBundle>[1] = {}): Promise<BundleResult> {
  const result = await createBundle(root, { output: { type: 'file', dir: await tempDir('bundle-out-') }, ...options });
  return result;
}

describe('archive contents, as GNU tar and Python see them', () => {
  it('lists exactly the manifest with GNU tar: names, types, modes, owners, sizes, link targets, no folders', async () => {
    const root = await makeTree(SPEC);
    const bundle = await bundleOf(root);
    const { manifest } = bundle;
    expect(manifest.files.map((f) => f.path)).toEqual([
      '.airflowignore',
      'alias.py',
      'dag_a.py',
      'data/big.bin',
      'données/été.py',
      'empty.txt',
      'lien.py',
      'sub/dag_c.py',
      'sub/group.py',
      'sub/private.py',
      `${LONG_DIR}/${'f'.repeat(120)}.py`,
    ]);
    const listing = (await run('tar', ['--numeric-owner', '--quoting-style=literal', '-tzvf', bundle.path!])).trim().split('\n');
    expect(listing).toHaveLength(manifest.files.length);
    listing.forEach((line, i) => {
      const f = manifest.files[i]!;
      const m = /^(\S+) (\d+)\/(\d+) +(\d+) \S+ \S+ (.+?)(?: -> (.+))?$/.exec(line);
      expect(m, line).not.toBeNull();
      const [, perms, uid, gid, size, name, target] = m!;
      const want = f.type === 'symlink' ? 'lrwxrwxrwx' : f.mode === 0o755 ? '-rwxr-xr-x' : '-rw-r--r--';
      expect({ perms, uid, gid, size: Number(size), name, target }).toEqual({
        perms: want,
        uid: '0',
        gid: '0',
        size: f.size,
        name: archiveName(manifest, f.path),
        target: f.linkTarget,
      });
    });
    expect(manifest.files.find((f) => f.path === 'sub/dag_c.py')!.mode).toBe(0o755);
    expect(manifest.files.find((f) => f.path === 'sub/private.py')!.mode).toBe(0o644);
    expect(manifest.files.find((f) => f.path === 'sub/group.py')!.mode).toBe(0o644);
    await bundle.cleanup();
  });

  it('extracts with GNU tar to exactly the manifest (content hashes, links, mtimes)', async () => {
    const root = await makeTree(SPEC);
    await touch(root, ['dag_a.py', 'data/big.bin'], 1_600_000_000);
    const bundle = await bundleOf(root);
    const out = await tempDir('bundle-x-');
    await run('tar', ['-xzf', bundle.path!, '-C', out]);
    const files = bundle.manifest.files;
    expect(await listTree(out)).toEqual(files.map((f) => `dags/${f.path}`).sort());
    for (const f of files) {
      const p = path.join(out, 'dags', f.path);
      const st = await lstat(p);
      expect(Math.floor(st.mtimeMs / 1000), f.path).toBe(f.mtimeSeconds);
      if (f.type === 'symlink') {
        expect(await readlink(p)).toBe(f.linkTarget);
        expect(await sha256File(p)).toBe(await sha256File(path.join(root, f.path)));
      } else {
        expect(st.isFile()).toBe(true);
        expect(await sha256File(p), f.path).toBe(f.sha256);
        expect(st.size).toBe(f.size);
      }
    }
    expect(files.find((f) => f.path === 'dag_a.py')!.mtimeSeconds).toBe(1_600_000_000);
    expect(files.find((f) => f.path === 'data/big.bin')!.sha256).toBe(createHash('sha256').update(BIG).digest('hex'));
  });

  it('reads and extracts with Python tarfile to exactly the manifest', async () => {
    const root = await makeTree(SPEC);
    const bundle = await bundleOf(root);
    const out = await tempDir('bundle-py-');
    const script = `
import hashlib, json, os, sys, tarfile
args = json.load(sys.stdin)
members = []
with tarfile.open(args["archive"], "r:gz") as t:
    for m in t.getmembers():
        members.append({"name": m.name, "type": "symlink" if m.issym() else "file" if m.isfile() else "other",
                        "mode": m.mode, "uid": m.uid, "gid": m.gid, "uname": m.uname, "gname": m.gname,
                        "size": m.size, "mtime": m.mtime, "linkname": m.linkname})
    t.extractall(args["out"], filter="data")
hashes = {}
for m in members:
    p = os.path.join(args["out"], m["name"])
    if m["type"] == "file":
        with open(p, "rb") as f:
            hashes[m["name"]] = hashlib.sha256(f.read()).hexdigest()
print(json.dumps({"members": members, "hashes": hashes}))
`;
    const py = await python<{ members: Array<Record<string, unknown>>; hashes: Record<string, string> }>(script, { archive: bundle.path, out });
    expect(py.members).toEqual(
      bundle.manifest.files.map((f) => ({
        name: `dags/${f.path}`,
        type: f.type,
        mode: f.mode,
        uid: 0,
        gid: 0,
        uname: '',
        gname: '',
        size: f.size,
        mtime: f.mtimeSeconds,
        linkname: f.linkTarget ?? '',
      })),
    );
    for (const f of bundle.manifest.files.filter((x) => x.type === 'file')) expect(py.hashes[`dags/${f.path}`]).toBe(f.sha256);
  });

  it('stores hard-linked files as two regular files', async () => {
    const root = await makeTree({ 'a.py': 'same inode' });
    await link(path.join(root, 'a.py'), path.join(root, 'b.py'));
    const bundle = await bundleOf(root);
    expect(bundle.manifest.files.map((f) => [f.path, f.type, f.size])).toEqual([
      ['a.py', 'file', 10],
      ['b.py', 'file', 10],
    ]);
    const listing = await run('tar', ['-tzvf', bundle.path!]);
    expect(listing).not.toMatch(/link to/);
  });
});

describe('determinism and fingerprint', () => {
  it('packs the same tree to the same bytes, with a fixed gzip header', async () => {
    const root = await makeTree(SPEC);
    const a = await bundleOf(root);
    const b = await bundleOf(root);
    expect(a.sha256).toBe(b.sha256);
    expect(a.bytes).toBe(b.bytes);
    expect(await sha256File(a.path!)).toBe(a.sha256);
    expect((await stat(a.path!)).size).toBe(a.bytes);
    const head = (await readFile(a.path!)).subarray(0, 10);
    expect([...head.subarray(0, 4)]).toEqual([0x1f, 0x8b, 8, 0]); // gzip, deflate, no flags (no name)
    expect(head.readUInt32LE(4)).toBe(0); // no timestamp
    expect(head[9]).toBe(255); // OS: unknown, the same on every platform
  });

  it('deflates at level 3 unless told otherwise: the reference framing of its own tar at that level, and at level 6 when asked', async () => {
    const root = await makeTree(SPEC);
    const stored = (piece: Buffer, _at: number, last: boolean) => (looksIncompressible(piece) ? storedBlocks(piece, last) : undefined);
    for (const [options, level] of [[{}, DEFAULT_COMPRESSION_LEVEL], [{ compressionLevel: 6 }, 6]] as const) {
      const bundle = await bundleOf(root, options);
      const gz = await readFile(bundle.path!);
      expect(gz.equals(referenceGzip(gunzipSync(gz), stored, level))).toBe(true);
    }
    expect(DEFAULT_COMPRESSION_LEVEL).toBe(3);
  });

  it('keeps the fingerprint when only mtimes change, and changes it for content or mode', async () => {
    const root = await makeTree(SPEC);
    const first = await bundleOf(root);
    await touch(root, ['dag_a.py', 'sub/dag_c.py'], 1_500_000_000);
    const touched = await bundleOf(root);
    expect(touched.sha256).not.toBe(first.sha256); // mtimes are real and stored
    expect(touched.manifest.fingerprint).toBe(first.manifest.fingerprint);

    await chmod(path.join(root, 'dag_a.py'), 0o755);
    const chmodded = await bundleOf(root);
    expect(chmodded.manifest.fingerprint).not.toBe(first.manifest.fingerprint);

    await writeTree(root, { 'dag_a.py': 'from airflow import DAG  # changed\n' });
    const edited = await bundleOf(root);
    expect(edited.manifest.fingerprint).not.toBe(chmodded.manifest.fingerprint);
  });

  it('computes the fingerprint over the sorted member lines, whatever the order of the files', () => {
    // Paths where sorting by path and sorting the lines could disagree ('a' / 'a-b' / 'a/b').
    const paths = ['a', 'a-b', 'a.py', 'a/b', 'a/b/c', 'b', 'é', 'z/l'];
    const files: BundleManifestFile[] = paths.map((p, i) =>
      i % 3 === 1
        ? { path: p, size: 0, sha256: createHash('sha256').update(`t${i}`).digest('hex'), mode: 0o777, type: 'symlink', linkTarget: `t${i}`, mtimeSeconds: i }
        : { path: p, size: i, sha256: createHash('sha256').update(p).digest('hex'), mode: i % 2 ? 0o755 : 0o644, type: 'file', mtimeSeconds: i },
    );
    const reference = (prefix: string | null) => {
      const lines = files.map((f) => `${f.type}\0${prefix ? `${prefix}/${f.path}` : f.path}\0${f.mode.toString(8)}\0${f.sha256}\n`).sort();
      return createHash('sha256').update(lines.join('')).digest('hex');
    };
    for (const prefix of ['dags', null]) {
      expect(fingerprint(files, prefix)).toBe(reference(prefix));
      expect(fingerprint([...files].reverse(), prefix)).toBe(reference(prefix));
      expect(fingerprint([files[3]!, ...files.slice(0, 3), ...files.slice(4)], prefix)).toBe(reference(prefix));
    }
  });

  it('gives manifest entries the same fields in the same order as before (they serialise alike)', async () => {
    const root = await makeTree(SPEC);
    const bundle = await bundleOf(root);
    const file = bundle.manifest.files.find((f) => f.path === 'dag_a.py')!;
    const link = bundle.manifest.files.find((f) => f.path === 'alias.py')!;
    expect(Object.keys(file)).toEqual(['path', 'size', 'sha256', 'mode', 'type', 'mtimeSeconds']);
    expect(Object.keys(link)).toEqual(['path', 'size', 'sha256', 'mode', 'type', 'linkTarget', 'mtimeSeconds']);
    expect(link).toMatchObject({ size: 0, mode: 0o777, type: 'symlink', linkTarget: 'dag_a.py', sha256: createHash('sha256').update('dag_a.py').digest('hex') });
    expect(bundle.manifest.totals.bytes).toBe(bundle.manifest.files.reduce((n, f) => n + f.size, 0));
  });

  it('puts entries under dags/ by default, under a custom prefix, or at the root', async () => {
    const root = await makeTree({ 'a.py': 'a', 'sub/b.py': 'b' });
    const names = async (prefix?: string | false) => {
      const b = await bundleOf(root, prefix === undefined ? {} : { prefix });
      return (await run('tar', ['-tzf', b.path!])).trim().split('\n');
    };
    expect(await names()).toEqual(['dags/a.py', 'dags/sub/b.py']);
    expect(await names('mydags/')).toEqual(['mydags/a.py', 'mydags/sub/b.py']);
    expect(await names(false)).toEqual(['a.py', 'sub/b.py']);
    const noPrefix = await bundleOf(root, { prefix: false });
    const withPrefix = await bundleOf(root);
    expect(noPrefix.manifest.prefix).toBeNull();
    expect(noPrefix.manifest.fingerprint).not.toBe(withPrefix.manifest.fingerprint);
    await expect(bundleOf(root, { prefix: '../escape' })).rejects.toMatchObject({ code: 'ASTRO_CONFIG_INVALID_OPTION' });
  });
});

describe('outputs, events and errors', () => {
  it('streams the same bytes to a caller stream, and writes nothing into the dags folder', async () => {
    const root = await makeTree(SPEC);
    const before = await listTree(root);
    const sink = new PassThrough();
    const chunks: Buffer[] = [];
    sink.on('data', (c: Buffer) => chunks.push(c));
    const streamed = await createBundle(root, { output: { type: 'stream', stream: sink } });
    const file = await bundleOf(root);
    const bytes = Buffer.concat(chunks);
    expect(streamed.path).toBeUndefined();
    expect(bytes.length).toBe(streamed.bytes);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(streamed.sha256);
    expect(streamed.sha256).toBe(file.sha256);
    expect(sink.writableEnded).toBe(true);
    expect(await listTree(root)).toEqual(before);
  });

  it('writes to the system temp folder by default and removes it on cleanup()', async () => {
    const root = await makeTree({ 'a.py': 'a' });
    const bundle = await createBundle(root);
    expect(bundle.path!.startsWith(path.join((await import('node:os')).tmpdir(), 'astro-dags-'))).toBe(true);
    await stat(bundle.path!);
    await bundle.cleanup();
    await expect(stat(path.dirname(bundle.path!))).rejects.toMatchObject({ code: 'ENOENT' });
    await bundle.cleanup(); // idempotent
  });

  it('refuses an output folder inside the dags folder', async () => {
    const root = await makeTree({ 'a.py': 'a', 'out/.keep': '' });
    await expect(createBundle(root, { output: { type: 'file', dir: path.join(root, 'out') } })).rejects.toMatchObject({
      code: 'ASTRO_BUNDLE_OUTPUT_INSIDE_DAGS',
    });
    expect(await listTree(root)).toEqual(['a.py', 'out/.keep']);
  });

  it('refuses an empty bundle unless allowed', async () => {
    const onlyIgnore = await makeTree({ '.airflowignore': '*.py\n', 'a.py': '' });
    await expect(createBundle(onlyIgnore)).rejects.toMatchObject({ code: 'ASTRO_BUNDLE_EMPTY' });
    const empty = await makeTree({});
    await expect(createBundle(empty)).rejects.toMatchObject({ code: 'ASTRO_BUNDLE_EMPTY' });
    const sink = new PassThrough();
    await expect(createBundle(onlyIgnore, { output: { type: 'stream', stream: sink } })).rejects.toMatchObject({ code: 'ASTRO_BUNDLE_EMPTY' });
    expect(sink.destroyed).toBe(true); // a consumer waiting on the stream is released
    const allowed = await bundleOf(onlyIgnore, { allowEmpty: true });
    expect(allowed.manifest.files.map((f) => f.path)).toEqual(['.airflowignore']);
    expect((await run('tar', ['-tzf', allowed.path!])).trim()).toBe('dags/.airflowignore');
  });

  it('emits scan-complete, warnings, progress (files and bytes) and complete, in order', async () => {
    const spec: TreeSpec = { '.airflowignore': '/\n' };
    for (let i = 0; i < 50; i++) spec[`f${i}.py`] = 'x'.repeat(1000 + i);
    const root = await makeTree(spec);
    const events: BundleEvent[] = [];
    const bundle = await bundleOf(root, { onEvent: (e) => events.push(e), progressIntervalMs: 0 });
    const types = events.map((e) => e.type);
    expect(types[0]).toBe('bundle:warning');
    expect(types[1]).toBe('bundle:scan-complete');
    // The scan does not size files (the packer does): the content size is not known yet.
    expect(events[1]).toMatchObject({ totalFiles: 51, excluded: 0, kept: 0, warnings: 1 });
    expect(events[1]).not.toHaveProperty('totalBytes');
    expect(types.at(-1)).toBe('bundle:complete');
    const progress = events.filter((e): e is Extract<BundleEvent, { type: 'bundle:progress' }> => e.type === 'bundle:progress');
    expect(progress).toHaveLength(51);
    const totalBytes = bundle.manifest.totals.bytes;
    expect(progress.at(-1)).toEqual({ type: 'bundle:progress', files: 51, totalFiles: 51, bytes: totalBytes, totalBytes });
    for (const p of progress.slice(0, -1)) expect(p).not.toHaveProperty('totalBytes');
    for (let i = 1; i < progress.length; i++) expect(progress[i]!.bytes).toBeGreaterThanOrEqual(progress[i - 1]!.bytes);
    expect(events.at(-1)).toMatchObject({ bytes: bundle.bytes, contentBytes: totalBytes, sha256: bundle.sha256, fingerprint: bundle.manifest.fingerprint, files: 51 });
  });

  it('ignores a listener that throws or rejects: the bundle completes with the same bytes and fingerprint', async () => {
    const root = await makeTree({ ...SPEC, '.airflowignore': '/\nignored_*\n' });
    const quiet = await bundleOf(root);
    let calls = 0;
    const notes: string[] = [];
    const logger = { error: () => {}, warn: () => {}, info: () => {}, debug: (message: string) => void notes.push(message) };
    const loud = await bundleOf(root, {
      progressIntervalMs: 0,
      logger,
      onEvent: (e) => {
        calls++;
        if (e.type === 'bundle:progress') return Promise.reject(new Error('async listener bug')) as unknown as void;
        throw new Error('listener bug');
      },
    });
    expect(calls).toBe(1 + 1 + loud.manifest.files.length + 1); // warning, scan-complete, progress per file, complete
    expect(loud.manifest.fingerprint).toBe(quiet.manifest.fingerprint);
    expect(loud.sha256).toBe(quiet.sha256);
    expect(loud.warnings).toEqual(quiet.warnings);
    await new Promise((resolve) => setImmediate(resolve)); // the rejections are noted asynchronously
    expect(notes).toHaveLength(calls);
  });

  it('rejects with ASTRO_ABORTED when the signal fires while the scan fails', async () => {
    // The warning for line 1 is emitted, and the listener aborts, right before line 2 fails the
    // scan: no abort check runs in between.
    const root = await makeTree({ '.airflowignore': '/\n!\n', 'a.py': '' });
    await expect(bundleOf(root, { syntax: 'glob' })).rejects.toMatchObject({ code: 'ASTRO_BUNDLE_IGNORE_INVALID' });
    const controller = new AbortController();
    const sink = new PassThrough();
    const err = await createBundle(root, {
      syntax: 'glob',
      signal: controller.signal,
      output: { type: 'stream', stream: sink },
      onEvent: (e) => {
        if (e.type === 'bundle:warning') controller.abort(new Error('stop'));
      },
    }).catch((e: unknown) => e);
    expect(controller.signal.aborted).toBe(true);
    expect(err).toMatchObject({ code: 'ASTRO_ABORTED', cause: new Error('stop') });
    expect(sink.destroyed).toBe(true);
  });

  it('is cancelled by its signal, and leaves no temp file behind', async () => {
    const root = await makeTree(Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`f${i}.py`, 'y'.repeat(20_000)])));
    const outDir = await tempDir('bundle-abort-');
    const early = new AbortController();
    early.abort(new Error('stop'));
    await expect(createBundle(root, { signal: early.signal, output: { type: 'file', dir: outDir } })).rejects.toMatchObject({ code: 'ASTRO_ABORTED' });
    const mid = new AbortController();
    const promise = createBundle(root, {
      signal: mid.signal,
      progressIntervalMs: 0,
      output: { type: 'file', dir: outDir },
      onEvent: (e) => {
        if (e.type === 'bundle:progress' && e.files >= 10) mid.abort(new Error('stop'));
      },
    });
    await expect(promise).rejects.toMatchObject({ code: 'ASTRO_ABORTED' });
    expect(await readdir(outDir)).toEqual([]);
  });
});

describe('file names that are not valid UTF-8', () => {
  const withBadName = () => {
    const d = mkdtempSync(join(tmpdir(), 'bundle-utf8-'));
    onTestFinished(() => rmSync(d, { recursive: true, force: true }));
    writeFileSync(join(d, 'dag.py'), 'x = 1\n');
    mkdirSync(join(d, 'sub'));
    // "bad<0xff>.py": Latin-1 bytes, as a file copied from an old machine may carry.
    writeFileSync(Buffer.concat([Buffer.from(join(d, 'sub', 'bad')), Buffer.from([0xff]), Buffer.from('.py')]), 'y = 1\n');
    return d;
  };

  it('refuses a shipped one with a typed error that names it, instead of ENOENT on a mangled name', async () => {
    const err = await createBundle(withBadName(), { output: { type: 'file' } }).catch((e: unknown) => e);
    expect(isAstroError(err, 'ASTRO_BUNDLE_INVALID_FILENAME')).toBe(true);
    expect((err as BundleError).path).toBe('sub/bad\\xff.py');
    expect((err as Error).message).toContain("'sub/bad\\xff.py' is not valid UTF-8");
  });

  it('ships the rest when .airflowignore excludes it', async () => {
    const d = withBadName();
    writeFileSync(join(d, '.airflowignore'), 'sub/\n');
    const result = await createBundle(d, { output: { type: 'file' }, syntax: 'glob' });
    onTestFinished(() => result.cleanup());
    expect(result.manifest.files.map((f) => f.path)).toEqual(['.airflowignore', 'dag.py']);
  });
});
