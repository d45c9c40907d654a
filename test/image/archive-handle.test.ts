/**
 * openImageArchive: one opening (index, and for a .tar.gz one gunzip into a temp file) serves
 * inspectImage, validateImage and pushImage as `{ archive }`; close() removes the temp copy; a
 * closed handle gives a typed error. Real registry (distribution 2.8), archives made by hand; the
 * opens are counted with a spy on DiskArchive.open, through which every archive open goes.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ErrorCodes, isAstroError } from '../../src/core/errors.js';
import {
  classifyImageSource,
  inspectImage,
  openImageArchive,
  pushImage,
  RUNTIME_VERSION_LABEL,
  validateImage,
  type ImageArchive,
  type ImageEvent,
} from '../../src/image/index.js';
import { DiskArchive } from '../../src/image/source.js';
import { uniqueName } from '../helpers/docker.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeImage, noise, writeLegacyArchive } from './fixtures.js';
import { skopeoInfo } from './verify.js';
import { rejectionOf } from '../helpers/rejection.js';

let dir: string;
let registry: TestRegistry;
let gz: string;
let plain: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'astro-archive-handle-'));
  registry = await startRegistry('none');
  const image = makeImage({ labels: { [RUNTIME_VERSION_LABEL]: '3.1-5' }, layers: [{ 'a.bin': noise(400_000) }, { 'b.txt': 'b' }] });
  gz = join(dir, 'image.tar.gz');
  plain = join(dir, 'image.tar');
  await writeLegacyArchive(gz, image, 'x/handle:1', { gzip: true });
  await writeLegacyArchive(plain, image, 'x/handle:1');
});

afterAll(async () => {
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

afterEach(() => {
  vi.restoreAllMocks();
});

/** A fresh empty folder for temp files. */
async function freshTemp(): Promise<string> {
  return mkdtemp(join(dir, 'tmp-'));
}

function expectCode(err: unknown, code: string): void {
  expect(isAstroError(err) ? err.code : String(err)).toBe(code);
}

