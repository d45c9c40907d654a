/**
 * A native push of a daemon image whose lower layers the registry already holds (distribution
 * 2.8, real dockerd): the layers the cache names and a HEAD confirms are drained from the export
 * unread (not gzipped, not written), only the new layer's bytes are sent, and the manifest is the
 * one a push without any cache gives. A cache entry the registry contradicts is not trusted: that
 * layer is read, gzipped and pushed as before.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { LayerCache, pushImage, type ImageEvent } from '../../src/image/index.js';
import { LayerScheduler } from '../../src/image/push-schedule.js';
import { layerCacheRecipe } from '../../src/image/push-native.js';
import { SpooledArchive } from '../../src/image/spool.js';
import { getTestDocker, loadArchive, removeImages, uniqueName } from '../helpers/docker.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeImage, noise, writeLegacyArchive, type FixtureImage } from './fixtures.js';

let dir: string;
let registry: TestRegistry;
const tags: string[] = [];
const recipe = layerCacheRecipe({});

const text = (n: number) => Array.from({ length: n }, (_, i) => `def f${i}(x):\n    return x * ${i}\n`).join('');
const base = noise(3_000_000);
const lib = text(20_000);
/** Two images sharing their two lower layers; the top layer differs. */
let one: FixtureImage;
let two: FixtureImage;
let tagOne: string;
let tagTwo: string;

beforeAll(async () => {
  await getTestDocker();
  dir = await mkdtemp(join(tmpdir(), 'astro-push-skip-'));
  registry = await startRegistry('none');
  one = makeImage({ layers: [{ 'data/base.bin': base }, { 'usr/lib/app.py': lib }, { 'dags/dag.py': 'one\n' }] });
  two = makeImage({ layers: [{ 'data/base.bin': base }, { 'usr/lib/app.py': lib }, { 'dags/dag.py': 'two\n' }] });
  expect(two.diffIds.slice(0, 2)).toEqual(one.diffIds.slice(0, 2));
  const name = uniqueName('skip');
  tagOne = `astro-test/${name}:one`;
  tagTwo = `astro-test/${name}:two`;
  tags.push(tagOne, tagTwo);
  for (const [img, tag] of [[one, tagOne], [two, tagTwo]] as const) {
    const path = join(dir, `${tag.split(':')[1]}.tar`);
    await writeLegacyArchive(path, img, tag);
    await loadArchive(path);
  }
});
afterEach(() => {
  vi.restoreAllMocks();
});
afterAll(async () => {
  await removeImages(...tags);
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Push a daemon image natively, noting how many export bytes the spool drained unread. */
async function push(tag: string, repo: string, layerCache: LayerCache | false) {
  const spool = vi.spyOn(SpooledArchive.prototype, 'spool');
  // Layers uploaded while the spool gzips them (recognised before their bytes).
  const growing = vi.spyOn(LayerScheduler.prototype as unknown as { pushGrowing: () => Promise<unknown> }, 'pushGrowing');
  const events: ImageEvent[] = [];
  const result = await pushImage(tag, { repository: `${registry.host}/${repo}`, tag: 'v1' }, { method: 'native', layerCache, onEvent: (e) => events.push(e) });
  const spooled = spool.mock.contexts as SpooledArchive[];
  const drained = spooled.reduce((n, s) => n + s.skippedBytes, 0);
  const streamed = growing.mock.calls.length;
  spool.mockRestore();
  growing.mockRestore();
  // Request bodies sent to the registry: layers, config and manifest, re-sends included.
  const sent = result.bytesSent;
  return { result, drained, exported: spooled.length, sent, events, streamed };
}

describe('daemon push with the registry holding the lower layers', () => {
  it('drains the held layers from the export unread, sends only the new layer, and pushes the manifest of a full push', async () => {
    const repo = `team/${uniqueName('d')}`;
    const cache = new LayerCache();
    const cold = await push(tagOne, repo, cache);
    expect(cold.drained).toBe(0);
    expect(cold.result.layers.map((l) => l.status)).toEqual(['pushed', 'pushed', 'pushed']);
    expect(cold.sent).toBeGreaterThan(3_000_000);
    // The base layer (the one over the spool's 1 MiB in-memory limit) was recognised before its
    // bytes (dockerd < 25: from its v1 json) and uploaded while gzipped.
    expect(cold.streamed).toBe(1);

    const warm = await push(tagTwo, repo, cache);
    expect(warm.exported).toBe(1);
    // The two lower layers were recognised (Docker < 25: by their v1 ID; 25+: by name) and never read.
    expect(warm.drained).toBe(two.layers[0]!.length + two.layers[1]!.length);
    expect(warm.result.layers.map((l) => l.status)).toEqual(['skipped', 'skipped', 'pushed']);
    expect(warm.sent).toBeLessThan(10_000);
    expect(warm.events.filter((e) => e.type === 'image:layer-prepared' && !e.fromCache)).toHaveLength(1);

    // The same image pushed with no cache at all, to a fresh repository: the same manifest.
    const full = await push(tagTwo, `team/${uniqueName('f')}`, false);
    expect(full.drained).toBe(0);
    expect(warm.result.digest).toBe(full.result.digest);
    expect(warm.result.layers.map((l) => [l.digest, l.size])).toEqual(full.result.layers.map((l) => [l.digest, l.size]));
  });

  it('does not drain a layer whose cache entry the registry contradicts: it is read, gzipped and pushed', async () => {
    const repo = `team/${uniqueName('c')}`;
    const cache = new LayerCache();
    const cold = await push(tagOne, repo, cache);
    // The base layer's entry names a blob the registry does not have (HEAD 404, nothing to mount);
    // the second layer's entry has the right digest but the wrong size (dropped by the settle).
    await cache.remember(one.diffIds[0]!, recipe, `sha256:${'0'.repeat(64)}`, cold.result.layers[0]!.size);
    await cache.remember(one.diffIds[1]!, recipe, cold.result.layers[1]!.digest, cold.result.layers[1]!.size + 1);

    const warm = await push(tagTwo, repo, cache);
    expect(warm.drained).toBe(0);
    // Every layer was read and gzipped (none prepared from the cache), as with no cache.
    const read = warm.events.filter((e) => e.type === 'image:layer-prepared' && !e.fromCache);
    expect(read).toHaveLength(3);
    const full = await push(tagTwo, `team/${uniqueName('f')}`, false);
    expect(warm.result.digest).toBe(full.result.digest);
    // The entries were corrected by what the push learnt.
    expect((await cache.get(one.diffIds[0]!, recipe))?.digest).toBe(cold.result.layers[0]!.digest);
    expect((await cache.get(one.diffIds[1]!, recipe))?.size).toBe(cold.result.layers[1]!.size);
  });
});
