/**
 * Push method `auto` against a real registry and the test daemon: which push it picks for what
 * the registry holds, the check and memory of a daemon push, and the native push taking over on a
 * link where the daemon's push fails.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAstroError } from '../../src/core/errors.js';
import { LayerCache } from '../../src/image/layer-cache.js';
import { DAEMON_RECIPE, verifyDaemonManifest } from '../../src/image/push-auto.js';
import { registryRetryPolicy } from '../../src/image/blob-upload.js';
import { RegistryClient } from '../../src/image/registry-client.js';
import { layerCacheRecipe } from '../../src/image/push-native.js';
import { pushImage, RUNTIME_VERSION_LABEL, type ImageEvent, type PushImageOptions } from '../../src/image/index.js';
import { createFaultProxy } from '../../src/testing/fault-proxy.js';
import { buildScratchImage, dockerCli, getTestDocker, removeImages, uniqueName } from '../helpers/docker.js';
import { registryRouteOf, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { noise } from './fixtures.js';
import { skopeoInspect } from './verify.js';

const run = promisify(execFile);
let registry: TestRegistry;
let base: string;
let baseId: string;
let derived: string;
let derivedId: string;
const cleanup: string[] = [];

/** An image FROM `from` with one more layer (so it shares `from`'s layers, diff IDs and all). */
async function buildOnTop(from: string, tag: string, content: string): Promise<string> {
  const { host } = await getTestDocker();
  const ctx = await mkdtemp(join(tmpdir(), 'astro-auto-ctx-'));
  try {
    await writeFile(join(ctx, 'Dockerfile'), `FROM ${from}\nCOPY top.txt /top.txt\n`);
    await writeFile(join(ctx, 'top.txt'), content);
    const { stdout } = await run('docker', ['-H', host, 'build', '-q', '-t', tag, ctx], { env: { ...process.env, DOCKER_BUILDKIT: '0' }, timeout: 120_000 });
    return stdout.trim();
  } finally {
    await rm(ctx, { recursive: true, force: true });
  }
}

const configOf = async (ref: string) => (JSON.parse(await skopeoInspect(ref, undefined, true)) as { config: { digest: string } }).config.digest;
const methods = (events: ImageEvent[]) => events.flatMap((e) => (e.type === 'image:push-method' ? [e] : []));
const diffIdsOf = async (name: string) => ((await (await getTestDocker()).docker.getImage(name).inspect()).RootFS?.Layers ?? []) as string[];

beforeAll(async () => {
  await getTestDocker();
  registry = await startRegistry('none');
  base = `astro-test/${uniqueName()}:auto-base`;
  derived = `astro-test/${uniqueName()}:auto-top`;
  cleanup.push(base, derived);
  // The base layer is incompressible and over 1 MiB gzipped: the size that decides between pushes.
  baseId = await buildScratchImage({ tag: base, layers: [{ 'data/base.bin': noise(1_500_000) }, { 'etc/a.txt': 'a\n' }], labels: { [RUNTIME_VERSION_LABEL]: '3.1-5' } });
  derivedId = await buildOnTop(base, derived, `top ${uniqueName()}\n`);
});

afterAll(async () => {
  await removeImages(...cleanup);
  await registry?.stop();
});