describe('openImageArchive', () => {
  it('a .tar.gz opened once serves inspect, validate and push; close() removes the gunzipped copy', async () => {
    const tempDir = await freshTemp();
    const opens = vi.spyOn(DiskArchive, 'open');
    const archive = await openImageArchive(gz, { tempDir });
    try {
      expect(archive).toMatchObject({ path: gz, gunzipped: true, closed: false });
      const tarPath = (archive as DiskArchive).tarPath;
      expect(dirname(dirname(tarPath))).toBe(tempDir);
      expect(existsSync(tarPath)).toBe(true);

      const info = await inspectImage({ archive });
      expect(info).toMatchObject({ source: 'archive', reference: gz, architecture: 'amd64', runtimeVersion: '3.1-5' });
      await validateImage({ archive }, { deploymentRuntimeVersion: '3.1-1' });
      expect(await classifyImageSource({ archive })).toMatchObject({ kind: 'archive', path: gz, archive });

      const repo = `${registry.host}/team/${uniqueName('h')}`;
      const events: ImageEvent[] = [];
      const pushed = await pushImage({ archive }, { repository: repo, tag: 'v1' }, { layerCache: false, tempDir, onEvent: (e) => events.push(e) });
      expect(pushed.layers.map((l) => l.status)).toEqual(['pushed', 'pushed']);
      expect((await skopeoInfo(`${repo}:v1`)).Digest).toBe(pushed.digest);
      // The same image again (a second tag) from the same opening: the blobs are there.
      const again = await pushImage({ archive }, { repository: repo, tag: 'v2' }, { layerCache: false, tempDir });
      expect(again.digest).toBe(pushed.digest);

      // One open for all of it; the handle survived every call.
      expect(opens).toHaveBeenCalledTimes(1);
      expect(archive.closed).toBe(false);
      expect(existsSync(tarPath)).toBe(true);
      // Only the gunzipped copy's folder is left in tempDir (the pushes removed their own).
      expect(await readdir(tempDir)).toEqual([tarPath.split('/').at(-2)]);
    } finally {
      await archive.close();
    }
    expect(archive.closed).toBe(true);
    expect(await readdir(tempDir)).toEqual([]);
    await archive.close(); // idempotent
  });

  it('a plain .tar is read in place (no temp copy); the same image and digest as from the path', async () => {
    const opens = vi.spyOn(DiskArchive, 'open');
    const archive = await openImageArchive(plain);
    try {
      expect(archive.gunzipped).toBe(false);
      expect((archive as DiskArchive).tarPath).toBe(plain);
      const viaHandle = await inspectImage({ archive });
      const viaPath = await inspectImage(plain);
      expect(viaHandle).toEqual(viaPath);
      expect(opens).toHaveBeenCalledTimes(2); // the handle's, and the path's own
    } finally {
      await archive.close();
    }
    expect(existsSync(plain)).toBe(true);
  });

  it('a closed handle gives ASTRO_CONFIG_INVALID_OPTION, not a missing-file error', async () => {
    const archive = await openImageArchive(gz);
    await archive.close();
    for (const p of [
      inspectImage({ archive }),
      validateImage({ archive }),
      pushImage({ archive }, { repository: `${registry.host}/team/closed`, tag: 'v1' }, { layerCache: false }),
      classifyImageSource({ archive }),
    ]) {
      const err = await rejectionOf(p);
      expectCode(err, ErrorCodes.CONFIG_INVALID_OPTION);
      expect((err as Error).name).toBe('AstroConfigError');
      expect((err as Error).message).toMatch(/already closed.*openImageArchive/);
    }
    // Something that is not a handle at all.
    const fake = { path: gz, gunzipped: false, closed: false, close: async () => undefined } as ImageArchive;
    expectCode(await rejectionOf(inspectImage({ archive: fake })), ErrorCodes.CONFIG_INVALID_OPTION);
  });

  it('closing the handle while a push still needs its bytes fails that push with the typed error', async () => {
    const archive = await openImageArchive(gz);
    // One layer at a time: the second is read only after the first is prepared, and by then the handle is closed.
    const err = await rejectionOf(
      pushImage({ archive }, { repository: `${registry.host}/team/${uniqueName('mid')}`, tag: 'v1' }, {
        layerCache: false,
        concurrency: 1,
        onEvent: (e) => {
          if (e.type === 'image:layer-prepared') void archive.close();
        },
      }),
    );
    expectCode(err, ErrorCodes.CONFIG_INVALID_OPTION);
    expect(archive.closed).toBe(true);
  });

  it('has Symbol.asyncDispose (for `await using`) calling close()', async () => {
    const dispose = (Symbol as { asyncDispose?: symbol }).asyncDispose!;
    expect(typeof dispose).toBe('symbol');
    const archive = await openImageArchive(gz);
    const tarPath = (archive as DiskArchive).tarPath;
    await (archive as unknown as Record<symbol, () => Promise<void>>)[dispose]!();
    expect(archive.closed).toBe(true);
    expect(existsSync(tarPath)).toBe(false);
  });

  it('typed errors for a missing file, a broken .tar.gz and an abort, leaving no temp files', async () => {
    const tempDir = await freshTemp();
    expectCode(await rejectionOf(openImageArchive(join(dir, 'absent.tar.gz'), { tempDir })), ErrorCodes.IMAGE_NOT_FOUND);
    expectCode(await rejectionOf(openImageArchive('', { tempDir })), ErrorCodes.IMAGE_NOT_FOUND);

    const broken = join(dir, 'broken.tar.gz');
    await writeFile(broken, gzipSync(Buffer.from('not a tar archive, just text that is long enough to be read '.repeat(40))).subarray(0, 200));
    expectCode(await rejectionOf(openImageArchive(broken, { tempDir })), ErrorCodes.IMAGE_INVALID_ARCHIVE);
    expect(await readdir(tempDir)).toEqual([]);

    const controller = new AbortController();
    controller.abort(new Error('not now'));
    const err = await rejectionOf(openImageArchive(gz, { tempDir, signal: controller.signal }));
    expectCode(err, ErrorCodes.ABORTED);
    expect((err as Error).name).toBe('AstroAbortError');
    expect(await readdir(tempDir)).toEqual([]);
  });
});
