/**
 * The layer-digest cache on its own: what survives in its file, what a damaged file gives, and
 * saves that race (two caches on one file, one cache saving twice at once).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LayerCache } from '../../src/image/layer-cache.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'astro-layer-cache-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const d = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const RECIPE = 'gzip-6-b2097152';

describe('LayerCache', () => {
  it('keeps entries in its file for the next process (a new instance), per diff ID and recipe', async () => {
    const path = join(dir, 'a', 'layers.json');
    const first = new LayerCache({ path });
    await first.remember(d(1), RECIPE, d(101), 1000, 'reg/x');
    await first.save();
    const next = new LayerCache({ path });
    expect(await next.get(d(1), RECIPE)).toEqual({ digest: d(101), size: 1000, locations: ['reg/x'] });
    // Another gzip recipe makes other bytes: no entry.
    expect(await next.get(d(1), 'gzip-1-b2097152')).toBeUndefined();
  });

  it('ignores a file that is not JSON, of another version, or with damaged entries', async () => {
    const path = join(dir, 'damaged.json');
    await writeFile(path, '{"version":1,"entries":{');
    expect(await new LayerCache({ path }).get(d(1), RECIPE)).toBeUndefined();
    await writeFile(path, JSON.stringify({ [`${d(1)}|${RECIPE}`]: { digest: d(101), size: 1, locations: [] } }));
    expect(await new LayerCache({ path }).get(d(1), RECIPE)).toBeUndefined();

    const good = new LayerCache({ path });
    await good.remember(d(1), RECIPE, d(101), 1000);
    await good.remember(d(2), RECIPE, d(102), 2000);
    await good.save();
    const text = await readFile(path, 'utf8');
    // One flipped digest digit: its check fails and only that entry goes.
    await writeFile(path, text.replace(d(101), d(105)));
    const reread = new LayerCache({ path });
    expect(await reread.get(d(1), RECIPE)).toBeUndefined();
    expect((await reread.get(d(2), RECIPE))?.digest).toBe(d(102));
  });

  it('merges saves of two caches on one file, and of one cache saving twice at once', async () => {
    const path = join(dir, 'shared.json');
    const a = new LayerCache({ path });
    const b = new LayerCache({ path });
    await Promise.all(Array.from({ length: 20 }, (_, i) => a.remember(d(i), RECIPE, d(1000 + i), i)));
    await Promise.all(Array.from({ length: 20 }, (_, i) => b.remember(d(100 + i), RECIPE, d(2000 + i), i)));
    await a.save();
    await Promise.all([b.save(), b.save(), a.save()]);
    const after = new LayerCache({ path });
    for (let i = 0; i < 20; i++) {
      expect((await after.get(d(i), RECIPE))?.digest).toBe(d(1000 + i));
      expect((await after.get(d(100 + i), RECIPE))?.digest).toBe(d(2000 + i));
    }
    // Saves that really overlap (separate instances, same moment) leave a whole file, never a torn one.
    const many = Array.from({ length: 8 }, () => new LayerCache({ path }));
    await Promise.all(many.map((c, i) => c.remember(d(500 + i), RECIPE, d(5000 + i), i).then(() => c.save())));
    const parsed = JSON.parse(await readFile(path, 'utf8')) as { version: number; entries: Record<string, unknown> };
    expect(parsed.version).toBe(1);
    expect(Object.keys(parsed.entries).length).toBeGreaterThanOrEqual(40);
  });

  it('forgets an entry the registry contradicted, also in the file', async () => {
    const path = join(dir, 'forget.json');
    const a = new LayerCache({ path });
    await a.remember(d(1), RECIPE, d(101), 1000);
    await a.save();
    const b = new LayerCache({ path });
    await b.forget(d(1), RECIPE);
    await b.save();
    expect(await new LayerCache({ path }).get(d(1), RECIPE)).toBeUndefined();
  });

  it('keeps the most recently used entries up to maxEntries', async () => {
    const path = join(dir, 'max.json');
    const c = new LayerCache({ path, maxEntries: 3 });
    for (let i = 0; i < 5; i++) await c.remember(d(i), RECIPE, d(100 + i), i);
    await c.save();
    const r = new LayerCache({ path, maxEntries: 3 });
    expect(await r.get(d(0), RECIPE)).toBeUndefined();
    expect((await r.get(d(4), RECIPE))?.digest).toBe(d(104));
  });

  it('defaults to the user cache folder', () => {
    expect(LayerCache.defaultPath({ XDG_CACHE_HOME: '/x/cache' }, 'linux')).toBe('/x/cache/astro-deploy-sdk/layer-digests.json');
    expect(LayerCache.defaultPath({}, 'linux')).toMatch(/\.cache\/astro-deploy-sdk\/layer-digests\.json$/);
    expect(LayerCache.defaultPath({}, 'darwin')).toMatch(/Library\/Caches\/astro-deploy-sdk\/layer-digests\.json$/);
  });
});