describe("push method 'auto'", () => {
  it('pushes through the daemon into an empty registry, checks and remembers what it pushed, sends only a manifest for an image the registry holds, and only the new layer of a changed image', async () => {
    const repository = `${registry.host}/team/${uniqueName()}`;
    const layerCache = new LayerCache();
    const events: ImageEvent[] = [];
    const first = await pushImage(base, { repository, tag: 'v1' }, { method: 'auto', layerCache, onEvent: (e) => events.push(e) });
    expect(first.method).toBe('daemon');
    expect(first.fallback).toBeUndefined();
    expect(methods(events)).toEqual([expect.objectContaining({ method: 'daemon' })]);
    expect(await configOf(`${repository}:v1`)).toBe(baseId);
    // What the daemon pushed is remembered under its own recipe, one entry per layer.
    for (const diffId of await diffIdsOf(base)) expect(await layerCache.get(diffId, DAEMON_RECIPE)).toMatchObject({ digest: expect.stringMatching(/^sha256:/) });

    // The same image again: every layer and the config are there, so only the manifest goes up.
    events.length = 0;
    const again = await pushImage(base, { repository, tag: 'v2' }, { method: 'auto', layerCache, onEvent: (e) => events.push(e) });
    expect(again.method).toBe('native');
    expect(methods(events)[0]?.reason).toMatch(/every layer and the config/);
    expect(again.layers.every((l) => l.status === 'skipped')).toBe(true);
    expect(events.some((e) => e.type === 'image:layer-pushed')).toBe(false);
    expect(await configOf(`${repository}:v2`)).toBe(baseId);
    // The daemon's own gzip of each layer, as the daemon pushed them.
    expect(again.layers.map((l) => l.digest).sort()).toEqual(
      (await Promise.all((await diffIdsOf(base)).map(async (d) => (await layerCache.get(d, DAEMON_RECIPE))!.digest))).sort(),
    );

    // A new layer on top: the daemon sends it alone.
    events.length = 0;
    const top = await pushImage(derived, { repository, tag: 'v3' }, { method: 'auto', layerCache, onEvent: (e) => events.push(e) });
    expect(top.method).toBe('daemon');
    expect(top.layers.filter((l) => l.status === 'pushed')).toHaveLength(1);
    expect(await configOf(`${repository}:v3`)).toBe(derivedId);
  });

  it('uses the native push when the registry holds the layers as the native push gzipped them (the daemon would send them again)', async () => {
    const repository = `${registry.host}/team/${uniqueName()}`;
    const layerCache = new LayerCache();
    await pushImage(base, { repository, tag: 'v1' }, { method: 'native', layerCache });
    const events: ImageEvent[] = [];
    const top = await pushImage(derived, { repository, tag: 'v2' }, { method: 'auto', layerCache, onEvent: (e) => events.push(e) });
    expect(top.method).toBe('native');
    expect(methods(events)[0]?.reason).toMatch(/native push's gzip/);
    expect(top.layers.filter((l) => l.status === 'skipped')).toHaveLength(2);
    expect(await configOf(`${repository}:v2`)).toBe(derivedId);
  });

  it('on an empty layer cache (an ephemeral runner), skips the layers the seed tag\'s image shares: native push, only the new layer sent, nothing remembered of the seed', async () => {
    const repository = `${registry.host}/team/${uniqueName()}`;
    // What the deployment runs, pushed from another machine (its cache is not this one's).
    await pushImage(base, { repository, tag: 'running' }, { method: 'native', layerCache: new LayerCache() });
    const layerCache = new LayerCache();
    const events: ImageEvent[] = [];
    const top = await pushImage(derived, { repository, tag: 'v2' }, { method: 'auto', layerCache, seedTag: 'running', onEvent: (e) => events.push(e) });
    expect(top.method).toBe('native');
    expect(methods(events)[0]?.reason).toMatch(/current image names them \(2 layers\)/);
    expect(top.layers.map((l) => l.status)).toEqual(['skipped', 'skipped', 'pushed']);
    expect(await configOf(`${repository}:v2`)).toBe(derivedId);
    // The seed's blobs are in neither push's gzip: the cache learns only the layer it gzipped.
    const [b0, b1, mine] = await diffIdsOf(derived);
    const recipe = layerCacheRecipe({});
    for (const diffId of [b0!, b1!]) {
      expect(await layerCache.get(diffId, recipe)).toBeUndefined();
      expect(await layerCache.get(diffId, DAEMON_RECIPE)).toBeUndefined();
    }
    expect(await layerCache.get(mine!, recipe)).toMatchObject({ digest: expect.stringMatching(/^sha256:/) });

    // A seed tag that is not there changes nothing: the daemon pushes into a fresh repository.
    const other = `${registry.host}/team/${uniqueName()}`;
    const plain = await pushImage(derived, { repository: other, tag: 'v1' }, { method: 'auto', layerCache: new LayerCache(), seedTag: 'missing' });
    expect(plain.method).toBe('daemon');
  });

  it("the native method skips the layers an 'auto' push left in the registry as the daemon gzipped them", async () => {
    const repository = `${registry.host}/team/${uniqueName()}`;
    const layerCache = new LayerCache();
    expect((await pushImage(base, { repository, tag: 'v1' }, { method: 'auto', layerCache })).method).toBe('daemon');
    const top = await pushImage(derived, { repository, tag: 'v2' }, { method: 'native', layerCache });
    expect(top.layers.map((l) => l.status)).toEqual(['skipped', 'skipped', 'pushed']);
    expect(await configOf(`${repository}:v2`)).toBe(derivedId);

    // An archive goes to the native push with 'auto', and skips them the same way.
    const dir = await mkdtemp(join(tmpdir(), 'astro-auto-save-'));
    try {
      const archive = join(dir, 'top.tar');
      await dockerCli(['save', '-o', archive, derived]);
      const fromArchive = await pushImage(archive, { repository, tag: 'v3' }, { method: 'auto', layerCache });
      expect(fromArchive.method).toBe('native');
      expect(fromArchive.layers.map((l) => l.status)).toEqual(['skipped', 'skipped', 'skipped']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('hands over to the native push on a slow link answering 408, where the daemon push fails, and the image is complete', async () => {
    // 1.6 MB/s and a 408 to any request running over 250 ms: the daemon sends the 1.5 MB layer in
    // one request and is cut; the native push's chunks shrink until they fit.
    const proxy = await createFaultProxy({ target: registry.url, route: registryRouteOf, timeoutPolicy: { respond408AfterMs: 250 }, throttleBytesPerSecond: 1_600_000 });
    try {
      const path = `team/${uniqueName()}`;
      const options: PushImageOptions = {
        method: 'auto',
        layerCache: new LayerCache(),
        chunkSizeBytes: 512 * 1024,
        minChunkSizeBytes: 64 * 1024,
        retry: { initialDelayMs: 20, maxDelayMs: 100, maxRetries: 8 },
      };
      const events: ImageEvent[] = [];
      const started = Date.now();
      const result = await pushImage(base, { repository: `${new URL(proxy.url).host}/${path}`, tag: 'v1' }, { ...options, onEvent: (e) => events.push(e) });
      expect(result.method).toBe('native');
      expect(result.fallback).toMatchObject({ from: 'daemon', code: expect.stringMatching(/^ASTRO_/) });
      expect(methods(events).map((e) => [e.method, e.fallbackFrom])).toEqual([
        ['daemon', undefined],
        ['native', 'daemon'],
      ]);
      expect(await configOf(`${registry.host}/${path}:v1`)).toBe(baseId);
      // The daemon's own retries (5 s, 10 s, ...) are not waited for.
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      await proxy.close();
    }
  });

  it("stops the daemon push at its first retry (a reset mid-upload) and lets the native push finish, without waiting out the daemon's backoff", async () => {
    const proxy = await createFaultProxy({ target: registry.url, route: registryRouteOf });
    try {
      proxy.faults.add({ route: 'registry.patch', nth: 1, action: { kind: 'reset', afterBodyBytes: 100_000 } });
      const path = `team/${uniqueName()}`;
      const events: ImageEvent[] = [];
      const started = Date.now();
      const result = await pushImage(base, { repository: `${new URL(proxy.url).host}/${path}`, tag: 'v1' }, { method: 'auto', layerCache: new LayerCache(), onEvent: (e) => events.push(e) });
      expect(result.method).toBe('native');
      expect(result.fallback?.reason).toMatch(/retrying \(Retrying in \d+ seconds?\)/);
      expect(events.some((e) => e.type === 'image:daemon-progress' && /^Retrying in/.test(e.status))).toBe(true);
      expect(await configOf(`${registry.host}/${path}:v1`)).toBe(baseId);
      // The daemon waits 5 s before its first retry; the native push is done well before that.
      expect(Date.now() - started).toBeLessThan(5_000);
      // The daemon's remote tag is gone, the image keeps its own name.
      const tags = (await (await getTestDocker()).docker.getImage(base).inspect()).RepoTags ?? [];
      expect(tags).toEqual([base]);
    } finally {
      await proxy.close();
    }
  });

  it("an abort during the daemon push ends the push with ASTRO_ABORTED: no native push takes over", async () => {
    const proxy = await createFaultProxy({ target: registry.url, route: registryRouteOf, throttleBytesPerSecond: 400_000 });
    try {
      const controller = new AbortController();
      const events: ImageEvent[] = [];
      const onEvent = (e: ImageEvent) => {
        events.push(e);
        if (e.type === 'image:daemon-progress' && e.status === 'Pushing') controller.abort();
      };
      const err = await pushImage(base, { repository: `${new URL(proxy.url).host}/team/${uniqueName()}`, tag: 'v1' }, { method: 'auto', layerCache: new LayerCache(), signal: controller.signal, onEvent }).catch(
        (e: unknown) => e,
      );
      expect(isAstroError(err, 'ASTRO_ABORTED')).toBe(true);
      expect(methods(events).map((e) => e.method)).toEqual(['daemon']);
      expect(events.some((e) => e.type === 'image:push-start' && e.method === 'native')).toBe(false);
    } finally {
      await proxy.close();
    }
  });

  it('refuses a daemon push whose manifest is not the image that was built', async () => {
    const repository = `team/${uniqueName()}`;
    const pushed = await pushImage(base, { repository: `${registry.host}/${repository}`, tag: 'v1' }, { method: 'daemon' });
    const client = new RegistryClient({ host: registry.host, repository });
    const diffIds = await diffIdsOf(base);
    const check = (imageId: string) =>
      verifyDaemonManifest(client, pushed.digest, { imageId, diffIds }, `${registry.host}/${repository}:v1`, undefined, '', { policy: registryRetryPolicy() });
    expect(await check(baseId)).toBe(pushed.mediaType);
    const err = await check(derivedId).catch((e: unknown) => e);
    expect(isAstroError(err, 'ASTRO_IMAGE_PUSH_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(/tag moved/);
  });
});
