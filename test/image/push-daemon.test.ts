/**
 * Daemon push (the Docker engine pushes, with X-Registry-Auth) against real registries, and the
 * mapping of the engine's in-stream errors to typed errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAstroError } from '../../src/core/errors.js';
import { daemonPushError, pushImage, RUNTIME_VERSION_LABEL, type ImageEvent } from '../../src/image/index.js';
import { buildScratchImage, getTestDocker, removeImages, uniqueName } from '../helpers/docker.js';
import { freePort, startRegistry, type TestRegistry } from '../helpers/registry.js';
import { noise } from './fixtures.js';
import { skopeoInfo } from './verify.js';

let open: TestRegistry;
let basic: TestRegistry;
let local: string;
const cleanup: string[] = [];

beforeAll(async () => {
  await getTestDocker();
  [open, basic] = await Promise.all([startRegistry('none'), startRegistry('htpasswd')]);
  local = `astro-test/${uniqueName()}:daemon`;
  cleanup.push(local);
  await buildScratchImage({
    tag: local,
    layers: [{ 'etc/a.txt': 'a\n' }, { 'data/b.bin': noise(400_000) }],
    labels: { [RUNTIME_VERSION_LABEL]: '3.1-5' },
  });
});

afterAll(async () => {
  await removeImages(...cleanup);
  await Promise.all([open?.stop(), basic?.stop()]);
});

describe('daemon push', () => {
  it('pushes through the engine, reports per-layer status and the digest, and removes the remote tag', async () => {
    const repo = `${open.host}/team/${uniqueName()}`;
    const events: ImageEvent[] = [];
    const result = await pushImage(local, { repository: repo, tag: 'v1' }, { method: 'daemon', onEvent: (e) => events.push(e) });
    expect(result.method).toBe('daemon');
    expect(result.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(result.layers).toHaveLength(2);
    expect(result.layers.every((l) => l.status === 'pushed')).toBe(true);
    expect(events.some((e) => e.type === 'image:daemon-progress' && e.status === 'Pushed')).toBe(true);
    expect((await skopeoInfo(`${repo}:v1`)).Digest).toBe(result.digest);
    // The remote tag is gone again (the image keeps its own name).
    const { docker } = await getTestDocker();
    const tags = (await docker.getImage(local).inspect()).RepoTags ?? [];
    expect(tags).toContain(local);
    expect(tags).not.toContain(`${repo}:v1`);

    const again = await pushImage(local, { repository: repo, tag: 'v2' }, { method: 'daemon' });
    expect(again.digest).toBe(result.digest);
    expect(again.layers.every((l) => l.status === 'skipped')).toBe(true);
  });

  it('authenticates with X-Registry-Auth, and maps a refused login to ASTRO_IMAGE_REGISTRY_AUTH without the password', async () => {
    const repo = `${basic.host}/team/${uniqueName()}`;
    const result = await pushImage(local, { repository: repo, tag: 'v1' }, { method: 'daemon', auth: { username: basic.username, password: basic.password } });
    expect((await skopeoInfo(`${repo}:v1`, { username: basic.username, password: basic.password })).Digest).toBe(result.digest);

    const wrong = `nope-${basic.password}`;
    const events: ImageEvent[] = [];
    const err = await pushImage(local, { repository: repo, tag: 'v2' }, { method: 'daemon', auth: { username: 'cli', password: wrong }, onEvent: (e) => events.push(e) }).catch(
      (e: unknown) => e,
    );
    expect(isAstroError(err, 'ASTRO_IMAGE_REGISTRY_AUTH')).toBe(true);
    expect((err as Error).message).toMatch(/docker logout|containerd image store/);
    expect(`${(err as Error).message}${JSON.stringify(events)}`).not.toContain(wrong);
  });

  it('turns an in-stream failure (unreachable registry) into a typed error', async () => {
    const port = await freePort();
    const err = await pushImage(local, { repository: `127.0.0.1:${port}/team/x`, tag: 'v1' }, { method: 'daemon' }).catch((e: unknown) => e);
    expect(isAstroError(err, 'ASTRO_IMAGE_REGISTRY_UNAVAILABLE')).toBe(true);
  });

  it('refuses archives and missing images with clear codes', async () => {
    const missing = await pushImage(`astro-test/${uniqueName()}:none`, { repository: `${open.host}/team/x`, tag: 'v1' }, { method: 'daemon' }).catch((e: unknown) => e);
    expect(isAstroError(missing, 'ASTRO_IMAGE_NOT_FOUND')).toBe(true);
  });

  it('maps the known daemon error texts', () => {
    expect(daemonPushError('denied: requested access to the resource is denied', 'r').code).toBe('ASTRO_IMAGE_REGISTRY_AUTH');
    expect(daemonPushError('unexpected status: 403 Forbidden', 'r').code).toBe('ASTRO_IMAGE_REGISTRY_AUTH');
    expect(daemonPushError('http: server gave HTTP response to HTTPS client', 'r').message).toMatch(/insecure-registries/);
    expect(daemonPushError('dial tcp 10.0.0.1:443: i/o timeout', 'r').retryable).toBe(true);
    expect(daemonPushError('blob upload unknown', 'r').code).toBe('ASTRO_IMAGE_PUSH_FAILED');
  });
});
