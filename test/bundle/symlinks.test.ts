/**
 * Symlink policy: links inside the dags folder are shipped as links (with their targets), links
 * that leave it are errors, loops and folders reached twice are errors, not hangs.
 */
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { scanDags } from '../../src/bundle/index.js';
import { cleanupTemp, makeTree, tempDir, writeTree } from './helpers.js';

afterAll(cleanupTemp);

describe('symlinks inside the dags folder', () => {
  it('ships a file link as a link, next to its target', async () => {
    const root = await makeTree({ 'dag.py': 'x', 'link.py': { link: 'dag.py' } });
    const result = await scanDags(root);
    expect(result.entries).toEqual([
      { path: 'dag.py', type: 'file' },
      { path: 'link.py', type: 'symlink', linkTarget: 'dag.py' },
    ]);
    expect(result.included).toEqual(['dag.py', 'link.py']);
    expect(result.warnings).toEqual([]);
  });

  it('stores an absolute link that stays inside as a relative one, and a chain as one hop', async () => {
    const root = await makeTree({ 'lib/c.py': 'c', 'sub/x.py': '' });
    await writeTree(root, { 'sub/abs.py': { link: path.join(root, 'lib/c.py') }, 'b.py': { link: 'lib/c.py' }, 'a.py': { link: 'b.py' } });
    const result = await scanDags(root);
    expect(result.entries.filter((e) => e.type === 'symlink')).toEqual([
      { path: 'a.py', type: 'symlink', linkTarget: 'lib/c.py' },
      { path: 'b.py', type: 'symlink', linkTarget: 'lib/c.py' },
      { path: 'sub/abs.py', type: 'symlink', linkTarget: '../lib/c.py' },
    ]);
  });

  it('ships the target of a link whose target the rules exclude, and says so', async () => {
    const root = await makeTree({ '.airflowignore': 'shared/\n', 'shared/helper.py': 'h', 'helper.py': { link: 'shared/helper.py' } });
    const result = await scanDags(root);
    expect(result.entries.map((e) => e.path)).toEqual(['.airflowignore', 'helper.py', 'shared/helper.py']);
    expect(result.kept).toEqual([
      { path: 'shared/helper.py', reason: 'symlink-target', linkedFrom: 'helper.py', excludedBy: { file: '.airflowignore', line: 1 } },
    ]);
    expect(result.warnings).toEqual([expect.objectContaining({ code: 'SYMLINK_TARGET_KEPT', file: 'helper.py', path: 'shared/helper.py' })]);
  });

  it('follows a symlinked folder like Airflow (paths through the link) and ships it as a link', async () => {
    const root = await makeTree({ '.airflowignore': 'real/\nskip_*\n', 'real/a.py': '', 'real/skip_b.py': '', alias: { link: 'real' } });
    const result = await scanDags(root);
    // Airflow yields alias/a.py (real/ is pruned); the bundle holds the link and the target file.
    expect(result.included).toEqual(['.airflowignore', 'alias/a.py', 'real/a.py']);
    expect(result.entries).toEqual([
      { path: '.airflowignore', type: 'file' },
      { path: 'alias', type: 'symlink', linkTarget: 'real' },
      { path: 'real/a.py', type: 'file' },
    ]);
    expect(result.kept.map((k) => [k.path, k.reason, k.linkedFrom])).toEqual([['real/a.py', 'symlink-target', 'alias']]);
  });

  it('accepts two routes to a folder when the rules prune one of them', async () => {
    const root = await makeTree({ '.airflowignore': 'alias\n', 'real/a.py': '', alias: { link: 'real' } });
    const result = await scanDags(root);
    expect(result.included).toEqual(['.airflowignore', 'real/a.py']);
  });

  it('ships a dangling link that stays inside, with a warning', async () => {
    const root = await makeTree({ 'a.py': '', 'gone.py': { link: 'missing/nothing.py' } });
    const result = await scanDags(root);
    expect(result.entries).toContainEqual({ path: 'gone.py', type: 'symlink', linkTarget: 'missing/nothing.py' });
    expect(result.warnings).toEqual([expect.objectContaining({ code: 'BROKEN_SYMLINK', file: 'gone.py' })]);
  });
});

describe('symlinks that are errors', () => {
  it('rejects a file link that resolves outside the dags folder', async () => {
    const base = await tempDir();
    await writeTree(base, { 'secret.txt': 'do not ship' });
    const root = await makeTree({ 'a.py': '', 'leak.py': { link: '../secret.txt' } }, base);
    await expect(scanDags(root)).rejects.toMatchObject({ code: 'ASTRO_BUNDLE_SYMLINK_ESCAPE', path: 'leak.py' });
    // The guard is about what ships: an ignored escaping link is fine.
    await writeTree(root, { '.airflowignore': 'leak.py\n' });
    await expect(scanDags(root)).resolves.toMatchObject({ included: ['.airflowignore', 'a.py'] });
  });

  it('rejects a folder link and a dangling link that lead outside', async () => {
    const base = await tempDir();
    await writeTree(base, { 'outside/x.py': '' });
    const root = await makeTree({ 'a.py': '', 'out': { link: '../outside' } }, base);
    await expect(scanDags(root)).rejects.toMatchObject({ code: 'ASTRO_BUNDLE_SYMLINK_ESCAPE', path: 'out' });
    const root2 = await makeTree({ 'a.py': '', 'gone.py': { link: '/nonexistent/elsewhere.py' } });
    await expect(scanDags(root2)).rejects.toMatchObject({ code: 'ASTRO_BUNDLE_SYMLINK_ESCAPE', path: 'gone.py' });
  });

  it('stops on a folder link back to an ancestor instead of looping forever', async () => {
    const root = await makeTree({ 'a/b.py': '', 'a/back': { link: '..' } });
    await expect(scanDags(root)).rejects.toMatchObject({ code: 'ASTRO_BUNDLE_SYMLINK_LOOP' });
    const root2 = await makeTree({ 'x.py': '', 'self': { link: 'self' } });
    await expect(scanDags(root2)).rejects.toMatchObject({ code: 'ASTRO_BUNDLE_SYMLINK_LOOP', path: 'self' });
  });

  it('rejects a folder reached twice (a folder and a link to it), as Airflow does', async () => {
    const root = await makeTree({ 'real/a.py': '', alias: { link: 'real' } });
    const err = await scanDags(root).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ASTRO_BUNDLE_DIR_REACHED_TWICE' });
    expect((err as Error).message).toContain('real');
  });
});
