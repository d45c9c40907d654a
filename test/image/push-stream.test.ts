/**
 * Layers uploaded while they are gzipped (distribution 2.8): a layer the registry already holds,
 * but no cache knows, is recognised once its digest is known and its upload dropped; a layer whose
 * bytes do not match its diff ID fails the push and commits nothing.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushImage, type ImageEvent } from '../../src/image/index.js';
import { uniqueName } from '../helpers/docker.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeImage, noise, writeLegacyArchive } from './fixtures.js';

let dir: string;
let registry: TestRegistry;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'astro-push-stream-'));
  registry = await startRegistry('none');
});
afterAll(async () => {
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

// 256 KiB chunks and 4 MB layers: every layer uploads while it is being gzipped.
const small = { chunkSizeBytes: 256 * 1024, layerCache: false as const };

describe('layers uploaded while gzipped', () => {
  it('drops the upload of a layer the registry turns out to hold, and reports it skipped', async () => {
    const img = makeImage({ layers: [{ 'a.bin': noise(4_000_000) }, { 'b.bin': noise(4_000_000) }] });
    const archive = join(dir, 'held.tar');
    await writeLegacyArchive(archive, img, 'astro-test/stream:v1');
    const repo = `${registry.host}/team/${uniqueName('h')}`;
    const first = await pushImage(archive, { repository: repo, tag: 'v1' }, small);
    const events: ImageEvent[] = [];
    const second = await pushImage(archive, { repository: repo, tag: 'v2' }, { ...small, onEvent: (e) => events.push(e) });
    expect(second.digest).toBe(first.digest);
    expect(second.layers.map((l) => l.status)).toEqual(['skipped', 'skipped']);
    expect(events.filter((e) => e.type === 'image:layer-pushed')).toHaveLength(0);
    // Some chunks went up before the digest was known, never a whole layer again.
    expect(second.bytesSent).toBeLessThan(first.bytesSent);
  });

  it('fails a layer whose bytes do not match its diff ID, and commits nothing', async () => {
    const img = makeImage({ layers: [{ 'c.bin': noise(4_000_000) }] });
    const archive = join(dir, 'corrupt.tar');
    await writeLegacyArchive(archive, img, 'astro-test/stream:v1');
    // Flip bytes deep inside the layer's file content (the tar stays readable).
    const bytes = await readFile(archive);
    const at = bytes.indexOf(img.layers[0]!.subarray(2_000_000, 2_000_064));
    expect(at).toBeGreaterThan(0);
    bytes.writeUInt8(bytes.readUInt8(at) ^ 0xff, at);
    await writeFile(archive, bytes);
    const repo = `${registry.host}/team/${uniqueName('c')}`;
    const err = await pushImage(archive, { repository: repo, tag: 'v1' }, small).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('ASTRO_IMAGE_INVALID_ARCHIVE');
    const tags = await fetch(`${registry.url}/v2/${repo.slice(registry.host.length + 1)}/tags/list`);
    expect(tags.status).not.toBe(200);
  });
});
