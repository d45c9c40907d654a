/**
 * Pushes from a Docker daemon with the containerd image store (Docker Desktop's default, and Docker
 * Engine 29's for new installs), where an image's ID is its manifest's digest and not its config's,
 * the daemon's push reports its digest without an `aux` line, and an export holds the layers
 * compressed. Runs only in the `containerd-store` project (vitest.config.ts), on the daemon
 * scripts/start-dockerd.sh starts with that store, against a real registry.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectImage, LayerCache, MediaTypes, pushImage, RUNTIME_VERSION_LABEL, type ImageEvent } from '../../src/image/index.js';
import { getTestDocker, loadArchive, removeImages, staticBusybox, testDockerStore, uniqueName } from '../helpers/docker.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeImage, noise, sha256, writeLegacyArchive, type FixtureImage } from './fixtures.js';
import { pullIntoEngine, runInEngine, skopeoInspect } from './verify.js';

let dir: string;
let registry: TestRegistry;
let image: FixtureImage;
let local: string;
let imageId: string;
const cleanup: string[] = [];

beforeAll(async () => {
  expect(testDockerStore()).toBe('containerd');
  const { docker } = await getTestDocker();
  const info = (await docker.info()) as { DriverStatus?: string[][] | null };
  expect(info.DriverStatus).toContainEqual(['driver-type', 'io.containerd.snapshotter.v1']);
  dir = await mkdtemp(join(tmpdir(), 'astro-containerd-test-'));
  registry = await startRegistry('none');
  const busybox = await readFile(await staticBusybox());
  image = makeImage({
    labels: { [RUNTIME_VERSION_LABEL]: '3.1-5' },
    layers: [{ 'bin/busybox': { content: busybox, mode: 0o755 } }, { 'etc/marker.txt': 'from-containerd\n', 'data/blob.bin': noise(1_200_000) }],
  });
  local = `astro-test/${uniqueName()}:ctrd`;
  cleanup.push(local);
  const archive = join(dir, 'image.tar');
  await writeLegacyArchive(archive, image, local);
  await loadArchive(archive);
  imageId = (await docker.getImage(local).inspect()).Id;
});

afterAll(async () => {
  await removeImages(...cleanup);
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** The config digest of the manifest under `ref` in the registry. */
async function configOf(ref: string): Promise<string> {
  return (JSON.parse(await skopeoInspect(ref, undefined, true)) as { config: { digest: string } }).config.digest;
}

describe('pushes from a daemon with the containerd image store', () => {
  it('the image ID is not the config digest there, and inspection still reads the image', async () => {
    expect(imageId).not.toBe(image.configDigest);
    const info = await inspectImage(local);
    expect(info.configDigest).toBe(imageId);
    expect(info.diffIds).toEqual(image.diffIds);
    expect(info.runtimeVersion).toBe('3.1-5');
  });

  it('native: the export is taken for the image it names, and the next push sends only a manifest, without an export', async () => {
    const repo = `${registry.host}/team/${uniqueName('n')}`;
    cleanup.push(`${repo}:v1`);
    const cache = new LayerCache();
    const first = await pushImage(local, { repository: repo, tag: 'v1' }, { method: 'native', layerCache: cache });
    expect(first.method).toBe('native');
    expect(first.layers.map((l) => l.status)).toEqual(['pushed', 'pushed']);
    expect(await configOf(`${repo}:v1`)).toBe(image.configDigest);

    const events: ImageEvent[] = [];
    const second = await pushImage(local, { repository: repo, tag: 'v2' }, { method: 'native', layerCache: cache, onEvent: (e) => events.push(e) });
    expect(second.digest).toBe(first.digest);
    expect(second.layers.map((l) => l.status)).toEqual(['skipped', 'skipped']);
    expect(second.bytesSent).toBeLessThan(4096);
    expect(events.filter((e) => e.type === 'image:layer-prepared').every((e) => e.type === 'image:layer-prepared' && e.fromCache)).toBe(true);

    // The pushed image is whole: pulled into the daemon from the registry alone, it runs.
    await removeImages(`${repo}:v1`);
    await pullIntoEngine(`${repo}:v1`);
    expect(await runInEngine(`${repo}:v1`, ['/bin/busybox', 'cat', '/etc/marker.txt'])).toBe('from-containerd\n');
  });

  it("auto: the daemon pushes the manifest it holds (its digest is the image ID), the check accepts it, and the next push is only a manifest", async () => {
    const repo = `${registry.host}/team/${uniqueName('a')}`;
    const cache = new LayerCache();
    const events: ImageEvent[] = [];
    const first = await pushImage(local, { repository: repo, tag: 'v1' }, { method: 'auto', layerCache: cache, onEvent: (e) => events.push(e) });
    expect(first.method).toBe('daemon');
    expect(first.fallback).toBeUndefined();
    // No `aux` line from this store: the digest comes from the push's status line.
    expect(first.digest).toBe(imageId);
    expect(first.mediaType).toBe(MediaTypes.dockerManifest); // read back: a loaded `docker save` archive keeps a Docker manifest
    expect(events.some((e) => e.type === 'image:daemon-progress' && /: digest: sha256:/.test(e.status))).toBe(true);
    expect(await configOf(`${repo}:v1`)).toBe(image.configDigest);

    const second = await pushImage(local, { repository: repo, tag: 'v2' }, { method: 'auto', layerCache: cache });
    expect(second.method).toBe('native');
    expect(second.layers.map((l) => l.status)).toEqual(['skipped', 'skipped']);
    expect(second.bytesSent).toBeLessThan(4096);
    expect(await configOf(`${repo}:v2`)).toBe(image.configDigest);
  });

  it('daemon: the digest comes from the status line', async () => {
    const repo = `${registry.host}/team/${uniqueName('d')}`;
    const result = await pushImage(local, { repository: repo, tag: 'v1' }, { method: 'daemon' });
    expect(result.digest).toBe(imageId);
    expect(sha256(await skopeoInspect(`${repo}:v1`, undefined, true))).toBe(imageId);
  });
});
