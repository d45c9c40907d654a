/**
 * The persistent layer-digest cache in real pushes (distribution 2.8): a second push from a new
 * cache instance on the same file (what a new process sees) reads no layer and gives the cold
 * push's digests; a changed image, a damaged file and an entry the registry contradicts all end in
 * the right digests.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LayerCache, pushImage, type ImageEvent } from '../../src/image/index.js';
import { layerCacheRecipe } from '../../src/image/push-native.js';
import { uniqueName } from '../helpers/docker.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeImage, noise, writeLegacyArchive, type FixtureImage } from './fixtures.js';

let dir: string;
let registry: TestRegistry;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'astro-push-cache-'));
  registry = await startRegistry('none');
});
afterAll(async () => {
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

const text = (n: number) => Array.from({ length: n }, (_, i) => `def f${i}(x):\n    return x * ${i}\n`).join('');

const blob = noise(3_000_000);
const images = new Map<string, FixtureImage>();
/** The same image for the same variant: a text layer, a random one, and one naming the variant. */
function image(variant: string): FixtureImage {
  let img = images.get(variant);
  if (!img) {
    img = makeImage({ layers: [{ 'usr/lib/app.py': text(20_000) }, { 'data/blob.bin': blob }, { 'etc/variant': variant }] });
    images.set(variant, img);
  }
  return img;
}

async function archiveOf(img: FixtureImage): Promise<string> {
  const path = join(dir, `${uniqueName('a')}.tar`);
  await writeLegacyArchive(path, img, 'astro-test/cache:v1');
  return path;
}

/** Push with `layerCache`, counting layer reads (a layer prepared not from the cache was read and gzipped). */
async function push(archive: string, repo: string, layerCache: LayerCache | false) {
  const events: ImageEvent[] = [];
  const result = await pushImage(archive, { repository: `${registry.host}/${repo}`, tag: 'v1' }, { layerCache, onEvent: (e) => events.push(e) });
  const read = events.filter((e) => e.type === 'image:layer-prepared' && !e.fromCache).length;
  return { result, read };
}

describe('persistent layer cache', () => {
  it('a new process reads no layer, and pushes the digests of the cold push', async () => {
    const path = join(dir, uniqueName('c'), 'layers.json');
    const archive = await archiveOf(image('one'));
    const repo = `team/${uniqueName('w')}`;
    const cold = await push(archive, repo, new LayerCache({ path }));
    expect(cold.read).toBe(3);
    const warm = await push(archive, repo, new LayerCache({ path }));
    expect(warm.read).toBe(0);
    expect(warm.result.digest).toBe(cold.result.digest);
    expect(warm.result.layers).toEqual(cold.result.layers.map((l) => ({ ...l, status: 'skipped' })));
    // The same bytes saved again (a new file, new mtime): still every layer from the cache.
    const resaved = await archiveOf(image('one'));
    const again = await push(resaved, repo, new LayerCache({ path }));
    expect(again.read).toBe(0);
    expect(again.result.digest).toBe(cold.result.digest);
  });

  it('a changed image misses for the changed layer only and gets the digests of a push without cache', async () => {
    const path = join(dir, uniqueName('c'), 'layers.json');
    const repo = `team/${uniqueName('m')}`;
    await push(await archiveOf(image('one')), repo, new LayerCache({ path }));
    const changed = await archiveOf(image('two'));
    const cached = await push(changed, repo, new LayerCache({ path }));
    const plain = await push(changed, `team/${uniqueName('p')}`, false);
    expect(cached.read).toBe(1);
    expect(cached.result.digest).toBe(plain.result.digest);
    expect(cached.result.layers.map((l) => l.digest)).toEqual(plain.result.layers.map((l) => l.digest));
  });

  it('a damaged cache file is ignored: the push reads every layer and succeeds', async () => {
    const path = join(dir, uniqueName('c'), 'layers.json');
    const archive = await archiveOf(image('three'));
    const repo = `team/${uniqueName('d')}`;
    const cold = await push(archive, repo, new LayerCache({ path }));
    await writeFile(path, (await readFile(path, 'utf8')).slice(0, 100));
    const after = await push(archive, `team/${uniqueName('d')}`, new LayerCache({ path }));
    expect(after.read).toBe(3);
    expect(after.result.digest).toBe(cold.result.digest);
  });

  it('an entry whose size the registry contradicts is dropped, and the layer pushed right', async () => {
    const archive = await archiveOf(image('four'));
    const repo = `team/${uniqueName('s')}`;
    const cache = new LayerCache();
    const cold = await push(archive, repo, cache);
    // Damage the entries in memory as a bad file could have: right digests, wrong sizes.
    const recipe = layerCacheRecipe({});
    const img = image('four');
    for (const [i, diffId] of img.diffIds.entries()) await cache.remember(diffId, recipe, cold.result.layers[i]!.digest, cold.result.layers[i]!.size + 1);
    const after = await push(archive, repo, cache);
    expect(after.read).toBe(3);
    expect(after.result.digest).toBe(cold.result.digest);
    expect((await cache.get(img.diffIds[0]!, recipe))?.size).toBe(cold.result.layers[0]!.size);
  });

  it('two pushes writing one cache file at once both succeed and leave it readable', async () => {
    const path = join(dir, uniqueName('c'), 'layers.json');
    const [a, b] = await Promise.all([archiveOf(image('five')), archiveOf(image('six'))]);
    const [ra, rb] = await Promise.all([push(a, `team/${uniqueName('x')}`, new LayerCache({ path })), push(b, `team/${uniqueName('y')}`, new LayerCache({ path }))]);
    expect(ra.read + rb.read).toBe(6);
    const parsed = JSON.parse(await readFile(path, 'utf8')) as { entries: Record<string, unknown> };
    expect(Object.keys(parsed.entries).length).toBeGreaterThanOrEqual(3);
  });
});
