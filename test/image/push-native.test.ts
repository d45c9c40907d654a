/**
 * Native push against a real registry (distribution 2.8) and a real Docker engine: daemon images
 * and archives, verified by skopeo and by pulling the image back into the engine and running it.
 */
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAstroError } from '../../src/core/errors.js';
import { LayerCache, pushImage, RUNTIME_VERSION_LABEL, type ImageEvent } from '../../src/image/index.js';
import { buildScratchImage, getTestDocker, removeImages, staticBusybox, uniqueName } from '../helpers/docker.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeImage, noise, sha256, writeLegacyArchive, writeOciArchive } from './fixtures.js';
import { pullIntoEngine, runInEngine, skopeoInfo, skopeoInspect } from './verify.js';

let dir: string;
let registry: TestRegistry;
let busybox: Buffer;
const cleanup: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'astro-push-test-'));
  await getTestDocker();
  registry = await startRegistry('none');
  busybox = await readFile(await staticBusybox());
});

afterAll(async () => {
  await removeImages(...cleanup);
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** An image archive (never loaded into the daemon) that can run: busybox plus a marker file. */
function runnableImage(marker: string, extraBytes = 0) {
  return makeImage({
    labels: { [RUNTIME_VERSION_LABEL]: '3.1-5' },
    layers: [
      { 'bin/busybox': { content: busybox, mode: 0o755 } },
      { 'etc/marker.txt': marker, ...(extraBytes ? { 'data/blob.bin': noise(extraBytes) } : {}) },
    ],
  });
}

describe('native push to a registry without auth', () => {
  it('pushes a daemon image, skips everything on a second push without exporting, and the image runs after a pull', async () => {
    const repo = `${registry.host}/team/${uniqueName('d')}`;
    const local = `astro-test/${uniqueName()}:src`;
    cleanup.push(local, `${repo}:v1`);
    const blob = noise(1_500_000);
    await buildScratchImage({
      tag: local,
      busybox: true,
      layers: [{ 'etc/marker.txt': 'from-daemon\n' }, { 'data/blob.bin': blob }],
      labels: { [RUNTIME_VERSION_LABEL]: '3.1-5' },
    });
    const cache = new LayerCache();
    const events: ImageEvent[] = [];
    // Small gzip blocks: the big layer becomes a multi-member gzip, which the engine must read back.
    const gzipBlockBytes = 256 * 1024;
    const first = await pushImage(local, { repository: repo, tag: 'v1' }, { layerCache: cache, gzipBlockBytes, chunkSizeBytes: 512 * 1024, onEvent: (e) => events.push(e) });
    expect(first.method).toBe('native');
    expect(first.layers).toHaveLength(3);
    expect(first.layers.every((l) => l.status === 'pushed')).toBe(true);
    // The big layer went up in several chunks.
    const progress = events.filter((e) => e.type === 'image:layer-progress' && e.size > 1_000_000);
    expect(progress.length).toBeGreaterThanOrEqual(3);
    expect(first.bytesSent).toBeGreaterThan(1_500_000);

    const info = await skopeoInfo(`${repo}:v1`);
    expect(info.Digest).toBe(first.digest);
    expect(info.Architecture).toBe('amd64');
    expect(info.Labels?.[RUNTIME_VERSION_LABEL]).toBe('3.1-5');
    expect(info.Layers).toEqual(first.layers.map((l) => l.digest));
    expect(sha256(await skopeoInspect(`${repo}:v1`, undefined, true))).toBe(first.digest);

    const events2: ImageEvent[] = [];
    const second = await pushImage(local, { repository: repo, tag: 'v2' }, { layerCache: cache, gzipBlockBytes, onEvent: (e) => events2.push(e) });
    expect(second.digest).toBe(first.digest);
    expect(second.layers.map((l) => l.status)).toEqual(['skipped', 'skipped', 'skipped']);
    expect(second.bytesSent).toBeLessThan(4096);
    expect(events2.filter((e) => e.type === 'image:layer-prepared').every((e) => e.type === 'image:layer-prepared' && e.fromCache)).toBe(true);

    // Remove the source so the pull really downloads every layer, then run the image.
    await removeImages(local);
    await pullIntoEngine(`${repo}:v1`);
    expect(await runInEngine(`${repo}:v1`, ['/bin/busybox', 'cat', '/etc/marker.txt'])).toBe('from-daemon\n');
    const sum = await runInEngine(`${repo}:v1`, ['/bin/busybox', 'sha256sum', '/data/blob.bin']);
    expect(`sha256:${sum.split(' ')[0]}`).toBe(sha256(blob));
  });

  it('pushes a legacy docker save archive (gzipped archive too) and an OCI archive with compressed layers', async () => {
    const image = runnableImage('from-legacy-archive\n');
    const legacy = join(dir, 'legacy.tar');
    const legacyGz = join(dir, 'legacy.tar.gz');
    await writeLegacyArchive(legacy, image, 'x/legacy:1');
    await writeLegacyArchive(legacyGz, image, 'x/legacy:1', { gzip: true });
    const repo = `${registry.host}/team/${uniqueName('a')}`;
    cleanup.push(`${repo}:legacy`);
    const r1 = await pushImage(legacy, { repository: repo, tag: 'legacy' }, { layerCache: false });
    const r2 = await pushImage(legacyGz, { repository: repo, tag: 'legacy-gz' }, { layerCache: false });
    expect(r2.digest).toBe(r1.digest); // deterministic gzip: same bytes, same digests
    expect(r2.layers.every((l) => l.status === 'skipped')).toBe(true);
    await pullIntoEngine(`${repo}:legacy`);
    expect(await runInEngine(`${repo}:legacy`, ['/bin/busybox', 'cat', '/etc/marker.txt'])).toBe('from-legacy-archive\n');

    const ociImage = runnableImage('from-oci-archive\n');
    const oci = join(dir, 'oci.tar');
    await writeOciArchive(oci, [ociImage], { compressLayers: true, withDockerManifest: true, refName: 'x/oci:1' });
    const repo2 = `${registry.host}/team/${uniqueName('o')}`;
    cleanup.push(`${repo2}:oci`);
    const r3 = await pushImage(oci, { repository: repo2, tag: 'oci' }, { manifestFormat: 'oci', layerCache: false });
    expect(r3.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    // Already-compressed layers are pushed as they are: same digests as in the archive.
    const manifest = JSON.parse(await skopeoInspect(`${repo2}:oci`, undefined, true)) as { layers: Array<{ digest: string; mediaType: string }> };
    expect(manifest.layers.map((l) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.oci.image.layer.v1.tar+gzip']);
    expect(r3.layers.map((l) => l.digest)).toEqual(manifest.layers.map((l) => l.digest));
    await pullIntoEngine(`${repo2}:oci`);
    expect(await runInEngine(`${repo2}:oci`, ['/bin/busybox', 'cat', '/etc/marker.txt'])).toBe('from-oci-archive\n');
  });

  it('mounts blobs from another repository, explicitly and from what the layer cache remembers', async () => {
    const image = makeImage({ labels: { [RUNTIME_VERSION_LABEL]: '3.1-5' }, layers: [{ 'a.bin': noise(300_000) }, { 'b.txt': 'b' }] });
    const archive = join(dir, 'mount.tar');
    await writeLegacyArchive(archive, image, 'x/mount:1');
    const from = `team/${uniqueName('src')}`;
    const cache = new LayerCache();
    await pushImage(archive, { repository: `${registry.host}/${from}`, tag: 'v1' }, { layerCache: cache });

    const explicit = await pushImage(archive, { repository: `${registry.host}/team/${uniqueName('m')}`, tag: 'v1' }, { layerCache: false, mountFrom: [from] });
    expect(explicit.layers.map((l) => l.status)).toEqual(['mounted', 'mounted']);

    const events: ImageEvent[] = [];
    const remembered = await pushImage(archive, { repository: `${registry.host}/team/${uniqueName('c')}`, tag: 'v1' }, { layerCache: cache, onEvent: (e) => events.push(e) });
    expect(remembered.layers.map((l) => l.status)).toEqual(['mounted', 'mounted']);
    expect(remembered.bytesSent).toBeLessThan(4096);
    // Mounted from the cache: the layers were not even gzipped again.
    expect(events.some((e) => e.type === 'image:layer-prepared' && !e.fromCache)).toBe(false);
  });

  it('reports bad targets, missing images and an unreachable registry with typed errors', async () => {
    const image = makeImage({ labels: { [RUNTIME_VERSION_LABEL]: '3.1-5' }, layers: [{ 'a.txt': 'a' }] });
    const archive = join(dir, 'small.tar');
    await writeLegacyArchive(archive, image, 'x/small:1');
    const codeOf = (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => (isAstroError(e) ? e.code : String(e)));
    expect(await codeOf(pushImage(archive, { repository: 'no-host-here', tag: 'v1' }))).toBe('ASTRO_IMAGE_PUSH_FAILED');
    expect(await codeOf(pushImage(archive, { repository: `${registry.host}/team/x`, tag: 'bad tag' }))).toBe('ASTRO_IMAGE_PUSH_FAILED');
    expect(await codeOf(pushImage(`astro-test/${uniqueName()}:absent`, { repository: `${registry.host}/team/x`, tag: 'v1' }))).toBe('ASTRO_IMAGE_NOT_FOUND');
    // A closed port: connection refused, retried briefly, then a retryable typed error.
    const { freePort } = await import('../helpers/registry.js');
    const port = await freePort();
    const err = await pushImage(archive, { repository: `127.0.0.1:${port}/team/x`, tag: 'v1' }, { retry: { initialDelayMs: 10, maxDelayMs: 20 } }).catch((e: unknown) => e);
    expect(isAstroError(err) && err.code).toBe('ASTRO_IMAGE_REGISTRY_UNAVAILABLE');
    expect(isAstroError(err) && err.retryable).toBe(true);
  });

  it('aborts when the signal fires, leaving no temp files behind', async () => {
    const image = makeImage({ labels: { [RUNTIME_VERSION_LABEL]: '3.1-5' }, layers: [{ 'a.bin': noise(4_000_000) }] });
    const archive = join(dir, 'abort.tar');
    await writeLegacyArchive(archive, image, 'x/abort:1');
    const tempDir = await mkdtemp(join(tmpdir(), 'astro-abort-temp-'));
    const controller = new AbortController();
    const p = pushImage(archive, { repository: `${registry.host}/team/${uniqueName('ab')}`, tag: 'v1' }, {
      layerCache: false,
      tempDir,
      chunkSizeBytes: 256 * 1024,
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'image:layer-progress') controller.abort(new Error('stop'));
      },
    });
    const err = await p.catch((e: unknown) => e);
    expect(isAstroError(err) && err.code).toBe('ASTRO_ABORTED');
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(tempDir)).toEqual([]);
    await rm(tempDir, { recursive: true, force: true });
  });
});
