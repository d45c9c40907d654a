/**
 * Which image an OCI layout archive resolves to: an archive of several images (`docker save a b`
 * with Docker's containerd image store) must be told apart, and a resolved image knows every ID a
 * daemon may give it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAstroError } from '../../src/core/errors.js';
import { inspectImage, RUNTIME_VERSION_LABEL } from '../../src/image/index.js';
import { resolveImage } from '../../src/image/layout.js';
import { DiskArchive } from '../../src/image/source.js';
import { makeImage, writeOciArchive } from './fixtures.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'astro-layout-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const older = makeImage({ labels: { [RUNTIME_VERSION_LABEL]: '3.0-1' }, layers: [{ 'etc/which.txt': 'old\n' }] });
const newer = makeImage({ labels: { [RUNTIME_VERSION_LABEL]: '3.1-2' }, layers: [{ 'etc/which.txt': 'new\n' }] });

describe('OCI layout archives', () => {
  it('refuses an archive of several images without archiveImage, and picks the named one with its own tags only', async () => {
    const path = join(dir, 'two.tar');
    await writeOciArchive(path, [older, newer], { refNames: ['docker.io/library/app:old', 'docker.io/library/app:new'] });
    const err = await inspectImage({ archivePath: path }).catch((e: unknown) => e);
    expect(isAstroError(err, 'ASTRO_IMAGE_INVALID_ARCHIVE')).toBe(true);
    expect((err as Error).message).toMatch(/holds 2 images; say which one with archiveImage/);

    const picked = await inspectImage({ archivePath: path, archiveImage: 'app:new' });
    expect(picked.configDigest).toBe(newer.configDigest);
    expect(picked.runtimeVersion).toBe('3.1-2');
    expect(picked.repoTags).toEqual(['docker.io/library/app:new', 'new']);
  });

  it('takes one image saved under two names as one image', async () => {
    const path = join(dir, 'twice.tar');
    await writeOciArchive(path, [newer, newer], { refNames: ['docker.io/library/app:new', 'docker.io/library/app:latest'] });
    const info = await inspectImage({ archivePath: path });
    expect(info.configDigest).toBe(newer.configDigest);
    expect(info.repoTags).toEqual(['docker.io/library/app:new', 'new', 'docker.io/library/app:latest', 'latest']);
  });

  it('knows an image by its config, its manifest and the index above it', async () => {
    const arm = makeImage({ architecture: 'arm64', layers: [{ 'etc/which.txt': 'arm\n' }] });
    const path = join(dir, 'multi.tar');
    const { indexDigest, manifestDigests } = await writeOciArchive(path, [arm, newer], { refName: 'docker.io/library/app:multi' });
    const archive = await DiskArchive.open(path);
    try {
      const image = await resolveImage(archive, { archiveName: path });
      expect(image.configDigest).toBe(newer.configDigest);
      expect(image.imageIds).toEqual([newer.configDigest, manifestDigests[1], indexDigest]);
    } finally {
      await archive.close();
    }
  });
});
