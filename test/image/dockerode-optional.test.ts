/**
 * dockerode is an optional peer dependency, imported only by a daemon path without a client of the
 * caller's. A missing dockerode is a typed error naming the install command; anything else the
 * import throws (a broken dependency of dockerode) passes through. That the modules load without
 * it is checked on the packed tarball (test/package/consumer.test.ts).
 */
import { describe, expect, it } from 'vitest';
import Dockerode from 'dockerode';
import { DOCKERODE_INSTALL, dockerClient, importDockerode } from '../../src/image/docker.js';
import type { DockerLike } from '../../src/image/docker-like.js';
import { ImageError, isAstroError } from '../../src/index.js';

function moduleNotFound(name: string, code: 'ERR_MODULE_NOT_FOUND' | 'MODULE_NOT_FOUND'): Error {
  const message = code === 'MODULE_NOT_FOUND' ? `Cannot find module '${name}'` : `Cannot find package '${name}' imported from /app/dist/index.js`;
  return Object.assign(new Error(message), { code });
}

describe('dockerode, an optional peer', () => {
  for (const code of ['ERR_MODULE_NOT_FOUND', 'MODULE_NOT_FOUND'] as const) {
    it(`turns a missing dockerode (${code}) into ASTRO_IMAGE_DOCKERODE_MISSING with the install command`, async () => {
      const err = await importDockerode('inspect the image', () => Promise.reject(moduleNotFound('dockerode', code))).catch((e: unknown) => e);
      expect(isAstroError(err, 'ASTRO_IMAGE_DOCKERODE_MISSING')).toBe(true);
      expect(err).toBeInstanceOf(ImageError);
      expect((err as Error).message).toContain(DOCKERODE_INSTALL);
      expect((err as Error).message).toContain('To inspect the image');
      expect((err as ImageError).retryable).toBe(false);
    });
  }

  it('passes through a module missing below dockerode', async () => {
    const below = moduleNotFound('docker-modem', 'MODULE_NOT_FOUND');
    await expect(importDockerode('inspect the image', () => Promise.reject(below))).rejects.toBe(below);
  });

  it("loads the real dockerode's constructor from its CommonJS module", async () => {
    const Ctor = await importDockerode('inspect the image');
    expect(Ctor).toBe(Dockerode);
  });

  it("uses the caller's client without importing anything", async () => {
    const mine = new Dockerode({ socketPath: '/nonexistent.sock' });
    await expect(dockerClient(mine)).resolves.toBe(mine);
  });

  it('a dockerode client is a DockerLike as it is (types only)', () => {
    const client: DockerLike = new Dockerode();
    expect(typeof client.getImage).toBe('function');
  });
});
