/**
 * A small file that changes size between the packer's fstat (which wrote its tar header) and its
 * read must be refused: the header would no longer match the content. The packer reads such a
 * file with one synchronous call, so the change is made from inside that call: `readSync` is
 * wrapped to append to (or truncate) the real file on disk just before the real read runs.
 */
import { appendFileSync, readlinkSync, truncateSync } from 'node:fs';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createBundle } from '../../src/bundle/index.js';
import { isAstroError } from '../../src/core/errors.js';
import { cleanupTemp, makeTree, tempDir } from './helpers.js';

/** What to do to the file named here the first time the packer reads it. */
const edit: { name?: string; action?: 'grow' | 'shrink' } = {};

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const readSync = ((fd: number, ...rest: unknown[]) => {
    if (edit.name !== undefined) {
      const file = readlinkSync(`/proc/self/fd/${fd}`);
      if (file.endsWith(`/${edit.name}`)) {
        if (edit.action === 'grow') appendFileSync(file, 'one more line\n');
        else truncateSync(file, 3);
        edit.name = undefined;
      }
    }
    return (fs.readSync as (...args: unknown[]) => number)(fd, ...rest);
  }) as typeof fs.readSync;
  return { ...fs, default: { ...fs, readSync }, readSync };
});

afterAll(cleanupTemp);
beforeEach(() => {
  edit.name = undefined;
});

async function bundleWith(action: 'grow' | 'shrink'): Promise<unknown> {
  const root = await makeTree({ 'a.py': 'a = 1\n', 'b.py': 'print("a line long enough to cut")\n', 'c.py': 'c = 3\n' });
  edit.name = 'b.py';
  edit.action = action;
  const out = await tempDir('bundle-out-');
  return await createBundle(root, { output: { type: 'file', dir: out }, defaultExcludes: false }).catch((e: unknown) => e);
}

describe('a small file that changes size while it is read', () => {
  it('is refused when it grew after its header was written (ASTRO_BUNDLE_FILE_CHANGED)', async () => {
    const err = await bundleWith('grow');
    expect(edit.name).toBeUndefined(); // the edit ran: the packer did read b.py
    expect(isAstroError(err) && err.code).toBe('ASTRO_BUNDLE_FILE_CHANGED');
    expect((err as Error).message).toContain("'b.py' changed while it was being bundled");
  });

  it('is refused when it shrank after its header was written (ASTRO_BUNDLE_FILE_CHANGED)', async () => {
    const err = await bundleWith('shrink');
    expect(edit.name).toBeUndefined();
    expect(isAstroError(err) && err.code).toBe('ASTRO_BUNDLE_FILE_CHANGED');
  });

  it('packs the tree when nothing changes (the wrapper alone changes nothing)', async () => {
    const root = await makeTree({ 'a.py': 'a = 1\n', 'b.py': 'b = 2\n' });
    const bundle = await createBundle(root, { output: { type: 'file', dir: await tempDir('bundle-out-') }, defaultExcludes: false });
    expect(bundle.manifest.files.map((f) => [f.path, f.size])).toEqual([
      ['a.py', 6],
      ['b.py', 6],
    ]);
    await bundle.cleanup();
  });
});
