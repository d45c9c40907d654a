/**
 * inspectImage / validateImage against a real Docker daemon (FROM-scratch images) and against
 * archives made by hand (legacy docker save, OCI layout, multi-platform index, gzipped).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAstroError } from '../../src/core/errors.js';
import { inspectImage, validateImage, RUNTIME_VERSION_LABEL } from '../../src/image/index.js';
import { buildScratchImage, dockerCli, getTestDocker, removeImages, uniqueName } from '../helpers/docker.js';
import { makeImage, writeLegacyArchive, writeOciArchive } from './fixtures.js';

let dir: string;
const tags: string[] = [];

async function expectCode(p: Promise<unknown>, code: string): Promise<Error> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeDefined();
  expect(isAstroError(err) ? err.code : String(err)).toBe(code);
  return err as Error;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'astro-validate-'));
  await getTestDocker();
});

afterAll(async () => {
  await removeImages(...tags);
  await rm(dir, { recursive: true, force: true });
});

describe('inspectImage / validateImage with the daemon', () => {
  it('reads platform and runtime labels of a daemon image and accepts a valid one', async () => {
    const tag = `astro-test/${uniqueName()}:1`;
    tags.push(tag);
    await buildScratchImage({
      tag,
      layers: [{ 'usr/local/airflow/dags/a.py': 'print(1)\n' }],
      labels: { [RUNTIME_VERSION_LABEL]: '3.1-2', 'io.astronomer.docker.airflow.version': '3.1.0+astro.1' },
    });
    const info = await inspectImage(tag);
    expect(info).toMatchObject({
      source: 'daemon',
      os: 'linux',
      architecture: 'amd64',
      runtimeVersion: '3.1-2',
      airflowVersion: '3.1.0+astro.1',
    });
    expect(info.diffIds).toHaveLength(1);
    expect(info.configDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const ok = await validateImage(tag, { deploymentRuntimeVersion: '3.1-1', allowedRuntimeVersions: ['3.1-1', '3.1-2'] });
    expect(ok.runtimeVersion).toBe('3.1-2');
    await expectCode(validateImage(tag, { deploymentRuntimeVersion: '3.1-3' }), 'ASTRO_IMAGE_RUNTIME_DOWNGRADE');
    await expectCode(validateImage(tag, { deploymentRuntimeVersion: '3.1-1', allowedRuntimeVersions: ['3.1-1'] }), 'ASTRO_IMAGE_RUNTIME_UNSUPPORTED');
  });

  it('refuses an image without the runtime label', async () => {
    const tag = `astro-test/${uniqueName()}:nolabel`;
    tags.push(tag);
    await buildScratchImage({ tag, layers: [{ 'x.txt': 'x' }] });
    const err = await expectCode(validateImage(tag), 'ASTRO_IMAGE_NOT_RUNTIME');
    expect(err.message).toContain(RUNTIME_VERSION_LABEL);
    // ...unless the caller says the label is not required.
    await expect(validateImage(tag, { requireRuntimeLabel: false })).resolves.toMatchObject({ architecture: 'amd64' });
  });

  it('refuses an arm64 image loaded with docker load, saying how to rebuild', async () => {
    const tag = `astro-test/${uniqueName()}:arm`;
    tags.push(tag);
    const image = makeImage({ architecture: 'arm64', variant: 'v8', labels: { [RUNTIME_VERSION_LABEL]: '3.1-2' }, layers: [{ 'a.txt': 'arm' }] });
    const archive = join(dir, 'arm.tar');
    await writeLegacyArchive(archive, image, tag);
    await dockerCli(['load', '-i', archive]);
    const info = await inspectImage({ imageName: tag });
    expect(info.architecture).toBe('arm64');
    const err = await expectCode(validateImage(tag), 'ASTRO_IMAGE_PLATFORM_MISMATCH');
    expect(err.message).toContain('linux/arm64');
    expect(err.message).toContain('docker build --platform=linux/amd64');
  });

  it('reports a missing image as ASTRO_IMAGE_NOT_FOUND', async () => {
    await expectCode(inspectImage(`astro-test/${uniqueName()}:missing`), 'ASTRO_IMAGE_NOT_FOUND');
    await expectCode(inspectImage('./no-such-archive.tar'), 'ASTRO_IMAGE_NOT_FOUND');
  });

  it('reports an unreachable daemon as ASTRO_IMAGE_DOCKER_UNAVAILABLE', async () => {
    const { default: Dockerode } = await import('dockerode');
    const docker = new Dockerode({ socketPath: join(dir, 'nobody-listens.sock') });
    const err = await expectCode(inspectImage({ imageName: 'whatever:1' }, { docker }), 'ASTRO_IMAGE_DOCKER_UNAVAILABLE');
    expect(err.message).toMatch(/docker save/);
  });
});

describe('inspectImage / validateImage from archives (no daemon)', () => {
  const labels = { [RUNTIME_VERSION_LABEL]: '12.5.0' };

  it('reads a legacy docker save archive, plain and gzipped, with a linked duplicate layer', async () => {
    const image = makeImage({ labels, layers: [{ 'a.txt': 'same' }, { 'a.txt': 'same' }] });
    const plain = join(dir, 'legacy.tar');
    const gz = join(dir, 'legacy.tar.gz');
    await writeLegacyArchive(plain, image, 'repo/x:1', { linkDuplicate: true });
    await writeLegacyArchive(gz, image, 'repo/x:1', { gzip: true });
    for (const path of [plain, gz]) {
      const info = await inspectImage(path);
      expect(info).toMatchObject({ source: 'archive', architecture: 'amd64', runtimeVersion: '12.5.0', repoTags: ['repo/x:1'] });
      expect(info.configDigest).toBe(image.configDigest);
      expect(info.diffIds).toEqual(image.diffIds);
    }
    await expect(validateImage(plain, { deploymentRuntimeVersion: '12.5.0', allowedRuntimeVersions: ['12.5.0'] })).resolves.toBeDefined();
    await expectCode(validateImage(plain, { deploymentRuntimeVersion: '3.0-1' }), 'ASTRO_IMAGE_RUNTIME_DOWNGRADE');
  });

  it('picks the amd64 image of a multi-platform OCI archive', async () => {
    const amd = makeImage({ labels: { [RUNTIME_VERSION_LABEL]: '3.0-2' }, layers: [{ 'a.txt': 'amd' }] });
    const arm = makeImage({ architecture: 'arm64', labels: { [RUNTIME_VERSION_LABEL]: '3.0-2' }, layers: [{ 'a.txt': 'arm' }] });
    const path = join(dir, 'multi.tar');
    await writeOciArchive(path, [arm, amd], { refName: 'repo/multi:1' });
    const info = await inspectImage({ archivePath: path });
    expect(info).toMatchObject({ architecture: 'amd64', configDigest: amd.configDigest });
    expect(info.platforms?.map((p) => p.architecture)).toEqual(['arm64', 'amd64']);
    // Airflow 2 -> 3 needs a confirmation, and a deployment on 12.0.0 or higher.
    await expectCode(validateImage(path, { deploymentRuntimeVersion: '12.1.0' }), 'ASTRO_IMAGE_AIRFLOW3_UPGRADE_BLOCKED');
    await expectCode(validateImage(path, { deploymentRuntimeVersion: '11.0.0', allowAirflow3Upgrade: true }), 'ASTRO_IMAGE_AIRFLOW3_UPGRADE_BLOCKED');
    await expect(validateImage(path, { deploymentRuntimeVersion: '12.1.0', allowAirflow3Upgrade: true })).resolves.toBeDefined();
  });

  it('refuses a multi-platform archive without amd64, listing what it has', async () => {
    const arm = makeImage({ architecture: 'arm64', labels, layers: [{ 'a.txt': 'arm' }] });
    const armv7 = makeImage({ architecture: 'arm', variant: 'v7', labels, layers: [{ 'a.txt': 'v7' }] });
    const path = join(dir, 'armonly.tar');
    await writeOciArchive(path, [arm, armv7]);
    const err = await expectCode(validateImage(path), 'ASTRO_IMAGE_PLATFORM_MISMATCH');
    expect(err.message).toContain('linux/arm/v7');
  });

  it('refuses garbage and incomplete archives with ASTRO_IMAGE_INVALID_ARCHIVE', async () => {
    const junk = join(dir, 'junk.tar');
    await writeFile(junk, Buffer.alloc(4096, 7));
    await expectCode(inspectImage(junk), 'ASTRO_IMAGE_INVALID_ARCHIVE');
    const amd = makeImage({ labels, layers: [{ 'a.txt': 'amd' }] });
    const arm = makeImage({ architecture: 'arm64', labels, layers: [{ 'a.txt': 'arm' }] });
    // The containerd store exports an index whose other-platform blobs are absent: fine for amd64...
    const partial = join(dir, 'partial.tar');
    await writeOciArchive(partial, [amd, arm], { omitPlatforms: ['linux/arm64'] });
    await expect(inspectImage(partial)).resolves.toMatchObject({ architecture: 'amd64' });
    // ...but not when the amd64 image itself is missing.
    const missing = join(dir, 'missing.tar');
    await writeOciArchive(missing, [amd, arm], { omitPlatforms: ['linux/amd64'] });
    await expectCode(inspectImage(missing), 'ASTRO_IMAGE_INVALID_ARCHIVE');
  });
});
