/**
 * The packer's small-file path (open, fstat, read, fstat; headers from tar-header.ts): old and
 * fresh files give node-tar's bytes, a file is sized when it is opened (the scan does not stat
 * files), and a file that changes between the scan and its read is packed as it is then, or
 * refused with the same errors as before.
 */
import { mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { Header } from 'tar';
import { afterAll, describe, expect, it } from 'vitest';
import { createBundle } from '../../src/bundle/index.js';
import type { BundleEvent, BundleResult } from '../../src/bundle/index.js';
import { isAstroError } from '../../src/core/errors.js';
import { cleanupTemp, makeTree, tempDir, touch } from './helpers.js';
import type { TreeSpec } from './helpers.js';

afterAll(cleanupTemp);

const OLD = 1_600_000_000;

async function bundleOf(root: string, onScan?: () => void): Promise<BundleResult> {
  const onEvent = (e: BundleEvent) => {
    // Called synchronously between the scan and the packing.
    if (e.type === 'bundle:scan-complete') onScan?.();
  };
  return await createBundle(root, { output: { type: 'file', dir: await tempDir('bundle-out-') }, defaultExcludes: false, onEvent });
}

/** The tar the bundle should hold: node-tar headers, content, padding, two zero blocks. */
function referenceTar(files: Array<{ name: string; content: Buffer; mode: number; mtimeSeconds: number }>): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    const block = Buffer.alloc(512);
    const header = new Header({ path: f.name, mode: f.mode, uid: 0, gid: 0, size: f.content.length, mtime: new Date(f.mtimeSeconds * 1000), type: 'File', linkpath: '', uname: '', gname: '' });
    expect(header.encode(block, 0)).toBe(false);
    parts.push(block, f.content, Buffer.alloc((512 - (f.content.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

describe('small files', () => {
  it('packs old and freshly written files to node-tar bytes', async () => {
    const spec: TreeSpec = { 'empty.py': '', 'tool.sh': { content: '#!/bin/sh\necho hi\n', mode: 0o755 }, 'fresh.py': 'written just now\n' };
    for (let i = 0; i < 300; i++) spec[`team_${i % 7}/dag_${i}.py`] = `from airflow import DAG\n# ${'x'.repeat(i * 13)}\n`;
    spec['exact.bin'] = Buffer.alloc(1024, 7);
    const root = await makeTree(spec);
    await touch(root, Object.keys(spec).filter((p) => p !== 'fresh.py'), OLD);
    const bundle = await bundleOf(root);
    const files = [];
    for (const f of bundle.manifest.files) {
      const content = await readFile(path.join(root, f.path));
      expect(f.sha256).toBe(createHash('sha256').update(content).digest('hex'));
      if (f.path !== 'fresh.py') expect(f.mtimeSeconds).toBe(OLD);
      files.push({ name: `dags/${f.path}`, content, mode: f.path === 'tool.sh' ? 0o755 : 0o644, mtimeSeconds: f.mtimeSeconds });
    }
    expect(gunzipSync(await readFile(bundle.path!)).equals(referenceTar(files))).toBe(true);
  });

  it('packs a file as it is when it grew or shrank after the scan, even with its old mtime put back', async () => {
    const root = await makeTree({ 'grew.py': 'short\n', 'shrank.py': 'a longer first version\n', 'same.py': 'unchanged\n' });
    await touch(root, ['grew.py', 'shrank.py', 'same.py'], OLD);
    const bundle = await bundleOf(root, () => {
      writeFileSync(path.join(root, 'grew.py'), 'a much longer second version\n');
      writeFileSync(path.join(root, 'shrank.py'), 'short\n');
      utimesSync(path.join(root, 'grew.py'), OLD, OLD);
      utimesSync(path.join(root, 'shrank.py'), OLD, OLD);
    });
    const byPath = new Map(bundle.manifest.files.map((f) => [f.path, f]));
    expect(byPath.get('grew.py')!.size).toBe('a much longer second version\n'.length);
    expect(byPath.get('shrank.py')!.size).toBe('short\n'.length);
    const tar = gunzipSync(await readFile(bundle.path!)).toString('latin1');
    expect(tar).toContain('a much longer second version\n');
    expect(tar).not.toContain('a longer first version');
    expect(bundle.manifest.totals.bytes).toBe('a much longer second version\n'.length + 'short\n'.length + 'unchanged\n'.length);
  });

  it('packs a file rewritten after the scan at the same size as it is then, with its new mtime or its old one put back', async () => {
    // The deep one has a name of 100 bytes or more: a PAX header.
    const deep = `${'long/'.repeat(20)}deep.py`;
    const root = await makeTree({ 'newer.py': 'version 1\n', 'restored.py': 'version 1\n', [deep]: 'version 1\n' });
    await touch(root, ['newer.py', 'restored.py', deep], OLD);
    const bundle = await bundleOf(root, () => {
      for (const f of ['newer.py', 'restored.py', deep]) writeFileSync(path.join(root, f), 'version 2\n');
      utimesSync(path.join(root, 'newer.py'), OLD + 10, OLD + 10);
      utimesSync(path.join(root, 'restored.py'), OLD, OLD);
    });
    const byPath = new Map(bundle.manifest.files.map((f) => [f.path, f]));
    const v2 = createHash('sha256').update('version 2\n').digest('hex');
    expect([byPath.get('newer.py')!.sha256, byPath.get('restored.py')!.sha256, byPath.get(deep)!.sha256]).toEqual([v2, v2, v2]);
    expect([byPath.get('newer.py')!.mtimeSeconds, byPath.get('restored.py')!.mtimeSeconds]).toEqual([OLD + 10, OLD]);
    const tar = gunzipSync(await readFile(bundle.path!)).toString('latin1');
    expect(tar).not.toContain('version 1');
    expect(tar.split('version 2\n').length - 1).toBe(3);
  });

  it('sizes each file when it opens it: one that grew past 256 KiB after the scan is streamed whole, one that shrank below it is read at once', async () => {
    const big = Buffer.alloc(300 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
    const root = await makeTree({ 'a.py': 'a\n', 'grew.bin': 'tiny\n', 'shrank.bin': big, 'z.py': 'z\n' });
    await touch(root, ['a.py', 'grew.bin', 'shrank.bin', 'z.py'], OLD);
    const bundle = await bundleOf(root, () => {
      writeFileSync(path.join(root, 'grew.bin'), big);
      writeFileSync(path.join(root, 'shrank.bin'), 'small now\n');
    });
    const byPath = new Map(bundle.manifest.files.map((f) => [f.path, f]));
    expect(byPath.get('grew.bin')).toMatchObject({ size: big.length, sha256: createHash('sha256').update(big).digest('hex') });
    expect(byPath.get('shrank.bin')).toMatchObject({ size: 'small now\n'.length, sha256: createHash('sha256').update('small now\n').digest('hex') });
    const files = [];
    for (const f of bundle.manifest.files) files.push({ name: `dags/${f.path}`, content: await readFile(path.join(root, f.path)), mode: 0o644, mtimeSeconds: f.mtimeSeconds });
    expect(gunzipSync(await readFile(bundle.path!)).equals(referenceTar(files))).toBe(true);
  });

  it('refuses a file that became a folder after the scan (ASTRO_BUNDLE_FILE_CHANGED), and one that vanished (ASTRO_BUNDLE_IO)', async () => {
    const root = await makeTree({ 'a.py': 'a\n', 'b.py': 'b\n' });
    await touch(root, ['a.py', 'b.py'], OLD);
    const folder = await bundleOf(root, () => {
      rmSync(path.join(root, 'b.py'));
      mkdirSync(path.join(root, 'b.py'));
    }).catch((e: unknown) => e);
    expect(isAstroError(folder) && folder.code).toBe('ASTRO_BUNDLE_FILE_CHANGED');
    rmSync(path.join(root, 'b.py'), { recursive: true });
    writeFileSync(path.join(root, 'b.py'), 'b\n');
    const gone = await bundleOf(root, () => rmSync(path.join(root, 'b.py'))).catch((e: unknown) => e);
    expect(isAstroError(gone) && gone.code).toBe('ASTRO_BUNDLE_IO');
  });
});
